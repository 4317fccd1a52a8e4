"""Page faults and time of a training loop with glibc's start-up thresholds against the package's allocator policy
(``implicitrank.allocator.keep_freed_memory``; issue 18).

Each repeat runs the paper grid's depth-3 batch (100×100 rank 5, 2000 observations, 12 runs: 3 seeds × 4 init
scales, float32, rkc at rtol 1e-5) for ``--warmup`` steps, then counts the minor page faults, the CPU time and the
system time of the next ``--steps`` steps, in a fresh process: once with glibc's defaults, once with the policy,
alternating. glibc raises its mmap threshold as mapped blocks are freed, so how many faults the defaults cost
depends on the order in which a process frees its blocks; the repeats show the spread. Prints a table and writes
benchmarks/results/allocator.json.

    python benchmarks/bench_allocator.py [--repeats 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import write_results

from implicitrank.allocator import allocator_environment

LOOP = """
import json, resource, sys
from implicitrank.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "policy" else None
import torch
torch.set_num_threads(1)
from implicitrank import flow
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.train import TrainConfig
warmup, steps = int(sys.argv[2]), int(sys.argv[3])
seeds = [s for s in range(3) for _ in range(4)]
task = complete_from_target(low_rank_matrix(100, 100, 5, seed=0), 2000, seeds).to("cpu", torch.float32)
model = MatrixFactorization(100, 100, depth=3)
params = model.init(12, torch.tensor([1e-3, 1e-2, 1e-1, 0.5] * 3), generators(seeds))
def run(n, state=None):
    config = TrainConfig(max_steps=n, loss_threshold=0.0, record_per_decade=0, progress=False)
    return flow.integrate(model, task, None if state else params, config, method="rkc", rtol=1e-5, state=state)
state = run(warmup)
before = resource.getrusage(resource.RUSAGE_SELF)
state = run(warmup + steps, state)
after = resource.getrusage(resource.RUSAGE_SELF)
done = state.step - warmup
print(json.dumps({"applied": applied, "steps": done, "faults_per_step": (after.ru_minflt - before.ru_minflt) / done,
                  "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                  "system_s": after.ru_stime - before.ru_stime}))
"""


def loop(mode: str, warmup: int, steps: int) -> dict:
    """One fresh process's measurement, with glibc's defaults (``mode="default"``) or the policy (``"policy"``)."""
    env = {k: v for k, v in os.environ.items() if k not in allocator_environment()} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", LOOP, mode, str(warmup), str(steps)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="alternating pairs of fresh processes (default: 5)")
    parser.add_argument("--warmup", type=int, default=10, help="steps before the count starts (default: 10)")
    parser.add_argument("--steps", type=int, default=100, help="steps counted (default: 100)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3")

    rows = {"default": [], "policy": []}
    print(f"{'repeat':>6s} {'mode':>8s} {'faults/step':>12s} {'CPU s':>7s} {'system s':>9s}")
    for repeat in range(args.repeats):
        for mode in rows:
            row = loop(mode, args.warmup, args.steps)
            rows[mode].append(row)
            print(f"{repeat:6d} {mode:>8s} {row['faults_per_step']:12.1f} {row['cpu_s']:7.2f} {row['system_s']:9.2f}",
                  flush=True)
    summary = {mode: {key: {"min": min(r[key] for r in runs), "median": statistics.median(r[key] for r in runs)}
                      for key in ("faults_per_step", "cpu_s", "system_s")} for mode, runs in rows.items()}
    ratio = summary["default"]["cpu_s"]["median"] / summary["policy"]["cpu_s"]["median"]
    print(f"median faults/step: default {summary['default']['faults_per_step']['median']:.1f}, "
          f"policy {summary['policy']['faults_per_step']['median']:.1f}; median CPU default/policy {ratio:.2f}")
    path = write_results("allocator", {"repeats": args.repeats, "warmup": args.warmup, "steps": args.steps,
                                       "load_average": os.getloadavg(),
                                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows,
                                       "summary": summary, "cpu_default_over_policy_median": ratio})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
