"""Tensor measurements: matricization ranks, numerical tensor rank of CP tensors, and the CP theory
checks of Razin, Maman & Cohen (ICML 2021).

* Matricization [W]_I: rows indexed by the modes in I, columns by the rest; its rank bounds the
  tensor rank from below.
* Numerical tensor rank, two estimates (say which you report):
  ``tensor_rank_by_als`` — the smallest r whose CP-ALS fit of the dense tensor reaches relative
  Frobenius error <= tol (an ε-rank, as in Razin & Cohen 2020, who used MSE < 1e-6 — for an
  8×8×8 tensor of norm 1 that is a relative error of √(512·1e-6) ≈ 0.023);
  ``tensor_rank_by_pruning`` — the fewest learned components, largest norms first, whose sum is within
  relative error tol of the learned tensor (an upper bound on the ε-rank; no fitting).
* Component norm dynamics (Thm. 1): σ̇_r = N·γ_r·σ_r^(2−2/N), γ_r = <−∇L(W), ⊗_n ŵ_r^n>, exact for
  gradient flow from a balanced init (unbalancedness ε = 0).
* Rank-one trajectory (Thm. 2): from small init, CP follows the trajectory of an R = 1 factorization
  for a long time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..baselines.cp_als import cp_als_full
from ..factorizations.cp import CPFactorization
from ..optim import Optimizer, gradient_descent
from ..train import TrainConfig, train
from .spectra import effective_rank, numerical_rank


def matricize(tensor: Tensor, row_modes: Sequence[int]) -> Tensor:
    """[W]_I for a batch of tensors (B, *shape): (B, ∏_{n∈I} D_n, ∏_{n∉I} D_n), modes in increasing order."""
    order = tensor.dim() - 1
    rows = sorted(set(int(n) for n in row_modes))
    if not rows or rows[0] < 0 or rows[-1] >= order or len(rows) != len(list(row_modes)):
        raise ValueError(f"row_modes must be distinct modes in [0, {order - 1}], got {list(row_modes)}")
    cols = [n for n in range(order) if n not in rows]
    shape = tensor.shape[1:]
    permuted = tensor.permute(0, *(n + 1 for n in rows), *(n + 1 for n in cols))
    return permuted.reshape(tensor.shape[0], math.prod(shape[n] for n in rows), -1)


def matricization_ranks(tensor: Tensor, partitions: Sequence[Sequence[int]], tol: float = 1e-3) -> Tensor:
    """Numerical rank (singular values above tol·σ_max) of [W]_I for each I in ``partitions``; (B, K)."""
    return torch.stack([numerical_rank(torch.linalg.svdvals(matricize(tensor, modes)), tol)
                        for modes in partitions], dim=1)


def matricization_effective_ranks(tensor: Tensor, partitions: Sequence[Sequence[int]]) -> Tensor:
    """Effective rank (Roy & Vetterli 2007) of [W]_I for each I in ``partitions``; (B, K)."""
    return torch.stack([effective_rank(torch.linalg.svdvals(matricize(tensor, modes)))
                        for modes in partitions], dim=1)


def tensor_rank_by_pruning(model: CPFactorization, params: list[Tensor], tol: float = 1e-2) -> Tensor:
    """Per run, the fewest components (largest norms first) with ||W − W_k||_F <= tol·||W||_F; (B,).

    Forms dense tensors (small shapes only).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    factors = params[0]
    order = model.component_norms(params).argsort(dim=-1, descending=True)
    full = model.end_to_end(params).flatten(1)
    limit = tol * torch.linalg.vector_norm(full, dim=1)
    partial = torch.zeros_like(full)
    rank = torch.full((factors.shape[0],), -1, dtype=torch.long)
    for k in range(factors.shape[-1] + 1):
        done = (torch.linalg.vector_norm(full - partial, dim=1) <= limit) & (rank < 0)
        rank = torch.where(done, k, rank)
        if bool((rank >= 0).all()) or k == factors.shape[-1]:
            break
        chosen = factors.gather(3, order[:, k].view(-1, 1, 1, 1).expand(*factors.shape[:3], 1))
        partial = partial + model.end_to_end([chosen]).flatten(1)
    return rank


