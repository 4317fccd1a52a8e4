"""CIFAR-10 from the standard python-pickle batches (``data_batch_1`` … ``data_batch_5``, ``test_batch``).

Each batch is a pickled dict with ``b"data"``, a (n, 3072) uint8 array of rows R…G…B of 32×32 images, and
``b"labels"``, n class indices in 0..9 (https://www.cs.toronto.edu/~kriz/cifar.html).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingInputError, UsageError
from .images import SPLITS, ImageSource

BATCH_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python-pickle batch file.

    The file is a pickled dict whose ``b"data"`` is an (n, 3072) uint8 array (each row the R, G and B planes of a
    32×32 image) and whose ``b"labels"`` are n class indices in 0..9.

    Parameters
    ----------
    path : str or Path
        The batch file, e.g. ``data_batch_1`` or ``test_batch``.

    Returns
    -------
    images : numpy.ndarray
        Shape (n, 3, 32, 32), uint8 in 0..255.
    labels : numpy.ndarray
        Shape (n,), int64 class indices in 0..9.

    Raises
    ------
    MissingInputError
        When ``path`` is not a file.
    UsageError
        When the file does not unpickle to such a dict, ``b"data"`` is not (n, 3072) with n labels, or a label lies
        outside 0..9 (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"CIFAR-10 batch file not found: {path}")
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except Exception as err:  # any unpickling or format failure means the file is not a CIFAR batch
        raise UsageError(f"{path} is not a CIFAR-10 python-pickle batch (a dict with b'data' and b'labels'): "
                         f"{type(err).__name__}: {err}") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (data.shape[0],) or len(data) == 0:
        raise UsageError(f"{path}: b'data' must be (n >= 1, 3072) with n labels, got {data.shape} and {labels.shape}")
    if data.dtype != np.uint8:  # a conversion would wrap 633 to 121 and truncate [0, 1] floats to 0
        raise UsageError(f"{path}: b'data' must be uint8 pixels (0..255), got {data.dtype}")
    if labels.dtype.kind not in "iu":  # text labels ("cat") have no order to report a range of
        raise UsageError(f"{path}: labels must be integers in 0..9, got labels such as {labels.flat[0].item()!r}")
    if labels.min() < 0 or labels.max() > 9:
        raise UsageError(f"{path}: labels must be integers in 0..9, got {labels.dtype} from {labels.min()} to "
                         f"{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar10_source(path: str | Path, split: str) -> ImageSource:
    """One split of CIFAR-10 read from the directory of its python-pickle batches.

    Parameters
    ----------
    path : str or Path
        The directory holding ``data_batch_1`` … ``data_batch_5`` and ``test_batch``.
    split : str
        ``"train"`` (the five data batches, 50,000 images) or ``"test"`` (``test_batch``, 10,000 images).

    Returns
    -------
    ImageSource
        Images (n, 3, 32, 32) uint8 read with scale 1/255, so pixel values lie in [0, 1]; labels (n,) in 0..9.

    Raises
    ------
    UsageError
        When ``split`` is neither ``"train"`` nor ``"test"``, a batch file is not a CIFAR-10 batch, or the split's
        labels hold fewer than two classes.
    MissingInputError
        When ``path`` is not a directory or one of the split's batch files is missing.
    """
    if split not in SPLITS:
        raise UsageError(f"split must be one of {SPLITS}, got {split!r}")
    directory = Path(path)
    if not directory.is_dir():
        raise MissingInputError(f"CIFAR-10 directory not found: {directory} (expected the python-pickle batches "
                                f"{', '.join(BATCH_FILES['train'] + BATCH_FILES['test'])})")
    parts = [read_cifar_batch(directory / name) for name in BATCH_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    try:
        return ImageSource(torch.from_numpy(images), torch.from_numpy(labels), 1 / 255)
    except ValueError as err:  # e.g. labels of one class: no pair of another class to draw
        files = ", ".join(BATCH_FILES[split])
        raise UsageError(f"{directory}: the CIFAR-10 {split} batches ({files}): {err}") from None
