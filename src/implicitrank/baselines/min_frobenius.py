"""Minimum-Frobenius-norm interpolation: what depth-1 gradient descent from zero reaches.

Gradient descent on L(W) = mean (A(W) − y)² moves W only within the row space of A (for completion:
only the observed entries), so from W(0) = 0 it converges to the interpolant of least Frobenius
norm, W = A⁺ y (Arora et al. 2019, §5: depth 1 "predicts ≈0 off the observed entries"). A sanity
baseline: it fits the observations and learns nothing about the rest.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..tasks import Completion, Sensing


def min_frobenius(task: Completion | Sensing) -> Tensor:
    """argmin ||W||_F subject to A(W) = y, per run: what depth-1 gradient descent from zero reaches.

    Completion: the observed values with zeros elsewhere (any tensor order); an entry observed more than once gets
    the mean of its values (the least-squares fit, which is what gradient descent reaches when they differ).
    Sensing: vec(W) = Aᵀ (A Aᵀ)⁻¹ y (the pseudo-inverse solution; A must have independent rows), solved in float64
    and returned in the task's dtype: the Gram matrix squares A's condition number, which in float32 cost 2e-3 of
    accuracy at cond(A) ≈ 350.

    Parameters
    ----------
    task : Completion or Sensing
        The task, B runs.

    Returns
    -------
    Tensor
        W, (B, *shape).

    Raises
    ------
    ValueError
        When ``task`` is neither a ``Completion`` nor a ``Sensing``, or a sensing task's measurements are linearly
        dependent.
    """
    if isinstance(task, Completion):
        flat = torch.zeros(task.batch, math.prod(task.shape), dtype=task.values.dtype, device=task.values.device)
        flat_idx = task.flat_indices()
        counts = torch.zeros_like(flat).scatter_add_(1, flat_idx, torch.ones_like(task.values))
        sums = flat.scatter_add_(1, flat_idx, task.values)
        return (sums / counts.clamp_min(1)).view(task.batch, *task.shape)
    if isinstance(task, Sensing):
        a = task.measurements.double()
        chol, info = torch.linalg.cholesky_ex(a @ a.T)
        if int(info) != 0:
            raise ValueError("the sensing measurements are linearly dependent (A Aᵀ is singular): no interpolant of "
                             "least norm through A⁺")
        solution = torch.cholesky_solve(task.values.double().T, chol)  # (M, B)
        return (a.T @ solution).T.reshape(task.batch, *task.shape).to(task.values.dtype)
    raise ValueError(f"task must be a Completion or a Sensing task, got {type(task).__name__}")
