"""Plots of a run directory: the tracked quantities and the errors against steps (log axes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from . import results  # noqa: E402
from .errors import UsageError

QUANTITY_LABELS = {
    "singular_values": "singular values",
    "component_norms": "component norms",
    "local_component_norms": "local component norms (root)",
}
ERROR_KEYS = ("train_loss", "reconstruction_error", "unobserved_error", "test_mse")


def plot_run(run_dir: str | Path, rows: list[dict] | None = None) -> list[Path]:
    """Write ``quantities.png`` (the top quantities against steps) and ``errors.png`` (loss and
    reconstruction errors against steps) into ``run_dir``; return the paths written."""
    run_dir = Path(run_dir)
    rows = results.read_metrics(run_dir) if rows is None else rows
    if not rows:
        raise UsageError(f"run_dir: {run_dir} has no recorded metrics to plot")
    x_key = "time" if "time" in rows[0] else "step"
    x = [max(float(r[x_key]), 1e-12) if x_key == "time" else max(int(r["step"]), 1) for r in rows]
    written = []
    name = next((k for k in QUANTITY_LABELS if k in rows[0]), None)
    if name is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        values = [[float(v) if v is not None else float("nan") for v in r[name]] for r in rows]
        for k in range(len(values[0])):
            ax.plot(x, [v[k] for v in values], lw=1.5)
        label = QUANTITY_LABELS[name]
        ax.set(xscale="log", xlabel=x_key, ylabel=label, title=f"{label} ({run_dir.name})")
        ax.grid(alpha=0.3)
        written.append(_save(fig, run_dir / "quantities.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ERROR_KEYS:
        if key in rows[0]:
            ax.plot(x, [r[key] if r[key] is not None else float("nan") for r in rows], label=key.replace("_", " "))
    ax.set(xscale="log", yscale="log", xlabel=x_key, title=f"errors ({run_dir.name})")
    ax.grid(alpha=0.3)
    ax.legend()
    written.append(_save(fig, run_dir / "errors.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
