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
paper's 2·10⁵ (depth 1) and 5·10⁴ (depths 2, 3) steps at ``paper`` scale and 2·10⁴ at the others: hours on a CPU.

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS
2019, Theorem 3 and Figure 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..factorizations import MatrixFactorization, generators
from ..measure import check_rates
from ..plots import indexed
from ..run import RunConfig
from ..tasks import complete_from_target, low_rank_matrix
from ..theory import record_trajectory
from ._matrix_common import DEPTH_COLORS, panels, run_grid, save, write_csv
from .claims import Claim, check, check_close, check_order_of_magnitude, not_run

NAME = "arora2019-dynamics"
TITLE = "Arora et al. 2019, Fig. 3: top singular values vs iterations (GD, identity init), depths 1-3; MovieLens"
DEPTHS = (1, 2, 3)
TOP = 10
INIT_SCALE = 1e-3  # α of W(0) = α·I; the factorizations' init_scale is ‖W(0)‖_F = α·√n
LR = 0.1
MOVIELENS_SHAPE = (943, 1682)
MOVIELENS_TRAIN = 10_000
# Published MovieLens numbers (papers.md §1, Figure 3): top singular value and held-out MSE per depth.
MOVIELENS_TOP = {1: 68.0, 2: 3350.0, 3: 3780.0}
MOVIELENS_TEST_MSE = {1: 13.73, 2: 1.45, 3: 1.40}


@dataclass(frozen=True)
class DynamicsScale:
    size: int
    rank: int
    observations: int
    steps: int
    records: int  # recorded points along each trajectory
    movielens_steps: dict[int, int]

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
    return rows


def run(scale: str, out_dir: Path, seeds: int | None, data: str | None) -> list[Claim]:
    cfg = SCALES[scale]
    rows, theory = run_synthetic(cfg, seed=0)
    write_csv(out_dir / "synthetic.csv", rows)
    _plot(rows, cfg, out_dir / "synthetic_dynamics.png", "synthetic")
    claims = _synthetic_claims(rows, theory, cfg)
    if data is None:
        for d in DEPTHS:
            claims.append(not_run(f"MovieLens depth {d}: top singular value", MOVIELENS_TOP[d], "needs --data"))
            claims.append(not_run(f"MovieLens depth {d}: held-out MSE", MOVIELENS_TEST_MSE[d], "needs --data"))
        return claims
    movielens = run_movielens(cfg, data, seed=0)
    write_csv(out_dir / "movielens.csv", movielens)
    _plot(movielens, cfg, out_dir / "movielens_dynamics.png", "MovieLens 100K")
    for d in DEPTHS:
        last = [r for r in movielens if r["depth"] == d][-1]
        claims.append(check_close(f"MovieLens depth {d}: top singular value", MOVIELENS_TOP[d], last["sigma_1"],
                                  rel=0.1))
        claims.append(check_close(f"MovieLens depth {d}: held-out MSE", MOVIELENS_TEST_MSE[d], last["test_mse"],
                                  rel=0.1))
    return claims


def _final_sigmas(rows: list[dict], depth: int) -> list[float]:
    last = [r for r in rows if r["depth"] == depth][-1]
    return [last[f"sigma_{j + 1}"] for j in range(TOP) if f"sigma_{j + 1}" in last]


def jump_steps(rows: list[dict], depth: int, rank: int) -> list[int]:
    """For each of the top ``rank`` singular values, the first recorded step at which it reaches half its final
    value (the middle of its sigmoidal rise)."""
    mine = [r for r in rows if r["depth"] == depth]
    final = _final_sigmas(rows, depth)
    return [next(r["step"] for r in mine if r[f"sigma_{j + 1}"] >= 0.5 * final[j]) for j in range(rank)]


def _synthetic_claims(rows: list[dict], theory: dict[int, float], cfg: DynamicsScale) -> list[Claim]:
    r = cfg.rank
    claims = []
    s1 = _final_sigmas(rows, 1)
    claims.append(check("depth 1: the top-10 singular values rise together (smallest / largest at the end)",
                        "≈7/12 ≈ 0.6", s1[-1] / s1[0], ">= 0.3", s1[-1] / s1[0] >= 0.3))
    error1 = [x for x in rows if x["depth"] == 1][-1]["reconstruction_error"]
    if cfg.size == 100:
        claims.append(check_close("depth 1: reconstruction error (mean (W-W*)^2) at the end", 0.82, error1, rel=0.1))
    else:
        unobserved = 1 - cfg.observations / cfg.size**2
        claims.append(check_close(f"depth 1: reconstruction error ≈ unobserved fraction {unobserved:.2f} (paper 0.82 "
                                  "at 20% observed)", unobserved, error1, rel=0.1))
    s2 = _final_sigmas(rows, 2)
    claims.append(check(f"depth 2: {r} values rise, the rest stay small (sigma_{r} / sigma_{r + 1} at the end)",
                        "≈25/6 ≈ 4", s2[r - 1] / s2[r], ">= 2", s2[r - 1] / s2[r] >= 2))
    s3 = _final_sigmas(rows, 3)
    claims.append(check(f"depth 3: the rest stay ≈0 (sigma_{r + 1} / sigma_{r} at the end)", "≈0", s3[r] / s3[r - 1],
                        "<= 0.05", s3[r] / s3[r - 1] <= 0.05))
    jumps = jump_steps(rows, 3, r)
    claims.append(check(f"depth 3: the {r} values jump one at a time (steps at half their final value)",
                        "≈8k…15k, one after another", jumps, "strictly increasing",
                        all(a < b for a, b in zip(jumps, jumps[1:]))))
    if cfg.size == 100:
        claims.append(check_order_of_magnitude("depth 3: step of the first jump", 8000.0, float(jumps[0]), 2.0))
    for depth in (2, 3):
        mine = [x for x in rows if x["depth"] == depth]
        first = jump_steps(rows, depth, 1)[0]
        ratios = sorted(x["mean_abs_offdiag"] / x["mean_abs_diag"] for x in mine if x["step"] >= first
                        and x["mean_abs_diag"] > 0)
        ratio = ratios[len(ratios) // 2] if ratios else math.nan
        claims.append(check(f"depth {depth}: singular vectors align, mean |off-diag| / mean |diag| of U^T grad V "
                            "(median after the first jump)", "off-diagonal shrinks", ratio, "< 1", ratio < 1))
    for depth in DEPTHS:
        claims.append(check(f"depth {depth}: measured dsigma/dt vs Theorem 3 (relative error, top {r})", 0.0,
                            theory[depth], "<= 0.1", theory[depth] <= 0.1))
    return claims


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
        ax.set(xlabel="iteration", ylabel=r"$d\sigma_r/dt$ (per iteration)",
               title=f"singular value rates vs Theorem 3, depth {depth}")
        ax.legend(fontsize=8)
    save(fig, path)
