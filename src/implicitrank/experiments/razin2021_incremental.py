"""Razin, Maman & Cohen (ICML 2021) §5.1: incremental learning of CP components from small init.

Ground truth: order 4, every mode of size 10, CP rank 5 with N(0, 1) factors, ||W*||_F = 1; 2000 observed
entries (20%, a prefix of a random permutation). CP with R = 1000 components, factor entries i.i.d.
N(0, std²), std ∈ {5e-2, 1e-2, 5e-3}; global RMSprop lr 1e-2 (eps 1e-6); stop when the train loss has
stayed < 1e-8 for 5,000 steps (the paper's "for a while": the error keeps falling there, from 0.015 to
0.005 in our std 5e-3 run).
Figures: component norms σ_r = Π_n ||w_r^n|| against iterations for the smallest std (they are learned one at
a time: σ̇_r = N·γ_r·σ_r^(2−2/N), Thm. 1), and the reconstruction error ||W − W*||_F / ||W*||_F against
iterations for every std (smaller init ⇒ more incremental ⇒ better recovery).

``quick`` is the paper's problem and width (R = 1000; the dense closed-form CP gradient makes a step about
1.5 ms) capped at 30,000 iterations. R matters: with R = 50 only the first component was learned within
15,000 iterations, the rest stayed at their init (fewer candidates, so none starts well aligned with the
remaining directions). Measured (2026-11, quick, 79 s): take-offs 4.3k, 4.7k, 11.0k, 11.6k, 13.0k; final
errors 0.0050 / 0.0052 / 0.085 for std 5e-3 / 1e-2 / 5e-2 (paper 0.005 / 0.03 / 0.08). Our ground truth is
another draw of the paper's law, so the third take-off (paper 7.0k) and the std 1e-2 error (ours recovers
as well as std 5e-3) differ, and those two claims fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..factorizations import CPFactorization, generators
from ..measure.spectra import relative_error
from ..tasks.tensors import low_rank_tensor, prefix_completion
from ._tensor_common import pyplot, save_figure, takeoff_steps, train_rmsprop, write_csv
from .claims import Claim, check, check_close, check_order_of_magnitude, not_run

NAME = "razin2021-incremental"
TITLE = "Razin, Maman & Cohen 2021 Fig. 2: CP component norms and error vs iterations for three init scales"

PAPER_PROBLEM = (4, 10, 5, 2000, 1.0)  # order, mode size, rank, observations, ||W*||_F
PAPER_TAKEOFFS = (4200, 5300, 7000, 9800, 11300)
PAPER_FINAL_NORMS = (0.60, 0.59, 0.41, 0.31, 0.21)
PAPER_ERRORS = {5e-3: 0.005, 1e-2: 0.03, 5e-2: 0.08}
SHOWN_COMPONENTS = 10


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
                  loss_threshold=1e-7, patience=0),
    "quick": Setup(4, 10, 5, 2000, 1000, (5e-2, 1e-2, 5e-3), max_steps=30_000, record_every=100),
    "paper": Setup(4, 10, 5, 2000, 1000, (5e-2, 1e-2, 5e-3), max_steps=1_000_000, record_every=100),
}


def run(scale: str, out_dir: Path, seeds: int | None, data: str | None) -> list[Claim]:
    """Train one run per (init std, repetition) on one task; write curves.csv, component_norms.png,
    reconstruction_error.png and return the claims (from repetition 0, the figure's run)."""
    setup = SCALES[scale]
    repetitions = seeds or 1
    shape = (setup.dim,) * setup.order
    truth = low_rank_tensor(shape, setup.rank, seed=0, frobenius_norm=setup.target_norm)
    runs = [(seed, std) for seed in range(repetitions) for std in setup.init_stds]
    task = prefix_completion(truth, setup.observations, seed=0, batch=len(runs)).to("cpu", torch.float32)
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
            rows.append({"init_std": std, "seed": seed, "step": step,
                         "train_loss": float(state.records[t]["train_loss"][b]),
                         "reconstruction_error": float(errors[t, b]),
                         **{f"component_norm_{k + 1}": float(curves[t, k]) for k in range(curves.shape[1])}})
    write_csv(out_dir / "curves.csv", rows)
    smallest = min(setup.init_stds)
    figure_run = runs.index((0, smallest))
    _plot_norms(steps, norms[:, figure_run, shown[figure_run]], smallest, out_dir / "component_norms.png")
    _plot_errors(steps, errors, runs, out_dir / "reconstruction_error.png")
    return claims(setup, steps, norms[:, figure_run, shown[figure_run]],
                  {std: float(errors[-1, runs.index((0, std))]) for std in setup.init_stds})


def _plot_norms(steps, curves: torch.Tensor, std: float, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for k in range(curves.shape[1]):
        ax.plot(steps, curves[:, k].tolist(), label=f"component {k + 1}")
    ax.set(xlabel="iteration", ylabel="component norm", title=f"CP component norms (init std {std:g})")
    ax.legend(fontsize=7, ncol=2)
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


def claims(setup: Setup, steps: list[int], curves: torch.Tensor, final_errors: dict[float, float]) -> list[Claim]:
    """Take-offs and final norms of the smallest-init run; final error per init std. Published numbers are
    compared only where the tensor problem is the paper's (the test scale's is smaller)."""
    smallest = min(setup.init_stds)
    final = curves[-1]
    learned = int((final > 0.1 * final[0]).sum())
    out = [check(f"init std {smallest:g}: number of components learned (final norm > 10% of the largest)",
                 setup.rank, learned, "equal to the ground-truth rank", learned == setup.rank)]
    # a take-off is only meaningful for a learned component (a dormant one "reaches half its final norm" by noise)
    ordered = sorted(takeoff_steps(steps, curves[:, :learned])) + [None] * max(0, setup.rank - learned)
    spaced = learned == setup.rank and ordered[0] > 0 and all(
        b - a >= 2 * (steps[1] - steps[0]) for a, b in zip(ordered, ordered[1:]))
    out.append(check(f"init std {smallest:g}: the {setup.rank} components take off one at a time (steps to half "
                     "their final norm)", list(PAPER_TAKEOFFS), ordered, "all learned, distinct increasing take-offs",
                     spaced))
    comparable = setup.problem == PAPER_PROBLEM
    reason = "the test scale's tensor problem is smaller than the paper's"
    for k, (paper_step, paper_norm) in enumerate(zip(PAPER_TAKEOFFS, PAPER_FINAL_NORMS)):
        if not comparable:
            out.append(not_run(f"take-off step and final norm of component {k + 1}", (paper_step, paper_norm), reason))
            continue
        if ordered[k] is None:
            out.append(check(f"init std 5e-3: take-off step of component {k + 1}", paper_step, "never learned",
                             "within 50%", False))
        else:
            out.append(check_close(f"init std 5e-3: take-off step of component {k + 1}", paper_step, ordered[k], 0.5))
        out.append(check_close(f"init std 5e-3: final norm of component {k + 1} (another random ground truth)",
                               paper_norm, float(final[k]), 0.5))
    for std, paper in PAPER_ERRORS.items():
        label = f"init std {std:g}: final reconstruction error (relative Frobenius)"
        if not comparable or std not in final_errors:
            out.append(not_run(label, paper, reason if not comparable else "std not in this scale"))
        else:
            out.append(check_order_of_magnitude(label, paper, final_errors[std], factor=4.0))
    stds = sorted(final_errors)
    values = [final_errors[s] for s in stds]
    out.append(check("smaller init ⇒ lower final error (stds ascending)", "increasing", values,
                     "error increasing with init std", all(a < b for a, b in zip(values, values[1:]))))
    return out
