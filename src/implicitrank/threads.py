"""Thread counts: pin a worker process before torch or numpy load their thread pools, or cap torch for a while.

OpenMP, MKL and OpenBLAS read their thread counts from the environment when they load; a worker
that inherits the default (every core) on a machine it shares with other workers oversubscribes the
cores, and a small batched SVD or matmul then runs ~100× slower. This module imports nothing heavy,
so a process pool can use ``pin_threads`` as its initializer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import UsageError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which Slurm and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that cap every BLAS/OpenMP pool at ``threads``."""
    if threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    return {name: str(threads) for name in THREAD_VARIABLES}


def pin_threads(threads: int) -> None:
    """Cap this process at ``threads`` threads: the environment for libraries not loaded yet, and
    torch's intra-op pool directly when torch is already loaded."""
    os.environ.update(thread_environment(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch intra-op threads (None: leave as is), restoring the setting afterwards.

    The problems of the papers are small (at most 100×100 matrices): a second thread buys nothing, and
    on a shared machine a spinning thread pool made small steps 50–100× slower than one thread.
    """
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
