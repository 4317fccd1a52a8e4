"""What a sweep directory says about its runs: done, running, failed or pending; and its locks.

    OUT/sweep.json             the spec, the run ids in order, and every run's configuration
    OUT/runs/<run_id>/         the run directory (``implicitrank.results``), plus
        error.json             a failed attempt: error, traceback, where and when
        interrupted.json       why the last attempt stopped early (cancelled, worker killed, ...)
    OUT/.locks/sweep.lock      held by the sweep process writing OUT
    OUT/.locks/<run_id>.lock   held by the process training that run
    OUT/slurm/jobs.json        run id -> the Slurm job (array task) last submitted for it

A run is *done* once it has ``summary.json`` (written last, atomically) and is never rerun;
*running* while a process holds its lock, or while the Slurm job submitted for it is queued or running (a sweep
stopped by Ctrl-C leaves its jobs to Slurm: a rerun leaves their runs to them); *failed* with ``error.json``
(rerun by ``--retry-failed``);
else *pending*, resuming from its ``checkpoint.pt`` when it has one. Locks are ``flock``s on files:
the kernel drops them when their process dies, however it dies, so a killed sweep leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shutil
import socket
import subprocess
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import results
from ..errors import CorruptFileError, MissingInputError, OutputExistsError

SWEEP, RUNS, LOCKS = "sweep.json", "runs", ".locks"
ERROR, INTERRUPTED = "error.json", "interrupted.json"
CORRUPT_SUMMARY, CORRUPT_CHECKPOINT = "summary.corrupt.json", "checkpoint.corrupt.pt"  # set aside, never deleted
SWEEP_HINT = "rerun the sweep's spec with this --out: it writes sweep.json again and keeps the finished runs"
STATUSES = ("done", "running", "failed", "pending")
SLURM_JOBS = "slurm/jobs.json"
# squeue's states of a job that has not ended (COMPLETING has: its runs' process is gone or going)
LIVE_SLURM_STATES = ("PENDING", "CONFIGURING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
                     "SUSPENDED")


@dataclass(frozen=True)
class RunState:
    """A run's status and the detail behind it (error, lock holder, why it was interrupted).

    Attributes
    ----------
    run_id : str
        The run's id (its directory name under ``out/runs``).
    status : str
        ``done``, ``running``, ``failed`` or ``pending`` (see the module docstring).
    detail : str
        The error, the lock holder, why it was interrupted, whether it resumes from a checkpoint, or (done) the
        step at which it diverged. Default ``""``.
    resumable : bool
        The run has a checkpoint to resume from. Default False.
    """

    run_id: str
    status: str
    detail: str = ""
    resumable: bool = False


def holder() -> dict:
    """Who holds a lock: host, pid, Slurm job (as ``scancel`` names it), since when."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job, "since": time.time()}


def describe_holder(info: dict) -> str:
    text = f"pid {info.get('pid')} on {info.get('host')}"
    return text + (f" (slurm job {info['slurm_job']})" if info.get("slurm_job") else "")


