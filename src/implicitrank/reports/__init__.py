"""HTML reports: one self-contained page per output directory of the package, to look at rather than read.

``write_report(DIR)`` recognizes what ``DIR`` holds and writes ``DIR/report.html``:

* a ``reproduce NAME`` or ``reproduce all`` directory (``claims.json``): ``reproduction``;
* a sweep directory (``sweep.json``): ``sweep``;
* a run directory (``config.json``) or a directory of runs (``mf``/``tf``/``htf``/``nnm``/``demo`` output): ``runs``.

A page embeds its images as PNG data URIs and its styles inline, loads nothing from the network, and uses a small
inline script only to sort tables, so it can be mailed or attached to a review. It is drawn from the recorded files
only; what is missing or failed is said on the page, never skipped.

Examples
--------
>>> from implicitrank.reports import KINDS
>>> KINDS
('reproduction', 'sweep', 'runs')
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingInputError, UsageError

REPORT = "report.html"
KINDS = ("reproduction", "sweep", "runs")

__all__ = ["KINDS", "REPORT", "detect", "write_report"]


def detect(directory: str | Path) -> str:
    """What ``directory`` holds: a sweep, a reproduction or runs.

    Parameters
    ----------
    directory : str or Path
        The directory to classify by the files it holds (see Returns).

    Returns
    -------
    str
        One of ``KINDS``: ``sweep`` (``sweep.json``), ``reproduction`` (``claims.json``, one experiment's or
        several), ``runs`` (a run directory or a directory of them), checked in that order.

    Raises
    ------
    MissingInputError
        When ``directory`` is not a directory.
    UsageError
        When it holds none of them; the message names the argument.
    """
    from . import reproduction, runs, sweep

    directory = Path(directory)
    if not directory.is_dir():
        raise MissingInputError(f"dir: no such directory {str(directory)!r}")
    if sweep.is_sweep(directory):
        return "sweep"
    if reproduction.is_reproduction(directory):
        return "reproduction"
    if runs.is_runs(directory):
        return "runs"
    raise UsageError(f"dir: {str(directory)!r} is not an output of implicitrank (expected claims.json, sweep.json, "
                     "config.json or run directories holding them)")


def write_report(directory: str | Path) -> Path:
    """Write ``directory/report.html`` for whatever output of the package ``directory`` holds (see ``detect``).

    Parameters
    ----------
    directory : str or Path
        A sweep, reproduction or run output directory; the report is written into it.

    Returns
    -------
    Path
        The report written, ``directory/report.html``.

    Raises
    ------
    MissingInputError
        When ``directory`` is not a directory.
    UsageError
        When it holds no output of the package.
    """
    from . import reproduction, runs, sweep

    kind = detect(directory)
    return {"reproduction": reproduction.write, "sweep": sweep.write, "runs": runs.write}[kind](Path(directory))
