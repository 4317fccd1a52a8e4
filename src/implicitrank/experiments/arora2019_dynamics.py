"""Arora et al. 2019, §4 (Figure 3): singular values of W = W_N⋯W_1 are learned one at a time, faster with depth.

Plain full-batch gradient descent from the identity init W(0) = α·I (balanced; α = 1e-3, the paper does not state
it), depths 1, 2, 3, on the synthetic completion task (rank-r W* with ‖W*‖_F = n, M random entries) and, with
``--data PATH/u.data``, on MovieLens 100K (943×1682, 10,000 random training ratings, held-out MSE). Loss: mean over
observed entries of the squared error, no ½ (lr 0.1, papers.md §1 Figure 3).

Panels: (1) the top-10 singular values against iterations; (2) singular vectors: mean |diagonal| and mean
|off-diagonal| of U_kᵀ ∇L(W) V_k (k = 10 leading singular vectors), whose off-diagonal part shrinks; (3) the
measured σ̇_r (finite differences of recorded σ_r, per unit time t = lr·step) overlaid with Theorem 3's
σ̇_r = −N·(σ_r²)^{1−1/N}·⟨∇L(W), u_r v_rᵀ⟩ (``MatrixFactorization.predicted_rates``, ``measure.check_rates``).
Reconstruction error is the paper's: mean over all entries of (W − W*)², the squared relative Frobenius error
(‖W*‖_F² = n²).

Scales: ``paper`` 100×100 rank 5, 2000 observations, 20,000 steps; ``quick`` 40×40 rank 3, 400 observations
(fewer observations make each step larger: ∇L ∝ 1/M), 8,000 steps; ``test`` 16×16 rank 2. MovieLens runs take the
paper's 2·10⁵ (depth 1) and 5·10⁴ (depths 2, 3) steps at ``paper`` scale (hours on a CPU), 2·10⁴ at ``quick`` and
2·10³ at ``test``. Every scale runs 3 seeds (each its own ground truth, observations); every claim must hold on
each. Control: the depth-2/3 low-rank claims evaluated on depth 1.

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS
2019, Theorem 3 and Figure 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from ..factorizations import MatrixFactorization, generators
from ..measure import check_rates
from ..plots import indexed, save
from ..run import RunConfig
from ..tasks import complete_from_target, low_rank_matrix
from ..tasks.files import read_movielens
from ..theory import record_trajectory
from . import published
from ._matrix_common import DEPTH_COLORS, median, panels, run_grid, write_csv
from .claims import Claim, evaluate, not_run, seed_list

NAME = "arora2019-dynamics"
TITLE = "Arora et al. 2019, Fig. 3: top singular values vs iterations (GD, identity init), depths 1-3; MovieLens"
DEPTHS = (1, 2, 3)
TOP = 10
INIT_SCALE = 1e-3  # α of W(0) = α·I; the factorizations' init_scale is ‖W(0)‖_F = α·√n
LR = 0.1
MOVIELENS_SHAPE = (943, 1682)
MOVIELENS_TRAIN = 10_000


@dataclass(frozen=True)
class DynamicsScale:
    size: int
    rank: int
    observations: int
    steps: int
    records: int  # recorded points along each trajectory
    movielens_steps: dict[int, int]
    seeds: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= self.size or not 1 <= self.observations <= self.size**2:
            raise ValueError("need 1 <= rank <= size and 1 <= observations <= size²")
        if self.steps < self.records or self.records < 2:
            raise ValueError(f"steps ({self.steps}) must be >= records ({self.records}) >= 2")


SCALES = {
    "test": DynamicsScale(16, 2, 100, 2_000, 200, {1: 2_000, 2: 2_000, 3: 2_000}),
    "quick": DynamicsScale(40, 3, 400, 8_000, 400, {1: 20_000, 2: 20_000, 3: 20_000}),
    "paper": DynamicsScale(100, 5, 2000, 20_000, 500, {1: 200_000, 2: 50_000, 3: 50_000}),
}


def singular_vector_alignment(w: torch.Tensor, grad: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |diagonal| and mean |off-diagonal| of U_kᵀ ∇L V_k for the k leading singular vectors of W, each (...,)."""
    u, _, vh = torch.linalg.svd(w, full_matrices=False)
    block = (u[..., :k].transpose(-1, -2) @ grad @ vh[..., :k, :].transpose(-1, -2)).abs()
    diag = torch.diagonal(block, dim1=-2, dim2=-1)
    off = (block.sum((-1, -2)) - diag.sum(-1)) / (k * k - k)
    return diag.mean(-1), off


