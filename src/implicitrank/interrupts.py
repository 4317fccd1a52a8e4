"""Ctrl-C (SIGINT) held off for blocks that must finish whole, then acted on: a batch's checkpoints, torch's
import, and a training step (a loop that can save its state stops between two steps, after saving it).

An interrupt inside ``import torch`` can be lost: a SIGINT that arrives while torch's import loads numpy is dropped
there, the import finishes and the program goes on (measured by sending it from an import hook at numpy; sent
0.53 s and 0.65 s into ``python -c "import torch; ..."`` it did the same), and one sent at 0.05 s came out as an
unrelated ``RuntimeError``. So a Ctrl-C in the first second of ``implicitrank mf`` trained on as if nothing had
been pressed. The commands import torch through
``import_torch``, which holds the interrupt until the import is done and then raises it.
This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["ctrl_c_seen", "import_torch", "import_whole", "interrupts_between_steps", "interrupts_deferred",
           "note_ctrl_c"]

_SEEN: list[bool] = []  # one entry once a Ctrl-C reached this process (``note_ctrl_c``)


def note_ctrl_c() -> None:
    """Remember that Ctrl-C reached this process (a pool worker then starts no further task: ``workers``)."""
    _SEEN[:] = [True]


def ctrl_c_seen() -> bool:
    """Whether Ctrl-C reached this process while a handler of this module or of ``workers`` held SIGINT.

    Returns
    -------
    bool
        True once ``note_ctrl_c`` was called.
    """
    return bool(_SEEN)


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

    def hold(number: int, frame: object) -> None:
        note_ctrl_c()  # a pool worker saving its checkpoints then starts no further task either
        received.append(number)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


@contextmanager
def interrupts_between_steps() -> Iterator[Callable[[], bool]]:
    """Hold a first Ctrl-C (SIGINT) until the loop asks for it, so that a training loop can stop between two steps
    and save its state first (a KeyboardInterrupt raised inside a step leaves the parameters half updated, and the
    work since the last checkpoint was lost); a second Ctrl-C raises at once. A no-op outside the main thread, and
    where SIGINT is ignored (a process started in the background keeps ignoring it).

    Yields
    ------
    callable
        ``interrupted()``: whether Ctrl-C came since the block began. The loop raises ``KeyboardInterrupt`` itself.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield lambda: False
        return
    received: list[int] = []

    def hold_the_first(number: int, frame: object) -> None:
        note_ctrl_c()
        if received:
            raise KeyboardInterrupt
        received.append(number)

    previous = signal.signal(signal.SIGINT, hold_the_first)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


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
    return import_whole("torch")


def import_whole(name: str) -> ModuleType:
    """Import the module ``name`` with Ctrl-C held off until the import is done, then raised: a library that loads
    numpy or scipy (torch, scikit-learn) can lose an interrupt or end the process by SIGINT after ours has reported
    it (``layers demo`` interrupted while scikit-learn loaded printed its message and exited -2, not 130).

    Parameters
    ----------
    name : str
        The module, e.g. ``"sklearn.datasets"``.

    Returns
    -------
    module
        The module.

    Raises
    ------
    KeyboardInterrupt
        After the import, when Ctrl-C came during it.
    """
    with interrupts_deferred():
        return importlib.import_module(name)
