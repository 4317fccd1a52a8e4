"""The one progress bar of every loop: tqdm on stderr, gone when done, or nothing when disabled."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, *, initial: int = 0, unit: str = "step", enabled: bool = True, **options: Any):
    """A ``tqdm`` bar counting ``unit`` up to ``total`` from ``initial``, on stderr and not left behind.

    tqdm is imported only when a bar is drawn.

    Parameters
    ----------
    total : int
        The count at which the work is done.
    initial : int, optional
        The count to start from (a resumed loop). Default 0.
    unit : str, optional
        What is counted, shown after the rate. Default ``"step"``.
    enabled : bool, optional
        Draw a bar; when False nothing is imported and None is returned. Default True.
    **options : Any
        Further keyword arguments for ``tqdm`` (e.g. ``desc``).

    Returns
    -------
    tqdm.tqdm or None
        The bar (``file=sys.stderr``, ``leave=False``, ``dynamic_ncols=True``), or None when not ``enabled``.
    """
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True, **options)
