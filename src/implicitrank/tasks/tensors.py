"""Tensor tasks: ground truths of given CP rank, completion from a permutation prefix, and tensor sensing
(Razin & Cohen 2020 §5; Razin, Maman & Cohen 2021 §5).

Completion reuses :class:`~implicitrank.tasks.completion.Completion` (generic over the order, indices
stored as integers). Sensing: the mean over measurements of (<A_i, W> − y_i)², no ½. Gaussian
measurement tensors reuse :class:`~implicitrank.tasks.sensing.Sensing`; rank-one measurement tensors
A_i = a_i^1 ⊗ ⋯ ⊗ a_i^N are kept as their N vectors and never formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..factorizations import mode_sizes
from ..factorizations.cp import cp_to_tensor
from ._protocol import Observations
from ._values import check_values
from .completion import Completion, multi_indices, sample_observations
from .sensing import Sensing

MAX_PERMUTED_ENTRIES = 1 << 26


def low_rank_tensor(
    shape: tuple[int, ...], rank: int, *, seed: int = 0, frobenius_norm: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """W* = Σ_{r=1}^{rank} u_r^1 ⊗ ⋯ ⊗ u_r^N with u_r^n i.i.d. N(0, I), rescaled to ||W*||_F =
    ``frobenius_norm``.

    References
    ----------
    Razin, Maman & Cohen, ICML 2021, §5 (ground truth of order 4, dimensions 10, rank 5, norm 1).
    """
    shape = mode_sizes(shape)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if not frobenius_norm > 0:
        raise ValueError(f"frobenius_norm must be positive, got {frobenius_norm}")
    g = torch.Generator().manual_seed(int(seed))
    w = cp_to_tensor([torch.randn(d, rank, generator=g, dtype=torch.float64) for d in shape])
    return (w * (frobenius_norm / torch.linalg.vector_norm(w))).to(dtype)


def permutation_prefix(shape: tuple[int, ...], num_observations: int, seed: int = 0) -> Tensor:
    """The first ``num_observations`` entries of one random permutation of all entries (seeded), as
    multi-indices (M, N). Prefixes of the same seed are nested, so a sweep over the number of
    observations adds entries to a fixed set.

    References
    ----------
    Razin & Cohen, NeurIPS 2020, §5 (tensor completion with a growing number of observed entries).
    """
    numel = math.prod(shape)
    if numel > MAX_PERMUTED_ENTRIES:
        raise ValueError(f"shape {shape} has {numel:.3g} entries; permuting more than {MAX_PERMUTED_ENTRIES} "
                         "is not supported")
    flat = sample_observations(numel, num_observations, [seed])[0]
    return multi_indices(flat, shape)


def prefix_completion(target: Tensor, num_observations: int, seed: int = 0, batch: int = 1) -> Completion:
    """Completion of ``target`` from a permutation prefix, one observation set shared by ``batch`` runs."""
    shape = tuple(target.shape)
    indices = permutation_prefix(shape, num_observations, seed).to(target.device)
    values = target[tuple(indices.unbind(-1))]
    return Completion(shape, indices, values.expand(batch, -1).clone(), target=target.expand(batch, *shape))


def rank_one_measurements(w: Tensor, vectors: list[Tensor]) -> Tensor:
    """<A_i, W> = W ×_1 a_i^1 ⋯ ×_N a_i^N for a dense W (B, *shape), one mode at a time; (B, M)."""
    out = torch.einsum("bi...,mi->bm...", w, vectors[0])
    for v in vectors[1:]:
        out = torch.einsum("bmi...,mi->bm...", out, v)
    return out


@dataclass
class RankOneSensing(Observations):
    """y_i = <A_i, W*> with rank-one A_i = ⊗_n a_i^n; ``vectors[n]`` is (M, D_n), ``values`` (B, M).

    Predictions use the model's ``inner_rank_one`` where it has one (CP: Σ_r Π_n <a_i^n, w_r^n>), else
    contract the end-to-end tensor mode by mode; A_i is never formed either way.
    """

    shape: tuple[int, ...]
    vectors: list[Tensor]
    values: Tensor
    target: Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.shape) or any(
            v.dim() != 2 or v.shape[1] != d for v, d in zip(self.vectors, self.shape)
        ):
            raise ValueError(f"vectors must be {len(self.shape)} matrices (M, D_n) with D_n = {self.shape}, got "
                             f"{[tuple(v.shape) for v in self.vectors]}")
        if len({v.shape[0] for v in self.vectors}) != 1:
            raise ValueError(f"every mode needs the same number of vectors M, got {[v.shape[0] for v in self.vectors]}")
        check_values(self.values, self.vectors[0].shape[0])

    def loss(self, model, params: list[Tensor]) -> Tensor:
        inner = getattr(model, "inner_rank_one", None)
        if inner is not None:
            predictions = inner(params, self.vectors)
        else:
            predictions = rank_one_measurements(model.end_to_end(params), self.vectors)
        return (predictions - self.values).pow(2).mean(dim=1)

    def dense_loss_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and ∇L(W) = Σ_i (2 r_i / M) ⊗_n a_i^n (a CP tensor with M components)."""
        residual = rank_one_measurements(w, self.vectors) - self.values
        weights = residual * (2.0 / self.num_observations)
        factors = [self.vectors[0].T.unsqueeze(0) * weights.unsqueeze(1)] + [v.T for v in self.vectors[1:]]
        return residual.pow(2).mean(dim=1), cp_to_tensor(factors).reshape(w.shape)


def rank_one_sensing(target: Tensor, num_observations: int, seed: int = 0, batch: int = 1) -> RankOneSensing:
    """Rank-one measurement tensors with i.i.d. N(0, 1) vector entries, so E<A_i, W*>² = ||W*||_F²."""
    if num_observations < 1:
        raise ValueError(f"num_observations must be >= 1, got {num_observations}")
    shape = tuple(target.shape)
    g = torch.Generator().manual_seed(int(seed))
    vectors = [torch.randn(num_observations, d, generator=g, dtype=torch.float64).to(target.device) for d in shape]
    values = rank_one_measurements(target.unsqueeze(0).to(torch.float64), vectors).to(target.dtype)
    return RankOneSensing(shape, vectors, values.expand(batch, -1).clone(), target=target.expand(batch, *shape))


def gaussian_tensor_sensing(target: Tensor, num_observations: int, seed: int = 0, batch: int = 1) -> Sensing:
    """Dense measurement tensors with i.i.d. N(0, 1) entries (stored as an (M, ∏ D_n) matrix), so
    E<A_i, W*>² = ||W*||_F² as for :func:`rank_one_sensing`."""
    if num_observations < 1:
        raise ValueError(f"num_observations must be >= 1, got {num_observations}")
    shape = tuple(target.shape)
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(num_observations, math.prod(shape), generator=g, dtype=torch.float64).to(target.device)
    values = (a @ target.reshape(-1).to(a.dtype)).to(target.dtype).expand(batch, -1).clone()
    return Sensing(shape, a.to(target.dtype), values, target=target.expand(batch, *shape))