def run_synthetic(cfg: DynamicsScale, seed: int) -> tuple[list[dict], dict[int, float]]:
    """Per-record rows of every depth (singular values, alignment, measured and predicted rates, error) and the
    relative error of Theorem 3's rates per depth."""
    target = low_rank_matrix(cfg.size, cfg.size, cfg.rank, seed=seed)
    task = complete_from_target(target, cfg.observations, [seed])
    every = cfg.steps // cfg.records
    k = min(TOP, cfg.size)
    rows, theory = [], {}
    for depth in DEPTHS:
        model = MatrixFactorization(cfg.size, cfg.size, depth, None, "identity")
        norm = INIT_SCALE * math.sqrt(cfg.size)
        params = model.init(1, torch.tensor([norm]), generators([seed]), dtype=torch.float64)
        traj = record_trajectory(model, task, params, LR, cfg.steps, every)
        theory[depth] = float(check_rates(model, traj, top=cfg.rank).error[0])
        w, grad = traj.end_to_end[:, 0], traj.gradients[:, 0]
        sigma = torch.linalg.svdvals(w)
        rate = torch.stack([model.predicted_rates(traj.at(i), traj.gradients[i])[0] for i in range(len(traj.times))])
        diag, off = singular_vector_alignment(w, grad, k)
        error = (w - target).pow(2).mean((-1, -2))
        dt = traj.times[1:] - traj.times[:-1]
        measured = torch.cat([(sigma[1:] - sigma[:-1]) / dt[:, None], torch.full_like(sigma[:1], math.nan)])
        for i in range(len(traj.times)):
            row = {"seed": seed, "depth": depth, "step": round(float(traj.times[i]) / LR),
                   "reconstruction_error": float(error[i]), "mean_abs_diag": float(diag[i]),
                   "mean_abs_offdiag": float(off[i])}
            row |= {f"sigma_{j + 1}": float(sigma[i, j]) for j in range(k)}
            row |= {f"rate_measured_{j + 1}": float(measured[i, j]) for j in range(cfg.rank)}
            row |= {f"rate_predicted_{j + 1}": float(rate[i, j]) for j in range(cfg.rank)}
            rows.append(row)
    return rows, theory


def check_movielens(path: str) -> None:
    """Refuse a file ``run_movielens`` cannot use before anything trains: not a MovieLens ``u.data`` file, or too
    few ratings to train on ``MOVIELENS_TRAIN`` and hold out the rest (the synthetic part trains first)."""
    if Path(path).suffix.lower() == ".npz":  # which the file reader's message offers: other commands take it
        raise UsageError(f"--data: {NAME} reads a MovieLens u.data text file (user item rating timestamp per line), "
                         f"got {path}")
    table = read_movielens(path)
    if len(table) <= MOVIELENS_TRAIN:
        raise UsageError(f"--data: {path} has {len(table):,} ratings; {NAME} trains on {MOVIELENS_TRAIN:,} random "
                         f"ones and holds out the rest, so it needs more than {MOVIELENS_TRAIN:,} (MovieLens 100K: "
                         "100,000)")


def run_movielens(cfg: DynamicsScale, path: str, seed: int) -> list[dict]:
    """Depths 1-3 on MovieLens (plain GD, identity init): per-record top singular values and held-out MSE."""
    configs = [RunConfig(shape=MOVIELENS_SHAPE, data=path, num_observations=MOVIELENS_TRAIN, depth=d, init="identity",
                         init_scale=INIT_SCALE * math.sqrt(min(MOVIELENS_SHAPE)), optimizer="gd", lr=LR,
                         max_steps=cfg.movielens_steps[d], loss_threshold=0.0, data_seed=seed, seed=seed, top=TOP,
                         record_per_decade=20, checkpoint_every=0) for d in DEPTHS]
    rows = []
    for result in run_grid(configs, progress=True):
        for r in result.rows:
            rows.append({"depth": result.config.depth, "step": r["step"], "train_loss": r["train_loss"],
                         "test_mse": r.get("test_mse")} | {f"sigma_{j + 1}": v for j, v in
                                                             enumerate(r["singular_values"])})
        if result.summary["status"] == "diverged":  # its rows end at the last finite record: the end has no number
            rows.append({key: math.nan for key in rows[-1]} | {"depth": result.config.depth,
                                                                "step": result.summary["steps"]})
    return rows


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    cfg = SCALES[scale]
    seeds = seed_list(seeds, cfg.seeds)
    rows, theory = [], {}
    for seed in seeds:  # each seed draws its own ground truth and observed entries
        seed_rows, theory[seed] = run_synthetic(cfg, seed=seed)
        rows += seed_rows
    write_csv(out_dir / "synthetic.csv", rows)
    _plot([r for r in rows if r["seed"] == seeds[0]], cfg, out_dir / "synthetic_dynamics.png",
          f"synthetic, {_shown_seed(seeds)}")
    claims = _synthetic_claims(rows, theory, cfg, seeds)
    if data is None:
        for d in DEPTHS:
            claims.append(not_run(f"MovieLens depth {d}: top singular value", published.A19_MOVIELENS_TOP[d],
                                  "needs --data"))
            claims.append(not_run(f"MovieLens depth {d}: held-out MSE", published.A19_MOVIELENS_MSE[d],
                                  "needs --data"))
        return claims
    movielens = [row | {"seed": seed} for seed in seeds for row in run_movielens(cfg, data, seed=seed)]
    write_csv(out_dir / "movielens.csv", movielens)
    _plot([r for r in movielens if r["seed"] == seeds[0]], cfg, out_dir / "movielens_dynamics.png",
          f"MovieLens 100K, {_shown_seed(seeds)}")
    for d in DEPTHS:
        last = [[r for r in movielens if r["depth"] == d and r["seed"] == s][-1] for s in seeds]
        claims.append(evaluate(f"MovieLens depth {d}: top singular value", "relative", 0.1,
                               [x["sigma_1"] for x in last], seeds=seeds, published=published.A19_MOVIELENS_TOP[d],
                               rule="median"))
        claims.append(evaluate(f"MovieLens depth {d}: held-out MSE", "relative", 0.1, [x["test_mse"] for x in last],
                               seeds=seeds, published=published.A19_MOVIELENS_MSE[d], rule="median"))
    return claims


