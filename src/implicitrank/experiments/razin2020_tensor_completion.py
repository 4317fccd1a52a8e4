"""Razin & Cohen (NeurIPS 2020) §5, tensor completion: reconstruction error and learned tensor rank against
the number of observed entries.

Ground truth: CP rank 1 or 3, order 3 or 4, every mode of size 8, N(0, 1) factors, ||W*||_F = 1; the
observations are a prefix of one random permutation of the entries (repetition s draws its own ground truth,
permutation and init from seed s). Model: CP with R = the product of all mode sizes but the largest (64 for
order 3, 512 for order 4: the rank is unconstrained), factor entries i.i.d. N(0, std²), global RMSprop lr 1e-2,
stop when the train MSE has stayed < 1e-6 for 250 iterations (the authors' runs checked the loss every 100
iterations and stopped at the third check in a row below the threshold, 200 to 300 iterations after it
first got there; the error keeps falling fast then, so this matters for the published values). Baseline: the
observed entries with zeros elsewhere.

Reported, per run: the reconstruction error = ||W − W*||_F / ||W*||_F (the authors' "normalized
reconstruction error"; the mean over all entries of (W − W*)² is in the table too, as
``mean_squared_error``) and the learned tensor rank = the ε-rank, the smallest r whose
CP fit reaches MSE < 1e-6 over all entries. It is found between a lower bound from matricization spectra
(``epsilon_rank_lower_bound``) and an upper bound from the learned components (``tensor_rank_by_pruning``),
with CP-ALS (restarts) for the ranks in between; for the baseline only the lower bound is computed (ALS at
ranks 12–17 is minutes per tensor), so its rank is reported as ">= bound".

``quick``: orders 3 (ranks 1 and 3) and 4 (rank 1, init 1e-2 only: from init 1e-3 an order-4 CP leaves the
origin only after more than 40,000 iterations), 3 repetitions, at most 6,000 iterations. Claims hold per
repetition; the published errors and learned ranks, which the paper plots as medians of 5 runs, on the median
(errors within a factor 3) and in a majority of repetitions.
Measured at ``quick`` (2026-12-04, order 3, rank 1, init 1e-3): the errors at 100 and 200 observations fail their
factor 3 (2.7e-5, 1.5e-4, 1.3e-4 against ≈4e-3; 1.3e-5, 8.6e-5, 8.4e-5 against ≈5e-6).
The error is still falling fast where runs stop: seed 0 at 100 observations has 4.1e-3 100 steps after the train
MSE first drops below 1e-6, 1.8e-4 after 200, 2.4e-5 after 250 (our stop) and 1.1e-5 after 300, in float64 alike,
so a factor 3 cannot absorb where in the authors' 200-300-step window a run stopped. Kept as published, failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..baselines.cp_als import cp_als_full
from ..factorizations import CPFactorization, generators
from ..measure.tensor import tensor_rank_by_pruning
from ..tasks.tensors import low_rank_tensor, prefix_completion
from . import published
from ._tensor_common import (
    epsilon_rank_lower_bound,
    mean_squared_error,
    pyplot,
    quartiles,
    save_figure,
    stack_completions,
    train_rmsprop,
    write_csv,
)
from .claims import Claim, evaluate, median, not_run, ratio, seed_list

NAME = "razin2020-tensor-completion"
TITLE = "Razin & Cohen 2020 §5: tensor completion error and learned tensor rank vs number of observations"


@dataclass(frozen=True)
class Panel:
    """One figure panel: ground truth of CP rank ``rank`` and order ``order``; ``components`` None = R
    unconstrained (product of all mode sizes but the largest); ``init_stds`` None = the set-up's."""

    order: int
    rank: int
    observations: tuple[int, ...]
    components: int | None = None
    init_stds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.order < 2 or self.rank < 1 or not self.observations or min(self.observations) < 1:
            raise ValueError(f"order must be >= 2, rank >= 1 and observations non-empty positive, got {self}")


