"""One tidy table of a sweep: a row per finished run, its configuration fields and its summary numbers.

Written as ``OUT/results.csv`` and, when pyarrow is installed, ``OUT/results.parquet``; the plots
and the reproductions read it. Rows follow the sweep's order; ``shape`` is written as ``12x12``. Each run's
provenance (``summary.json``) is not a column: ``OUT/results.provenance.json`` holds the table's own provenance
(``provenance.collect``: who wrote it, when, from which commit) and each run's, by ``run_id``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Any

from .. import provenance, results
from ..errors import CorruptFileError
from ..run import RunConfig
from .state import RUNS, read_sweep

CSV, PARQUET, PROVENANCE = "results.csv", "results.parquet", "results.provenance.json"
FIELDS = [f.name for f in dataclasses.fields(RunConfig)]


def collect_rows(out: str | Path) -> list[dict[str, Any]]:
    """The finished runs of the sweep in ``out``, one row each, in the sweep's order.

    A run whose ``summary.json`` cannot be read is left out with a warning on stderr.

    Parameters
    ----------
    out : str or Path
        The sweep directory: ``sweep.json`` and the runs' summaries under ``runs/``.

    Returns
    -------
    list of dict of str to Any
        ``run_id``, every ``RunConfig`` field (``shape`` as ``12x12``), then the summary's values but
        ``run_id`` and ``provenance``.

    Raises
    ------
    MissingInputError
        When ``out`` is not a sweep directory (no ``sweep.json``).
    """
    out = Path(out)
    sweep = read_sweep(out)
    rows = []
    for run_id in sweep["run_ids"]:
        path = out / RUNS / run_id / results.SUMMARY
        if path.is_file():
            config = sweep["configs"][run_id]
            config = {k: "x".join(map(str, config[k])) if k == "shape" else config[k] for k in FIELDS}
            try:
                summary = results.read_json(path, "rerun the sweep with --retry-failed to train the run again")
            except CorruptFileError as err:  # one bad run is reported and left out; the others are collected
                print(f"warning: run {run_id} left out of the table: {err}", file=sys.stderr)
                continue
            rows.append({"run_id": run_id, **config,
                         **{k: v for k, v in summary.items() if k not in ("run_id", "provenance")}})
    return rows


def write_table(out: str | Path, rows: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write ``results.csv``, ``results.provenance.json`` and, with pyarrow, ``results.parquet`` into ``out``.

    Parameters
    ----------
    out : str or Path
        The sweep directory.
    rows : list of dict or None, optional
        The rows. Default None: ``collect_rows(out)``.

    Returns
    -------
    list of Path
        The files written: ``results.csv``, ``results.provenance.json`` and, with pyarrow, ``results.parquet``.
    """
    out = Path(out)
    rows = collect_rows(out) if rows is None else rows
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    written = [out / CSV, out / PROVENANCE]
    results.atomic_write(out / CSV, lambda h: h.write(text.getvalue().encode()))
    runs = {}
    for row in rows:
        path = out / RUNS / str(row.get("run_id")) / results.SUMMARY
        runs[row.get("run_id")] = results.read_json(path).get("provenance") if path.is_file() else None
    seeds = sorted({row["seed"] for row in rows if row.get("seed") is not None})
    record = {"provenance": provenance.collect(seeds=seeds), "runs": runs}
    results.atomic_write(out / PROVENANCE, lambda h: h.write((json.dumps(record, indent=1) + "\n").encode()))
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return written
    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    results.atomic_write(out / PARQUET, lambda h: pyarrow.parquet.write_table(table, h))
    return written + [out / PARQUET]
