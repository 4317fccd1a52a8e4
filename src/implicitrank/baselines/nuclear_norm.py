"""Minimum nuclear norm subject to the observations: the convex baseline of Arora et al. 2019 (§5).

    minimize ||X||_*  subject to  |A(X) − y| <= eps   (eps = 0: A(X) = y)

where A(X) is the vector of observed entries (completion) or of inner products <A_i, X> (sensing).
Arora et al. used completion with eps = 1e-3; eps = 0 is the equality-constrained problem whose
solution Gunasekar et al. (2017) conjectured depth-2 gradient flow from zero to find.

Two solvers, chosen by name (``method``):

* ``"admm"``: the splitting min ||X||_* + ι_C(Z) s.t. X = Z, C = {Z : |A(Z) − y| <= eps} (Boyd et al.
  2011), solved by Douglas–Rachford splitting (Lions & Mercier 1979; ADMM is the same algorithm
  applied to the dual, Gabay 1983). With the state W the iteration reads

      X ← SVT_{1/ρ}(W),   Z ← Π_C(2X − W),   W ← W + Z − X,

  one SVD per iteration (taken through the Gram matrix's eigendecomposition) for the proximal map of
  the nuclear norm (singular value thresholding, Cai, Candès & Shen 2010) and the projection onto C
  in closed form. The fixed-point map W ↦ W + Z − X is sped up by safeguarded type-II Anderson
  acceleration (Fu, Zhang & Boyd 2019): a candidate extrapolated from the last ``memory`` secants is
  kept only if it shrinks the fixed-point residual ||Z − X||_F, else the plain step is taken and the
  memory restarts; this turns ADMM's slow tail (hundreds of iterations at 1e-6) into 40–180. The
  penalty starts at ρ = 10/||A*(y)||_2 (a threshold a decade below the one that zeroes everything;
  scale invariant) and changes only where the certificate stalls on feasibility: looked at every 50
  SVDs, if the constraint residual is above tol and above the gap and fell by less than half since the
  last look, ρ is multiplied by 4 (W rescaled so that X and the dual estimate are kept) and the Anderson
  memory restarts, at most 8 times, so ρ is eventually fixed and DR's convergence holds (Boyd et al.
  2011, §3.4.1). (Residual balancing always on was measured and is slower here: issue 18.)
  Stops on a certificate: the constraint residual of X is <= tol and the relative duality gap is
  <= tol. The dual of the problem is

      maximize <ν, y> − eps·||ν||_1   subject to  ||A*(ν)||_2 <= 1,

  and the iteration carries a dual estimate: Λ = ρ(W − X) ∈ ∂||X||_* (the optimality condition of the
  SVT step), whose part in the range of A* is A*(ν₀) (completion: ν₀ = Λ on the observed entries;
  sensing: the least-squares ν₀). Scaled by 1/max(1, ||A*(ν₀)||_2) it is dual feasible, so its objective
  is a lower bound D on the optimum, and gap = (||X||_* − D)/||X||_* bounds the suboptimality of the
  (tol-feasible) X. Dropping Λ's part outside the range of A* pushes ||A*(ν₀)||_2 above 1 on X's
  singular directions, and that part vanishes only as fast as the iteration converges; so ν₀ is also
  completed on X's tangent space T (when the observations outnumber T's dimension): ν = ν₀ + δ with
  P_T(A*(δ)) = P_T(Λ − A*(ν₀)) (least squares, conjugate gradients, no SVD), so that P_T(A*(ν)) = U Vᵀ
  and ||A*(ν)||_2 = max(1, ||P_T⊥(A*(ν))||_2), the dual certificate of Candès & Recht (2009, §3) built
  from the iterate; the better of the two bounds is used. On degenerate problems (eps > 0 with many
  observations: few active constraints, an optimum with singular values far below the rest) the
  plain iteration converges sublinearly (100×100 rank 5, 5000 entries, eps 1e-3: over 2,000 SVDs
  with either bound at the first ρ); the larger ρ and the completed certificate bring it to 630–690.
  ``max_iter`` caps it. The iteration is scale-equivariant, so it runs on y / max|y| (and eps / max|y|) and
  its X is scaled back: the SVT's Gram matrices square the entries, which would under- or overflow far from 1.
* ``"cvxpy"``: the same problem handed to cvxpy (SCS or another conic solver); the independent
  cross-check. Needs the ``dev`` extra.

The reported ``constraint_residual`` is ||max(|A(X) − y| − eps, 0)||_2 / ||y||_2 for the returned X
(the SVT iterate, exactly low rank): the relative violation of the constraints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ..tasks import Completion, Sensing

METHODS = ("admm", "cvxpy")


@dataclass(frozen=True)
class NuclearNormResult:
    """The outcome of one minimum-nuclear-norm solve.

    Attributes
    ----------
    solution : Tensor
        (m, n) float64 matrix X.
    nuclear_norm : float
        ||X||_*.
    constraint_residual : float
        ||max(|A(X) − y| − eps, 0)||_2 / ||y||_2.
    iterations : int
        SVDs (ADMM: one per evaluation of the fixed-point map, so a rejected acceleration step counts too) or
        the conic solver's iterations where it reports them.
    converged : bool
        The solver's stopping test was met within ``max_iter``.
    method : str
        ``"admm"`` or ``"cvxpy"``.
    seconds : float
        Wall time of the solve.
    duality_gap : float
        (||X||_* − D)/||X||_* for the ADMM's dual bound D (module docstring); NaN for cvxpy.
    """

    solution: Tensor
    nuclear_norm: float
    constraint_residual: float
    iterations: int
    converged: bool
    method: str
    seconds: float
    duality_gap: float = math.nan


@dataclass(frozen=True)
class _Constraints:
    """A(X) and the projection onto C = {X : |A(X) − y| <= eps}, for a completion or a sensing task."""

    shape: tuple[int, int]
    values: Tensor  # (M,)
    eps: float
    flat: Tensor | None = None  # (M,) observed positions (completion)
    measurements: Tensor | None = None  # (M, m·n) rows vec(A_i) (sensing)
    gram_cholesky: Tensor | None = None  # Cholesky factor of A Aᵀ (sensing)
    lower: Tensor = field(init=False)  # y − eps
    upper: Tensor = field(init=False)  # y + eps
    peak: float = field(init=False)  # max |y_i| (1 when y = 0): the unit the norms below are taken in
    scale: float = field(init=False)  # ||y / peak||_2, the residual's denominator

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower", self.values - self.eps)
        object.__setattr__(self, "upper", self.values + self.eps)
        object.__setattr__(self, "peak", float(self.values.abs().max()) or 1.0)
        tiny = torch.finfo(self.values.dtype).tiny
        object.__setattr__(self, "scale", max(float((self.values / self.peak).norm()), tiny))

    def apply(self, x: Tensor) -> Tensor:
        if self.flat is not None:
            return x.take(self.flat)
        return self.measurements @ x.reshape(-1)

    def project(self, v: Tensor) -> Tensor:
        """Euclidean projection onto C."""
        if self.flat is not None:
            z = v.clone(memory_format=torch.contiguous_format)
            observed = self.values if self.eps == 0 else self.apply(v).clamp(self.lower, self.upper)
            z.view(-1).index_put_((self.flat,), observed)
            return z
        # Affine set {A vec(Z) = y}: Z = V − Aᵀ (A Aᵀ)⁻¹ (A vec(V) − y).
        gap = (self.measurements @ v.reshape(-1) - self.values).unsqueeze(1)
        dual = torch.cholesky_solve(gap, self.gram_cholesky).squeeze(1)
        return v - (self.measurements.T @ dual).view(self.shape)

    def residual(self, x: Tensor) -> float:
        observed = self.apply(x)  # max(|a − y| − eps, 0) = |a − clamp(a, y − eps, y + eps)|
        violation = observed - (self.values if self.eps == 0 else observed.clamp(self.lower, self.upper))
        return float((violation / self.peak).norm()) / self.scale  # in units of max |y|: no under- or overflow

    def dual_coordinates(self, subgradient: Tensor) -> Tensor:
        """ν whose A*(ν) is the part of ``subgradient`` in the range of A* (orthogonal projection)."""
        if self.flat is not None:
            return subgradient.reshape(-1)[self.flat]
        rhs = (self.measurements @ subgradient.reshape(-1)).unsqueeze(1)
        return torch.cholesky_solve(rhs, self.gram_cholesky).squeeze(1)

    def duality_gap(self, nuclear_norm: float, subgradient: Tensor, left: Tensor | None = None,
                    right: Tensor | None = None) -> float:
        """(||X||_* − D)/||X||_* with D = (<ν, y> − eps·||ν||_1)/max(1, ||A*(ν)||_2), a lower bound on the
        optimum (weak duality) from the dual estimate ν of ``subgradient`` ∈ ∂||X||_*.

        Given X's singular vectors (``left``, ``right``: U, V of X = U Σ Vᵀ), ν is also completed on X's
        tangent space T = {U Aᵀ + B Vᵀ} (``_complete_on_tangent_space``) and the better of the two bounds is
        kept: both are valid, and the completed one does not pay for the part of the subgradient outside the
        range of A*, which the ADMM's estimate sheds only as slowly as the iteration converges."""
        nu = self.dual_coordinates(subgradient)
        gap = self._gap(nuclear_norm, nu)
        if left is not None and right is not None:
            m, n = self.shape
            rank = left.shape[1]
            if rank * (m + n - rank) < self.values.numel():  # else P_T A* A P_T is singular on T
                nu = nu + self._complete_on_tangent_space(subgradient - self.adjoint(nu), left, right)
                gap = min(gap, self._gap(nuclear_norm, nu))
        return gap

    def _gap(self, nuclear_norm: float, nu: Tensor) -> float:
        spectral = float(torch.linalg.matrix_norm(self.adjoint(nu), ord=2))
        bound = (float(nu @ self.values) - self.eps * float(nu.abs().sum())) / max(1.0, spectral)
        return (nuclear_norm - bound) / max(nuclear_norm, torch.finfo(nu.dtype).tiny)

    def _complete_on_tangent_space(self, outside: Tensor, left: Tensor, right: Tensor, rtol: float = 1e-12,
                                   max_iter: int = 200) -> Tensor:
        """δ = A(Z), Z ∈ T, with P_T A*(δ) = P_T(``outside``): least squares by conjugate gradients on
        P_T A* A P_T (positive definite on T when the observations determine T's directions).

        For a subgradient Λ of ||X||_* at X = U Σ Vᵀ (P_T(Λ) = U Vᵀ, ||P_T⊥(Λ)||_2 <= 1), the ADMM's estimate
        ν₀ (Λ's part in the range of A*) loses P_T(Λ − A*(ν₀)); ν = ν₀ + δ restores it, so P_T(A*(ν)) = U Vᵀ
        and ||A*(ν)||_2 = max(1, ||P_T⊥(A*(ν))||_2): the dual certificate of Candès & Recht (2009, §3),
        built from the iterate instead of the truth."""

        def project(z: Tensor) -> Tensor:  # P_T(Z) = U Uᵀ Z + Z V Vᵀ − U Uᵀ Z V Vᵀ
            uz = left.T @ z
            return left @ uz + (z - left @ uz) @ right @ right.T

        rhs = project(outside)
        z, r = torch.zeros_like(rhs), rhs.clone()
        p, rr = r.clone(), float((r * r).sum())
        target = rtol**2 * rr
        for _ in range(max_iter):
            if rr <= target:
                break
            q = project(self.adjoint(self.apply(p)))
            curvature = float((p * q).sum())
            if not curvature > 0:
                break
            z += (rr / curvature) * p
            r -= (rr / curvature) * q
            rr, previous = float((r * r).sum()), rr
            p = r + (rr / previous) * p
        return self.apply(z)

    def adjoint(self, r: Tensor) -> Tensor:
        if self.flat is not None:
            return torch.zeros(math.prod(self.shape), dtype=r.dtype).index_put_((self.flat,), r).view(self.shape)
        return (self.measurements.T @ r).view(self.shape)


