"""The paper-scale ``arora2019-completion`` grid, run for real, against the eager reference and the machine bound
(issue 18).

The grid: 100×100 rank 5, M = 2000 and 5000 observed entries, depths 2, 3, 4, init scales α = 1e-3…1e-6, 3 seeds
(72 runs until the train loss is <= 1e-6) + the 6 minimum-nuclear-norm baselines.

* **Ours (measured):** a fresh process trains the 72 runs exactly as ``reproduce arora2019-completion --scale paper``
  does (``factorization_rows``: one grid of 6 batches of 12 runs on parallel one-thread workers, stopped runs leaving
  their batch; the gradient flow integrated by rkc, ``FLOW_RKC``) and solves the 6 baselines (``baseline_rows``); its
  wall time from start to exit, imports included, ``--repeats`` times. Every run's status is reported, so a fast
  number cannot hide unconverged runs.
* **Before (measured):** the same process with the paper's optimizer, global RMSprop lr 1e-3 (what ``--scale paper``
  ran until 2026-12-02), ``--before-repeats`` times. Its steps per run are the reference's.
* **Reference (estimated from measurements of this run):** the original code's way, one process per run started
  after the previous one exits (its launcher waits for each run), each costing the CPU before its first step plus
  S × its seconds per step (``reference_2019.py --time-steps`` at that depth, with one thread or torch's default,
  whichever is faster), S the steps our global RMSprop run took (the original's algorithm on the same data: one
  run to convergence took 28,088 steps there and 28,193 here, ``bench_one_run.py``); plus cvxpy + SCS for the 6
  baselines as the original solves them (the |X_ij − y_ij| <= 1e-3 constraint, SCS's default tolerances), timed for
  one seed per M and counted for every seed.
* **Bound:** what the machine allows ours: Σ_runs E·6(N−1)·n³ FLOPs (E the run's gradient evaluations, its own
  stages and spectral-radius estimates; one gradient costs the 6(N−1) n×n products of a step) ÷ the single-core
  float32 ``bmm`` rate on (12, 100, 100) operands ÷ cores.

Writes benchmarks/results/bench_grid.json.

    python benchmarks/bench_grid.py [--repeats 3] [--before-repeats 1] [--window 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from _common import write_results

from implicitrank.experiments.arora2019_completion import SCALES
from implicitrank.threads import available_cores

HERE = Path(__file__).resolve().parent
N, BATCH = 100, 12
GRID = """
import dataclasses, json, sys
from implicitrank.allocator import keep_freed_memory
if sys.argv[2] != "global-rmsprop":
    keep_freed_memory()  # as ``reproduce`` does since 2026-12-02, fourth session
from implicitrank.experiments.arora2019_completion import (SCALES, Training, baseline_rows, factorization_rows,
                                                            setting_configs)
cfg = SCALES["paper"]
if sys.argv[2] == "global-rmsprop":
    cfg = dataclasses.replace(cfg, completion_training=Training())
grid = [({"task": "completion", "observations": m}, setting_configs(cfg, "completion", m, cfg.seeds))
        for m in cfg.observations]
rows = factorization_rows(grid, progress=False)
for label, configs in grid:
    rows += baseline_rows(configs[0], cfg.seeds, label)
json.dump(rows, open(sys.argv[1], "w"))
"""
SCS = """
import sys, time
import cvxpy as cp, numpy as np, torch
from implicitrank.experiments.arora2019_completion import SCALES, setting_configs
from implicitrank.run import build_task
cfg = SCALES["paper"]
task = build_task([setting_configs(cfg, "completion", int(sys.argv[1]), (0,))[0]]).to("cpu", torch.float64)
rows, cols = task.indices[0, :, 0].numpy(), task.indices[0, :, 1].numpy()
known, mask = np.zeros((N, N)), np.zeros((N, N))
known[rows, cols], mask[rows, cols] = task.values[0].numpy(), 1.0
x = cp.Variable((N, N))
cp.Problem(cp.Minimize(cp.normNuc(x)), [cp.abs(cp.multiply(x - known, mask)) <= 1e-3]).solve(solver=cp.SCS,
                                                                                            use_indirect=False)
