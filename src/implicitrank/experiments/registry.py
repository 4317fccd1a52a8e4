"""The reproducible experiments, by name.

Each experiment is a module with ``NAME``, ``TITLE``, ``SCALES`` (``test``, ``quick``, ``paper``) and
``run(scale: str, out_dir: Path, seeds: int | Sequence[int] | None, data: str | None) -> list[Claim]`` (``seeds``:
a count, the seeds themselves, or None for the scale's own; ``claims.seed_list``), which writes its
figure(s) as PNG and the tidy table behind them as CSV into ``out_dir`` (claims are written by the
caller). ``test`` takes seconds (the test suite), ``quick`` minutes on 2 CPU cores, ``paper`` the
published sizes.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .. import provenance
from ..errors import MissingInputError, UsageError
from ..threads import LARGE_WORK, policy_threads, torch_threads
from .claims import Claim, seed_list, write_claims

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
# CPU seconds of each experiment at quick scale, one thread (2026-12-02, at the quick scale's seeds: 3, or 2 for
# norms and incremental; locality: its one-seed time, ≈ 900 s, times its 3 seeds). Set-ups changed since (completion's
# inits, Pathfinder's generator: 12-25 CPU-minutes a seed), which moves no experiment past another; depth-invariance's
# projected gradient (2026-12-04) made it 1.5x slower, 133 s against 89 s one after the other, and
# razin2022-dynamics' quick HT panel (1024 entries from init 0.04) took it to 67 s. They only set the order in which
# ``reproduce all`` hands experiments to its workers: longest first, so no core idles at the end.
QUICK_SECONDS = {
    "arora2019-completion": 112, "arora2019-observations": 73, "arora2019-dynamics": 17,
    "arora2019-depth-invariance": 124, "razin2020-norms": 67, "razin2020-tensor-completion": 52,
    "razin2021-incremental": 494, "razin2021-natural": 25, "razin2022-dynamics": 67, "razin2022-locality": 2700,
}


# The experiments that read ``--data``, and what they read; the others refuse it.
USES_DATA = {
    "arora2019-dynamics": "a MovieLens 100K u.data file",
    "razin2021-natural": "a directory of MNIST / Fashion-MNIST IDX files",
    "razin2022-locality": "the CIFAR-10 python batches' directory (paper scale)",
}


def check_data(name: str, data: str | None) -> None:
    """Refuse ``data`` for an experiment that does not read it, or data it cannot read, before anything runs."""
    if data is None:
        return
    if name not in USES_DATA:
        uses = "; ".join(f"{n}: {what}" for n, what in USES_DATA.items())
        raise UsageError(f"--data: {name} uses no data; leave --data out (experiments that read it: {uses})")
    if name == "arora2019-dynamics":
        experiment(name).check_movielens(data)
    elif name == "razin2021-natural":
        experiment(name).find_idx_sets(data)
    elif not Path(data).is_dir():
        raise MissingInputError(f"data: {data!r} is not a directory; {name} reads {USES_DATA[name]}")


def experiment(name: str) -> ModuleType:
    """The module reproducing experiment ``name``, imported on first use.

    Parameters
    ----------
    name : str
        A key of ``MODULES``, e.g. ``"arora2019-completion"``.

    Returns
    -------
    ModuleType
        The module, with ``NAME``, ``TITLE``, ``SCALES`` and ``run``.

    Raises
    ------
    UsageError
        When ``name`` is not a key of ``MODULES``.
    """
    if name not in MODULES:
        raise UsageError(f"experiment must be one of {sorted(MODULES)} or 'all', got {name!r}")
    return importlib.import_module(f"implicitrank.experiments.{MODULES[name]}")


def reproduce(name: str, scale: str, out_dir: str | Path, seeds: int | Sequence[int] | None = None,
              data: str | None = None, threads: int | None = None) -> list[Claim]:
    """Run one experiment at ``scale`` into ``out_dir`` and write its claims.json and claims.md (with provenance).

    The experiment writes its figure(s) as PNG and the table behind them as CSV into ``out_dir``.

    Parameters
    ----------
    name : str
        The experiment, a key of ``MODULES``.
    scale : str
        ``test`` (seconds), ``quick`` (minutes on 2 CPU cores) or ``paper`` (the published sizes).
    out_dir : str or Path
        Where it writes; created when missing.
    seeds : int, sequence of int or None, optional
        A count (``3``: seeds 0, 1, 2) or the seeds themselves (``(0, 5)``). Default None: the scale's own.
    data : str or None, optional
        The data file or directory of an experiment that reads one (see ``USES_DATA``). Default None.
    threads : int or None, optional
        Torch threads while it runs, an explicit choice. Default None: the package's policy
        (``threads.policy_threads``: one thread at the test and quick scales, the free cores at the paper scale,
        which the runs' own policy brings down to one for the small problems).

    Returns
    -------
    list of Claim
        The experiment's claims, as written to ``claims.json``.

    Raises
    ------
    UsageError
        For an unknown experiment or scale, unacceptable seeds, or data an experiment that reads data cannot use
        (``check_data``).
    """
    if scale not in SCALE_NAMES:
        raise UsageError(f"scale must be one of {SCALE_NAMES}, got {scale!r}")
    if seeds is not None:
        seeds = seed_list(seeds, 1)
    module = experiment(name)
    if name in USES_DATA:  # an experiment that reads no data ignores any it is given
        check_data(name, data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = provenance.now()
    # One torch thread at the small scales (their problems gain nothing from more); at paper scale the free cores,
    # never more, which the runs' own policy (run_batch) brings down to one for the small problems.
    chosen = threads if threads is not None else policy_threads(LARGE_WORK if scale == "paper" else 0)
    with torch_threads(chosen, explicit=threads is not None):
        claims = module.run(scale, out_dir, seeds, data)
    used = sorted({s for c in claims for s in c.seeds})
    write_claims(out_dir, name, scale, claims, seeds=used, started=started)
    return claims
