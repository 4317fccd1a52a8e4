"""Gradient flow θ̇ = −∇L(θ), integrated by an adaptive explicit Runge–Kutta method (``integrate(..., method=)``:
``dopri5``, ``bosh3`` or ``rkc``; on the command line and in ``RunConfig``, ``optimizer="gradient-flow"``).

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
batched gradient evaluations so far. The state's ``optimizer_state["evaluations"]`` (B,) counts the gradient
evaluations each run's own steps took (as if it ran alone: the stages of its attempts and its spectral-radius
estimates), the flow's cost in the unit of an optimizer's step.
A run whose step size underflows (h < 1e-12·max(t, 1): the flow blows up or the problem is too stiff)
is stopped as diverged with loss NaN.

``method="rkc"`` is for that stiff phase: the Runge–Kutta–Chebyshev method (van der Houwen & Sommeijer 1980;
Sommeijer, Shampine & Verwer 1997), second order, explicit, with s stages chosen per step so that its real stability
interval [−0.653(s²−1), 0] covers h·ρ(∇²L). A gradient flow's Jacobian −∇²L is symmetric, so its spectrum is real,
which is the case these methods are built for: s stages (s gradient evaluations) reach a step ∝ s² instead of
dopri5's 3.3/λ_max per 6, and no linear systems are solved (a Rosenbrock/implicit step would need two solves
with I + γh∇²L per step, each ~√(γhλ_max) Hessian-vector products, on a Hessian that is indefinite at the saddles
the flow passes). ρ, the spectral radius of ∇²L per run, is estimated by a nonlinear power method on gradient
differences every 25 steps and after a rejection. Being second order it takes more steps than dopri5
where accuracy sets them (take-offs), and its damping of stiff components is mild, so use a tolerance ~10× tighter
for the same end point: on the paper grid's depth-4 completion runs (``benchmarks/bench_stiff_flow.py``, 4 init
scales, float32) rkc at rtol 1e-5 matched dopri5's and global RMSprop's final errors within 2% with 2.8× fewer
gradient evaluations than dopri5 (rtol 1e-4) and 4.0× fewer than global RMSprop (lr 1e-3), 2.0× less CPU than the
latter; at rtol 1e-4 its errors were up to 24% lower than theirs. In a batch, a stage computes only the runs still
in their own stages (the runs ordered by decreasing stage count), so each run costs its own s evaluations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import UsageError
from .factorizations import loss_and_grad
from .optim import Optimizer, per_run
from .tasks import check_task_matches
from .train import LossAndGrad, Measure, TrainConfig, TrainState, put_runs, record, run_loop, select_runs, start

# objective(params) over the batch, or objective(params, runs) over the runs at the (B',) index ``runs`` from their
# (B', ...) parameters (``_active_runs_objective``): what rkc's stages and power method call.
RunsLossAndGrad = Callable[..., tuple[Tensor, list[Tensor]]]

__all__ = ["BOGACKI_SHAMPINE", "DORMAND_PRINCE", "METHODS", "TABLEAUS", "Tableau", "integrate"]


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
METHODS = (*TABLEAUS, "rkc")

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_UNDERFLOW = 1e-12
# RKC (Sommeijer, Shampine & Verwer 1997, rkc.f): damping ε = 2/13 gives the stability interval ≈ 0.653(s²−1);
# the spectral radius is re-estimated every 25 attempts, with a safety factor 1.2.
_RKC_DAMPING, _RKC_MAX_STAGES, _RKC_RADIUS_EVERY, _RKC_RADIUS_SAFETY = 2 / 13, 250, 25, 1.2
_POWER_ITERATIONS, _POWER_TOLERANCE = 20, 0.01


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
    docstring); stopping, records, checkpoints and progress are ``train.run_loop``'s. Once a run has stopped, it
    leaves the batch the steps work on (its gradients are no longer computed: the task's ``runs`` gives the runs
    still going), bitwise without effect on the others on the CPU (CUDA's atomic adds may change the last bits);
    records, checkpoints and the result show every run.

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
        ``"dopri5"`` (Dormand–Prince 5(4), default), ``"bosh3"`` (Bogacki–Shampine 3(2)) or ``"rkc"``
        (Runge–Kutta–Chebyshev, second order, for the stiff phase after take-off; see the module docstring).
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
    1980) and Bogacki & Shampine's 3(2) ("A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett., 1989). RKC is
    Sommeijer, Shampine & Verwer's ("RKC: an explicit solver for parabolic PDEs", J. Comput. Appl. Math., 1997):
    the scheme, damping ε = 2/13, stage count, error estimate and spectral radius estimate of their ``rkc.f``.

    References
    ----------
    E. Hairer, S. P. Nørsett, G. Wanner, "Solving Ordinary Differential Equations I", Springer 1993, §II.4
    (step size control, initial step). B. P. Sommeijer, L. F. Shampine, J. G. Verwer, "RKC: an explicit solver for
    parabolic PDEs", J. Comput. Appl. Math. 88, 1997, §2–3 (the scheme, its error estimate, the spectral radius).
    E. Hairer, G. Wanner, "Solving Ordinary Differential Equations II", Springer 1996, §IV.2 (stabilized explicit
    Runge–Kutta methods; §IV.7 for the Rosenbrock methods not chosen here).
    """
    if method not in METHODS:
        raise UsageError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if not rtol > 0 or not atol > 0:
        raise UsageError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    if first_step is not None and not 0 < first_step < math.inf:  # inf: no step is ever accepted, a hang
        raise UsageError(f"first_step must be positive and finite, got {first_step}")
    if state is None and params is None:
        raise UsageError("params must be given unless a state is resumed")
    dtype = (state.params if state is not None else params)[0].dtype
    if rtol < 10 * torch.finfo(dtype).eps:
        # Below this the error estimate is roundoff: every step would be rejected until h underflows.
        raise UsageError(f"rtol must be >= 10x the machine epsilon of {dtype} ({10 * torch.finfo(dtype).eps:.1e}), "
                         f"got {rtol}; use float64 parameters for tighter tolerances")
    if task is not None:
        check_task_matches(model, task, params if state is None else state.params)
    integrating: list[TrainState] = []  # the state once there is one: its ``active`` runs need gradients
    batch = (state.params if state is not None else params)[0].shape[0]
    if objective is None:
        objective = _active_runs_objective(model, task, integrating, batch)
    else:
        given = objective

        def objective(params: list[Tensor], runs: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
            # A given objective computes every run: the others at zeros, dropped.
            return given(params) if runs is None else _through_full(given, params, runs, batch)
    if method == "rkc":
        order, attempt, before = 2, _rkc_attempt, _rkc_radius
    else:
        tableau = TABLEAUS[method]
        order, before = tableau.order, None

        def attempt(params, flow, h, objective, rtol, atol):
            flow["gradient_evaluations"] = flow["gradient_evaluations"] + len(tableau.a)
            _count(flow, len(tableau.a) * (h > 0))
            point, loss, derivative, error = _attempt(params, flow["derivative"], h, objective, tableau)
            return point, loss, derivative, _error_norm(error, params, point, rtol, atol)

    if state is None:
        state = _start(params, objective, order, rtol, atol, first_step)
    integrating.append(state)
    work = _Working(state)

    def working_objective(params: list[Tensor], runs: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        if work.live is None:
            return objective(params, runs)
        return objective(params, work.live if runs is None else work.live[runs])

    def advance(state: TrainState) -> None:
        work.compact()
        _accepted_step(work.state, working_objective, order, attempt, rtol, atol, before)

    def record_step(state: TrainState, measure: Measure | None) -> None:
        work.write_back()
        _record(state, measure)

    def checkpoint(state: TrainState) -> None:
        work.write_back()
        on_checkpoint(state)

    try:
        return run_loop(state, config, lambda s: work.flow_value("loss"), advance, measure=measure,
                        on_checkpoint=checkpoint if on_checkpoint is not None else None, record_step=record_step,
                        syncs_every_step=True, describe=lambda s: {"t": f"{float(work.flow_value('time').max()):.4g}"})
    finally:
        work.write_back()


class _Working:
    """The runs the integrator steps: all B of ``state`` until some stop, then only those still active, copied out
    (compaction, as ``train``'s batch does; the integrator syncs every step, so it compacts as soon as a run stops).
    A stopped run then costs nothing: no rows in the stages, the reordering, the error norm or the step's bookkeeping.
    ``state`` is brought up to date by ``write_back`` (before every record and checkpoint, and at the end); each run's
    arithmetic is the same in any batch, so the results are bitwise those of the full batch.

    Parameters
    ----------
    state : TrainState
        The full batch, with the integrator's ``optimizer_state``.
    """

    def __init__(self, state: TrainState) -> None:
        self.full, self.state, self.live = state, state, None

    def compact(self) -> None:
        """Drop the runs that stopped since the last call (a host sync)."""
        full = self.full
        live = full.active.nonzero().squeeze(1)
        working = full.active.shape[0] if self.live is None else self.live.shape[0]
        if live.shape[0] in (0, working):
            return
        self.write_back()
        batch = full.active.shape[0]
        self.live = live
        self.state = TrainState(full.step, select_runs(full.params, live, batch),
                                select_runs(full.optimizer_state, live, batch), full.active[live],
                                full.stopped_at[live], full.loss[live])

    def flow_value(self, name: str) -> Tensor:
        """The integrator's (B,) ``name`` ("loss", "time") of every run: the working runs' current values, the others'
        as they stopped."""
        value = self.state.optimizer_state[name]
        return value if self.live is None else self.full.optimizer_state[name].index_put((self.live,), value)

    def write_back(self) -> None:
        """Copy the working runs' parameters and integrator state into the full state (out of place: the tensors
        the full state had, possibly the caller's, are not written)."""
        if self.live is None:
            return
        batch = self.full.active.shape[0]
        self.full.params = put_runs(self.full.params, self.state.params, self.live, batch)
        self.full.optimizer_state = put_runs(self.full.optimizer_state, self.state.optimizer_state, self.live, batch)


def _active_runs_objective(model, task, integrating: list[TrainState], batch: int) -> RunsLossAndGrad:
    """The loss and gradients of the runs still going only: runs that stopped get zeros (their steps have h = 0 and
    are never accepted), so a batch whose runs converge at different times computes only those still integrating.
    ``objective(params, runs)`` computes only the runs at ``runs``, a (B',) index, from their (B', ...) parameters
    (RKC's stages: a run past its own last stage, or idle at h = 0, needs no gradient; the power method: runs whose
    estimate has converged).

    ``integrating`` holds the run state once it exists (until then every run is computed). Each run's
    arithmetic is the same in any batch, so this is bitwise the full batch's result for every run still going.

    Parameters
    ----------
    model : Factorization
        The factorization whose closed-form (or autograd) gradients are taken.
    task : Task
        The full B-run task; its ``runs`` gives the sub-task of the runs still going.
    integrating : list of TrainState
        Empty, or the state being integrated, whose ``active`` is read at each call.
    batch : int
        B, the number of runs.

    Returns
    -------
    callable
        ``objective(params, runs=None) -> (loss, grads)``: over the full batch (B,), or over ``runs`` (B',).
    """
    tasks: dict[tuple[int, ...], object] = {}  # the sub-tasks of the runs met (a few orders and subsets)

    def of_runs(runs: Tensor):
        key = tuple(runs.tolist())
        if key not in tasks:
            if len(tasks) >= 64:
                tasks.clear()
            tasks[key] = task.runs(runs)
        return tasks[key]

    def at_runs(params: list[Tensor], runs: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        return loss_and_grad(model, params, task if runs is None else of_runs(runs))

    def objective(params: list[Tensor], runs: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        if not hasattr(task, "runs"):
            full = functools.partial(loss_and_grad, model, task=task)
            return full(params) if runs is None else _through_full(full, params, runs, batch)
        if runs is not None or not integrating:
            return at_runs(params, runs)
        return _at_runs(at_runs, params, integrating[-1].active)

    return objective


def _through_full(objective: LossAndGrad, params: list[Tensor], runs: Tensor, batch: int
                  ) -> tuple[Tensor, list[Tensor]]:
    """A full-batch objective at the runs ``runs`` (B',) of parameters given for those runs only: the other runs are
    computed at zeros and dropped."""
    full = [p.new_zeros((batch, *p.shape[1:])).index_copy_(0, runs, p) for p in params]
    loss, grads = objective(full)
    return loss[runs], [g.index_select(0, runs) for g in grads]


def _at_runs(objective: RunsLossAndGrad, params: list[Tensor], wanted: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The objective at the runs of the (B,) mask ``wanted`` only, zeros for the others."""
    if bool(wanted.all()):
        return objective(params)
    live = wanted.nonzero().squeeze(1)
    loss, grads = objective([p.index_select(0, live) for p in params], live)
    return (loss.new_zeros(wanted.shape[0]).index_copy_(0, live, loss),
            [p.new_zeros(p.shape).index_copy_(0, live, g) for p, g in zip(params, grads)])


def _start(params: list[Tensor], objective: LossAndGrad, order: int, rtol: float, atol: float,
           first_step: float | None) -> TrainState:
    state = start(params, _flow_optimizer())
    params = state.params  # detached
    loss, grads = objective(params)
    derivative = [-g for g in grads]
    if first_step is None:
        step, extra = _initial_step(params, derivative, objective, order, rtol, atol), 1
    else:
        step, extra = torch.full_like(loss, first_step), 0
    state.optimizer_state = {"time": torch.zeros_like(loss), "step_size": step, "derivative": derivative,
                             "loss": loss, "gradient_evaluations": torch.tensor(1 + extra),
                             "evaluations": torch.full_like(loss, 1 + extra, dtype=torch.long),
                             "rejected": torch.zeros_like(loss, dtype=torch.long)}
    return state


def _scaled_norm(values: list[Tensor], scales: list[Tensor]) -> Tensor:
    """Per-run RMS of values/scales over every parameter entry, (B,)."""
    total = sum(v.div(s).pow(2).flatten(1).sum(1) for v, s in zip(values, scales))
    count = sum(v[0].numel() for v in values)
    return (total / count).sqrt()


def _error_norm(error: list[Tensor], params: list[Tensor], new_params: list[Tensor], rtol: float,
                atol: float) -> Tensor:
    """``_scaled_norm(error, scales)`` with scales atol + rtol·max(|θ|, |θ^new|), computed in ``error``'s buffers
    (overwritten) and |θ|, |θ^new| (two temporaries per parameter): the same operations in the same order, bitwise
    the same."""
    total = 0
    for e, p, q in zip(error, params, new_params):
        scale = p.abs()
        torch.maximum(scale, q.abs(), out=scale)
        total = total + e.div_(scale.mul_(rtol).add_(atol)).pow_(2).flatten(1).sum(1)
    return (total / sum(e[0].numel() for e in error)).sqrt()


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


Attempt = Callable[[list[Tensor], dict, Tensor, RunsLossAndGrad, float, float],
                   tuple[list[Tensor], Tensor, list[Tensor], Tensor]]


def _accepted_step(state: TrainState, objective: RunsLossAndGrad, order: int, attempt: Attempt, rtol: float,
                   atol: float, before: Callable[[TrainState, RunsLossAndGrad, Tensor], None] | None = None) -> None:
    """Attempt steps until every active run has accepted one (rejected runs retry with a smaller step).

    ``attempt(params, flow, h, objective, rtol, atol)`` makes one step of size h (B,), counts its gradient
    evaluations in ``flow`` and returns the new point, its loss and derivative (each a new tensor, (B, ...)) and
    the error norm (B,) of ``_error_norm``; ``before(state, objective, rejected)`` runs before each attempt (RKC's
    spectral radius)."""
    flow = state.optimizer_state
    # A run that starts the step with no usable step size (a NaN one from a non-finite start) cannot attempt: rkc
    # would take it for idle (h > 0 is false) and accept it, or size its stages from it.
    pending = state.active & ~_stop_stalled(state)
    if not bool(pending.any()):
        return
    exponent = -1.0 / (order + 1)
    rejected = torch.zeros_like(pending)
    while True:
        if before is not None:
            before(state, objective, rejected)
        h = torch.where(pending, flow["step_size"], torch.zeros_like(flow["step_size"]))
        new_params, new_loss, new_derivative, err = attempt(state.params, flow, h, objective, rtol, atol)
        accept = pending & (err <= 1.0)
        factor = (_SAFETY * err.clamp_min(1e-10).pow(exponent)).nan_to_num(nan=_MIN_FACTOR)
        factor = torch.where(accept, factor.clamp(_MIN_FACTOR, _MAX_FACTOR), factor.clamp(_MIN_FACTOR, 1.0))
        if not bool(accept.all()):
            # The runs that keep their point and derivative (rejected, idle, stopped) get them back row by row,
            # in the attempt's own new tensors: a copy of those rows only, where a torch.where over the batch read
            # and wrote every run's parameters twice (bitwise the same result).
            kept = (~accept).nonzero().squeeze(1)
            for old, new in zip([*state.params, *flow["derivative"]], [*new_params, *new_derivative]):
                new.index_copy_(0, kept, old.index_select(0, kept))
        state.params, flow["derivative"] = new_params, new_derivative
        flow["loss"] = torch.where(accept, new_loss, flow["loss"])
        flow["time"] = flow["time"] + torch.where(accept, h, torch.zeros_like(h))
        flow["rejected"] = flow["rejected"] + (pending & ~accept).long()
        flow["step_size"] = torch.where(pending, flow["step_size"] * factor, flow["step_size"])
        underflow = _stop_stalled(state)  # accepted or not
        rejected = pending & ~accept
        pending = pending & ~accept & ~underflow
        if not bool(pending.any()):
            return


def _stop_stalled(state: TrainState) -> Tensor:
    """Stop as diverged (loss NaN) the active runs whose step size underflows, and return them, (B,).

    A step size this small relative to t means the flow blows up (or is hopelessly stiff); a NaN step size (a
    non-finite start or error estimate) too, which no comparison with `<` would stop."""
    flow = state.optimizer_state
    stalled = state.active & ~(flow["step_size"] >= _UNDERFLOW * flow["time"].clamp_min(1.0))
    flow["loss"] = torch.where(stalled, torch.full_like(flow["loss"], math.nan), flow["loss"])
    return stalled


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


@functools.cache
def _rkc_coefficients(stages: int) -> Tensor:
    """RKC's (μ_j, ν_j, μ̃_j, γ̃_j) for j = 1..s, a (``_RKC_MAX_STAGES`` + 1, 4) tensor (row 0 unused; row 1:
    μ̃_1 only; zeros after row s, so that runs with different s share one stage loop). With w0 = 1 + ε/s²,
    w1 = T_s'(w0)/T_s''(w0) and b_j = T_j''(w0)/T_j'(w0)² (b_0 = b_1 = b_2; T_j the Chebyshev polynomials):
    μ_j = 2w0·b_j/b_{j−1}, ν_j = −b_j/b_{j−2}, μ̃_j = 2w1·b_j/b_{j−1}, γ̃_j = −(1 − b_{j−1}T_{j−1}(w0))·μ̃_j
    (Sommeijer, Shampine & Verwer 1997, §2)."""
    w0 = 1.0 + _RKC_DAMPING / stages**2
    root = math.sqrt(w0**2 - 1.0)
    arg = stages * math.log(w0 + root)
    w1 = math.sinh(arg) * (w0**2 - 1.0) / (math.cosh(arg) * stages * root - w0 * math.sinh(arg))
    b_prev = b_prev2 = 1.0 / (2.0 * w0) ** 2
    rows = [(1.0, 0.0, 0.0, 0.0), (0.0, 0.0, w1 * b_prev, 0.0)]
    z_prev2, z_prev, dz_prev2, dz_prev, d2z_prev2, d2z_prev = 1.0, w0, 0.0, 1.0, 0.0, 0.0  # T_j, T_j', T_j''
    for _ in range(2, stages + 1):
        z = 2 * w0 * z_prev - z_prev2
        dz = 2 * w0 * dz_prev - dz_prev2 + 2 * z_prev
        d2z = 2 * w0 * d2z_prev - d2z_prev2 + 4 * dz_prev
        b = d2z / dz**2
        mu, nu = 2 * w0 * b / b_prev, -b / b_prev2
        mu_tilde = mu * w1 / w0
        rows.append((mu, nu, mu_tilde, -(1.0 - z_prev * b_prev) * mu_tilde))
        z_prev2, z_prev, dz_prev2, dz_prev, d2z_prev2, d2z_prev = z_prev, z, dz_prev, dz, d2z_prev, d2z
        b_prev2, b_prev = b_prev, b
    rows += [(0.0, 0.0, 0.0, 0.0)] * (_RKC_MAX_STAGES + 1 - len(rows))
    return torch.tensor(rows, dtype=torch.float64)


def _rkc_stages(h: Tensor, radius: Tensor) -> Tensor:
    """Stages per run so that h·ρ lies in RKC's stability interval: s = 1 + ⌊√(1 + 1.54·h·ρ)⌋, at least 2
    (rkc.f)."""
    wanted = 1 + torch.sqrt(1 + 1.54 * (h * radius).double().clamp_min(0)).floor()
    return wanted.nan_to_num(nan=_RKC_MAX_STAGES).clamp(2, _RKC_MAX_STAGES).long()


def _rkc_attempt(params: list[Tensor], flow: dict, h: Tensor, objective: RunsLossAndGrad, rtol: float, atol: float
                 ) -> tuple[list[Tensor], Tensor, list[Tensor], Tensor]:
    """One RKC step of size h (B,), s_b stages per run; returns the new point, its loss and derivative and the norm
    (``_error_norm``) of the error estimate (1/15)·(12(θ_n − θ_{n+1}) + 6h(f_n + f_{n+1})) (Sommeijer, Shampine &
    Verwer 1997, §3).

    The batch takes max_b s_b stages, but stage j computes only the runs with s_b ≥ j and h_b > 0: the runs are put
    in order of decreasing s_b (idle runs, h_b = 0, last), so that those still in their stages are the first n_j
    rows and every stage works on those rows only (``objective(points, runs)``); each run makes its own s_b
    evaluations with the arithmetic it has alone. The error norm, too, is taken over the n attempting rows. When
    that order is the batch's own (the runs' stage counts do not increase along the batch), nothing is reordered.
    Idle runs get their θ, a zero loss, derivative and error."""
    stages = _rkc_stages(h, flow["spectral_radius"])
    last = int(stages.max())
    attempting = h > 0
    own = torch.where(attempting, stages, 0)
    order = torch.argsort(own, descending=True, stable=True)
    ordered = own[order].tolist()
    counts = [sum(1 for s in ordered if s >= j) for j in range(last + 1)]  # n_j: runs in stage j
    n, batch = counts[1], len(ordered)  # the runs attempting, all runs
    as_is = order.tolist() == list(range(batch))  # the order is the batch's: no copies in and out of it
    table = torch.stack([_rkc_coefficients(s)[:last + 1] for s in stages[order[:n]].tolist()]).to(h.device, h.dtype)
    hn = h[order[:n]]
    shape = {p.dim(): (-1, *[1] * (p.dim() - 1)) for p in params}
    start = params if as_is else [p.index_select(0, order) for p in params]  # θ in that order (never written)
    f0 = [f[:n] if as_is else f.index_select(0, order[:n]) for f in flow["derivative"]]
    theta = [p[:n] for p in start]
    # Each stage is written over the one two back (dead once y_{j−2} − θ is taken; at j = 2 that is θ itself, kept),
    # so a stage allocates nothing: the same operations in the same order as out-of-place ones, bitwise the same.
    before = theta
    current = [torch.addcmul(p, (table[:, 1, 2] * hn).view(shape[p.dim()]), f) for p, f in zip(theta, f0)]
    scratch = [torch.empty_like(p) for p in theta]
    # The new point, in that order: each run's last stage, gathered as runs finish; when every run attempts and all
    # take the same stages, the last stage itself (a buffer of its own: the stages never write θ).
    together = n == batch and counts[last] == n
    final = None if together else [torch.empty_like(p) for p in start]
    if n < batch:
        for q, p in zip(final, start):
            q[n:] = p[n:]
    for j in range(2, last + 1):
        m, finished = counts[j], slice(counts[j], counts[j - 1])  # runs in stage j; runs whose last was j − 1
        if counts[j] < counts[j - 1]:
            for q, y1 in zip(final, current):
                q[finished] = y1[finished]
        _, grads = objective([y1[:m] for y1 in current], order[:m])
        coefficients = (table[:m, j, 0], table[:m, j, 1], table[:m, j, 2] * hn[:m], table[:m, j, 3] * hn[:m])
        stage = {d: [c.view(v) for c in coefficients] for d, v in shape.items()}
        updated = []
        for p, y1, y2, g, f, t in zip(theta, current, before, grads, f0, scratch):
            mu, nu, mu_h, gamma_h = stage[p.dim()]
            y = torch.empty_like(y1) if j == 2 else y2
            p, y1, y2, f, t, out = p[:m], y1[:m], y2[:m], f[:m], t[:m], y[:m]
            torch.sub(y2, p, out=t)
            torch.addcmul(p, mu, torch.sub(y1, p, out=out), out=out)
            out.addcmul_(nu, t).addcmul_(mu_h, g, value=-1.0).addcmul_(gamma_h, f)
            updated.append(y)
        current, before = updated, current
    if together:
        final = current
    else:
        for q, y in zip(final, current):
            q[:counts[last]] = y[:counts[last]]
    new = [q[:n] for q in final]
    loss, grads = objective(new, order[:n])
    derivative = [-g for g in grads]
    flow["gradient_evaluations"] = flow["gradient_evaluations"] + last
    _count(flow, own)
    # (12(θ_n − θ_{n+1}) + 6h(f_n + f_{n+1}))/15 in the buffers of the scratch and the stage before the last.
    error = []
    for p, q, f, g, e, d in zip(theta, new, f0, derivative, scratch, before):
        torch.add(f, g, out=d).mul_(6 * hn.view(shape[p.dim()]))
        error.append(torch.sub(p, q, out=e).mul_(12).add_(d).div_(15))
    err = _error_norm(error, theta, new, rtol, atol)
    if as_is:
        return final, _padded(loss, batch), [_padded(g, batch) for g in derivative], _padded(err, batch)
    back = torch.argsort(order)
    return ([q.index_select(0, back) for q in final], _padded(loss, batch, order, back),
            [_padded(g, batch, order, back) for g in derivative], _padded(err, batch, order, back))


def _padded(values: Tensor, batch: int, order: Tensor | None = None, back: Tensor | None = None) -> Tensor:
    """Values of the first n runs of ``order`` (n, ...) as a (``batch``, ...) tensor in the batch's order, zeros for
    the others; without ``order`` (and ``back``, its inverse), the first n runs are the batch's first n."""
    n = values.shape[0]
    if order is None:
        return values if n == batch else torch.cat([values, values.new_zeros((batch - n, *values.shape[1:]))])
    if n == batch:
        return values.index_select(0, back)
    return values.new_zeros((batch, *values.shape[1:])).index_copy_(0, order[:n], values)


def _rkc_radius(state: TrainState, objective: RunsLossAndGrad, rejected: Tensor) -> None:
    """Estimate ρ(∇²L) per run by a nonlinear power method on gradient differences,
    ρ ≈ ||∇L(θ + δv) − ∇L(θ)||/δ with v ← the difference normalized (warm-started from the last direction), for
    the active runs due: on the first attempt, 25 steps after the last estimate, and after a rejection unless the
    estimate is fresh (rkc.f's ``rkcrho``)."""
    flow = state.optimizer_state
    params, f0 = state.params, flow["derivative"]
    age = flow.get("radius_age")
    if age is None:
        age, flow["spectral_radius"] = torch.full_like(rejected, _RKC_RADIUS_EVERY, dtype=torch.long), None
    due = ((age >= _RKC_RADIUS_EVERY) | (rejected & (age > 0))) & state.active
    # Age counts a run's own steps: every active run attempts the first time, only rejected runs retry (as alone).
    flow["radius_age"] = age + (~rejected.any()).long()
    if not bool(due.any()):
        return
    direction = flow.get("radius_direction") or f0
    eps, tiny = torch.finfo(params[0].dtype).eps, torch.finfo(params[0].dtype).tiny
    size = _norm(params)
    delta = math.sqrt(eps) * torch.where(size > 0, size, torch.ones_like(size))
    scale = delta / _norm(direction).clamp_min(tiny)
    direction = [per_run(scale, p) * d for p, d in zip(params, direction)]
    radius = torch.zeros_like(size)
    done = ~due  # per run, so that a run's estimate is the one it gets alone
    for _ in range(_POWER_ITERATIONS):
        _, grads = _at_runs(objective, [p + d for p, d in zip(params, direction)], ~done)
        flow["gradient_evaluations"] = flow["gradient_evaluations"] + 1
        _count(flow, (~done).long())
        difference = [-g - f for g, f in zip(grads, f0)]
        estimate = (_norm(difference) / delta).nan_to_num(nan=0.0, posinf=0.0)
        converged = (estimate - radius).abs() <= _POWER_TOLERANCE * estimate
        radius = torch.where(done, radius, estimate)
        scale = delta / _norm(difference).clamp_min(tiny)
        direction = [torch.where(per_run(done, d), d, per_run(scale, p) * e)
                     for p, d, e in zip(params, direction, difference)]
        done = done | converged
        if bool(done.all()):
            break
    radius, old = _RKC_RADIUS_SAFETY * radius, flow["spectral_radius"]
    flow["spectral_radius"] = radius if old is None else torch.where(due, radius, old)
    flow["radius_direction"] = direction
    flow["radius_age"] = torch.where(due, 0, flow["radius_age"])


def _count(flow: dict, evaluations: Tensor) -> None:
    """Add each run's gradient evaluations (B,) to ``flow["evaluations"]`` (absent from a state checkpointed
    before it was counted: then it stays absent, rather than counting only what came after)."""
    if "evaluations" in flow:
        flow["evaluations"] = flow["evaluations"] + evaluations.to(flow["evaluations"].device)


def _norm(values: list[Tensor]) -> Tensor:
    """Per-run Euclidean norm over every parameter entry, (B,)."""
    return sum(v.pow(2).flatten(1).sum(1) for v in values).sqrt()


def _record(state: TrainState, measure: Measure | None) -> None:
    before = len(state.records)
    record(state, measure)
    if len(state.records) > before:
        flow = state.optimizer_state
        state.records[-1]["time"] = flow["time"].detach().cpu()
        state.records[-1]["gradient_evaluations"] = int(flow["gradient_evaluations"])