@dataclass(frozen=True)
class Setup:
    panels: tuple[Panel, ...]
    init_stds: tuple[float, ...]
    seeds: int
    max_steps: int
    dim: int = 8
    lr: float = 1e-2
    loss_threshold: float = 1e-6
    patience: int = 250
    rank_mse: float = 1e-6
    max_rank: int = 20
    als_restarts: int = 3
    als_iterations: int = 300

    def __post_init__(self) -> None:
        if not self.init_stds or min(self.init_stds) <= 0:
            raise ValueError(f"init_stds must be positive, got {self.init_stds}")
        if self.seeds < 1 or self.max_steps < 1 or self.max_rank < 1:
            raise ValueError(f"seeds, max_steps and max_rank must be >= 1, got {self.seeds}, {self.max_steps}, "
                             f"{self.max_rank}")
        for panel in self.panels:
            if max(panel.observations) > self.dim**panel.order:
                raise ValueError(f"observations must be <= {self.dim}^{panel.order}, got {panel.observations}")


ORDER3 = (50, 100, 150, 200, 300, 400, 511)
# "Smaller init gives a lower error" asks init 1e-2's error to be at least this many times init 1e-3's: the
# published errors at 511 observations are ≈5e-7 (init 1e-3) and ≈4e-4 (init 1e-2, from 400 on), a factor ≈800 on
# a log plot read to ±5%; 10 (one decade of the plot) keeps a wide allowance below that and is far above what the
# stop rule alone moves an error (a strict order passed on any difference, 1% included).
SMALLER_INIT_FACTOR = 10.0
SCALES = {
    "test": Setup((Panel(3, 1, (50, 200)),), (1e-3,), seeds=1, max_steps=3000, max_rank=4, als_restarts=1,
                  als_iterations=100),
    "quick": Setup((Panel(3, 1, ORDER3), Panel(3, 3, (100, 200, 300, 400, 511)),
                    Panel(4, 1, (250, 500, 1000, 1500, 2000), init_stds=(1e-2,))),
                   (1e-2, 1e-3), seeds=3, max_steps=6000, max_rank=6, als_restarts=2, als_iterations=150),
    "paper": Setup((Panel(3, 1, ORDER3), Panel(3, 3, ORDER3),
                    Panel(4, 1, (250, 500, 1000, 1500, 2000, 3000, 4000)),
                    Panel(4, 3, (250, 500, 1000, 1500, 2000, 3000, 4000))),
                   (1e-2, 1e-3), seeds=5, max_steps=200_000),
}


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    """Train every (panel, number of observations, init std, repetition); write runs.csv, one figure per panel
    (error and tensor rank against observations, medians with 25–75% bars) and return the claims."""
    setup = SCALES[scale]
    repetitions = seed_list(seeds, setup.seeds)
    rows = []
    for panel in setup.panels:
        for observations in panel.observations:
            rows += _runs(setup, panel, observations, repetitions, progress=scale != "test")
    write_csv(out_dir / "runs.csv", rows)
    for panel in setup.panels:
        _plot(setup, panel, rows, out_dir / f"order{panel.order}_rank{panel.rank}.png")
    return claims(setup, rows, repetitions)


