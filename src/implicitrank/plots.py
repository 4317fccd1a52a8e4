"""Plots of a run directory: the tracked quantities and the errors against steps, fit for a paper.

Every figure names its set-up in the title, labels both axes with their units, has a legend for every line family
(σ₁…σ_k for singular values), and puts an axis on a log scale where its values span decades. ``quantities_figure``
and ``errors_figure`` return the figures (the HTML report embeds them); ``plot_run`` writes them as PNG.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.axis import XAxis, YAxis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from . import results
from .errors import MissingInputError, UsageError

__all__ = ["ERROR_KEYS", "ERROR_LABELS", "QUANTITY_LABELS", "describe_setup", "draw_errors", "draw_quantities",
           "decade_ticks", "errors_figure", "indexed", "plot_run", "power_of_ten", "quantities_figure", "quantity_name",
           "legend_outside", "save", "spans_decades"]


# name -> (axis label, symbol of the k-th line in the legend)
QUANTITY_LABELS = {
    "singular_values": ("singular values of W (units of W)", "σ"),
    "component_norms": ("CP component norms (units of W)", "‖c‖"),
    "local_component_norms": ("root local component norms (units of W)", "‖c‖"),
}
ERROR_LABELS = {
    "train_loss": "train loss (mean squared error over observations)",
    "reconstruction_error": r"reconstruction error $\|W - W^*\|_F\, /\, \|W^*\|_F$",
    "unobserved_error": "error on unobserved entries (relative Frobenius)",
    "test_mse": "test mean squared error",
}
ERROR_KEYS = tuple(ERROR_LABELS)
SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def indexed(symbol: str, k: int) -> str:
    """The legend entry of the k-th quantity, counted from 1: ``σ`` and 3 -> ``σ₃``.

    Parameters
    ----------
    symbol : str
        The quantity's symbol.
    k : int
        Its index, written in subscript digits.

    Returns
    -------
    str
        ``symbol`` followed by ``k`` in subscript.
    """
    return f"{symbol}{str(k).translate(SUBSCRIPTS)}"


def legend_outside(ax: Axes, **kwargs) -> None:
    """``ax``'s legend to the right of its plot, where it cannot cover a curve (``save``'s layout makes room).

    Parameters
    ----------
    ax : Axes
        The axes whose labelled artists the legend lists.
    **kwargs
        Passed to ``Axes.legend`` (font size, columns, title).
    """
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def spans_decades(values: Iterable[float | None], decades: float = 2.0) -> bool:
    """Whether the finite positive ``values`` span at least ``decades`` orders of magnitude (then: a log axis).

    Parameters
    ----------
    values : iterable of float or None
        The values; None, non-finite and non-positive ones are ignored.
    decades : float, optional
        The span, in powers of ten, that asks for a log axis. Default 2.0.

    Returns
    -------
    bool
        True when at least two values remain and log10(max / min) >= ``decades``.
    """
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return len(positive) > 1 and math.log10(max(positive) / min(positive)) >= decades


TRAINING_KEYS = ("lr", "reg_weight", "seed", "max_epochs")  # a network training run's set-up, as described


def describe_setup(config: dict) -> str:
    """A run's set-up in a few words, from its ``config.json``: model, shape, task, init, optimizer, seed.

    Parameters
    ----------
    config : dict
        A run's configuration (``config.json``); a baseline's (with ``baseline``) has no init, optimizer or
        init seed, and names its data and truth seeds instead.

    Returns
    -------
    str
        Parts joined by ``"; "``, e.g. ``depth-3 matrix factorization; 100×100 rank 5, completion from 2000
        observations; init 0.001, global-rmsprop lr 0.001; seed 0``, or ``…; init 0.001, gradient flow (rkc, rtol
        1e-05); …`` for the flow (which has no learning rate), ``nuclear norm min; …; data seed 3, truth seed 0``
        for a baseline; ``training run; lr 0.01, reg weight 0.0, seed 0, max epochs 2`` for a network's training
        run (a config without a ``shape``: ``locality``'s); empty for an empty ``config``.
    """
    if not config:
        return ""
    if "shape" not in config and "baseline" not in config:  # not a factorization: a network's training settings
        return "training run; " + ", ".join(f"{key.replace('_', ' ')} {config[key]}" for key in TRAINING_KEYS
                                            if key in config)
    model = config.get("model", "matrix")
    kind = {"matrix": f"depth-{config.get('depth')} matrix factorization", "cp": "CP factorization",
            "ht": f"hierarchical factorization ({config.get('tree', 'balanced')} tree)"}.get(model, str(model))
    if "baseline" in config:
        kind = str(config["baseline"]).replace("_", " ")
    shape = "×".join(map(str, config.get("shape", ())))
    task = config.get("task", "completion")
    data = f"{config['data']}" if config.get("data") else f"{shape} rank {config.get('rank')}"
    parts = [kind, f"{data}, {task} from {config.get('num_observations')} observations"]
    if "baseline" not in config:
        if config.get("optimizer") == "gradient-flow":  # the flow has no learning rate
            method, rtol = config.get("flow_method", "dopri5"), config.get("rtol")
            training = f"gradient flow ({method if rtol is None else f'{method}, rtol {rtol:g}'})"
        else:
            training = f"{config.get('optimizer')} lr {config.get('lr'):g}"
        parts.append(f"init {config.get('init_scale'):g}, {training}")
        parts.append(f"seed {config.get('seed')}")
    else:  # a baseline has no init: its problem is the observation set's (and the ground truth's) seed
        parts.append(f"data seed {config.get('data_seed')}, truth seed {config.get('truth_seed')}")
    return "; ".join(parts)


def _x(rows: Sequence[dict]) -> tuple[list[float], str]:
    """The x values (steps, or gradient-flow time) and their axis label, for a log axis: step 0 is drawn at 0.5
    (not at step 1's place), time 0 a decade before the first positive time (not at a fixed tiny value, which would
    leave most of the axis to the flat start)."""
    if "time" in rows[0]:
        times = [float(r["time"]) for r in rows]
        origin = min((t for t in times if t > 0), default=10.0) / 10
        label = f"time t of gradient flow (= lr × steps of GD; t = 0 drawn at {origin:.2g})"
        return [max(t, origin) for t in times], label
    return [int(r["step"]) or 0.5 for r in rows], "iteration (optimizer steps; step 0 drawn at 0.5)"


def _values(rows: Sequence[dict], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) is not None else math.nan for r in rows]


def quantity_name(rows: Sequence[dict]) -> str | None:
    """The tracked quantity recorded in ``rows``.

    Parameters
    ----------
    rows : sequence of dict
        Rows of ``metrics.jsonl``; the first row decides.

    Returns
    -------
    str or None
        The first key of ``QUANTITY_LABELS`` (``singular_values``, ``component_norms``, ``local_component_norms``)
        present in the first row, or None.
    """
    return next((k for k in QUANTITY_LABELS if rows and k in rows[0]), None)


def draw_quantities(ax: Axes, rows: Sequence[dict], name: str, title: str) -> None:
    """The top quantities against steps on ``ax``: one line per index with its legend entry.

    The x axis (steps, or gradient-flow time) is logarithmic; the y axis is where the values span two decades.

    Parameters
    ----------
    ax : Axes
        The axes to draw on.
    rows : sequence of dict
        Rows of ``metrics.jsonl``, each with ``step`` (or ``time``) and the list ``rows[i][name]``.
    name : str
        The quantity, a key of ``QUANTITY_LABELS``.
    title : str
        The panel's title.
    """
    x, xlabel = _x(rows)
    values = [[float(v) if v is not None else math.nan for v in r[name]] for r in rows]
    label, symbol = QUANTITY_LABELS[name]
    count = max(len(v) for v in values)
    for k in range(count):
        ax.plot(x, [v[k] if k < len(v) else math.nan for v in values], lw=1.5, label=indexed(symbol, k + 1),
                color=plt.cm.viridis(k / max(count - 1, 1)))
    flat = [v for row in values for v in row]
    ax.set(xscale="log", yscale="log" if spans_decades(flat) else "linear", xlabel=xlabel, ylabel=label)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both" if spans_decades(flat) else "major")
    legend_outside(ax, fontsize=7, ncol=2 if count > 5 else 1, title=f"top {count}", title_fontsize=7)


def draw_errors(ax: Axes, rows: Sequence[dict], title: str) -> bool:
    """Loss and reconstruction errors against steps on ``ax``, both axes logarithmic.

    Parameters
    ----------
    ax : Axes
        The axes to draw on.
    rows : sequence of dict
        Rows of ``metrics.jsonl``; each key of ``ERROR_KEYS`` present in the first row is drawn.
    title : str
        The panel's title.

    Returns
    -------
    bool
        Whether any error was drawn (False when none was recorded).
    """
    x, xlabel = _x(rows)
    drawn: list[float] = []  # every value drawn
    for key in ERROR_KEYS:
        if key in rows[0]:
            values = _values(rows, key)
            ax.plot(x, values, label=ERROR_LABELS[key])
            drawn += values
    # A run that diverged at its first record has nothing a log axis can show (matplotlib raises on it), and
    # errors within one decade read better on a linear axis (a log axis labels them 9.98×10⁻¹, 9.99×10⁻¹).
    ax.set(xscale="log", yscale="log" if spans_decades(drawn, 1.0) else "linear", xlabel=xlabel,
           ylabel="loss (units of W²); errors (relative)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend(fontsize=7)
    return bool(ax.lines)


def quantities_figure(rows: Sequence[dict], setup: str = "") -> Figure | None:
    """The tracked quantities against steps (``draw_quantities``) in a new 6.4×4.2 inch figure.

    Parameters
    ----------
    rows : sequence of dict
        Rows of ``metrics.jsonl``; the quantity columns are looked up by ``quantity_name``.
    setup : str, optional
        Text under the title (``describe_setup``). Default ``""``.

    Returns
    -------
    Figure or None
        The figure, or None when the rows hold no tracked quantity.
    """
    name = quantity_name(rows)
    if name is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_quantities(ax, rows, name, _title(QUANTITY_LABELS[name][0].split(" (")[0], setup))
    return fig


def errors_figure(rows: Sequence[dict], setup: str = "") -> Figure:
    """Loss and errors against steps (``draw_errors``) in a new 6.4×4.2 inch figure.

    Parameters
    ----------
    rows : sequence of dict
        Rows of ``metrics.jsonl`` with the loss and any recorded errors.
    setup : str, optional
        The set-up, wrapped under the "loss and errors" title. Default ``""``.

    Returns
    -------
    Figure
        The figure.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_errors(ax, rows, _title("loss and errors", setup))
    return fig


def _title(what: str, setup: str, width: int = 64) -> str:
    """``what`` over the set-up, wrapped to fit over a panel."""
    return "\n".join([what, *textwrap.wrap(setup, width)]) if setup else what


QUANTITIES_FILE, ERRORS_FILE = "quantities.png", "errors.png"  # what ``plot_run`` writes into a run directory


def plot_run(run_dir: str | Path, rows: list[dict] | None = None) -> list[Path]:
    """Write ``quantities.png`` (the top quantities against steps) and ``errors.png`` (loss and
    reconstruction errors against steps) into ``run_dir``.

    The titles carry the set-up from ``config.json`` (the directory's name when there is none).

    Parameters
    ----------
    run_dir : str or Path
        A run directory.
    rows : list of dict or None, optional
        Its metrics rows. Default None: read from ``run_dir``'s ``metrics.jsonl``.

    Returns
    -------
    list of Path
        The files written (``quantities.png`` only when a quantity was recorded, then ``errors.png``).

    Raises
    ------
    UsageError
        When there are no metrics rows, or they are not a factorization's (no ``step`` or ``time``: a locality run).
    MissingInputError
        When ``rows`` is None and ``run_dir`` holds no ``metrics.jsonl``; the message names the runs below it that
        can be plotted (a demo's or a sweep's), or says what ``run_dir`` is when it records none (an nnm solution).
    """
    run_dir = Path(run_dir)
    if rows is None and run_dir.is_dir() and not (run_dir / results.METRICS).is_file():
        raise MissingInputError(_no_metrics(run_dir))
    rows = results.read_metrics(run_dir) if rows is None else rows
    if not rows:
        raise UsageError(f"run_dir: {run_dir} has no recorded metrics to plot")
    if not _is_factorization(rows[0]):  # e.g. a locality run's epochs: its figure is the sweep's accuracy.png
        raise UsageError(f"run_dir: {run_dir} is not a run directory of mf, tf or htf (its {results.METRICS} records "
                         "no optimizer steps or gradient-flow time), the only runs plot draws")
    config_path = run_dir / results.CONFIG
    setup = describe_setup(results.read_json(config_path)) if config_path.is_file() else run_dir.name
    written = []
    fig = quantities_figure(rows, setup)
    if fig is not None:
        written.append(save(fig, run_dir / QUANTITIES_FILE))
    written.append(save(errors_figure(rows, setup), run_dir / ERRORS_FILE))
    return written


def _is_factorization(row: dict) -> bool:
    """Whether a metrics row is a factorization's, recorded against optimizer steps or gradient-flow time."""
    return bool({"step", "time"} & set(row))


def _no_metrics(directory: Path) -> str:
    """Why ``directory``, which holds no metrics.jsonl, has nothing to plot: the runs below it, down to four levels
    (a demo's ``depth1``, a sweep's ``runs/ID``), that plot can draw, or what it is when it holds none."""
    found = [path.parent for level in range(1, 5)
             for path in sorted(directory.glob("*/" * level + results.METRICS)) if _first_row_plots(path)]
    if found:
        return (f"run_dir: {directory} holds {len(found)} run{'s' if len(found) > 1 else ''} below it, not one run "
                f"(no {results.METRICS} of its own); plot one of them, e.g. {found[0]}")
    config = directory / results.CONFIG
    if config.is_file() and "baseline" in results.read_json(config):
        return (f"run_dir: {directory} is a minimum nuclear norm solution (nnm), which records no {results.METRICS}; "
                "plot draws the runs of mf, tf and htf")
    return f"run_dir: no {results.METRICS} in {str(directory)!r} (plot draws a run directory of mf, tf or htf)"


def _first_row_plots(path: Path) -> bool:
    """Whether the metrics file ``path`` opens with a factorization's row (a locality run's epochs do not plot)."""
    with open(path, errors="replace") as file:
        line = next((line for line in file if line.strip()), "")
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and _is_factorization(row)


def save(fig: Figure, path: str | PathLike | BinaryIO, dpi: int = 110) -> str | PathLike | BinaryIO:
    """Lay out, write and close ``fig``; its log axes that span decades get ``decade_ticks``.

    Parameters
    ----------
    fig : Figure
        The figure; closed afterwards.
    path : str, path or binary file
        The image file (its suffix chooses the format) or a buffer (PNG).
    dpi : int, optional
        Resolution. Default 110.

    Returns
    -------
    str, path or binary file
        ``path``.
    """
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log" and spans_decades(axis.get_view_interval()):
                decade_ticks(axis)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, **({} if isinstance(path, (str, PathLike)) else {"format": "png"}))
    plt.close(fig)
    return path


