"""A job: runs trained together, run the same way by every executor (in-process, pool worker, Slurm).

``run_job`` takes each run's lock (a run locked by another process is left to it), skips finished
runs, resumes unfinished ones from their checkpoints, and records a failure in the failing runs'
directories instead of raising, so one bad run never stops the others. Runs of one job checkpoint at
the same steps; a job killed between two runs' checkpoint writes leaves them at different steps, so
the runs are resumed in groups of equal checkpoint step (per-run results do not depend on the grouping).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from submitit.core.utils import UncompletedJobError

from .. import results
from ..errors import CorruptFileError, UsageError
from ..run import RunConfig, run_batch
from .state import (
    CORRUPT_CHECKPOINT,
    CORRUPT_SUMMARY,
    clear_marks,
    describe_holder,
    hold_lock,
    lock_holder,
    record_error,
    record_interrupted,
    run_lock_path,
)


@dataclass(frozen=True)
class Job:
    """Runs of equal batch keys, their directories, where their locks live, whether to plot and whether to write
    TensorBoard events.

    Attributes
    ----------
    configs : tuple of RunConfig
        The runs, at least one.
    run_dirs : tuple of Path
        One directory per run.
    lock_dir : Path
        Where the runs' lock files live (a sweep's ``OUT/.locks``).
    plots : bool
        Draw each run's plots. Default False.
    tensorboard : bool
        Write each run's TensorBoard events. Default False.

    Raises
    ------
    ValueError
        On construction, when there are no runs or the counts of runs and directories differ.
    """

    configs: tuple[RunConfig, ...]
    run_dirs: tuple[Path, ...]
    lock_dir: Path
    plots: bool = False
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if not self.configs or len(self.configs) != len(self.run_dirs):
            raise ValueError(f"configs and run_dirs must be non-empty and match, got {len(self.configs)} "
                             f"and {len(self.run_dirs)}")


@dataclass(frozen=True)
class RunOutcome:
    """What one attempt did with a run.

    Attributes
    ----------
    run_id : str
        The id of the run attempted.
    status : str
        ``done`` (trained now or earlier), ``failed`` (error recorded), ``running`` (another process holds it),
        ``interrupted`` (the job stopped early: cancelled, killed, timed out; the run resumes next time).
    message : str
        What happened, e.g. ``trained in 3.2s``, the error, or who holds the run. Default ``""``.
    resumed_from : int or None
        The checkpoint step the attempt resumed from; None when it started from step 0 or did not train.
        Default None.
    threads : int or None
        Torch threads of the process that trained it; None when it did not train. Default None.
    """

    run_id: str
    status: str
    message: str = ""
    resumed_from: int | None = None
    threads: int | None = None


def run_job(job: Job) -> list[RunOutcome]:
    """Train the job's unfinished runs (resuming from checkpoints); never raise for a run's error.

    Each run's lock is taken (a run locked by another process is left to it) and held until the job ends;
    finished runs are skipped; the others train with ``run_batch`` in groups of equal checkpoint step. A run's
    error (an unreadable checkpoint, a failed batch) is written to its ``error.json``.

    Parameters
    ----------
    job : Job
        The runs.

    Returns
    -------
    list of RunOutcome
        One outcome per run: ``running``, ``done`` or ``failed``.

    Raises
    ------
    UncompletedJobError
        Only submitit's, when its signal handler gives up requeueing a Slurm job.
    """
    threads = torch.get_num_threads()
    outcomes: list[RunOutcome] = []
    with contextlib.ExitStack() as stack:
        todo: dict[int | None, list[tuple[RunConfig, Path]]] = {}
        for config, run_dir in zip(job.configs, job.run_dirs):
            lock = run_lock_path(job.lock_dir, config.run_id)
            if not stack.enter_context(hold_lock(lock)):
                holder = describe_holder(lock_holder(lock) or {})
                outcomes.append(RunOutcome(config.run_id, "running", f"held by {holder}"))
                continue
            if results.is_finished(run_dir):
                outcomes.append(RunOutcome(config.run_id, "done", "finished earlier"))
                continue
            clear_marks(run_dir)
            if (run_dir / results.SUMMARY).is_file():  # unreadable (not finished): set aside, train again
                (run_dir / results.SUMMARY).replace(run_dir / CORRUPT_SUMMARY)
            try:
                step = _checkpoint_step(run_dir)
            except Exception as err:  # an unreadable checkpoint fails its run only
                if isinstance(err, CorruptFileError):  # set aside: --retry-failed restarts the run from step 0
                    (run_dir / results.CHECKPOINT).replace(run_dir / CORRUPT_CHECKPOINT)
                record_error(run_dir, err)
                outcomes.append(RunOutcome(config.run_id, "failed", f"{type(err).__name__}: {err}"))
                continue
            todo.setdefault(step, []).append((config, run_dir))
        for step, runs in todo.items():
            outcomes += _train(runs, job, step, threads)
    return outcomes


def _train(runs: list[tuple[RunConfig, Path]], job: Job, step: int | None, threads: int) -> list[RunOutcome]:
    """Train ``runs`` (configs and directories) as one batch and say how each ended. A batch that ``run_batch``
    refuses (``UsageError``, before anything is written: e.g. one run's W(0) underflows) is trained run by run, so
    the refusal fails its own run only, not the runs the sweep batched with it."""
    configs, dirs = [c for c, _ in runs], [d for _, d in runs]
    started = time.perf_counter()
    try:
        run_batch(configs, dirs, resume=True, progress=False, plots=job.plots, tensorboard=job.tensorboard)
    except UncompletedJobError:  # submitit's signal handler giving up on requeueing: not the run's fault
        raise
    except Exception as err:
        if isinstance(err, UsageError) and len(runs) > 1:
            return [outcome for run in runs for outcome in _train([run], job, step, threads)]
        for run_dir in dirs:
            record_error(run_dir, err)
        return [RunOutcome(c.run_id, "failed", f"{type(err).__name__}: {err}", step, threads) for c in configs]
    took = f"trained in {time.perf_counter() - started:.1f}s"
    return [RunOutcome(c.run_id, "done", took, step, threads) for c in configs]


def stopped_early(job: Job, reason: str, *, failed: bool = False, trace: str | None = None) -> list[RunOutcome]:
    """Record that ``job`` stopped outside of its runs' code (worker killed, job cancelled or crashed).

    Unfinished runs get ``interrupted.json`` (they resume on the next sweep) or, with ``failed``,
    ``error.json`` (rerun by ``--retry-failed``); finished runs stay done.
    """
    outcomes = []
    for config, run_dir in zip(job.configs, job.run_dirs):
        if results.is_finished(run_dir):
            outcomes.append(RunOutcome(config.run_id, "done", "finished before the job stopped"))
        elif failed:
            record_error(run_dir, reason, trace)
            outcomes.append(RunOutcome(config.run_id, "failed", reason))
        else:
            record_interrupted(run_dir, reason)
            outcomes.append(RunOutcome(config.run_id, "interrupted", reason))
    return outcomes


def _checkpoint_step(run_dir: Path) -> int | None:
    path = run_dir / results.CHECKPOINT
    hint = f"it was moved to {CORRUPT_CHECKPOINT}; rerun with --retry-failed to restart the run from step 0"
    return int(results.load_torch(path, hint, ("step",))["step"]) if path.is_file() else None
