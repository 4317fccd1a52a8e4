"""Start-up time of the command line: ``implicitrank --help``, ``implicitrank mf --help`` and every other
command's ``--help``, each in a fresh process (issue 18 targets: under 0.5 s and under 1 s).

Also times a bare ``python -c pass`` (the floor no change to the package can go below) and ``import torch``
(what the help used to pay). Prints a table and writes benchmarks/results/startup.json with the min and
median of ``--repeats`` runs per command.

    python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import write_results

TARGETS = {"--help": 0.5, "mf --help": 1.0}


def seconds(argv: list[str], repeats: int) -> list[float]:
    """Wall times of ``argv`` run ``repeats`` times, each in a fresh process, output discarded."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (default: 5)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be >= 3")

    from implicitrank.cli import build_parser, subcommands

    cli = [sys.executable, "-m", "implicitrank.cli"]
    cases = {"python -c pass": [sys.executable, "-c", "pass"], "import torch": [sys.executable, "-c", "import torch"],
             "--help": [*cli, "--help"]}
    cases.update({f"{name} --help": [*cli, *name.split(), "--help"] for name, _ in subcommands(build_parser())})
    rows = []
    print(f"{'command':32s} {'min s':>7s} {'median s':>9s}  target")
    for name, argv in cases.items():
        times = seconds(argv, args.repeats)
        row = {"command": name, "min_s": min(times), "median_s": statistics.median(times), "times_s": times}
        if name in TARGETS:
            row.update(target_s=TARGETS[name], met=row["median_s"] < TARGETS[name])
        rows.append(row)
        target = f"< {TARGETS[name]} s: {'met' if row['met'] else 'NOT met'}" if name in TARGETS else ""
        print(f"{name:32s} {row['min_s']:7.3f} {row['median_s']:9.3f}  {target}", flush=True)

    path = write_results("startup", {"repeats": args.repeats, "load_average": os.getloadavg(),
                                     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
