"""``implicitrank demo``: the main job on built-in data (Arora et al. 2019, §5, 2000 observations).

A 100×100 rank-5 matrix (entries of RMS 1) is completed from 2000 random entries by depth-1, depth-2
and depth-3 factorizations (global RMSprop, lr 1e-2, from ‖W(0)‖_F = 1e-3: the paper's init scale 1e-4 at
n = 100) and by minimum nuclear norm. Published (squared error): nuclear norm 1.06e-1, depth 2 5.92e-2, depth 3 2.58e-5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import results  # noqa: E402
from ..plots import draw_quantities, save  # noqa: E402
from ..run import RunConfig, run_batch  # noqa: E402
from ._common import default_out, format_table  # noqa: E402
from .baseline import solve_and_save  # noqa: E402

COLUMNS = ("method", "reconstruction_error", "reconstruction_error_squared", "unobserved_error", "nuclear_norm",
           "effective_rank", "steps", "seconds")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="depth 1/2/3 vs nuclear norm on a 100x100 rank-5 completion (a few minutes)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="output directory (default: runs/demo-TIME)")
    p.add_argument("--size", type=int, default=100, help="rows = cols of the target")
    p.add_argument("--rank", type=int, default=5)
    p.add_argument("--num-observations", type=int, default=2000)
    p.add_argument("--init-scale", type=float, default=1e-3,
                   help="||W(0)||_F (root-mean-square); depth 2 improves as it shrinks (Arora et al. 2019, Fig. 2)")
    p.add_argument("--max-steps", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    out = args.out or default_out("demo")
    base = dict(shape=(args.size, args.size), rank=args.rank, num_observations=args.num_observations,
                init_scale=args.init_scale, lr=1e-2, max_steps=args.max_steps, seed=args.seed, checkpoint_every=0)
    rows, spectra = [], {}
    for depth in (1, 2, 3):
        print(f"training depth {depth} ...", flush=True)
        config = RunConfig(**base, depth=depth)
        summary = run_batch([config], [out / f"depth{depth}"], progress=not args.no_progress).summaries[0]
        rows.append({"method": f"depth {depth}", **summary})
        spectra[f"depth {depth}"] = results.read_metrics(out / f"depth{depth}")
    print("solving minimum nuclear norm ...", flush=True)
    nnm = solve_and_save(RunConfig(**base, dtype="float64"), out / "nuclear_norm")
    rows.append({"method": "nuclear norm", "steps": nnm["iterations"], **nnm})
    print(format_table(rows, COLUMNS))
    err = {r["method"]: r["reconstruction_error"] for r in rows}
    holds = err["depth 3"] < 0.1 * err["depth 2"] and err["depth 2"] < err["nuclear norm"]
    print(f"paper's ordering (depth 3 << depth 2 < nuclear norm in error): {'holds' if holds else 'does NOT hold'}")
    results.write_json(out / "demo.json", {"rows": rows, "ordering_holds": holds})
    _plot(out, spectra, rows, f"{args.size}×{args.size} rank {args.rank}, completion from "
                              f"{args.num_observations} entries, init {args.init_scale:g}, global RMSprop lr 1e-2")
    print(f"results in {out} (demo.png, demo.json, one run directory per method)")
    from ..reports import write_report

    print(f"report: {write_report(out)}")
    return 0


def _plot(out: Path, spectra: dict[str, list[dict]], rows: list[dict], setup: str) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
    for ax, (name, metrics) in zip(axes, spectra.items()):
        draw_quantities(ax, metrics, "singular_values", f"{name}: singular values")
    ax = axes[3]
    names = [r["method"] for r in rows]
    ax.bar(names, [r["reconstruction_error_squared"] for r in rows], color=["C0", "C1", "C2", "C3"])
    ax.set(yscale="log", xlabel="method", ylabel="‖W − W*‖²_F / ‖W*‖²_F (squared, 2019 convention)",
           title="reconstruction error by method")
    fig.suptitle(f"Arora et al. 2019 §5 set-up: {setup}")
    save(fig, out / "demo.png")
