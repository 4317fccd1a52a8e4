"""Ground-truth generators: random low-rank matrices (Arora et al. 2019 §5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..factorizations import is_positive_integer


def low_rank_matrix(
    rows: int, cols: int, rank: int, *, seed: int = 0, frobenius_norm: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A random low-rank matrix W* = U Vᵀ with i.i.d. N(0, 1) factors, rescaled to a given Frobenius norm.

    U ∈ R^{rows×rank}, V ∈ R^{cols×rank}; ||W*||_F = ``frobenius_norm`` (default sqrt(rows·cols): entries of RMS
    1, i.e. ||W*||_F = n = 100 for the papers' 100×100 target).

    Parameters
    ----------
    rows, cols : int
        The shape, positive.
    rank : int
        The rank, in [1, min(rows, cols)].
    seed : int, optional
        Seed of U and V (drawn in float64). Default 0.
    frobenius_norm : float, optional
        ||W*||_F, positive; None means sqrt(rows·cols).
    dtype : torch.dtype, optional
        Dtype of the result. Default ``torch.float64``.

    Returns
    -------
    Tensor
        W*, (rows, cols).

    Raises
    ------
    ValueError
        On a non-positive shape, a norm that is not positive and finite, a rank out of range, or a dtype that is not
        floating-point.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (U, V ∈ R^{100×5} i.i.d. N(0, 1), W* = U Vᵀ rescaled to ||W*||_F = 100).
    """
    if not (is_positive_integer(rows) and is_positive_integer(cols)):
        raise ValueError(f"shape must be positive integers, got {rows}x{cols}")
    if not is_positive_integer(rank) or rank > min(rows, cols):
        raise ValueError(f"rank must be in [1, min(rows, cols)] = [1, {min(rows, cols)}], got {rank}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    g = torch.Generator().manual_seed(int(seed))
    u = torch.randn(rows, rank, generator=g, dtype=torch.float64)
    v = torch.randn(cols, rank, generator=g, dtype=torch.float64)
    w = u @ v.T
    norm = (rows * cols) ** 0.5 if frobenius_norm is None else float(frobenius_norm)
    if not 0 < norm < math.inf:
        raise ValueError(f"frobenius_norm must be positive and finite, got {frobenius_norm}")
    return (w * (norm / torch.linalg.matrix_norm(w))).to(dtype)
