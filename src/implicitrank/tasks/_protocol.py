"""The one protocol behind every task: observations of a tensor of shape ``shape`` for B runs.

Completion (observed entries), sensing with dense measurements and sensing with rank-one measurement
tensors all expose the same few things, so training, measurements and baselines are written once
against them:

* ``shape``: the shape of the tensor being fit; ``values``: the observations, ``(B, M)``;
  ``target``: the ground truth ``(B, *shape)`` when known, else ``None``;
* ``batch`` (B), ``num_observations`` (M), ``dtype`` and ``device`` (those of ``values``);
* ``to(...)``: the task moved like a tensor (``to(device)``, ``to(dtype)``, ``to(device, dtype)``
  or keywords); floating-point tensors take the dtype, integer indices keep theirs;
* ``loss(model, params)``: the per-run loss ``(B,)``, the mean over observations of the squared
  error with no ½ (papers.md, common conventions).

Tasks with a closed-form gradient in the end-to-end tensor also have ``dense_loss_and_grad(w)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from ..errors import UsageError

T = TypeVar("T", bound="Observations")


@runtime_checkable
class Task(Protocol):
    """Observations of a tensor of shape ``shape`` for B runs (see the module docstring).

    The protocol that ``Completion`` and ``Sensing`` (and the tensor tasks) implement; the loss is the mean over
    observations of the squared error, with no ½.

    Attributes
    ----------
    shape : tuple of int
        Shape of the tensor being fit (without the run dimension).
    values : Tensor
        The observations, (B, M).
    target : Tensor or None
        The ground truth (B, *shape) when known, else None.
    """

    shape: tuple[int, ...]
    values: Tensor
    target: Tensor | None

    @property
    def batch(self) -> int:
        """B, the number of runs."""
        ...

    @property
    def num_observations(self) -> int:
        """M, the number of observations per run."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of ``values`` (and of every floating-point tensor of the task)."""
        ...

    @property
    def device(self) -> torch.device:
        """The device of ``values`` (and of every tensor of the task)."""
        ...

    def to(self, *args: Any, **kwargs: Any) -> Task:
        """The task on another device and/or floating-point dtype, called like ``torch.Tensor.to``.

        Parameters
        ----------
        *args : torch.device or str or torch.dtype
            A device, a dtype, or a device then a dtype.
        **kwargs : torch.device or str or torch.dtype
            ``device=`` and/or ``dtype=``.

        Returns
        -------
        Task
            A task of the same type; floating-point tensors take the dtype, integer indices keep theirs.
        """
        ...

    def loss(self, model: Any, params: list[Tensor]) -> Tensor:
        """The per-run loss: the mean over observations of the squared error, no ½.

        Parameters
        ----------
        model : Factorization
            The model whose predictions are compared with ``values``.
        params : list of Tensor
            The model's parameters, with a leading run dimension B.

        Returns
        -------
        Tensor
            The loss, (B,).
        """
        ...


class Observations:
    """What every task dataclass shares: its sizes, dtype and device read off ``values`` (B, M), and ``to``."""

    values: Tensor

    @property
    def batch(self) -> int:
        """B, the number of runs."""
        return self.values.shape[0]

    @property
    def num_observations(self) -> int:
        """M, the number of observations per run."""
        return self.values.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def runs(self: T, index: Tensor) -> T:
        """The task of the runs at ``index`` (a (B',) integer tensor), in that order: every per-run field
        (leading dimension B, see ``run_fields``) is indexed, shared fields are kept.

        Parameters
        ----------
        index : Tensor
            (B',) positions of the runs to keep, on the task's device.

        Returns
        -------
        Observations
            A task of the same type with B' runs.
        """
        changes = {name: getattr(self, name)[index] for name in self.run_fields()}
        return dataclasses.replace(self, **changes)

    def run_fields(self) -> tuple[str, ...]:
        """The names of the fields that hold one slice per run: ``values`` and, when given, ``target``.

        Returns
        -------
        tuple of str
            Field names whose tensors have the runs along their first dimension.
        """
        return ("values",) + (("target",) if getattr(self, "target", None) is not None else ())

    def to(self: T, *args: Any, **kwargs: Any) -> T:
        """The task on another device and/or floating-point dtype, called like ``torch.Tensor.to``.

        Examples
        --------
        >>> import torch
        >>> from implicitrank.tasks import Completion
        >>> task = Completion((2, 2), torch.tensor([[0, 1]]), torch.tensor([[1.0]]))
        >>> task.to(torch.float64).dtype, task.to("cpu", torch.float64).indices.dtype
        (torch.float64, torch.int64)
        """
        device, dtype = parse_to(*args, **kwargs)
        moved = {f.name: _move(getattr(self, f.name), device, dtype) for f in dataclasses.fields(self) if f.init}
        return dataclasses.replace(self, **moved)


