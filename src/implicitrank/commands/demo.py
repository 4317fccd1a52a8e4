"""``implicitrank demo``: the main job on built-in data (Arora et al. 2019, §5, 2000 observations).

A 100×100 rank-5 matrix (entries of RMS 1) is completed from 2000 random entries by depth-1, depth-2
and depth-3 factorizations (global RMSprop, lr 1e-2, from ‖W(0)‖_F = 1e-3: the paper's init scale 1e-4 at
n = 100) and by minimum nuclear norm. Published (squared error): nuclear norm 1.06e-1, depth 2 5.92e-2, depth 3
2.58e-5. Exits 1 when the paper's ordering (depth 3 << depth 2 < nuclear norm) does not hold here.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import _common
from ._common import default_out, format_table

DEMO_SIZES = ("--size",)  # the option that sizes its runs (run.check_memory)
COLUMNS = ("method", "seed", "reconstruction_error", "reconstruction_error_squared", "unobserved_error",
           "nuclear_norm", "effective_rank", "steps", "seconds")


def register(subparsers) -> None:
    p = _common.add_parser(subparsers, "demo", description=__doc__,
                           help="depth 1/2/3 vs nuclear norm on a 100x100 rank-5 completion (under a minute)")
    _common.add_out(p, "demo")
    p.add_argument("--size", type=int, default=100, help="rows = cols of the target")
    p.add_argument("--rank", type=int, default=5, help="rank of the target")
    p.add_argument("--num-observations", type=int, default=2000, help="observed entries")
    p.add_argument("--init-scale", type=float, default=1e-3,
                   help="||W(0)||_F (root-mean-square); depth 2 improves as it shrinks (Arora et al. 2019, Fig. 2)")
    p.add_argument("--max-steps", type=int, default=30_000, help="step cap per run")
    _common.add_seeds(p, deprecated_seed=True)
    _common.add_dtype(p)
    _common.add_device(p)
    _common.add_threads(p)
    _common.add_progress(p)
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    _common.apply_threads(args.threads)
    from .. import provenance, results
    from ..run import RunConfig, check_memory, run_batch
    from .baseline import solve_and_save

    out = args.out or default_out("demo")
    base = dict(shape=(args.size, args.size), rank=args.rank, num_observations=args.num_observations,
                init_scale=args.init_scale, lr=1e-2, max_steps=args.max_steps, checkpoint_every=0,
                device=args.device)
    _common.refuse_repeats("--seeds", args.seeds)  # demo and layers demo dropped one silently
    seeds = list(args.seeds)
    # every config checked (RunConfig refuses a bad value) before the first run starts
    depths = {depth: [RunConfig(**base, depth=depth, seed=s, dtype=args.dtype) for s in seeds] for depth in (1, 2, 3)}
    baseline = RunConfig(**base, dtype="float64")
    for configs in depths.values():  # each batch, before the first one trains
        check_memory(configs, DEMO_SIZES)
    check_memory([baseline], DEMO_SIZES, parameters=False)
    _common.refuse_used_out(out, "demo.json", "demo")  # before the first run: it said "training depth 1 ..." first
    rows, spectra = [], {}
    for depth, configs in depths.items():
        print(f"training depth {depth} ...", flush=True)
        dirs = [out / _run_dir(depth, s, len(seeds)) for s in seeds]
        summaries = run_batch(configs, dirs, progress=not args.no_progress).summaries
        rows += [{"method": f"depth {depth}", "seed": s, **summary} for s, summary in zip(seeds, summaries)]
        spectra[f"depth {depth}"] = results.read_metrics(dirs[0])
    print("solving minimum nuclear norm ...", flush=True)  # the observations do not depend on the init seed
    nnm = solve_and_save(baseline, out / "nuclear_norm")
    rows.append({"method": "nuclear norm", "steps": nnm["iterations"], **nnm})
    print(format_table(rows, COLUMNS))
    err = {m: _median([r["reconstruction_error"] for r in rows if r["method"] == m])
           for m in dict.fromkeys(r["method"] for r in rows)}
    missing = [m for m, e in err.items() if e is None]  # a diverged run has no error: the ordering cannot hold
    holds = not missing and err["depth 3"] < 0.1 * err["depth 2"] and err["depth 2"] < err["nuclear norm"]
    over = " (medians over the seeds)" if len(seeds) > 1 else ""
    why = f" ({', '.join(missing)}: no result, a run diverged)" if missing else ""
    print(f"paper's ordering (depth 3 << depth 2 < nuclear norm in error){over}: "
          f"{'holds' if holds else 'does NOT hold'}{why}")
    results.write_json(out / "demo.json", {"rows": rows, "ordering_holds": holds,
                                           "provenance": provenance.collect(seeds=seeds)})
    _plot(out, spectra, rows, f"{args.size}×{args.size} rank {args.rank}, completion from "
                              f"{args.num_observations} entries, init {args.init_scale:g}, global RMSprop lr 1e-2")
    print(f"results in {out} (demo.png, demo.json, one run directory per method and seed)")
    from ..reports import write_report

    print(f"report: {write_report(out)}")
    return 0 if holds else 1


def _median(values: list[float | None]) -> float | None:
    """The median, or None when a run has no number (it diverged)."""
    import statistics

    return None if any(v is None for v in values) else statistics.median(values)


def _run_dir(depth: int, seed: int, seeds: int) -> str:
    return f"depth{depth}" if seeds == 1 else f"depth{depth}-seed{seed}"


def _plot(out: Path, spectra: dict[str, list[dict]], rows: list[dict], setup: str) -> None:
    """Singular values of the first seed's run per depth, and the squared error by method (median over seeds)."""

    import matplotlib.pyplot as plt

    from ..plots import draw_quantities, save

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
    for ax, (name, metrics) in zip(axes, spectra.items()):
        draw_quantities(ax, metrics, "singular_values", f"{name}: singular values")
    ax = axes[3]
    names = list(dict.fromkeys(r["method"] for r in rows))
    errors = {m: [r["reconstruction_error_squared"] for r in rows if r["method"] == m] for m in names}
    medians = [_median(errors[m]) for m in names]  # a diverged method: no bar, no dot
    ax.bar(names, [math.nan if v is None else v for v in medians], color=["C0", "C1", "C2", "C3"],
           label="median over seeds")
    errors = {m: [math.nan if v is None else v for v in errors[m]] for m in names}
    for i, m in enumerate(names):  # one dot per seed; the bar is their median
        ax.plot([i] * len(errors[m]), errors[m], "k.", label="one seed" if i == 0 else None)
    ax.legend(fontsize=8)
    ax.set(yscale="log", xlabel="method", ylabel=r"$\|W - W^*\|_F^2\, /\, \|W^*\|_F^2$ (squared, 2019 convention)",
           title="reconstruction error by method" + (" (median over seeds)" if len(rows) > len(names) else ""))
    fig.suptitle(f"Arora et al. 2019 §5 set-up: {setup}")
    save(fig, out / "demo.png")
