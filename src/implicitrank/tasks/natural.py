"""Natural data as tensor completion (Razin, Maman & Cohen 2021 §5.2): one-vs-all image classification.

An image with P pixels quantized to k gray levels is a multi-index of an order-P tensor with k values per
mode; its label (``label_value`` = 2 for the chosen class, 0 otherwise) is the observed entry. Fitting
the labels with a CP factorization of R components asks whether the data is fit at low tensor rank.
Variants: ``original``; ``random-labels`` (the labels permuted); ``random-images`` (pixels replaced by
uniformly random gray levels). Reported error = MSE/4 (labels rescaled to 0/1); on test data the squared
error of each sample is capped at 4 first.

Data: scikit-learn's built-in 8×8 digits (order 64) and MNIST / Fashion-MNIST IDX files from a user's
path (order 784), gzipped or not. Indices are stored as uint8 (60,000 × 784 = 47 MB), never one-hot.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import MissingInputError, UsageError
from ..interrupts import import_whole
from .completion import Completion

VARIANTS = ("original", "random-labels", "random-images")
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
LABEL_VALUE = 2.0
TEST_LOSS_CAP = 4.0
QUANTIZE_ROWS = 10_000


def read_idx(path: str | Path, argument: str = "path") -> np.ndarray:
    """An array from an IDX file (LeCun's MNIST format), gzipped (by its magic bytes) or not.

    Layout: two zero bytes, a type code (0x08 uint8 … 0x0E float64), the number of dimensions, each
    dimension as a big-endian int32, then the data, big-endian, row-major.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{argument}: no such file {str(path)!r}")
    try:
        raw = path.read_bytes()
    except PermissionError as err:
        raise UsageError(f"{argument}: {path} cannot be read: {err.strerror}") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise UsageError(f"{argument}: {path} is a corrupt gzip file ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise UsageError(f"{argument}: {path} is not an IDX file (expected magic 00 00 <type in "
                         f"{[hex(t) for t in IDX_DTYPES]}> <ndim >= 1>, got {raw[:4].hex(' ')})")
    ndim, dtype = raw[3], np.dtype(IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{argument}: {path} is truncated inside its IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise UsageError(f"{argument}: {path} has {len(raw)} bytes, but its IDX header {dims} needs {expected}")
    return np.frombuffer(raw[header:], dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def quantize(intensities: np.ndarray, levels: int, max_value: int) -> np.ndarray:
    """Gray levels min(⌊k·p/max_value⌋, k−1) of integer intensities p in [0, max_value], as uint8, exact in
    integer arithmetic and in row chunks (no float copy of 60,000 images); k = 2 binarizes at p/max_value ≥ 0.5."""
    if not 2 <= levels <= 256:
        raise UsageError(f"levels must be in [2, 256], got {levels}")
    intensities = np.asarray(intensities)
    if intensities.dtype.kind not in "iu" or (intensities.size and (intensities.min() < 0
                                                                    or intensities.max() > max_value)):
        raise UsageError(f"intensities must be integers in [0, {max_value}], got dtype {intensities.dtype}")
    out = np.empty(intensities.shape, dtype=np.uint8)
    for start in range(0, len(intensities), QUANTIZE_ROWS):
        rows = intensities[start:start + QUANTIZE_ROWS].astype(np.int32)
        out[start:start + QUANTIZE_ROWS] = np.minimum(rows * levels // max_value, levels - 1)
    return out


def one_vs_all_completion(
    pixels: np.ndarray, labels: np.ndarray, *, max_value: int, levels: int, target_class: int,
    variant: str = "original", seed: int = 0, batch: int = 1, test_pixels: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> Completion:
    """Completion of the order-P tensor over {0..k−1}^P from integer images (K, P) with intensities in
    [0, max_value] and labels (K,): image i quantized to k levels is an index, ``LABEL_VALUE`` (2) for
    ``target_class`` and 0 otherwise its observed value; ``variant`` permutes the labels or draws the images.

    References
    ----------
    Razin, Maman & Cohen, ICML 2021, §5.2 (one-vs-all classification as tensor completion; original,
    random-label and random-image data).
    """
    if variant not in VARIANTS:
        raise UsageError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    pixels = np.asarray(pixels).reshape(len(pixels), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(pixels) == 0 or len(labels) != len(pixels):
        raise UsageError(f"need as many labels as images (>= 1), got {len(labels)} labels, {len(pixels)} images")
    if target_class not in set(labels.tolist()):
        raise UsageError(f"target_class {target_class} does not occur; labels are {sorted(set(labels.tolist()))}")
    rng = np.random.default_rng(seed)
    indices = quantize(pixels, levels, max_value)
    if variant == "random-images":
        indices = rng.integers(0, levels, size=indices.shape, dtype=np.uint8)
    targets = np.where(labels == target_class, LABEL_VALUE, 0.0)
    if variant == "random-labels":
        targets = rng.permutation(targets)
    test_idx = test_val = None
    if test_pixels is not None and test_labels is not None:
        test_pixels = np.asarray(test_pixels).reshape(len(test_pixels), -1)
        if test_pixels.shape[1] != pixels.shape[1] or len(test_labels) != len(test_pixels):
            raise UsageError(f"test images must be (K, {pixels.shape[1]}) with one label each, got "
                             f"{test_pixels.shape} and {len(test_labels)} labels")
        test_idx = torch.from_numpy(quantize(test_pixels, levels, max_value))
        test_val = torch.from_numpy(np.where(np.asarray(test_labels) == target_class, LABEL_VALUE, 0.0))
        test_val = test_val.expand(batch, -1).clone()
    values = torch.from_numpy(targets).expand(batch, -1).clone()
    return Completion((levels,) * pixels.shape[1], torch.from_numpy(indices), values,
                      test_indices=test_idx, test_values=test_val)


def digits_one_vs_all(
    target_class: int = 6, *, levels: int = 2, variant: str = "original", seed: int = 0, batch: int = 1,
    test_fraction: float = 0.0,
) -> Completion:
    """scikit-learn's 1,797 8×8 digits (integer intensities 0..16) as an order-64 completion; the last
    ``test_fraction`` of a seeded shuffle is held out (test_indices/test_values).

    References
    ----------
    Razin, Maman & Cohen, ICML 2021, §5.2 (the set-up, here on a data set small enough for tests).
    """
    load_digits = import_whole("sklearn.datasets").load_digits  # Ctrl-C held while scikit-learn loads

    if not 0.0 <= test_fraction < 1.0:
        raise UsageError(f"test_fraction must be in [0, 1), got {test_fraction}")
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images, labels = digits.data[order].astype(np.int64), digits.target[order]
    train = len(labels) - int(round(test_fraction * len(labels)))
    test = {} if train == len(labels) else {"test_pixels": images[train:], "test_labels": labels[train:]}
    return one_vs_all_completion(images[:train], labels[:train], max_value=16, levels=levels,
                                 target_class=target_class, variant=variant, seed=seed, batch=batch, **test)


def mnist_one_vs_all(
    images: str | Path, labels: str | Path, *, test_images: str | Path | None = None,
    test_labels: str | Path | None = None, target_class: int = 6, levels: int = 2, variant: str = "original",
    seed: int = 0, batch: int = 1,
) -> Completion:
    """MNIST or Fashion-MNIST (IDX files, e.g. train-images-idx3-ubyte[.gz]) as an order-784 completion;
    intensities (0..255) are quantized relative to 255 (k = 2: binarized at 0.5).

    References
    ----------
    Razin, Maman & Cohen, ICML 2021, §5.2 (one-vs-all MNIST / Fashion-MNIST as tensor completion, binarized
    pixels).
    """
    pixels, classes = read_idx_pair(images, labels, "images", "labels")
    test = {}
    if (test_images is None) != (test_labels is None):
        raise UsageError("test_images and test_labels must be given together")
    if test_images is not None:
        test_pixels, test_classes = read_idx_pair(test_images, test_labels, "test_images", "test_labels")
        test = {"test_pixels": test_pixels, "test_labels": test_classes}
    return one_vs_all_completion(pixels, classes, max_value=255, levels=levels, target_class=target_class,
                                 variant=variant, seed=seed, batch=batch, **test)


def read_idx_pair(images: str | Path, labels: str | Path, image_arg: str, label_arg: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style IDX images and labels: (K, rows·cols) uint8 pixels and (K,) int64 classes in 0..9.

    Raises
    ------
    UsageError
        Naming ``image_arg`` or ``label_arg``: images that are not K >= 1 uint8 (rows, cols) arrays, labels that are
        not K integers in 0..9 (a float label would be truncated, 200 or −1 would be a class of its own).
    """
    pixels, classes = read_idx(images, image_arg), read_idx(labels, label_arg)
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or len(pixels) == 0:
        raise UsageError(f"{image_arg}: expected uint8 images (K >= 1, rows, cols), got {pixels.dtype} {pixels.shape}")
    if classes.ndim != 1 or len(classes) != len(pixels):
        raise UsageError(f"{label_arg}: expected {len(pixels)} labels (one per image), got shape {classes.shape}")
    if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() > 9:
        raise UsageError(f"{label_arg}: expected integer class labels in 0..9, got {classes.dtype} values from "
                         f"{classes.min()} to {classes.max()}")
    return pixels.reshape(len(pixels), -1), classes.astype(np.int64)


def one_vs_all_error(model, params: list[Tensor], indices: Tensor, values: Tensor, *, cap: bool = False,
                     chunk: int = 10_000) -> Tensor:
    """Mean of min((W[i] − y)², 4 if ``cap``)/4 over the given entries, in chunks; (B,)."""
    total = values.new_zeros(values.shape[0])
    with torch.no_grad():
        for start in range(0, indices.shape[-2], chunk):
            pred = model.evaluate(params, indices[..., start:start + chunk, :])
            sq = (pred - values[:, start:start + chunk]).pow(2)
            total += (sq.clamp_max(TEST_LOSS_CAP) if cap else sq).sum(1)
    return total / (4.0 * values.shape[1])


def one_vs_all_errors(model, task: Completion) -> Callable[[list[Tensor], Tensor], dict[str, Tensor]]:
    """The measurement of a one-vs-all fit for the training loop: ``train_error`` and, where ``task`` holds test
    entries, ``test_error`` (capped), each (B,) (see :func:`one_vs_all_error`)."""

    def measure(params: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        errors = {"train_error": one_vs_all_error(model, params, task.indices, task.values)}
        if task.test_indices is not None:
            errors["test_error"] = one_vs_all_error(model, params, task.test_indices, task.test_values, cap=True)
        return errors

    return measure
