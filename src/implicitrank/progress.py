"""The one progress bar of every loop: tqdm on stderr, gone when done, or nothing when disabled."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, *, initial: int = 0, unit: str = "step", enabled: bool = True, **options: Any):
    """A ``tqdm`` bar counting ``unit`` up to ``total`` from ``initial`` (a resumed loop), on stderr and not left
    behind, or ``None`` when not ``enabled`` (tqdm is imported only when a bar is drawn)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True, **options)