@contextlib.contextmanager
def hold_lock(path: Path, wait: float = 1.0) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` for the block; yields whether it was acquired.

    Waits up to ``wait`` seconds (a status probe holds a lock for microseconds) before giving up.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder()).encode(), 0)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_holder(path: Path) -> dict | None:
    """The holder of the lock at ``path``, or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.pread(fd, 4096, 0) or b"{}")
            except json.JSONDecodeError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """Refuse (``FileExistsError``) to write ``out`` while another sweep writes it."""
    with hold_lock(out / LOCKS / "sweep.lock", wait=0.0) as acquired:
        if not acquired:
            info = lock_holder(out / LOCKS / "sweep.lock") or {}
            raise OutputExistsError(f"out: {out} is being written by another sweep ({describe_holder(info)}); "
                                  "wait for it to finish or choose another --out")
        yield


def run_lock_path(lock_dir: Path, run_id: str) -> Path:
    return lock_dir / f"{run_id}.lock"


def write_sweep(out: Path, spec: dict, configs: dict[str, dict], *, dry_run: bool = False) -> None:
    """Record the sweep (spec and run configs by id) in ``out``; refuse (``FileExistsError``) a
    directory holding other runs or something else (the temporary file of a killed write of sweep.json is not).
    ``dry_run``: only check. An intact record of the same runs is kept as it is: rewritten from a rerun (``sweep
    DIR`` reads the spec back with its axes in another order) it listed the runs, and so results.csv's rows, in
    another order."""
    path, killed = out / SWEEP, results.killed_writes(out)  # a sweep killed as it wrote sweep.json left only these
    if path.exists():
        try:
            recorded = set(results.read_json(path)["run_ids"])
        except CorruptFileError:  # truncated: rewritten from the spec below; the run directories are kept
            recorded = None
        if recorded is not None and recorded != set(configs):
            raise OutputExistsError(f"out: {out} holds a sweep of other runs; choose another --out")
        if recorded is not None:
            return
    elif out.exists() and any(p.name != LOCKS and p not in killed for p in out.iterdir()):
        raise OutputExistsError(f"out: {out} is not empty and holds no {SWEEP}; choose another --out")
    if not dry_run:
        for leftover in killed:
            leftover.unlink(missing_ok=True)
        results.write_json(path, {"spec": spec, "run_ids": list(configs), "configs": configs})


def read_sweep(out: str | Path) -> dict:
    path = Path(out) / SWEEP
    if not path.is_file():
        raise MissingInputError(f"dir: {str(out)!r} is not a sweep directory (no {SWEEP})")
    return results.read_json(path, SWEEP_HINT)


def record_slurm_jobs(out: Path, jobs: dict[str, str]) -> None:
    """Add ``jobs`` (run id -> Slurm job id as ``scancel`` takes it) to ``OUT/slurm/jobs.json``."""
    path = out / SLURM_JOBS
    recorded = {}
    if path.is_file():
        with contextlib.suppress(CorruptFileError):
            recorded = results.read_json(path)
    results.write_json(path, {**recorded, **jobs})


def forget_slurm_jobs(out: Path, jobs: dict[str, str]) -> None:
    """Remove ``jobs`` (run id -> Slurm job id), ended, from ``OUT/slurm/jobs.json``; a run submitted again
    meanwhile keeps its newer job."""
    path = out / SLURM_JOBS
    with contextlib.suppress(CorruptFileError, FileNotFoundError):
        recorded = results.read_json(path)
        results.write_json(path, {r: j for r, j in recorded.items() if jobs.get(r) != j})


def live_slurm_jobs(out: Path) -> dict[str, tuple[str, str]]:
    """Run id -> (Slurm job id, its squeue state) for the runs whose recorded job (``record_slurm_jobs``) has not
    ended (one ``squeue``); empty when none is recorded or ``squeue`` does not answer."""
    path, squeue = out / SLURM_JOBS, shutil.which("squeue")
    if squeue is None or not path.is_file():
        return {}
    try:
        recorded = results.read_json(path)
        answer = subprocess.run([squeue, "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"], capture_output=True,
                                text=True, timeout=30)
    except (CorruptFileError, OSError, KeyError, subprocess.TimeoutExpired):
        return {}
    states = dict(line.split("|", 1) for line in answer.stdout.split() if "|" in line)
    return {run_id: (job, states[job]) for run_id, job in recorded.items() if states.get(job) in LIVE_SLURM_STATES}


def run_state(out: Path, run_id: str, slurm_jobs: dict[str, tuple[str, str]] | None = None) -> RunState:
    """The state of run ``run_id``; ``slurm_jobs`` (``live_slurm_jobs``) says which runs' Slurm jobs have not
    ended: such a run is running (queued on Slurm, or starting there) unless done. Default None: none."""
    run_dir = out / RUNS / run_id
    if not run_dir.is_dir():  # never started (most runs of a new sweep): one look at its lock says all
        info = lock_holder(run_lock_path(out / LOCKS, run_id))
        if info is None:
            return slurm_state(run_id, slurm_jobs) or RunState(run_id, "pending")
        return RunState(run_id, "running", describe_holder(info))
    if results.is_finished(run_dir):
        summary = results.read_json(run_dir / results.SUMMARY)
        if summary.get("status") == "diverged":  # finished, but without numbers: say so wherever runs are listed
            return RunState(run_id, "done", f"diverged at step {summary.get('diverged_at_step')} (NaN/inf): no "
                                            "final numbers")
        if summary.get("status") == "metrics_not_finite":
            return RunState(run_id, "done", summary.get("message", "final metrics NaN/inf"))
        return RunState(run_id, "done")
    info = lock_holder(run_lock_path(out / LOCKS, run_id))
    resumable = (run_dir / results.CHECKPOINT).is_file()
    if info is not None:
        return RunState(run_id, "running", describe_holder(info), resumable)
    if (queued := slurm_state(run_id, slurm_jobs, resumable)) is not None:
        return queued
    if (run_dir / results.SUMMARY).is_file():  # written, but unreadable: not done
        return RunState(run_id, "failed", f"{run_dir / results.SUMMARY} is truncated or corrupt; "
                        f"--retry-failed trains the run again (keeping the file as {CORRUPT_SUMMARY})")
    if (run_dir / ERROR).is_file():
        error = results.read_json(run_dir / ERROR)
        return RunState(run_id, "failed", f"{error['type']}: {error['message']}", resumable)
    details = ["resumes from its checkpoint"] if resumable else []
    if (run_dir / INTERRUPTED).is_file():
        details.insert(0, f"interrupted: {results.read_json(run_dir / INTERRUPTED)['reason']}")
    return RunState(run_id, "pending", "; ".join(details), resumable)


def slurm_state(run_id: str, slurm_jobs: dict[str, tuple[str, str]] | None,
                resumable: bool = False) -> RunState | None:
    """Running, when the run's Slurm job has not ended (``live_slurm_jobs``); else None."""
    if not slurm_jobs or run_id not in slurm_jobs:
        return None
    job, state = slurm_jobs[run_id]
    return RunState(run_id, "running", f"slurm job {job} {state} (scancel {job} to stop it)", resumable)


def sweep_status(out: str | Path) -> list[RunState]:
    """Every run's state, in the order of the sweep.

    Parameters
    ----------
    out : str or Path
        The sweep directory whose runs' directories, locks and markers are read.

    Returns
    -------
    list of RunState
        One state per run of ``sweep.json``.

    Raises
    ------
    MissingInputError
        When ``out`` is not a sweep directory (no ``sweep.json``).
    CorruptFileError
        When ``sweep.json`` cannot be read.
    """
    out = Path(out)
    return run_states(out, read_sweep(out)["run_ids"])


def run_states(out: Path, run_ids: Iterable[str]) -> list[RunState]:
    """The states of ``run_ids`` in ``out``, with one ``squeue`` for the Slurm jobs a stopped sweep left queued."""
    slurm_jobs = live_slurm_jobs(out)
    return [run_state(out, run_id, slurm_jobs) for run_id in run_ids]


def count(states: list[RunState]) -> dict[str, int]:
    return {s: sum(r.status == s for r in states) for s in STATUSES}


def record_error(run_dir: Path, error: BaseException | str, trace: str | None = None) -> None:
    """Write ``error.json``: the error, its traceback, and where and when it happened."""
    if isinstance(error, BaseException):
        kind, message = type(error).__name__, str(error)
        trace = trace or "".join(traceback.format_exception(error))
    else:
        kind, message = "JobError", error
    results.write_json(run_dir / ERROR, {"type": kind, "message": message, "traceback": trace, **holder()})


def record_interrupted(run_dir: Path, reason: str) -> None:
    results.write_json(run_dir / INTERRUPTED, {"reason": reason, **holder()})


def clear_marks(run_dir: Path) -> None:
    """Forget the last attempt's error and interruption, and remove what its killed writes left (a new attempt
    starts, holding the run's lock: no other process writes there). A checkpoint's half-written temporary file is as
    large as the checkpoint, and was kept beside the run for good."""
    for name in (ERROR, INTERRUPTED):
        (run_dir / name).unlink(missing_ok=True)
    for leftover in results.killed_writes(run_dir):
        leftover.unlink(missing_ok=True)