def _constraints(task: Completion | Sensing, run: int, eps: float) -> _Constraints:
    if not isinstance(task, (Completion, Sensing)):
        raise ValueError(f"task must be a Completion or a Sensing task, got {type(task).__name__}")
    if len(task.shape) != 2:
        raise ValueError(f"nuclear-norm minimization needs a matrix task (order 2), got shape {task.shape}")
    if not 0 <= run < task.batch:
        raise ValueError(f"run must be in [0, {task.batch}) (the task's runs), got {run}")
    if not eps >= 0:
        raise ValueError(f"eps_constraint must be >= 0, got {eps}")
    values = task.values[run].detach().to("cpu", torch.float64)
    if isinstance(task, Completion):
        flat = task.flat_indices()[run].cpu()
        if flat.unique().numel() != flat.numel():
            raise ValueError("the observed indices of a completion task must be distinct")
        return _Constraints(task.shape, values, eps, flat=flat)
    if eps > 0:
        raise ValueError("eps_constraint must be 0 for a sensing task (only equality constraints are supported)")
    a = task.measurements.detach().to("cpu", torch.float64)
    chol, info = torch.linalg.cholesky_ex(a @ a.T)
    if int(info) != 0:
        raise ValueError("the sensing measurements are linearly dependent (A Aᵀ is singular)")
    return _Constraints(task.shape, values, eps, measurements=a, gram_cholesky=chol)


