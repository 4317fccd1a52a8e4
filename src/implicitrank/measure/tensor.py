"""Tensor measurements: matricizations and their ranks (along a hierarchical factorization's mode tree too),
a numerical tensor rank of CP tensors by pruning, and what Razin, Maman & Cohen (ICML 2021) track of a CP run.

* Matricization [W]_I: rows indexed by the modes in I, columns by the rest; its rank bounds the
  tensor rank from below. The hierarchical tensor rank is the tuple of matricization ranks at the nodes of a
  mode tree (Razin et al. 2022).
* Numerical tensor rank, two estimates (say which you report):
  ``tensor_rank_by_pruning`` (here) — the fewest learned components, largest norms first, whose sum is within
  relative error tol of the learned tensor (an upper bound on the ε-rank; no fitting);
  ``baselines.cp_als.tensor_rank_by_als`` — the smallest r whose CP-ALS fit of the dense tensor reaches
  relative Frobenius error <= tol (an ε-rank, as in Razin & Cohen 2020).
* The component norm law σ̇_r = N·γ_r·σ_r^(2−2/N) is ``CPFactorization.predicted_rates``, checked by
  ``measure.check_rates``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..factorizations.cp import CPFactorization
from ..factorizations.hierarchical import HierarchicalFactorization
from .spectra import effective_rank, numerical_rank, scaled_norm


def matricize(tensor: Tensor, row_modes: Sequence[int]) -> Tensor:
    """[W]_I for a batch of tensors (B, *shape): (B, ∏_{n∈I} D_n, ∏_{n∉I} D_n), modes in increasing order.

    The first dimension is always the batch: one tensor goes in as ``tensor[None]`` (unbatched, its mode 0 would be
    read as runs and its other modes renumbered, which no check can tell from a batch)."""
    order = tensor.dim() - 1
    rows = sorted(set(int(n) for n in row_modes))
    if not rows or rows[0] < 0 or rows[-1] >= order or len(rows) != len(list(row_modes)):
        raise ValueError(f"row_modes must be distinct modes in [0, {order - 1}], got {list(row_modes)}")
    cols = [n for n in range(order) if n not in rows]
    shape = tensor.shape[1:]
    permuted = tensor.permute(0, *(n + 1 for n in rows), *(n + 1 for n in cols))
    return permuted.reshape(tensor.shape[0], math.prod(shape[n] for n in rows), -1)


def matricization_ranks(tensor: Tensor, partitions: Sequence[Sequence[int]], tol: float = 1e-3) -> Tensor:
    """Numerical rank (singular values above tol·σ_max) of [W]_I for each I in ``partitions``; (B, K)."""
    return torch.stack([numerical_rank(torch.linalg.svdvals(matricize(tensor, modes)), tol)
                        for modes in partitions], dim=1)


def matricization_effective_ranks(tensor: Tensor, partitions: Sequence[Sequence[int]]) -> Tensor:
    """Effective rank (Roy & Vetterli 2007) of [W]_I for each I in ``partitions``; (B, K)."""
    return torch.stack([effective_rank(torch.linalg.svdvals(matricize(tensor, modes)))
                        for modes in partitions], dim=1)


def tensor_rank_by_pruning(model: CPFactorization, params: list[Tensor], tol: float = 1e-2) -> Tensor:
    """Per run, the fewest components (largest norms first) with ||W − W_k||_F <= tol·||W||_F; (B,).

    Forms dense tensors (small shapes only). Integer counts; float64 with NaN for the runs whose tensor holds NaN or
    inf (no count of components approximates it), when there are any, as ``numerical_rank`` does.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    factors = params[0]
    order = model.component_norms(params).argsort(dim=-1, descending=True)
    full = model.end_to_end(params).flatten(1)
    limit = tol * scaled_norm(full, 1)
    partial = torch.zeros_like(full)
    rank = torch.full((factors.shape[0],), -1, dtype=torch.long, device=factors.device)  # where the masks are
    finite = torch.isfinite(full).all(1)
    for k in range(factors.shape[-1] + 1):
        # all R components are W itself, whatever rounding their partial sum carries (tol·||W|| may be below it)
        close = finite if k == factors.shape[-1] else scaled_norm(full - partial, 1) <= limit
        done = close & (rank < 0)
        rank = torch.where(done, k, rank)
        if bool((rank >= 0).all()) or k == factors.shape[-1]:
            break
        chosen = factors.gather(3, order[:, k].view(-1, 1, 1, 1).expand(*factors.shape[:3], 1))
        partial = partial + model.end_to_end([chosen]).flatten(1)
    if bool((rank < 0).any()):
        return torch.where(rank >= 0, rank.to(torch.float64), math.nan)
    return rank


def cp_metrics(model: CPFactorization) -> Callable[[list[Tensor], Tensor], dict[str, Tensor]]:
    """A ``measure`` for ``train`` recording what Razin et al. 2021 track: component norms sorted and by
    fixed index, factor column norms (B, N, R), unbalancedness ε and the effective rank of the norms."""

    def measure(params: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        by_index = model.component_norms(params)
        return {"component_norms": by_index.sort(dim=-1, descending=True).values,
                "component_norms_by_index": by_index, "factor_column_norms": model.factor_column_norms(params),
                "unbalancedness": model.unbalancedness(params), "effective_rank": effective_rank(by_index)}

    return measure


@dataclass(frozen=True)
class MatricizationRanks:
    """Matricization ranks per run: ``ranks`` and ``effective_ranks`` are (B, P), column p for the
    matricization whose rows are the modes ``modes[p]``."""

    modes: tuple[tuple[int, ...], ...]
    ranks: Tensor
    effective_ranks: Tensor


def hierarchical_ranks(
    model: HierarchicalFactorization, params: list[Tensor], *, tol: float = 1e-3, extra: Sequence[Sequence[int]] = ()
) -> MatricizationRanks:
    """Numerical ranks (singular values above ``tol`` times the largest) and effective ranks of W's
    matricizations at every non-root node of the model's mode tree — the hierarchical tensor rank (Razin et al.
    2022, §3) — from ``model.matricization_singular_values`` (no dense W), followed by those at the ``extra``
    mode sets (computed from the dense W: small tensors only)."""
    order = model.order
    for modes in extra:
        if not modes or len(set(modes)) != len(modes) or not set(modes) < set(range(order)):
            raise ValueError(f"extra must hold non-empty proper subsets of the modes 0..{order - 1} "
                             f"without repeats, got {tuple(modes)}")
    node_values = model.matricization_singular_values(params)
    nodes = [v for v in range(model.tree.num_nodes) if v != model.tree.root]
    spectra = [node_values[v] for v in nodes]
    mode_sets = [model.tree.modes[v] for v in nodes]
    if extra:
        w = model.end_to_end([p.detach().double() for p in params])
        for modes in extra:
            spectra.append(torch.linalg.svdvals(matricize(w, modes)))
            mode_sets.append(tuple(sorted(int(m) for m in modes)))
    ranks = torch.stack([numerical_rank(s, tol) for s in spectra], dim=1)
    effective = torch.stack([effective_rank(s) for s in spectra], dim=1)
    return MatricizationRanks(tuple(mode_sets), ranks, effective)