def _runs(setup: Setup, panel: Panel, observations: int, repetitions: tuple[int, ...],
          progress: bool) -> list[dict]:
    shape = (setup.dim,) * panel.order
    runs = [(seed, std) for seed in repetitions for std in panel.init_stds or setup.init_stds]
    truths = {s: low_rank_tensor(shape, panel.rank, seed=s, frobenius_norm=1.0) for s in repetitions}
    singles = {s: prefix_completion(truths[s], observations, seed=s) for s in repetitions}
    task = stack_completions([singles[s] for s, _ in runs]).to("cpu", torch.float32)
    model = CPFactorization(shape, panel.components)
    scales = torch.tensor([model.scale_for_entry_std(std) for _, std in runs], dtype=torch.float64)  # papers: entry std
    params = model.init(len(runs), scales, generators([s for s, _ in runs]))
    state = train_rmsprop(model, task, params, setup.lr, max_steps=setup.max_steps,
                          loss_threshold=setup.loss_threshold, patience=setup.patience, progress=progress)
    final = [p.detach().double() for p in state.params]
    w = model.end_to_end(final)
    target = task.target.double()
    mse = mean_squared_error(w, target)
    relative = torch.linalg.vector_norm((w - target).flatten(1), dim=1) / torch.linalg.vector_norm(
        target.flatten(1), dim=1)
    norms = torch.linalg.vector_norm(w.flatten(1), dim=1)
    tol = torch.sqrt(setup.rank_mse * w[0].numel() / norms.pow(2).clamp_min(1e-300))
    finite = torch.isfinite(w.flatten(1)).all(1).tolist()  # a diverged run has no rank: NaN, and the others go on
    base = {"order": panel.order, "truth_rank": panel.rank, "observations": observations}
    rows = []
    for b, (seed, std) in enumerate(runs):
        rank, bound = math.nan, False
        if finite[b]:
            upper = int(tensor_rank_by_pruning(model, [p[b:b + 1] for p in final], tol=float(tol[b])).item())
            rank, bound = _epsilon_rank(setup, w[b], upper)
        rows.append({**base, "method": f"init std {std:g}", "init_std": std, "seed": seed,
                     "steps": int(state.steps[b]), "train_loss": float(state.loss[b]),
                     "reconstruction_error": float(relative[b]), "mean_squared_error": float(mse[b]),
                     "tensor_rank": rank, "tensor_rank_is_lower_bound": bound})
    for seed in repetitions:
        zero_filled = torch.zeros(shape, dtype=torch.float64)
        idx = tuple(singles[seed].indices.long().unbind(-1))
        zero_filled[idx] = truths[seed][idx]
        truth = truths[seed].double()
        rows.append({**base, "method": "zero-filled baseline", "init_std": math.nan, "seed": seed,
                     "reconstruction_error": float(torch.linalg.vector_norm(zero_filled - truth)
                                                   / torch.linalg.vector_norm(truth)),
                     "mean_squared_error": float(mean_squared_error(zero_filled[None], truth[None])),
                     "tensor_rank": epsilon_rank_lower_bound(zero_filled, setup.rank_mse),
                     "tensor_rank_is_lower_bound": True})
    return rows


def _epsilon_rank(setup: Setup, w: torch.Tensor, upper: int) -> tuple[int, bool]:
    """(ε-rank, whether it is only a lower bound) of a learned tensor whose pruning rank is ``upper``."""
    lower = max(1, epsilon_rank_lower_bound(w, setup.rank_mse))
    if lower >= upper:
        return upper, False
    mse_threshold = setup.rank_mse * 0.999
    for r in range(lower, min(upper, setup.max_rank + 1)):
        fit = cp_als_full(w, r, restarts=setup.als_restarts, max_iterations=setup.als_iterations,
                          mse_threshold=mse_threshold)
        if fit.mse < setup.rank_mse:
            return r, False
    if upper <= setup.max_rank + 1:
        return upper, False
    return setup.max_rank + 1, True


def summarize(rows: list[dict], panel: Panel, method: str, key: str) -> list[tuple[int, float, float, float]]:
    """(observations, 25%, median, 75%) of ``key`` over repetitions for ``method`` in ``panel``."""
    out = []
    for observations in panel.observations:
        values = [r[key] for r in rows if r["order"] == panel.order and r["truth_rank"] == panel.rank
                  and r["observations"] == observations and r["method"] == method]
        if values:
            out.append((observations, *quartiles(values)))
    return out


def _methods(setup: Setup, panel: Panel) -> list[str]:
    return [f"init std {s:g}" for s in panel.init_stds or setup.init_stds] + ["zero-filled baseline"]


def _plot(setup: Setup, panel: Panel, rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for method in _methods(setup, panel):
        style = {"ls": "--", "color": "gray"} if method.startswith("zero") else {"marker": "o"}
        for ax, key in zip(axes, ("reconstruction_error", "tensor_rank")):
            curve = summarize(rows, panel, method, key)
            x = [c[0] for c in curve]
            low, mid, high = ([c[i] for c in curve] for i in (1, 2, 3))
            ax.errorbar(x, mid, yerr=[[m - lo for m, lo in zip(mid, low)], [h - m for m, h in zip(mid, high)]],
                        capsize=3, label=method + (" (lower bound)" if key == "tensor_rank" and
                                                   method.startswith("zero") else ""), **style)
    axes[0].set(yscale="log", xlabel="# of observations", ylabel="reconstruction error (relative)")
    axes[1].set(xlabel="# of observations", ylabel="tensor rank")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"order {panel.order}, mode size {setup.dim}, ground-truth rank {panel.rank}")
    save_figure(fig, path)


