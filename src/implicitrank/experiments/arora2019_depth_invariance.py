"""Arora et al. 2019, §3 (Theorem 2): in Gunasekar et al.'s restricted setting, depth does not change the norm.

Setting: matrix sensing with commuting symmetric measurement matrices A_i = O diag(a_i) Oᵀ (one orthogonal O, a_i
i.i.d. N(0, I)), a PSD ground truth W* = O diag(x*) Oᵀ (x* ≥ 0 with ``rank`` nonzeros), and the factorization
W = W_N⋯W_1 from the symmetric near-zero init W_j(0) = α^{1/N}·I (``init="identity"``, W(0) = α·I). Every
factor then stays a polynomial in the A_i, so W = O diag(u^N) Oᵀ with u ≥ 0: a PSD factorization. Gradient flow
from α → 0, when it fits the data, ends at a minimum-nuclear-norm solution for *every* depth N ≥ 2 (Gunasekar et
al. 2017 proved it for N = 2; Arora et al. 2019, Theorem 2, for N ≥ 3), whereas depth 1 (gradient descent on W)
ends at the minimum-Frobenius solution.

The reference minimum over PSD matrices is exact: the constraints see only the eigenvalues x of OᵀXO, so
min{‖X‖_* : X ⪰ 0, ⟨A_i, X⟩ = y_i} = min{1ᵀx : x ≥ 0, ⟨a_i, x⟩ = y_i}, a linear program (scipy's HiGHS).
The unconstrained minimum (``baselines.nuclear_norm_min``, ADMM) is written alongside as a cross-check.
Loss: mean over measurements of (⟨A_i, W⟩ − y_i)², no ½; plain gradient descent (the discretization of gradient
flow the theorem is about) in float64 until the loss is ≤ 1e-6 (depths ≥ 3 approach the fit only polynomially,
x ∝ 1/t). Global RMSprop stalls here at a loss ∝ lr²: its normalized step does not shrink.

Each gradient is projected onto the theorem's set {O diag(v) Oᵀ} (``commuting_objective``). In exact arithmetic
the projection does nothing: every factor stays O diag(u) Oᵀ with the same u, so the gradient already lies there.
In floating point it matters. W_j = α^{1/N}·I sits on an unstable manifold, and plain GD amplifies its rounding
errors across the plateau. Measured at quick scale, seed 1, depth 4, init 1e-4: the factors differed by 2e-9 at
step 1000, 1e-2 at step 2900 and 0.5 at step 3200. That run ended outside the PSD cone (smallest eigenvalue
−0.56, nuclear norm 1.40 below the PSD minimum 2.02), and so did every step size from 0.05 down to 0.01.
Rounding, not the step, left the setting. With the projection (2026-12-04, quick, 3 seeds), 32 of the 36 runs
take the same number of steps and end at the same nuclear norm (to 1e-6) as before. The other four are seed 1's
slow ones; that run now takes 83,548 steps instead of 5,395 and ends at the minimum (gap 9e-4), and every claim
holds on all three seeds. The quick run takes 133 s against plain GD's 89 s, one after the other on one thread.

No sizes were published for this setting; ``paper`` uses 30×30 rank 4 with 12 measurements and init scales down to
1e-6; ``quick`` 8×8 rank 2, 4 measurements, depths 1-4, inits down to 1e-4; ``test`` the same with depths
1-3 and inits 1e-2, 1e-4. Every scale runs 3 seeds (each its own O, a_i and x*); every claim must hold on each.
Control: depth 1, which ends at the minimum-Frobenius solution, must fail the minimum-nuclear-norm claim.

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS
2019, Theorem 2; S. Gunasekar et al., "Implicit Regularization in Matrix Factorization", NeurIPS 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from ..baselines import nuclear_norm_min
from ..factorizations import MatrixFactorization, generators, loss_and_grad
from ..optim import make_optimizer
from ..plots import legend_outside, save
from ..tasks import Sensing
from ..train import TrainConfig, train
from . import published
from ._matrix_common import DEPTH_COLORS, panels, write_csv
from .claims import Claim, evaluate, seed_list

NAME = "arora2019-depth-invariance"
TITLE = "Arora et al. 2019, Thm. 2: commuting sensing, PSD factorization: depths 2, 3, 4 all reach min nuclear norm"


@dataclass(frozen=True)
class InvarianceScale:
    size: int
    rank: int
    measurements: int
    depths: tuple[int, ...]
    init_scales: tuple[float, ...]
    lr: float
    max_steps: int
    tolerance: float  # relative gap to the minimum nuclear norm counted as "at the minimum"

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= self.size or not 1 <= self.measurements < self.size:
            raise ValueError("need 1 <= rank <= size and 1 <= measurements < size (an underdetermined problem)")


SCALES = {
    "test": InvarianceScale(8, 2, 4, (1, 2, 3), (1e-2, 1e-4), 0.05, 60_000, 0.01),
    "quick": InvarianceScale(8, 2, 4, (1, 2, 3, 4), (1e-2, 1e-3, 1e-4), 0.05, 200_000, 0.01),
    "paper": InvarianceScale(30, 4, 12, (1, 2, 3, 4), (1e-3, 1e-4, 1e-5, 1e-6), 0.02, 2_000_000, 0.01),
}
LOSS_THRESHOLD = 1e-6
PSD_SLACK = 1e-3  # a smallest eigenvalue below −PSD_SLACK: the run left the PSD cone


def commuting_sensing(size: int, rank: int, measurements: int, seed: int,
                      batch: int) -> tuple[Sensing, np.ndarray, np.ndarray, Tensor]:
    """The sensing task with A_i = O diag(a_i) Oᵀ and W* = O diag(x*) Oᵀ; also returns the a_i (rows), y and O."""
    g = torch.Generator().manual_seed(seed)
    o = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=torch.float64)).Q
    a = torch.randn(measurements, size, generator=g, dtype=torch.float64)
    x = torch.zeros(size, dtype=torch.float64)
    x[torch.randperm(size, generator=g)[:rank]] = 0.5 + torch.rand(rank, generator=g, dtype=torch.float64)
    matrices = torch.einsum("ik,mk,jk->mij", o, a, o)  # O diag(a_m) Oᵀ
    target = o @ torch.diag(x) @ o.T
    y = a @ x
    task = Sensing((size, size), matrices.reshape(measurements, -1), y.expand(batch, -1).clone(),
                   target=target.expand(batch, size, size))
    return task, a.numpy(), y.numpy(), o


def commuting_objective(model: MatrixFactorization, task: Sensing, basis: Tensor):
    """The loss and its gradients, each gradient projected onto {O diag(v) Oᵀ}: G ↦ O diag(diag(Oᵀ G O)) Oᵀ.

    From W_j(0) = α^{1/N}·I every factor of the exact flow stays O diag(u) Oᵀ (Arora et al. 2019, proof of
    Theorem 2), so the exact gradient lies in that set and the projection leaves it unchanged. It removes what
    rounding adds outside the set, which the plateau's saddle would otherwise amplify (see the module docstring).
    """
    transposed = basis.T.contiguous()

    def objective(params: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        loss, grads = loss_and_grad(model, params, task)
        diagonals = [((transposed @ g) * transposed).sum(-1) for g in grads]  # diag(Oᵀ G O), as matmuls: 2x einsum's
        return loss, [(basis * d[:, None, :]) @ transposed for d in diagonals]  # O diag(d) Oᵀ

    return objective


def min_nuclear_norm_psd(a: np.ndarray, y: np.ndarray) -> float:
    """min 1ᵀx s.t. a x = y, x >= 0: the minimum nuclear norm over PSD matrices for commuting measurements."""
    result = linprog(np.ones(a.shape[1]), A_eq=a, b_eq=y, bounds=(0, None), method="highs")
    if not result.success:
        raise RuntimeError(f"linear program failed: {result.message}")
    return float(result.fun)


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    cfg = SCALES[scale]
    seeds = seed_list(seeds, 3)
    rows, curves = [], []
    for seed in seeds:
        task, a, y, basis = commuting_sensing(cfg.size, cfg.rank, cfg.measurements, seed, len(cfg.init_scales))
        reference = min_nuclear_norm_psd(a, y)
        unconstrained = nuclear_norm_min(task, 0, tol=1e-8).nuclear_norm
        truth = float(torch.linalg.svdvals(task.target[0]).sum())
        for depth in cfg.depths:
            model = MatrixFactorization(cfg.size, cfg.size, depth, None, "identity")
            norms = torch.tensor(cfg.init_scales) * math.sqrt(cfg.size)  # ‖α·I‖_F: the model's init_scale
            params = model.init(len(cfg.init_scales), norms, generators([seed] * len(cfg.init_scales)),
                                dtype=torch.float64)

            def measure(p, loss, model=model):
                w = model.end_to_end(p)
                return {"nuclear_norm": torch.linalg.svdvals(w).sum(1),
                        "min_eigenvalue": torch.linalg.eigvalsh(0.5 * (w + w.transpose(1, 2)))[:, 0]}

            state = train(model, task, params, make_optimizer("gd"),
                          torch.full((len(cfg.init_scales),), cfg.lr, dtype=torch.float64),
                          TrainConfig(cfg.max_steps, LOSS_THRESHOLD, 0, 10, progress=False), measure=measure,
                          objective=commuting_objective(model, task, basis))
            last = state.records[-1]
            for b, alpha in enumerate(cfg.init_scales):
                rows.append({"seed": seed, "depth": depth, "init_scale": alpha, "steps": int(state.steps[b]),
                             "train_loss": float(state.loss[b]), "nuclear_norm": float(last["nuclear_norm"][b]),
                             "min_eigenvalue": float(last["min_eigenvalue"][b]), "min_nuclear_norm_psd": reference,
                             "min_nuclear_norm_all": unconstrained, "truth_nuclear_norm": truth})
            curves += [{"seed": seed, "depth": depth, "init_scale": cfg.init_scales[-1], "step": r["step"],
                        "nuclear_norm": float(r["nuclear_norm"][-1]), "train_loss": float(r["train_loss"][-1])}
                       for r in state.records]
    write_csv(out_dir / "final.csv", rows)
    write_csv(out_dir / "trajectories.csv", curves)
    _plot(rows, curves, cfg, out_dir)
    return _claims(rows, cfg, seeds)


def _claims(rows: list[dict], cfg: InvarianceScale, seeds: tuple[int, ...]) -> list[Claim]:
    """Per seed, at the smallest init: each depth >= 2 fits and ends at the minimum nuclear norm (control: depth 1,
    which ends at the minimum-Frobenius solution), and the spread of the nuclear norm over depths >= 2 (control:
    the spread with depth 1 among them)."""
    smallest = cfg.init_scales[-1]
    final = [r for r in rows if r["init_scale"] == smallest]

    def per_seed(key, depth):
        return [next((r[key] for r in final if r["depth"] == depth and r["seed"] == s), math.nan) for s in seeds]

    def gaps(depth):
        return [abs(n - m) / m for n, m in zip(per_seed("nuclear_norm", depth), per_seed("min_nuclear_norm_psd",
                                                                                        depth))]

    def left_psd(depth):  # the theorem's factorization is PSD; a discrete step can leave that cone
        out = [(s, e) for s, e in zip(seeds, per_seed("min_eigenvalue", depth)) if e < -PSD_SLACK]
        return "; ".join(f"seed {s} ended outside the PSD cone (smallest eigenvalue {e:.2g}): the discrete "
                         "gradient step, not the theorem's flow" for s, e in out)

    claims = []
    control = None
    if 1 in cfg.depths:
        control = evaluate(f"control: depth 1 (init {smallest:g}), |relative gap| to the minimum nuclear norm",
                           "at_most", cfg.tolerance, gaps(1), seeds=seeds)
    for depth in (d for d in cfg.depths if d >= 2):
        claims.append(evaluate(f"depth {depth} (init {smallest:g}) ends at the minimum nuclear norm (PSD): |relative "
                               "gap|", "at_most", cfg.tolerance, gaps(depth), seeds=seeds, note=left_psd(depth),
                               published=published.A19_MIN_NUCLEAR, control=control))
        claims.append(evaluate(f"depth {depth} (init {smallest:g}) fits the measurements (train loss)", "at_most",
                               LOSS_THRESHOLD, per_seed("train_loss", depth), seeds=seeds))

    def spread(depths):  # per seed, (max − min)/min of the final nuclear norms over ``depths``
        out = []
        for s in seeds:
            norms = [next((r["nuclear_norm"] for r in final if r["depth"] == d and r["seed"] == s), math.nan)
                     for d in depths]
            out.append((max(norms) - min(norms)) / min(norms) if all(map(math.isfinite, norms)) else math.nan)
        return out

    deep = [d for d in cfg.depths if d >= 2]
    # Runs that never left their init (W = α·I at every depth) have no spread at all: with depth 1, which ends at
    # the minimum-Frobenius solution, the same spread must fail, or the claim passes for training that did nothing.
    control = None
    if 1 in cfg.depths:
        control = evaluate("control: the same spread with depth 1 (minimum Frobenius norm) among the depths",
                           "at_most", cfg.tolerance, spread([1, *deep]), seeds=seeds)
    claims.append(evaluate("depth does not change the nuclear norm (relative spread over depths >= 2)", "at_most",
                           cfg.tolerance, spread(deep), seeds=seeds, published=published.A19_MIN_NUCLEAR,
                           control=control))
    return claims


def _plot(rows: list[dict], curves: list[dict], cfg: InvarianceScale, out_dir: Path) -> None:
    fig, axes = panels(1, 2)
    seeds = sorted({r["seed"] for r in rows})
    first = [r for r in rows if r["seed"] == seeds[0]]  # the figure draws the first seed; the claims take all
    for depth in cfg.depths:
        mine = [r for r in first if r["depth"] == depth]
        axes[0][0].plot([r["init_scale"] for r in mine], [r["nuclear_norm"] for r in mine], "o-",
                        color=DEPTH_COLORS.get(depth), label=f"depth {depth}")
        traj = [c for c in curves if c["seed"] == seeds[0] and c["depth"] == depth]
        axes[0][1].plot([c["step"] or 0.5 for c in traj], [c["nuclear_norm"] for c in traj],
                        color=DEPTH_COLORS.get(depth), label=f"depth {depth}")
    minimum, truth = first[0]["min_nuclear_norm_psd"], first[0]["truth_nuclear_norm"]
    for ax in axes[0]:
        ax.axhline(minimum, color="black", ls="--", lw=1, label="min nuclear norm (PSD)" + (
            " = the ground truth's" if math.isclose(minimum, truth, rel_tol=1e-6) else ""))
        if not math.isclose(minimum, truth, rel_tol=1e-6):  # drawn under the minimum's line otherwise
            ax.axhline(truth, color="0.5", ls=":", lw=1, label="ground truth")
        ax.set(xscale="log", ylabel="nuclear norm")
    legend_outside(axes[0][1], fontsize=8)
    shown = f"seed {seeds[0]}" + (f", 1 of {len(seeds)}" if len(seeds) > 1 else "")
    axes[0][0].set(xlabel=r"init scale $\alpha$ ($W(0)=\alpha I$)", title=f"end of training ({shown})")
    axes[0][1].set(xlabel="iteration (step 0 drawn at 0.5)", title=f"init {cfg.init_scales[-1]:g} ({shown})",
                   yscale="log")
    save(fig, out_dir / "nuclear_norm_by_depth.png")
