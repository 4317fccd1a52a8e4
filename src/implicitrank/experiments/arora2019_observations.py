"""Arora et al. 2019, §5 (Figure 1): reconstruction error against the number of observations, depths 2, 3, 4.

Completion of a rank-r n×n ground truth (‖W*‖_F = n) from M random entries, for a grid of M and two ranks; each
depth from a small "gaussian" init (init scale 1e-3, ‖W(0)‖_F ≈ 1e-3·√n), global RMSprop until the loss (mean over
observations, no ½) is ≤ 1e-6, with minimum nuclear norm (|X_ij − y_ij| ≤ 1e-3) alongside. Error: the paper's mean
over all entries of (W − W*)², the squared relative Frobenius error. Published claim (qualitative): deeper
factorizations reach low error with fewer observations. We measure, per depth, the fewest observations whose
median error is ≤ 1e-3 ("observations needed").

Each claim holds per seed (3 at ``quick``). No control: the one used before, "depth 1 (gradient descent on W
itself) needs fewer observations than depth 2", could not pass on any data (depth 1 leaves every unobserved entry
at its initial value, so it never recovers), and a control that fails by construction checks nothing.

Scales: ``paper`` 100×100, ranks 5 and 10, M from 1000 to 5000; ``quick`` 30×30, ranks 2 and 4; ``test`` 12×12,
rank 1.

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS
2019, Figure 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..plots import save
from . import published
from ._matrix_common import BASELINE_COLOR, DEPTH_COLORS, median, panels, write_csv
from .arora2019_completion import baseline_rows, factorization_rows, grid_configs
from .claims import Claim, evaluate, seed_list

NAME = "arora2019-observations"
TITLE = "Arora et al. 2019, Fig. 1: reconstruction error vs number of observations, ranks 5/10, depths 2-4"
INIT_SCALE = 1e-3  # the paper's α: ‖W(0)‖_F ≈ α·√size, the factorizations' init_scale
RECOVERED = 1e-3


@dataclass(frozen=True)
class ObservationsScale:
    size: int
    ranks: tuple[int, ...]
    observations: tuple[int, ...]  # ascending
    depths: tuple[int, ...]
    lr: float
    max_steps: int
    seeds: int

    def __post_init__(self) -> None:
        if list(self.observations) != sorted(self.observations) or not all(
                1 <= m <= self.size**2 for m in self.observations):
            raise ValueError(f"observations must be ascending counts in [1, {self.size**2}], got {self.observations}")


SCALES = {
    "test": ObservationsScale(12, (1,), (30, 60, 100), (2, 3), 1e-2, 5_000, 1),
    "quick": ObservationsScale(30, (2, 4), (150, 250, 400, 600), (2, 3, 4), 3e-3, 30_000, 3),
    "paper": ObservationsScale(100, (5, 10), (1000, 2000, 3000, 4000, 5000), (2, 3, 4), 1e-3, 1_000_000, 3),
}


def observations_needed(rows: list[dict], observations: tuple[int, ...], **match) -> float:
    """The fewest observations from which on the median error stays <= 1e-3; ``NEVER`` (one more than the
    largest count) if that never happens in the grid. A missing error (NaN) makes the answer NaN."""
    errors = [median(r["error"] for r in rows if r["observations"] == m and all(r[k] == v for k, v in match.items()))
              for m in observations]
    if any(not math.isfinite(e) for e in errors):
        return math.nan
    for i, m in enumerate(observations):
        if all(e <= RECOVERED for e in errors[i:]):
            return float(m)
    return float(max(observations) + 1)


def run(scale: str, out_dir: Path, seeds, data: str | None) -> list[Claim]:
    cfg = SCALES[scale]
    seeds = seed_list(seeds, cfg.seeds)
    norm = INIT_SCALE * math.sqrt(cfg.size)
    grid = [({"rank": rank, "observations": m},
             grid_configs(cfg.size, rank, "completion", m, cfg.depths, (norm,), cfg.lr, cfg.max_steps, seeds))
            for rank in cfg.ranks for m in cfg.observations]
    rows = factorization_rows(grid, progress=scale != "test")
    for label, configs in grid:
        rows += baseline_rows(configs[0], seeds, label)
    write_csv(out_dir / "figure1.csv", rows)
    _plot(rows, cfg, out_dir / "figure1.png")
    return claims(rows, cfg, seeds)


def claims(rows: list[dict], cfg: ObservationsScale, seeds: tuple[int, ...]) -> list[Claim]:
    """Per rank and seed: the observations each depth needs ("never" = one more than the largest count)."""
    out = []
    never = max(cfg.observations) + 1
    for rank in cfg.ranks:
        mine = [r for r in rows if r["rank"] == rank]
        needed = {d: [observations_needed([r for r in mine if r["seed"] == s], cfg.observations, depth=d)
                      for s in seeds] for d in cfg.depths}
        nn = [observations_needed([r for r in mine if r["seed"] == s], cfg.observations, method="nuclear norm")
              for s in seeds]
        label = f"rank {rank}: observations needed at depths {list(cfg.depths)} ({never} = never)"
        note = _unconverged(mine)
        # a seed where no depth recovers has no ordering to show (all "never" ties are non-increasing): missing
        by_seed = [list(x) if min(x) < never else [math.nan] * len(x) for x in zip(*(needed[d] for d in cfg.depths))]
        out.append(evaluate(f"{label}, non-increasing with depth", "ordering", "non-increasing", by_seed, seeds=seeds,
                            published=published.A19_FEWER_OBSERVATIONS, note=note))
        deepest, shallowest = max(cfg.depths), min(cfg.depths)
        out.append(evaluate(f"rank {rank}: depth {deepest} needs fewer observations than depth {shallowest} "
                            f"([depth {deepest}, depth {shallowest}]; {never} = never)", "less", None,
                            [list(x) for x in zip(needed[deepest], needed[shallowest])], seeds=seeds,
                            published=published.A19_FEWER_OBSERVATIONS, note=note))
        out.append(evaluate(f"rank {rank}: depth {deepest} needs fewer observations than nuclear norm ([deepest, "
                            f"nuclear norm]; {never} = never)", "less", None,
                            [list(x) for x in zip(needed[deepest], nn)], seeds=seeds,
                            note="; ".join(filter(None, ["ours: the paper's Figure 1 compares depths only", note]))))
    return out


def _unconverged(rows: list[dict], shown: int = 4) -> str:
    """The runs that stopped at the step cap above the loss threshold: their errors count as they stood (the
    paper's runs also stop at a cap), which the claims' readers should know."""
    stopped = [r for r in rows if r.get("status") == "max_steps"]
    if not stopped:
        return ""
    runs = "; ".join(f"{r['method']} at {r['observations']} obs, seed {r['seed']} (train loss {r['train_loss']:.2g}, "
                     f"error {r['error']:.2g})" for r in stopped[:shown])
    more = f"; and {len(stopped) - shown} more" if len(stopped) > shown else ""
    return (f"{len(stopped)} run(s) stopped at the step cap above the loss threshold, their errors counted as they "
            f"stood: {runs}{more}")


def _plot(rows: list[dict], cfg: ObservationsScale, path: Path) -> None:
    fig, axes = panels(1, len(cfg.ranks))
    for ax, rank in zip(axes[0], cfg.ranks):
        mine = [r for r in rows if r["rank"] == rank]
        for method, color in [(f"depth {d}", DEPTH_COLORS.get(d)) for d in cfg.depths] + [("nuclear norm",
                                                                                         BASELINE_COLOR)]:
            ys = [median(r["error"] for r in mine if r["method"] == method and r["observations"] == m)
                  for m in cfg.observations]
            ax.plot(cfg.observations, ys, "o-" if method != "nuclear norm" else "s--", color=color, label=method)
            # a white marker over a point whose runs include one stopped at the step cap above the loss threshold
            capped = [(m, y) for m, y in zip(cfg.observations, ys) if any(
                r["status"] == "max_steps" for r in mine if r["method"] == method and r["observations"] == m)]
            if capped:
                ax.plot(*zip(*capped), "o", mfc="white", color=color, ms=5)
        if any(r["status"] == "max_steps" for r in mine):  # the open marker's legend entry, where it is drawn
            ax.plot([], [], "o", mfc="white", color="0.4", label="a run stopped at the step cap")
        ax.axhline(RECOVERED, color="0.6", ls=":", lw=1, label=f"recovered (≤ {RECOVERED:g})")
        ax.set(yscale="log", xlabel="number of observations", ylabel="reconstruction error (squared, relative)",
               title=f"rank {rank}, median over {len({r['seed'] for r in mine})} seed(s)")
        ax.legend(fontsize=8)
    save(fig, path)
