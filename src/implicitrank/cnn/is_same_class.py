"""The Is Same Class task (Razin, Maman & Cohen 2022, §5): are two images, a gap d apart, of the same class?

Two h×w images sit on a zero canvas of shape C×H×W, vertically centred, the pair centred horizontally with a
horizontal gap of ``distance`` pixels between them. Label 1 iff both images have the same class; the pairs are half
positive and half negative (the second image from another class, chosen uniformly). The paper: 32×32 CIFAR-10 images
on 3×224×224, d ∈ {0, 40, 80, 120, 160}, 5k train pairs from the train split, 10k test pairs from the test split.
Canvases are built per batch from the stored pair indices, so memory holds only the source images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .images import ImageSource
from .regularizer import Box


def pair_slots(image_hw: tuple[int, int], canvas_hw: tuple[int, int], distance: int) -> tuple[Box, Box]:
    """The two image slots of an Is Same Class canvas.

    Both slots are vertically centred (top = (H − h) // 2); the pair with its gap is centred horizontally
    (left = (W − 2w − distance) // 2), the second slot starting ``distance`` columns after the first one ends.

    Parameters
    ----------
    image_hw : tuple of int
        The image size (h, w) in pixels.
    canvas_hw : tuple of int
        The canvas size (H, W) in pixels.
    distance : int
        The horizontal gap d between the two images, in pixels.

    Returns
    -------
    tuple of Box
        The left and the right slot, each h×w.

    Raises
    ------
    ValueError
        When ``distance`` is negative or the two images and the gap do not fit on the canvas (h > H or
        2w + d > W).
    """
    (h, w), (height, width) = image_hw, canvas_hw
    if distance < 0:
        raise ValueError(f"distance must be >= 0, got {distance}")
    if h > height or 2 * w + distance > width:
        allowed = f"0..{width - 2 * w}" if h <= height and width >= 2 * w else "none"
        raise ValueError(f"distance {distance} does not fit: two {h}x{w} images need a canvas of height >= {h} and "
                         f"width >= {2 * w + distance}, got {height}x{width}; allowed distances are {allowed}")
    top, left = (height - h) // 2, (width - 2 * w - distance) // 2
    return Box(top, left, h, w), Box(top, left + w + distance, h, w)


def sample_pairs(labels: Tensor, n_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw index pairs into ``labels``, half of them of the same class.

    The first index of every pair is uniform over all samples. For ⌈n/2⌉ pairs the second index is uniform over
    the samples of the first one's class, for the others uniform over the samples of a class drawn uniformly
    from the other classes; the pairs are then shuffled.

    Parameters
    ----------
    labels : Tensor
        Shape (N,), the class of every sample (at least two classes).
    n_pairs : int
        How many pairs n to draw, at least 2.
    generator : torch.Generator
        The source of randomness.

    Returns
    -------
    pairs : Tensor
        Shape (n, 2), long indices into ``labels``.
    same : Tensor
        Shape (n,), float: 1 where both samples have the same class, else 0.

    Raises
    ------
    ValueError
        When ``n_pairs`` < 2, too few for one pair of each kind.
    """
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2, got {n_pairs}")
    classes, counts = torch.unique(labels, return_counts=True)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    n_classes = len(classes)
    class_of = torch.searchsorted(classes, labels)
    first = torch.randint(len(labels), (n_pairs,), generator=generator)
    first_class = class_of[first]
    n_same = (n_pairs + 1) // 2
    shift = torch.randint(1, n_classes, (n_pairs,), generator=generator)
    second_class = torch.where(torch.arange(n_pairs) < n_same, first_class, (first_class + shift) % n_classes)
    offset = (torch.rand(n_pairs, generator=generator) * counts[second_class]).long()
    second = order[starts[second_class] + offset.clamp(max=counts[second_class] - 1)]
    same = (labels[first] == labels[second]).float()
    perm = torch.randperm(n_pairs, generator=generator)
    return torch.stack([first, second], 1)[perm], same[perm]


@dataclass(frozen=True)
class IsSameClass:
    """The Is Same Class task: pairs of ``source`` images on a zero canvas, a horizontal gap ``distance`` apart.

    Label 1 iff both images of a pair have the same class. Canvases are built per batch from the stored pair
    indices (:meth:`batch`), so memory holds only the source images. The regularizer's patches I and J are the
    two image slots (:attr:`slots`). The paper: 32×32 CIFAR-10 images on a 3×224×224 canvas,
    d ∈ {0, 40, 80, 120, 160}, 5k train pairs from the train split and 10k test pairs from the test split.

    Attributes
    ----------
    source : ImageSource
        The images the pairs index, (N, C, h, w).
    pairs : Tensor
        Shape (n, 2), long indices into ``source``.
    labels : Tensor
        Shape (n,), float, 1 = same class.
    canvas_hw : tuple of int
        The canvas size (H, W) in pixels.
    distance : int
        The horizontal gap d between the two images, in pixels.

    Raises
    ------
    ValueError
        When the two images and the gap do not fit on the canvas (see :func:`pair_slots`).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (Is Same Class).
    """

    source: ImageSource
    pairs: Tensor  # (n, 2) long indices into source
    labels: Tensor  # (n,) float, 1 = same class
    canvas_hw: tuple[int, int]
    distance: int

    def __post_init__(self) -> None:
        pair_slots(self.source.image_shape[1:], self.canvas_hw, self.distance)

    @classmethod
    def generate(cls, source: ImageSource, n_pairs: int, canvas_hw: tuple[int, int], distance: int,
                 seed: int) -> IsSameClass:
        """Draw a task of ``n_pairs`` pairs from ``source`` (see :func:`sample_pairs`).

        Parameters
        ----------
        source : ImageSource
            The images to pair.
        n_pairs : int
            How many pairs to draw, at least 2; half of them (rounded up) of the same class.
        canvas_hw : tuple of int
            The canvas size (H, W) in pixels.
        distance : int
            The horizontal gap between the two images, in pixels.
        seed : int
            Seeds the ``torch.Generator`` that draws the pairs; the same seed gives the same pairs.

        Returns
        -------
        IsSameClass
            The task.

        Raises
        ------
        ValueError
            When the images and the gap do not fit on the canvas, or ``n_pairs`` < 2.
        """
        pair_slots(source.image_shape[1:], canvas_hw, distance)
        pairs, labels = sample_pairs(source.labels, n_pairs, torch.Generator().manual_seed(seed))
        return cls(source, pairs, labels, canvas_hw, distance)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def slots(self) -> tuple[Box, Box]:
        """Patches I and J of the regularizer: the two image slots."""
        return pair_slots(self.source.image_shape[1:], self.canvas_hw, self.distance)

    def patches(self, generator: torch.Generator) -> tuple[Box, Box]:
        """Patches I and J of the regularizer for one batch: always the two image slots.

        Parameters
        ----------
        generator : torch.Generator
            Unused (the slots are fixed); taken for the training loop's protocol.

        Returns
        -------
        tuple of Box
            The left and the right image slot.
        """
        return self.slots

    def to(self, device: torch.device | str) -> IsSameClass:
        """A copy of the task with the source images and labels, the pairs and the pair labels on ``device``.

        Parameters
        ----------
        device : torch.device or str
            Where :meth:`batch` will then build the canvases.

        Returns
        -------
        IsSameClass
            A new task with the same canvas size and distance; ``self`` is unchanged.
        """
        source = ImageSource(self.source.images.to(device), self.source.labels.to(device), self.source.scale)
        return IsSameClass(source, self.pairs.to(device), self.labels.to(device), self.canvas_hw, self.distance)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """The canvases and labels of the pairs at ``index``.

        Parameters
        ----------
        index : Tensor
            Shape (b,), long indices of pairs, on the task's device.

        Returns
        -------
        x : Tensor
            Shape (b, C, H, W), float32: zeros with the two images (scaled to [0, 1]) in their slots.
        y : Tensor
            Shape (b,), float labels, 1 = same class.
        """
        images = self.source.images
        first, second = self.slots
        x = images.new_zeros((len(index), images.shape[1], *self.canvas_hw), dtype=torch.float32)
        pairs = self.pairs[index]
        for box, column in ((first, 0), (second, 1)):
            x[:, :, box.rows, box.cols] = images[pairs[:, column]].float() * self.source.scale
        return x, self.labels[index]
