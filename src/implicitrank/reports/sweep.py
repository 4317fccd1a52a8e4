"""The report of a sweep directory: the collected table (sortable in the page), the plots a researcher draws first
for a grid, and how its runs ended.

Plots: the reconstruction error and the effective rank at the end of training against the init scale (or the first
numeric axis when the init scale does not vary), one line per value of the other axes (depth, factorization, ...),
the median over seeds with the min–max band; and the final tracked quantities (σ₁…σ_k or component norms) of each
line. Status counts split the finished runs into converged / stopped at max_steps / diverged, and list the failed
and diverged runs with their messages.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .. import plots, results
from ..sweeps.state import ERROR, RUNS, SWEEP, read_sweep, sweep_status
from ._page import cell, css_class, figure_uri, fmt, render, table

METRICS_SHOWN = ("reconstruction_error", "reconstruction_error_squared", "unobserved_error", "effective_rank",
                 "nuclear_norm", "train_loss", "test_mse", "steps", "seconds")
REPEATS = ("seed", "data_seed", "truth_seed")  # axes a line takes the median over
MAX_LINES = 12


def is_sweep(directory: Path) -> bool:
    return (directory / SWEEP).is_file()


def write(root: Path) -> Path:
    """Write ``root/report.html``; return its path."""
    sweep = read_sweep(root)
    spec = sweep["spec"]
    axes = [*spec.get("axes", {}), *(k for group in spec.get("zip", []) for k in group)]
    runs = []
    for state in sweep_status(root):
        run_dir = root / RUNS / state.run_id
        summary = results.read_json(run_dir / results.SUMMARY) if state.status == "done" else {}
        status = summary.get("status", state.status) if state.status == "done" else state.status
        message = summary.get("message") or state.detail
        if state.status == "failed" and (run_dir / ERROR).is_file():
            error = results.read_json(run_dir / ERROR)
            message = f"{error.get('type')}: {error.get('message')}"
        runs.append({"run_id": state.run_id, "config": sweep["configs"][state.run_id], "status": status,
                     "summary": summary, "message": message, "dir": run_dir})
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    problems = [r for r in runs if r["status"] in ("failed", "diverged", "metrics_not_finite")
                or (r["status"] == "pending" and r["message"])]
    x_key, series_keys = _plot_axes(axes, sweep["configs"])
    figures, notes = _figures(runs, x_key, series_keys)
    return render("sweep.html", root, title=f"Sweep {spec.get('name', root.name)}", root=str(root), spec=spec,
                  spec_text=_spec_text(spec),
                  counts=counts, total=len(runs), problems=[_problem(r, axes) for r in problems],
                  collected=_table(runs, axes), figures=figures, notes=notes)


def _plot_axes(axes: list[str], configs: dict[str, dict]) -> tuple[str | None, list[str]]:
    """(the x axis: init_scale if it varies, else the first numeric axis; the axes that make separate lines)."""
    varying = [a for a in axes if len({json.dumps(c.get(a)) for c in configs.values()}) > 1]
    numeric = [a for a in varying if a not in REPEATS and all(
        isinstance(c.get(a), (int, float)) and not isinstance(c.get(a), bool) for c in configs.values())]
    x_key = "init_scale" if "init_scale" in varying else (numeric[0] if numeric else None)
    return x_key, [a for a in varying if a != x_key and a not in REPEATS]


def _series_label(config: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={fmt(config.get(k))}" for k in keys) or "all runs"


def _figures(runs: list[dict], x_key: str | None, series_keys: list[str]) -> tuple[list[dict], list[str]]:
    import matplotlib.pyplot as plt

    done = [r for r in runs if r["summary"] and r["status"] != "diverged"]
    notes: list[str] = []
    diverged = sum(r["status"] == "diverged" for r in runs)
    if diverged:
        notes.append(f"{diverged} diverged run(s) are left out of the plots (their last values are not results)")
    if not done:
        return [], notes + ["no run has finished without diverging: nothing to plot"]
    if x_key is None:
        return [], notes + ["no numeric axis varies (besides seeds): the table holds the results"]
    series: dict[str, list[dict]] = {}
    for r in done:
        series.setdefault(_series_label(r["config"], series_keys), []).append(r)
    if len(series) > MAX_LINES:
        notes.append(f"{len(series)} lines; the first {MAX_LINES} are drawn")
    shown = dict(list(series.items())[:MAX_LINES])
    error_key = next((k for k in ("reconstruction_error", "test_mse", "train_loss")
                      if any(r["summary"].get(k) is not None for r in done)), "train_loss")
    labels = {"reconstruction_error": r"reconstruction error $\|W - W^*\|_F\, /\, \|W^*\|_F$ (relative)",
              "test_mse": "test mean squared error", "train_loss": "final train loss (units of W²)"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, (label, members) in enumerate(shown.items()):
        color = plt.cm.tab10(i % 10)
        for ax, key in zip(axes, (error_key, "effective_rank")):
            xs, mid, lo, hi = _median_band(members, x_key, key)
            if xs:
                ax.plot(xs, mid, "o-", color=color, label=label)
                ax.fill_between(xs, lo, hi, color=color, alpha=0.15)
    # init_scale is ‖W(0)‖_F for every model (the factor std is results.csv's init_std)
    x_label = (r"init scale $\|W(0)\|_F$ (root-mean-square over draws)" if x_key == "init_scale"
               else x_key.replace("_", " "))
    x_values = [r["config"][x_key] for r in done]
    for ax, key, ylabel in zip(axes, (error_key, "effective_rank"),
                               (labels[error_key], "effective rank (dimensionless)")):
        ax.set(xlabel=x_label, ylabel=ylabel, title=f"final {ylabel.split(' (')[0]} against {x_key.replace('_', ' ')}")
        if plots.spans_decades(x_values, 1.0):
            ax.set_xscale("log")
        values = [r["summary"].get(key) for r in done]
        if plots.spans_decades(values, 1.0):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="median over seeds, min–max band", title_fontsize=7)
    fig.suptitle(f"final results of the sweep, one line per {', '.join(series_keys) or 'sweep'}")
    figures = [{"name": f"{error_key.replace('_', ' ')} and effective rank against {x_key}",
                "uri": figure_uri(fig), "error": None}]
    quantities = _final_quantities(shown, x_key)
    if quantities is not None:
        figures.append({"name": "final tracked quantities", "uri": quantities, "error": None})
    return figures, notes


def _median_band(members: list[dict], x_key: str, key: str) -> tuple[list, list, list, list]:
    by_x: dict[float, list[float]] = {}
    for r in members:
        value = r["summary"].get(key)
        if value is not None and math.isfinite(value):
            by_x.setdefault(r["config"][x_key], []).append(value)
    xs = sorted(by_x)
    return (xs, [statistics.median(by_x[x]) for x in xs], [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs])


def _final_row(run_dir: Path) -> dict | None:
    """The last recorded metrics of a run (read from the end of metrics.jsonl)."""
    path = run_dir / results.METRICS
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _final_quantities(series: dict[str, list[dict]], x_key: str) -> str | None:
    """One panel per line of the error plot: the final top quantities, one curve per x value (median over seeds)."""
    import matplotlib.pyplot as plt

    finals = {label: [(r["config"][x_key], _final_row(r["dir"])) for r in members] for label, members in series.items()}
    name = next((plots.quantity_name([row]) for rows in finals.values() for _, row in rows if row), None)
    if name is None:
        return None
    axis_label, symbol = plots.QUANTITY_LABELS[name]
    ncols = min(len(finals), 3)
    nrows = math.ceil(len(finals) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.6 * ncols, 6.4), 3.6 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(finals):]:
        ax.axis("off")
    xs_all = sorted({x for rows in finals.values() for x, _ in rows})
    for ax, (label, rows) in zip(axes.flat, finals.items()):
        values: list[float] = []
        for j, x in enumerate(xs_all):
            spectra = [row[name] for x2, row in rows if x2 == x and row and row.get(name)]
            if not spectra:
                continue
            k = min(len(s) for s in spectra)
            med = [statistics.median(float(s[i]) if s[i] is not None else math.nan for s in spectra) for i in range(k)]
            values += med
            ax.plot(range(1, k + 1), med, "o-", ms=3, color=plt.cm.viridis(j / max(len(xs_all) - 1, 1)),
                    label=f"{x_key.replace('_', ' ')} {fmt(x)}")
        ax.set(xlabel=f"index k ({plots.indexed(symbol, 1)} is the largest)", ylabel=axis_label, title=label)
        if plots.spans_decades(values):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"final {axis_label.split(' (')[0]}\n(median over seeds), per line of the sweep", fontsize=10)
    return figure_uri(fig)


def _problem(r: dict, axes: list[str]) -> dict[str, Any]:
    return {"run_id": r["run_id"], "status": r["status"], "css": css_class(r["status"]),
            "axis_values": " ".join(f"{k}={fmt(r['config'].get(k))}" for k in axes), "message": r["message"] or "—"}


def _table(runs: list[dict], axes: list[str]) -> dict:
    metrics = [k for k in METRICS_SHOWN if any(k in r["summary"] for r in runs)]
    rows = [[cell(r["run_id"]), *(cell(_axis_value(r["config"].get(a))) for a in axes),
             cell(r["status"], cls=f"status {css_class(r['status'])}"),
             *(cell(r["summary"].get(k)) for k in metrics)] for r in runs]
    return table("collected", ["run", *axes, "status", *(k.replace("_", " ") for k in metrics)], rows)


def _spec_text(spec: dict) -> str:
    """The spec as TOML-like lines (``[base]``, ``key = value``, ...)."""
    lines = []
    for section in ("base", "axes"):
        if spec.get(section):
            lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in spec[section].items()), ""]
    for group in spec.get("zip", []):
        lines += ["[[zip]]", *(f"{k} = {json.dumps(v)}" for k, v in group.items()), ""]
    return "\n".join(lines).strip()


def _axis_value(value: Any) -> Any:
    return "×".join(map(str, value)) if isinstance(value, list) else value
