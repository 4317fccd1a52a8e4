"""Gradient flow θ̇ = −∇L(θ), integrated by an adaptive explicit Runge–Kutta method (``method="gradient-flow"``).

The papers' phenomena (incremental learning of singular values / component norms, Arora et al. 2019
Thm. 3; Razin et al. 2021, 2022) are statements about gradient flow; plain GD with a small learning
rate is one (expensive) way to follow it: GD at lr after k steps is the flow at time t = lr·k. Here
the flow is integrated directly with an embedded Runge–Kutta pair (Dormand & Prince 1980, 5(4), the
default; or Bogacki & Shampine 1989, 3(2)), B runs at once, each with its own step size h_b chosen
by error control:

    err_b = sqrt(mean_i (e_i / (atol + rtol·max(|θ_i|, |θ_i^new|)))²)   over all parameters of run b,

where e is the difference of the two embedded solutions; a step is accepted when err_b <= 1 and the
next step is h_b·clamp(0.9·err_b^(−1/(q+1)), 0.2, 10) (q the lower order; Hairer, Nørsett & Wanner,
Solving ODEs I, §II.4). Steps therefore shrink where singular values take off and grow on plateaus;
once large singular values have been learned, the step is capped instead by the explicit method's
stability limit h·λ_max(∇²L) ≈ 3.3 (dopri5; ≈ 2.5 for bosh3), which then sets the pace of later
plateaus and of the final convergence (the problem is stiff there).

One ``TrainState.step`` is one accepted step of every active run: a run whose attempt is rejected
retries with a smaller step (the others idle at h = 0) until all active runs have accepted, so the
host synchronizes once per attempt. Stopping (loss threshold, NaN/inf, ``max_steps`` accepted
steps), records, checkpoints and progress are ``train.run_loop``'s, shared with ``train.train``; each
record also carries ``time`` (B,), the flow time t of every run, and ``gradient_evaluations``, the
batched gradient evaluations so far.
A run whose step size underflows (h < 1e-12·max(t, 1): the flow blows up or the problem is too stiff)
is stopped as diverged with loss NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import UsageError
from .factorizations import loss_and_grad
from .optim import Optimizer, per_run
from .tasks import check_task_matches
from .train import LossAndGrad, Measure, TrainConfig, TrainState, record, run_loop, start

__all__ = ["BOGACKI_SHAMPINE", "DORMAND_PRINCE", "TABLEAUS", "Tableau", "integrate"]


@dataclass(frozen=True)
class Tableau:
    """An embedded explicit Runge–Kutta pair with the first-same-as-last property.

    Attributes
    ----------
    name : str
        The registry name (``dopri5``, ``bosh3``).
    a : tuple of tuple of float
        The stage coefficients (row i: the coefficients of stages 0..i−1 for stage i); the last row is the
        higher-order solution, so the last stage is f at the new point (FSAL).
    error : tuple of float
        b − b̂, the coefficients of the error estimate over all stages.
    order : int
        The lower order q of the pair (the error estimate is O(h^(q+1))).
    """

    name: str
    a: tuple[tuple[float, ...], ...]
    error: tuple[float, ...]
    order: int


DORMAND_PRINCE = Tableau(
    "dopri5",
    a=((1 / 5,),
       (3 / 40, 9 / 40),
       (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    error=(35 / 384 - 5179 / 57600, 0.0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640,
           -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40),
    order=4,
)

BOGACKI_SHAMPINE = Tableau(
    "bosh3",
    a=((1 / 2,),
       (0.0, 3 / 4),
       (2 / 9, 1 / 3, 4 / 9)),
    error=(2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8),
    order=2,
)

TABLEAUS = {t.name: t for t in (DORMAND_PRINCE, BOGACKI_SHAMPINE)}

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_UNDERFLOW = 1e-12


def _flow_optimizer() -> Optimizer:
    """A placeholder so ``train.start`` can build the state; the integrator keeps its own state."""
    return Optimizer("gradient-flow", lambda params: {}, lambda grads, state, lr: (grads, state))


def integrate(
    model,
    task,
    params: list[Tensor] | None,
    config: TrainConfig,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-8,
    method: str = "dopri5",
    first_step: float | None = None,
    measure: Measure | None = None,
    state: TrainState | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    objective: LossAndGrad | None = None,
) -> TrainState:
    """Follow the gradient flow θ̇ = −∇L(θ) of B runs of ``model`` on ``task``.

    Each run goes until it converges, diverges or has made ``config.max_steps`` accepted steps (see the module
    docstring); stopping, records, checkpoints and progress are ``train.run_loop``'s.

    Parameters
    ----------
    model : Factorization
        The factorization.
    task : Task or None
        The task (checked against the model and parameters); may be None when ``objective`` is given.
    params : list of Tensor or None
        The (B, ...) parameters to start from (ignored when ``state`` is given).
    config : TrainConfig
        When to stop, record and checkpoint; ``max_steps`` counts accepted steps.
    rtol, atol : float, optional
        Relative and absolute tolerances of the local error per step (parameters' units; atol should be well
        below the size of the initial parameters' entries). Defaults 1e-4 and 1e-8; rtol must be at least 10×
        the dtype's machine epsilon.
    method : str, optional
        ``"dopri5"`` (Dormand–Prince 5(4), default) or ``"bosh3"`` (Bogacki–Shampine 3(2)).
    first_step : float, optional
        Initial step size for every run; None: Hairer et al.'s estimate per run.
    measure : callable, optional
        Metrics recorded with the train loss, ``measure(params, loss) -> {name: (B, ...)}``.
    state : TrainState, optional
        Continue a checkpointed batch (then ``params`` is ignored); ``state.optimizer_state`` holds the
        integrator's per-run time, step size, last derivative and counters.
    on_checkpoint : callable, optional
        Called with the state on the checkpoint schedule.
    objective : callable, optional
        Overrides the loss-and-gradient function ``objective(params) -> (loss (B,), grads)``.

    Returns
    -------
    TrainState
        Final parameters, per-run status and records (each with ``time`` and ``gradient_evaluations``).

    Raises
    ------
    UsageError
        On an unknown method, non-positive tolerances or first step, rtol below 10× machine epsilon, neither
        ``params`` nor ``state``, or a task that does not match the model and parameters.

    Notes
    -----
    The pairs are Dormand & Prince's 5(4) ("A family of embedded Runge–Kutta formulae", J. Comput. Appl. Math.,
    1980) and Bogacki & Shampine's 3(2) ("A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett., 1989).

    References
    ----------
    E. Hairer, S. P. Nørsett, G. Wanner, "Solving Ordinary Differential Equations I", Springer 1993, §II.4
    (step size control, initial step).
    """
    if method not in TABLEAUS:
        raise UsageError(f"method must be one of {sorted(TABLEAUS)}, got {method!r}")
    if not rtol > 0 or not atol > 0:
        raise UsageError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    if first_step is not None and not first_step > 0:
        raise UsageError(f"first_step must be positive, got {first_step}")
    if state is None and params is None:
        raise UsageError("params must be given unless a state is resumed")
    dtype = (state.params if state is not None else params)[0].dtype
    if rtol < 10 * torch.finfo(dtype).eps:
        # Below this the error estimate is roundoff: every step would be rejected until h underflows.
        raise UsageError(f"rtol must be >= 10x the machine epsilon of {dtype} ({10 * torch.finfo(dtype).eps:.1e}), "
                         f"got {rtol}; use float64 parameters for tighter tolerances")
    if task is not None:
        check_task_matches(model, task, params if state is None else state.params)
    tableau = TABLEAUS[method]
    objective = objective or (lambda p: loss_and_grad(model, p, task))
    if state is None:
        state = _start(params, objective, tableau, rtol, atol, first_step)
    return run_loop(state, config, lambda s: s.optimizer_state["loss"],
                    lambda s: _accepted_step(s, objective, tableau, rtol, atol), measure=measure,
                    on_checkpoint=on_checkpoint, record_step=_record, syncs_every_step=True,
                    describe=lambda s: {"t": f"{float(s.optimizer_state['time'].max()):.4g}"})


def _start(params: list[Tensor], objective: LossAndGrad, tableau: Tableau, rtol: float, atol: float,
           first_step: float | None) -> TrainState:
    state = start(params, _flow_optimizer())
    loss, grads = objective(params)
    derivative = [-g for g in grads]
    if first_step is None:
        step, extra = _initial_step(params, derivative, objective, tableau.order, rtol, atol), 1
    else:
        step, extra = torch.full_like(loss, first_step), 0
    state.optimizer_state = {"time": torch.zeros_like(loss), "step_size": step, "derivative": derivative,
                             "loss": loss, "gradient_evaluations": torch.tensor(1 + extra),
                             "rejected": torch.zeros_like(loss, dtype=torch.long)}
    return state


def _scaled_norm(values: list[Tensor], scales: list[Tensor]) -> Tensor:
    """Per-run RMS of values/scales over every parameter entry, (B,)."""
    total = sum(v.div(s).pow(2).flatten(1).sum(1) for v, s in zip(values, scales))
    count = sum(v[0].numel() for v in values)
    return (total / count).sqrt()


def _initial_step(params: list[Tensor], derivative: list[Tensor], objective: LossAndGrad, order: int,
                  rtol: float, atol: float) -> Tensor:
    """Hairer, Nørsett & Wanner, Solving ODEs I, §II.4: a first step from ||θ||, ||θ̇|| and a trial Euler step."""
    scales = [atol + rtol * p.abs() for p in params]
    d0, d1 = _scaled_norm(params, scales), _scaled_norm(derivative, scales)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    trial = [p + per_run(h0, p) * f for p, f in zip(params, derivative)]
    _, trial_grads = objective(trial)
    d2 = _scaled_norm([-g - f for g, f in zip(trial_grads, derivative)], scales) / h0
    biggest = torch.maximum(d1, d2)
    h1 = torch.where(biggest <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                     (0.01 / biggest.clamp_min(1e-300)) ** (1.0 / (order + 1)))
    return torch.minimum(100 * h0, h1)


def _accepted_step(state: TrainState, objective: LossAndGrad, tableau: Tableau, rtol: float, atol: float) -> None:
    """Attempt steps until every active run has accepted one (rejected runs retry with a smaller step)."""
    flow = state.optimizer_state
    pending = state.active.clone()
    exponent = -1.0 / (tableau.order + 1)
    while True:
        h = torch.where(pending, flow["step_size"], torch.zeros_like(flow["step_size"]))
        new_params, new_loss, new_derivative, error = _attempt(state.params, flow["derivative"], h, objective, tableau)
        flow["gradient_evaluations"] = flow["gradient_evaluations"] + len(tableau.a)
        scales = [atol + rtol * torch.maximum(p.abs(), q.abs()) for p, q in zip(state.params, new_params)]
        err = _scaled_norm(error, scales)
        accept = pending & (err <= 1.0)
        factor = (_SAFETY * err.clamp_min(1e-10).pow(exponent)).nan_to_num(nan=_MIN_FACTOR)
        factor = torch.where(accept, factor.clamp(_MIN_FACTOR, _MAX_FACTOR), factor.clamp(_MIN_FACTOR, 1.0))
        state.params = [torch.where(per_run(accept, p), q, p) for p, q in zip(state.params, new_params)]
        flow["derivative"] = [torch.where(per_run(accept, f), g, f) for f, g in zip(flow["derivative"], new_derivative)]
        flow["loss"] = torch.where(accept, new_loss, flow["loss"])
        flow["time"] = flow["time"] + torch.where(accept, h, torch.zeros_like(h))
        flow["rejected"] = flow["rejected"] + (pending & ~accept).long()
        flow["step_size"] = torch.where(pending, flow["step_size"] * factor, flow["step_size"])
        # Accepted or not, a step size this small relative to t means the flow blows up (or is hopelessly stiff).
        underflow = state.active & (flow["step_size"] < _UNDERFLOW * flow["time"].clamp_min(1.0))
        flow["loss"] = torch.where(underflow, torch.full_like(flow["loss"], math.nan), flow["loss"])
        pending = pending & ~accept & ~underflow
        if not bool(pending.any()):
            return


def _attempt(params: list[Tensor], derivative: list[Tensor], h: Tensor, objective: LossAndGrad,
             tableau: Tableau) -> tuple[list[Tensor], Tensor, list[Tensor], list[Tensor]]:
    """One Runge–Kutta step of size h (B,) from params; returns the new point, its loss and derivative
    (the last stage, FSAL) and the embedded error estimate."""
    stages = [derivative]
    for row in tableau.a:
        point = [p + per_run(h, p) * sum(c * k[i] for c, k in zip(row, stages) if c != 0.0)
                 for i, p in enumerate(params)]
        loss, grads = objective(point)
        stages.append([-g for g in grads])
    error = [per_run(h, p) * sum(c * k[i] for c, k in zip(tableau.error, stages) if c != 0.0)
             for i, p in enumerate(params)]
    return point, loss, stages[-1], error


def _record(state: TrainState, measure: Measure | None) -> None:
    before = len(state.records)
    record(state, measure)
    if len(state.records) > before:
        flow = state.optimizer_state
        state.records[-1]["time"] = flow["time"].detach().cpu()
        state.records[-1]["gradient_evaluations"] = int(flow["gradient_evaluations"])
