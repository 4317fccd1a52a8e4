"""Where a result came from: package version, git commit, library versions, device, dtype, threads, seeds, command.

``collect`` returns one JSON-ready dict, stored under the key ``"provenance"`` in every run's ``summary.json``,
every ``claims.json``, a sweep table's ``results.provenance.json`` and every benchmark JSON, so a number can be
traced to the code and the machine that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

__all__ = ["checkout_state", "collect", "git_state", "now"]


def now() -> str:
    """The current UTC time as ISO 8601 with seconds.

    Returns
    -------
    str
        E.g. ``2026-12-02T06:15:00+00:00``.
    """
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def git_state() -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding this package (None when the
    package is not in a git work tree or git is unavailable). Cached: a process asks once."""
    return checkout_state(Path(__file__).resolve().parent)


def checkout_state(directory: Path) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git work tree holding ``directory``.

    Read without git's optional locks: a plain ``git status`` refreshes the index's file stats, writing the index
    under ``index.lock``, and a process killed meanwhile (a Slurm job cancelled, a worker terminated) left that
    lock behind in the user's checkout, where their next ``git commit`` failed on it.

    Parameters
    ----------
    directory : Path
        A directory inside the work tree.

    Returns
    -------
    dict
        The HEAD commit and whether tracked files differ from it; both None outside a work tree or without git.
    """
    git = ["git", "--no-optional-locks"]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], cwd=directory,
                                capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def _threads() -> dict:
    import torch

    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            **{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def collect(*, seeds: Sequence[int] | None = None, device: str | None = None, dtype: str | None = None,
            started: str | None = None, ended: str | None = None, argv: Sequence[str] | None = None) -> dict:
    """The provenance record of a result.

    Parameters
    ----------
    seeds : sequence of int or None, optional
        The seeds of the runs the result comes from. Default None (not applicable).
    device : str or None, optional
        Where it was computed, e.g. ``"cpu"``. Default None: ``"cuda (GPU NAME)"`` when a GPU is present, else
        ``"cpu"``.
    dtype : str or None, optional
        The precision it was computed in, e.g. ``"float32"``. Default None (recorded as null).
    started : str or None, optional
        ISO time (``now()``) the work started. Default None.
    ended : str or None, optional
        ISO time the work ended. Default None: now.
    argv : sequence of str or None, optional
        The command line. Default None: ``sys.argv``.

    Returns
    -------
    dict
        JSON-ready, with ``implicitrank`` (version), ``git_commit``, ``git_dirty``, ``python``, ``torch``,
        ``numpy``, ``platform``, ``device``, ``dtype``, ``torch_threads``, ``torch_interop_threads``,
        ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``seeds``, ``command``, ``started``, ``ended``.
    """
    import numpy
    import torch

    from . import __version__

    if device is None:
        device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    git = git_state()
    return {"implicitrank": __version__, "git_commit": git["commit"], "git_dirty": git["dirty"],
            "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "device": device, "dtype": dtype, **_threads(),
            "seeds": None if seeds is None else [int(s) for s in seeds],
            "command": list(sys.argv if argv is None else argv), "started": started, "ended": ended or now()}
