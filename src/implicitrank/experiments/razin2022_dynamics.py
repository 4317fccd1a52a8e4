"""Razin, Maman & Cohen (ICML 2022), the dynamics figure: the analogy table's three factorizations learn their
quantities one at a time from small init.

Panels (each a 4096-entry problem with the first 2048 entries of a random permutation observed, global
RMSprop lr 1e-2, stop when the train MSE has stayed < 5e-5 for 2,500 steps, as in the authors' runs):
* matrix factorization, 64×64 ground truth of rank 5 with ||W*||_F = 64, depth 3, every factor entry
  N(0, 1e-3²) (the authors' "init std", so ||W(0)||_F ≈ 1e-9·64² ≈ 4e-6): singular values;
* CP, order 3, mode size 16, CP rank 5, ||W*||_F = 64, init std 1e-3: component norms;
* hierarchical (HT), order 4, binary tree over adjacent modes, widths up to 512, init std 1e-2: the root's
  local component norms. papers.md does not give this panel's ground truth; we use mode size 8 (so that it
  too has 4096 entries), hierarchical rank 5 at every node and the published final root spectrum
  (9.5, 5, 2.5, 1.5, 0.8) as its root local components.
``quick`` keeps the MF and CP panels as published (CP R = 256, the dense closed-form gradient makes it cheap)
and narrows the HT model (widths 16 instead of 512, far above the rank 5 it reaches), with at most 15,000
(MF, CP) and 35,000 (HT) iterations. A narrower HT
starts much closer to zero (its end tensor is a degree-7 polynomial of the weights, each level summing R_ν
terms), so its init std is 0.06, which keeps the paper's per-level scale std·sqrt(width) = 1e-2·sqrt(512) ≈ 0.23;
with std 1e-2 and widths 16 it did not leave the origin in 35,000 iterations.
A second HT figure shows the singular values of the matricization at a tree node (modes {1, 2} against
{3, 4}) and at a non-node ({1, 3} against {2, 4}): the node's, whose rank is part of the hierarchical tensor
rank, are learned one at a time and few; the non-node's are not constrained by the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..factorizations import CPFactorization, HierarchicalFactorization, MatrixFactorization, generators
from ..measure.spectra import numerical_rank, relative_error
from ..measure.tensor import matricize
from ..tasks.ground_truth import low_rank_matrix
from ..tasks.hierarchical_truth import low_hierarchical_rank_tensor
from ..tasks.tensors import low_rank_tensor, prefix_completion
from ._tensor_common import pyplot, save_figure, takeoff_steps, train_rmsprop, write_csv
from .claims import Claim, check, check_close, not_run

NAME = "razin2022-dynamics"
TITLE = "Razin, Maman & Cohen 2022: MF singular values, CP component norms, HT root local component norms"

KINDS = ("matrix", "cp", "hierarchical")
SHOWN = 10
NODE_MODES, NON_NODE_MODES = (0, 1), (0, 2)
RANK_TOL = 1e-2  # numerical rank: singular values above 1% of the largest
LEARNED_FRACTION = 0.03  # learned: above 3% of the largest (the published HT spectrum's smallest is 8% of its largest)
# Published (papers.md §4): final values of the five learned quantities and the step by which all are learned.
PAPER_FINAL = {"matrix": (38, 34, 28, 23, 20), "cp": (38, 36, 24, 22, 17), "hierarchical": (9.5, 5, 2.5, 1.5, 0.8)}
PAPER_LAST_TAKEOFF = {"matrix": 5000, "cp": 7000, "hierarchical": 32_000}
PAPER_FIRST_TAKEOFF = {"hierarchical": 10_000}
QUANTITY_LABEL = {"matrix": "singular values", "cp": "component norms", "hierarchical": "root local component norms"}


@dataclass(frozen=True)
class Panel:
    """One panel: ``kind`` in KINDS, the ground truth's ``shape`` and ``rank`` (CP rank, matrix rank, or the
    hierarchical rank at every node), ``init_scale`` the std of every factor entry, as in the authors' runs (the
    factorization's init_scale is the matching ||W(0)||_F, ``scale_for_entry_std``)."""

    kind: str
    shape: tuple[int, ...]
    rank: int
    init_scale: float
    max_steps: int
    target_norm: float = 64.0
    observations: int = 2048
    root_spectrum: tuple[float, ...] | None = None
    components: int | None = None  # CP: None = the product of all mode sizes but the largest

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "matrix" and len(self.shape) != 2:
            raise ValueError(f"shape must be (rows, cols) for a matrix panel, got {self.shape}")


@dataclass(frozen=True)
class Setup:
    panels: tuple[Panel, ...]
    record_every: int
    lr: float = 1e-2
    loss_threshold: float = 5e-5
    patience: int = 2500  # steps below the threshold before a run stops
    width_cap: int = 512


# The HT ground truth has the published final root spectrum (its norm is that spectrum's).
HT_TRUTH = {"root_spectrum": PAPER_FINAL["hierarchical"],
            "target_norm": sum(s**2 for s in PAPER_FINAL["hierarchical"]) ** 0.5}
