"""Plans: a spec expanded into runs, each with a stable id and its own directory, grouped into jobs.

Run ``i`` lives in ``OUT/runs/<run_id>``, where ``run_id`` hashes its validated configuration
(``RunConfig.run_id``), so the same run keeps its directory however the spec is written or reordered.
Runs whose configurations differ only in per-run values (``RunConfig.per_run_fields``: seed, init
scale, learning rate, and the observation-set seed of sampled completion) have equal batch keys and
train together as one batched program: one job. The rest are separate jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..run import RunConfig
from .jobs import Job
from .spec import SweepSpec
from .state import LOCKS, RUNS


@dataclass(frozen=True)
class Plan:
    """The runs of a spec and where they go.

    Attributes
    ----------
    spec : SweepSpec
        The spec expanded.
    out : Path
        The sweep directory; run ``r`` lives in ``out/runs/<r.run_id>``.
    configs : tuple of RunConfig
        Every run's validated configuration, in the order of the spec.
    """

    spec: SweepSpec
    out: Path
    configs: tuple[RunConfig, ...]

    def run_dir(self, config: RunConfig) -> Path:
        """The directory of a run of this plan.

        Parameters
        ----------
        config : RunConfig
            The run; its ``run_id`` names the directory.

        Returns
        -------
        Path
            ``out/runs/<config.run_id>`` (the path only; nothing is created).
        """
        return self.out / RUNS / config.run_id

    def axis_fields(self) -> list[str]:
        """The fields the spec varies, in the order of its axes.

        Returns
        -------
        list of str
            The Cartesian axes' fields, then each zipped group's.
        """
        return [*self.spec.axes, *(k for group in self.spec.zips for k in group)]

    def jobs(self, configs: Sequence[RunConfig], *, batch: bool = True, max_batch: int | None = None,
             min_jobs: int = 1, plots: bool = False, tensorboard: bool = False) -> list[Job]:
        """``configs`` (runs of this plan) grouped into jobs; see ``group_runs``.

        Parameters
        ----------
        configs : sequence of RunConfig
            Runs of this plan (e.g. the ones not done yet).
        batch : bool, optional
            Train runs of equal batch keys together. Default True.
        max_batch : int or None, optional
            At most this many runs a job. Default None (no limit).
        min_jobs : int, optional
            Split the largest jobs until there are at least this many (the executor's slots). Default 1.
        plots : bool, optional
            The jobs draw each run's plots. Default False.
        tensorboard : bool, optional
            The jobs write each run's TensorBoard events. Default False.

        Returns
        -------
        list of Job
            The jobs, with their run directories and the sweep's lock directory ``out/.locks``.

        Raises
        ------
        UsageError
            When ``max_batch`` or ``min_jobs`` is below 1.
        """
        groups = group_runs(configs, batch=batch, max_batch=max_batch, min_jobs=min_jobs)
        return [Job(group, tuple(self.run_dir(c) for c in group), self.out / LOCKS, plots, tensorboard)
                for group in groups]


def plan_sweep(spec: SweepSpec, out: str | Path) -> Plan:
    """Expand ``spec`` (every run validated) into a plan writing under ``out``.

    Parameters
    ----------
    spec : SweepSpec
        The sweep.
    out : str or Path
        The sweep directory.

    Returns
    -------
    Plan
        The plan, with every run's configuration.

    Raises
    ------
    UsageError
        For a combination that is not a valid configuration, or repeated runs (``SweepSpec.configs``).
    """
    return Plan(spec, Path(out), tuple(spec.configs()))


def group_runs(configs: Sequence[RunConfig], *, batch: bool = True, max_batch: int | None = None,
               min_jobs: int = 1) -> list[tuple[RunConfig, ...]]:
    """Runs with equal batch keys together (in their given order), at most ``max_batch`` a job.

    Without ``batch`` every run is its own job. While there are fewer jobs than ``min_jobs`` (the
    executor's parallel slots), the largest job is halved, so that every core gets work.

    Parameters
    ----------
    configs : sequence of RunConfig
        The runs.
    batch : bool, optional
        Group runs of equal ``batch_key``; False: one run a job. Default True.
    max_batch : int or None, optional
        At most this many runs a job, >= 1. Default None (no limit).
    min_jobs : int, optional
        Halve the largest job (of two or more runs) while there are fewer jobs than this, >= 1. Default 1.

    Returns
    -------
    list of tuple of RunConfig
        The jobs' runs.

    Raises
    ------
    UsageError
        When ``max_batch`` or ``min_jobs`` is below 1.
    """
    if max_batch is not None and max_batch < 1:
        raise UsageError(f"max_batch must be >= 1 (or None: no limit), got {max_batch}")
    if min_jobs < 1:
        raise UsageError(f"min_jobs must be >= 1, got {min_jobs}")
    if not batch:
        return [(c,) for c in configs]
    by_key: dict[str, list[RunConfig]] = {}
    for config in configs:
        by_key.setdefault(config.batch_key(), []).append(config)
    jobs = [tuple(group[i:i + (max_batch or len(group))])
            for group in by_key.values() for i in range(0, len(group), max_batch or len(group))]
    while 0 < len(jobs) < min_jobs:
        largest = max(range(len(jobs)), key=lambda i: len(jobs[i]))
        job = jobs[largest]
        if len(job) < 2:
            break
        half = (len(job) + 1) // 2
        jobs[largest:largest + 1] = [job[:half], job[half:]]
    return jobs


def format_plan(plan: Plan, jobs: Sequence[Job], counts: dict[str, int]) -> str:
    """The dry-run view: what the sweep holds, what it would run, and how the runs are grouped.

    Parameters
    ----------
    plan : Plan
        The sweep's plan.
    jobs : sequence of Job
        The jobs it would run.
    counts : dict of str to int
        How many runs have each status (``done``, ``running``, ``failed``, ``pending``).

    Returns
    -------
    str
        Lines: the sweep and its size, its axes, the status counts, then one line per job with its shared axis
        values and the ones that vary per run.
    """
    fields = plan.axis_fields()
    sizes = " × ".join(f"{k} ({len(v)})" for k, v in plan.spec.axes.items())
    sizes += "".join(f" × [{' + '.join(g)}] ({len(next(iter(g.values())))})" for g in plan.spec.zips)
    lines = [f"sweep {plan.spec.name!r}: {len(plan.configs)} runs -> {plan.out}",
             f"axes: {sizes or '(none: the base configuration only)'}",
             "status: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
             f"would run {sum(len(j.configs) for j in jobs)} runs in {len(jobs)} jobs:"]
    for i, job in enumerate(jobs):
        shared, varying = [], []
        for name in fields:
            values = list(dict.fromkeys(_show(getattr(c, name)) for c in job.configs))
            (shared if len(values) == 1 else varying).append(f"{name}={','.join(values)}")
        lines.append(f"  job {i:>3}: {len(job.configs):>4} runs  " + " ".join(shared)
                     + (f"  | per run: {' '.join(varying)}" if varying else ""))
    return "\n".join(lines)


def _show(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
