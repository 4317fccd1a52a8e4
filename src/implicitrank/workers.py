"""Worker processes that die with their parent.

A pool worker (``sweep --executor local``, ``reproduce all``) blocks on its task queue, whose pipe it holds
both ends of, so it never sees its parent go: after a ``kill -9`` of the parent it would run (and hold its
runs' locks) forever. ``start_worker`` makes it exit instead: on Linux the kernel sends it SIGTERM when the
parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also checks the parent's pid every
``POLL_SECONDS`` and ends the worker once it has changed (the worker was re-parented).

Ctrl-C at a terminal reaches the pool's owner and every worker. A worker stops the task it runs (a training loop
after saving its step) and refuses the tasks already handed to it (``run_task``): before, each worker took the next
queued task and the pool's exit waited for all of them (``reproduce all`` ran to its end after Ctrl-C, a sweep
with queued jobs never ended), and an idle worker printed a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .interrupts import ctrl_c_seen, note_ctrl_c
from .threads import pin_threads

__all__ = ["exit_with_parent", "run_task", "start_worker"]

T = TypeVar("T")
_BUSY: list[bool] = []  # one entry while the worker runs a task (``run_task``)


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
    """A pool worker's initializer: die with ``parent``, on Ctrl-C stop its task and take no other (``run_task``),
    then cap torch/BLAS at ``threads`` threads.

    Parameters
    ----------
    threads : int
        The torch/BLAS threads of the worker (``pin_threads``).
    parent : int
        The pid of the pool's owner (``exit_with_parent``).
    """
    exit_with_parent(parent)
    signal.signal(signal.SIGINT, _on_ctrl_c)
    pin_threads(threads)


def _on_ctrl_c(number: int, frame: object) -> None:
    """A pool worker's Ctrl-C (a terminal sends it to the whole process group): the task it runs is interrupted
    (a training loop holds it to save its step first: ``interrupts.interrupts_between_steps``), and the worker
    starts no further task (``run_task``), so that the pool's owner, which got the same Ctrl-C and cancels what it
    can, is not kept waiting by jobs already handed to the pool. An idle worker has nothing to stop: raising in its
    wait for work printed a KeyboardInterrupt traceback."""
    note_ctrl_c()
    if _BUSY:
        raise KeyboardInterrupt


def run_task(task: Callable[..., T], *args: object) -> T:
    """``task(*args)`` in a pool worker (submit this, with the task): refused with ``KeyboardInterrupt`` once a
    Ctrl-C reached the worker (``start_worker``).

    Parameters
    ----------
    task : callable
        The job.
    *args
        Its arguments.

    Returns
    -------
    object
        What ``task`` returns.

    Raises
    ------
    KeyboardInterrupt
        When Ctrl-C came before the task started, or (outside a training loop, which saves its step first) while it ran.
    """
    if ctrl_c_seen():
        raise KeyboardInterrupt
    _BUSY.append(True)
    try:
        return task(*args)
    finally:
        _BUSY.pop()
