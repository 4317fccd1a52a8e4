"""TensorBoard event files of a run, written from the rows of its ``metrics.jsonl`` (one recording, two views).

With ``--tensorboard`` (``mf``, ``tf``, ``htf``, ``sweep`` or a spec's ``tensorboard = true``, ``reproduce``),
each run directory gets an ``events.out.tfevents.*`` file beside its ``metrics.jsonl``: every scalar metric (train
loss, errors, effective rank, norms) and each of the top tracked quantities (``singular_values/1``, ...) at the
steps of ``metrics.jsonl``, and the run's configuration as hyperparameters with its final metrics
(``final/<metric>``), so ``tensorboard --logdir SWEEP_DIR`` compares a sweep's runs. Needs the ``tensorboard``
package (``pip install implicitrank[tensorboard]``).

``reproduce`` trains its runs in temporary directories; ``logging_to(dir)`` sends the event files of the runs
trained meanwhile (through ``run.run_batch``) to ``dir/<run_id>`` instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import results

__all__ = ["event_dir", "logging_to", "require", "scalars", "write_events"]


FINAL_METRICS = ("reconstruction_error", "reconstruction_error_squared", "unobserved_error", "effective_rank",
                 "nuclear_norm", "train_loss", "test_mse", "steps")
EVENTS_GLOB = "events.out.tfevents.*"

_LOG_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar("implicitrank_tensorboard_root",
                                                                       default=None)


def require() -> None:
    """Raise a ``UsageError`` naming the flag when the ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as err:
        from .errors import UsageError

        raise UsageError("tensorboard: the tensorboard package is not installed; "
                         "pip install 'implicitrank[tensorboard]'") from err


@contextlib.contextmanager
def logging_to(root: str | Path) -> Iterator[Path]:
    """Within the block, runs trained by ``run.run_batch`` also write their event files to ``root/<run_id>``.

    Parameters
    ----------
    root : str or Path
        The directory that receives one event directory per run.

    Yields
    ------
    Path
        ``root`` as a ``Path``.

    Raises
    ------
    UsageError
        When the ``tensorboard`` package is not installed.
    """
    require()
    token = _LOG_ROOT.set(Path(root))
    try:
        yield Path(root)
    finally:
        _LOG_ROOT.reset(token)


def event_dir(run_dir: Path, run_id: str, enabled: bool) -> Path | None:
    """Where a run's event file goes.

    Parameters
    ----------
    run_dir : Path
        The run's directory.
    run_id : str
        The run's id (its directory's name under a ``logging_to`` root).
    enabled : bool
        The run asked for TensorBoard events itself (``--tensorboard``).

    Returns
    -------
    Path or None
        ``run_dir`` when ``enabled``, else ``root/<run_id>`` within a ``logging_to(root)`` block, else None
        (no event file).
    """
    if enabled:
        return run_dir
    root = _LOG_ROOT.get()
    return None if root is None else root / run_id


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars of one ``metrics.jsonl`` row.

    ``step`` and booleans are skipped; missing values (null) are left out, as they are absent from the row's
    numbers.

    Parameters
    ----------
    row : dict of str to Any
        One row of ``metrics.jsonl`` (tensors are converted by ``results.to_jsonable``).

    Returns
    -------
    dict of str to float
        ``key`` for a number, ``key/k`` (k from 1) for the k-th numeric entry of a list (the top quantities).
    """
    out: dict[str, float] = {}
    for key, value in results.to_jsonable(row).items():
        if key == "step" or value is None or isinstance(value, bool):
            continue
        if isinstance(value, list):
            out.update({f"{key}/{k}": float(v) for k, v in enumerate(value, 1) if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def write_events(directory: Path, rows: list[dict], config: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Write one event file into ``directory``.

    Each row's scalars (``scalars``) at its step, and ``config`` as hyperparameters with the final metrics of
    ``summary`` (``final/<metric>``, the finite numbers among ``FINAL_METRICS``, also as scalars at the final
    step). A previous event file there (from an attempt stopped before its summary was written) is replaced.

    Parameters
    ----------
    directory : Path
        Where the event file goes; created when missing.
    rows : list of dict
        The rows of the run's ``metrics.jsonl``, each with its ``step``.
    config : dict of str to Any
        The run's configuration (lists become ``12x12``, None ``"none"``).
    summary : dict of str to Any
        The run's summary (``summary.json``); its ``steps`` is the step of the final metrics.

    Returns
    -------
    Path
        The event file written (``events.out.tfevents.*``).

    Raises
    ------
    UsageError
        When the ``tensorboard`` package is not installed.
    """
    require()
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(EVENTS_GLOB):
        stale.unlink()
    final = {f"final/{k}": float(summary[k]) for k in FINAL_METRICS
             if isinstance(summary.get(k), (int, float)) and math.isfinite(summary[k])}
    writer = SummaryWriter(log_dir=str(directory))
    try:
        for row in rows:
            for tag, value in scalars(row).items():
                writer.add_scalar(tag, value, int(row["step"]))
        experiment, start, end = hparams(_hparam_values(config), final)
        for event in (experiment, start, end):
            writer.file_writer.add_summary(event)
        for tag, value in final.items():
            writer.add_scalar(tag, value, int(summary.get("steps") or 0))
    finally:
        writer.close()
    return next(directory.glob(EVENTS_GLOB))


def _hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """TensorBoard takes numbers, strings and booleans: lists (shape) as ``12x12``, None as ``"none"``."""
    return {k: "x".join(map(str, v)) if isinstance(v, (list, tuple)) else "none" if v is None else v
            for k, v in results.to_jsonable(config).items()}
