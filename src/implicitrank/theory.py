"""Theory checks that train: record a gradient-descent trajectory for ``measure.check_rates``, and compare a CP
run with the rank-one run it follows from small init.

These run the training loop, so they live above it (``measure`` itself only measures).

References
----------
S. Arora, N. Cohen, W. Hu, Y. Luo, NeurIPS 2019, Theorem 3; N. Razin, A. Maman, N. Cohen, ICML 2021,
Theorems 1 and 2; N. Razin, A. Maman, N. Cohen, ICML 2022, Theorem 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .factorizations import CPFactorization, is_positive_integer
from .measure.dynamics import Trajectory
from .measure.spectra import scaled_norm
from .optim import Optimizer, gradient_descent
from .train import TrainConfig, train

__all__ = ["RankOneComparison", "rank_one_trajectory_distance", "record_trajectory"]


def record_trajectory(model, task, params: list[Tensor], lr: float, steps: int, every: int = 1) -> Trajectory:
    """Plain gradient descent for ``steps`` steps, recording the parameters, W and ∇L(W) every ``every`` steps.

    Gradient descent is a discretization of gradient flow, with time t = lr·step. The task needs
    ``dense_loss_and_grad`` (small tensors).

    Parameters
    ----------
    model : Factorization
        The factorization.
    task : Task
        The task, with ``dense_loss_and_grad``.
    params : list of Tensor
        Initial parameters, leading run dimension B.
    lr : float
        The learning rate (one for all runs).
    steps : int
        Number of steps, >= ``every``.
    every : int, optional
        Record every ``every`` >= 1 steps. Default 1.

    Returns
    -------
    Trajectory
        Times lr·step, parameters, W(t) and ∇L(W(t)) at the recorded steps.

    Raises
    ------
    ValueError
        When ``steps`` or ``every`` is not an integer, ``steps < every`` or ``every < 1``.
    """
    if not (is_positive_integer(steps) and is_positive_integer(every)) or steps < every:
        raise ValueError(f"need integers steps >= every >= 1, got steps={steps!r}, every={every!r}")

    def snapshot(p: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        w = model.end_to_end(p)
        return {"end_to_end": w, "gradient": task.dense_loss_and_grad(w)[1]} | {
            f"param{j}": q.clone() for j, q in enumerate(p)}

    lrs = torch.full((params[0].shape[0],), lr, dtype=params[0].dtype, device=params[0].device)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_every=every, record_per_decade=0,
                         progress=False)
    rows = [r for r in train(model, task, params, gradient_descent(), lrs, config, measure=snapshot).records
            if r["step"] % every == 0]
    return Trajectory(torch.tensor([lr * r["step"] for r in rows], dtype=torch.float64),
                      [torch.stack([r[f"param{j}"] for r in rows]) for j in range(len(params))],
                      torch.stack([r["end_to_end"] for r in rows]), torch.stack([r["gradient"] for r in rows]))


@dataclass(frozen=True)
class RankOneComparison:
    """A CP run against the rank-one run started from its leading component.

    Attributes
    ----------
    times : Tensor
        (T,) the recorded steps.
    distance : Tensor
        (T, B) ||W(t) − W̃(t)||_F between the CP run and the rank-one run.
    norm : Tensor
        (T, B) ||W(t)||_F of the CP run.
    component : Tensor
        (B,) the component the rank-one run started from.
    """

    times: Tensor
    distance: Tensor
    norm: Tensor
    component: Tensor


def rank_one_trajectory_distance(
    model: CPFactorization, task, params: list[Tensor], lr: float, steps: int, every: int = 10,
    optimizer: Optimizer | None = None,
) -> RankOneComparison:
    """Train the CP model and an R = 1 model side by side and record their distance.

    The rank-one run starts from the component of the CP init with the largest predicted initial growth
    (``model.predicted_rates``: the one that escapes zero first); both use ``optimizer`` (default plain gradient
    descent, so that equal steps are equal times) with the same lr. Dense tensors: small shapes only.

    Parameters
    ----------
    model : CPFactorization
        The CP factorization.
    task : Task
        The task, with ``dense_loss_and_grad``.
    params : list of Tensor
        The CP init, leading run dimension B.
    lr : float
        The learning rate of both runs.
    steps : int
        Number of steps.
    every : int, optional
        Record every ``every`` steps. Default 10.
    optimizer : Optimizer, optional
        The optimizer of both runs; None means plain gradient descent.

    Returns
    -------
    RankOneComparison
        Distances and norms at the recorded steps, and the leading component per run.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, Theorem 2.
    """
    optimizer = optimizer or gradient_descent()
    gradient = task.dense_loss_and_grad(model.end_to_end(params))[1]
    leader = model.predicted_rates(params, gradient).argmax(dim=-1)
    factors = params[0]
    start = factors.gather(3, leader.view(-1, 1, 1, 1).expand(*factors.shape[:3], 1))
    rank_one = CPFactorization(model.shape, components=1)
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
    return RankOneComparison(torch.tensor([a["step"] for a, _ in rows]), scaled_norm(w - w1, 2), scaled_norm(w, 2),
                             leader)
