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
    """A rectangular patch of an image: rows top..top+height−1, columns left..left+width−1.

    Attributes
    ----------
    top : int
        First row, >= 0.
    left : int
        First column, >= 0.
    height : int
        Number of rows, >= 1.
    width : int
        Number of columns, >= 1.

    Raises
    ------
    ValueError
        When ``top`` or ``left`` is negative or ``height`` or ``width`` is below 1.
    """

    top: int
    left: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.top < 0 or self.left < 0 or self.height < 1 or self.width < 1:
            raise ValueError(f"a Box needs top, left >= 0 and height, width >= 1, got {self}")

    @property
    def rows(self) -> slice:
        """The patch's rows as a slice, for indexing (…, H, W) tensors."""
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        """The patch's columns as a slice, for indexing (…, H, W) tensors."""
        return slice(self.left, self.left + self.width)

    def overlaps(self, other: Box) -> bool:
        """Whether the two patches share at least one pixel.

        Parameters
        ----------
        other : Box
            The other patch.

        Returns
        -------
        bool
            True when the rectangles intersect.
        """
        return (self.top < other.top + other.height and other.top < self.top + self.height
                and self.left < other.left + other.width and other.left < self.left + self.width)


def random_patch_pair(image_hw: tuple[int, int], size: int, generator: torch.Generator) -> tuple[Box, Box]:
    """Two non-overlapping ``size``×``size`` patches at uniformly random positions (the Pathfinder choice).

    Both corners are drawn uniformly, redrawing the pair until the patches do not overlap.

    Parameters
    ----------
    image_hw : tuple of int
        The image size (H, W) in pixels.
    size : int
        The side of each patch, in pixels.
    generator : torch.Generator
        The source of randomness.

    Returns
    -------
    tuple of Box
        Patches I and J.

    Raises
    ------
    ValueError
        When ``size`` < 1 or the image holds fewer than two disjoint ``size``×``size`` tiles.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (Pathfinder: random non-overlapping 2×2 patches).
    """
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
    """A context manager: run ``model`` without updating its BatchNorm running statistics.

    Inside the ``with`` block, BatchNorm modules in training mode that track running statistics still normalize
    with the batch statistics but stop tracking them (passing no running buffers to the kernel); on exit they
    track them again. Restoring the buffers afterwards instead would modify tensors that the first pass's
    autograd graph saved, which double backward then rejects.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose BatchNorm modules are paused.
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
    """The normalized gradient of the logits with respect to one patch of the input.

    ĝ_b = ∇_{x_I} f(x_b) / (‖∇_{x_I} f(x_b)‖ + eps) for every sample b, computed with ``create_graph=True`` so
    that a loss built on it can be differentiated again (double backward).

    Parameters
    ----------
    logits : Tensor
        Shape (batch,), f(x) computed from ``x``.
    x : Tensor
        The input, shape (batch, C, H, W), with ``requires_grad``.
    box : Box
        The patch I.
    eps : float
        Added to the norm, so a zero gradient stays finite.

    Returns
    -------
    Tensor
        Shape (batch, C·height·width): ĝ_b, flattened.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (the regularizer's normalized patch gradients).
    """
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g = grad[:, :, box.rows, box.cols].flatten(1)
    return g / (g.norm(dim=1, keepdim=True) + eps)


def interaction_regularizer(model: nn.Module, x: Tensor, logits: Tensor, first: Box, second: Box,
                            permutation: Tensor, eps: float = 1e-8) -> Tensor:
    """The interaction regularizer R = mean_b |⟨ĝ_b, g̃_b⟩| for patches I = ``first`` and J = ``second``.

    ĝ_b is the normalized gradient of f on patch I at x_b (:func:`normalized_patch_gradient`), g̃_b the same at
    x̃_b, which is x_b with patch J replaced by patch J of ``x[permutation][b]``. R = 1 (up to ``eps``) when the
    gradient direction on I ignores x_J, as for any f separable across (I, J); lowering R forces interaction
    between the patches. The training loss is BCE + λ·R, minimized by double backward. The pass on x̃ leaves
    the BatchNorm running statistics unchanged.

    Parameters
    ----------
    model : torch.nn.Module
        The network f, one logit per sample.
    x : Tensor
        The batch, shape (batch, C, H, W), with ``requires_grad``.
    logits : Tensor
        Shape (batch,), ``model(x)`` computed from that ``x``.
    first : Box
        Patch I, where the gradient is taken.
    second : Box
        Patch J, the one exchanged between samples.
    permutation : Tensor
        Shape (batch,), long: x̃_b takes patch J from sample ``permutation[b]`` (a :func:`derangement`).
    eps : float, optional
        Added to the gradient norms. Default 1e-8.

    Returns
    -------
    Tensor
        The scalar R in [0, 1] (up to ``eps``), differentiable with respect to the model's parameters.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (the regularizer promoting interaction between patches I and J).
    """
    g = normalized_patch_gradient(logits, x, first, eps)
    shuffled = replace_patch(x.detach(), second, x.detach()[permutation]).requires_grad_(True)
    with frozen_batchnorm_statistics(model):
        shuffled_logits = model(shuffled)
    g_shuffled = normalized_patch_gradient(shuffled_logits, shuffled, first, eps)
    return (g * g_shuffled).sum(dim=1).abs().mean()


def derangement(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """A random permutation of range(n) that moves every index.

    It maps each element of a random order to the element a random non-zero cyclic shift away, so no index is
    fixed.

    Parameters
    ----------
    n : int
        The number of samples, at least 2.
    generator : torch.Generator
        The source of randomness.
    device : torch.device or str, optional
        The device of the result. Default ``"cpu"``.

    Returns
    -------
    Tensor
        Shape (n,), long, a permutation with perm[i] != i for every i.

    Raises
    ------
    ValueError
        When ``n`` < 2: a single sample has no other sample to be sent to.
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples to shuffle patches between them, got {n}")
    order = torch.randperm(n, generator=generator)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(shift)
    return perm.to(device)
