"""The reproducible experiments, by name.

Each experiment is a module with ``NAME``, ``TITLE``, ``SCALES`` (``test``, ``quick``, ``paper``) and
``run(scale: str, out_dir: Path, seeds: int, data: str | None) -> list[Claim]``, which writes its
figure(s) as PNG and the tidy table behind them as CSV into ``out_dir`` (claims are written by the
caller). ``test`` takes seconds (the test suite), ``quick`` minutes on 2 CPU cores, ``paper`` the
published sizes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..errors import UsageError
from ..threads import LARGE_WORK, policy_threads, torch_threads
from .claims import Claim, write_claims

MODULES = {
    # name -> module under implicitrank.experiments
    "arora2019-completion": "arora2019_completion",
    "arora2019-observations": "arora2019_observations",
    "arora2019-dynamics": "arora2019_dynamics",
    "arora2019-depth-invariance": "arora2019_depth_invariance",
    "razin2020-norms": "razin2020_norms",
    "razin2020-tensor-completion": "razin2020_tensor_completion",
    "razin2021-incremental": "razin2021_incremental",
    "razin2021-natural": "razin2021_natural",
    "razin2022-dynamics": "razin2022_dynamics",
    "razin2022-locality": "razin2022_locality",
}
SCALE_NAMES = ("test", "quick", "paper")
# Wall seconds of each experiment at quick scale, one thread (2026-11-30, 2-core machine). They only set the order
# in which ``reproduce all`` hands experiments to its workers: longest first, so no core idles at the end.
QUICK_SECONDS = {
    "arora2019-completion": 130, "arora2019-observations": 170, "arora2019-dynamics": 13,
    "arora2019-depth-invariance": 40, "razin2020-norms": 117, "razin2020-tensor-completion": 67,
    "razin2021-incremental": 216, "razin2021-natural": 14, "razin2022-dynamics": 57, "razin2022-locality": 1498,
}


def experiment(name: str) -> ModuleType:
    """The module reproducing experiment ``name`` (a key of ``MODULES``), imported on first use."""
    if name not in MODULES:
        raise UsageError(f"experiment must be one of {sorted(MODULES)} or 'all', got {name!r}")
    return importlib.import_module(f"implicitrank.experiments.{MODULES[name]}")


def reproduce(name: str, scale: str, out_dir: str | Path, seeds: int | None = None,
              data: str | None = None, threads: int | None = None) -> list[Claim]:
    """Run one experiment at ``scale`` into ``out_dir`` and write its claims.json and claims.md.

    ``threads``: torch threads while it runs (None: the package's policy, ``threads.policy_threads``: one
    thread for the matrix and tensor runs at every scale, the free cores for the paper scale's networks)."""
    if scale not in SCALE_NAMES:
        raise UsageError(f"scale must be one of {SCALE_NAMES}, got {scale!r}")
    if seeds is not None and seeds < 1:
        raise UsageError(f"seeds must be >= 1, got {seeds}")
    module = experiment(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One torch thread at the small scales (their problems gain nothing from more); at paper scale the free cores,
    # never more, which the runs' own policy (run_batch) brings down to one for the small problems.
    with torch_threads(threads if threads is not None else policy_threads(LARGE_WORK if scale == "paper" else 0)):
        claims = module.run(scale, out_dir, seeds, data)
    write_claims(out_dir, name, scale, claims)
    return claims
