"""Ground truths of given hierarchical tensor rank (Razin, Maman & Cohen, ICML 2022, §4 experiments)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..factorizations import generators
from ..factorizations.hierarchical import HierarchicalFactorization
from ..factorizations.mode_tree import ModeTree, Nested


def low_hierarchical_rank_tensor(
    shape: tuple[int, ...], ranks: int | tuple[int, ...], tree: ModeTree | Nested | None = None, *,
    seed: int = 0, frobenius_norm: float = 1.0, dtype: torch.dtype = torch.float64,
) -> Tensor:
    """W* = the end tensor of a hierarchical tensor factorization over ``tree`` (default: balanced binary
    over adjacent modes) with widths R_ν = ``ranks`` (one int for every internal node, or one per node in
    ``tree.internal_nodes`` order) and i.i.d. N(0, 1) weights, rescaled to ||W*||_F = ``frobenius_norm``.

    Its matricization rank at a non-root node ν is at most min(R_ν, R_Pa(ν)) (leaves: min(D_n, R_Pa)), and
    generically equal to it when that is below the mode-size bounds Π_{n∈ν} D_n, Π_{n∉ν} D_n.
    """
    if not frobenius_norm > 0:
        raise ValueError(f"frobenius_norm must be positive, got {frobenius_norm}")
    model = HierarchicalFactorization(tuple(shape), tree, widths=ranks)
    params = model.init(1, torch.tensor(1.0), generators([seed]), dtype=torch.float64)
    w = model.end_to_end(params)[0]
    return (w * (frobenius_norm / torch.linalg.vector_norm(w))).to(dtype)
