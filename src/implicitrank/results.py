"""Run directories: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``factors.pt``,
``checkpoint.pt`` and plots, written atomically (temporary file + rename) so nothing is half-written.

A rerun into an existing directory refuses or resumes; it never overwrites silently.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import CorruptFileError, MissingInputError, OutputExistsError

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
    """Write ``path`` whole or not at all: ``write(handle)`` fills a temporary file beside it, which then
    replaces ``path`` in one rename (a crash never leaves half a file). The file gets the permissions a plain
    ``open`` would give (0666 less the umask; ``mkstemp``'s own 0600 would hide results from the user's group)."""
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
    """Tensors and numbers to plain JSON values (non-finite floats become null)."""
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
    """Write ``obj`` as indented, key-sorted JSON (tensors as lists, non-finite floats as null), whole or not at all."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda h: h.write(text.encode()))


DAMAGED = "restore it from a copy, or delete it and rerun what wrote it"


def read_json(path: Path, hint: str = DAMAGED) -> Any:
    """The JSON in ``path``; a truncated or corrupt file raises ``CorruptFileError`` naming it and ``hint``
    (what to do)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path} is truncated or corrupt (not JSON: {err}); {hint}") from err


def write_metrics(path: Path, rows: Iterable[dict]) -> None:
    """Write ``rows`` as JSON lines (one row a line), whole or not at all."""
    text = "".join(json.dumps(to_jsonable(row)) + "\n" for row in rows)
    atomic_write(path, lambda h: h.write(text.encode()))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``run_dir``'s metrics.jsonl."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise MissingInputError(f"run_dir: no {METRICS} in {str(run_dir)!r}")
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise CorruptFileError(f"{path} line {number} is truncated or corrupt (not JSON: {err}); the "
                                       f"run's summary.json and factors.pt do not depend on it; {DAMAGED}") from err
    return rows


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` of ``obj`` to ``path``, whole or not at all."""
    atomic_write(path, lambda h: torch.save(obj, h))


def load_torch(path: Path, hint: str = DAMAGED) -> Any:
    """What ``save_torch`` wrote to ``path``; a truncated or corrupt file raises ``CorruptFileError`` naming it
    and ``hint`` (what to do)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptFileError(f"{path} is truncated or corrupt ({reason}); {hint}") from err


DEVICE_USED = "device_used"  # config.json's record of the device the run trained on (not part of its config)


def prepare_run_dir(run_dir: str | Path, config: dict, *, resume: bool, resumable: bool = True,
                    device: str | None = None) -> Path:
    """Create ``run_dir`` for a new run, or check it for resuming.

    Refuses (``OutputExistsError``) a finished run, a directory of another configuration, an unfinished run
    without ``resume`` (naming ``--resume`` only where the command is ``resumable``), and a non-empty
    directory that is not a run of ours. ``device`` (e.g. ``cpu`` for ``device = "auto"``) is recorded in
    ``config.json`` as ``device_used``, that of the latest session on a resume.
    """
    run_dir = Path(run_dir)
    record = {**config, DEVICE_USED: device} if device is not None else config
    if run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / SUMMARY).exists():
            raise OutputExistsError(f"out: {run_dir} holds a finished run (summary.json); choose another --out")
        if not (run_dir / CONFIG).exists():
            raise OutputExistsError(f"out: {run_dir} is not empty and not a run directory; choose another --out")
        written = read_json(run_dir / CONFIG)
        if {k: v for k, v in written.items() if k != DEVICE_USED} != json.loads(json.dumps(to_jsonable(config))):
            raise OutputExistsError(f"out: {run_dir} holds a run of another configuration; choose another --out")
        if not resume:
            what = "pass --resume to continue it" if resumable else "delete it or choose another --out"
            raise OutputExistsError(f"out: {run_dir} holds an unfinished run; {what}")
        if written.get(DEVICE_USED) != device and device is not None:
            write_json(run_dir / CONFIG, record)
        return run_dir
    write_json(run_dir / CONFIG, record)
    return run_dir


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run wrote its summary (last): a readable ``summary.json`` (a corrupt one is not finished)."""
    try:
        read_json(Path(run_dir) / SUMMARY)
    except (FileNotFoundError, CorruptFileError):
        return False
    return True
