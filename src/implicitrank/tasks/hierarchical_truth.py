"""Ground truths of given hierarchical tensor rank (Razin, Maman & Cohen, ICML 2022, §4 experiments)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..factorizations import generators
from ..factorizations.hierarchical import HierarchicalFactorization
from ..factorizations.mode_tree import ModeTree, Nested


def low_hierarchical_rank_tensor(
    shape: tuple[int, ...], ranks: int | tuple[int, ...], tree: ModeTree | Nested | None = None, *,
    seed: int = 0, frobenius_norm: float = 1.0, root_spectrum: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """W* = the end tensor of a hierarchical tensor factorization over ``tree`` (default: balanced binary
    over adjacent modes) with widths R_ν = ``ranks`` (one int for every internal node, or one per node in
    ``tree.internal_nodes`` order) and i.i.d. N(0, 1) weights, rescaled to ||W*||_F = ``frobenius_norm``.

    Its matricization rank at a non-root node ν is at most min(R_ν, R_Pa(ν)) (leaves: min(D_n, R_Pa)), and
    generically equal to it when that is below the mode-size bounds Π_{n∈ν} D_n, Π_{n∉ν} D_n.

    ``root_spectrum`` (R_root values) fixes the root's local components instead: every non-root node's
    columns are orthonormalized bottom-up (QR), so the tensors W_{c,r} of each root child c are orthonormal
    and W* = Σ_r s_r ⊗_c W_{c,r} with s the spectrum rescaled to the norm (for a binary root, the singular
    values of the matricization at its children). Needs R_Pa(ν) <= R_ν at every non-root node.
    """
    if not frobenius_norm > 0:
        raise ValueError(f"frobenius_norm must be positive, got {frobenius_norm}")
    model = HierarchicalFactorization(tuple(shape), tree, widths=ranks)
    unit = model.scale_for_entry_std(1.0)  # N(0, 1) weights
    params = [p[0] for p in model.init(1, unit, generators([seed]), dtype=torch.float64)]
    if root_spectrum is not None:
        root = model.tree.root
        spectrum = torch.as_tensor(root_spectrum, dtype=torch.float64)
        if spectrum.shape != (model.node_widths[root],) or not bool((spectrum > 0).all()):
            raise ValueError(f"root_spectrum must hold R_root = {model.node_widths[root]} positive values, "
                             f"got {list(root_spectrum)}")
        for node in range(root):
            rows, cols = params[node].shape
            if cols > rows:
                raise ValueError(f"root_spectrum needs R_Pa(ν) <= R_ν to orthonormalize; node {node} "
                                 f"(modes {model.tree.modes[node]}) has R_ν = {rows} < R_Pa(ν) = {cols}")
            params[node] = torch.linalg.qr(params[node]).Q
        params[root] = spectrum.view(-1, 1)
    w = model.end_to_end([p[None] for p in params])[0]
    return (w * (frobenius_norm / torch.linalg.vector_norm(w))).to(dtype)
