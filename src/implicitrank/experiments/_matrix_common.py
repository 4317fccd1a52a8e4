"""Shared pieces of the matrix experiments (Arora et al. 2019; Razin & Cohen 2020): batched grids, tidy CSV, figures.

``run_grid`` trains a list of ``RunConfig``s, grouping those that differ only in per-run values (seed, data seed,
init scale, lr) into one batched program (``run.run_batch``), and returns each run's summary and metric rows.
Batches that cannot share a program (other depths, shapes) train side by side in worker processes, one torch
thread each, as many as there are free cores (``threads.free_cores``), longest first; small problems, where
starting a worker (importing torch) costs more than it saves, and a process that is itself a worker stay serial.
Run directories go to a temporary folder: the experiment's own CSV is the table behind its figures.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from .. import results
from ..run import RunConfig, device_of, run_batch
from ..threads import free_cores, pin_threads, policy_threads
from . import claims

# Multiply-adds of one run's step (rows·cols·min(rows, cols)) from which the batches of a grid train in parallel
# workers: the papers' 100×100 (10^6) is; the quick scale's 30×30 (2.7·10^4), whose whole grid takes about as long
# as starting a worker, is not.
PARALLEL_WORK = 10**5

DEPTH_COLORS = {1: "tab:gray", 2: "tab:blue", 3: "tab:orange", 4: "tab:green"}
BASELINE_COLOR = "black"


@dataclass(frozen=True)
class RunResult:
    """One finished run: its configuration, summary (``run._finish``) and recorded metric rows."""

    config: RunConfig
    summary: dict
    rows: list[dict]


def run_grid(configs: Sequence[RunConfig], progress: bool = False) -> list[RunResult]:
    """Train ``configs`` (in batches of equal ``batch_key``, in parallel workers where that pays; module
    docstring) and return their results in the given order."""
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.batch_key(), []).append(i)
    batches = sorted(groups.values(), key=lambda members: -_cost(configs[members[0]], len(members)))
    first = configs[0] if configs else None
    workers = 1
    if (first is not None and len(batches) > 1 and device_of(first).type == "cpu"
            and multiprocessing.parent_process() is None
            and math.prod(first.shape) * min(first.shape) >= PARALLEL_WORK):
        workers = min(len(batches), max(1, free_cores() // policy_threads()))
    out: list[RunResult | None] = [None] * len(configs)
    with tempfile.TemporaryDirectory(prefix="implicitrank-reproduce-") as tmp:
        jobs = [([configs[i] for i in members], [Path(tmp) / f"batch{g}" / f"run{i}" for i in members])
                for g, members in enumerate(batches)]
        if workers == 1:
            done = [_train_batch(batch, dirs, progress) for batch, dirs in jobs]
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=pin_threads,
                                     initargs=(policy_threads(),)) as pool:
                done = list(pool.map(_train_batch, *zip(*jobs), [False] * len(jobs)))
        for members, (summaries, rows) in zip(batches, done):
            for i, summary, metric_rows in zip(members, summaries, rows):
                out[i] = RunResult(configs[i], summary, metric_rows)
    return [r for r in out if r is not None]


def _train_batch(batch: list[RunConfig], dirs: list[Path], progress: bool) -> tuple[list[dict], list[list[dict]]]:
    """One batch's summaries and metric rows (a worker's job: plain data, cheap to send back)."""
    summaries = run_batch(batch, dirs, progress=progress, plots=False).summaries
    return summaries, [results.read_metrics(d) for d in dirs]


def _cost(config: RunConfig, runs: int) -> float:
    """A batch's relative cost, to start the longest first: runs × depth × matrix products' size."""
    return runs * config.depth * math.prod(config.shape) * min(config.shape)


def median(values: Iterable[float | None]) -> float:
    """Median of the values; NaN when there are none or any is NaN, inf or None (nothing is dropped silently: a
    missing number never passes a claim)."""
    values = [math.nan if v is None else float(v) for v in values]
    return claims.median(values) if values else math.nan


def worst(values: Iterable[float | None]) -> float:
    """The largest value; NaN when any is NaN, inf or None (``max`` would skip a NaN after the first element)."""
    values = [math.nan if v is None else float(v) for v in values]
    return max(values) if values and all(math.isfinite(v) for v in values) else math.nan


def per_seed(rows: list[dict], key: str, seeds: Iterable[int], **match) -> list[float]:
    """For each seed, the median of ``key`` over the rows of that seed matching ``match`` (NaN if none)."""
    return [median(r[key] for r in rows if r["seed"] == s and all(r[k] == v for k, v in match.items()))
            for s in seeds]


def write_csv(path: Path, rows: list[dict]) -> Path:
    """A tidy table: one row per observation, the union of the rows' keys as columns (in first-seen order)."""
    if not rows:
        raise ValueError(f"rows: nothing to write to {path}")
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k)) for k in columns} for row in rows)
    return path


def _cell(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def panels(nrows: int, ncols: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes
