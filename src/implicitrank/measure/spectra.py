"""Spectral measurements of (batched) matrices: norms, effective rank, numerical rank, errors.

All functions take singular values or matrices with a leading run dimension and return one number
per run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def singular_values(w: Tensor, top: int | None = None) -> Tensor:
    """Singular values of batched matrices, descending.

    Parameters
    ----------
    w : Tensor
        Matrices, (B, m, n).
    top : int, optional
        Keep only the ``top`` largest; None keeps all.

    Returns
    -------
    Tensor
        (B, min(m, n)), or (B, top).
    """
    s = torch.linalg.svdvals(w)
    return s if top is None else s[..., :top]


def effective_rank(values: Tensor) -> Tensor:
    """Effective rank exp(H(p)), p_i = σ_i/Σ_j σ_j, H the Shannon entropy (Roy & Vetterli 2007).

    Parameters
    ----------
    values : Tensor
        Nonnegative values (singular values, component norms), (..., K).

    Returns
    -------
    Tensor
        (...,); 0 where all values are zero.
    """
    total = values.sum(-1, keepdim=True)
    p = values / total.clamp_min(torch.finfo(values.dtype).tiny)
    entropy = -(p * torch.log(p.clamp_min(torch.finfo(values.dtype).tiny))).sum(-1)
    return torch.where(total.squeeze(-1) > 0, entropy.exp(), torch.zeros_like(entropy))


def numerical_rank(values: Tensor, tol: float = 1e-3, relative: bool = True) -> Tensor:
    """Number of values above ``tol`` (times the largest one when ``relative``).

    Parameters
    ----------
    values : Tensor
        Nonnegative values, (..., K).
    tol : float, optional
        The threshold, positive. Default 1e-3.
    relative : bool, optional
        Scale ``tol`` by the largest value (default True); False uses it as an absolute cut.

    Returns
    -------
    Tensor
        (...,) integer counts.

    Raises
    ------
    ValueError
        When ``tol`` is not positive.
    """
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}")
    cut = tol * values.amax(-1, keepdim=True) if relative else torch.full_like(values[..., :1], tol)
    return (values > cut).sum(-1)


def schatten_norm(values: Tensor, p: float) -> Tensor:
    """Schatten-p norm (Σ σ_i^p)^(1/p); p = 1 nuclear, 2 Frobenius, inf spectral.

    Parameters
    ----------
    values : Tensor
        Singular values σ_i along the last axis, (..., K).
    p : float
        The exponent: positive, or ``inf`` for the largest value.

    Returns
    -------
    Tensor
        (Σ σ_i^p)^(1/p) for each leading index, (...,).

    Raises
    ------
    ValueError
        When ``p`` is not positive.
    """
    if p == float("inf"):
        return values.amax(-1)
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    return values.pow(p).sum(-1).pow(1.0 / p)


def nuclear_norm(values: Tensor) -> Tensor:
    """Nuclear norm Σ σ_i from singular values.

    Parameters
    ----------
    values : Tensor
        Singular values, (..., K); summed over the last axis.

    Returns
    -------
    Tensor
        Σ σ_i, (...,).
    """
    return values.sum(-1)


def frobenius_norm(values: Tensor) -> Tensor:
    """Frobenius norm (Σ σ_i²)^(1/2) from singular values.

    Parameters
    ----------
    values : Tensor
        Singular values whose squares are summed, (..., K).

    Returns
    -------
    Tensor
        ||W||_F, one per leading index.
    """
    return values.pow(2).sum(-1).sqrt()


def spectral_norm(values: Tensor) -> Tensor:
    """Spectral norm max σ_i from singular values.

    Parameters
    ----------
    values : Tensor
        Singular values in any order; the largest along the last axis is taken.

    Returns
    -------
    Tensor
        σ_max, (...,).
    """
    return values.amax(-1)


def relative_error(w: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """||W − W*||_F / ||W*||_F per run, restricted to ``mask`` where given.

    Its square is the "reconstruction error" of Arora et al. 2019 (the mean of (W − W*)² when
    ||W*||_F² = m·n).

    Parameters
    ----------
    w : Tensor
        W, (B, ...).
    target : Tensor
        W*, broadcastable to ``w``.
    mask : Tensor, optional
        Boolean mask broadcastable to ``w``: only these entries count (in both norms).

    Returns
    -------
    Tensor
        (B,).

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (reconstruction error = mean of (W − W*)² over all entries).
    """
    diff, ref = (w - target).flatten(1), target.flatten(1).expand_as((w - target).flatten(1))
    if mask is not None:
        keep = mask.flatten(1).expand_as(diff)
        diff, ref = diff * keep, ref * keep
    # In units of max|W*| per run: both norms square the entries, which under- or overflows for entries far from
    # 1 (1e-160 gave 2e-130 for an error of 0.1; 1e160 gave NaN). A zero W* (an empty mask) keeps the unit scale.
    peak = ref.abs().amax(dim=1, keepdim=True)
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    diff, ref = diff / peak, ref / peak
    return torch.linalg.vector_norm(diff, dim=1) / torch.linalg.vector_norm(ref, dim=1).clamp_min(1e-30)