def singular_value_threshold(v: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """SVT_τ(V) = U max(S − τ, 0) Vᵀ, the proximal map of τ||·||_*.

    Computed from the Gram matrix of the shorter side (V is m×n with m >= n, else transpose): with
    VᵀV = Q Λ Qᵀ and σ = √λ, SVT_τ(V) = V Q_k diag(1 − τ/σ_k) Q_kᵀ over the σ_k > τ — about half the work of an
    SVD. Squaring loses accuracy only for σ below ~1e-8·σ_max, which this map sends to zero anyway as long as τ
    is far above that (here τ is a tenth of ||A*(y)||_2 or more).

    Parameters
    ----------
    v : Tensor
        The matrix V, (m, n).
    threshold : float
        τ >= 0.

    Returns
    -------
    tuple of (Tensor, Tensor)
        SVT_τ(V), (m, n), and its thresholded singular values σ_k − τ, descending.

    Raises
    ------
    ValueError
        When ``v`` is not a finite real floating-point matrix or ``threshold`` is negative or NaN.

    References
    ----------
    J.-F. Cai, E. J. Candès, Z. Shen, "A Singular Value Thresholding Algorithm for Matrix Completion", SIAM J.
    Optim. 2010, Theorem 2.1 (the singular value shrinkage operator is the proximal map of τ||·||_*).
    """
    if v.dim() != 2 or not v.is_floating_point():
        raise ValueError(f"v must be a real floating-point (m, n) matrix, got {v.dtype} of shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v holds NaN or inf")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    x, sigma, _, _ = _singular_value_threshold(v, threshold)
    return x, sigma


def _singular_value_threshold(v: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``singular_value_threshold`` with the kept singular vectors: SVT_τ(V), σ_k − τ (descending) and U_k, V_k
    (orthonormal columns, in ascending order of σ_k) with SVT_τ(V) = U_k diag(σ_k − τ) V_kᵀ."""
    tall = v.shape[0] >= v.shape[1]
    a = v if tall else v.T
    eigenvalues, vectors = torch.linalg.eigh(a.T @ a)
    sigma = eigenvalues.clamp_min(0.0).sqrt()
    kept = int((sigma > threshold).sum())  # ascending: the kept ones are the last columns (views, no copies)
    kept_sigma, kept_vectors = sigma[sigma.numel() - kept:], vectors[:, sigma.numel() - kept:]
    kept_left = (a @ kept_vectors) / kept_sigma
    x = (kept_left * (kept_sigma - threshold)) @ kept_vectors.T
    if tall:
        return x, (kept_sigma - threshold).flip(0), kept_left, kept_vectors
    return x.T, (kept_sigma - threshold).flip(0), kept_vectors, kept_left


def nuclear_norm_min(
    task: Completion | Sensing,
    run: int = 0,
    *,
    eps_constraint: float = 0.0,
    method: str = "admm",
    tol: float = 1e-7,
    max_iter: int = 20_000,
    memory: int = 10,
    solver: str = "SCS",
) -> NuclearNormResult:
    """Minimize ||X||_* subject to |A(X) − y| <= ``eps_constraint`` on run ``run`` of ``task``.

    Parameters
    ----------
    task : Completion or Sensing
        A matrix ``Completion`` (observed entries) or ``Sensing`` task (linear measurements).
    run : int, optional
        Which run's observations (tasks are batched; each run may have its own observation set). Default 0.
    eps_constraint : float, optional
        eps >= 0; Arora et al. 2019 used 1e-3 for completion. Sensing supports eps = 0 only. Default 0.
    method : str, optional
        ``"admm"`` (ours, default) or ``"cvxpy"`` (the cross-check).
    tol : float, optional
        Relative tolerance of the ADMM stopping test; for ``"cvxpy"`` the solver's ``eps``. Default 1e-7.
    max_iter : int, optional
        Cap on the ADMM's SVDs or the conic solver's iterations, >= 1. Default 20,000.
    memory : int, optional
        How many past iterates the Anderson acceleration combines (0: plain ADMM). Default 10.
    solver : str, optional
        The cvxpy solver (``"SCS"``, ``"CLARABEL"``, …) for ``method="cvxpy"``. Default ``"SCS"``.

    Returns
    -------
    NuclearNormResult
        The solution X (float64) with its nuclear norm, constraint residual, iterations, convergence flag,
        wall time and (ADMM) duality gap.

    Raises
    ------
    ValueError
        On an unknown method, tol <= 0, max_iter < 1 or memory < 0; a task that is not a matrix completion or
        sensing task, a run out of range, eps < 0 (or eps > 0 for sensing), repeated observed indices, or
        linearly dependent measurements.
    RuntimeError
        When cvxpy returns no solution.

    References
    ----------
    S. Boyd, N. Parikh, E. Chu, B. Peleato, J. Eckstein, "Distributed Optimization and Statistical Learning via
    the Alternating Direction Method of Multipliers", Foundations and Trends in Machine Learning 2011, §3 (and
    §3.4.1: a varying penalty keeps the convergence once it is fixed after finitely many changes).

    E. J. Candès, B. Recht, "Exact Matrix Completion via Convex Optimization", Foundations of Computational
    Mathematics 2009, §3 (a dual certificate Y = A*(ν) with P_T(Y) = U Vᵀ and ||P_T⊥(Y)||_2 <= 1 proves X optimal;
    its least-squares construction on the tangent space T).

    J.-F. Cai, E. J. Candès, Z. Shen, "A Singular Value Thresholding Algorithm for Matrix Completion", SIAM J.
    Optim. 2010, Theorem 2.1 (the singular value shrinkage operator is the proximal map of τ||·||_*).

    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (the nuclear-norm baseline, constraint 1e-3 on the observed entries).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if memory < 0:
        raise ValueError(f"memory must be >= 0, got {memory}")
    constraints = _constraints(task, run, eps_constraint)
    started = time.perf_counter()
    gap = math.nan
    if method == "admm":
        unit = constraints.peak  # solved in units of max|y| (module docstring: the SVT squares the entries)
        x, iterations, converged, gap = _admm(replace(constraints, values=constraints.values / unit,
                                                      eps=constraints.eps / unit), tol, max_iter, memory)
        x = x * unit
    else:
        x, iterations, converged = _cvxpy(constraints, tol, max_iter, solver)
    seconds = time.perf_counter() - started
    return NuclearNormResult(x, float(torch.linalg.svdvals(x).sum()), constraints.residual(x), iterations,
                             converged, method, seconds, gap)


def _admm(c: _Constraints, tol: float, max_iter: int, memory: int, period: int = 50,
          increase: float = 4.0, max_increases: int = 8) -> tuple[Tensor, int, bool, float]:
    w = c.adjoint(c.values)
    rho = 10.0 / max(float(torch.linalg.matrix_norm(w, ord=2)), 1e-300)
    svds = 0

    def step(w: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        nonlocal svds
        svds += 1
        x, sigma, left, right = _singular_value_threshold(w, 1.0 / rho)
        # X, the fixed-point residual Z − X, X's singular values and singular vectors
        return x, c.project(2.0 * x - w) - x, sigma, (left, right)

    def gap() -> float:
        return c.duality_gap(float(sigma.sum()), rho * (w - x), *vectors)

    x, g, sigma, vectors = step(w)
    secants = _Secants(w.numel(), memory, w.dtype) if memory else None
    g_norm = float(torch.linalg.vector_norm(g))  # ||Z − X||_F, what the safeguard compares
    next_check, increases = 0, 0
    watched = (svds, c.residual(x))  # (SVDs, constraint residual) at the last look at the balance
    while svds < max_iter:  # each branch below that takes two SVDs starts only with room for both
        residual = c.residual(x)
        # The gap costs an SVD: test it only once X is feasible, then at most every tenth iteration.
        if svds >= next_check and residual <= tol:
            certified = gap()
            if certified <= tol:
                return x, svds, True, certified
            next_check = svds + 10
        if svds - watched[0] >= period:
            # The residual holds up the certificate and stalls: weight feasibility more (a larger ρ), rescaling
            # W so that X and the dual estimate ρ(W − X) are kept, and restart the secants, which belong to the
            # map of the old ρ. At most ``max_increases`` times, so ρ is eventually fixed and DR converges.
            if (increases < max_increases and svds + 1 < max_iter and residual > tol
                    and residual > 0.5 * watched[1] and residual > gap()):
                w = x + (w - x) / increase
                rho *= increase
                increases += 1
                x, g, sigma, vectors = step(w)
                g_norm = float(torch.linalg.vector_norm(g))
                if secants is not None:
                    secants.clear()
            watched = (svds, c.residual(x))
        if secants is not None and secants.size and svds + 1 < max_iter:  # a rejected candidate takes a plain step
            candidate = secants.extrapolate(w, g)
            x_candidate, g_candidate, sigma_candidate, vectors_candidate = step(candidate)
            candidate_norm = float(torch.linalg.vector_norm(g_candidate))
            if candidate_norm < g_norm:
                secants.push(candidate - w, g_candidate - g)
                w, x, g, sigma, vectors = candidate, x_candidate, g_candidate, sigma_candidate, vectors_candidate
                g_norm = candidate_norm
                continue
            secants.clear()
        w_next = w + g
        x, g_next, sigma, vectors = step(w_next)
        g_norm = float(torch.linalg.vector_norm(g_next))
        if secants is not None:
            secants.push(w_next - w, g_next - g)
        w, g = w_next, g_next
    return x, svds, False, gap()


class _Secants:
    """The last ``memory`` secant pairs (ΔW, ΔG) of the fixed-point iteration W ← W + G(W), for type-II
    Anderson extrapolation W + G − (ΔW + ΔG)γ with γ = argmin ||G − ΔG γ|| (Walker & Ni 2011), kept in
    preallocated rows (ΔG and ΔW + ΔG) with the small Gram matrix ΔGᵀΔG updated a row at a time, and solved
    through it (pseudo-inverse with relative cut-off 1e-12, so nearly collinear secants do no harm; a bad
    extrapolation is rejected by the safeguard anyway)."""

    def __init__(self, numel: int, memory: int, dtype: torch.dtype) -> None:
        self.d_g = torch.zeros(memory, numel, dtype=dtype)  # one secant per row: contiguous writes and products
        self.d_sum = torch.zeros(memory, numel, dtype=dtype)  # ΔW + ΔG
        self.gram = torch.zeros(memory, memory, dtype=dtype)
        self.size, self.position = 0, 0

    def push(self, d_w: Tensor, d_g: Tensor) -> None:
        row = self.position
        self.d_g[row] = d_g.reshape(-1)
        torch.add(d_w.reshape(-1), self.d_g[row], out=self.d_sum[row])
        self.size = min(self.size + 1, self.d_g.shape[0])
        products = self.d_g[:self.size] @ self.d_g[row]
        self.gram[row, :self.size] = products
        self.gram[:self.size, row] = products
        self.position = (row + 1) % self.d_g.shape[0]

    def clear(self) -> None:
        self.size, self.position = 0, 0

    def extrapolate(self, w: Tensor, g: Tensor) -> Tensor:
        n, flat = self.size, g.reshape(-1)
        # γ = (ΔGᵀΔG)⁺ ΔGᵀG, the pseudo-inverse through the eigendecomposition of the n×n Gram matrix (positive
        # semidefinite: its largest eigenvalue is the last), in NumPy: at n <= memory torch's per-call overhead
        # was most of the cost of an extrapolation.
        eigenvalues, vectors = np.linalg.eigh(self.gram[:n, :n].numpy())
        kept = eigenvalues > 1e-12 * eigenvalues[-1]
        basis = vectors[:, kept]
        gamma = torch.from_numpy(basis @ ((basis.T @ (self.d_g[:n] @ flat).numpy()) / eigenvalues[kept]))
        return torch.addmv(w.reshape(-1) + flat, self.d_sum[:n].T, gamma, alpha=-1.0).view_as(w)


def _cvxpy(c: _Constraints, tol: float, max_iter: int, solver: str) -> tuple[Tensor, int, bool]:
    import cvxpy as cp

    x = cp.Variable(c.shape)
    y = c.values.numpy()
    if c.flat is not None:
        rows, cols = (c.flat // c.shape[1]).numpy(), (c.flat % c.shape[1]).numpy()
        observed = x[rows, cols]
    else:
        observed = c.measurements.numpy() @ cp.vec(x, order="C")
    constraint = observed == y if c.eps == 0 else cp.abs(observed - y) <= c.eps
    problem = cp.Problem(cp.Minimize(cp.normNuc(x)), [constraint])
    options = {"eps": tol, "max_iters": max_iter} if solver == "SCS" else {}
    problem.solve(solver=solver, **options)
    if x.value is None:
        raise RuntimeError(f"cvxpy ({solver}) returned no solution: status {problem.status}")
    iterations = problem.solver_stats.num_iters if problem.solver_stats.num_iters is not None else -1
    return torch.as_tensor(x.value, dtype=torch.float64), int(iterations), problem.status == "optimal"