def parse_to(*args: Any, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> tuple[torch.device | None, torch.dtype | None]:
    """The device and dtype of a ``to(...)`` call: ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or keywords.

    Parameters
    ----------
    *args : torch.device or str or torch.dtype
        At most a device and a dtype, in any order.
    device : torch.device or str, optional
        The device by keyword.
    dtype : torch.dtype, optional
        The dtype by keyword; must be floating point.

    Returns
    -------
    tuple of (torch.device or None, torch.dtype or None)
        What is not given is None (unchanged).

    Raises
    ------
    TypeError
        On more than two positional arguments, a device or dtype given twice, or an argument of another type.
    UsageError
        When the dtype is not floating point.
    """
    if len(args) > 2:
        raise TypeError(f"to() takes at most a device and a dtype, got {len(args)} positional arguments")
    for arg in args:
        if isinstance(arg, torch.dtype):
            if dtype is not None:
                raise TypeError("to() got the dtype twice")
            dtype = arg
        elif isinstance(arg, (str, torch.device)):
            if device is not None:
                raise TypeError("to() got the device twice")
            device = arg
        else:
            raise TypeError(f"to() takes a device (str or torch.device) and/or a torch.dtype, got {arg!r}")
    if dtype is not None and not dtype.is_floating_point:
        raise UsageError(f"dtype must be a floating-point torch.dtype, got {dtype}")
    return (None if device is None else torch.device(device)), dtype


def _move(value: Any, device: torch.device | None, dtype: torch.dtype | None) -> Any:
    if isinstance(value, Tensor):
        return value.to(device=device, dtype=dtype if value.is_floating_point() else None)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value):
        return type(value)(_move(v, device, dtype) for v in value)
    return value


def check_task_matches(model: Any, task: Task, params: list[Tensor]) -> None:
    """Refuse, before the first step, a task that does not fit the model and parameters.

    A task whose shape differs from the model's, or whose dtype, device or number of runs differs from the
    parameters', would otherwise fail deep inside a gradient, or silently compute in mixed precision.

    Parameters
    ----------
    model : Factorization
        The model; its ``shape`` (when it has one) must equal the task's.
    task : Task
        The task.
    params : list of Tensor
        The parameters; ``params[0]`` gives the dtype, device and number of runs B.

    Raises
    ------
    UsageError
        On a shape, dtype, device or run-count mismatch (naming ``task.to(...)`` to fix a dtype or device), or
        parameters shaped for another model (a factorization of another depth or width).
    """
    model_shape = getattr(model, "shape", None)
    if model_shape is not None and tuple(task.shape) != tuple(model_shape):
        raise UsageError(f"task shape {tuple(task.shape)} does not match model shape {tuple(model_shape)}")
    if dataclasses.is_dataclass(model) and "gaussian" in getattr(model, "inits", ()):
        # the shapes of one run's parameters, drawn by the model itself (gaussian: every factorization has it and it
        # needs nothing of the widths, which another init may)
        probe = dataclasses.replace(model, init_method="gaussian")
        expected = [tuple(p.shape[1:]) for p in probe.init(1, 1.0, [torch.Generator().manual_seed(0)],
                                                           dtype=torch.float64)]
        got = [tuple(p.shape[1:]) for p in params]
        if got != expected:
            raise UsageError(f"the parameters do not fit the model: {len(got)} tensors of shapes {got} per run, the "
                             f"model's are {len(expected)} of shapes {expected} (parameters of another depth or "
                             "width?)")
    reference = params[0]
    if task.dtype != reference.dtype or task.device != reference.device:
        raise UsageError(f"task is {task.dtype} on {task.device} but the parameters are {reference.dtype} on "
                         f"{reference.device}; move the task with task.to({str(reference.device)!r}, "
                         f"{reference.dtype})")
    if task.batch != reference.shape[0]:
        raise UsageError(f"task has {task.batch} runs but the parameters have {reference.shape[0]}")
