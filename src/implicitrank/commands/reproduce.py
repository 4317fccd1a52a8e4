"""``implicitrank reproduce``: rerun the papers' figures and check them against the published numbers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..experiments import MODULES, SCALE_NAMES, experiment, reproduce
from ._common import default_out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="rerun a paper figure and check its claims (reproduce --list)",
        description="Rerun one experiment (or 'all') at a scale; each writes its figure(s) as PNG, the table behind "
                    "them as CSV, and claims.json + claims.md (the paper's value, ours, tolerance, pass/fail).")
    p.add_argument("name", nargs="?", help="experiment name (see --list) or 'all'")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--scale", choices=SCALE_NAMES, default="quick",
                   help="test: seconds; quick: minutes on 2 CPU cores; paper: the published sizes")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: runs/reproduce-TIME)")
    p.add_argument("--seeds", type=int, default=None, help="repetitions (default: the scale's own)")
    p.add_argument("--data", default=None,
                   help="data the experiment can use: MovieLens u.data, MNIST/Fashion-MNIST IDX directory, CIFAR-10")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    if args.list or args.name is None:
        for name in MODULES:
            print(f"{name:32s} {experiment(name).TITLE}")
        return 0
    names = list(MODULES) if args.name == "all" else [args.name]
    for name in names:  # every name is checked before anything runs
        experiment(name)
    out = args.out or default_out("reproduce")
    failed = 0
    for name in names:
        started = time.perf_counter()
        print(f"== {name} ({args.scale}) ...", flush=True)
        claims = reproduce(name, args.scale, out / name, seeds=args.seeds, data=args.data)
        failed += sum(c.status == "fail" for c in claims)
        for c in claims:
            print(f"  [{c.status:7s}] {c.claim}: paper {c.paper_value}, ours {c.our_value} ({c.tolerance})")
        print(f"  {time.perf_counter() - started:.0f} s; claims in {out / name / 'claims.md'}", flush=True)
    print(f"results in {out}; {failed} claim(s) failed")
    return 0
