"""Wall time of ``reproduce all --scale quick`` (or a chosen subset) and of the paper-scale grid of
``arora2019-completion``: 3 depths × 4 init scales × 2 observation counts × 3 seeds trained to convergence (loss
≤ 1e-6, as ``reproduce`` runs them: 6 batches of 12 runs), plus the six minimum-nuclear-norm solves; with
``--sensing`` also its sensing variant (36 gradient-flow runs and 3 solves). Each part is timed on its own and
reported with how its runs ended, so a fast number cannot hide unconverged runs. Prints a table and writes
benchmarks/results/bench_reproduce.json; say in any report whether the machine was shared.

    python benchmarks/bench_reproduce.py [--experiments all|NAME,...] [--skip-quick] [--skip-paper] [--sensing]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

from _common import write_results

from implicitrank.experiments._matrix_common import median
from implicitrank.experiments.arora2019_completion import (
    SCALES,
    baseline_rows,
    factorization_rows,
    setting_configs,
    settings,
)


def time_command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "implicitrank.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def paper_grid(sensing: bool) -> list[dict]:
    """Train the paper-scale grid part by part (one part per task and observation count) and time each."""
    cfg = SCALES["paper"]
    parts = []
    for task, m in settings(cfg):
        if task == "sensing" and not sensing:
            continue
        label = {"task": task, "observations": m}
        configs = setting_configs(cfg, task, m, cfg.seeds)
        start = time.perf_counter()
        rows = factorization_rows([(label, configs)], progress=True)
        train = time.perf_counter() - start
        start = time.perf_counter()
        baselines = baseline_rows(configs[0], cfg.seeds, label)
        solve = time.perf_counter() - start
        parts.append({"task": task, "observations": m, "runs": len(rows), "train_seconds": train,
                      "baseline_seconds": solve, "status": dict(Counter(r["status"] for r in rows)),
                      "max_steps_taken": max(r["steps"] for r in rows),
                      "median_error": {f"depth {d}": median(r["error"] for r in rows if r["depth"] == d)
                                       for d in cfg.depths} | {"nuclear norm": median(r["error"] for r in baselines)}})
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default="all", help="'all' or comma-separated experiment names (quick scale)")
    parser.add_argument("--skip-quick", action="store_true", help="do not time the quick reproductions")
    parser.add_argument("--skip-paper", action="store_true", help="do not time the paper-scale arora2019 grid")
    parser.add_argument("--sensing", action="store_true", help="also time the paper-scale sensing variant")
    args = parser.parse_args()
    out: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    rows = []
    if not args.skip_quick:
        names = ["all"] if args.experiments == "all" else args.experiments.split(",")
        with tempfile.TemporaryDirectory() as tmp:
            out["quick_seconds"] = {n: time_command(["reproduce", n, "--scale", "quick", "--out", f"{tmp}/{n}"])
                                    for n in names}
        rows += [(f"reproduce {n} --scale quick", s) for n, s in out["quick_seconds"].items()]
    if not args.skip_paper:
        out["paper_grid"] = paper_grid(args.sensing)
        for part in out["paper_grid"]:
            what = f"paper {part['task']} M={part['observations']}"
            rows.append((f"{what}: train {part['runs']} runs {part['status']}", part["train_seconds"]))
            rows.append((f"{what}: nuclear norm ({SCALES['paper'].seeds} solves)", part["baseline_seconds"]))
        completion = [p for p in out["paper_grid"] if p["task"] == "completion"]
        out["paper_completion_grid_seconds"] = sum(p["train_seconds"] + p["baseline_seconds"] for p in completion)
        rows.append(("paper completion grid + baselines (target < 600 s)", out["paper_completion_grid_seconds"]))
    out["load_average_after"] = os.getloadavg()
    print(f"{'what':72s} {'seconds':>10s}")
    for what, seconds in rows:
        print(f"{what:72s} {seconds:10.1f}")
    for part in out.get("paper_grid", []):
        print(f"median error, paper {part['task']} M={part['observations']}: "
              + ", ".join(f"{k} {v:.2e}" for k, v in part["median_error"].items()))
    print(f"load average before/after: {out['load_average']} / {out['load_average_after']}")
    print("written to", write_results("bench_reproduce", out))


if __name__ == "__main__":
    main()