def _per_seed(rows: list[dict], panel: Panel, method: str, key: str, observations: int,
              seeds: tuple[int, ...]) -> list[float]:
    """``key`` of each seed's run of ``method`` at ``observations`` in ``panel`` (NaN where there is none)."""
    def one(seed):
        found = [r[key] for r in rows if r["order"] == panel.order and r["truth_rank"] == panel.rank
                 and r["observations"] == observations and r["method"] == method and r["seed"] == seed]
        return float(found[0]) if found else math.nan
    return [one(s) for s in seeds]


def _over(rows, panel, method, key, counts, seeds) -> list[list[float]]:
    """Per seed, the list of ``key`` over the observation ``counts``."""
    values = [_per_seed(rows, panel, method, key, m, seeds) for m in counts]
    return [list(x) for x in zip(*values)]


def _other_ranks(ranks: list[list[float]], seeds: tuple[int, ...], counts, expected: float) -> str:
    """A note naming each seed and observation count whose learned rank is not ``expected``."""
    other = [f"seed {s}: rank {r:g} at {m}" for s, per_count in zip(seeds, ranks) for m, r in zip(counts, per_count)
             if r != expected]
    return f"per seed, a rank other than {expected:g}: {', '.join(other)}" if other else ""


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def claims(setup: Setup, rows: list[dict], seeds: tuple[int, ...]) -> list[Claim]:
    """The numbers the paper's figure shows (order 3/4, rank 1), per seed. The figure plots medians over 5 runs, so
    published errors read off its log-scale plot are compared within a factor 3 on the median (and in a majority of
    seeds), and so are its learned ranks; a seed whose rank differs is named in the note. Control: the learned-rank
    claim on the zero-filled baseline, which is not low-rank. A run the step cap stopped before it fit (train MSE
    still >= the threshold) has no learned rank, only the rank of where it stopped (1 while the observations are
    unfit, say): the rank claims count it as missing and say so."""
    def unfit(row: dict) -> bool:
        return row["method"] != "zero-filled baseline" and not row["train_loss"] < setup.loss_threshold

    def stopped(panel: Panel, method: str, counts) -> str:  # the note of a rank claim on these runs
        n = sum(unfit(r) for r in rows if r["order"] == panel.order and r["truth_rank"] == panel.rank
                and r["method"] == method and r["observations"] in counts and r["seed"] in seeds)
        return (f"{n} of its runs stopped at the step cap before fitting (train MSE >= {setup.loss_threshold:g}): "
                "no learned rank" if n else "")

    fitted = [r | {"tensor_rank": math.nan} if unfit(r) else r for r in rows]
    out: list[Claim] = []
    panels = {(p.order, p.rank): p for p in setup.panels}
    small, large = "init std 0.001", "init std 0.01"
    order3 = panels.get((3, 1))
    if order3 is None:
        out.append(not_run("order 3, rank 1 panel", published.R20_TC_RANK1, "not in this scale"))
    else:
        counts = order3.observations
        control = evaluate("control: order 3, rank 1, the zero-filled baseline's tensor rank (a lower bound) at "
                           "every # observations", "equal", 1.0,
                           _over(rows, order3, "zero-filled baseline", "tensor_rank", counts, seeds), seeds=seeds)
        ranks = _over(fitted, order3, small, "tensor_rank", counts, seeds)
        out.append(evaluate("order 3, rank 1, init 1e-3: learned tensor rank at every # observations (median over "
                            "seeds, as the paper plots)", "equal", 1.0, ranks, seeds=seeds,
                            published=published.R20_TC_RANK1, control=control, rule="median",
                            note=_join(stopped(order3, small, counts), _other_ranks(ranks, seeds, counts, 1.0))))
        for observations, paper in published.R20_TC_ERROR.items():
            label = f"order 3, rank 1, init 1e-3: reconstruction error at {observations} observations"
            out.append(not_run(label, paper, "not in this scale's grid") if observations not in counts
                       else evaluate(label, "factor", 3.0,
                                     _per_seed(rows, order3, small, "reconstruction_error", observations, seeds),
                                     seeds=seeds, published=paper, rule="median"))
        if large in _methods(setup, order3):
            label = ("order 3, rank 1, init 1e-2: learned tensor rank at 50 observations (not the rank-1 solution; "
                     "median over seeds, as the paper plots)")
            out.append(not_run(label, published.R20_TC_LARGE_RANK, "not in this scale's grid") if 50 not in counts
                       else evaluate(label, "at_least", 2.0, _per_seed(fitted, order3, large, "tensor_rank", 50, seeds),
                                     seeds=seeds, published=published.R20_TC_LARGE_RANK, rule="median",
                                     note=stopped(order3, large, (50,))))
            late = [m for m in counts if m >= 400]
            label = "order 3, rank 1, init 1e-2: reconstruction error from 400 observations (median over counts)"
            out.append(not_run(label, published.R20_TC_LARGE_ERROR, "not in this scale's grid") if not late
                       else evaluate(label, "factor", 3.0,
                                     [median(v) for v in _over(rows, order3, large, "reconstruction_error", late,
                                                                seeds)],
                                     seeds=seeds, published=published.R20_TC_LARGE_ERROR, rule="median"))
            big = max(counts)
            pair = zip(_per_seed(rows, order3, small, "reconstruction_error", big, seeds),
                       _per_seed(rows, order3, large, "reconstruction_error", big, seeds))
            out.append(evaluate(f"order 3, rank 1: smaller init gives a lower error at {big} observations (error at "
                                "init 1e-2 / at init 1e-3)", "at_least", SMALLER_INIT_FACTOR,
                                [ratio(b, a) for a, b in pair], seeds=seeds, published=published.R20_TC_SMALLER_INIT))
        # The matricization bound cannot exceed the mode size, so 12-17 itself is out of its reach; and with
        # most entries observed the zero-filled tensor is the truth plus a few entries (rank 2 at 511 of 512),
        # so the claim is about the sparse half of the axis.
        half = setup.dim**3 // 2
        sparse = [m for m in counts if m <= half]
        out.append(evaluate(f"order 3, rank 1: tensor rank of the zero-filled baseline at <= {half} observations "
                            f"(ours: a lower bound, <= {setup.dim}; learned: 1)", "at_least", float(setup.dim // 2),
                            _over(rows, order3, "zero-filled baseline", "tensor_rank", sparse, seeds), seeds=seeds,
                            published=published.R20_TC_BASELINE_RANK))
    order4 = panels.get((4, 1))
    for std, label_std, start in ((small, "1e-3", 1000), (large, "1e-2", 1500)):
        paper = published.R20_TC_ORDER4[label_std]
        label = f"order 4, rank 1, init {label_std}: reconstruction error from {start} observations (median)"
        if order4 is None or std not in _methods(setup, order4):
            reason = "not in this scale" if order4 is None else (
                "at order 4, init 1e-3 leaves the origin only after > 40,000 iterations: paper scale")
            out.append(not_run(label, paper, reason))
            continue
        late = [m for m in order4.observations if m >= start]
        out.append(not_run(label, paper, "not in this scale's grid") if not late
                   else evaluate(label, "factor", 3.0,
                                 [median(v) for v in _over(rows, order4, std, "reconstruction_error", late, seeds)],
                                 seeds=seeds, published=paper, rule="median"))
    for (order, rank), panel in panels.items():
        if rank == 1:
            continue
        big = max(panel.observations)
        out.append(evaluate(f"order {order}, rank {rank}, init 1e-3: learned tensor rank at {big} observations "
                            "(the ground truth's)", "equal", float(rank),
                            _per_seed(fitted, panel, small, "tensor_rank", big, seeds), seeds=seeds,
                            note=stopped(panel, small, (big,))))
    return out
