"""Labelled image sources for the Is Same Class task: scikit-learn's digits (built in) and CIFAR-10 (user's path)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..interrupts import import_whole

SPLITS = ("train", "test")
DIGITS_TRAIN_SIZE = 1200  # of scikit-learn's 1797 digits; the rest are the test split


@dataclass(frozen=True)
class ImageSource:
    """Labelled images stored as integers, read as ``images * scale`` in [0, 1].

    Validated at construction.

    Attributes
    ----------
    images : Tensor
        Shape (N, C, h, w), uint8.
    labels : Tensor
        Shape (N,), long class indices; at least two distinct classes.
    scale : float
        The factor that maps the stored integers to [0, 1] (1/255 for CIFAR-10, 1/16 for the digits).

    Raises
    ------
    ValueError
        When ``images`` is not a 4-dimensional uint8 tensor, ``labels`` is not of shape (N,), or the labels hold
        fewer than two classes.
    """

    images: Tensor
    labels: Tensor
    scale: float

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be a (N, C, h, w) uint8 tensor, got {tuple(self.images.shape)} "
                             f"{self.images.dtype}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        if len(torch.unique(self.labels)) < 2:
            raise ValueError("labels must hold at least two classes")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape (C, h, w) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def digits_source(split: str) -> ImageSource:
    """scikit-learn's 8×8 handwritten digits (values 0..16, 10 classes) as an image source.

    The 1797 digits are ordered by a fixed permutation (``numpy.random.default_rng(0)``): the first 1200 are the
    train split, the other 597 the test split.

    Parameters
    ----------
    split : str
        ``"train"`` or ``"test"``.

    Returns
    -------
    ImageSource
        Images (n, 1, 8, 8) uint8 in 0..16 read with scale 1/16; labels (n,) long in 0..9.

    Raises
    ------
    ValueError
        When ``split`` is neither ``"train"`` nor ``"test"``.
    """
    _check_split(split)
    images, labels = _digits()
    order = np.random.default_rng(0).permutation(len(labels))
    chosen = order[:DIGITS_TRAIN_SIZE] if split == "train" else order[DIGITS_TRAIN_SIZE:]
    return ImageSource(torch.from_numpy(images[chosen]).unsqueeze(1), torch.from_numpy(labels[chosen]).long(), 1 / 16)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    load_digits = import_whole("sklearn.datasets").load_digits  # Ctrl-C held while scikit-learn loads

    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target
