"""Pieces shared by the subcommands: value parsing, output directories, tables."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path


def int_list(text: str) -> list[int]:
    """``3``, ``0,1,2`` or ``0..4`` (inclusive) as a list of ints."""
    try:
        if ".." in text:
            lo, hi = text.split("..")
            values = list(range(int(lo), int(hi) + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected N, N,M,... or A..B, got {text!r}") from err
    if not values:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return values


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table; floats in 3 significant digits."""

    def cell(v) -> str:
        if isinstance(v, bool) or v is None:
            return str(v)
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
