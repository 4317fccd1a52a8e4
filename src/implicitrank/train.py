"""The training loop: B runs in one tensor program, each stopping on its own.

Each iteration evaluates the per-run loss and gradient at the current parameters (``step`` updates
applied so far), updates each run's status on the device (no host synchronization: converged and
diverged runs are masked out of the update, their step recorded), records metrics on a schedule, and
applies the optimizer's update to the runs still active. The host looks at the status only every
``sync_every`` steps and at recorded steps. A run whose loss becomes NaN/inf stops there with a
message naming the step; what was recorded until then is kept.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import UsageError
from .factorizations import loss_and_grad
from .interrupts import interrupts_between_steps
from .optim import Optimizer, per_run
from .progress import progress_bar
from .tasks import Task, check_task_matches

Measure = Callable[[list[Tensor], Tensor], dict[str, Tensor]]
"""``measure(params, train_loss) -> {name: (B, ...) tensor}``: the metrics recorded at a record step, one row per
run."""
LossAndGrad = Callable[[list[Tensor]], tuple[Tensor, list[Tensor]]]
"""``loss_and_grad(params) -> (loss (B,), grads)``: each run's loss and the gradients of its parameters."""

__all__ = ["LossAndGrad", "Measure", "TrainConfig", "TrainState", "mark_status", "put_runs", "record", "run_loop",
           "select_runs", "show_progress", "start", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """When to stop, record and checkpoint.

    Attributes
    ----------
    max_steps : int
        At most this many updates per run, >= 0. Default 100,000.
    loss_threshold : float
        A run converges (and freezes) once its train loss is <= this, >= 0 (see converge_patience). Default 1e-6.
    record_every : int
        Record metrics every k steps (0: off). Default 0.
    record_per_decade : int
        Also record at about this many log-spaced steps per decade (0: off). Default 20.
    sync_every : int
        How often (in steps, >= 1) the host checks whether every run has stopped. Default 100.
    checkpoint_every : int
        Call the checkpoint hook every k steps (0: never). Default 0.
    progress : bool
        Show a progress bar. Default True.
    converge_patience : int
        A run freezes only once its loss has stayed <= loss_threshold for this many further steps (the papers'
        "train loss below the threshold for a while"; 0: at once). Default 0.

    Raises
    ------
    UsageError
        On a negative count or threshold, or sync_every < 1.
    """

    max_steps: int = 100_000
    loss_threshold: float = 1e-6
    record_every: int = 0
    record_per_decade: int = 20
    sync_every: int = 100
    checkpoint_every: int = 0
    progress: bool = True
    converge_patience: int = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "converge_patience", "record_every", "record_per_decade", "checkpoint_every",
                     "sync_every"):
            try:  # counts of steps: 2.5 made 3 updates of "at most 2.5"
                operator.index(getattr(self, name))
            except TypeError:
                raise UsageError(f"{name} must be an integer, got {getattr(self, name)!r}") from None
        if self.max_steps < 0:
            raise UsageError(f"max_steps must be >= 0, got {self.max_steps}")
        if not 0 <= self.loss_threshold < math.inf:  # inf: every run "converged" at step 0
            raise UsageError(f"loss_threshold must be finite and >= 0, got {self.loss_threshold}")
        for name in ("converge_patience", "record_every", "record_per_decade", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.sync_every < 1:
            raise UsageError(f"sync_every must be >= 1, got {self.sync_every}")

    def checkpoints_at(self, step: int) -> bool:
        """Whether the checkpoint hook is called before the update at ``step`` (never at step 0).

        Parameters
        ----------
        step : int
            Index of the update about to be made.

        Returns
        -------
        bool
            True on the checkpoint schedule.
        """
        return bool(self.checkpoint_every) and step > 0 and step % self.checkpoint_every == 0

    def records_at(self, step: int) -> bool:
        """Whether metrics are recorded at ``step`` (step 0 and the last step always are).

        Parameters
        ----------
        step : int
            A step in [0, max_steps] whose metrics might be recorded.

        Returns
        -------
        bool
            True at step 0, at ``max_steps``, every ``record_every`` steps and at the log-spaced steps.
        """
        if step == 0 or step == self.max_steps:
            return True
        if self.record_every and step % self.record_every == 0:
            return True
        if self.record_per_decade:
            k = round(self.record_per_decade * math.log10(step))
            return step == round(10 ** (k / self.record_per_decade))
        return False


@dataclass
class TrainState:
    """Everything needed to continue a batch of runs exactly where it stopped.

    Attributes
    ----------
    step : int
        Updates applied so far.
    params : list of Tensor
        The current (B, ...) parameters.
    optimizer_state : dict
        The optimizer's (or integrator's) state.
    active : Tensor
        (B,) bool: still updating.
    stopped_at : Tensor
        (B,) long: the step at which the run stopped, −1 while active.
    loss : Tensor
        (B,) latest train loss (a stopped run is frozen, so its loss stays as it stopped).
    records : list of dict
        The recorded metrics, one dict per recorded step (``step``, ``train_loss``, the measure's names).
    below_for : Tensor or None
        (B,) long: consecutive steps with the loss <= the threshold, counted only when a ``converge_patience``
        is set (None: zeros).
    """

    step: int
    params: list[Tensor]
    optimizer_state: dict
    active: Tensor  # (B,) bool: still updating
    stopped_at: Tensor  # (B,) long: the step at which the run stopped, -1 while active
    loss: Tensor  # (B,) latest train loss (a stopped run is frozen, so its loss stays as it stopped)
    records: list[dict[str, Tensor]] = field(default_factory=list)
    below_for: Tensor | None = None  # (B,) long: steps in a row with the loss <= the threshold (with a patience)

    def __post_init__(self) -> None:
        if self.below_for is None:
            self.below_for = torch.zeros_like(self.stopped_at)

    @property
    def converged_at(self) -> Tensor:
        """(B,) step at which the loss reached the threshold, -1 if it did not."""
        return torch.where((self.stopped_at >= 0) & torch.isfinite(self.loss), self.stopped_at, -1)

    @property
    def diverged_at(self) -> Tensor:
        """(B,) step at which the loss became NaN/inf, -1 if it did not."""
        return torch.where((self.stopped_at >= 0) & ~torch.isfinite(self.loss), self.stopped_at, -1)

    @property
    def steps(self) -> Tensor:
        """Updates each run made: until it stopped, else all."""
        return torch.where(self.stopped_at >= 0, self.stopped_at, self.step)

    def history(self, name: str) -> Tensor:
        """A recorded metric at every record, stacked.

        Plot ``history("train_loss")[:, b]`` against ``history("step")`` for run b.

        Parameters
        ----------
        name : str
            A recorded metric, or ``"step"``.

        Returns
        -------
        Tensor
            (T, B, …) for a metric of shape (B, …); (T,) recorded steps for ``"step"``.

        Raises
        ------
        ValueError
            When nothing was recorded or ``name`` is not a recorded metric.
        """
        if not self.records:
            raise ValueError("no metrics were recorded (TrainConfig's record_every and record_per_decade are 0?)")
        if name not in self.records[0]:
            raise ValueError(f"name must be one of the recorded metrics {sorted(self.records[0])}, got {name!r}")
        if name == "step":
            return torch.tensor([r["step"] for r in self.records])
        return torch.stack([r[name] for r in self.records])

    def messages(self) -> list[str]:
        """One message per diverged run, naming the step at which it became NaN/inf.

        Returns
        -------
        list of str
            Empty when no run diverged.
        """
        return [f"run {b}: train loss, parameters or metrics became NaN/inf at step {int(s)}; the run stopped "
                f"there and the metrics recorded until then are kept"
                for b, s in enumerate(self.diverged_at.tolist()) if s >= 0]


def start(params: list[Tensor], optimizer: Optimizer) -> TrainState:
    """The state before the first step: all runs active, loss inf.

    Parameters
    ----------
    params : list of Tensor
        The (B, ...) initial parameters (detached: training needs no autograd history of them).
    optimizer : Optimizer
        Its ``init`` makes the optimizer state.

    Returns
    -------
    TrainState
        Step 0.
    """
    params = [p.detach() for p in params]  # a tensor that requires grad would chain every update into one graph
    batch, device = params[0].shape[0], params[0].device
    return TrainState(0, params, optimizer.init(params), torch.ones(batch, dtype=torch.bool, device=device),
                      torch.full((batch,), -1, dtype=torch.long, device=device),
                      torch.full((batch,), math.inf, dtype=params[0].dtype, device=device))


def mark_status(state: TrainState, loss: Tensor, threshold: float, patience: int = 0) -> None:
    """Stop the runs whose loss is NaN/inf or has settled below the threshold, on the device (no sync).

    A run stops when its loss at ``state.step`` is NaN/inf or has been <= ``threshold`` for more than
    ``patience`` consecutive steps. Whether it stopped by converging or diverging is read off the frozen loss
    later (``converged_at``/``diverged_at``). Updates ``state`` in place.

    Parameters
    ----------
    state : TrainState
        The state of the batch.
    loss : Tensor
        (B,) the loss at ``state.step``.
    threshold : float
        The convergence threshold.
    patience : int, optional
        Further steps the loss must stay below the threshold. Default 0.
    """
    finite = torch.isfinite(loss)
    if patience:
        below = finite & (loss <= threshold)
        state.below_for = torch.where(below, state.below_for + state.active.to(state.below_for.dtype), 0)
        going = finite & (state.below_for <= patience)
    else:  # the common case, in fewer kernels (``below_for`` is only kept when there is a patience)
        going = finite & (loss > threshold)
    state.stopped_at = torch.where(state.active & ~going, state.step, state.stopped_at)
    state.active = state.active & going
    state.loss = loss


def record(state: TrainState, measure: Measure | None) -> None:
    """Append the metrics at the current step (moved to the CPU) to ``state.records``.

    A run whose parameters are non-finite, or whose metrics overflow to ±inf, diverged: it stops here (as a
    NaN/inf loss would stop it) and its metrics in this row are NaN. Metrics are never computed on non-finite
    values (an SVD of them fails): such runs are measured on zeros and their values dropped. A step already
    recorded is not recorded again.

    Parameters
    ----------
    state : TrainState
        The state of the batch.
    measure : callable or None
        ``measure(params, loss) -> {name: (B, ...)}``; None records the train loss only.
    """
    if state.records and state.records[-1]["step"] == state.step:
        return
    metrics: dict = {}
    if measure is not None:
        finite = torch.isfinite(state.loss)
        for p in state.params:
            finite = finite & torch.isfinite(p.reshape(p.shape[0], -1)).all(1)
        safe = [torch.where(per_run(finite, p), p, torch.zeros_like(p)) for p in state.params]
        values = {k: v.detach() for k, v in measure(safe, state.loss).items()}
        for v in values.values():
            if v.is_floating_point() and v.dim():
                finite = finite & ~torch.isinf(v.reshape(v.shape[0], -1)).any(1).to(finite.device)
        _stop_diverged(state, finite)
        metrics = {k: _missing_unless(finite, v) for k, v in values.items()}
    state.records.append({"step": state.step, "train_loss": state.loss.detach().cpu(), **metrics})


def _missing_unless(finite: Tensor, v: Tensor) -> Tensor:
    """The metric ``v`` (B, ...) on the CPU, NaN for the runs that are not ``finite``. An integer or boolean metric
    becomes float64 in a row where some run is not: its value there, computed on zeros, would read as a result
    (a numerical rank of 0)."""
    if not v.dim():
        return v.cpu()
    keep = per_run(finite.to(v.device), v)
    if not v.is_floating_point():
        if bool(keep.all()):
            return v.cpu()
        v = v.to(torch.float64)
    return torch.where(keep, v, math.nan).cpu()


def _stop_diverged(state: TrainState, finite: Tensor) -> None:
    """Stop the active runs that are not ``finite`` at this step, as diverged (their loss becomes NaN)."""
    diverging = state.active & ~finite
    state.loss = torch.where(diverging, math.nan, state.loss)
    state.stopped_at = torch.where(diverging, state.step, state.stopped_at)
    state.active = state.active & finite


def show_progress(bar, state: TrainState, **extra: str) -> None:
    """Move a loop's progress bar (if any) to ``state.step``.

    The bar shows the largest loss, the runs still active and ``extra``. A host synchronization: call it only
    when the loop syncs anyway.

    Parameters
    ----------
    bar : tqdm-like or None
        The progress bar; None does nothing.
    state : TrainState
        The state of the batch.
    **extra : str
        More fields for the bar's text.
    """
    if bar is None:
        return
    bar.update(state.step - bar.n)
    bar.set_postfix(loss=f"{float(state.loss.nan_to_num(nan=math.inf).max()):.3g}", active=int(state.active.sum()),
                    **extra)


def train(
    model,
    task,
    params: list[Tensor] | None,
    optimizer: Optimizer,
    lr: Tensor,
    config: TrainConfig,
    *,
    measure: Measure | None = None,
    state: TrainState | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    objective: LossAndGrad | None = None,
    sample: Callable[[int], Task] | None = None,
) -> TrainState:
    """Train B runs of ``model`` on ``task`` until each converges, diverges or reaches ``max_steps``.

    The parameters are copied once and then updated in place (``params`` is left as it was). Runs that stop
    leave the batch at the next sync step (``config.sync_every``), so a batch whose runs converge at different
    steps computes only the runs still going; every run's result is bitwise the one it would have alone, on the CPU
    (CUDA's atomic adds, e.g. in a gather's backward, may change the last bits from one run to the next).

    Parameters
    ----------
    model : Factorization
        A factorization (``implicitrank.factorizations``).
    task : Task
        A :class:`~implicitrank.tasks.Task` of the model's shape, dtype and device, with B runs.
    params : list of Tensor or None
        The (B, ...) parameters to start from (ignored when ``state`` is given).
    optimizer : Optimizer
        An (init, update) pair (``implicitrank.optim``).
    lr : Tensor
        (B,) learning rates, one per run, positive.
    config : TrainConfig
        When to stop, record and checkpoint.
    measure : callable, optional
        Metrics recorded with the train loss, ``measure(params, loss) -> {name: (B, ...)}``.
    state : TrainState, optional
        Continue a checkpointed batch where it stopped.
    on_checkpoint : callable, optional
        Called with the state on the checkpoint schedule.
    objective : callable, optional
        Overrides the loss-and-gradient function (default: the model's closed form where it has one, else
        autograd).
    sample : callable, optional
        Makes the fit a minibatch one: step k fits ``sample(k)`` (e.g. :func:`implicitrank.tasks.minibatches`)
        instead of the whole ``task``; the recorded ``train_loss`` is then the minibatch's.

    Returns
    -------
    TrainState
        Final parameters, per-run status (``converged_at``, ``diverged_at``, ``steps``) and records.

    Raises
    ------
    UsageError
        When ``lr`` is not positive with one value per run, the task does not match the model and parameters, or
        there is nothing to start from (no ``params``, no ``state``) or to fit (no ``task``, ``objective`` or
        ``sample``).

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (full-batch training from small init until the train loss is <= 1e-6).
    """
    if state is None and params is None:  # else "'NoneType' object is not iterable" from deep inside
        raise UsageError("params must be given unless a state is resumed")
    if task is None and objective is None and sample is None:
        raise UsageError("task must be given unless an objective or a sample function is")
    if task is not None:
        check_task_matches(model, task, params if state is None else state.params)
    if state is None:
        state = start(params, optimizer)
    reference = state.params[0]
    lr = torch.as_tensor(lr, dtype=reference.dtype, device=reference.device).reshape(-1)
    if lr.numel() != state.active.numel() or not bool((lr > 0).all()):
        raise UsageError(f"lr must be positive, one per run ({state.active.numel()}), got {lr.tolist()}")
    batch = _Working(state, lr, task if objective is None and sample is None else None)
    if objective is None:
        def objective(p: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
            return loss_and_grad(model, p, batch.task if sample is None else sample(state.step))
    grads: list[Tensor] = []

    def evaluate(state: TrainState) -> Tensor:
        nonlocal grads
        if state.step % config.sync_every == 0:
            batch.compact(state)
        loss, grads = objective(batch.params)
        return batch.full_loss(state, loss)

    def advance(state: TrainState) -> None:
        # Stopped runs get a zero step size: every optimizer's update is proportional to lr.
        updates, batch.optimizer_state = optimizer.update(grads, batch.optimizer_state, batch.lr(state))
        torch._foreach_sub_(batch.params, updates)

    def record_step(state: TrainState, measure: Measure | None) -> None:
        batch.write_back(state)
        record(state, measure)

    def checkpoint(state: TrainState) -> None:
        batch.write_back(state)
        on_checkpoint(state)

    try:
        return run_loop(state, config, evaluate, advance, measure=measure, record_step=record_step,
                        on_checkpoint=checkpoint if on_checkpoint is not None else None)
    finally:
        batch.write_back(state)


class _Working:
    """The runs ``train`` steps: at first all B of ``state`` (copies, updated in place), then, once runs have
    stopped, only those still active (compaction: a stopped run costs no more matmuls).

    The working parameters and optimizer state are written back into ``state`` before every record and
    checkpoint and at the end, so ``state`` always shows every run. Per-run values are those with the runs
    along their first dimension (parameters, optimizer-state tensors of leading size B, the task's
    ``run_fields``); shared values (a 0-d step count) stay as they are. Compaction needs a task with ``runs``
    (``task=None`` turns it off: a minibatch sampler or a custom objective see all B runs). Each run's
    arithmetic is the same in any batch, so a compacted batch gives bitwise the results of the full one.

    Parameters
    ----------
    state : TrainState
        The full batch; its parameters are replaced by copies that are then updated in place.
    lr : Tensor
        (B,) learning rates.
    task : Task or None
        The full task, or None to keep every run in the batch.
    """

    def __init__(self, state: TrainState, lr: Tensor, task) -> None:
        state.params = [p.clone() for p in state.params]
        self.params, self.optimizer_state = state.params, state.optimizer_state
        self.size, self.live = len(lr), None
        self._full_lr, self._lr, self._full_task, self.task = lr, lr, task, task

    def lr(self, state: TrainState) -> Tensor:
        """The working runs' learning rates, zero for those that stopped since the last compaction."""
        return self._lr * (state.active if self.live is None else state.active[self.live])

    def full_loss(self, state: TrainState, loss: Tensor) -> Tensor:
        """(B,) losses: the working runs' ``loss``, the frozen loss of the runs compacted away."""
        if self.live is None:
            return loss
        return state.loss.index_put((self.live,), loss)

    def compact(self, state: TrainState) -> None:
        """Drop the runs that stopped from the working batch (a host sync: call it on the sync schedule)."""
        if self._full_task is None or not hasattr(self._full_task, "runs"):
            return
        live = state.active.nonzero().squeeze(1)
        working = self.size if self.live is None else len(self.live)
        if len(live) == 0 or len(live) == working:
            return
        self.write_back(state)
        self.live = live
        self.params = [p[live] for p in state.params]
        self.optimizer_state = select_runs(state.optimizer_state, live, self.size)
        self.task, self._lr = self._full_task.runs(live), self._full_lr[live]

    def write_back(self, state: TrainState) -> None:
        """Copy the working runs' parameters and optimizer state into ``state``."""
        if self.live is None:
            state.params, state.optimizer_state = self.params, self.optimizer_state
            return
        for full, part in zip(state.params, self.params):
            full[self.live] = part
        state.optimizer_state = put_runs(state.optimizer_state, self.optimizer_state, self.live, self.size)


def select_runs(value, index: Tensor | list[int], batch: int):
    """The runs at ``index`` of batched state: tensors whose leading size is ``batch`` are indexed (a copy),
    lists, tuples and dicts of them are walked, anything else (a shared 0-d count, a step number) is kept.

    Parameters
    ----------
    value : Tensor, list, tuple, dict or other
        Batched state, e.g. a ``TrainState``'s parameters, optimizer state or records.
    index : Tensor or list of int
        The positions of the runs to keep (a list indexes tensors on any device).
    batch : int
        B, the number of runs of ``value``.

    Returns
    -------
    Tensor, list, dict or other
        ``value`` with only those runs, in that order.
    """
    if isinstance(value, Tensor):
        return value[index] if value.dim() and value.shape[0] == batch else value
    if isinstance(value, (list, tuple)):
        return [select_runs(v, index, batch) for v in value]
    if isinstance(value, dict):
        return {k: select_runs(v, index, batch) for k, v in value.items()}
    return value


def put_runs(full, part, index: Tensor, batch: int):
    """``full`` with the runs at ``index`` replaced by ``part`` (the inverse of ``select_runs``; out of place, so
    ``full``'s tensors are left as they were); shared values from ``part``.

    Parameters
    ----------
    full : Tensor, list, tuple, dict or other
        Batched state of all ``batch`` runs.
    part : Tensor, list, tuple, dict or other
        The same structure for the runs at ``index`` only (as ``select_runs`` made it).
    index : Tensor
        The positions of ``part``'s runs in ``full``.
    batch : int
        B, the number of runs of ``full``.

    Returns
    -------
    Tensor, list, dict or other
        ``full`` with those runs replaced.
    """
    if isinstance(full, Tensor):
        return full.index_put((index,), part) if full.dim() and full.shape[0] == batch else part
    if isinstance(full, (list, tuple)):
        return [put_runs(f, q, index, batch) for f, q in zip(full, part)]
    if isinstance(full, dict):
        return {k: put_runs(full[k], part[k], index, batch) for k in full}
    return part


def run_loop(
    state: TrainState,
    config: TrainConfig,
    evaluate: Callable[[TrainState], Tensor],
    advance: Callable[[TrainState], None],
    *,
    measure: Measure | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    record_step: Callable[[TrainState, Measure | None], None] = record,
    describe: Callable[[TrainState], dict[str, str]] | None = None,
    syncs_every_step: bool = False,
) -> TrainState:
    """What every loop over B runs shares: checkpoints, stopping, recording, progress and divergence.

    Each iteration calls the checkpoint hook on the checkpoint schedule (and, after a Ctrl-C, at the step reached,
    then raises ``KeyboardInterrupt``: ``interrupts.interrupts_between_steps``), takes the per-run loss at the current
    parameters from ``evaluate(state)`` and stops the runs that converged or diverged (:func:`mark_status`),
    records on the record schedule (``record_step``), and then ``advance(state)`` makes one step of the runs
    still active, until ``max_steps`` or until no run is active. The host looks at the status every
    ``sync_every`` steps (every step when ``syncs_every_step``), where the progress bar also moves.

    Parameters
    ----------
    state : TrainState
        The state of the batch.
    config : TrainConfig
        When to stop, record and checkpoint.
    evaluate : callable
        ``evaluate(state) -> loss`` (B,) at the current parameters.
    advance : callable
        ``advance(state)`` makes one step of the active runs, in place.
    measure : callable, optional
        Metrics recorded with the train loss.
    on_checkpoint : callable, optional
        Called with the state on the checkpoint schedule.
    record_step : callable, optional
        ``record_step(state, measure)``; default :func:`record`.
    describe : callable, optional
        ``describe(state) -> {field: text}`` added to the progress bar.
    syncs_every_step : bool, optional
        The method synchronizes every step anyway, so check for stopped runs every step. Default False.

    Returns
    -------
    TrainState
        The same state, advanced.
    """
    bar = progress_bar(config.max_steps, initial=state.step, enabled=config.progress)
    # With a checkpoint hook, Ctrl-C stops the loop between two steps, after a checkpoint at the step it reached:
    # nothing since the last scheduled checkpoint is lost, and --resume goes on as if nothing had happened.
    holding = interrupts_between_steps() if on_checkpoint else nullcontext(lambda: False)
    try:
        with holding as interrupted:
            while True:
                if on_checkpoint and (interrupted() or config.checkpoints_at(state.step)):
                    on_checkpoint(state)
                    if interrupted():
                        raise KeyboardInterrupt
                mark_status(state, evaluate(state), config.loss_threshold, config.converge_patience)
                if config.records_at(state.step):
                    record_step(state, measure)
                if state.step >= config.max_steps:
                    break
                synced = state.step % config.sync_every == 0
                if synced and bar is not None:
                    show_progress(bar, state, **(describe(state) if describe is not None else {}))
                if (synced or syncs_every_step) and not bool(state.active.any()):
                    break
                advance(state)
                state.step += 1
            record_step(state, measure)
    finally:
        if bar is not None:
            bar.close()
    return state
