"""CP-ALS with missing entries at a fixed rank (Kolda & Bader 2009 §3.4; weighted form as in
Tomasi & Bro 2005), our own, in float64, working from observed multi-indices (never a dense mask).

Alternating least squares: with the other modes fixed, each row i of the mode-n factor solves
    min_a Σ_{m: i_{m,n} = i} (y_m − <a, z_m>)² + ridge·||a||²,   z_m = ⊙_{n'≠n} w^{n'}[i_{m,n'}] ∈ R^R,
a small R×R system per row (rows with no observation get a = 0). Restarts from independent random
factors keep the best fit, since ALS can stall in swamps. ALS is scale-equivariant but the ridge is an absolute
amount, so the fit runs on y / max|y| and its factors are scaled back by max|y|^(1/N) each (an absolute ridge of
1e-12 swamped the Gram matrices of data around 1e-9: fit error 0.09 where 1e-13 was reached at unit scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..factorizations import check_indices, is_positive_integer, mode_sizes
from ..tasks import multi_indices


@dataclass(frozen=True)
class CPALSResult:
    """factors : (D_n, R) matrices; mse : mean squared error on the observed entries;
    relative_error : ||y − ŷ|| / ||y|| over the observed entries; iterations : sweeps of the kept restart."""

    factors: list[Tensor]
    mse: float
    relative_error: float
    iterations: int


def cp_als(
    shape: tuple[int, ...],
    indices: Tensor,
    values: Tensor,
    rank: int,
    *,
    restarts: int = 3,
    max_iterations: int = 500,
    tol: float = 1e-10,
    mse_threshold: float = 0.0,
    ridge: float = 1e-12,
    seed: int = 0,
) -> CPALSResult:
    """Fit Σ_{r≤rank} ⊗_n w_r^n to ``values`` (M,) at ``indices`` (M, N) by ALS; the best of ``restarts``.

    A restart stops when its mse is <= ``mse_threshold`` or its relative decrease in a sweep is < ``tol``.
    """
    shape = mode_sizes(shape)
    if not is_positive_integer(rank):
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    if not (0 <= tol < math.inf and 0 <= mse_threshold < math.inf):  # tol NaN ran every iteration silently
        raise ValueError(f"tol and mse_threshold must be finite and >= 0, got {tol}, {mse_threshold}")
    if not ridge > 0:
        raise ValueError(f"ridge must be positive (it keeps unobserved rows solvable), got {ridge}")
    if restarts < 1 or max_iterations < 1:
        raise ValueError(f"restarts and max_iterations must be >= 1, got {restarts}, {max_iterations}")
    if indices.dim() != 2:
        raise ValueError(f"indices must be (M, {len(shape)}) for shape {shape}, got {tuple(indices.shape)}")
    check_indices(indices, shape)  # integer (1.7 was truncated to 1) and in range
    if values.shape != (indices.shape[0],) or indices.shape[0] == 0:
        raise ValueError(f"values must be (M,) with M = {indices.shape[0]} >= 1, got {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()):  # one NaN made the whole fit NaN
        raise ValueError("values must be finite (no NaN or inf)")
    idx = indices.long()
    y = values.double()
    peak = float(y.abs().max()) or 1.0  # the unit of the fit (module docstring)
    threshold = mse_threshold / peak / peak
    gen = torch.Generator().manual_seed(int(seed))
    best: CPALSResult | None = None
    for _ in range(restarts):
        result = _als_run(shape, idx, y / peak, rank, gen, max_iterations, tol, threshold, ridge)
        if best is None or result.mse < best.mse:
            best = result
        if best.mse <= threshold:
            break
    unit = peak ** (1.0 / len(shape))
    return CPALSResult([f * unit for f in best.factors], best.mse * peak * peak, best.relative_error,
                       best.iterations)


def cp_als_full(tensor: Tensor, rank: int, **options) -> CPALSResult:
    """CP-ALS on every entry of a dense tensor (for tensor-rank estimates of small tensors)."""
    shape = tuple(tensor.shape)
    indices = multi_indices(torch.arange(math.prod(shape)), shape)
    return cp_als(shape, indices, tensor.reshape(-1), rank, **options)


def tensor_rank_by_als(
    tensor: Tensor, tol: float = 1e-2, max_rank: int = 20, *, restarts: int = 3, seed: int = 0,
    max_iterations: int = 500,
) -> int | None:
    """A numerical tensor rank (an ε-rank, as in Razin & Cohen 2020): the smallest r <= ``max_rank`` whose
    CP-ALS fit (best of ``restarts``) of the dense ``tensor`` (one tensor, no run dimension) has relative
    Frobenius error <= tol; ``None`` if none does. Scale-invariant: the tensor is taken in units of its largest
    entry."""
    if not tol > 0 or max_rank < 1:
        raise ValueError(f"tol must be positive and max_rank >= 1, got {tol}, {max_rank}")
    tensor = tensor.double()
    if not bool(tensor.isfinite().all()):
        raise ValueError("tensor must be finite (it holds NaN or inf): its rank is undefined")
    peak = float(tensor.abs().max()) if tensor.numel() else 0.0
    if peak == 0:
        return 0
    tensor = tensor / peak
    mse_threshold = (tol * torch.linalg.vector_norm(tensor).item()) ** 2 / tensor.numel()
    for r in range(1, max_rank + 1):
        fit = cp_als_full(tensor, r, restarts=restarts, seed=seed, max_iterations=max_iterations,
                          mse_threshold=mse_threshold)
        if fit.relative_error <= tol:
            return r
    return None


def _als_run(shape, idx, y, rank, gen, max_iterations, tol, mse_threshold, ridge) -> CPALSResult:
    # entries ~ N(0, s²) with s chosen so the initial fit has the data's scale
    scale = (y.pow(2).mean().sqrt().item() / math.sqrt(rank)) ** (1.0 / len(shape)) or 1.0
    factors = [scale * torch.randn(d, rank, generator=gen, dtype=torch.float64) for d in shape]
    eye = ridge * torch.eye(rank, dtype=torch.float64)
    previous, mse, iterations = math.inf, math.inf, 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (the count is reported)
        for n, d in enumerate(shape):
            z = torch.ones(len(y), rank, dtype=torch.float64)
            for other, f in enumerate(factors):
                if other != n:
                    z = z * f[idx[:, other]]
            outer = z.unsqueeze(2) * z.unsqueeze(1)
            gram = torch.zeros(d, rank, rank, dtype=torch.float64).index_add_(0, idx[:, n], outer)
            rhs = torch.zeros(d, rank, dtype=torch.float64).index_add_(0, idx[:, n], z * y.unsqueeze(1))
            factors[n] = torch.linalg.solve(gram + eye, rhs)
        fit = (factors[-1][idx[:, -1]] * z).sum(1)
        mse = (fit - y).pow(2).mean().item()
        if mse <= mse_threshold or previous - mse < tol * max(previous, 1e-300):
            break
        previous = mse
    relative = math.sqrt(mse * len(y)) / max(torch.linalg.vector_norm(y).item(), 1e-300)
    return CPALSResult(factors, mse, relative, iterations)
