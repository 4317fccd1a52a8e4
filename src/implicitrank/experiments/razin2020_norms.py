"""Razin & Cohen 2020, §3-§4 (Figures 1-2): a 2×2 completion where every norm diverges while the rank falls.

Observed w₁₂ = 1, w₂₁ = 1, w₂₂ = 0; w₁₁ is free. Every completion [[x, 1], [1, 0]] has det = −1, so its rank is 2
for every finite x and tends to 1 only as |x| → ∞. Gradient flow on W = W_N⋯W_1 (2×2 factors) from a balanced
init keeps the sign of det W, so from det W(0) > 0 it drives |w₁₁| → ∞ as the loss ℓ → 0: with det > 0,
    |w₁₁| ≥ (1 − √(2ℓ))² / √(2ℓ),
and depths 3, 4 follow |w₁₁| ≈ 1/√(2ℓ); nuclear, Frobenius and spectral norms diverge while the effective rank
tends to 1 (the minimum-norm completion has w₁₁ = 0, nuclear norm 2, effective rank 2).
Perturbed variant: observed w₁₂ = −2, w₂₁ = 0.5, w₂₂ = ε from det W(0) < 0; for ε > 0 the rank-1 completion has
w₁₁ = −1/ε and gradient descent heads there.

Loss convention (as published): ℓ = ½·Σ over the three observations of the squared error. Our ``Completion``
loss is the mean (no ½), ℓ = 1.5·mean, so plain GD with learning rate η on ℓ is run as GD with 1.5·η on the
mean; every loss in the CSV, the figures and the claims is ℓ. Init scale = the RMS of the product matrix's entries
(``balanced``: a Gaussian product split by SVD into balanced factors; ``unbalanced``: i.i.d. Gaussian factors).

Scales: ``paper`` is the published set-up (init 1e-5 at depths 2-3 and 1e-3 at depth 4, lr 6e-3 / 3e-3, stop at
ℓ < 1e-4, ≤ 5e6 steps). ``quick`` keeps plain GD but starts from larger inits (1e-3; 1e-2 at depth 4, shorter
plateaus), uses lr 0.02 on ℓ (0.03 on the mean) and stops at ℓ < 1e-3 (|w₁₁| ≈ 22 instead of 70.7); ``test``
stops at ℓ < 3e-3.

The det-sign claim is checked on gradient flow itself (dopri5, float64, ``gradient_flow_det.csv``), the theorem's
setting: measured at quick scale, balanced inits keep det W > 0 at depths 3 and 4 (smallest det 6e-8 to 2e-4) and at
depth 2 det decays exponentially to rounding level (1e-16) before it crosses, after which the run plateaus (|w₁₁| ≈
6.5, as the papers' depth-2 re-runs do); unbalanced inits cross at every depth but one run at depth 4 (from det 1e-9
to 1e-7). A balanced product has |det W| = |det W_j|^N for every factor, so det W crosses 0 only where W is
singular; an unbalanced one crosses where a single factor is. The claims at the end (|w₁₁|, the norms, the effective
rank) therefore go by init kind, fixed before training, each over every run of its kind, those that crossed
included: the balanced claims are the theorem's, and one claim per depth checks the published figure's unbalanced
runs. At quick scale both depth-3 unbalanced runs cross, under GD and under the flow alike; one ends at |w₁₁| ≈ 2,
and that claim fails. The |w₁₁|-at-loss claims read off the figure take every run (median rule).
Perturbed: at loss ℓ a fit may still miss w₂₂ = ε by √(2ℓ), so only ε > √(2ℓ) is tested. At quick scale (ℓ =
1e-3, √(2ℓ) = 0.045) the ε = 0.01 run ends at w₁₁ = +28.7, w₂₂ = −0.035: a fit on the other branch, named in the
note.

References: N. Razin, N. Cohen, "Implicit Regularization in Deep Learning May Not Be Explainable by Norms",
NeurIPS 2020.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import Normalize
from torch import Tensor

from ..errors import UsageError
from ..factorizations import MatrixFactorization, generators
from ..flow import integrate
from ..measure import effective_rank
from ..optim import gradient_descent
from ..plots import save
from ..tasks import Completion
from ..train import TrainConfig, train
from . import published
from ._matrix_common import panels, write_csv
from .claims import Claim, evaluate, ratio, seed_list

NAME = "razin2020-norms"
TITLE = "Razin & Cohen 2020, Figs. 1-2: 2x2 completion, |w11| and norms diverge as loss -> 0, effective rank -> 1"
OBSERVED = ((0, 1), (1, 0), (1, 1))
MAIN_VALUES = (1.0, 1.0, 0.0)
HALF_SUM = 1.5  # ℓ = ½·Σ over 3 observations = 1.5 × (mean over observations)
PERTURBED_W11 = -1.0  # w11 of a perturbed run at the end: moved from its init towards -1/eps (see the claim)
PLATEAU_MARGIN = 1.5  # depth 3 / depth 2 of |w11| at the end (see the claim)
# w11 of the perturbed problem at loss 1e-4 in earlier re-runs (not published; shown in a note only), by ε.
RERUN_PERTURBED = {0.01: -41.4, 0.05: -15.6, 0.1: -8.7, 0.5: -1.9}


@dataclass(frozen=True)
class NormsScale:
    """depths; init_scales/lrs: per depth (RMS of W(0) entries; GD learning rate on ℓ = ½Σ); loss_threshold on ℓ;
    seeds: runs per init type (balanced, unbalanced); epsilons: the perturbed problems (balanced init)."""

    depths: tuple[int, ...]
    init_scales: dict[int, float]
    lrs: dict[int, float]
    loss_threshold: float
    max_steps: int
    seeds: int
    epsilons: tuple[float, ...]

    def __post_init__(self) -> None:
        if any(d not in self.init_scales or d not in self.lrs for d in self.depths):
            raise UsageError(f"init_scales and lrs need every depth of {self.depths}")
        if self.seeds < 1 or self.max_steps < 1 or not self.loss_threshold > 0:
            raise UsageError("seeds and max_steps must be >= 1 and loss_threshold positive")


SCALES = {
    "test": NormsScale((2, 3), {2: 1e-3, 3: 1e-3}, {2: 0.02, 3: 0.02}, 3e-3, 40_000, 1, (0.1, 0.5)),
    "quick": NormsScale((2, 3, 4), {2: 1e-3, 3: 1e-3, 4: 1e-2}, {2: 0.02, 3: 0.02, 4: 0.02}, 1e-3, 300_000, 2,
                        (0.0, 0.01, 0.05, 0.1, 0.5)),
    "paper": NormsScale((2, 3, 4), {2: 1e-5, 3: 1e-5, 4: 1e-3}, {2: 6e-3, 3: 6e-3, 4: 3e-3}, 1e-4, 5_000_000, 3,
                        (0.0, 0.01, 0.05, 0.1, 0.5)),
}


@dataclass(frozen=True)
class Variant:
    kind: str  # "balanced", "unbalanced" (the main problem) or "perturbed"
    epsilon: float | None
    seed: int


def init_with_det_sign(depth: int, init: str, init_scale: float, sign: int, count: int,
                       first_seed: int = 0) -> tuple[list[Tensor], list[int]]:
    """``count`` initializations (float64) with sign(det W(0)) = ``sign``: the first seeds from ``first_seed`` on
    whose product has that sign (half of them do). ``init_scale`` is the RMS of the product's entries."""
    model = MatrixFactorization(2, 2, depth, None, init)
    pool = list(range(first_seed, first_seed + 8 * count + 16))
    # The model's init_scale is ||W(0)||_F; an RMS of s over 4 entries is ||W(0)||_F = 2s.
    params = model.init(len(pool), torch.full((len(pool),), 2.0 * init_scale), generators(pool),
                        dtype=torch.float64)
    keep = (torch.linalg.det(model.end_to_end(params)) * sign > 0).nonzero().flatten()[:count]
    if keep.numel() < count:
        raise RuntimeError(f"only {keep.numel()} of {len(pool)} seeds gave det of sign {sign}")
    return [p[keep] for p in params], [pool[i] for i in keep.tolist()]


