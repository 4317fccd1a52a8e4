"""One tidy table of a sweep: a row per finished run, its configuration fields and its summary numbers.

Written as ``OUT/results.csv`` and, when pyarrow is installed, ``OUT/results.parquet``; the plots
and the reproductions read it. Rows follow the sweep's order; ``shape`` is written as ``12x12``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

from .. import results
from ..run import RunConfig
from .state import RUNS, read_sweep

CSV, PARQUET = "results.csv", "results.parquet"
FIELDS = [f.name for f in dataclasses.fields(RunConfig)]


def collect_rows(out: str | Path) -> list[dict[str, Any]]:
    """The finished runs of the sweep in ``out``: ``run_id``, config fields, then summary values."""
    out = Path(out)
    sweep = read_sweep(out)
    rows = []
    for run_id in sweep["run_ids"]:
        path = out / RUNS / run_id / results.SUMMARY
        if path.is_file():
            config = sweep["configs"][run_id]
            config = {k: "x".join(map(str, config[k])) if k == "shape" else config[k] for k in FIELDS}
            summary = results.read_json(path)
            rows.append({"run_id": run_id, **config, **{k: v for k, v in summary.items() if k != "run_id"}})
    return rows


def write_table(out: str | Path, rows: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write ``results.csv`` (and ``results.parquet`` with pyarrow) into ``out``; return the paths."""
    out = Path(out)
    rows = collect_rows(out) if rows is None else rows
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    written = [out / CSV]
    results._atomic_write(out / CSV, lambda h: h.write(text.getvalue().encode()))
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return written
    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    results._atomic_write(out / PARQUET, lambda h: pyarrow.parquet.write_table(table, h))
    return written + [out / PARQUET]
