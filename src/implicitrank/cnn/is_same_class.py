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
    """The two image slots (top, left, height, width) on the canvas for a horizontal gap ``distance``."""
    (h, w), (height, width) = image_hw, canvas_hw
    if distance < 0:
        raise ValueError(f"distance must be >= 0, got {distance}")
    if h > height or 2 * w + distance > width:
        raise ValueError(f"distance {distance} does not fit: two {h}x{w} images need a canvas of height >= {h} and "
                         f"width >= {2 * w + distance}, got {height}x{width}; allowed distances are 0..{width - 2 * w}")
    top, left = (height - h) // 2, (width - 2 * w - distance) // 2
    return Box(top, left, h, w), Box(top, left + w + distance, h, w)


def sample_pairs(labels: Tensor, n_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n_pairs`` index pairs (n, 2) into ``labels`` and their labels (n,) float: the first ⌈n/2⌉ drawn same-class
    (the second index uniform over the first's class), the rest different-class (the second class uniform over the
    others), then shuffled."""
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
    """Pairs of ``source`` images placed on a ``canvas_hw`` canvas a gap ``distance`` apart."""

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
        """``n_pairs`` pairs drawn from ``source`` with a generator seeded by ``seed``."""
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
        return self.slots

    def to(self, device: torch.device | str) -> IsSameClass:
        source = ImageSource(self.source.images.to(device), self.source.labels.to(device), self.source.scale)
        return IsSameClass(source, self.pairs.to(device), self.labels.to(device), self.canvas_hw, self.distance)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Canvases (b, C, H, W) float and labels (b,) for the pairs at ``index``."""
        images = self.source.images
        first, second = self.slots
        x = images.new_zeros((len(index), images.shape[1], *self.canvas_hw), dtype=torch.float32)
        pairs = self.pairs[index]
        for box, column in ((first, 0), (second, 1)):
            x[:, :, box.rows, box.cols] = images[pairs[:, column]].float() * self.source.scale
        return x, self.labels[index]
