"""Helpers shared by the benchmark scripts: timing and JSON output under benchmarks/results/."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from implicitrank import provenance

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """The best of ``repeats`` wall times of ``fn()`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def write_results(name: str, payload: dict) -> Path:
    """Write ``payload`` with the machine and provenance to ``results/NAME.json`` (``NAME-TIME.json`` when taken)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    if path.exists():  # an earlier measurement is kept, never overwritten
        path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    payload = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine(),
                           "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
               **payload, "provenance": provenance.collect()}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
