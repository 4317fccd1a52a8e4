"""The ``--device`` values every command and configuration takes: ``auto`` (CUDA when present, else the CPU),
``cpu``, ``cuda`` and ``cuda:N``, checked once here so that a device that is not there is a one-line error, not
torch's assertion from inside the first transfer."""

from __future__ import annotations

import re

import torch

from .errors import UsageError

__all__ = ["DEVICES", "check_device", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
_FORM = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device: str) -> None:
    """Refuse a device string of another form than ``DEVICES`` (whether that device is present is not asked).

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N a device index).

    Raises
    ------
    UsageError
        Naming ``device`` and the allowed forms.
    """
    if not isinstance(device, str) or _FORM.fullmatch(device) is None:
        raise UsageError(f"device must be one of {list(DEVICES)} (N a CUDA device index), got {device!r}")


def resolve_device(device: str) -> torch.device:
    """The torch device that ``device`` names on this machine.

    Parameters
    ----------
    device : str
        ``auto`` (CUDA device 0 when CUDA is present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    torch.device
        The device to compute on.

    Raises
    ------
    UsageError
        When the form is wrong (``check_device``), CUDA is asked for and none is available, or ``cuda:N`` names
        an index beyond the devices present.
    """
    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device: {device!r} was asked for but no CUDA device is available; use 'auto' or 'cpu'")
        count, chosen = torch.cuda.device_count(), torch.device(device)
        if chosen.index is not None and chosen.index >= count:
            raise UsageError(f"device: {device!r} names CUDA device {chosen.index}, but this machine has {count} "
                             f"(cuda:0..cuda:{count - 1})")
        return chosen
    return torch.device(device)
