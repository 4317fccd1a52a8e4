"""Baselines: the convex and trivial solutions the factorizations are compared with.

Public functions
----------------
nuclear_norm_min(task, run=0, *, eps_constraint=0.0, method="admm" | "cvxpy", tol=1e-7, max_iter=20000,
                 memory=10, solver="SCS") -> NuclearNormResult
    Minimum nuclear norm subject to the observations of run ``run`` of a matrix ``Completion``
    (|X_ij − y_ij| <= eps; Arora et al. 2019 used eps = 1e-3) or ``Sensing`` task (A vec(X) = y).
    ``NuclearNormResult`` holds ``solution`` ((m, n) float64), ``nuclear_norm``, ``constraint_residual``
    (||max(|A(X) − y| − eps, 0)||_2 / ||y||_2), ``iterations``, ``converged``, ``method``, ``seconds``,
    ``duality_gap`` (the ADMM's certified relative gap; it stops once X is tol-feasible and the gap <= tol).
min_frobenius(task) -> Tensor
    The minimum-Frobenius-norm interpolant per run, (B, *shape): what depth-1 gradient descent from
    zero converges to (observed values, zeros elsewhere, for completion).
singular_value_threshold(v, threshold) -> (matrix, kept singular values)
    The proximal map of threshold·||·||_*.

Examples
--------
>>> import torch
>>> from implicitrank.baselines import min_frobenius
>>> from implicitrank.tasks import complete_from_target, low_rank_matrix
>>> task = complete_from_target(low_rank_matrix(4, 3, rank=1), 6, data_seeds=[0])
>>> interpolant, observed = min_frobenius(task), task.observed_mask()  # observed values, zeros elsewhere
>>> int((interpolant != 0).sum()), bool(torch.equal(interpolant[observed], task.target[observed]))
(6, True)
"""

from .min_frobenius import min_frobenius
from .nuclear_norm import METHODS, NuclearNormResult, nuclear_norm_min, singular_value_threshold

__all__ = ["METHODS", "NuclearNormResult", "min_frobenius", "nuclear_norm_min", "singular_value_threshold"]
