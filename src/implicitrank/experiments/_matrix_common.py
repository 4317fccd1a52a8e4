"""Shared pieces of the matrix experiments (Arora et al. 2019; Razin & Cohen 2020): batched grids, tidy CSV, figures.

``run_grid`` trains a list of ``RunConfig``s, grouping those that differ only in per-run values (seed, data seed,
init scale, lr) into one batched program (``run.run_batch``), and returns each run's summary and metric rows.
Run directories go to a temporary folder: the experiment's own CSV is the table behind its figures.
"""

from __future__ import annotations

import csv
import math
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from .. import results
from ..run import RunConfig, run_batch

DEPTH_COLORS = {1: "tab:gray", 2: "tab:blue", 3: "tab:orange", 4: "tab:green"}
BASELINE_COLOR = "black"


@dataclass(frozen=True)
class RunResult:
    """One finished run: its configuration, summary (``run._finish``) and recorded metric rows."""

    config: RunConfig
    summary: dict
    rows: list[dict]


def run_grid(configs: Sequence[RunConfig], progress: bool = False) -> list[RunResult]:
    """Train ``configs`` (in batches of equal ``batch_key``) and return their results in the given order."""
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.batch_key(), []).append(i)
    out: list[RunResult | None] = [None] * len(configs)
    with tempfile.TemporaryDirectory(prefix="implicitrank-reproduce-") as tmp:
        for g, members in enumerate(groups.values()):
            dirs = [Path(tmp) / f"batch{g}" / f"run{i}" for i in members]
            batch = run_batch([configs[i] for i in members], dirs, progress=progress, plots=False)
            for i, d, summary in zip(members, dirs, batch.summaries):
                out[i] = RunResult(configs[i], summary, results.read_metrics(d))
    return [r for r in out if r is not None]


def median(values: Iterable[float | None]) -> float:
    """Median of the finite values (NaN when there are none: a missing number never passes a claim)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(finite) if finite else math.nan


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


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