def _final_sigmas(rows: list[dict], depth: int) -> list[float]:
    last = [r for r in rows if r["depth"] == depth][-1]
    return [last[f"sigma_{j + 1}"] for j in range(TOP) if f"sigma_{j + 1}" in last]


def jump_steps(rows: list[dict], depth: int, rank: int) -> list[int]:
    """For each of the top ``rank`` singular values, the first recorded step at which it reaches half its final
    value (the middle of its sigmoidal rise)."""
    mine = [r for r in rows if r["depth"] == depth]
    final = _final_sigmas(rows, depth)
    return [next((r["step"] for r in mine if r[f"sigma_{j + 1}"] >= 0.5 * final[j]), math.nan) for j in range(rank)]


def _alignment(rows: list[dict], depth: int) -> float:
    """Median over the records after the first jump of mean |off-diag| / mean |diag| of Uᵀ∇L V."""
    mine = [x for x in rows if x["depth"] == depth]
    first = jump_steps(rows, depth, 1)[0]
    ratios = sorted(x["mean_abs_offdiag"] / x["mean_abs_diag"] for x in mine if x["step"] >= first
                    and x["mean_abs_diag"] > 0)
    return ratios[len(ratios) // 2] if ratios else math.nan


def _synthetic_claims(rows: list[dict], theory: dict[int, dict[int, float]], cfg: DynamicsScale,
                      seeds: tuple[int, ...]) -> list[Claim]:
    """Each claim on every seed's run; the depth-2 and depth-3 low-rank claims also on depth 1 (the control)."""
    r = cfg.rank
    by_seed = {s: [x for x in rows if x["seed"] == s] for s in seeds}
    final = {(s, d): _final_sigmas(by_seed[s], d) for s in seeds for d in DEPTHS}
    claims = []
    claims.append(evaluate("depth 1: the top-10 singular values rise together (smallest / largest at the end)",
                           "at_least", 0.3, [final[s, 1][-1] / final[s, 1][0] for s in seeds], seeds=seeds,
                           published=published.A19_DEPTH1_RISE))
    error1 = [[x for x in by_seed[s] if x["depth"] == 1][-1]["reconstruction_error"] for s in seeds]
    if cfg.size == 100:
        claims.append(evaluate("depth 1: reconstruction error (mean (W-W*)^2) at the end", "relative", 0.1, error1,
                               seeds=seeds, published=published.A19_DEPTH1_ERROR))
    else:
        unobserved = 1 - cfg.observations / cfg.size**2
        claims.append(evaluate("depth 1: reconstruction error ≈ the unobserved fraction", "relative", 0.1, error1,
                               seeds=seeds, reference=unobserved, derived="1 − observations / n² (depth 1 leaves "
                               "unobserved entries ≈0; the paper's 0.82 is for 20% observed at n = 100)"))
    gap = {d: [final[s, d][r - 1] / final[s, d][r] for s in seeds] for d in DEPTHS}
    rest = {d: [final[s, d][r] / final[s, d][r - 1] for s in seeds] for d in DEPTHS}
    claims.append(evaluate(f"depth 2: {r} values rise, the rest stay small (sigma_{r} / sigma_{r + 1} at the end)",
                           "at_least", 2.0, gap[2], seeds=seeds, published=published.A19_DEPTH2_GAP,
                           control=evaluate(f"control: depth 1, sigma_{r} / sigma_{r + 1} at the end", "at_least",
                                            2.0, gap[1], seeds=seeds)))
    claims.append(evaluate(f"depth 3: the rest stay ≈0 (sigma_{r + 1} / sigma_{r} at the end)", "at_most", 0.05,
                           rest[3], seeds=seeds, published=published.A19_DEPTH3_REST,
                           control=evaluate(f"control: depth 1, sigma_{r + 1} / sigma_{r} at the end", "at_most",
                                            0.05, rest[1], seeds=seeds)))
    jumps = [[float(j) for j in jump_steps(by_seed[s], 3, r)] for s in seeds]
    claims.append(evaluate(f"depth 3: the {r} values jump one at a time (steps at half their final value)",
                           "ordering", "increasing", jumps, seeds=seeds, published=published.A19_DEPTH3_JUMPS))
    if cfg.size == 100:
        claims.append(evaluate("depth 3: step of the first jump", "factor", 2.0, [j[0] for j in jumps], seeds=seeds,
                               published=published.A19_FIRST_JUMP, rule="median"))
    # Not a control: depth 1 aligns too (exactly, from W(0) = α·I: W − W(0) and ∇L share singular vectors), as the
    # theory expects of any depth. The note says so, so a pass is not read as an effect of depth.
    depth1 = median(_alignment(by_seed[s], 1) for s in seeds)  # NaN if a seed has none: shown as nan
    for depth in (2, 3):
        claims.append(evaluate(f"depth {depth}: singular vectors align, mean |off-diag| / mean |diag| of U^T grad V "
                               "(median after the first jump)", "at_most", 1.0,
                               [_alignment(by_seed[s], depth) for s in seeds], seeds=seeds,
                               published=published.A19_ALIGNMENT,
                               note=f"depth 1 aligns as well (median {depth1:.3g}): from the identity init this is "
                                    "not an effect of depth"))
    for depth in DEPTHS:
        claims.append(evaluate(f"depth {depth}: measured dsigma/dt vs Theorem 3 (relative error, top {r})", "at_most",
                               0.1, [theory[s][depth] for s in seeds], seeds=seeds, published=published.A19_THEOREM3))
    return claims


def _shown_seed(seeds: tuple[int, ...]) -> str:
    """The figures draw the first seed's runs (the claims take every seed): say so in their titles."""
    return f"seed {seeds[0]}" + (f" (1 of {len(seeds)} seeds)" if len(seeds) > 1 else "")


def _plot(rows: list[dict], cfg: DynamicsScale, path: Path, title: str) -> None:
    synthetic = "mean_abs_diag" in rows[0]
    fig, axes = panels(3 if synthetic else 2, len(DEPTHS))
    for col, depth in enumerate(DEPTHS):
        mine = [x for x in rows if x["depth"] == depth]
        steps = [x["step"] for x in mine]
        ax = axes[0][col]
        for j in range(TOP):
            if f"sigma_{j + 1}" in mine[0]:
                ax.plot(steps, [x[f"sigma_{j + 1}"] for x in mine], lw=1.2, label=indexed("σ", j + 1))
        # A linear axis, as the paper's Figure 3: the top values rise one after another while the rest stay ≈0.
        ax.set(xlabel="iteration", ylabel="singular values of W (units of W)", title=f"{title}, depth {depth}")
        ax.legend(fontsize=6, ncol=2)
        if not synthetic:
            axes[1][col].plot(steps, [x["test_mse"] for x in mine], color=DEPTH_COLORS[depth])
            axes[1][col].set(xlabel="iteration", ylabel="held-out MSE", yscale="log",
                             title=f"held-out error, depth {depth}")
            continue
        ax = axes[1][col]
        ax.plot(steps, [x["mean_abs_diag"] for x in mine], label="mean |diag|")
        ax.plot(steps, [x["mean_abs_offdiag"] for x in mine], label="mean |off-diag|")
        ax.set(xlabel="iteration", ylabel=r"$|U^\top \nabla L\, V|$ (top 10)", yscale="log",
               title=f"gradient in the singular bases, depth {depth}")
        ax.legend(fontsize=8)
        ax = axes[2][col]
        for j in range(cfg.rank):
            line, = ax.plot(steps, [x[f"rate_measured_{j + 1}"] for x in mine], lw=1.2)
            ax.plot(steps, [x[f"rate_predicted_{j + 1}"] for x in mine], "--", color=line.get_color(), lw=1.2)
        ax.plot([], [], "k-", label="measured")
        ax.plot([], [], "k--", label="Theorem 3")
        ax.set(xlabel="iteration", ylabel=r"$d\sigma_r/dt$, time $t$ = lr $\times$ iteration",
               title=f"singular value rates vs Theorem 3, depth {depth}")
        ax.legend(fontsize=8)
    save(fig, path)