def tensor_rank_by_als(
    tensor: Tensor, tol: float = 1e-2, max_rank: int = 20, *, restarts: int = 3, seed: int = 0,
    max_iterations: int = 500,
) -> int | None:
    """The smallest r <= ``max_rank`` whose CP-ALS fit (best of ``restarts``) of the dense ``tensor``
    (one tensor, no run dimension) has relative Frobenius error <= tol; ``None`` if none does."""
    if not tol > 0 or max_rank < 1:
        raise ValueError(f"tol must be positive and max_rank >= 1, got {tol}, {max_rank}")
    norm = torch.linalg.vector_norm(tensor.double()).item()
    if norm == 0:
        return 0
    mse_threshold = (tol * norm) ** 2 / tensor.numel()
    for r in range(1, max_rank + 1):
        fit = cp_als_full(tensor.double(), r, restarts=restarts, seed=seed, max_iterations=max_iterations,
                          mse_threshold=mse_threshold)
        if fit.relative_error <= tol:
            return r
    return None


def cp_metrics(model: CPFactorization) -> Callable[[list[Tensor], Tensor], dict[str, Tensor]]:
    """A ``measure`` for ``train`` recording what Razin et al. 2021 track: component norms sorted and by
    fixed index, factor column norms (B, N, R), unbalancedness ε and the effective rank of the norms."""

    def measure(params: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        by_index = model.component_norms(params)
        return {"component_norms": by_index.sort(dim=-1, descending=True).values,
                "component_norms_by_index": by_index, "factor_column_norms": model.factor_column_norms(params),
                "unbalancedness": model.unbalancedness(params), "effective_rank": effective_rank(by_index)}

    return measure


def component_gammas(model: CPFactorization, task, params: list[Tensor]) -> Tensor:
    """γ_r = <−∇L(W), ⊗_n ŵ_r^n> per component by fixed index, (B, R).

    With W(s) = Σ_r s_r ⊗_n w_r^n, ∂L/∂s_r at s = 1 is <∇L(W), ⊗_n w_r^n> = σ_r·<∇L(W), ⊗_n ŵ_r^n>, so
    one backward pass through the task's loss (any task: completion or sensing) gives every γ_r.
    """
    factors = params[0].detach()
    batch, order, _, components = factors.shape
    with torch.enable_grad():
        scales = torch.ones(batch, 1, 1, components, dtype=factors.dtype, device=factors.device,
                            requires_grad=True)
        first_mode = torch.cat([scales, scales.new_ones(batch, order - 1, 1, components).detach()], dim=1)
        loss = task.loss(model, [factors * first_mode])
        (grad,) = torch.autograd.grad(loss.sum(), scales)
    norms = model.component_norms([factors]).to(factors.dtype)
    return -grad.view(batch, components) / norms.clamp_min(torch.finfo(factors.dtype).tiny)


def predicted_component_norm_rates(norms: Tensor, gammas: Tensor, order: int) -> Tensor:
    """σ̇_r = N·γ_r·σ_r^(2−2/N) (Razin et al. 2021, Thm. 1)."""
    return order * gammas * norms.pow(2.0 - 2.0 / order)


@dataclass
class ComponentTrajectory:
    """Component norms and γ's by fixed index at times t = lr·step: times (T,), norms, gammas (T, B, R)."""

    times: Tensor
    norms: Tensor
    gammas: Tensor
    order: int


def record_component_trajectory(
    model: CPFactorization, task, params: list[Tensor], lr: float, steps: int, every: int = 1
) -> ComponentTrajectory:
    """Plain gradient descent for ``steps`` steps (a discretization of gradient flow), recording σ_r and
    γ_r every ``every`` steps."""

    def snapshot(p: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        return {"norms": model.component_norms(p), "gammas": component_gammas(model, task, p)}

    lrs = torch.full((params[0].shape[0],), lr, dtype=params[0].dtype, device=params[0].device)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_every=every, record_per_decade=0,
                         progress=False)
    state = train(model, task, params, gradient_descent(), lrs, config, measure=snapshot)
    rows = [r for r in state.records if r["step"] % every == 0]
    return ComponentTrajectory(torch.tensor([lr * r["step"] for r in rows], dtype=torch.float64),
                               torch.stack([r["norms"] for r in rows]).double(),
                               torch.stack([r["gammas"] for r in rows]).double(), model.order)


def check_component_norm_dynamics(trajectory: ComponentTrajectory) -> Tensor:
    """Relative error between measured and predicted component norm rates per run, (B,).

    Measured: (σ_r(t_{i+1}) − σ_r(t_i))/(t_{i+1} − t_i); predicted: Theorem 1 averaged over both ends
    (trapezoid). Error = ||measured − predicted|| / ||predicted|| over all intervals and components.
    """
    if trajectory.times.numel() < 2:
        raise ValueError("trajectory needs at least two time points")
    rate = predicted_component_norm_rates(trajectory.norms, trajectory.gammas, trajectory.order)
    dt = (trajectory.times[1:] - trajectory.times[:-1]).view(-1, 1, 1)
    measured = (trajectory.norms[1:] - trajectory.norms[:-1]) / dt
    predicted = 0.5 * (rate[1:] + rate[:-1])
    return (torch.linalg.vector_norm(measured - predicted, dim=(0, 2))
            / torch.linalg.vector_norm(predicted, dim=(0, 2)).clamp_min(1e-300))


@dataclass
class RankOneComparison:
    """times (T,) = steps; distance (T, B) = ||W(t) − W̃(t)||_F between the CP run and the rank-one run;
    norm (T, B) = ||W(t)||_F; component (B,) = the component the rank-one run started from."""

    times: Tensor
    distance: Tensor
    norm: Tensor
    component: Tensor


def rank_one_trajectory_distance(
    model: CPFactorization, task, params: list[Tensor], lr: float, steps: int, every: int = 10,
    optimizer: Optimizer | None = None,
) -> RankOneComparison:
    """Train the CP model and an R = 1 model side by side and record their distance (Razin et al. 2021, Thm. 2).

    The rank-one run starts from the component of the CP init with the largest predicted initial growth
    N·γ_r·σ_r^(2−2/N) (the one that escapes zero first); both use ``optimizer`` (default plain gradient
    descent, so that equal steps are equal times) with the same lr. Dense tensors: small shapes only.
    """
    optimizer = optimizer or gradient_descent()
    gammas = component_gammas(model, task, params)
    norms = model.component_norms(params).to(gammas.dtype)
    leader = predicted_component_norm_rates(norms, gammas, model.order).argmax(dim=-1)
    factors = params[0]
    start = factors.gather(3, leader.view(-1, 1, 1, 1).expand(*factors.shape[:3], 1))
    rank_one = CPFactorization(model.shape, components=1, init_mean=model.init_mean)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_every=every, record_per_decade=0,
                         progress=False)
    lrs = torch.full((factors.shape[0],), lr, dtype=factors.dtype, device=factors.device)

    def dense(m: CPFactorization) -> Callable[[list[Tensor], Tensor], dict[str, Tensor]]:
        return lambda p, loss: {"w": m.end_to_end(p)}

    full = train(model, task, params, optimizer, lrs, config, measure=dense(model)).records
    single = train(rank_one, task, [start.clone()], optimizer, lrs, config, measure=dense(rank_one)).records
    rows = [(a, b) for a, b in zip(full, single) if a["step"] % every == 0]
    w = torch.stack([a["w"] for a, _ in rows]).flatten(2)
    w1 = torch.stack([b["w"] for _, b in rows]).flatten(2)
    return RankOneComparison(torch.tensor([a["step"] for a, _ in rows]), torch.linalg.vector_norm(w - w1, dim=2),
                             torch.linalg.vector_norm(w, dim=2), leader)
