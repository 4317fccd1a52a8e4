"""Executors: where jobs run. ``serial`` (this process), ``local`` (a process pool over the cores) and
``slurm`` (job arrays on a Slurm cluster through submitit).

Each has ``check()`` (raises ``ValueError`` before anything is submitted when it cannot run here),
``slots`` (how many jobs run at once, so the planner splits batches until every core has work) and
``run(jobs, out, advance) -> outcomes``, where a job that stops outside its runs' code (a worker killed,
a Slurm job cancelled or timed out) is recorded in its runs' directories and reported, not raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from ..errors import UsageError
from ..threads import available_cores, thread_environment, torch_threads
from ..workers import run_task, start_worker
from .jobs import Job, RunOutcome, run_job, stopped_early
from .state import forget_slurm_jobs, record_slurm_jobs

EXECUTORS = ("serial", "local", "slurm")
# submitit asks Slurm for its requeue signal 90 s before the time limit (--signal=USR2@90), which Slurm may deliver up
# to 60 s earlier still: a job of 1 or 2 minutes could be signalled at once and requeued without a step done, using up
# its requeues. 3 minutes leave every attempt at least 30 s to train and checkpoint.
MIN_TIME = 3
# sbatch's words for a refused resource -> the option asking for it (its spec name and flag) and what it asks
SBATCH_CULPRITS = (("generic resource (gres)", "gpus", "--gpus", "GPUs are a generic resource; no node has as many"),
                   ("memory specification", "mem_gb", "--mem-gb", "no node has as much memory"))
Advance = Callable[[int], object]


class Executor(Protocol):
    name: str
    slots: int

    def check(self) -> None: ...

    def run(self, jobs: Sequence[Job], out: Path, advance: Advance) -> list[RunOutcome]: ...


class SerialExecutor:
    """Jobs one after another in this process (torch capped at ``threads`` meanwhile, when given).

    Parameters
    ----------
    threads : int or None, optional
        Torch threads while the jobs run, an explicit choice that overrides the runs' policy. Default None: the
        package's policy.

    Raises
    ------
    UsageError
        When ``threads`` is below 1.
    """

    name, slots = "serial", 1

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be >= 1 (or None: torch's default), got {threads}")
        self.threads = threads

    def check(self) -> None:
        """Nothing to check: this process can always run jobs."""
        return None

    def run(self, jobs: Sequence[Job], out: Path, advance: Advance) -> list[RunOutcome]:
        """Run ``jobs`` one after another with ``run_job``.

        Parameters
        ----------
        jobs : sequence of Job
            Run in order, in this process, each by one call of ``run_job``.
        out : Path
            Unused in-process: each job carries its runs' directories (``Job.run_dirs``).
        advance : callable
            Called after each job with its number of runs (the progress bar's ``update``).

        Returns
        -------
        list of RunOutcome
            The outcomes of every job's runs, in the order of ``jobs``.
        """
        outcomes = []
        with torch_threads(self.threads, explicit=True):  # --threads overrides the runs' policy
            for job in jobs:
                outcomes += run_job(job)
                advance(len(job.configs))
        return outcomes


class LocalExecutor:
    """A pool of ``workers`` processes, each pinned to ``threads`` threads before it imports torch.

    Workers are spawned (not forked) and die with this process (``workers.start_worker``).

    Parameters
    ----------
    workers : int or None, optional
        Worker processes. Default None: one per core this process may use (``threads.available_cores``).
    threads : int or None, optional
        Torch/BLAS threads of each worker. Default None: its share of the cores, max(1, cores // workers).

    Raises
    ------
    UsageError
        When ``workers`` or ``threads`` is below 1.
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        cores = available_cores()
        self.workers = cores if workers is None else workers
        if self.workers < 1:
            raise UsageError(f"workers must be >= 1 (or None: one per core), got {workers}")
        self.threads = max(1, cores // self.workers) if threads is None else threads
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1 (or None: cores // workers), got {threads}")
        self.slots = self.workers

    def check(self) -> None:
        """Nothing to check: a process pool can always run here."""
        return None

    def run(self, jobs: Sequence[Job], out: Path, advance: Advance) -> list[RunOutcome]:
        """Run ``jobs`` on a pool of at most ``workers`` processes, each job in one worker.

        A job whose worker died is recorded as interrupted (its runs resume next time), one that crashed as
        failed. Interrupted (e.g. Ctrl-C), the queued jobs are dropped and the running ones left to their
        checkpoints.

        Parameters
        ----------
        jobs : sequence of Job
            Submitted to the pool together, one job per worker at a time.
        out : Path
            Unused by the pool: each job carries its runs' directories.
        advance : callable
            Called as each job completes (in any order) with its number of runs.

        Returns
        -------
        list of RunOutcome
            One outcome per run, in the order the jobs completed.
        """
        if not jobs:
            return []
        # spawn, not fork: a fresh interpreter whose initializer sets the thread caps before torch loads
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_worker, initargs=(self.threads, os.getpid()))
        outcomes: list[RunOutcome] = []
        try:
            futures = {pool.submit(run_task, run_job, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    outcomes += future.result()
                except BrokenProcessPool as err:
                    outcomes += stopped_early(job, f"a worker process died before the job finished ({err})")
                except Exception as err:
                    outcomes += stopped_early(job, f"the job crashed: {type(err).__name__}: {err}", failed=True,
                                              trace="".join(traceback.format_exception(err)))
                advance(len(job.configs))
        except BaseException:  # interrupted: drop the queued jobs (the workers refuse those already handed to them),
            # leave the running ones to save their steps (each worker got the same Ctrl-C: ``workers.run_task``)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each Slurm job (one job = one batch of runs).

    Validated on construction; ``from_dict`` reads them from a spec's ``[slurm]`` table.

    Attributes
    ----------
    partition : str or None
        The partition. Default None: the cluster's default.
    time : int
        The time limit in minutes, >= 3 (``MIN_TIME``: submitit has Slurm signal the job 90 s before its limit,
        and Slurm may signal up to 60 s early); a job that reaches it is requeued (at most ``max_requeues`` times)
        and resumes from its runs' checkpoints, as is a preempted job. Default 60.
    cpus : int
        CPUs per job, >= 1; each job's BLAS pools are capped at them. Default 1.
    gpus : int
        GPUs per node, >= 0. Default 0.
    mem_gb : float or None
        Memory per job in GB, > 0. Default None: the partition's default.
    array_parallelism : int
        At most this many jobs of the array run at once, >= 1. Default 256.
    max_requeues : int
        Requeues after a time-out, >= 0. Default 3.
    account : str or None
        The account charged. Default None.

    Raises
    ------
    UsageError
        On construction, for a value out of its range.
    """

    partition: str | None = None
    time: int = 60
    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 256
    max_requeues: int = 3
    account: str | None = None

    def __post_init__(self) -> None:
        why = {"time": " (minutes: Slurm signals a job up to 150 s before its limit to requeue it)"}
        for name, low in (("time", MIN_TIME), ("cpus", 1), ("gpus", 0), ("array_parallelism", 1), ("max_requeues", 0)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise UsageError(f"slurm.{name} must be an integer >= {low}{why.get(name, '')}, "
                                 f"got {getattr(self, name)!r}")
        if self.mem_gb is not None and not self.mem_gb > 0:
            raise UsageError(f"slurm.mem_gb must be positive (or None: the partition's default), got {self.mem_gb}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SlurmOptions:
        """The options of a spec's ``[slurm]`` table.

        Parameters
        ----------
        values : dict of str to Any
            Option name -> value; missing options take their defaults.

        Returns
        -------
        SlurmOptions
            The validated options.

        Raises
        ------
        UsageError
            For an unknown option or a value out of its range.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UsageError(f"slurm: unknown options {unknown}; allowed: {known}")
        return cls(**values)

    def parameters(self, name: str) -> dict[str, Any]:
        """submitit ``SlurmExecutor`` parameters; each job's BLAS pools are capped at its CPUs.

        Parameters
        ----------
        name : str
            The Slurm job name.

        Returns
        -------
        dict of str to Any
            ``job_name``, ``time``, ``cpus_per_task``, ``array_parallelism``, ``setup`` (exports of the thread
            variables), and ``partition``, ``account``, ``gpus_per_node``, ``mem`` (in MB) where set.
        """
        params: dict[str, Any] = {
            "job_name": name, "time": self.time, "cpus_per_task": self.cpus,
            "array_parallelism": self.array_parallelism,
            "setup": [f"export {k}={v}" for k, v in thread_environment(self.cpus).items()],
        }
        optional = {"partition": self.partition, "account": self.account, "gpus_per_node": self.gpus or None,
                    "mem": None if self.mem_gb is None else f"{math.ceil(self.mem_gb * 1024)}M"}
        return params | {k: v for k, v in optional.items() if v is not None}


class SlurmJob(submitit.helpers.Checkpointable):
    """``run_job`` on a Slurm node. Preempted or timed out, submitit requeues the same call, which
    skips the runs finished meanwhile and resumes the others from their last checkpoints."""

    def __call__(self, job: Job) -> list[RunOutcome]:
        return run_job(job)


class SlurmExecutor:
    """Jobs as one Slurm job array through submitit; logs in ``OUT/slurm``.

    Parameters
    ----------
    options : SlurmOptions or None, optional
        Resources of each job. Default None: ``SlurmOptions()``.
    poll_seconds : float, optional
        How often to look for finished jobs' results, > 0. Default 1.0.
    sacct_seconds : float, optional
        How often to ask Slurm (one ``sacct`` for all jobs) for their states, to notice cancelled, timed-out or
        killed jobs, > 0. Default 10.0.

    Raises
    ------
    UsageError
        When ``poll_seconds`` or ``sacct_seconds`` is not positive.
    """

    name, slots = "slurm", 1

    def __init__(self, options: SlurmOptions | None = None, poll_seconds: float = 1.0,
                 sacct_seconds: float = 10.0) -> None:
        if not (poll_seconds > 0 and sacct_seconds > 0):
            raise UsageError(f"poll_seconds and sacct_seconds must be positive, got {poll_seconds}, {sacct_seconds}")
        self.options = options or SlurmOptions()
        self.poll_seconds, self.sacct_seconds = poll_seconds, sacct_seconds

    def check(self) -> None:
        """Check for a reachable cluster (``sinfo`` answers) with the asked-for partition, whose nodes have the
        CPUs asked for.

        Raises
        ------
        UsageError
            When ``sinfo`` is not on PATH, does not answer in 30 s or fails, the partition does not exist, or no
            node of it has ``cpus`` CPUs.
        """
        sinfo = shutil.which("sinfo")
        hint = "start one (e.g. .ci/start-slurm) or use --executor local"
        if sinfo is None:
            raise UsageError(f"executor: 'slurm' needs Slurm's commands (sinfo, sbatch) on PATH; none found; {hint}")
        try:
            answer = subprocess.run([sinfo, "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired as err:
            raise UsageError(f"executor: 'slurm': sinfo did not answer in 30 s; {hint}") from err
        if answer.returncode != 0:
            raise UsageError(f"executor: 'slurm' cannot reach a Slurm cluster (sinfo: {answer.stderr.strip()}); {hint}")
        partitions = [p.rstrip("*") for p in answer.stdout.split()]
        if self.options.partition is not None and self.options.partition not in partitions:
            raise UsageError(f"slurm.partition must be one of {partitions}, got {self.options.partition!r}")
        self._check_fits(sinfo)

    def _check_fits(self, sinfo: str) -> None:
        """Refuse more CPUs than any node of the partition has: Slurm queues such a job, pending for ever
        (reason PartitionConfig), and the sweep would wait on it without end."""
        fields = ["-h", "-o", "%P|%c"] + (["-p", self.options.partition] if self.options.partition else [])
        try:
            answer = subprocess.run([sinfo, *fields], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return  # sinfo answered just now: leave it to sbatch
        cpus = []
        for line in answer.stdout.splitlines():
            partition, _, count = line.partition("|")
            if self.options.partition is None and not partition.endswith("*"):
                continue  # not the default partition, where the jobs go
            try:
                cpus.append(int(count.strip().rstrip("+")))
            except ValueError:
                continue
        if answer.returncode == 0 and cpus and self.options.cpus > max(cpus):
            where = repr(self.options.partition) if self.options.partition else "the default partition"
            raise UsageError(f"slurm.cpus must be at most {max(cpus)} (the most CPUs of a node in {where}), "
                             f"got {self.options.cpus}")

    def submit(self, jobs: Sequence[Job], out: Path) -> list[submitit.Job]:
        """Submit ``jobs`` as one array, named ``implicitrank-<out's name>``, logs in ``out/slurm``
        (``<job id>_<task>_log.out`` and ``.err``).

        Parameters
        ----------
        jobs : sequence of Job
            The jobs, one array task each.
        out : Path
            The sweep directory, whose name names the array; logs go to ``out/slurm``.

        Returns
        -------
        list of submitit.Job
            submitit's handles, in the order of ``jobs`` (``.job_id`` as ``scancel`` takes it).

        Raises
        ------
        UsageError
            When sbatch refuses the array (e.g. memory or GPUs no node has), with sbatch's reason, the option
            behind it when sbatch's words name one (``--gpus`` for a gres refusal, ``--mem-gb`` for memory), and
            the options.
        """
        # one folder for every job, made before sbatch: a folder per job (out/slurm/%j) was made only after sbatch
        # returned, and an array task that started first failed at once (slurmstepd: could not open its log file)
        executor = submitit.SlurmExecutor(folder=out / "slurm", max_num_timeout=self.options.max_requeues)
        executor.update_parameters(**self.options.parameters(f"implicitrank-{out.name}"))
        echoed = io.StringIO()  # submitit prints a refusing sbatch's stderr itself: said once, in the error below
        try:
            with contextlib.redirect_stderr(echoed), executor.batch():
                handles = [executor.submit(SlurmJob(), job) for job in jobs]
        except FailedJobError as err:  # sbatch refused the array (e.g. GPUs or memory no node has): bad options
            said = "; ".join(line.strip().removeprefix("sbatch: error: ") for line in str(err).splitlines()
                             if line.strip())
            options = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.options).items() if v is not None)
            culprit = next((f"; most likely {flag} (slurm.{name} = {getattr(self.options, name)!r}: {what})"
                            for phrase, name, flag, what in SBATCH_CULPRITS if phrase in said.lower()), "")
            raise UsageError(f"slurm: sbatch refused the jobs ({said}){culprit}; the options were: {options}") from err
        sys.stderr.write(echoed.getvalue())
        # which job runs each run: a rerun, or sweep status, after Ctrl-C (the jobs keep running) leaves them to it
        record_slurm_jobs(out, submitted(handles, jobs))
        return handles

    def wait(self, handles: Sequence[submitit.Job], jobs: Sequence[Job], advance: Advance) -> list[RunOutcome]:
        """Collect each job's outcomes as it ends.

        A cancelled, timed-out or killed job is recorded as interrupted (its runs resume next time), a crashed
        one as failed. On Ctrl-C the submitted jobs keep running; their ids are printed and the interrupt
        re-raised. Their runs show as running in ``sweep status`` while the jobs are queued or running, and a
        rerun leaves those runs to them (``OUT/slurm/jobs.json`` records which job runs which run).

        Parameters
        ----------
        handles : sequence of submitit.Job
            The submitted jobs' handles (``submit``).
        jobs : sequence of Job
            The jobs, in the order of ``handles``.
        advance : callable
            Called with each finished job's number of runs.

        Returns
        -------
        list of RunOutcome
            One outcome per run of every job, in the order the jobs ended.
        """
        outcomes: list[RunOutcome] = []
        pending = list(zip(handles, jobs))
        asked = time.monotonic()
        try:
            while pending:
                if time.monotonic() - asked >= self.sacct_seconds:
                    pending[0][0].watcher.update()  # one sacct for all jobs (submitit alone backs off to 10 min)
                    asked = time.monotonic()
                running = []
                for handle, job in pending:
                    if not handle.done():
                        running.append((handle, job))
                        continue
                    try:
                        outcomes += handle.result()
                    except UncompletedJobError:
                        outcomes += stopped_early(job, f"slurm job {handle.job_id} ended {handle.state} before "
                                                       "its runs finished")
                    except FailedJobError as err:
                        outcomes += stopped_early(job, f"slurm job {handle.job_id} crashed", failed=True,
                                                  trace=str(err))
                    advance(len(job.configs))
                pending = running
                if pending:
                    time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            ids = " ".join(h.job_id for h, _ in pending)
            print(f"\nthe submitted Slurm jobs keep running ({ids}); `scancel` them or watch them with "
                  "`implicitrank sweep status OUT` (a rerun leaves their runs to them)", file=sys.stderr)
            raise
        return outcomes

    def run(self, jobs: Sequence[Job], out: Path, advance: Advance) -> list[RunOutcome]:
        """Submit ``jobs`` and wait for them (``submit``, then ``wait``).

        Parameters
        ----------
        jobs : sequence of Job
            One task of the Slurm array each.
        out : Path
            The sweep directory: it names the array and holds its logs in ``out/slurm``.
        advance : callable
            Passed to ``wait``: called as each Slurm job ends with its number of runs.

        Returns
        -------
        list of RunOutcome
            One outcome per run, in the order the Slurm jobs ended (empty when there are no jobs).
        """
        if not jobs:
            return []
        handles = self.submit(jobs, out)
        outcomes = self.wait(handles, jobs, advance)
        forget_slurm_jobs(out, submitted(handles, jobs))  # ended: Slurm may list them a moment longer
        return outcomes


def submitted(handles: Sequence[submitit.Job], jobs: Sequence[Job]) -> dict[str, str]:
    """Run id -> the Slurm job (array task, as ``scancel`` takes it) submitted for it."""
    return {config.run_id: handle.job_id for handle, job in zip(handles, jobs) for config in job.configs}


def make_executor(name: str, *, workers: int | None = None, threads: int | None = None,
                  slurm: SlurmOptions | None = None) -> Executor:
    """An executor by name.

    Parameters
    ----------
    name : str
        ``serial``, ``local`` or ``slurm``.
    workers : int or None, optional
        The local executor's worker processes. Default None: one per core.
    threads : int or None, optional
        Torch threads of the serial executor, or of each local worker. Default None (see each executor).
    slurm : SlurmOptions or None, optional
        The Slurm executor's resources. Default None: ``SlurmOptions()``.

    Returns
    -------
    Executor
        ``SerialExecutor``, ``LocalExecutor`` or ``SlurmExecutor``.

    Raises
    ------
    UsageError
        For an unknown name or unacceptable options.
    """
    if name == "serial":
        return SerialExecutor(threads)
    if name == "local":
        return LocalExecutor(workers, threads)
    if name == "slurm":
        return SlurmExecutor(slurm)
    raise UsageError(f"executor must be one of {list(EXECUTORS)}, got {name!r}")
