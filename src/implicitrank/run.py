"""One configuration in, one run directory out: the layer the command line and sweeps stand on.

``RunConfig`` describes a single run. ``run_batch(configs, run_dirs)`` trains runs that differ only
in per-run values (seed, data seed, init scale, learning rate) as one batched tensor program, writes
each run's directory (see ``results``) and returns their summaries. Models are looked up in
``MODELS`` (name -> ``ModelEntry``): every factorization of the analogy table plugs in there, so the
rest — tasks, training, measurements, results, plots, the command line — is written once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import operator
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import provenance, results
from .devices import check_device, resolve_device
from .errors import UsageError
from .factorizations import (
    CPFactorization,
    Factorization,
    HierarchicalFactorization,
    MatrixFactorization,
    generators,
    loss_and_grad,
    mode_sizes,
)
from .factorizations.mode_tree import tree_from_spec
from .flow import METHODS as FLOW_METHODS
from .flow import integrate
from .interrupts import interrupts_deferred
from .measure import effective_rank, relative_error, scaled_norm
from .optim import OPTIMIZERS, make_optimizer
from .tasks import (
    Completion,
    complete_from_target,
    gaussian_sensing,
    load_npz_completion,
    low_rank_matrix,
    movielens_completion,
)
from .tasks.files import data_format
from .tasks.hierarchical_truth import low_hierarchical_rank_tensor
from .tasks.tensors import low_rank_tensor
from .tensorboard import event_dir, write_events
from .tensorboard import require as require_tensorboard
from .threads import policy_threads, torch_threads
from .train import TrainConfig, TrainState, select_runs, train

__all__ = ["DTYPES", "METHODS", "TASKS", "BatchResult", "RunConfig", "build_task", "device_of", "make_measure",
           "run_batch", "train_configured"]

METHODS = (*OPTIMIZERS, "gradient-flow")
TASKS = ("completion", "sensing")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
PER_RUN_FIELDS = ("seed", "data_seed", "init_scale", "lr")
ADDED_FIELDS = {"flow_method": "dopri5"}  # field -> default, left out of run ids at that default (RunConfig.run_id)
MAX_SEED = 2**63 - 1
DENSE_LIMIT = 10_000_000  # largest end-to-end tensor (entries) formed for measurements
# the metrics a run's summary takes from its last record
FINAL_METRICS = ("reconstruction_error", "reconstruction_error_squared", "unobserved_error", "effective_rank",
                 "nuclear_norm", "frobenius_norm", "spectral_norm", "test_mse", "time")


@dataclass(frozen=True)
class RunConfig:
    """A single run: model, task, optimizer, stopping and recording (validated on construction).

    Loss: the mean over observations of the squared error, with no ½ (papers.md, conventions).
    ``init_scale`` is, for every model, the root-mean-square Frobenius norm of the end-to-end tensor at init,
    sqrt(E||W(0) − E W(0)||_F²) (see ``implicitrank.factorizations``; ``init`` one of the model's ``inits``).
    ``seed`` seeds the initialization, ``data_seed`` the observation set, ``truth_seed`` the ground truth.
    The defaults are the matrix paper's completion set-up (a 100×100 rank-5 ground truth with ||W*||_F = 100,
    2000 observed entries, global RMSprop with eps 1e-4, stop at train loss 1e-6), with a larger lr (1e-2) and
    fewer steps (1e5).

    Attributes
    ----------
    model : str
        ``matrix`` (deep matrix factorization), ``cp`` or ``ht`` (hierarchical, over ``tree``). Default
        ``"matrix"``.
    task : str
        ``completion`` or ``sensing`` (Gaussian measurements). Default ``"completion"``.
    shape : tuple of int
        Mode sizes of the end-to-end tensor; (rows, cols) for ``matrix``. Default (100, 100).
    rank : int
        Rank of the generated ground truth: its matrix rank (``matrix``, in [1, min(shape)]), CP rank (``cp``),
        or every internal node's width R_ν (``ht``); for ``cp`` and ``ht`` in [1, Π D_n / max D_n], the most a
        tensor's CP rank can be (a sum of its slices along the largest mode), which bounds every matricization
        rank too. Unused with ``data``. Default 5.
    num_observations : int
        Observed entries (completion) or measurements (sensing); for MovieLens ``data``, the ratings sampled for
        training. At most the number of entries for generated completion. Default 2000.
    target_norm : float or None
        Frobenius norm of the ground truth; None: sqrt(number of entries) (entries of RMS 1). Default None. The
        observed values must not be so small that their squares underflow ``dtype`` (``run_batch`` refuses them).
    data : str or None
        A ``.npz`` (``matrix``, ``mask``) or MovieLens ``u.data`` file holding a matrix completion problem instead
        of a generated one (``model="matrix"``, ``task="completion"`` only). Default None.
    depth : int
        Number of factors N of the matrix factorization (1: gradient descent on W itself). Default 3.
    width : int or None
        Matrix: every hidden width (None: min(rows, cols)); ``ht``: every internal node's width R_ν (None: the
        factorization's default). Default None.
    components : int or None
        CP: the number of components R (None: the product of all mode sizes but the largest); ``ht``: the cap on
        the default widths. Default None.
    tree : str
        The mode tree of ``ht``: ``balanced``, ``opposite``, ``windows[:HxW[:K]]`` or a nested tuple such as
        ``((0,1),(2,3))`` (``tree_from_spec``). Default ``"balanced"``.
    init : str
        Initialization method, one of the model's ``inits`` (``gaussian``, ``balanced``; matrix also
        ``identity``, ``orthogonal``). Default ``"gaussian"``.
    init_scale : float
        Root-mean-square Frobenius norm of W(0), > 0 (per run). Default 1e-3.
    init_mean : float
        Mean of the CP / HT factor entries at init. Default 0.0.
    optimizer : str
        One of ``METHODS``: an optimizer of ``implicitrank.optim`` or ``gradient-flow``. Default
        ``"global-rmsprop"``.
    lr : float
        Learning rate, > 0 (per run; unused by ``gradient-flow``). Default 1e-2.
    eps : float
        Global RMSprop's eps, > 0 (used by ``global-rmsprop`` only). Default 1e-4.
    rtol : float
        Relative tolerance of ``gradient-flow``'s adaptive Runge–Kutta steps, > 0. Default 1e-4.
    atol : float
        Absolute tolerance of ``gradient-flow``, > 0. Default 1e-9.
    flow_method : str
        The integrator of ``gradient-flow``, one of ``flow.METHODS``: ``dopri5`` (Dormand–Prince 5(4)),
        ``bosh3`` (Bogacki–Shampine 3(2)) or ``rkc`` (Runge–Kutta–Chebyshev, for the stiff phase after take-off).
        Default ``"dopri5"``.
    max_steps : int
        At most this many updates, >= 0. Default 100_000.
    loss_threshold : float
        A run converges (and stops) once its train loss is <= this. Default 1e-6.
    seed : int
        Seed of the initialization, in [0, 2**63 − 1] (per run). Default 0.
    data_seed : int
        Seed of the observation set or measurements (per run for generated completion). Default 0.
    truth_seed : int
        Seed of the generated ground truth. Default 0.
    dtype : str
        ``float32`` or ``float64``. Default ``"float32"``.
    device : str
        ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda[:N]``. Default ``"auto"``.
    record_every : int
        Record metrics every k steps (0: off). Default 0.
    record_per_decade : int
        Also record at about this many log-spaced steps per decade (0: off). Default 20.
    checkpoint_every : int
        Write each run's ``checkpoint.pt`` every k steps (0: never). Default 2000.
    top : int
        How many of the largest tracked quantities are recorded, >= 1. Default 10.

    Raises
    ------
    UsageError
        On construction, for a value out of its range or choices, or a combination the runs cannot take (e.g.
        ``data`` with ``sensing`` or a tensor model).

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (completion of a 100×100 rank-5 matrix from 2000 entries, the set-up the defaults follow).
    """

    model: str = "matrix"
    task: str = "completion"
    shape: tuple[int, ...] = (100, 100)
    rank: int = 5
    num_observations: int = 2000
    target_norm: float | None = None
    data: str | None = None
    depth: int = 3
    width: int | None = None
    components: int | None = None
    tree: str = "balanced"
    init: str = "gaussian"
    init_scale: float = 1e-3
    init_mean: float = 0.0
    optimizer: str = "global-rmsprop"
    lr: float = 1e-2
    eps: float = 1e-4
    rtol: float = 1e-4
    atol: float = 1e-9
    flow_method: str = "dopri5"
    max_steps: int = 100_000
    loss_threshold: float = 1e-6
    seed: int = 0
    data_seed: int = 0
    truth_seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    record_every: int = 0
    record_per_decade: int = 20
    checkpoint_every: int = 2000
    top: int = 10

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "shape", mode_sizes(self.shape))
        except ValueError as err:
            raise UsageError(str(err)) from None
        self._check_types()
        _choice("model", self.model, tuple(MODELS))
        _choice("init", self.init, MODELS[self.model].inits)
        _choice("task", self.task, TASKS)
        _choice("optimizer", self.optimizer, METHODS)
        _choice("flow_method", self.flow_method, FLOW_METHODS)
        _choice("dtype", self.dtype, tuple(DTYPES))
        check_device(self.device)
        if not self.shape or any(s < 1 for s in self.shape):
            raise UsageError(f"shape must be positive mode sizes, got {self.shape}")
        if self.model == "matrix" and len(self.shape) != 2:
            raise UsageError(f"shape must be (rows, cols) for model 'matrix', got {self.shape}")
        numel = math.prod(self.shape)
        if self.data is None:
            limit = min(self.shape) if self.model == "matrix" else numel // max(self.shape)  # max CP rank bound
            if not 1 <= self.rank <= limit:
                why = "" if self.model == "matrix" else (f" ({numel} entries / the largest mode {max(self.shape)}: the "
                                                          "most a tensor's CP rank can be)")
                raise UsageError(f"rank must be in [1, {limit}] for shape {self.shape}{why}, got {self.rank}")
            if self.task == "completion" and not 1 <= self.num_observations <= numel:
                raise UsageError(f"num_observations must be in [1, {numel}] (the number of entries), "
                                 f"got {self.num_observations}")
        if self.num_observations < 1:
            raise UsageError(f"num_observations must be >= 1, got {self.num_observations}")
        for name in ("lr", "init_scale", "eps", "rtol", "atol"):
            if not 0 < getattr(self, name) < math.inf:
                raise UsageError(f"{name} must be positive (finite and > 0), got {getattr(self, name)}")
        if not self.rtol < 1:  # a relative error of 100% or more accepts any step
            raise UsageError(f"rtol is relative and must be in (0, 1), got {self.rtol}")
        finfo = torch.finfo(DTYPES[self.dtype])
        # numbers the run holds in its dtype: outside its range they would be 0 or inf there (lr 1e-50 is 0 in
        # float32, eps 1e39 inf: a run that does nothing), or lose their digits
        for name in ("init_scale", "lr", "eps", "target_norm"):
            value = getattr(self, name)
            if value is not None and not finfo.tiny <= value <= finfo.max:
                raise UsageError(f"{name} {value:g} is outside the range of {self.dtype} ({finfo.tiny:.3g} to "
                                 f"{finfo.max:.3g}); use dtype float64 or another {name.replace('_', ' ')}")
        for name in ("seed", "data_seed", "truth_seed"):
            if not 0 <= getattr(self, name) <= MAX_SEED:
                raise UsageError(f"{name} must be in [0, 2**63 - 1] (a torch generator's seed), "
                                 f"got {getattr(self, name)}")
        if self.depth < 1:
            raise UsageError(f"depth must be >= 1, got {self.depth}")
        if self.components is not None and self.components < 1:
            raise UsageError(f"components must be >= 1, got {self.components}")
        if self.target_norm is not None and not 0 < self.target_norm < math.inf:
            raise UsageError(f"target_norm must be positive (finite and > 0), got {self.target_norm}")
        if not abs(self.init_mean) <= math.sqrt(finfo.max):  # its square (the entries' second moment) stays finite
            raise UsageError(f"init_mean must be finite, at most {math.sqrt(finfo.max):.3g} in size in {self.dtype}, "
                             f"got {self.init_mean}")
        if self.width is not None and self.width < 1:
            raise UsageError(f"width must be >= 1 (or None: the default), got {self.width}")
        smallest = min(self.shape[:2])
        if (self.model == "matrix" and self.init == "balanced" and self.depth > 1 and self.width is not None
                and self.width < smallest):
            raise UsageError(f"width {self.width} is below min(rows, cols) = {smallest}, which init 'balanced' needs "
                             "(its factors share the end-to-end matrix's singular values); use init 'gaussian'")
        if self.max_steps < 0:
            raise UsageError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.top < 1:
            raise UsageError(f"top must be >= 1, got {self.top}")
        if self.data is not None and self.task != "completion":
            raise UsageError("data: files hold completion problems; use task='completion'")
        if self.data is not None and self.model != "matrix":
            raise UsageError(f"data: files hold matrix completion problems, not order-{len(self.shape)} tensors for "
                             f"model {self.model!r}; use model 'matrix' (implicitrank mf or nnm)")
        try:  # the factorization's own checks (the tree; a CP default of 1e9 components was a traceback)
            MODELS[self.model].build(self)
        except ValueError as err:
            raise UsageError(str(err)) from None
        TrainConfig(self.max_steps, self.loss_threshold, self.record_every, self.record_per_decade, 100,
                    self.checkpoint_every)

    def _check_types(self) -> None:
        """Refuse a field of another kind than its annotation (``has_field_type``: ``lr="0.1"`` failed comparing a
        str with 0, ``seed=1.5`` was accepted); store a NumPy number as the Python one (``run_id`` hashes its JSON)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind, _, optional = f.type.partition(" | ")
            if not has_field_type(f.type, value):
                raise UsageError(f"{f.name} must be {FIELD_KINDS[kind][1]}{' or None' if optional else ''}, "
                                 f"got {value!r}")
            if kind in ("int", "float") and value is not None and type(value) not in (int, float):  # np.float64 too
                object.__setattr__(self, f.name, operator.index(value) if kind == "int" else float(value))

    def to_dict(self) -> dict:
        """The configuration as a dict of its fields (``config.json``).

        Returns
        -------
        dict
            Field name -> value, as ``dataclasses.asdict`` gives it (``shape`` stays a tuple): every field holds
            a number, a string, None or a tuple of ints, so there is nothing to copy deeply (``asdict``'s deep copy
            was half of a 20,000-run sweep's planning time).
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """The configuration of a dict such as ``to_dict`` or ``config.json`` gives.

        ``device_used`` (``config.json``'s record of the device, not part of the configuration) is ignored and
        ``shape`` may be a list.

        Parameters
        ----------
        values : dict
            Field name -> value; missing fields take their defaults.

        Returns
        -------
        RunConfig
            The validated configuration.

        Raises
        ------
        UsageError
            When ``values`` names an unknown field, or a value is not acceptable.
        """
        values = {k: v for k, v in values.items() if k != results.DEVICE_USED}  # config.json's record, not config
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown config fields {unknown}; allowed: {sorted(known)}")
        values = dict(values)
        if "shape" in values:
            values["shape"] = tuple(values["shape"])
        return cls(**values)

    @functools.cached_property
    def run_id(self) -> str:
        """A stable id: a hash of the validated configuration (computed once per configuration: it is frozen).

        Fields added after runs were first saved (``ADDED_FIELDS``) enter the hash only when they differ from
        their default, so a configuration that could be written before they existed keeps its id.
        """
        fields = {k: v for k, v in self.to_dict().items() if k not in ADDED_FIELDS or v != ADDED_FIELDS[k]}
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def per_run_fields(self) -> tuple[str, ...]:
        """Fields that may differ between runs of one batch.

        Returns
        -------
        tuple of str
            ``seed``, ``data_seed``, ``init_scale``, ``lr``; without ``data_seed`` unless the task is completion
            from generated data (one observation set per run).
        """
        if self.task == "completion" and self.data is None:
            return PER_RUN_FIELDS
        return tuple(f for f in PER_RUN_FIELDS if f != "data_seed")

    def batch_key(self) -> str:
        """The key by which runs are batched: runs with equal keys train together in one batched program.

        Returns
        -------
        str
            Key-sorted JSON of every field but ``per_run_fields``.
        """
        per_run = self.per_run_fields()
        shared = {k: v for k, v in self.to_dict().items() if k not in per_run}
        return json.dumps(shared, sort_keys=True)


# Fields that configure some optimizers or models only: (the field they depend on, the values that use them).
FIELD_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lr": ("optimizer", ("gd", "global-rmsprop", "adam")), "eps": ("optimizer", ("global-rmsprop",)),
    "rtol": ("optimizer", ("gradient-flow",)), "atol": ("optimizer", ("gradient-flow",)),
    "flow_method": ("optimizer", ("gradient-flow",)), "depth": ("model", ("matrix",)),
    "width": ("model", ("matrix", "ht")), "components": ("model", ("cp", "ht")), "tree": ("model", ("ht",)),
    "init_mean": ("model", ("cp", "ht")),
}


def unused_fields(fields: dict) -> list[str]:
    """The fields given in ``fields`` that its optimizer or model does not use (``FIELD_USERS``; an absent optimizer
    or model is the default's), each as a phrase naming who uses it.

    Parameters
    ----------
    fields : dict
        ``RunConfig`` field name -> value, as a user gave them (a sweep spec's run).

    Returns
    -------
    list of str
        E.g. ``"eps applies to optimizer global-rmsprop only, not gd"``; empty when every field is used.
    """
    defaults = {"optimizer": RunConfig.optimizer, "model": RunConfig.model}
    unused = []
    for name, (owner, users) in FIELD_USERS.items():
        chosen = fields.get(owner, defaults[owner])
        if name in fields and chosen not in users:
            unused.append(f"{name} applies to {owner} {' | '.join(users)} only, not {chosen}")
    return unused


def _is_integer(value: Any) -> bool:
    """An integer, not a bool: a Python int or one that converts exactly (NumPy's, a 0-d integer tensor)."""
    try:
        operator.index(value)
    except TypeError:
        return False
    return not isinstance(value, bool)


# A RunConfig annotation's kind (the part before " | None") -> (its test, its words in a message)
FIELD_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (_is_integer, "an integer"),
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "tuple[int, ...]": (lambda v: isinstance(v, (list, tuple)) and all(map(_is_integer, v)), "a tuple of integers"),
}


def has_field_type(annotation: str, value: Any) -> bool:
    """Whether ``value`` is of the kind a ``RunConfig`` field's annotation declares.

    Parameters
    ----------
    annotation : str
        The field's annotation as written, e.g. ``"float | None"`` (a key of ``FIELD_KINDS``, optionally
        ``| None``).
    value : Any
        The value given.

    Returns
    -------
    bool
        True for an integer (not a bool) for ``int``, a real number (not a bool) for ``float``, a str for ``str``,
        a list or tuple of integers for ``tuple[int, ...]``, and None where the annotation allows it.
    """
    kind, _, optional = annotation.partition(" | ")
    return (optional == "None" and value is None) or FIELD_KINDS[kind][0](value)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"{name} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class ModelEntry:
    """How a model name becomes a factorization and a ground truth of the configured rank."""

    build: Callable[[RunConfig], Factorization]
    ground_truth: Callable[[RunConfig], Tensor]
    inits: tuple[str, ...]  # the factorization's ``inits``: the values ``RunConfig.init`` may take


def _matrix(config: RunConfig) -> MatrixFactorization:
    widths = None if config.width is None else (config.width,) * (config.depth - 1)
    return MatrixFactorization(config.shape[0], config.shape[1], config.depth, widths, config.init)


def _matrix_truth(config: RunConfig) -> Tensor:
    return low_rank_matrix(*config.shape, config.rank, seed=config.truth_seed, frobenius_norm=config.target_norm)


def _ht(config: RunConfig) -> HierarchicalFactorization:
    """HTF over ``config.tree`` (a ``tree_from_spec`` word); ``components`` caps the widths, ``width`` fixes them."""
    cap = {} if config.components is None else {"width_cap": config.components}
    return HierarchicalFactorization(config.shape, tree_from_spec(config.tree, config.shape), widths=config.width,
                                     init_method=config.init, init_mean=config.init_mean, **cap)


def _ht_truth(config: RunConfig) -> Tensor:
    norm = config.target_norm if config.target_norm is not None else math.sqrt(math.prod(config.shape))
    return low_hierarchical_rank_tensor(config.shape, config.rank, tree_from_spec(config.tree, config.shape),
                                        seed=config.truth_seed, frobenius_norm=norm)


def _cp(config: RunConfig) -> CPFactorization:
    """CP with ``components`` = R (None: the product of all mode sizes but the largest)."""
    return CPFactorization(config.shape, config.components, config.init_mean, init_method=config.init)


def _cp_truth(config: RunConfig) -> Tensor:
    norm = config.target_norm if config.target_norm is not None else math.sqrt(math.prod(config.shape))
    return low_rank_tensor(config.shape, config.rank, seed=config.truth_seed, frobenius_norm=norm)


# To plug in a factorization: write ``build(config) -> Factorization`` (reading config.shape, and e.g.
# config.components, config.init_mean, config.tree) whose ``init(batch, init_scale, generators)`` takes
# the per-run init scales, and ``ground_truth(config) -> Tensor`` of shape config.shape with rank
# config.rank and Frobenius norm config.target_norm (None: sqrt(numel)), seeded by config.truth_seed.
MODELS: dict[str, ModelEntry] = {
    "matrix": ModelEntry(_matrix, _matrix_truth, MatrixFactorization.inits),
    "cp": ModelEntry(_cp, _cp_truth, CPFactorization.inits),
    "ht": ModelEntry(_ht, _ht_truth, HierarchicalFactorization.inits),
}


def memory_floor(configs: list[RunConfig], parameters: bool = True) -> int:
    """The bytes a batch of ``configs`` cannot train in less: the parameters ``init`` allocates for each run on the
    CPU (``num_parameters`` entries in the run's dtype), one dense float64 tensor of the batch's shape (the
    generated ground truth, or a file's matrix), for sensing the float64 draw of its measurement matrices
    (``num_observations`` × the number of entries) and, for ``ht``, the float64 weights its ground truth is made of
    (every internal node R_ν = ``rank``).

    Parameters
    ----------
    configs : list of RunConfig
        The batch (equal shapes).
    parameters : bool, optional
        Count the factorizations' parameters; False for a solver of the problem alone (``nnm``). Default True.

    Returns
    -------
    int
        A lower bound on the batch's memory, in bytes: what it needs on top is the optimizer's state, gradients,
        the end-to-end tensor and the observations.
    """
    first = configs[0]
    params = sum(MODELS[c.model].build(c).num_parameters * DTYPES[c.dtype].itemsize
                 for c in configs if parameters and device_of(c).type == "cpu")
    truth = max((HierarchicalFactorization(c.shape, tree_from_spec(c.tree, c.shape), widths=c.rank).num_parameters
                 for c in configs if c.model == "ht" and c.data is None), default=0)
    numel = math.prod(first.shape)
    measurements = first.num_observations * numel if first.task == "sensing" else 0
    return params + (numel + truth + measurements) * 8


SIZE_FLAGS = ("--shape", "--width", "--components", "--rank")  # the options of mf/tf/htf that size a batch


def check_memory(configs: list[RunConfig], flags: tuple[str, ...] = SIZE_FLAGS, parameters: bool = True) -> None:
    """Refuse a batch whose ``memory_floor`` exceeds this machine's physical memory, before anything is written
    (it would end in an allocation error after its run directories were made).

    Parameters
    ----------
    configs : list of RunConfig
        The batch.
    flags : tuple of str, optional
        The command's options that size the batch, named in the message (sensing adds ``--num-observations``).
        Default ``SIZE_FLAGS``, those of ``mf``/``tf``/``htf``.
    parameters : bool, optional
        Count the factorizations' parameters (``memory_floor``). Default True.

    Raises
    ------
    UsageError
        Naming the sizes that decide it; nothing is checked where the platform does not report its memory.
    """
    first = configs[0]
    sensing = first.task == "sensing"
    detail = (f"{len(configs)} run(s) of shape {first.shape}"
              + (f", {first.num_observations:,} Gaussian measurements" if sensing else "")
              + (" and their parameters" if parameters else ""))
    names = [*flags, *(["--num-observations"] if sensing else [])]
    advice = "use a smaller " + (f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0])
    check_fits(memory_floor(configs, parameters), "this batch", detail,
               advice + (", or fewer runs" if len(configs) > 1 else ""))


def check_fits(need: int, what: str, detail: str, advice: str) -> None:
    """Refuse work that needs more than this machine's physical memory, before it allocates or writes anything.

    Parameters
    ----------
    need : int
        A lower bound on the bytes the work needs.
    what : str
        The work, the subject of the message (``"this batch"``).
    detail : str
        What the bound counts, in the message's parentheses.
    advice : str
        What to change, naming the options (``"use a smaller --shape"``).

    Raises
    ------
    UsageError
        ``{what} needs at least N GiB ({detail}), more than this machine's M GiB of memory; {advice}``; nothing is
        checked where the platform does not report its memory.
    """
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: the allocator will say it
        return
    if need > physical:
        raise UsageError(f"{what} needs at least {need / 2**30:,.3g} GiB ({detail}), more than this machine's "
                         f"{physical / 2**30:,.3g} GiB of memory; {advice}")


def device_of(config: RunConfig) -> torch.device:
    """The device a run asks for.

    Parameters
    ----------
    config : RunConfig
        The run; its ``device`` is ``auto``, ``cpu`` or ``cuda[:N]``.

    Returns
    -------
    torch.device
        For ``auto``, CUDA when present, else the CPU; otherwise the device named.

    Raises
    ------
    UsageError
        When ``cuda`` is asked for and no CUDA device is available, or ``cuda:N`` names a device not present.
    """
    return resolve_device(config.device)


def build_task(configs: list[RunConfig]):
    """The batched task of runs sharing a batch key (run b's per-run values from ``configs[b]``).

    With ``data``, the file's completion problem (a ``.npz``, or ``num_observations`` MovieLens ratings sampled
    with the first run's ``data_seed``), the same for every run; otherwise the model's ground truth (from the
    first run's ``truth_seed``), sensed by ``num_observations`` Gaussian measurements (the first run's
    ``data_seed``) or completed from ``num_observations`` entries sampled with each run's ``data_seed``.

    Parameters
    ----------
    configs : list of RunConfig
        The runs, B of them, with equal ``batch_key``.

    Returns
    -------
    Task
        The task, batched over B runs, on the CPU (``run_batch`` moves it to the runs' device and dtype).

    Raises
    ------
    UsageError
        When the data file's shape differs from the configured ``shape``, the file cannot be read, or the observed
        values are too small for the dtype (their squares underflow: ``target_norm`` or the data must be larger).
    """
    first, batch = configs[0], len(configs)
    if first.data is not None:
        if data_format(first.data) == "npz":
            task = load_npz_completion(first.data, batch=batch)
        else:
            task = movielens_completion(first.data, first.num_observations, seed=first.data_seed, batch=batch)
        if tuple(task.shape) != first.shape:
            raise UsageError(f"shape: the data file {first.data} holds a {'×'.join(map(str, task.shape))} problem, "
                             f"not {'×'.join(map(str, first.shape))}; leave shape out (the file's) or give its shape")
        peak, largest = float(task.values.abs().max()), torch.finfo(DTYPES[first.dtype]).max
        if peak > largest:
            raise UsageError(f"data: observed values up to {peak:.3g} overflow {first.dtype} (largest "
                             f"{largest:.3g}); use dtype float64 or rescale the data")
        _check_loss_scale(task.values, first)
        return task
    target = MODELS[first.model].ground_truth(first)
    if first.task == "sensing":
        task = gaussian_sensing(target, first.num_observations, seed=first.data_seed, batch=batch)
    else:
        task = complete_from_target(target, first.num_observations, [c.data_seed for c in configs])
    _check_loss_scale(task.values, first)
    return task


def _check_loss_scale(values: Tensor, config: RunConfig) -> None:
    """Refuse observed values so small that their squares, which the loss averages, underflow the run's dtype.

    The loss of W = 0 is the values' mean square; below the dtype's smallest normal number it is 0 or subnormal, so
    the loss cannot tell a fit from none, and errors relative to such a target overflowed into NaN metrics under a
    "converged" status. The values scale with ``target_norm``, so the smallest norm that works is named.

    Parameters
    ----------
    values : Tensor
        The task's (B, M) observed values or measurements, float64 on the CPU.
    config : RunConfig
        The batch's shared configuration (its ``dtype``, ``data`` and ``target_norm``).

    Raises
    ------
    UsageError
        Naming ``target_norm`` (a generated target) or ``data`` (a file) and the allowed range.
    """
    tiny = torch.finfo(DTYPES[config.dtype]).tiny
    rms = float((scaled_norm(values, 1) / math.sqrt(values.shape[1])).min())
    if rms >= math.sqrt(tiny):
        return
    why = (f"the observed values' root-mean-square is {rms:.3g}, so their squares, which the loss averages, underflow "
           f"{config.dtype} (smallest normal number {tiny:.3g}) and the loss cannot measure the fit")
    # What to ask for: squares that neither underflow nor start under loss_threshold, which the check of the loss at
    # init would refuse next (a mean square 100 times the threshold: the loss of W(0) ≈ 0).
    wanted = max(math.sqrt(tiny), 10 * math.sqrt(config.loss_threshold))
    enough = f"(a mean square well above loss_threshold {config.loss_threshold:g})"
    if config.data is not None:
        raise UsageError(f"data: the observed values of {config.data} are too small for {config.dtype}: {why}; rescale "
                         f"the data to a root-mean-square >= {wanted:.3g} {enough}")
    norm = config.target_norm if config.target_norm is not None else math.sqrt(math.prod(config.shape))
    raise UsageError(f"target_norm {norm:g} is too small for shape {config.shape} in {config.dtype}: {why}; use "
                     f"target_norm >= {norm * wanted / rms:.3g} {enough}")


def make_measure(model: Factorization, task, top: int) -> Callable[[list[Tensor], Tensor], dict[str, Tensor]]:
    """Metrics recorded on the schedule: the model's quantities, their effective rank, norms and errors.

    The measure returns, per run: the top ``top`` quantities (under ``model.quantity_name``) and the effective
    rank of all of them; for singular values the nuclear and spectral norms. Where the end-to-end tensor has at
    most ``DENSE_LIMIT`` = 10^7 entries: its Frobenius norm and, with a known target, the reconstruction error
    ||W − W*||_F / ||W*||_F, its square and (completion with unobserved entries) the same on the unobserved
    entries. With held-out entries (``task.test_indices``), ``test_mse``.

    Parameters
    ----------
    model : Factorization
        The factorization trained.
    task : Task
        The batched task (its ``target``, observed mask and test entries are read when present).
    top : int
        How many of the largest quantities to record.

    Returns
    -------
    callable
        ``measure(params, loss) -> {name: tensor with leading dimension B}``.
    """
    dense = math.prod(model.shape) <= DENSE_LIMIT
    target = getattr(task, "target", None)
    unobserved = None
    if dense and target is not None and isinstance(task, Completion):
        unobserved = ~task.observed_mask()
        if not bool(unobserved.any()):  # every entry observed: no error on unobserved entries to speak of
            unobserved = None

    def measure(params: list[Tensor], loss: Tensor) -> dict[str, Tensor]:
        q = model.quantities(params)
        out = {model.quantity_name: q[:, :top], "effective_rank": effective_rank(q)}
        if model.quantity_name == "singular_values":
            out.update(nuclear_norm=q.sum(1), spectral_norm=q[:, 0])
        if dense:
            w = model.end_to_end(params)
            out["frobenius_norm"] = scaled_norm(w.flatten(1), 1)
            if target is not None:
                out["reconstruction_error"] = relative_error(w, target)
                out["reconstruction_error_squared"] = out["reconstruction_error"].pow(2)
                if unobserved is not None:
                    out["unobserved_error"] = relative_error(w, target, unobserved)
        test_indices = getattr(task, "test_indices", None)
        if test_indices is not None:
            pred = model.evaluate(params, test_indices)
            out["test_mse"] = (pred - task.test_values).pow(2).mean(1)
        return out

    return measure


def train_configured(model, task, params, config: RunConfig, measure, state, on_checkpoint, lr: Tensor,
                     progress: bool = True) -> TrainState:
    """Train a batch as ``config`` says: the optimizer loop (``train``), or gradient-flow integration.

    ``gradient-flow`` runs ``flow.integrate`` with ``config.flow_method``, ``config.rtol`` and ``config.atol``
    (``lr`` unused); every other optimizer runs ``train`` with ``make_optimizer(config.optimizer)``
    (``eps=config.eps`` for ``global-rmsprop``).

    Parameters
    ----------
    model : Factorization
        The factorization.
    task : Task
        The batched task, on the parameters' device and dtype.
    params : list of Tensor or None
        The (B, ...) parameters to start from (None when ``state`` is given).
    config : RunConfig
        The batch's shared configuration (stopping, recording, checkpoints, optimizer).
    measure : callable or None
        ``measure(params, loss)``, the metrics recorded (``make_measure``).
    state : TrainState or None
        A checkpointed batch to continue, or None.
    on_checkpoint : callable or None
        Called with the state on the checkpoint schedule.
    lr : Tensor
        (B,) learning rates.
    progress : bool, optional
        Show a progress bar. Default True.

    Returns
    -------
    TrainState
        The batch's final state.
    """
    train_config = TrainConfig(max_steps=config.max_steps, loss_threshold=config.loss_threshold,
                               record_every=config.record_every, record_per_decade=config.record_per_decade,
                               checkpoint_every=config.checkpoint_every, progress=progress)
    if config.optimizer == "gradient-flow":
        return integrate(model, task, params, train_config, rtol=config.rtol, atol=config.atol,
                         method=config.flow_method, measure=measure, state=state, on_checkpoint=on_checkpoint)
    options = {"eps": config.eps} if config.optimizer == "global-rmsprop" else {}
    return train(model, task, params, make_optimizer(config.optimizer, **options), lr, train_config,
                 measure=measure, state=state, on_checkpoint=on_checkpoint)


@dataclass
class BatchResult:
    """What ``run_batch`` returns.

    Attributes
    ----------
    summaries : list of dict
        Each run's summary, as written to its ``summary.json``.
    state : TrainState
        The batch's final training state.
    model : Factorization
        The factorization trained.
    task : Task
        The batched task it was trained on.
    """

    summaries: list[dict]
    state: TrainState
    model: Factorization
    task: object = field(repr=False)


def run_batch(configs: list[RunConfig], run_dirs: list[str | Path], *, resume: bool = False,
              progress: bool = True, plots: bool = True, tensorboard: bool = False) -> BatchResult:
    """Train ``configs`` (equal batch keys) together as one batched program and write each run's directory.

    Each run directory gets ``config.json``, ``checkpoint.pt`` while training (removed at the end),
    ``metrics.jsonl``, ``factors.pt`` and ``summary.json`` (with provenance, and the init both as ``init_scale``
    and as ``init_std``, the model's ``entry_std`` of it). Torch threads follow
    ``threads.policy_threads`` of the batch's work.

    Parameters
    ----------
    configs : list of RunConfig
        The runs, B >= 1 of them, differing only in ``per_run_fields``.
    run_dirs : list of str or Path
        One directory per run (see ``results.prepare_run_dir``).
    resume : bool, optional
        Continue unfinished runs from their checkpoints. Default False.
    progress : bool, optional
        Show a progress bar. Default True.
    plots : bool, optional
        Draw each run's plots (sweeps skip them; ``implicitrank plot`` draws them later). Default True.
    tensorboard : bool, optional
        Also write each run's TensorBoard event file (see ``implicitrank.tensorboard``). Default False.

    Returns
    -------
    BatchResult
        The runs' summaries, the final state, the model and the task.

    Raises
    ------
    UsageError
        When the counts of configs and directories differ or are 0, a directory is given twice (also spelled
        differently), the configs differ in a shared field, a directory cannot be used (``OutputExistsError``),
        the runs' checkpoints do not match for a resume, ``tensorboard`` is asked for without the package, or a
        fresh run would learn nothing: its observed values' squares underflow the dtype, its W(0) underflows, or its
        train loss at init is already at or below ``loss_threshold``. Every refusal comes before any directory is
        written.
    """
    if tensorboard:
        require_tensorboard()
    if not configs or len(configs) != len(run_dirs):
        raise UsageError(f"need one run directory per config, got {len(configs)} configs, {len(run_dirs)} dirs")
    resolved = [Path(d).resolve() for d in run_dirs]
    repeated = next((d for i, d in enumerate(resolved) if d in resolved[:i]), None)
    if repeated is not None:  # the second run found the first one's config.json, after it was written
        raise UsageError(f"run_dirs: {repeated} is given twice; each run needs a directory of its own")
    keys = {c.batch_key() for c in configs}
    if len(keys) != 1:
        raise UsageError("configs of one batch may differ only in " + ", ".join(configs[0].per_run_fields()))
    first = configs[0]
    device, dtype = device_of(first), DTYPES[first.dtype]
    model = MODELS[first.model].build(first)
    task = build_task(configs).to(device, dtype)  # before any directory is made: a refusal leaves none behind
    resuming = resume and any((Path(d) / results.CHECKPOINT).exists() for d in run_dirs)
    params = None if resuming else _initial_params(model, task, configs)  # refused before any directory, too
    for c, d in zip(configs, run_dirs):  # every directory checked before one is written, for the same reason
        results.prepare_run_dir(d, c.to_dict(), resume=resume, device=str(device), check_only=True)
    dirs = [results.prepare_run_dir(d, c.to_dict(), resume=resume, device=str(device))
            for c, d in zip(configs, run_dirs)]
    lr = torch.tensor([c.lr for c in configs], dtype=dtype, device=device)
    state, earlier = _load_checkpoints(dirs, device) if resume else (None, 0.0)
    measure = make_measure(model, task, first.top)
    started_at = provenance.now()
    started = time.perf_counter()
    with torch_threads(policy_threads(len(configs) * math.prod(first.shape) * min(first.shape))):
        state = train_configured(model, task, params, first, measure, state,
                                 lambda s: _save_checkpoints(s, dirs, earlier + time.perf_counter() - started),
                                 lr, progress)
    seconds = earlier + time.perf_counter() - started  # the whole run's, over every session
    init_stds = model.entry_std(torch.tensor([c.init_scale for c in configs], dtype=torch.float64)).tolist()
    summaries = [_finish(state, b, d, c, seconds, plots, started_at, tensorboard, init_stds[b])
                 for b, (d, c) in enumerate(zip(dirs, configs))]
    return BatchResult(summaries, state, model, task)


def _initial_params(model: Factorization, task, configs: list[RunConfig]) -> list[Tensor]:
    """The batch's initial parameters, on the task's device and dtype, refused where a run would learn nothing.

    Parameters
    ----------
    model : Factorization
        The factorization of the batch.
    task : Task
        The batched task, on the runs' device and dtype.
    configs : list of RunConfig
        The runs (their seeds and init scales draw the parameters).

    Returns
    -------
    list of Tensor
        The (B, ...) parameters ``model.init`` draws.

    Raises
    ------
    UsageError
        When a run's W(0) underflows the dtype (``_check_initial_product``), or its train loss at init is already
        at or below ``loss_threshold`` (``_check_initial_loss``).
    """
    scales = torch.tensor([c.init_scale for c in configs], dtype=torch.float64)
    params = model.init(len(configs), scales, generators([c.seed for c in configs]), dtype=task.dtype,
                        device=task.device)
    _check_initial_product(model, params, configs)
    _check_initial_loss(model, task, params, configs)
    return params


def _check_initial_product(model: Factorization, params: list[Tensor], configs: list[RunConfig]) -> None:
    """Refuse a batch where a run's end-to-end W(0), formed in its dtype as training forms it, underflows.

    ``init_scale`` is the root-mean-square of ||W(0)||_F, but a typical draw of a deep product of Gaussian factors is
    exponentially smaller (depth 5000 at width 10: about e^-250 times it), and in float32 it was then 0: the run
    trained a zero matrix, whose gradients vanish, while its summary said init_scale 0.001. Checked where the
    end-to-end tensor is formed for measurements (at most ``DENSE_LIMIT`` entries).

    Parameters
    ----------
    model : Factorization
        The factorization of the batch.
    params : list of Tensor
        The (B, ...) initial parameters, in the runs' dtype.
    configs : list of RunConfig
        The runs, named in the error.

    Raises
    ------
    UsageError
        Naming ``depth`` (a matrix factorization), the run's ``init_scale``, and what to change.
    """
    if math.prod(model.shape) > DENSE_LIMIT:
        return
    first = configs[0]
    tiny = torch.finfo(params[0].dtype).tiny
    peaks = model.end_to_end(params).flatten(1).abs().amax(1).tolist()
    for b, peak in enumerate(peaks):
        if peak < tiny:  # 0, or subnormal: no digits left
            deep = first.model == "matrix" and first.depth > 1
            changes = ["a smaller depth"] * deep + ["a larger init_scale", "init 'balanced'"] + \
                ["dtype float64"] * (first.dtype != "float64")
            raise UsageError(f"{f'depth {first.depth}: ' if deep else ''}the {first.init} init's end-to-end W(0) of "
                             f"run {b} (seed {configs[b].seed}, init_scale {configs[b].init_scale:g}) underflows "
                             f"{first.dtype} (largest entry {peak:.3g}, smallest normal number {tiny:.3g}), so the "
                             f"run would train a zero tensor; use {', '.join(changes[:-1])} or {changes[-1]}")


def _check_initial_loss(model: Factorization, task, params: list[Tensor], configs: list[RunConfig]) -> None:
    """Refuse a batch where a run's train loss at init is already at or below ``loss_threshold``.

    The threshold is absolute, so a small target (or data) can start below it: the run stopped at step 0 as
    "converged", having learned nothing, and reported the error of W(0) as its result (1.73 for target_norm 1e-3).
    The loss is the one the training loop takes at step 0.

    Parameters
    ----------
    model : Factorization
        The factorization of the batch.
    task : Task
        The batched task, on the runs' device and dtype.
    params : list of Tensor
        The (B, ...) initial parameters.
    configs : list of RunConfig
        The runs, named in the error.

    Raises
    ------
    UsageError
        Naming ``loss_threshold``, the run's initial loss and the observed values' mean square (the loss of W = 0),
        which a threshold should be small next to.
    """
    first = configs[0]
    losses = loss_and_grad(model, params, task)[0].tolist()
    for b, loss in enumerate(losses):
        if loss <= first.loss_threshold:  # (NaN is not: such a run stops as diverged, with its message)
            mean_square = float(task.values[b].double().pow(2).mean())
            larger = "rescale the data" if first.data is not None else "give a larger target_norm"
            raise UsageError(f"loss_threshold {first.loss_threshold:g} is not below the train loss of run {b} at init "
                             f"(seed {configs[b].seed}, init_scale {configs[b].init_scale:g}), {loss:.3g}: it would "
                             f"stop as converged at step 0, having learned nothing; the threshold is absolute, so "
                             f"give one well below the observed values' mean square {mean_square:.3g}, or {larger}")


def _stack(values: list, device: torch.device):
    """Inverse of ``select_runs`` over single runs: concatenate per-run parts, keep shared scalars once."""
    first = values[0]
    if isinstance(first, Tensor):
        return (torch.cat(values) if first.dim() else first).to(device)
    if isinstance(first, list):
        return [_stack([v[i] for v in values], device) for i in range(len(first))]
    if isinstance(first, dict):
        return {k: _stack([v[k] for v in values], device) for k in first}
    return first


def _gradient_evaluations(state: TrainState, b: int, config: RunConfig) -> int | None:
    """Run b's gradient evaluations: one per step of an optimizer; gradient flow's count of its own stages
    (``flow.integrate``), None for a flow resumed from a checkpoint written before that count existed."""
    if config.optimizer != "gradient-flow":
        return int(state.steps[b])
    evaluations = state.optimizer_state.get("evaluations")
    return None if evaluations is None else int(evaluations[b])


def _run_state(state: TrainState, b: int) -> dict:
    batch = state.active.shape[0]
    status = {k: getattr(state, k) for k in ("active", "stopped_at", "loss", "below_for")}
    return {"step": state.step, **select_runs({"params": state.params, "optimizer_state": state.optimizer_state,
                                               "status": status, "records": state.records}, [b], batch)}


def _metric_rows(records: list[dict]) -> list[dict]:
    return [{k: v[0] if isinstance(v, Tensor) and v.dim() else v for k, v in row.items()} for row in records]


def _save_checkpoints(state: TrainState, dirs: list[Path], seconds: float = 0.0) -> None:
    """Each run's checkpoint (with the ``seconds`` trained so far) and the metrics recorded until now, as a set:
    Ctrl-C waits for the last of them (a batch checkpointed at two steps cannot be resumed together). A run that
    diverged keeps its records up to the divergence in metrics.jsonl, as ``_finish`` writes them (its batch went on
    recording NaN for it); its checkpoint keeps them all, for the resume."""
    diverged_at = state.diverged_at.tolist()
    with interrupts_deferred():
        for b, d in enumerate(dirs):
            run = _run_state(state, b)
            results.save_torch(d / results.CHECKPOINT, {**run, "seconds": seconds})
            rows = _metric_rows(run["records"])
            if diverged_at[b] >= 0:
                rows = [r for r in rows if r["step"] <= diverged_at[b]]
            results.write_metrics(d / results.METRICS, rows)


def _load_checkpoints(dirs: list[Path], device: torch.device) -> tuple[TrainState | None, float]:
    """The batch's state from its runs' checkpoints (None when there are none) and the seconds trained so far."""
    paths = [d / results.CHECKPOINT for d in dirs]
    if not any(p.exists() for p in paths):
        return None, 0.0
    if not all(p.exists() for p in paths):
        raise UsageError("resume: some runs of this batch have a checkpoint and some do not; resume them apart")
    runs = [results.load_torch(p, "delete it to restart this run from step 0 (it cannot be resumed)",
                               ("step", "params", "optimizer_state", "status", "records")) for p in paths]
    if len({r["step"] for r in runs}) != 1:
        raise UsageError("resume: the runs of this batch were checkpointed at different steps; resume them apart "
                         "(one command with --resume for each run's settings, e.g. one --lr at a time)")
    merged = _stack([{k: r[k] for k in ("params", "optimizer_state", "status")} for r in runs], device)
    # the records stay on the CPU, where the loop keeps the ones it adds (on CUDA, history() met both devices)
    records = _stack([r["records"] for r in runs], torch.device("cpu"))
    status = merged["status"]
    return TrainState(runs[0]["step"], merged["params"], merged["optimizer_state"], status["active"],
                      status["stopped_at"], status["loss"], records, status.get("below_for")), \
        max(float(r.get("seconds", 0.0)) for r in runs)


def _write_metrics(run_dir: Path, rows: list[dict], config: RunConfig, summary: dict, tensorboard: bool) -> None:
    """The one place a finished run's metric rows are written: ``metrics.jsonl``, and the same rows as TensorBoard
    scalars (with the config as hyperparameters) when asked for or within ``tensorboard.logging_to``."""
    results.write_metrics(run_dir / results.METRICS, rows)
    directory = event_dir(run_dir, config.run_id, tensorboard)
    if directory is not None:
        write_events(directory, rows, config.to_dict(), summary)


def _flag_nonfinite_metrics(summary: dict) -> None:
    """Mark a run that stopped without diverging but whose final metrics are NaN/inf: its status becomes
    ``metrics_not_finite`` (not ``converged``, which read as a result next to the nulls) and its message names them.

    Parameters
    ----------
    summary : dict
        The run's summary, its ``FINAL_METRICS`` filled in (None where not measured); updated in place, the
        NaN/inf ones set to None.
    """
    bad = [k for k in FINAL_METRICS if summary[k] is not None and not math.isfinite(summary[k])]
    if not bad or summary["status"] == "diverged":
        return
    how = (f"its train loss reached loss_threshold at step {summary['steps']}" if summary["converged"]
           else f"it stopped at max_steps ({summary['steps']})")
    summary["status"] = "metrics_not_finite"
    summary["message"] = (f"{how}, but its final {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} NaN/inf (null "
                          f"here: e.g. an error relative to a target that is 0 there, or a value beyond the dtype's "
                          f"range), so it has no final result for {'it' if len(bad) == 1 else 'them'}")
    for key in bad:  # None, as summary.json writes them, so that every table shows what the message says
        summary[key] = None


def _finish(state: TrainState, b: int, run_dir: Path, config: RunConfig, seconds: float, plots: bool,
            started_at: str | None = None, tensorboard: bool = False, init_std: float | None = None) -> dict:
    """Write run b's metrics (and their TensorBoard events), final factors, summary and (with ``plots``) plots;
    remove its checkpoint. The summary records the init both ways: ``init_scale`` (||W(0)||_F) and ``init_std``,
    the factor entries' std of the gaussian init of that size (the model's ``entry_std``)."""
    run = _run_state(state, b)
    diverged_at, converged_at = int(state.diverged_at[b]), int(state.converged_at[b])
    # A diverged run's rows after it stopped hold only NaN (its batch went on): keep them up to the stop.
    rows = [r for r in _metric_rows(run["records"]) if diverged_at < 0 or r["step"] <= diverged_at]
    last = rows[-1]
    summary = {
        "run_id": config.run_id,
        "status": "diverged" if diverged_at >= 0 else "converged" if converged_at >= 0 else "max_steps",
        "converged": converged_at >= 0,
        "steps": int(state.steps[b]),
        "gradient_evaluations": _gradient_evaluations(state, b, config),
        "train_loss": float(state.loss[b]),
        "seconds": seconds,
        "init_scale": config.init_scale,
        "init_std": init_std,
    }
    for key in FINAL_METRICS:
        # a diverged run has no result: its last record (steps before the divergence, when that step was not a
        # record) would read as one
        summary[key] = float(last[key]) if key in last and diverged_at < 0 else None
    _flag_nonfinite_metrics(summary)
    if diverged_at >= 0:
        summary["diverged_at_step"] = diverged_at
        # a record at the step that diverged holds its NaN/inf values: the last finite one is the record before it
        finite = [r["step"] for r in rows if r["step"] < diverged_at]
        kept = f"last finite record: step {finite[-1]}" if finite else "none of them finite"
        summary["message"] = (f"train loss, parameters or metrics became NaN/inf at step {diverged_at}; the run "
                              f"stopped there, so it has no final numbers; the metrics recorded until then ({kept}) "
                              f"are kept in {results.METRICS}")
    _write_metrics(run_dir, rows, config, summary, tensorboard)
    results.save_torch(run_dir / results.FACTORS, [p[0] for p in run["params"]])
    if plots:
        from .plots import plot_run

        plot_run(run_dir, rows)
    summary["provenance"] = provenance.collect(seeds=[config.seed], device=str(device_of(config)), dtype=config.dtype,
                                               started=started_at)
    results.write_json(run_dir / results.SUMMARY, summary)
    (run_dir / results.CHECKPOINT).unlink(missing_ok=True)
    return summary
