"""The one progress bar of every loop: tqdm on stderr, gone when done, or nothing when disabled."""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled(enabled: bool = True) -> bool:
    """Whether to draw a bar: ``enabled`` and no ``TQDM_DISABLE`` in the environment now.

    tqdm reads ``TQDM_DISABLE`` once, when it is first imported, and importing torch imports it: a variable set
    later (``reproduce --no-progress``, and its worker processes) went unseen and the bars were drawn. Every bar
    of the package asks here, when it is made.

    Parameters
    ----------
    enabled : bool, optional
        What the caller asks for. Default True.

    Returns
    -------
    bool
        False when ``enabled`` is, or ``TQDM_DISABLE`` is set to anything but ``""``, ``0``, ``false`` or ``no``.
    """
    return enabled and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false", "no")

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
        Draw a bar; when False (or ``TQDM_DISABLE`` is set: ``progress_enabled``) nothing is imported and None is
        returned. Default True.
    **options : Any
        Further keyword arguments for ``tqdm`` (e.g. ``desc``).

    Returns
    -------
    tqdm.tqdm or None
        The bar (``file=sys.stderr``, ``leave=False``, ``dynamic_ncols=True``), or None when not ``enabled``.
    """
    if not progress_enabled(enabled):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=False, **options)