PAPER_PANELS = (Panel("matrix", (64, 64), 5, 1e-3, 500_000), Panel("cp", (16, 16, 16), 5, 1e-3, 500_000),
                Panel("hierarchical", (8, 8, 8, 8), 5, 1e-2, 500_000, **HT_TRUTH))
SCALES = {
    "test": Setup((Panel("matrix", (16, 16), 3, 2.5e-2, 3000, target_norm=16.0, observations=128),
                   Panel("cp", (6, 6, 6), 3, 1e-3, 3000, target_norm=6**1.5, observations=100),
                   Panel("hierarchical", (4, 4, 4, 4), 3, 1e-1, 3000, target_norm=16.0, observations=180,
                         root_spectrum=(3.0, 2.0, 1.0))),
                  record_every=20, patience=0, width_cap=8),
    "quick": Setup((Panel("matrix", (64, 64), 5, 1e-3, 15_000),
                    Panel("cp", (16, 16, 16), 5, 1e-3, 15_000),
                    Panel("hierarchical", (8, 8, 8, 8), 5, 0.06, 35_000, **HT_TRUTH)), record_every=50,
                   width_cap=16),
    "paper": Setup(PAPER_PANELS, record_every=100),
}


def run(scale: str, out_dir: Path, seeds: int | None, data: str | None) -> list[Claim]:
    """Train each panel (one run per repetition; the figure and claims use repetition 0); write curves.csv,
    dynamics.png (three panels), hierarchical_matricizations.png and return the claims."""
    setup = SCALES[scale]
    repetitions = seeds or 1
    rows, curves = [], {}
    for panel in setup.panels:
        steps, values, extra = _train_panel(setup, panel, repetitions, progress=scale != "test")
        curves[panel.kind] = (steps, values, extra)
        for t, step in enumerate(steps):
            for seed in range(repetitions):
                row = {"panel": panel.kind, "seed": seed, "step": step}
                row.update({name: float(v[t, seed]) for name, v in extra.items() if v.dim() == 2})
                row.update({f"quantity_{k + 1}": float(values[t, seed, k]) for k in range(values.shape[2])})
                for name, v in extra.items():
                    if v.dim() == 3:
                        row.update({f"{name}_{k + 1}": float(v[t, seed, k]) for k in range(v.shape[2])})
                rows.append(row)
    write_csv(out_dir / "curves.csv", rows)
    _plot_three(setup, curves, out_dir / "dynamics.png")
    if "hierarchical" in curves:
        _plot_matricizations(curves["hierarchical"], out_dir / "hierarchical_matricizations.png")
    return claims(setup, curves)


def _build(setup: Setup, panel: Panel):
    if panel.kind == "matrix":
        truth = low_rank_matrix(*panel.shape, panel.rank, seed=0, frobenius_norm=panel.target_norm)
        return MatrixFactorization(*panel.shape, depth=3), truth
    if panel.kind == "cp":
        return CPFactorization(panel.shape, panel.components), low_rank_tensor(panel.shape, panel.rank, seed=0,
                                                              frobenius_norm=panel.target_norm)
    truth = low_hierarchical_rank_tensor(panel.shape, panel.rank, seed=0, frobenius_norm=panel.target_norm,
                                         root_spectrum=panel.root_spectrum)
    return HierarchicalFactorization(panel.shape, width_cap=setup.width_cap), truth


def _train_panel(setup: Setup, panel: Panel, repetitions: int, progress: bool):
    """(steps, quantities (T, B, SHOWN) sorted descending, extra curves) of one panel's runs."""
    model, truth = _build(setup, panel)
    task = prefix_completion(truth.float(), panel.observations, seed=0, batch=repetitions).to("cpu", torch.float32)
    # the paper gives every panel's per-entry factor std; the model's init_scale is the matching ||W(0)||_F
    params = model.init(repetitions, model.scale_for_entry_std(panel.init_scale), generators(list(range(repetitions))))

    def measure(p, loss):
        w = model.end_to_end(p)
        out = {"quantities": model.quantities(p)[:, :SHOWN].float(), "error": relative_error(w, task.target)}
        if panel.kind == "hierarchical":
            for name, modes in (("node", NODE_MODES), ("non_node", NON_NODE_MODES)):
                out[name] = torch.linalg.svdvals(matricize(w.double(), modes))[:, :SHOWN].float()
        return out

    state = train_rmsprop(model, task, params, setup.lr, max_steps=panel.max_steps,
                          loss_threshold=setup.loss_threshold, patience=setup.patience,
                          record_every=setup.record_every, measure=measure, progress=progress)
    steps = [r["step"] for r in state.records]
    values = torch.stack([r["quantities"] for r in state.records]).double()
    extra = {"reconstruction_error": torch.stack([r["error"] for r in state.records]).double(),
             "train_loss": torch.stack([r["train_loss"] for r in state.records]).double()}
    if panel.kind == "hierarchical":
        for name in ("node", "non_node"):
            extra[f"{name}_singular_value"] = torch.stack([r[name] for r in state.records]).double()
    return steps, values, extra


