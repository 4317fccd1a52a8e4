"""Ctrl-C (SIGINT) held off for blocks that must finish whole, then acted on: a batch's checkpoints, and torch's
import.

An interrupt inside ``import torch`` can be lost: a SIGINT that arrives while torch's import loads numpy is dropped
there, the import finishes and the program goes on (measured by sending it from an import hook at numpy; sent
0.53 s and 0.65 s into ``python -c "import torch; ..."`` it did the same), and one sent at 0.05 s came out as an
unrelated ``RuntimeError``. So a Ctrl-C in the first second of ``implicitrank mf`` trained on as if nothing had
been pressed. The commands import torch through
``import_torch``, which holds the interrupt until the import is done and then raises it.
This module imports nothing heavy.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["import_torch", "interrupts_deferred"]


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold off Ctrl-C (SIGINT) for the block, then raise it: files that belong together (a batch's checkpoints) are
    written whole. A no-op outside the main thread, where signal handlers cannot be set.

    Yields
    ------
    None
        The block runs with SIGINT recorded, not raised; ``KeyboardInterrupt`` follows the block if one came.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def import_torch() -> ModuleType:
    """Import torch with Ctrl-C held off until the import is done, then raised (see the module docstring).

    Returns
    -------
    module
        ``torch``.

    Raises
    ------
    KeyboardInterrupt
        After the import, when Ctrl-C came during it.
    """
    with interrupts_deferred():
        import torch
    return torch
