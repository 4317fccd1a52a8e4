"""Helpers shared by the tests that start and kill real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

__all__ = ["ctrl_c_group", "group_alive", "wait_for"]


def group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` is still alive (signal 0 probes without killing)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, seconds: float = 120) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail when ``process`` ends first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"not ready within {seconds} s"
        time.sleep(0.05)


def ctrl_c_group(process: subprocess.Popen) -> str:
    """Send SIGINT to the process group of ``process`` (started with ``start_new_session=True``), as a terminal's
    Ctrl-C does, and return its stderr once it has ended (60 s at most; the group is killed if it has not)."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return err