def decade_ticks(axis: XAxis | YAxis) -> None:
    """Label a log axis's decades as plain text (``power_of_ten``) and put minor ticks (and their grid lines) at
    2 and 5 of each decade instead of at 2–9.

    Both for the time it takes to draw a figure: matplotlib's default labels are mathtext, which is parsed anew
    for each figure, and each minor tick is a set of artists built on every layout; on a run's two plots the
    defaults took about twice as long (``benchmarks/bench_plots.py``).

    Parameters
    ----------
    axis : XAxis or YAxis
        A log-scaled axis.
    """
    axis.set_major_formatter(FuncFormatter(power_of_ten))
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))


def power_of_ten(value: float, position: int | None = None) -> str:
    """A log axis's tick label: ``10⁻³`` for 1e-3, in Unicode superscripts (``%g`` for other values).

    Parameters
    ----------
    value : float
        The tick's value.
    position : int, optional
        Its position on the axis (matplotlib's formatter signature; unused).

    Returns
    -------
    str
        The label; empty for a value that is not positive.
    """
    if not value > 0:
        return ""
    exponent = round(math.log10(value))
    if math.isclose(value, 10.0**exponent, rel_tol=1e-9):
        return "10" + str(exponent).translate(SUPERSCRIPTS)
    return f"{value:g}"
