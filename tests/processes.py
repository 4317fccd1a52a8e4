"""Helpers shared by the tests that start and kill real processes."""

from __future__ import annotations

import os

__all__ = ["group_alive"]


def group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` is still alive (signal 0 probes without killing)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