""".replace("N, N", f"{N}, {N}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the whole grid")
    parser.add_argument("--before-repeats", type=int, default=1, help="runs of the grid with global RMSprop (>= 1)")
    parser.add_argument("--window", type=int, default=2000, help="reference steps timed per depth")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, cores = SCALES["paper"], available_cores()
    print(f"{cores} cores, load average {os.getloadavg()}", flush=True)
    scs = {m: _child([sys.executable, "-c", SCS, str(m)])[0] for m in cfg.observations}
    print(f"cvxpy+SCS CPU seconds per baseline: {scs}", flush=True)
    before = []
    for k in range(args.before_repeats):
        before.append(_grid(cfg, "global-rmsprop"))
        print(f"before {k} (global RMSprop): {before[-1]['seconds']:.0f} s wall ({before[-1]['cpu_seconds']:.0f} s "
              f"CPU; runs {before[-1]['statuses']})", flush=True)
    rmsprop_steps = {_key(r): r["steps"] for r in before[0]["rows"] if r["method"] != "nuclear norm"}
    repeats = []
    for k in range(args.repeats):
        row = _repeat(cfg, cores, args.window, scs, rmsprop_steps)
        row["before_over_ours"] = statistics.median(b["seconds"] for b in before) / row["ours_seconds"]
        repeats.append(row)
        print(f"repeat {k}: ours {row['ours_seconds']:.0f} s wall ({row['ours_cpu_seconds']:.0f} s CPU; runs "
              f"{row['statuses']}); reference {row['reference_seconds']:.0f} s; bound {row['bound_seconds']:.0f} s "
              f"({row['rate'] / 1e9:.1f} GFLOP/s) -> reference/ours {row['speedup']:.2f}, ours/bound "
              f"{row['to_bound']:.2f}, before/ours {row['before_over_ours']:.2f}", flush=True)
    summary = {key: {"min": min(r[key] for r in repeats), "median": statistics.median(r[key] for r in repeats)}
               for key in ("ours_seconds", "reference_seconds", "bound_seconds", "speedup", "to_bound",
                           "before_over_ours")}
    print(f"ours (wall): min {summary['ours_seconds']['min']:.0f} s, median {summary['ours_seconds']['median']:.0f} s; "
          f"reference/ours: min {summary['speedup']['min']:.2f}, median {summary['speedup']['median']:.2f} "
          f"(target >= 6); ours/bound: min {summary['to_bound']['min']:.2f}, median {summary['to_bound']['median']:.2f}"
          f" (target <= 1.5); before/ours: median {summary['before_over_ours']['median']:.2f}")
    before = [{k: v for k, v in b.items() if k != "rows"} | {"steps": _steps(b["rows"], cfg)} for b in before]
    path = write_results("bench_grid", {"cores": cores, "window": args.window, "load_average": os.getloadavg(),
                                        "scs_cpu_seconds": scs, "before": before, "repeats": repeats,
                                        "summary": summary})
    print(f"wrote {path}")


def _grid(cfg, training: str) -> dict:
    """One fresh process training the grid (``training``: ``paper``, as reproduce does, or ``global-rmsprop``)."""
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        out = Path(tmp) / "rows.json"
        began = time.perf_counter()
        cpu = _child([sys.executable, "-c", GRID, str(out), training])[0]
        wall = time.perf_counter() - began
        rows = json.loads(out.read_text())
    return {"seconds": wall, "cpu_seconds": cpu, "statuses": dict(Counter(r["status"] for r in rows)), "rows": rows,
            "median_error": {f"depth {d}, M {m}": statistics.median(r["error"] for r in rows if r["depth"] == d
                                                                    and r["observations"] == m)
                             for d in (0, *cfg.depths) for m in cfg.observations}}


def _key(row: dict) -> tuple:
    return row["observations"], row["depth"], row["init_scale"], row["seed"]


def _steps(rows: list[dict], cfg, key: str = "steps") -> dict:
    return {f"depth {d}, M {m}": sorted(r[key] for r in rows if r["depth"] == d and r["observations"] == m)
            for d in cfg.depths for m in cfg.observations}


def _repeat(cfg, cores: int, window: int, scs: dict[int, float], rmsprop_steps: dict[tuple, int]) -> dict:
    """One run of our grid, with the reference's per-step costs and the matmul rate measured beside it."""
    ours = _grid(cfg, "paper")
    runs = [r for r in ours["rows"] if r["method"] != "nuclear norm"]
    reference_step = {d: _reference(d, window, cores) for d in cfg.depths}
    reference = (sum(reference_step[r["depth"]]["startup"] + rmsprop_steps[_key(r)]
                     * reference_step[r["depth"]]["per_step"] for r in runs) + cfg.seeds * sum(scs.values()))
    rate = _rate()
    flops = sum(r["gradient_evaluations"] * 6 * (r["depth"] - 1) * N**3 for r in runs)
    bound = flops / rate / cores
    return {"ours_seconds": ours["seconds"], "ours_cpu_seconds": ours["cpu_seconds"], "statuses": ours["statuses"],
            "steps": _steps(runs, cfg), "gradient_evaluations": _steps(runs, cfg, "gradient_evaluations"),
            "median_error": ours["median_error"], "reference_per_step": reference_step,
            "reference_seconds": reference, "rate": rate, "flops": flops, "bound_seconds": bound,
            "speedup": reference / ours["seconds"], "to_bound": ours["seconds"] / bound}


def _child(command: list[str]) -> tuple[float, float]:
    """CPU (user + system of the finished child) and wall seconds of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, time.perf_counter() - began)


def _rate() -> float:
    a, b = torch.randn(BATCH, N, N), torch.randn(BATCH, N, N)
    torch.bmm(a, b)
    repeats = 300
    began = time.process_time()
    for _ in range(repeats):
        torch.bmm(a, b)
    return repeats * 2 * BATCH * N**3 / (time.process_time() - began)


def _reference(depth: int, window: int, cores: int) -> dict:
    """The reference's wall seconds per step at ``depth`` with one thread and with torch's default (one per
    core), whichever is faster here, and its CPU seconds before the first step."""
    best = None
    for threads in sorted({1, cores}):
        text = subprocess.run([sys.executable, str(HERE / "reference_2019.py"), "--time-steps", str(window),
                               "--depth", str(depth), "--lr", "1e-3", "--init-scale", "1e-3", "--threads",
                               str(threads)], check=True, capture_output=True, text=True).stdout
        row = {"per_step": float(re.search(r"seconds_per_step (\S+)", text).group(1)),
               "startup": float(re.search(r"startup_cpu_seconds (\S+)", text).group(1)), "threads": threads}
        if best is None or row["per_step"] < best["per_step"]:
            best = row
    return best


if __name__ == "__main__":
    main()
