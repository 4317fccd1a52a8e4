"""Worker processes that die with their parent.

A pool worker (``sweep --executor local``, ``reproduce all``) blocks on its task queue, whose pipe it holds
both ends of, so it never sees its parent go: after a ``kill -9`` of the parent it would run (and hold its
runs' locks) forever. ``start_worker`` makes it exit instead: on Linux the kernel sends it SIGTERM when the
parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also checks the parent's pid every
``POLL_SECONDS`` and ends the worker once it has changed (the worker was re-parented).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

from .threads import pin_threads

__all__ = ["exit_with_parent", "start_worker"]


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 1.0


def exit_with_parent(parent: int) -> None:
    """End this process when the process ``parent`` (its parent) dies, however it dies.

    On Linux the kernel sends SIGTERM at the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon
    thread checks ``os.getppid()`` every ``POLL_SECONDS`` and exits (status 1) once it differs from ``parent``.
    Exits at once if the parent is already gone.

    Parameters
    ----------
    parent : int
        The pid of this process's parent, read in the parent (``os.getpid()`` there) before the child started.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above ran
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_worker(threads: int, parent: int) -> None:
    """A pool worker's initializer: die with ``parent``, then cap torch/BLAS at ``threads`` threads.

    Parameters
    ----------
    threads : int
        The torch/BLAS threads of the worker (``pin_threads``).
    parent : int
        The pid of the pool's owner (``exit_with_parent``).
    """
    exit_with_parent(parent)
    pin_threads(threads)
