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
    """The runs of a spec and where they go."""

    spec: SweepSpec
    out: Path
    configs: tuple[RunConfig, ...]

    def run_dir(self, config: RunConfig) -> Path:
        return self.out / RUNS / config.run_id

    def axis_fields(self) -> list[str]:
        """The fields the spec varies, in the order of its axes."""
        return [*self.spec.axes, *(k for group in self.spec.zips for k in group)]

    def jobs(self, configs: Sequence[RunConfig], *, batch: bool = True, max_batch: int | None = None,
             min_jobs: int = 1, plots: bool = False, tensorboard: bool = False) -> list[Job]:
        """``configs`` (runs of this plan) grouped into jobs; see ``group_runs``."""
        groups = group_runs(configs, batch=batch, max_batch=max_batch, min_jobs=min_jobs)
        return [Job(group, tuple(self.run_dir(c) for c in group), self.out / LOCKS, plots, tensorboard)
                for group in groups]


def plan_sweep(spec: SweepSpec, out: str | Path) -> Plan:
    """Expand ``spec`` (every run validated) into a plan writing under ``out``."""
    return Plan(spec, Path(out), tuple(spec.configs()))


def group_runs(configs: Sequence[RunConfig], *, batch: bool = True, max_batch: int | None = None,
               min_jobs: int = 1) -> list[tuple[RunConfig, ...]]:
    """Runs with equal batch keys together (in their given order), at most ``max_batch`` a job.

    Without ``batch`` every run is its own job. While there are fewer jobs than ``min_jobs`` (the
    executor's parallel slots), the largest job is halved, so that every core gets work.
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
    """The dry-run view: what the sweep holds, what it would run, and how the runs are grouped."""
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
