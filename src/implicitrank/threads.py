"""Thread counts: the package's thread policy, pinning a worker before torch or numpy load their pools,
capping torch for a while.

OpenMP, MKL and OpenBLAS read their thread counts from the environment when they load; a worker
that inherits the default (every core) on a machine it shares with other workers oversubscribes the
cores, and a small batched SVD or matmul then runs ~100× slower. So the package, not torch, chooses
(``policy_threads``): a small problem (the papers' 100×100 matrices) runs on one thread and
parallelizes across runs instead; a large one takes the free cores, never more; an explicit choice
(``--threads``, ``pin_threads``) overrides both. This module imports nothing heavy, so a process pool
can use ``pin_threads`` as its initializer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import UsageError

__all__ = ["available_cores", "busy_cores", "free_cores", "pin_threads", "policy_threads", "thread_environment",
           "torch_threads", "use_policy"]


# Multiply-adds of one step's largest product above which a second thread pays for its synchronization:
# a 100×100 matrix product (10^6) is too small to split, convolution networks (10^9 and more) are not.
LARGE_WORK = 10**8

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, which Slurm and taskset restrict.

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))``; where that is missing (not Linux), ``os.cpu_count()`` (1 if unknown).
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores(samples: int = 5, interval: float = 0.01) -> int:
    """Threads of other processes running now.

    The median over ``samples`` snapshots of the kernel's count of runnable threads (the fourth field of
    /proc/loadavg, which counts this reading thread too) less one. An instant count, unlike the load average,
    sees a busy process that started a second ago; the median of a few snapshots ignores a blip.

    Parameters
    ----------
    samples : int, optional
        Snapshots to take. Default 5.
    interval : float, optional
        Seconds between snapshots. Default 0.01.

    Returns
    -------
    int
        The median count, rounded, at least 0; 0 where /proc/loadavg cannot be read (not Linux).
    """
    import statistics
    import time

    counts = []
    for k in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return 0
        if k + 1 < samples:
            time.sleep(interval)
    return max(0, round(statistics.median(counts)))


def free_cores() -> int:
    """Cores this process may use that no other process keeps busy.

    Its affinity (``available_cores``), less the other runnable threads (``busy_cores``) beyond the cores
    outside its affinity.

    Returns
    -------
    int
        The free cores, at least 1.
    """
    cores = available_cores()
    outside = max(0, (os.cpu_count() or cores) - cores)
    return max(1, cores - max(0, busy_cores() - outside))


_explicit: int | None = None  # the thread count set by pin_threads (--threads), which overrides the policy


def policy_threads(work: float = 0.0) -> int:
    """Threads for a problem whose step does ``work`` multiply-adds.

    The explicit choice (``--threads``, ``pin_threads``) when made; else 1 below ``LARGE_WORK`` = 10^8 (more
    threads only add synchronization and, on a shared machine, spin against other processes); else the free
    cores (``free_cores``).

    Parameters
    ----------
    work : float, optional
        Multiply-adds of one step's largest product. Default 0.0 (a small problem).

    Returns
    -------
    int
        The thread count, at least 1.
    """
    if _explicit is not None:
        return _explicit
    return 1 if work < LARGE_WORK else free_cores()


def use_policy(work: float = 0.0) -> int:
    """Set this process's pools to ``policy_threads(work)`` without making it an explicit choice.

    Sets the environment for libraries not loaded yet, and torch's intra-op pool directly when torch is loaded.

    Parameters
    ----------
    work : float, optional
        Multiply-adds of one step's largest product (see ``policy_threads``). Default 0.0.

    Returns
    -------
    int
        The thread count set.

    Raises
    ------
    UsageError
        When an explicit choice below 1 was made (``thread_environment``).
    """
    threads = policy_threads(work)
    _set(threads)
    return threads


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that cap every BLAS/OpenMP pool at ``threads``.

    Parameters
    ----------
    threads : int
        The thread count, at least 1.

    Returns
    -------
    dict of str to str
        ``str(threads)`` for each of ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
        ``VECLIB_MAXIMUM_THREADS`` and ``NUMEXPR_NUM_THREADS``.

    Raises
    ------
    UsageError
        For a thread count below 1; no variable is returned then.
    """
    if threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    return {name: str(threads) for name in THREAD_VARIABLES}


def pin_threads(threads: int) -> None:
    """Cap this process at ``threads`` threads, overriding the policy from now on.

    For ``--threads`` and a worker pinned by its pool: sets the environment for libraries not loaded yet, and
    torch's intra-op pool directly when torch is already loaded.

    Parameters
    ----------
    threads : int
        The thread count, at least 1.

    Raises
    ------
    UsageError
        When ``threads`` < 1.
    """
    global _explicit
    _set(threads)
    _explicit = threads


def _set(threads: int) -> None:
    os.environ.update(thread_environment(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(count: int | None, *, explicit: bool = False) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, restoring the setting afterwards.

    The problems of the papers are small (at most 100×100 matrices): a second thread buys nothing, and
    on a shared machine a spinning thread pool made small steps 50–100× slower than one thread.

    Parameters
    ----------
    count : int or None
        Torch intra-op threads within the block; None leaves the setting as is.
    explicit : bool, optional
        The count is the user's choice (``--threads``): it overrides ``policy_threads`` within the block, so a
        run started inside keeps it instead of dropping to one thread. Default False.

    Yields
    ------
    None
        Control, once, with the threads set; the previous thread count and explicit choice are restored on exit.
    """
    global _explicit
    import torch

    previous, previous_explicit = torch.get_num_threads(), _explicit
    if count is not None:
        torch.set_num_threads(count)
        if explicit:
            _explicit = count
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        _explicit = previous_explicit
