"""Spectral measurements of (batched) matrices: norms, effective rank, numerical rank, errors.

All functions take singular values or matrices with a leading run dimension and return one number
per run. Norms and ratios of norms are taken in units of the largest entry (``_in_units_of_peak``): squaring
entries far from 1 under- or overflows in float64 beyond about 1e±154 (float32: 1e±19), which made a relative
error of 0.1 read 2e-130 on data of 1e-160.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def scaled_norm(x: Tensor, dim: int | tuple[int, ...] = -1) -> Tensor:
    """The Euclidean norm ||x||_2 over ``dim``, computed as m·||x/m||_2 with m = max|x| so that no square under- or
    overflows (``torch.linalg.vector_norm`` squares the entries as they are: 0 for [3, 4]·1e-200).

    Parameters
    ----------
    x : Tensor
        Values, (...); ``dim`` is reduced.
    dim : int or tuple of int, optional
        The dimensions the norm runs over. Default -1.

    Returns
    -------
    Tensor
        The norms; 0 for all-zero slices, inf for a slice holding inf, NaN for one holding NaN.
    """
    peak = _in_units_of_peak(x, dim)
    norm = torch.linalg.vector_norm(x / peak, dim=dim, keepdim=True) * peak
    return torch.where(peak.isinf(), peak, norm).squeeze(dim)


def norm_ratio(x: Tensor, y: Tensor, dim: int | tuple[int, ...] = -1) -> Tensor:
    """||x||_2 / ||y||_2 over ``dim``, both in units of max|y| (exact for tiny or huge y); where y is all zero,
    NaN (a size relative to nothing is no number; inf would read as a divergence) unless x is too (0: a match).

    Parameters
    ----------
    x, y : Tensor
        Values of the same shape; ``dim`` is reduced.
    dim : int or tuple of int, optional
        The dimensions the norms run over. Default -1.

    Returns
    -------
    Tensor
        The ratios.
    """
    peak = _in_units_of_peak(y, dim)
    numerator, denominator = scaled_norm(x / peak, dim), torch.linalg.vector_norm(y / peak, dim=dim)
    ratio = numerator / torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where((denominator == 0) & (numerator != 0), math.nan, ratio)


def _spectrum(values: Tensor) -> Tensor:
    """``values`` (..., K), checked to be a spectrum: K >= 1 and no negative value (NaN and inf are let through, for
    the measures to mark)."""
    if values.dim() == 0 or values.shape[-1] == 0:
        raise ValueError(f"values must be (..., K) with K >= 1, got shape {tuple(values.shape)}")
    if bool((values < 0).any()):
        raise ValueError("values must be nonnegative (singular values or norms), got a negative one")
    return values


def _in_units_of_peak(x: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """max|x| over ``dim`` (kept), 1 where the slice is all zero."""
    peak = x.abs().amax(dim=dim, keepdim=True)
    return torch.where(peak == 0, torch.ones_like(peak), peak)


def singular_values(w: Tensor, top: int | None = None) -> Tensor:
    """Singular values of batched matrices, descending.

    Parameters
    ----------
    w : Tensor
        Matrices, (B, m, n).
    top : int, optional
        Keep only the ``top`` >= 1 largest; None keeps all.

    Returns
    -------
    Tensor
        (B, min(m, n)), or (B, top).

    Raises
    ------
    ValueError
        When ``top`` is not an integer >= 1 (-1 dropped the smallest value, as a slice does).
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be an integer >= 1 or None, got {top!r}")
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
        (...,); 0 where all values are zero, NaN where one is not finite.

    Raises
    ------
    ValueError
        When ``values`` is empty (K = 0) or negative.
    """
    values = _spectrum(values)
    values = values / _in_units_of_peak(values, -1)  # subnormal or overflowing sums would skew p
    total = values.sum(-1, keepdim=True)
    p = values / total.clamp_min(torch.finfo(values.dtype).tiny)
    entropy = -(p * torch.log(p.clamp_min(torch.finfo(values.dtype).tiny))).sum(-1)
    return torch.where(total.squeeze(-1) == 0, torch.zeros_like(entropy), entropy.exp())


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
        (...,) integer counts; float64 with NaN for the slices holding NaN or inf, when there are any.

    Raises
    ------
    ValueError
        When ``tol`` is not positive (or NaN), or ``values`` is empty or negative.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    values = _spectrum(values)
    cut = tol * values.amax(-1, keepdim=True) if relative else torch.full_like(values[..., :1], tol)
    counts = (values > cut).sum(-1)
    finite = torch.isfinite(values).all(-1)
    if bool(finite.all()):
        return counts
    return torch.where(finite, counts.to(torch.float64), math.nan)


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
        When ``p`` is not positive, or ``values`` is empty or negative.
    """
    values = _spectrum(values)
    if p == float("inf"):
        return values.amax(-1)
    if not p > 0:  # NaN too
        raise ValueError(f"p must be positive, got {p}")
    peak = _in_units_of_peak(values, -1)
    return ((values / peak).pow(p).sum(-1, keepdim=True).pow(1.0 / p) * peak).squeeze(-1)


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

    Raises
    ------
    ValueError
        When ``values`` is empty (K = 0) or negative.
    """
    return _spectrum(values).sum(-1)


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

    Raises
    ------
    ValueError
        When ``values`` is empty (K = 0) or negative.
    """
    return scaled_norm(_spectrum(values), -1)


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

    Raises
    ------
    ValueError
        When ``values`` is empty (K = 0) or negative.
    """
    return _spectrum(values).amax(-1)


def relative_error(w: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """||W − W*||_F / ||W*||_F per run, restricted to ``mask`` where given.

    Its square is the "reconstruction error" of Arora et al. 2019 (the mean of (W − W*)² when
    ||W*||_F² = m·n).

    Parameters
    ----------
    w : Tensor
        W, (B, ...): the first dimension holds the runs (one matrix: ``w[None]``).
    target : Tensor
        W*, broadcastable to ``w``.
    mask : Tensor, optional
        Boolean mask broadcastable to ``w``: only these entries count (in both norms).

    Returns
    -------
    Tensor
        (B,); NaN for a run whose mask keeps no entry, or whose W* is zero where W is not (``norm_ratio``).

    Raises
    ------
    ValueError
        When ``target`` or ``mask`` does not broadcast to the shape of ``w``, or ``mask`` is not boolean.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (reconstruction error = mean of (W − W*)² over all entries).
    """
    target = _broadcast("target", target, w)
    diff, ref = (w - target).flatten(1), target.flatten(1)
    if mask is None:
        return norm_ratio(diff, ref, 1)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor, got {mask.dtype}")
    keep = _broadcast("mask", mask, w).flatten(1)
    return torch.where(keep.any(1), norm_ratio(diff * keep, ref * keep, 1), math.nan)


def _broadcast(name: str, x: Tensor, w: Tensor) -> Tensor:
    """``x`` broadcast to the shape of ``w`` (by trailing dimensions, as arithmetic does), or a ValueError."""
    try:
        return torch.broadcast_to(x, w.shape)
    except RuntimeError:
        raise ValueError(f"{name} must broadcast to the shape of w {tuple(w.shape)}, got {tuple(x.shape)}") from None
