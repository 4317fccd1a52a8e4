"""Sweeps: grids of runs that resume after any failure, fill every core, and scale out to Slurm.

A spec (``spec``) names a base configuration and axes; the plan (``plan``) expands it into run
configurations with stable ids and run directories and groups batchable runs into jobs; an executor
(``executors``: serial, local process pool, Slurm through submitit) runs the jobs (``jobs``); the
runner (``runner``) skips finished runs, resumes interrupted ones from their checkpoints and records
failures (``state``); ``collect`` writes one tidy table.

The names below are imported on first use (PEP 562), so that importing ``implicitrank.threads``
in a fresh worker process pins the BLAS threads before anything imports torch or numpy.

Examples
--------
>>> from implicitrank.sweeps import parse_spec
>>> spec = parse_spec({"base": {"shape": [8, 8], "num_observations": 30}, "axes": {"depth": [2, 3], "seed": "0..2"}})
>>> len(spec.configs())  # every combination of the axes, each a validated RunConfig
6
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SweepSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "Plan": "plan",
    "plan_sweep": "plan",
    "group_runs": "plan",
    "format_plan": "plan",
    "Job": "jobs",
    "RunOutcome": "jobs",
    "run_job": "jobs",
    "SerialExecutor": "executors",
    "LocalExecutor": "executors",
    "SlurmExecutor": "executors",
    "SlurmOptions": "executors",
    "make_executor": "executors",
    "RunState": "state",
    "sweep_status": "state",
    "SweepReport": "runner",
    "run_sweep": "runner",
    "collect_rows": "collect",
    "write_table": "collect",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
