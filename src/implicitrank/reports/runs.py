"""The report of one run directory or of a directory of runs (``mf``/``tf``/``htf``/``nnm``/``demo`` output).

Per run: the tracked quantities against steps (σ₁…σ_k or component norms, log axes, a legend entry per index), the
loss and errors, the summary and the config. A directory of runs gets a sortable table of their summaries first, and
any figure the command drew for the whole directory (``demo.png``). A run's figures are the ones the run drew into
its directory (``quantities.png``, ``errors.png``) while they are newer than its ``metrics.jsonl``; else they are
drawn anew from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import plots, results
from ._page import cell, css_class, figure_uri, file_figure, fmt, read_json_or_none, render, table

SUMMARY_KEYS = ("status", "reconstruction_error", "reconstruction_error_squared", "unobserved_error",
                "effective_rank", "nuclear_norm", "train_loss", "test_mse", "steps", "last_train_acc", "last_test_acc",
                "best_test_acc", "epochs", "seconds")  # the table's columns, those some run has
MAX_DRAWN = 24  # runs drawn in full; beyond, the table says which were left out
RUN_DEPTH = 4  # directory levels searched for runs (locality: TASK/lam=…/d=…/seed=…)
QUANTITIES, ERRORS = "quantities against steps", "loss and errors against steps"  # a run's figures, by name


def is_run(directory: Path) -> bool:
    return (directory / results.CONFIG).is_file()


def run_dirs(directory: Path, depth: int = RUN_DEPTH) -> list[Path]:
    """The run directories under ``directory``, down to ``depth`` levels (``locality`` nests its runs as
    ``TASK/lam=…/d=…/seed=…``); a run's own subdirectories are not searched."""
    found = []
    for d in sorted(d for d in directory.iterdir() if d.is_dir()):
        if is_run(d):
            found.append(d)
        elif depth > 1:
            found += run_dirs(d, depth - 1)
    return found


def _figure_files(directory: Path, depth: int = RUN_DEPTH) -> list[Path]:
    """The PNG files beside the runs: in ``directory`` and its directories that are not runs, down to ``depth``
    levels (a locality output's ``TASK/accuracy.png``); a run's own figures are drawn with the run."""
    found = sorted(directory.glob("*.png"))
    for d in sorted(d for d in directory.iterdir() if d.is_dir()):
        if not is_run(d) and depth > 1:
            found += _figure_files(d, depth - 1)
    return found


def is_runs(directory: Path) -> bool:
    return is_run(directory) or bool(run_dirs(directory))


def write(directory: Path) -> Path:
    """Write ``directory/report.html``; return its path."""
    if is_run(directory):
        runs = [gather_run(directory, "run-0")]
        title = f"Run {directory.name}"
    else:
        runs = [gather_run(d, f"run-{i}", draw=i < MAX_DRAWN, name=str(d.relative_to(directory)))
                for i, d in enumerate(run_dirs(directory))]
        title = f"{len(runs)} run{'' if len(runs) == 1 else 's'} in {directory.name}"
    figures = [] if is_run(directory) else [file_figure(p, str(p.relative_to(directory)))
                                            for p in _figure_files(directory)]
    statuses = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return render("runs.html", directory, title=title, root=str(directory), runs=runs, figures=figures,
                  statuses=statuses, summary=_summary_table(runs), left_out=max(len(runs) - MAX_DRAWN, 0))


def gather_run(run_dir: Path, anchor: str, draw: bool = True, name: str | None = None) -> dict[str, Any]:
    """A run's summary, config, figures (drawn from metrics.jsonl, or the run's own drawings of it while they are
    current) and what is missing or went wrong."""
    problems: list[str] = []
    config, problem = read_json_or_none(run_dir / results.CONFIG)
    if problem:
        problems.append(problem)
    summary, problem = read_json_or_none(run_dir / results.SUMMARY)
    if problem:
        problems.append(f"{problem}: the run did not finish (interrupted, failed or still running)")
    error, _ = read_json_or_none(run_dir / "error.json")
    if error:
        problems.append(f"failed: {error.get('type', 'error')}: {error.get('message', '')}")
    summary = summary or {}
    status = summary.get("status") or ("failed" if error else "unfinished" if not summary else "done")
    if summary.get("message"):
        problems.append(summary["message"])
    setup = plots.describe_setup(config or {})
    figures: list[dict] = []
    if draw:
        figures = _figures(run_dir, setup, problems)
    return {"name": name or run_dir.name, "anchor": anchor, "status": status, "css": css_class(status), "setup": setup,
            "summary": {k: fmt(v) for k, v in summary.items() if k != "provenance"}, "raw": summary,
            "config": {k: fmt(v) for k, v in (config or {}).items()}, "figures": figures, "problems": problems,
            "drawn": draw, "provenance": {k: fmt(v) for k, v in (summary.get("provenance") or {}).items()}}


def _figures(run_dir: Path, setup: str, problems: list[str]) -> list[dict]:
    if not (run_dir / results.METRICS).is_file():
        if (run_dir / "solution.pt").is_file():
            return []  # a solver's run (nnm): no trajectory to draw
        problems.append(f"no {results.METRICS}: nothing recorded to draw")
        return []
    try:
        rows = results.read_metrics(run_dir)
    except ValueError as err:
        problems.append(f"{results.METRICS} could not be read: {err}")
        return []
    if not rows:
        problems.append(f"{results.METRICS} is empty: nothing recorded to draw")
        return []
    if not {"step", "time"} & set(rows[0]):  # a network's epochs (locality): drawn by its sweep's accuracy.png
        problems.append(f"{results.METRICS} records epochs, not a factorization's steps: no figure drawn here (a "
                        "locality output's accuracy.png draws its runs)")
        return []
    drawn = _drawn_figures(run_dir, rows)
    if drawn is not None:
        return drawn
    figures = []
    fig = plots.quantities_figure(rows, setup)
    if fig is not None:
        figures.append({"name": QUANTITIES, "uri": figure_uri(fig), "error": None})
    figures.append({"name": ERRORS, "uri": figure_uri(plots.errors_figure(rows, setup)), "error": None})
    return figures


def _drawn_figures(run_dir: Path, rows: list[dict]) -> list[dict] | None:
    """The figures ``plots.plot_run`` wrote into the run directory, when every one it would write from ``rows`` is
    there, is a PNG and was written after ``metrics.jsonl`` was last changed; else None (the report draws them).

    Drawing a run's two figures again took most of the time of a report (``demo``: about 3 s of 20)."""
    recorded = (run_dir / results.METRICS).stat().st_mtime_ns
    wanted = [(plots.QUANTITIES_FILE, QUANTITIES)] if plots.quantity_name(rows) is not None else []
    figures = []
    for file, name in [*wanted, (plots.ERRORS_FILE, ERRORS)]:
        path = run_dir / file
        try:
            fresh = path.stat().st_mtime_ns >= recorded
        except OSError:
            return None
        figure = file_figure(path)
        if not fresh or figure["error"]:
            return None
        figures.append(figure | {"name": name})
    return figures


def _summary_table(runs: list[dict]) -> dict:
    keys = [k for k in SUMMARY_KEYS if any(k in r["raw"] for r in runs) and k != "status"]
    rows = [[cell(r["name"], href=f"#{r['anchor']}"), cell(r["status"], cls=f"status {r['css']}"),
             *(cell(r["raw"].get(k)) for k in keys)] for r in runs]
    return table("runs", ["run", "status", *(k.replace("_", " ") for k in keys)], rows)
