"""Razin, Maman & Cohen (ICML 2022) §5, the locality bias of CNNs and the regularizer that counters it: test
accuracy against the distance between the images (Is Same Class) and the path length (Pathfinder), one curve
per regularization weight λ.

A thin adapter: the experiment itself is ``implicitrank.experiments.locality.run_locality_experiment`` (its
docstring has the set-ups and scales); this module runs both tasks under ``out_dir/<task>/`` and turns its
claim rows into ``Claim`` objects. At paper scale Is Same Class needs CIFAR-10 (``data`` = the directory of
the python batches); without it those claims are reported "not run (needs --data)".
"""

from __future__ import annotations

from pathlib import Path

from .claims import Claim, check, not_run
from .locality import PUBLISHED, TASKS, run_locality_experiment, setup_for

NAME = "razin2022-locality"
TITLE = "Razin, Maman & Cohen 2022 §5: locality bias (Is Same Class, Pathfinder) and its regularizer"
SCALES = {"test": 1, "quick": 1, "paper": 3}  # seeds (repetitions) per (λ, difficulty)


def run(scale: str, out_dir: Path, seeds: int | None, data: str | None) -> list[Claim]:
    """Both tasks at ``scale``; ``data`` is the CIFAR-10 directory for Is Same Class at paper scale."""
    repetitions = seeds or SCALES[scale]
    return [claim for task in TASKS for claim in run_task(task, scale, out_dir, repetitions, data)]


def run_task(task: str, scale: str, out_dir: Path, repetitions: int, data: str | None) -> list[Claim]:
    """One task's figure under ``out_dir/<task>/`` and its claims."""
    overrides = {}
    if task == "is-same-class" and scale == "paper":
        cifar = data or setup_for(task, scale).cifar_path
        if not Path(cifar).is_dir():
            return [not_run(f"{task}: test accuracy at λ={lam:g}, d={d}", value, "needs --data (CIFAR-10)")
                    for lam, row in PUBLISHED[task].items() for d, value in row.items()]
        overrides["cifar_path"] = str(cifar)
    rows = run_locality_experiment(task, scale, out_dir, list(range(repetitions)), progress=scale != "test",
                                   **overrides)
    return [to_claim(task, row) for row in rows]


def to_claim(task: str, row: dict) -> Claim:
    """A claim row of ``run_locality_experiment`` (claim, paper_value, our_value, tolerance, passed) as a Claim;
    values are test accuracies in percent or differences in percentage points."""
    return check(f"{task}: {row['claim']}", row["paper_value"], row["our_value"],
                 f"{row['tolerance']:g} points (see claim)", bool(row["passed"]))
