"""Run a sweep: plan it, skip what is done, run the rest on an executor, and report.

Rerunning a sweep into the same directory is always safe: finished runs are never rerun, interrupted
runs resume from their checkpoints, failed runs are rerun only with ``retry_failed``, and a lock
keeps two sweeps from writing one directory at once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..progress import progress_enabled
from .executors import Executor, SlurmOptions, make_executor
from .jobs import Job, RunOutcome
from .plan import Plan, plan_sweep
from .spec import SweepSpec, load_spec
from .state import RunState, count, run_states, sweep_lock, write_sweep


@dataclass
class SweepReport:
    """What a sweep found, ran and left: states before and after, and each run's outcome.

    Attributes
    ----------
    plan : Plan
        The sweep's plan.
    executor : str
        The executor's name (``serial``, ``local``, ``slurm``).
    jobs : list of Job
        The jobs run this time (or that would run, for a dry run).
    before : list of RunState
        Every run's state before, in the order of the sweep.
    after : list of RunState
        Every run's state after; empty for a dry run. Default empty.
    outcomes : list of RunOutcome
        What this time's attempts did, one per run attempted. Default empty.
    seconds : float
        Wall-clock seconds of the sweep (0.0 for a dry run). Default 0.0.
    """

    plan: Plan
    executor: str
    jobs: list[Job]
    before: list[RunState]
    after: list[RunState] = field(default_factory=list)
    outcomes: list[RunOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether every run of the sweep is done."""
        return bool(self.after) and all(s.status == "done" for s in self.after)

    def summary(self) -> str:
        """The report in words, as ``implicitrank sweep`` prints it.

        Returns
        -------
        str
            The status counts, what ran this time on which executor and how long it took, one line per run not
            done or diverged (its axis values and detail), and what to do about failed and pending runs.
        """
        counts = count(self.after or self.before)
        ran = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "failed", "interrupted", "running")}
        diverged = sum(state.status == "done" and bool(state.detail) for state in self.after or self.before)
        lines = [f"sweep {self.plan.spec.name!r}: {len(self.plan.configs)} runs in {self.plan.out}: "
                 + ", ".join(f"{n} {s}" + (f" ({diverged} of them diverged)" if s == "done" and diverged else "")
                             for s, n in counts.items())]
        if self.jobs:
            lines.append(f"this time: {sum(len(j.configs) for j in self.jobs)} runs in {len(self.jobs)} jobs on "
                         f"{self.executor} in {self.seconds:.1f}s: "
                         + ", ".join(f"{n} {s}" for s, n in ran.items() if n))
        else:
            lines.append("nothing to run")
        configs = {c.run_id: c for c in self.plan.configs}
        for state in self.after:
            if state.status != "done" or state.detail:  # a done run with a detail diverged
                values = " ".join(f"{k}={getattr(configs[state.run_id], k)}" for k in self.plan.axis_fields())
                lines.append(f"  {state.status:<8} {state.run_id} {values}: {state.detail}")
        if counts["failed"]:
            lines.append(f"errors and tracebacks: {self.plan.out}/runs/<run_id>/error.json; rerun with "
                         "--retry-failed to retry them")
        if counts["pending"]:
            lines.append("rerun the sweep to resume the pending runs")
        return "\n".join(lines)


def default_out(spec: SweepSpec) -> Path:
    """A stable default, so that rerunning a spec resumes it: ``runs/<spec name>``."""
    return Path("runs") / spec.name


def run_sweep(spec: SweepSpec | str | Path, out: str | Path | None = None, executor: Executor | str = "serial", *,
              retry_failed: bool = False, batch: bool = True, max_batch: int | None = None, plots: bool = False,
              progress: bool = True, dry_run: bool = False, tensorboard: bool = False) -> SweepReport:
    """Run every run of ``spec`` that is not done into ``out``.

    Bad specs, an out directory holding something else, and an executor that cannot run here are
    refused before anything is written or submitted. The sweep holds ``out``'s lock while it runs.

    Parameters
    ----------
    spec : SweepSpec, str or Path
        The spec, or the path of its TOML file.
    out : str, Path or None, optional
        The sweep directory. Default None: ``runs/<spec name>``.
    executor : Executor or str, optional
        ``"serial"``, ``"local"``, ``"slurm"`` (the spec's [slurm] table as options) or an executor. Default
        ``"serial"``.
    retry_failed : bool, optional
        Also rerun failed runs. Default False.
    batch : bool, optional
        Train runs that differ only in per-run values as one batched job. Default True.
    max_batch : int or None, optional
        At most this many runs a job. Default None (no limit).
    plots : bool, optional
        Draw each run's plots. Default False.
    progress : bool, optional
        Show a progress bar over the runs to attempt (none when there are none). Default True.
    dry_run : bool, optional
        Plan and report what would run, write nothing. Default False.
    tensorboard : bool, optional
        Also write each run's TensorBoard events (so does the spec's ``tensorboard = true``). Default False.

    Returns
    -------
    SweepReport
        The states before and after, the jobs and each run's outcome.

    Raises
    ------
    UsageError
        For a bad spec, an executor that cannot run here, or ``tensorboard`` without its package.
    OutputExistsError
        When ``out`` holds other runs or something else, or another sweep is writing it.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    plan = plan_sweep(spec, default_out(spec) if out is None else out)
    tensorboard = tensorboard or spec.tensorboard
    if tensorboard:
        from ..tensorboard import require

        require()
    if isinstance(executor, str):
        executor = make_executor(executor, slurm=SlurmOptions.from_dict(spec.slurm))
    executor.check()
    configs = {c.run_id: c.to_dict() for c in plan.configs}
    write_sweep(plan.out, spec.to_dict(), configs, dry_run=True)
    if dry_run:
        before = run_states(plan.out, configs)
        jobs = _jobs(plan, before, executor, retry_failed, batch, max_batch, plots, tensorboard)
        return SweepReport(plan, executor.name, jobs, before)
    started = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    with sweep_lock(plan.out):
        write_sweep(plan.out, spec.to_dict(), configs)
        before = run_states(plan.out, configs)
        jobs = _jobs(plan, before, executor, retry_failed, batch, max_batch, plots, tensorboard)
        report = SweepReport(plan, executor.name, jobs, before)
        with _progress_bar(sum(len(j.configs) for j in jobs), spec.name, progress) as bar:
            report.outcomes = executor.run(jobs, plan.out, bar.update)
        report.after = run_states(plan.out, configs)
    report.seconds = time.perf_counter() - started
    return report


def _jobs(plan: Plan, states: list[RunState], executor: Executor, retry_failed: bool, batch: bool,
          max_batch: int | None, plots: bool, tensorboard: bool) -> list[Job]:
    """The runs to attempt (pending, and failed with ``retry_failed``) grouped into jobs."""
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    todo = [c for c, s in zip(plan.configs, states) if s.status in wanted]
    return plan.jobs(todo, batch=batch, max_batch=max_batch, min_jobs=executor.slots, plots=plots,
                     tensorboard=tensorboard)


def _progress_bar(total: int, name: str, enabled: bool):
    """A bar over the sweep's ``total`` runs to attempt; none when there are none (it drew an empty one)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="run", file=sys.stderr,
                disable=total == 0 or not progress_enabled(enabled), dynamic_ncols=True)
