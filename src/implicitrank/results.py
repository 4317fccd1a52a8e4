"""Run directories: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``factors.pt``,
``checkpoint.pt`` and plots, written atomically (temporary file + rename) so nothing is half-written.

A rerun into an existing directory refuses or resumes; it never overwrites silently.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import CorruptFileError, MissingInputError, OutputExistsError, UsageError

__all__ = ["CHECKPOINT", "CONFIG", "DAMAGED", "FACTORS", "METRICS", "SUMMARY", "atomic_write", "is_finished",
           "load_torch", "prepare_run_dir", "read_json", "read_metrics", "save_torch", "to_jsonable", "write_json",
           "write_metrics"]


CONFIG, METRICS, SUMMARY, FACTORS, CHECKPOINT = "config.json", "metrics.jsonl", "summary.json", "factors.pt", \
    "checkpoint.pt"


def _umask() -> int:
    """The process's file-creation mask (from /proc where there is one, else by setting and restoring it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Write ``path`` whole or not at all.

    ``write(handle)`` fills a temporary file beside it, which then replaces ``path`` in one rename (a crash never
    leaves half a file; the temporary file is removed on any error). The file gets the permissions a plain ``open``
    would give (0666 less the umask; ``mkstemp``'s own 0600 would hide results from the user's group). The parent
    directory is created when missing.

    Parameters
    ----------
    path : Path
        The file to write.
    write : callable
        Called once with the temporary file opened in binary mode (``"wb"``); it writes the content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_jsonable(value: Any) -> Any:
    """Tensors and numbers to plain JSON values.

    Parameters
    ----------
    value : Any
        A tensor, float, dict, list or tuple (converted recursively), or anything else (returned as is).

    Returns
    -------
    Any
        Tensors as (nested) lists, tuples as lists, non-finite floats as None (null).
    """
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, whole or not at all (``atomic_write``).

    Parameters
    ----------
    path : Path
        The file to write.
    obj : Any
        What to write; tensors become lists and non-finite floats null (``to_jsonable``).
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda h: h.write(text.encode()))


DAMAGED = "restore it from a copy, or delete it and rerun what wrote it"


def read_json(path: Path, hint: str = DAMAGED) -> dict[str, Any]:
    """The JSON in ``path``.

    Parameters
    ----------
    path : Path
        The file to parse as UTF-8 JSON.
    hint : str, optional
        Advice appended to the error when the file does not parse. Default ``DAMAGED``.

    Returns
    -------
    dict
        The parsed JSON object (every JSON file the package writes holds one).

    Raises
    ------
    CorruptFileError
        When the file is truncated or corrupt (not JSON, not UTF-8, or not a JSON object); the message names it and
        ``hint``.
    UsageError
        When the file cannot be read (permissions).
    FileNotFoundError
        When ``path`` does not exist.
    """
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path} is truncated or corrupt (not JSON: {err}); {hint}") from err
    except PermissionError as err:
        raise UsageError(f"{path} cannot be read: {err.strerror}") from err
    if not isinstance(value, dict):
        raise CorruptFileError(f"{path} is corrupt (a JSON {type(value).__name__}, not an object); {hint}")
    return value


