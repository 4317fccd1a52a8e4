"""``implicitrank report DIR``: write DIR/report.html, one self-contained page of what DIR holds (a reproduction,
a sweep, a run or a directory of runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_parser


def register(subparsers) -> None:
    p = add_parser(
        subparsers, "report",
        help="write DIR/report.html: one self-contained page of a reproduction, sweep or run directory",
        description="Write DIR/report.html for any output of implicitrank: a 'reproduce NAME' or 'reproduce all' "
                    "directory (claims, figures, provenance), a sweep directory (sortable table, error and "
                    "effective rank against init scale, run status), an mf/tf/htf/nnm/demo output directory or one "
                    "run directory (trajectories, errors, summary, config). Images are embedded: the file works "
                    "offline and can be mailed. A newer report replaces an older one.")
    p.add_argument("dir", type=Path, help="the output directory")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..reports import write_report

    print(f"report: {write_report(args.dir)}")
    return 0
