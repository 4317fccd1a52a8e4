"""Wall time of the matrix reproductions: ``reproduce all --scale quick`` (or a chosen subset) and the paper-scale
grid of ``arora2019-completion`` (3 depths × 4 init scales × 2 observation counts × 3 seeds, plus the baseline).

The paper grid trains as 6 batches of 12 runs (one per depth and observation count; ``run.run_batch``). Running it
to convergence takes up to 1e6 steps per batch, so by default we time ``--paper-steps`` steps of every batch and the
six minimum-nuclear-norm solves, and project the full grid as (seconds per step of every batch) × steps-to-converge
(``--steps-needed``; the runs stop at loss 1e-6, which at lr 1e-3 takes ~1e4-1e5 steps). ``--paper-full`` runs
``reproduce arora2019-completion --scale paper`` itself instead. Prints a table and writes
benchmarks/results/bench_reproduce.json; say in any report whether the machine was shared.

    python benchmarks/bench_reproduce.py [--experiments all|NAME,...] [--paper-steps 200] [--steps-needed 30000]
                                         [--paper-full] [--skip-quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
from _common import write_results

from implicitrank.baselines import nuclear_norm_min
from implicitrank.experiments.arora2019_completion import SCALES, grid_configs
from implicitrank.run import build_task, run_batch
from implicitrank.threads import torch_threads


def time_command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "implicitrank.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def paper_grid_projection(steps: int, steps_needed: int) -> dict:
    """Seconds per step of each paper batch (12 runs) and of each baseline solve; the projected grid time."""
    cfg = SCALES["paper"]
    per_step, baseline = {}, {}
    with tempfile.TemporaryDirectory() as tmp, torch_threads(1):
        for m in cfg.observations:
            for d in cfg.depths:
                configs = [c.__class__.from_dict(c.to_dict() | {"max_steps": steps, "loss_threshold": 0.0})
                           for c in grid_configs(cfg.size, cfg.rank, "completion", m, (d,), cfg.init_scales, cfg.lr,
                                                 cfg.max_steps, cfg.seeds)]
                start = time.perf_counter()
                run_batch(configs, [f"{tmp}/{m}-{d}-{i}" for i in range(len(configs))], progress=False, plots=False)
                per_step[f"M={m} depth={d}"] = (time.perf_counter() - start) / steps
            task = build_task([configs[0]]).to("cpu", torch.float64)
            start = time.perf_counter()
            nuclear_norm_min(task, 0, eps_constraint=1e-3)
            baseline[f"M={m}"] = (time.perf_counter() - start) * cfg.seeds
    projected = sum(per_step.values()) * steps_needed + sum(baseline.values())
    return {"timed_steps": steps, "seconds_per_step": per_step, "baseline_seconds": baseline,
            "steps_needed": steps_needed, "projected_grid_seconds": projected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default="all", help="'all' or comma-separated experiment names (quick scale)")
    parser.add_argument("--skip-quick", action="store_true")
    parser.add_argument("--paper-steps", type=int, default=200)
    parser.add_argument("--steps-needed", type=int, default=30_000)
    parser.add_argument("--paper-full", action="store_true")
    args = parser.parse_args()
    out: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_quick:
            names = ["all"] if args.experiments == "all" else args.experiments.split(",")
            out["quick_seconds"] = {n: time_command(["reproduce", n, "--scale", "quick", "--out", f"{tmp}/{n}"])
                                    for n in names}
            rows += [(f"reproduce {n} --scale quick", s) for n, s in out["quick_seconds"].items()]
        if args.paper_full:
            out["paper_completion_seconds"] = time_command(["reproduce", "arora2019-completion", "--scale", "paper",
                                                            "--out", f"{tmp}/paper"])
            rows.append(("arora2019-completion --scale paper", out["paper_completion_seconds"]))
        else:
            out["paper_completion"] = paper_grid_projection(args.paper_steps, args.steps_needed)
            for key, s in out["paper_completion"]["seconds_per_step"].items():
                rows.append((f"paper batch {key}: seconds per step (12 runs)", s))
            rows.append(("paper baselines (6 solves)", sum(out["paper_completion"]["baseline_seconds"].values())))
            rows.append((f"paper grid projected at {args.steps_needed} steps",
                         out["paper_completion"]["projected_grid_seconds"]))
    out["load_average_after"] = os.getloadavg()
    print(f"{'what':60s} {'seconds':>10s}")
    for what, seconds in rows:
        print(f"{what:60s} {seconds:10.3f}")
    print(f"load average before/after: {out['load_average']} / {out['load_average_after']}")
    print("written to", write_results("bench_reproduce", out))


if __name__ == "__main__":
    main()
