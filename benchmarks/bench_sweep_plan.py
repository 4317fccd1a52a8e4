"""Planning a large sweep: ``implicitrank sweep SPEC --dry-run`` on a 20,000-run spec (4 depths × 5 init scales ×
5 learning rates × 200 seeds, 20×20 completion), whole processes, imports included.

The dry run expands the spec into run configurations, hashes each into its run id, groups the runs into batched
jobs and reads each run's state (done, running, failed, pending) from the sweep directory: what every
``implicitrank sweep`` pays before its first step. With ``--before-src DIR`` (a ``src`` directory of an earlier
commit, e.g. ``git archive COMMIT src | tar -x -C /tmp/before``) the same command runs from that code too,
alternating with ours, and the script checks that both print the same plan.

Prints min and median wall seconds and writes benchmarks/results/bench_sweep_plan.json.

    python benchmarks/bench_sweep_plan.py [--repeats 3] [--seeds 200] [--before-src /tmp/before/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results

SPEC = """name = "plan"
[base]
task = "completion"
shape = [20, 20]
rank = 2
num_observations = 100
max_steps = 100

[axes]
depth = [2, 3, 4, 5]
init_scale = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
lr = [0.01, 0.02, 0.05, 0.1, 0.2]
seed = "0..{last}"
"""


def dry_run(spec: Path, out: Path, src: str | None) -> tuple[float, str]:
    """Wall seconds and printed plan of one ``sweep --dry-run`` process (``src``: run that code instead)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    began = time.perf_counter()
    text = subprocess.run([sys.executable, "-m", "implicitrank.cli", "sweep", str(spec), "--dry-run", "--out",
                           str(out), "--no-progress"], check=True, capture_output=True, text=True, env=env).stdout
    return time.perf_counter() - began, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="processes per code (default: 3)")
    parser.add_argument("--seeds", type=int, default=200, help="seeds per setting: runs = 100 × seeds (default: 200)")
    parser.add_argument("--before-src", help="an earlier commit's src directory to compare with (PYTHONPATH)")
    args = parser.parse_args()
    if args.repeats < 1 or args.seeds < 1:
        parser.error("--repeats and --seeds must be >= 1")
    if args.before_src is not None and not (Path(args.before_src) / "implicitrank").is_dir():
        parser.error(f"--before-src: {args.before_src} holds no implicitrank package")
    codes = {"ours": None} | ({"before": args.before_src} if args.before_src else {})
    seconds: dict[str, list[float]] = {name: [] for name in codes}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-plan-") as tmp:
        spec = Path(tmp) / "plan.toml"
        spec.write_text(SPEC.format(last=args.seeds - 1))
        plans = {}
        for repeat in range(args.repeats):
            for name, src in codes.items():
                wall, plans[name] = dry_run(spec, Path(tmp) / "out", src)
                seconds[name].append(wall)
                print(f"repeat {repeat}: {name} {wall:.2f} s", flush=True)
    same = len(set(plans.values())) == 1
    summary = {name: {"min": min(t), "median": statistics.median(t)} for name, t in seconds.items()}
    for name, s in summary.items():
        print(f"{name}: {100 * args.seeds} runs planned in min {s['min']:.2f} s, median {s['median']:.2f} s")
    if "before" in summary:
        summary["before_over_ours"] = {k: summary["before"][k] / summary["ours"][k] for k in ("min", "median")}
        print(f"before/ours: min {summary['before_over_ours']['min']:.2f}, median "
              f"{summary['before_over_ours']['median']:.2f}; the same plan printed: {same}")
    path = write_results("bench_sweep_plan", {"runs": 100 * args.seeds, "repeats": args.repeats,
                                              "before_src": args.before_src, "same_plan": same, "seconds": seconds,
                                              "summary": summary})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
