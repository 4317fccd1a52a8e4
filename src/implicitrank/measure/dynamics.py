"""Theory checks: measured singular value dynamics against Arora et al. 2019, Theorem 3.

For a depth-N factorization trained by gradient flow from a balanced initialization,
    dσ_r/dt = −N · (σ_r²)^(1 − 1/N) · <∇L(W), u_r v_rᵀ>,
with (σ_r, u_r, v_r) the r-th singular triplet of the end-to-end matrix W (depth 1: factor 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..optim import gradient_descent
from ..train import TrainConfig, train


@dataclass
class Trajectory:
    """End-to-end matrices W(t) and their loss gradients ∇L(W(t)) at times t = lr·step.

    times : (T,); end_to_end, gradients : (T, B, m, n); depth : N.
    """

    times: Tensor
    end_to_end: Tensor
    gradients: Tensor
    depth: int


def predicted_singular_value_rates(w: Tensor, grad: Tensor, depth: int) -> tuple[Tensor, Tensor]:
    """(σ, σ̇ predicted by Theorem 3), both (..., min(m, n))."""
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    projection = torch.einsum("...ir,...ij,...rj->...r", u, grad, vh)  # <∇L, u_r v_rᵀ>
    return s, -depth * s.pow(2.0 - 2.0 / depth) * projection


def check_singular_value_dynamics(trajectory: Trajectory, top: int | None = None) -> Tensor:
    """Relative error between measured and predicted singular value rates, per run, (B,).

    Measured: (σ_r(t_{i+1}) − σ_r(t_i))/(t_{i+1} − t_i). Predicted: Theorem 3 averaged over the two
    ends (trapezoid), so the comparison is second-order accurate in the time step. The error is
    ||measured − predicted|| / ||predicted|| over all intervals and the ``top`` largest values.
    """
    if trajectory.times.numel() < 2:
        raise ValueError("trajectory needs at least two time points")
    s, rate = predicted_singular_value_rates(trajectory.end_to_end, trajectory.gradients, trajectory.depth)
    if top is not None:
        s, rate = s[..., :top], rate[..., :top]
    dt = (trajectory.times[1:] - trajectory.times[:-1]).view(-1, *([1] * (s.dim() - 1)))
    measured = (s[1:] - s[:-1]) / dt
    predicted = 0.5 * (rate[1:] + rate[:-1])
    dims = [0, *range(2, s.dim())]
    return (torch.linalg.vector_norm(measured - predicted, dim=dims)
            / torch.linalg.vector_norm(predicted, dim=dims).clamp_min(1e-30))


def record_trajectory(model, task, params: list[Tensor], lr: float, steps: int, every: int = 1) -> Trajectory:
    """Run plain gradient descent for ``steps`` steps, recording W and ∇L(W) every ``every`` steps."""

    def snapshot(p: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        w = model.end_to_end(p)
        return {"end_to_end": w, "gradient": task.dense_loss_and_grad(w)[1]}

    batch = params[0].shape[0]
    lrs = torch.full((batch,), lr, dtype=params[0].dtype)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_every=every, record_per_decade=0,
                         progress=False)
    state = train(model, task, params, gradient_descent(), lrs, config, measure=snapshot)
    rows = [r for r in state.records if r["step"] % every == 0]
    return Trajectory(torch.tensor([lr * r["step"] for r in rows], dtype=params[0].dtype),
                      torch.stack([r["end_to_end"] for r in rows]), torch.stack([r["gradient"] for r in rows]),
                      depth=len(params))
