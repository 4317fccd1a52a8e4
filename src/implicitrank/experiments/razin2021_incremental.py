"""Razin, Maman & Cohen (ICML 2021) §5.1: incremental learning of CP components from small init.

Ground truth: order 4, every mode of size 10, CP rank 5 with N(0, 1) factors, ||W*||_F = 1; 2000 observed
entries (20%, a prefix of a random permutation). CP with R = 1000 components, factor entries i.i.d.
N(0, std²), std ∈ {5e-2, 1e-2, 5e-3}; global RMSprop lr 1e-2 (eps 1e-6); stop when the train loss has
stayed < 1e-8 for 5,000 steps (the paper's "for a while": the error keeps falling there, from 0.015 to
0.005 in our std 5e-3 run).
Figures: component norms σ_r = Π_n ||w_r^n|| against iterations for the smallest std (they are learned one at
a time: σ̇_r = N·γ_r·σ_r^(2−2/N), Thm. 1), and the reconstruction error ||W − W*||_F / ||W*||_F against
iterations for every std (smaller init ⇒ more incremental ⇒ better recovery).

``quick`` is the paper's problem and width (R = 1000; the dense closed-form CP gradient makes a step about 1.5 ms)
capped at 30,000 iterations. R matters: with R = 50 only the first component was learned within 15,000 iterations,
the rest stayed at their init (fewer candidates, so none starts well aligned with the remaining directions).
Measured (2026-11, seed 0's three runs alone, before quick ran 2 repetitions and a control, 79 s): take-offs 4.3k,
4.7k, 11.0k, 11.6k, 13.0k; final errors 0.0050 / 0.0052 / 0.085 for std 5e-3 / 1e-2 / 5e-2 (paper 0.005 / 0.03 /
0.08). Our ground truth is another draw of the paper's law, so the third take-off (paper 7.0k) and the std 1e-2
error (ours recovers as well as std 5e-3) differ, and those two claims fail; so does "smaller init ⇒ lower final
error", which asks each error to be ``ERROR_MARGIN`` = 1.5 times the next smaller std's (0.0052 / 0.0050 = 1.04). A
2-repetition quick run (2026-12-03, 445 s on a shared CPU) gave errors 0.0051 / 0.0052 / 0.085 (seed 0: ratios 1.01,
16.5) and 0.0041 / 1.01 / 0.092 (seed 1: its std 1e-2 run fit the observations, train MSE 4e-9, with one component
of norm ≈1 off them; ratios 245, 0.09).

Repetitions (``seeds``): each draws its own ground truth, observations and init; claims hold per repetition
(published numbers: on the median and in a majority). ``quick`` runs 2 repetitions, not 3: each adds four R = 1000
runs (about 4 CPU-minutes). Control: one run per repetition from init std 0.3 (1.0 at ``test``), where the
incremental-learning claims must fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..factorizations import CPFactorization, generators
from ..measure.spectra import relative_error
from ..tasks.tensors import low_rank_tensor, prefix_completion
from . import published
from ._tensor_common import pyplot, save_figure, stack_completions, takeoff_steps, train_rmsprop, write_csv
from .claims import Claim, evaluate, not_run, ratio, seed_list

NAME = "razin2021-incremental"
TITLE = "Razin, Maman & Cohen 2021 Fig. 2: CP component norms and error vs iterations for three init scales"

PAPER_PROBLEM = (4, 10, 5, 2000, 1.0)  # order, mode size, rank, observations, ||W*||_F
SHOWN_COMPONENTS = 10
# "Smaller init ⇒ lower final error" asks each std's error to be this many times the next smaller std's: the
# published errors (0.005, 0.03, 0.08 for std 5e-3, 1e-2, 5e-2) step by 6x and 2.7x, and a strict order alone was
# decided by when the stop rule fired (quick: 0.0050 vs 0.0052).
ERROR_MARGIN = 1.5


@dataclass(frozen=True)
class Setup:
    order: int
    dim: int
    rank: int
    observations: int
    components: int
    init_stds: tuple[float, ...]
    max_steps: int
    record_every: int
    target_norm: float = 1.0
    lr: float = 1e-2
    loss_threshold: float = 1e-8
    patience: int = 5000  # steps the loss must stay below the threshold ("for a while")
    seeds: int = 2
    control_std: float = 0.3  # the control: an init this large must not learn incrementally

    def __post_init__(self) -> None:
        if not 1 <= self.observations <= self.dim**self.order:
            raise ValueError(f"observations must be in [1, {self.dim}^{self.order}], got {self.observations}")
        if not self.init_stds or min(self.init_stds) <= 0:
            raise ValueError(f"init_stds must be positive, got {self.init_stds}")
        if self.components < self.rank or self.max_steps < 1 or self.record_every < 1:
            raise ValueError("components must be >= rank, max_steps and record_every >= 1")

    @property
    def problem(self) -> tuple:
        return (self.order, self.dim, self.rank, self.observations, self.target_norm)


SCALES = {
    "test": Setup(3, 6, 3, 100, 36, (1e-2, 1e-3), max_steps=2000, record_every=10, target_norm=6**1.5, lr=2e-2,
                  loss_threshold=1e-7, patience=0, seeds=1, control_std=1.0),
    "quick": Setup(4, 10, 5, 2000, 1000, (5e-2, 1e-2, 5e-3), max_steps=30_000, record_every=100),
    "paper": Setup(4, 10, 5, 2000, 1000, (5e-2, 1e-2, 5e-3), max_steps=1_000_000, record_every=100),
}


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    """Train one run per (repetition, init std), plus a large-init control per repetition; repetition s draws
    its own ground truth, observed entries and init from seed s. Writes curves.csv, component_norms.png,
    reconstruction_error.png (the first repetition) and returns the claims over repetitions."""
    setup = SCALES[scale]
    repetitions = seed_list(seeds, setup.seeds)
    shape = (setup.dim,) * setup.order
    stds = (*setup.init_stds, setup.control_std)
    runs = [(seed, std) for seed in repetitions for std in stds]
    singles = {s: prefix_completion(low_rank_tensor(shape, setup.rank, seed=s, frobenius_norm=setup.target_norm),
                                    setup.observations, seed=s) for s in repetitions}
    task = stack_completions([singles[s] for s, _ in runs]).to("cpu", torch.float32)
    model = CPFactorization(shape, setup.components)
    scales = torch.tensor([model.scale_for_entry_std(std) for _, std in runs], dtype=torch.float64)  # papers: entry std
    params = model.init(len(runs), scales, generators([s for s, _ in runs]))

    def measure(p, loss):
        return {"norms": model.component_norms(p).float(),
                "error": relative_error(model.end_to_end(p), task.target)}

    state = train_rmsprop(model, task, params, setup.lr, max_steps=setup.max_steps,
                          loss_threshold=setup.loss_threshold, patience=setup.patience,
                          record_every=setup.record_every,
                          measure=measure, progress=scale != "test")
    steps = [r["step"] for r in state.records]
    norms = torch.stack([r["norms"] for r in state.records]).double()  # (T, B, R) by fixed component index
    errors = torch.stack([r["error"] for r in state.records]).double()  # (T, B)
    shown = norms[-1].argsort(dim=-1, descending=True)[:, :SHOWN_COMPONENTS]  # (B, K) largest at the end
    rows = []
    for b, (seed, std) in enumerate(runs):
        curves = norms[:, b, shown[b]]
        for t, step in enumerate(steps):
            rows.append({"init_std": std, "seed": seed, "control": std == setup.control_std, "step": step,
                         "train_loss": float(state.records[t]["train_loss"][b]),
                         "reconstruction_error": float(errors[t, b]),
                         **{f"component_norm_{k + 1}": float(curves[t, k]) for k in range(curves.shape[1])}})
    write_csv(out_dir / "curves.csv", rows)
    smallest = min(setup.init_stds)
    figure_run = runs.index((repetitions[0], smallest))
    _plot_norms(steps, norms[:, figure_run, shown[figure_run]], smallest, out_dir / "component_norms.png")
    first = [b for b, (seed, std) in enumerate(runs) if seed == repetitions[0] and std != setup.control_std]
    _plot_errors(steps, errors[:, first], [runs[b] for b in first], out_dir / "reconstruction_error.png")
    curves = {run: norms[:, b, shown[b]] for b, run in enumerate(runs)}
    final_errors = {run: float(errors[-1, b]) for b, run in enumerate(runs)}
    return claims(setup, steps, curves, final_errors, repetitions)


def _plot_norms(steps, curves: torch.Tensor, std: float, path: Path) -> None:
    from ..plots import legend_outside

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for k in range(curves.shape[1]):
        ax.plot(steps, curves[:, k].tolist(), label=f"component {k + 1}")
    ax.set(xlabel="iteration", ylabel="component norm", title=f"CP component norms (init std {std:g})")
    legend_outside(ax, fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _plot_errors(steps, errors: torch.Tensor, runs, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for b, (seed, std) in enumerate(runs):
        ax.plot(steps, errors[:, b].tolist(), label=f"init std {std:g}" + (f" (seed {seed})" if seed else ""))
    ax.set(xlabel="iteration", ylabel="reconstruction error", yscale="log", title="relative Frobenius error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)


def _learned(curve: torch.Tensor) -> float:
    """How many components end above a tenth of the first; NaN when a final value is not a number (a diverged run
    learned nothing we can count, not 0)."""
    final = curve[-1]
    return float((final > 0.1 * final[0]).sum()) if bool(final.isfinite().all()) else math.nan


def _takeoffs(setup: Setup, steps: list[int], curve: torch.Tensor) -> list[float]:
    """Take-off steps (half the final norm) of the ``rank`` largest components, in order."""
    return [float(t) for t in sorted(takeoff_steps(steps, curve[:, :setup.rank]))]


def claims(setup: Setup, steps: list[int], curves: dict[tuple[int, float], torch.Tensor],
           final_errors: dict[tuple[int, float], float], seeds: tuple[int, ...]) -> list[Claim]:
    """Per repetition: take-offs and final norms of the smallest-init run, final error per init std; the
    incremental-learning claims also on the large-init control, where they must fail. Published numbers are
    compared only where the tensor problem is the paper's (the test scale's is smaller)."""
    smallest = min(setup.init_stds)
    control = setup.control_std
    out = []
    comparable = setup.problem == PAPER_PROBLEM
    # the paper's five components only where the problem is the paper's; elsewhere the rank is this scale's
    rank_source = ({"published": published.R21_RANK_LEARNED} if comparable else
                   {"reference": float(setup.rank), "derived": "the ground truth's rank at this scale (our choice)"})
    learned_control = evaluate(f"control: init std {control:g}, number of components learned", "equal",
                               float(setup.rank), [_learned(curves[s, control]) for s in seeds], seeds=seeds)
    out.append(evaluate(f"init std {smallest:g}: number of components learned (final norm > 10% of the largest) = "
                        "the ground-truth rank", "equal", float(setup.rank),
                        [_learned(curves[s, smallest]) for s in seeds], seeds=seeds, **rank_source,
                        control=learned_control))
    gap = 2 * (steps[1] - steps[0])

    def spacing(seed, std):  # [first take-off, then the gaps between consecutive take-offs]
        t = _takeoffs(setup, steps, curves[seed, std])
        return [t[0]] + [b - a for a, b in zip(t, t[1:])]

    spacings = {std: [spacing(s, std) for s in seeds] for std in (smallest, control)}
    out.append(evaluate(f"init std {smallest:g}: the {setup.rank} largest components take off one at a time ([first "
                        f"take-off, gaps between take-offs] in steps)", "at_least", float(gap), spacings[smallest],
                        seeds=seeds, published=published.R21_INCREMENTAL,
                        control=evaluate(f"control: init std {control:g}, take-offs one at a time", "at_least",
                                         float(gap), spacings[control], seeds=seeds)))
    reason = "the test scale's tensor problem is smaller than the paper's"
    takeoffs = {s: _takeoffs(setup, steps, curves[s, smallest]) for s in seeds}
    note = "our ground truths are other draws of the paper's law (its draw is not published)"
    for k in range(setup.rank if comparable else len(published.R21_TAKEOFFS.value)):
        takeoff, norm = (f"init std 5e-3: {what} of component {k + 1}" for what in ("take-off step", "final norm"))
        paper_takeoff, paper_norm = published.R21_TAKEOFFS.entry(k), published.R21_FINAL_NORMS.entry(k)
        if not comparable:
            out += [not_run(takeoff, paper_takeoff, reason), not_run(norm, paper_norm, reason)]
            continue
        out.append(evaluate(takeoff, "relative", 0.5, [takeoffs[s][k] for s in seeds], seeds=seeds,
                            published=paper_takeoff, rule="median", note=note))  # its value is the reference
        out.append(evaluate(norm, "relative", 0.5, [float(curves[s, smallest][-1, k]) for s in seeds], seeds=seeds,
                            published=paper_norm, rule="median", note=note))
    for std, paper in published.R21_ERRORS.items():
        label = f"init std {std:g}: final reconstruction error (relative Frobenius)"
        if not comparable or std not in setup.init_stds:
            out.append(not_run(label, paper, reason if not comparable else "std not in this scale"))
        else:  # a factor 2 separates the three published values (0.005, 0.03, 0.08) from one another
            out.append(evaluate(label, "factor", 2.0, [final_errors[s, std] for s in seeds], seeds=seeds,
                                published=paper, rule="median", note=note))
    stds = sorted(setup.init_stds)
    ratios = [[ratio(final_errors[s, b], final_errors[s, a]) for a, b in zip(stds, stds[1:])] for s in seeds]
    out.append(evaluate(f"smaller init ⇒ lower final error (error at each std / at the next smaller, stds {stds})",
                        "at_least", ERROR_MARGIN, ratios, seeds=seeds, published=published.R21_SMALLER_BETTER))
    return out