def _plot_three(setup: Setup, curves: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.5), squeeze=False)
    titles = {"matrix": "matrix factorization", "cp": "tensor factorization",
              "hierarchical": "hierarchical tensor factorization"}
    for ax, (kind, (steps, values, _)) in zip(axes[0], curves.items()):
        for k in range(values.shape[2]):
            ax.plot(steps, values[:, 0, k].tolist(), lw=1.2, label=f"{k + 1}" if k < 6 else None)
        ax.set(xlabel="iteration", ylabel=QUANTITY_LABEL[kind], title=titles[kind])
        ax.legend(title="largest", fontsize=7, title_fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def _plot_matricizations(curve, path: Path) -> None:
    steps, _, extra = curve
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.5), sharey=True)
    for ax, name, title in ((axes[0], "node", "node {1,2} vs {3,4}"), (axes[1], "non_node", "non-node {1,3} vs {2,4}")):
        values = extra[f"{name}_singular_value"]
        for k in range(values.shape[2]):
            ax.plot(steps, values[:, 0, k].tolist(), lw=1.2, label=f"σ{k + 1}" if k < 6 else None)
        ax.set(xlabel="iteration", ylabel="singular value", yscale="log", title=f"HT: matricization at {title}")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def claims(setup: Setup, curves: dict) -> list[Claim]:
    """Per panel: the learned quantities (count above 10% of the largest, one at a time); where the problem is
    the paper's, the published final values and take-off steps; for HT, node vs non-node matricization ranks."""
    out: list[Claim] = []
    panels = {p.kind: p for p in setup.panels}
    for kind, (steps, values, _) in curves.items():
        panel, final = panels[kind], values[-1, 0]
        label = f"{kind}: {QUANTITY_LABEL[kind]}"
        learned = int((final > LEARNED_FRACTION * final[0]).sum())
        out.append(check(f"{label}: number learned (> 3% of the largest; paper: 5 = the rank)", panel.rank,
                         learned, "equal to the ground truth's rank", learned == panel.rank))
        # take-offs of the learned quantities only (a dormant one "reaches half its final value" by noise)
        takeoffs = sorted(takeoff_steps(steps, values[:, 0, :min(learned, panel.rank)]))
        gap = 2 * setup.record_every
        one_at_a_time = learned == panel.rank and min(takeoffs) > 0 and all(
            b - a >= gap for a, b in zip(takeoffs, takeoffs[1:]))
        out.append(check(f"{label}: learned one at a time (steps to half the final value)", "incremental", takeoffs,
                         f"increasing, >= {gap} steps apart", one_at_a_time))
        if not _is_paper_panel(panel):
            reason = "this scale's set-up differs from the paper's"
            out.append(not_run(f"{label}: final values", list(PAPER_FINAL[kind]), reason))
            out.append(not_run(f"{label}: all learned by", PAPER_LAST_TAKEOFF[kind], reason))
            continue
        ours = [round(float(v), 2) for v in final[:5]]
        close = all(abs(o - p) <= 0.35 * p for o, p in zip(ours, PAPER_FINAL[kind]))
        truth = "a truth with that root spectrum" if kind == "hierarchical" else "another random truth of the same law"
        out.append(check(f"{label}: final values ({truth})", list(PAPER_FINAL[kind]), ours, "each within 35%", close))
        if kind in PAPER_FIRST_TAKEOFF:
            out.append(check_close(f"{label}: first take-off step", PAPER_FIRST_TAKEOFF[kind], takeoffs[0], 0.5))
        last = f"{label}: last take-off step (all five learned by)"
        out.append(check_close(last, PAPER_LAST_TAKEOFF[kind], takeoffs[-1], 0.5) if learned >= panel.rank
                   else check(last, PAPER_LAST_TAKEOFF[kind], f"only {learned} learned", "within 50%", False))
    if "hierarchical" in curves:
        _, _, extra = curves["hierarchical"]
        node = int(numerical_rank(extra["node_singular_value"][-1, :1], RANK_TOL))
        non_node = int(numerical_rank(extra["non_node_singular_value"][-1, :1], RANK_TOL))
        rank = panels["hierarchical"].rank
        out.append(check("HT: rank of the matricization at a tree node (σ > 1% of σ1)", rank, node,
                         f"equal to the ground truth's ({rank})", node == rank))
        out.append(check("HT: rank of the matricization at a non-node", f"> {rank} (unconstrained by the tree)",
                         non_node, "above the node's", non_node > node))
    return out


def _is_paper_panel(panel: Panel) -> bool:
    paper = {p.kind: p for p in PAPER_PANELS}[panel.kind]
    return (panel.shape, panel.rank, panel.init_scale, panel.target_norm, panel.observations) == (
        paper.shape, paper.rank, paper.init_scale, paper.target_norm, paper.observations)
