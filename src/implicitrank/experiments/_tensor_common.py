"""Pieces shared by the tensor experiments (Razin & Cohen 2020; Razin, Maman & Cohen 2021, 2022): batched
training with the papers' global RMSprop, stacking single-run tasks into one batch, per-run summaries of
curves (take-off steps, quartiles over repetitions), the tidy CSV and paper-styled figures."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..optim import global_rmsprop
from ..tasks.completion import Completion
from ..train import Measure, TrainConfig, TrainState, train

RMSPROP_EPS = 1e-6  # Razin et al. 2021/2022 (papers.md, common conventions)


def train_rmsprop(model, task, params: list[Tensor], lr: float, *, max_steps: int, loss_threshold: float,
                  patience: int = 0, record_every: int = 0, measure: Measure | None = None,
                  progress: bool = False) -> TrainState:
    """Full-batch global RMSprop (eps 1e-6) on every run of the batch until each has stayed below
    ``loss_threshold`` (mean squared error over observations, no ½) for ``patience`` steps, or ``max_steps``;
    metrics every ``record_every`` steps."""
    config = TrainConfig(max_steps=max_steps, loss_threshold=loss_threshold, converge_patience=patience,
                         record_every=record_every, record_per_decade=0, progress=progress)
    lrs = torch.full((params[0].shape[0],), lr, dtype=params[0].dtype)
    return train(model, task, params, global_rmsprop(eps=RMSPROP_EPS), lrs, config, measure=measure)


def stack_completions(tasks: Sequence[Completion]) -> Completion:
    """One batched completion whose run b is ``tasks[b]`` (single-run tasks with equal numbers of observations)."""
    if len({t.num_observations for t in tasks}) != 1 or any(t.batch != 1 for t in tasks):
        raise ValueError("tasks must be single-run completions with equal numbers of observations")
    first = tasks[0]

    def per_run(t: Tensor) -> Tensor:
        return t if t.dim() == 3 else t.unsqueeze(0)

    target = None if first.target is None else torch.cat([t.target for t in tasks])
    return Completion(first.shape, torch.cat([per_run(t.indices) for t in tasks]),
                      torch.cat([t.values for t in tasks]), target=target)


def mean_squared_error(w: Tensor, target: Tensor) -> Tensor:
    """Mean over all entries of (W − W*)², per run (B,); for ||W*||_F = 1 it is the squared relative Frobenius
    error divided by the number of entries. The ε-rank's budget is stated in it; the published reconstruction
    errors of Razin & Cohen 2020 are relative Frobenius errors ||W − W*||_F / ||W*||_F, which the claims compare."""
    return (w - target).pow(2).flatten(1).mean(1)


def takeoff_steps(steps: Sequence[int], curves: Tensor, fraction: float = 0.5) -> list[float]:
    """For each curve (column of ``curves``, (T, K)), the first recorded step at which it reaches ``fraction``
    of its final value: when that quantity was learned; NaN for a curve that ends without a number (its run
    diverged), which was a step of −1 before."""
    steps = list(steps)
    out = []
    for k in range(curves.shape[1]):
        above = (curves[:, k] >= fraction * curves[-1, k]).nonzero()
        out.append(float(steps[int(above[0])]) if len(above) and bool(curves[-1, k].isfinite()) else math.nan)
    return out


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of the repetitions (the papers' error bars)."""
    values = sorted(float(v) for v in values)
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def write_csv(path: Path, rows: list[dict]) -> Path:
    """The tidy table behind a figure: one row per observation, columns the union of the rows' keys."""
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def pyplot():
    """matplotlib's pyplot, imported when a figure is drawn (the backend is the user's; the CLI picks Agg)."""
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """``plots.save`` at 130 dpi, imported when a figure is written."""
    from ..plots import save

    return save(fig, path, dpi=130)


def finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def epsilon_rank_lower_bound(tensor: Tensor, mse: float) -> int:
    """A lower bound on the ε-rank of one dense tensor: the smallest r with a CP fit of mean squared error
    <= ``mse`` over all entries. If ||T − X||_F² <= δ² = mse·numel and X has CP rank r, every matricization
    of X has rank <= r, so Σ_{i>r} σ_i² <= δ² for the singular values σ of every matricization of T; the
    bound is the largest such r over the matricizations by one mode (and, from order 4, by pairs of modes)."""
    from ..measure.tensor import matricize

    budget = mse * tensor.numel()
    order = tensor.dim()
    row_sets = [(n,) for n in range(order)]
    if order >= 4:
        row_sets += [(0, n) for n in range(1, order)]
    bound = 0
    for rows in row_sets:
        squared = torch.linalg.svdvals(matricize(tensor.double().unsqueeze(0), rows)[0]).pow(2)
        tails = squared.flip(0).cumsum(0).flip(0)  # tails[k] = Σ_{i>=k} σ_i²
        bound = max(bound, int((tails > budget).sum()))
    return bound