def det_sign_inits(depth: int, init: str, init_scale: float, sign: int,
                   seeds: Sequence[int]) -> tuple[list[Tensor], list[int]]:
    """One initialization per requested seed with sign(det W(0)) = ``sign``: for seed s the first seed from s on
    (and past the previous one's) whose product has that sign, so the seeds 0, 1, … give the first ones of the
    pool, as ``init_with_det_sign`` does, and other seeds give other runs.

    Parameters
    ----------
    depth : int
        The factorization's depth N (2×2 factors).
    init : str
        ``balanced`` or ``gaussian``.
    init_scale : float
        The RMS of the product's entries.
    sign : int
        +1 or −1.
    seeds : sequence of int
        The requested seeds, in order.

    Returns
    -------
    tuple of (list of Tensor, list of int)
        The factors (one run per seed) and the seed each run was drawn from.
    """
    runs, used = [], []
    for seed in seeds:
        params, (chosen,) = init_with_det_sign(depth, init, init_scale, sign, 1, max(seed, used[-1] + 1 if used else 0))
        runs.append(params)
        used.append(chosen)
    return [torch.cat([p[j] for p in runs]) for j in range(depth)], used


def _measure(model: MatrixFactorization):
    def measure(params: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        w = model.end_to_end(params)
        s = torch.linalg.svdvals(w)
        return {"w11": w[:, 0, 0], "w22": w[:, 1, 1], "det": torch.linalg.det(w), "nuclear_norm": s.sum(1),
                "frobenius_norm": s.pow(2).sum(1).sqrt(), "spectral_norm": s[:, 0], "effective_rank": effective_rank(s)}

    return measure


def run_depth(depth: int, cfg: NormsScale, seeds: Sequence[int]) -> tuple[list[Variant], list[dict], Tensor]:
    """Train every variant of one depth in one batch; return the variants, their per-record rows and final steps.
    Depth 1 (the control: gradient descent on W itself) takes the shallowest depth's init scale and learning rate
    and has no perturbed variant."""
    variants, params = [], []
    init_scale = cfg.init_scales.get(depth, cfg.init_scales[min(cfg.depths)])
    for kind in ("balanced", "unbalanced"):
        p, used = det_sign_inits(depth, "gaussian" if kind == "unbalanced" else "balanced", init_scale, +1, seeds)
        variants += [Variant(kind, None, s) for s in used]
        params.append(p)
    if cfg.epsilons and depth in cfg.depths:
        p, used = init_with_det_sign(depth, "balanced", init_scale, -1, len(cfg.epsilons), 1000)
        variants += [Variant("perturbed", e, s) for e, s in zip(cfg.epsilons, used)]
        params.append(p)
    params = [torch.cat([p[j] for p in params]) for j in range(depth)]
    values = torch.tensor([MAIN_VALUES if v.kind != "perturbed" else (-2.0, 0.5, v.epsilon) for v in variants],
                          dtype=torch.float64)
    task = Completion((2, 2), torch.tensor(OBSERVED), values)
    model = MatrixFactorization(2, 2, depth)
    lr = torch.full((len(variants),), HALF_SUM * cfg.lrs.get(depth, cfg.lrs[min(cfg.depths)]), dtype=torch.float64)
    config = TrainConfig(cfg.max_steps, cfg.loss_threshold / HALF_SUM, 0, 20, 1000, progress=cfg.max_steps > 50_000)
    state = train(model, task, params, gradient_descent(), lr, config, measure=_measure(model))
    rows = []
    for record in state.records:
        for b, v in enumerate(variants):
            if int(state.steps[b]) < record["step"] and record is not state.records[-1]:
                continue  # a stopped run's frozen records after its stop add nothing
            rows.append({"depth": depth, "variant": v.kind, "epsilon": v.epsilon, "seed": v.seed,
                         "step": min(record["step"], int(state.steps[b])),
                         "loss": HALF_SUM * float(record["train_loss"][b]),
                         **{k: float(record[k][b]) for k in ("w11", "w22", "det", "nuclear_norm", "frobenius_norm",
                                                            "spectral_norm", "effective_rank")}})
    return variants, rows, state.steps


DET_ROUNDING = 1e-12  # |det W| below this is rounding noise for entries of order 1-100 in float64


def flow_det_signs(depth: int, cfg: NormsScale, seeds: Sequence[int]) -> list[dict]:
    """Gradient flow (dopri5, rtol 1e-7, float64) on the main problem from the det > 0 inits of ``run_depth``
    until ℓ < cfg.loss_threshold. Per run: its init kind, the smallest det W over the accepted steps, the last
    det before det first became <= 0 (None if it never did) and the final ℓ.

    The theorem (det W keeps its sign) is about exact gradient flow from a balanced init: a singular value
    cannot reach 0 in finite time. At depth 2 it decays exponentially (σ̇ = −2σ⟨∇L, u vᵀ⟩), so in floating
    point det W reaches rounding level and may then cross; at depth >= 3 it decays polynomially."""
    kinds, params = [], []
    for kind in ("balanced", "unbalanced"):
        params.append(det_sign_inits(depth, "gaussian" if kind == "unbalanced" else "balanced",
                                     cfg.init_scales[depth], +1, seeds)[0])
        kinds += [kind] * len(seeds)
    params = [torch.cat([p[j] for p in params]) for j in range(depth)]
    task = Completion((2, 2), torch.tensor(OBSERVED), torch.tensor([MAIN_VALUES] * len(kinds), dtype=torch.float64))
    model = MatrixFactorization(2, 2, depth)
    config = TrainConfig(max_steps=200_000, loss_threshold=cfg.loss_threshold / HALF_SUM, record_every=1,
                         record_per_decade=0, progress=False)
    state = integrate(model, task, params, config, rtol=1e-7, atol=1e-12,
                      measure=lambda p, loss: {"det": torch.linalg.det(model.end_to_end(p))})
    dets = torch.stack([r["det"] for r in state.records])  # (T, B); a stopped run's det stays frozen
    out = []
    for b, kind in enumerate(kinds):
        crossed = (dets[:, b] <= 0).nonzero()
        before = float(dets[int(crossed[0]) - 1, b]) if len(crossed) else None
        out.append({"depth": depth, "init": kind, "min_det": float(dets[:, b].min()), "det_before_crossing": before,
                    "final_loss": HALF_SUM * float(state.loss[b])})
    return out


def w11_at_loss(rows: list[dict], loss: float) -> float:
    """|w11| where the trajectory first reaches ``loss`` (log-log interpolation between records); NaN if never."""
    for before, after in zip(rows, rows[1:]):
        if before["loss"] > loss >= after["loss"]:
            t = (math.log(before["loss"]) - math.log(loss)) / (math.log(before["loss"]) - math.log(after["loss"]))
            a, b = max(abs(before["w11"]), 1e-300), max(abs(after["w11"]), 1e-300)
            return math.exp((1 - t) * math.log(a) + t * math.log(b))
    return math.nan


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    """``seeds``: the runs per init type (a count n for the seeds 0…n−1, or the seeds): the run of seed s starts
    from the first seed from s on whose init has the sign of det W(0) the set-up asks for (half of them do;
    ``det_sign_inits``)."""
    cfg = SCALES[scale]
    repetitions = seed_list(seeds, cfg.seeds)
    rows = []
    for depth in (1, *cfg.depths):  # depth 1 is the control
        rows += run_depth(depth, cfg, repetitions)[1]
    write_csv(out_dir / "trajectories.csv", rows)
    _plot([r for r in rows if r["depth"] in cfg.depths], cfg, out_dir)
    flow = {depth: flow_det_signs(depth, cfg, repetitions) for depth in cfg.depths}
    write_csv(out_dir / "gradient_flow_det.csv", [r for runs in flow.values() for r in runs])
    return _claims(rows, cfg, flow)


def _runs(rows: list[dict], **match) -> list[list[dict]]:
    """The trajectories (rows in step order) of the runs matching ``match``."""
    runs: dict[tuple, list[dict]] = {}
    for r in rows:
        if all(r[k] == v for k, v in match.items()):
            runs.setdefault((r["depth"], r["variant"], r["epsilon"], r["seed"]), []).append(r)
    return list(runs.values())


def _crossings(runs: list[list[dict]]) -> str:
    """A note's clause: how many of ``runs`` end with det W <= 0, and their |w11| at the end."""
    crossed = [t[-1] for t in runs if t[-1]["det"] <= 0]
    if not crossed:
        return ""
    ends = ", ".join(f"{abs(f['w11']):.3g}" for f in crossed)
    return f"; {len(crossed)} of {len(runs)} runs end with det W <= 0 (|w11| at the end: {ends})"


def _claims(rows: list[dict], cfg: NormsScale, flow: dict[int, list[dict]]) -> list[Claim]:
    """Each claim over the runs (balanced and unbalanced inits with det W(0) > 0); the divergence claims are also
    evaluated on depth 1 (gradient descent on W: w11 gets no gradient, so nothing diverges), which must fail."""
    claims = []
    end = cfg.loss_threshold
    predicted_end = 1 / math.sqrt(2 * end)
    formula = f"1/√(2·loss) at loss {end:g}, the |w11| of a fit with det > 0 (the paper's curve)"
    main_runs = {d: _runs(rows, depth=d, variant="balanced") + _runs(rows, depth=d, variant="unbalanced")
                 for d in (1, *cfg.depths)}
    control_finals = [t[-1] for t in main_runs[1]]
    control_seeds = [f["seed"] for f in control_finals]
    for depth in (d for d in cfg.depths if d >= 3):
        # Runs split by their init, fixed before training, never by their outcome: a run that crossed det = 0
        # counts in its kind's claims, and a diverged run counts as missing.
        main = main_runs[depth]
        note = "per seed: the balanced runs, then the unbalanced ones, each under the seed its init was drawn from"
        seeds = [t[0]["seed"] for t in main]
        for loss, paper in published.R20_W11.items():
            if loss >= end * 0.999:
                claims.append(evaluate(f"depth {depth}: |w11| at loss {loss:g}", "relative", 0.15,
                                       [w11_at_loss(t, loss) for t in main], seeds=seeds, published=paper,
                                       rule="median", note=note + _crossings(main)))
        balanced_runs = _runs(rows, depth=depth, variant="balanced")
        balanced = [t[-1] for t in balanced_runs]
        seeds = [f["seed"] for f in balanced]
        note = ("balanced inits: |det W| = |det W_j|^N for every factor j, so det W crosses 0 only where W itself "
                "is singular (the gradient-flow claims check it); the unbalanced runs have their own claim"
                + _crossings(balanced_runs))
        claims.append(evaluate(f"depth {depth}, balanced init: |w11| at the end (loss {end:g}) follows 1/sqrt(2 loss)",
                               "relative", 0.1, [abs(f["w11"]) for f in balanced], seeds=seeds,
                               reference=predicted_end, derived=formula, note=note))
        for norm in ("nuclear_norm", "frobenius_norm", "spectral_norm"):
            name = norm.replace("_", " ")
            control = evaluate(f"control: depth 1, {name} at the end", "relative", 0.1,
                               [f[norm] for f in control_finals], seeds=control_seeds, reference=predicted_end,
                               derived=formula)
            claims.append(evaluate(f"depth {depth}, balanced init: {name} at the end diverges like 1/sqrt(2 loss) "
                                   "(min-norm completion: 2)", "relative", 0.1, [f[norm] for f in balanced],
                                   seeds=seeds, reference=predicted_end, derived=formula,
                                   published=published.R20_NORMS_DIVERGE, control=control, note=note))
        control = evaluate("control: depth 1, effective rank at the end", "at_most", 1.1,
                           [f["effective_rank"] for f in control_finals], seeds=control_seeds)
        claims.append(evaluate(f"depth {depth}, balanced init: effective rank at the end (min-norm completion: 2)",
                               "at_most", 1.1, [f["effective_rank"] for f in balanced], seeds=seeds,
                               published=published.R20_ERANK, control=control, note=note))
        unbalanced = _runs(rows, depth=depth, variant="unbalanced")
        flow_crossed = [r for r in flow[depth] if r["init"] == "unbalanced" and r["det_before_crossing"] is not None]
        flow_runs = sum(r["init"] == "unbalanced" for r in flow[depth])
        claims.append(evaluate(
            f"depth {depth}, unbalanced init: |w11| at the end (loss {end:g}) follows 1/sqrt(2 loss)", "relative", 0.1,
            [abs(t[-1]["w11"]) for t in unbalanced], seeds=[t[0]["seed"] for t in unbalanced],
            reference=predicted_end, derived=formula,
            note="the published figure draws unbalanced runs too; the det-sign argument does not cover them: one "
                 "factor can become singular, and det W cross 0, while the others are not" + _crossings(unbalanced)
                 + (f"; gradient flow from the same inits crosses too ({len(flow_crossed)} of {flow_runs}): the "
                    "dynamics', not the discrete step's" if flow_crossed else "")))
    positive = [t for d in cfg.depths for t in main_runs[d]]
    slack = {i: [abs(r["w11"]) - (1 - math.sqrt(2 * r["loss"])) ** 2 / math.sqrt(2 * r["loss"])
                 for r in t if r["loss"] < 0.5 and r["det"] > 0] for i, t in enumerate(positive)}
    covered = [i for i in slack if slack[i]]
    uncovered = len(positive) - len(covered)
    claims.append(evaluate("|w11| >= (1 - sqrt(2 loss))^2 / sqrt(2 loss) wherever det > 0 (smallest slack of each "
                           "run)", "at_least", -1e-9, [min(slack[i]) for i in covered],
                           seeds=[positive[i][0]["seed"] for i in covered], published=published.R20_LOWER_BOUND,
                           note="; ".join(filter(None, [
                               "algebra, not dynamics: any W with det > 0 at that loss obeys it (|w12 - 1|, |w21 - 1|, "
                               "|w22| <= sqrt(2 loss)), so it checks the recorded numbers; the det claims check the "
                               "dynamics",
                               f"{uncovered} of {len(positive)} runs have no record with det > 0 below loss 0.5 (the "
                               "bound says nothing there)" if uncovered else ""]))))
    for depth in cfg.depths:
        # exact gradient flow from a balanced init never crosses det = 0; in float64 a crossing can only come
        # after det has decayed to rounding level (depth 2: exponentially)
        balanced = [r for r in flow[depth] if r["init"] == "balanced"]
        kept = [float(r["final_loss"] < end and (r["det_before_crossing"] is None
                                                 or r["det_before_crossing"] < DET_ROUNDING)) for r in balanced]
        crossed = [r for r in balanced if r["det_before_crossing"] is not None]
        # once det W is rounding noise its sign is too, and the run goes wherever it lands: say how far
        before = ", ".join(f"{r['det_before_crossing']:.2g}" for r in crossed)
        after = ", ".join(f"{r['min_det']:.2g}" for r in crossed)
        note = (f"crossed at rounding level: {len(crossed)} of {len(balanced)} (det before crossing {before}; "
                f"smallest det after {after})" if crossed else "")
        claims.append(evaluate(f"depth {depth}, balanced init: gradient flow keeps det W > 0 down to loss {end:g}, up "
                               f"to rounding (1 = det never crossed 0 from above {DET_ROUNDING:g})", "equal", 1.0,
                               kept, published=published.R20_DET_SIGN, note=note))
    if 2 in cfg.depths and 3 in cfg.depths:
        d2 = [abs(t[-1]["w11"]) for t in _runs(rows, depth=2, variant="balanced")]
        d3 = [abs(t[-1]["w11"]) for t in _runs(rows, depth=3, variant="balanced")]
        # a margin, not "less": the depth-2 plateau (|w11| ≈ 6.5) against 1/√(2 loss) is 2x at test scale, 10x in
        # the paper's set-up; equal values, or a depth 3 that plateaus too, must not pass by a rounding difference
        claims.append(evaluate(f"depth 2 plateaus lower than depth 3 (balanced, |w11| at the end, depth 3 / depth 2, "
                               f"run k of each depth; at least {PLATEAU_MARGIN:g}x)", "at_least", PLATEAU_MARGIN,
                               [ratio(b, a) for a, b in zip(d2, d3)],
                               note="not a published number: earlier re-runs gave ≈7 vs 70.7 at loss 1e-4"))
    deepest = max(cfg.depths)
    perturbed = {t[0]["epsilon"]: t[-1] for t in _runs(rows, depth=deepest, variant="perturbed")}
    # At loss ℓ a fit may still miss w22 = ε by √(2ℓ): only an ε above that is resolved, and only then must w11
    # head to −1/ε (det W < 0 with w22 > 0 gives w11 < 0). An unresolved ε is reported, not tested.
    resolution = math.sqrt(2 * end)
    resolved = sorted(e for e in perturbed if e > resolution)
    unresolved = sorted(e for e in perturbed if 0 < e <= resolution)
    if resolved:
        ours = [perturbed[e]["w11"] for e in resolved]
        reruns = ", ".join(f"{RERUN_PERTURBED[e]:g}" for e in resolved if e in RERUN_PERTURBED)
        note = (f"one run per eps; only eps > sqrt(2 loss) = {resolution:.3g}, which the stopping loss resolves"
                + "".join(f"; eps = {e:g} is not (w11 = {perturbed[e]['w11']:.3g}, w22 = {perturbed[e]['w22']:.3g} "
                          "at the end)" for e in unresolved)
                + f"; earlier re-runs (not published) at loss 1e-4: {reruns}")
        # at most -1, not 0: the init's w11 is ±(init scale) of either sign, so "< 0" passed a run that never
        # moved half the time; -1 is 100x the init scale or more, on the way to -1/eps (-2 or below for every eps here)
        claims.append(evaluate(f"perturbed, depth {deepest}: w11 <= {PERTURBED_W11:g}, heading to -1/eps (eps = "
                               f"{resolved})", "at_most", PERTURBED_W11, [ours], published=published.R20_PERTURBED,
                               note=note))
        # on |w11| itself: the signed values order the same way only while every w11 is negative (the claim above)
        claims.append(evaluate(f"perturbed, depth {deepest}: larger |w11| for smaller eps (|w11| decreasing in eps = "
                               f"{resolved})", "ordering", "decreasing", [[abs(w) for w in ours]],
                               published=published.R20_PERTURBED, note=note))
    return claims


def _plot(rows: list[dict], cfg: NormsScale, out_dir: Path) -> None:
    losses = np.logspace(math.log10(cfg.loss_threshold), math.log10(0.5), 100)
    fig, axes = panels(1, len(cfg.depths))
    for ax, depth in zip(axes[0], cfg.depths):
        runs = {kind: [[r for r in t if r["loss"] < 1.0] for t in _runs(rows, depth=depth, variant=kind)]
                for kind in ("balanced", "unbalanced")}
        # one colour scale for every run of the panel: the same colour is the same iteration in each
        steps = [math.log10(max(r["step"], 1)) for ts in runs.values() for t in ts for r in t]
        scale = Normalize(min(steps, default=0.0), max(steps, default=1.0))
        for (kind, ts), marker in zip(runs.items(), ("o", "^")):
            for k, t in enumerate(ts):
                ax.plot([r["loss"] for r in t], [abs(r["w11"]) for r in t], color="0.8", lw=0.8, zorder=1)
                points = ax.scatter([r["loss"] for r in t], [abs(r["w11"]) for r in t], s=12, zorder=2,
                                    cmap="viridis", norm=scale, marker=marker, c=[math.log10(max(r["step"], 1))
                                                                                   for r in t],
                                    label=f"{kind} init" if k == 0 else None)
                flipped = [r for r in t if r["det"] <= 0]  # where the lower bound does not apply
                ax.scatter([r["loss"] for r in flipped], [abs(r["w11"]) for r in flipped], s=18, zorder=3,
                           marker="x", color="tab:red", label="det W <= 0" if flipped else None)
        ax.plot(losses, 1 / np.sqrt(2 * losses), "k--", lw=1, label=r"$1/\sqrt{2\ell}$")
        ax.plot(losses, (1 - np.sqrt(2 * losses)) ** 2 / np.sqrt(2 * losses), "k:", lw=1, label="lower bound (det>0)")
        ax.set(xscale="log", yscale="log", xlabel="loss", ylabel=r"$|w_{11}|$", title=f"depth {depth}")
        ax.invert_xaxis()
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))  # "det W <= 0" once, however many runs flipped
        ax.legend(unique.values(), unique.keys(), fontsize=8)
        fig.colorbar(points, ax=ax, label="log10 iteration")
    save(fig, out_dir / "w11_vs_loss.png")

    fig, axes = panels(2, len(cfg.depths))
    for col, depth in enumerate(cfg.depths):
        shown = f"depth {depth}, balanced init"
        for t in _runs(rows, depth=depth, variant="balanced")[:1]:
            loss = [r["loss"] for r in t]
            shown += f" (seed {t[0]['seed']})"
            # once the rank is 1 the three norms are equal: widths that let each show under the next
            for key, style, width in (("nuclear_norm", "-", 5.0), ("frobenius_norm", "--", 2.5),
                                      ("spectral_norm", ":", 1.5)):
                axes[0][col].plot(loss, [r[key] for r in t], style, lw=width, alpha=0.75, label=key.replace("_", " "))
            axes[1][col].plot(loss, [r["effective_rank"] for r in t], color="tab:red")
        axes[0][col].set(xscale="log", yscale="log", xlabel="loss", ylabel="norm", title=shown)
        axes[1][col].set(xscale="log", xlabel="loss", ylabel="effective rank", ylim=(0.9, 2.1),
                         title=f"depth {depth}: effective rank (the same run)")
        axes[0][col].legend(fontsize=8)
        for ax in (axes[0][col], axes[1][col]):
            ax.invert_xaxis()
    save(fig, out_dir / "norms_vs_loss.png")

    if cfg.epsilons:
        fig, axes = panels(1, len(cfg.depths))
        for ax, depth in zip(axes[0], cfg.depths):
            for t in _runs(rows, depth=depth, variant="perturbed"):
                eps = t[0]["epsilon"]
                ax.plot([r["loss"] for r in t], [r["w11"] for r in t], label=f"ε = {eps:g}")
            ax.set(xscale="log", xlabel="loss", ylabel=r"$w_{11}$", title=f"perturbed, depth {depth}")
            ax.invert_xaxis()
            ax.legend(fontsize=8)
        save(fig, out_dir / "perturbed_w11_vs_loss.png")