def write_metrics(path: Path, rows: Iterable[dict]) -> None:
    """Write ``rows`` as JSON lines (one row a line), whole or not at all (``atomic_write``).

    Parameters
    ----------
    path : Path
        The file to write (a run's ``metrics.jsonl``).
    rows : iterable of dict
        The rows; tensors become lists and non-finite floats null (``to_jsonable``).
    """
    text = "".join(json.dumps(to_jsonable(row)) + "\n" for row in rows)
    atomic_write(path, lambda h: h.write(text.encode()))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir``'s metrics.jsonl.

    Parameters
    ----------
    run_dir : str or Path
        A run directory holding ``metrics.jsonl``.

    Returns
    -------
    list of dict
        One dict per non-blank line, in file order.

    Raises
    ------
    MissingInputError
        When ``run_dir`` holds no ``metrics.jsonl``.
    CorruptFileError
        When a line is not JSON, or not an object (whose ``step``, if any, is an integer); the message names the
        line.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise MissingInputError(f"run_dir: no {METRICS} in {str(run_dir)!r}")
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorruptFileError(f"{path} line {number} is truncated or corrupt (not JSON: {err}); the "
                                       f"run's summary.json and factors.pt do not depend on it; {DAMAGED}") from err
            # readers order and plot a run's rows by their step (a locality run's by their epoch)
            if not isinstance(row, dict) or ("step" in row and type(row["step"]) is not int):
                raise CorruptFileError(f"{path} line {number} is not a record of this package (an object, its "
                                       f"'step' an integer); the run's summary.json and factors.pt do not depend "
                                       f"on it; {DAMAGED}")
            rows.append(row)
    return rows


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` of ``obj`` to ``path``, whole or not at all (``atomic_write``).

    Parameters
    ----------
    path : Path
        The file to write (``factors.pt``, ``checkpoint.pt``).
    obj : Any
        What to save; ``load_torch`` reads it back with ``weights_only=True``, so tensors, numbers, strings and
        containers of them.
    """
    atomic_write(path, lambda h: torch.save(obj, h))


def load_torch(path: Path, hint: str = DAMAGED, keys: Iterable[str] = ()) -> Any:
    """What ``save_torch`` wrote to ``path``, loaded onto the CPU with ``weights_only=True``.

    Parameters
    ----------
    path : Path
        A file written by ``save_torch`` (``factors.pt``, ``checkpoint.pt``).
    hint : str, optional
        What the ``CorruptFileError`` of an unreadable file tells the user to do. Default ``DAMAGED``.
    keys : iterable of str, optional
        Keys the saved object must have (a checkpoint's); given, it must be a dict holding them.

    Returns
    -------
    Any
        The saved object, its tensors on the CPU.

    Raises
    ------
    CorruptFileError
        When the file is truncated or corrupt, or lacks ``keys``; the message names it and ``hint``.
    FileNotFoundError
        When ``path`` does not exist (``PermissionError`` likewise passes through).
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Weights only load failed" in reason:  # torch's advice to load it unsafely is no help for a damaged file
            reason = "torch cannot read it as tensors, numbers, strings and containers of them"
        raise CorruptFileError(f"{path} is truncated or corrupt ({reason}); {hint}") from err
    missing = sorted(set(keys) - (set(saved) if isinstance(saved, dict) else set()))
    if missing:
        raise CorruptFileError(f"{path} is not a checkpoint of this package (no {', '.join(missing)}); {hint}")
    return saved


DEVICE_USED = "device_used"  # config.json's record of the device the run trained on (not part of its config)


def prepare_run_dir(run_dir: str | Path, config: dict, *, resume: bool, resumable: bool = True,
                    device: str | None = None, check_only: bool = False) -> Path:
    """Create ``run_dir`` for a new run, or check it for resuming.

    A new (missing or empty) directory gets ``config.json``; one holding only the temporary files of writes killed
    midway (``atomic_write``'s, which are removed) counts as empty. An existing unfinished run of the same
    configuration is accepted when ``resume``.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    config : dict
        The run's configuration, written to (or compared with) ``config.json``.
    resume : bool
        Continue an unfinished run found there.
    resumable : bool, optional
        The command can resume (its refusal of an unfinished run then names ``--resume``). Default True.
    device : str or None, optional
        The device the run trains on (e.g. ``cpu`` for ``device = "auto"``), recorded in ``config.json`` as
        ``device_used``, that of the latest session on a resume. Default None (not recorded).
    check_only : bool, optional
        Only check, writing nothing: a batch checks all its directories before it writes any, so that a refused
        one leaves no other behind. Default False.

    Returns
    -------
    Path
        ``run_dir`` as a ``Path``.

    Raises
    ------
    OutputExistsError
        For a finished run (``summary.json``), a directory of another configuration, an unfinished run without
        ``resume``, and a non-empty directory that is not a run (no ``config.json``).
    CorruptFileError
        When an existing ``config.json`` cannot be read.
    """
    run_dir = Path(run_dir)
    record = {**config, DEVICE_USED: device} if device is not None else config
    killed = killed_writes(run_dir)
    if run_dir.exists() and any(p not in killed for p in run_dir.iterdir()):
        if (run_dir / SUMMARY).exists():
            raise OutputExistsError(f"out: {run_dir} holds a finished run (summary.json); choose another --out")
        if not (run_dir / CONFIG).exists():
            raise OutputExistsError(f"out: {run_dir} is not empty and not a run directory; choose another --out")
        written = {k: v for k, v in read_json(run_dir / CONFIG).items() if k != DEVICE_USED}
        wanted = json.loads(json.dumps(to_jsonable(config)))
        if written != wanted:  # name what differs: a resume needs the settings the run was started with
            changed = ", ".join(f"{k} {written.get(k)!r} (now {wanted.get(k)!r})"
                                for k in sorted(set(written) | set(wanted)) if written.get(k) != wanted.get(k))
            raise OutputExistsError(f"out: {run_dir} holds a run of another configuration: {changed}; rerun with the "
                                    "settings it was started with, or choose another --out")
        if not resume:
            what = "pass --resume to continue it" if resumable else "delete it or choose another --out"
            raise OutputExistsError(f"out: {run_dir} holds an unfinished run; {what}")
        if written.get(DEVICE_USED) != device and device is not None and not check_only:
            write_json(run_dir / CONFIG, record)
        return run_dir
    if not check_only:
        for path in killed:
            path.unlink(missing_ok=True)
        write_json(run_dir / CONFIG, record)
    return run_dir


_KILLED_WRITE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # atomic_write's temporary name, .NAME.XXXXXXXX.tmp


def killed_writes(directory: Path) -> list[Path]:
    """The temporary files of ``atomic_write`` (``.NAME.XXXXXXXX.tmp``, ``tempfile.mkstemp``'s eight characters)
    that a process killed mid-write left in ``directory``: a sweep worker killed while it started a run leaves only
    ``.config.json.XXXXXXXX.tmp``, and such a directory is a new run's, not someone else's files."""
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if _KILLED_WRITE.fullmatch(p.name) and p.is_file()]


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run wrote its summary, which it writes last.

    Parameters
    ----------
    run_dir : str or Path
        The run's directory, finished or not (or not yet created).

    Returns
    -------
    bool
        True when ``summary.json`` exists and is readable JSON (a corrupt one is not finished).
    """
    try:
        read_json(Path(run_dir) / SUMMARY)
    except (FileNotFoundError, CorruptFileError):
        return False
    return True
