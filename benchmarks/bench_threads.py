"""The thread policy on a shared machine: ``implicitrank demo`` quiet and beside a CPU-bound process (issue 18).

Runs the whole ``implicitrank demo`` command (a fresh process each time: imports, three factorizations, the
nuclear norm, the figure and the report) with the package's thread policy, alternately on the machine as it is
("quiet") and with one busy-loop process that this script starts and stops ("busy"); the target is
busy ≤ 3× quiet. With ``--torch-default`` it also runs the demo with as many threads as cores (``--threads N``,
what torch chooses by itself), the behaviour before the policy. The OMP/MKL variables are removed from the
demo's environment, so the policy, not the caller's environment, chooses. Prints min and median of the
repeats and writes benchmarks/results/bench_threads.json.

    python benchmarks/bench_threads.py [--repeats 3] [--torch-default] [--max-steps 30000]
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

from implicitrank.threads import THREAD_VARIABLES, available_cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per condition (min and median reported)")
    parser.add_argument("--torch-default", action="store_true", help="also run with one thread per core")
    parser.add_argument("--max-steps", type=int, default=30_000, help="the demo's step cap")
    args = parser.parse_args()
    policies = {"package policy": []} | ({"one thread per core": ["--threads", str(os.cpu_count())]}
                                        if args.torch_default else {})
    times: dict[str, dict[str, list[float]]] = {p: {"quiet": [], "busy": []} for p in policies}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        for k in range(args.repeats):
            for policy, extra in policies.items():
                if policy != "package policy" and k:  # the slow old behaviour once is enough
                    continue
                for condition in ("quiet", "busy"):
                    out = Path(tmp) / f"{policy.replace(' ', '-')}-{condition}-{k}"
                    seconds = _demo(out, extra + ["--max-steps", str(args.max_steps)], busy=condition == "busy")
                    times[policy][condition].append(seconds)
                    print(f"{policy:<20} {condition:<5} repeat {k}: {seconds:7.1f} s", flush=True)
    rows = []
    for policy, by in times.items():
        quiet, busy = by["quiet"], by["busy"]
        row = {"policy": policy, "quiet_seconds": quiet, "busy_seconds": busy,
               "quiet_min": min(quiet), "quiet_median": statistics.median(quiet),
               "busy_min": min(busy), "busy_median": statistics.median(busy),
               "ratio_of_medians": statistics.median(busy) / statistics.median(quiet),
               "ratio_of_mins": min(busy) / min(quiet)}
        rows.append(row)
        print(f"{policy}: quiet min {row['quiet_min']:.1f} s median {row['quiet_median']:.1f} s; busy min "
              f"{row['busy_min']:.1f} s median {row['busy_median']:.1f} s; busy/quiet {row['ratio_of_mins']:.2f} "
              f"(mins), {row['ratio_of_medians']:.2f} (medians); target <= 3")
    path = write_results("bench_threads", {"cores": available_cores(), "load_average": os.getloadavg(),
                                           "max_steps": args.max_steps, "rows": rows})
    print(f"wrote {path}")


def _demo(out: Path, extra: list[str], busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    command = [sys.executable, "-c", "import sys; from implicitrank.cli import main; sys.exit(main())", "demo",
               "--no-progress", "--out", str(out), *extra]
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if loop is not None:
            time.sleep(0.5)  # running before the demo looks at the machine
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    main()
