"""The regularizer promoting interaction between two patches (Razin, Maman & Cohen 2022, §5).

A network whose function is separable across patches I and J (f(x) = h(x_I, ·) + k(x_J, ·), or any function of
separation rank 1 across (I, J)) has a gradient direction ∇_{x_I} f that does not depend on x_J. The regularizer
measures that dependence: with ĝ_b = ∇_{x_I} f(x_b) / (‖∇_{x_I} f(x_b)‖ + eps) and g̃_b the same for x̃_b, which is
x_b with patch J replaced by patch J of another sample of the batch,

    R = mean_b |⟨ĝ_b, g̃_b⟩|,    loss = BCE(f(x), y) + λ·R,

minimized by double backward. R = 1 (up to eps) iff the gradient direction ignores x_J; lowering R forces
interaction between the patches, i.e. a higher separation rank, hence a higher hierarchical tensor rank.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Box:
    """A rectangular patch of an image: rows top..top+height, columns left..left+width."""

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.top < 0 or self.left < 0 or self.height < 1 or self.width < 1:
            raise ValueError(f"a Box needs top, left >= 0 and height, width >= 1, got {self}")

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)

    def overlaps(self, other: Box) -> bool:
        return (self.top < other.top + other.height and other.top < self.top + self.height
                and self.left < other.left + other.width and other.left < self.left + self.width)


def random_patch_pair(image_hw: tuple[int, int], size: int, generator: torch.Generator) -> tuple[Box, Box]:
    """Two non-overlapping ``size``×``size`` patches at uniformly random positions (the Pathfinder choice)."""
    height, width = image_hw
    if size < 1 or (height // size) * (width // size) < 2:
        raise ValueError(f"patch size must be >= 1 and leave room for two patches in {height}x{width}, got {size}")
    while True:
        tops = torch.randint(height - size + 1, (2,), generator=generator).tolist()
        lefts = torch.randint(width - size + 1, (2,), generator=generator).tolist()
        first, second = Box(tops[0], lefts[0], size, size), Box(tops[1], lefts[1], size, size)
        if not first.overlaps(second):
            return first, second


@contextmanager
def frozen_batchnorm_statistics(model: nn.Module):
    """Run ``model`` without updating BatchNorm running statistics.

    Modules in training mode still normalize with the batch statistics but stop tracking them (passing no running
    buffers to the kernel). Restoring the buffers afterwards instead would modify tensors that the first pass's
    autograd graph saved, which double backward then rejects.
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def replace_patch(x: Tensor, box: Box, source: Tensor) -> Tensor:
    """``x`` with patch ``box`` taken from ``source`` (same shape), out of place."""
    out = x.clone()
    out[:, :, box.rows, box.cols] = source[:, :, box.rows, box.cols]
    return out


def normalized_patch_gradient(logits: Tensor, x: Tensor, box: Box, eps: float) -> Tensor:
    """ĝ_b = ∇_{x_I} f(x_b) / (‖∇_{x_I} f(x_b)‖ + eps), flattened to (batch, |I|), with a graph for double backward."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g = grad[:, :, box.rows, box.cols].flatten(1)
    return g / (g.norm(dim=1, keepdim=True) + eps)


def interaction_regularizer(model: nn.Module, x: Tensor, logits: Tensor, first: Box, second: Box,
                            permutation: Tensor, eps: float = 1e-8) -> Tensor:
    """R = mean_b |⟨ĝ_b, g̃_b⟩| for patches I = ``first`` and J = ``second``.

    ``logits`` must be ``model(x)`` computed with ``x.requires_grad``; x̃ takes patch J from ``x[permutation]``.
    The pass on x̃ leaves the BatchNorm running statistics unchanged.
    """
    g = normalized_patch_gradient(logits, x, first, eps)
    shuffled = replace_patch(x.detach(), second, x.detach()[permutation]).requires_grad_(True)
    with frozen_batchnorm_statistics(model):
        shuffled_logits = model(shuffled)
    g_shuffled = normalized_patch_gradient(shuffled_logits, shuffled, first, eps)
    return (g * g_shuffled).sum(dim=1).abs().mean()


def derangement(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """A random permutation of range(n) moving every index (a random non-zero cyclic shift of a random order)."""
    if n < 2:
        raise ValueError(f"need at least 2 samples to shuffle patches between them, got {n}")
    order = torch.randperm(n, generator=generator)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(shift)
    return perm.to(device)
