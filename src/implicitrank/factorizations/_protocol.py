"""The one small protocol behind the three factorizations of the analogy table.

Matrix factorization (singular values), CP tensor factorization (component norms) and hierarchical
tensor factorization (local component norms) all expose the same four things, so tasks, training,
measurements, results and the command line are written once against them:

* ``init(batch, init_scale, generator)``: the parameters, a list of tensors with a leading run
  dimension ``B`` (B independent runs train in one tensor program; a single run is B = 1). One meaning of
  ``init_scale`` for all three: the root-mean-square Frobenius norm of the end-to-end tensor at init,

      init_scale = sqrt(E ||W(0) − E W(0)||_F²),

  i.e. sqrt(E ||W(0)||_F²) for the zero-mean inits (all but a nonzero ``init_mean``), and exactly ||W(0)||_F
  for the inits whose norm is not random (matrix ``balanced``, ``identity``, ``orthogonal``). The same
  init_scale gives the three the same size of W(0). ``scale_for_entry_std(std)`` converts a per-entry factor
  std (the tensor papers' convention) into it, ``entry_std(init_scale)`` back;
* ``init_method`` (a field), one of ``INITS`` = gaussian | balanced | identity | orthogonal; each
  factorization lists the ones that apply in ``inits`` and refuses the others;
* ``end_to_end(params)``: the end-to-end tensor, shape ``(B, *shape)``; ``num_parameters``: the entries of one
  run's parameters (what ``init`` allocates per run);
* ``evaluate(params, indices)``: its entries at integer multi-indices without forming it, ``(B, M)``;
* ``quantities(params, sort=True)``: the tracked quantities (``quantity_name``), ``(B, K)``, sorted
  descending (``sort=False``: in the factorization's fixed order, by component index where it has one);
* ``predicted_rates(params, gradient, order=None)``: the law those quantities obey under gradient flow from
  a balanced init, given ∇L(W) ``(B, *shape)``: ``(B, K)`` time derivatives in the order of
  ``quantities(params, sort=False)``. All three factorizations state the same law,

      σ̇_r = N · γ_r · σ_r^(2 − 2/N),   γ_r = <−∇L(W), Δ_r>,

  with Δ_r the unit-norm direction of quantity r in W (u_r v_rᵀ; ⊗_n ŵ_r^n; a local component's term) and
  N the number of factors it multiplies (depth; order; |children| + 1); ``order`` overrides N, which gives
  the law of another N (a negative control).

References: S. Arora, N. Cohen, W. Hu, Y. Luo, NeurIPS 2019, Theorem 3; N. Razin, A. Maman, N. Cohen, ICML
2021, Theorem 1; N. Razin, A. Maman, N. Cohen, ICML 2022, Theorem 1.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

INITS = ("gaussian", "balanced", "identity", "orthogonal")


@runtime_checkable
class Factorization(Protocol):
    """A batched factorization of a tensor of shape ``shape`` (see the module docstring).

    The protocol that ``MatrixFactorization``, ``CPFactorization`` and ``HierarchicalFactorization`` implement;
    tasks, training and measurements are written against it. Parameters are lists of tensors with a leading run
    dimension B.

    Attributes
    ----------
    shape : tuple of int
        Shape of the end-to-end tensor W (without the run dimension).
    quantity_name : str
        Name of the tracked quantities (``singular_values``, ``component_norms``, ``local_component_norms``).
    init_method : str
        The initialization, one of ``inits``.
    inits : tuple of str
        The entries of ``INITS`` this factorization accepts.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Theorem 3.

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, Theorem 1.

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, Theorem 1.
    """

    shape: tuple[int, ...]
    quantity_name: str
    init_method: str
    inits: tuple[str, ...]

    @property
    def num_parameters(self) -> int:
        """The number of parameter entries of one run (``init`` allocates ``batch`` times that)."""
        ...

    def entry_std(self, init_scale: Tensor | float) -> Tensor:
        """The per-entry std of the factors that gives a root-mean-square ||W(0)||_F of ``init_scale``.

        Parameters
        ----------
        init_scale : Tensor or float
            Root-mean-square Frobenius norm of W(0) (one value or one per run).

        Returns
        -------
        Tensor
            The std s, float64, shaped like ``init_scale``.
        """
        ...

    def scale_for_entry_std(self, std: float) -> float:
        """The init_scale whose init draws every factor entry with std ``std`` (inverse of ``entry_std``).

        Parameters
        ----------
        std : float
            Per-entry standard deviation of the factors (the tensor papers' convention), positive.

        Returns
        -------
        float
            The root-mean-square ||W(0)||_F that this std gives.
        """
        ...

    def init(
        self,
        batch: int,
        init_scale: Tensor,
        generator: list[torch.Generator],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Initial parameters of ``batch`` runs, run b drawn from ``generator[b]``.

        ``init_scale`` means the same for every factorization (see the module docstring).

        Parameters
        ----------
        batch : int
            How many independent runs B to initialize (the leading dimension of every tensor).
        init_scale : Tensor
            Root-mean-square ||W(0) − E W(0)||_F, one per run or one for all; positive.
        generator : list of torch.Generator
            One generator per run, so run b is drawn the same alone or in a batch (``generators(seeds)``).
        dtype : torch.dtype, optional
            Floating dtype of every returned tensor. Default ``torch.float32``.
        device : torch.device or str, optional
            Where the returned tensors live. Default ``"cpu"``.

        Returns
        -------
        list of Tensor
            The parameters, each with leading run dimension B.
        """
        ...

    def end_to_end(self, params: list[Tensor]) -> Tensor:
        """The end-to-end tensor W.

        Parameters
        ----------
        params : list of Tensor
            Parameters as returned by ``init``.

        Returns
        -------
        Tensor
            W, shape (B, *shape).
        """
        ...

    def evaluate(self, params: list[Tensor], indices: Tensor, *, check: bool = True) -> Tensor:
        """Entries of W at integer multi-indices, without forming W.

        Parameters
        ----------
        params : list of Tensor
            Parameters as returned by ``init``.
        indices : Tensor
            Integer multi-indices, (M, order) shared by all runs or (B, M, order).
        check : bool, optional
            Check ``indices`` (integer, shaped, in range) first. False where they were checked already, e.g. a
            task's, checked against the same shape when it was made: the check waits for the device at every
            step. Default True.

        Returns
        -------
        Tensor
            The entries, (B, M).
        """
        ...

    def quantities(self, params: list[Tensor], *, sort: bool = True) -> Tensor:
        """The tracked quantities (``quantity_name``), one row per run.

        Parameters
        ----------
        params : list of Tensor
            Parameters as returned by ``init``.
        sort : bool, optional
            Sort descending (default True); False keeps the factorization's fixed order.

        Returns
        -------
        Tensor
            The quantities, (B, K).
        """
        ...

    def predicted_rates(self, params: list[Tensor], gradient: Tensor, *, order: int | None = None) -> Tensor:
        """Time derivatives of the quantities predicted by σ̇_r = N·γ_r·σ_r^(2−2/N), γ_r = <−∇L(W), Δ_r>.

        Parameters
        ----------
        params : list of Tensor
            Parameters as returned by ``init``.
        gradient : Tensor
            ∇L(W), (B, *shape).
        order : int, optional
            Overrides N (the number of factors a quantity multiplies); None keeps the factorization's own.

        Returns
        -------
        Tensor
            The predicted σ̇, (B, K), in the order of ``quantities(params, sort=False)``.

        References
        ----------
        S. Arora, N. Cohen, W. Hu, Y. Luo, NeurIPS 2019, Theorem 3: singular values, N the depth.

        N. Razin, A. Maman, N. Cohen, ICML 2021, Theorem 1: component norms, N the order.

        N. Razin, A. Maman, N. Cohen, ICML 2022, Theorem 1: local component norms, N = |children(ν)| + 1.
        """
        ...


def autograd_loss_and_grad(model: Factorization, params: list[Tensor], task) -> tuple[Tensor, list[Tensor]]:
    """Per-run loss and its gradients by autograd.

    Runs are independent, so the gradient of the summed loss is each run's own gradient.

    Parameters
    ----------
    model : Factorization
        The factorization.
    params : list of Tensor
        Its parameters, leading run dimension B (they are detached; the originals are not modified).
    task : Task
        Supplies ``task.loss(model, params)``, the per-run loss (B,).

    Returns
    -------
    tuple of (Tensor, list of Tensor)
        The loss (B,), detached, and one gradient per parameter tensor, shaped like it.
    """
    with torch.enable_grad():
        leaves = [p.detach().requires_grad_(True) for p in params]
        loss = task.loss(model, leaves)
        grads = torch.autograd.grad(loss.sum(), leaves)
    return loss.detach(), [g.detach() for g in grads]


def loss_and_grad(model: Factorization, params: list[Tensor], task) -> tuple[Tensor, list[Tensor]]:
    """Per-run loss and gradients: the model's closed form where it has one, else autograd.

    The closed form (``model.loss_and_grad`` over ``task.dense_loss_and_grad``) is used when the model has it, the
    task has a dense loss, and the model's ``closed_form_gradient`` flag (if any) is true.

    Parameters
    ----------
    model : Factorization
        The factorization.
    params : list of Tensor
        Its parameters, leading run dimension B.
    task : Task
        The task whose loss is taken.

    Returns
    -------
    tuple of (Tensor, list of Tensor)
        The loss (B,) and one gradient per parameter tensor.
    """
    closed_form = getattr(model, "loss_and_grad", None)
    if (closed_form is not None and hasattr(task, "dense_loss_and_grad")
            and getattr(model, "closed_form_gradient", True)):
        return closed_form(params, task.dense_loss_and_grad)
    return autograd_loss_and_grad(model, params, task)


def generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One ``torch.Generator`` per run, so run b of a batch equals the same run done alone.

    Parameters
    ----------
    seeds : list of int
        One seed per run.
    device : torch.device or str, optional
        Accepted for symmetry; the generators are always CPU generators (draws are made on the CPU and then
        moved). Default ``"cpu"``.

    Returns
    -------
    list of torch.Generator
        CPU generators seeded with ``seeds``, in order.
    """
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def is_positive_integer(value: Any) -> bool:
    """Whether ``value`` is an integer >= 1: a Python, NumPy or 0-d tensor integer (2.0 and 2.7 are not).

    Parameters
    ----------
    value : Any
        A size, rank or depth as given.

    Returns
    -------
    bool
        True for an integer >= 1.
    """
    try:
        return operator.index(value) >= 1
    except TypeError:
        return False


def check_indices(indices: Tensor, shape: tuple[int, ...], name: str = "indices") -> None:
    """Refuse multi-indices ``evaluate`` cannot read a tensor of ``shape`` at.

    Parameters
    ----------
    indices : Tensor
        Integer multi-indices, (M, N) shared by all runs or (B, M, N), N = len(shape).
    shape : tuple of int
        The tensor's mode sizes.
    name : str, optional
        What the messages call ``indices``. Default ``"indices"``.

    Raises
    ------
    ValueError
        When ``indices`` is not integer, not (M, N) or (B, M, N), or out of range (a flat offset would read
        another entry: column 6 of a 4×5 matrix is W[1, 1]).
    """
    order = len(shape)
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor (integer dtype: positions), got {indices.dtype}")
    if indices.dim() not in (2, 3) or indices.shape[-1] != order:
        raise ValueError(f"{name} must be (M, {order}) shared by the runs or (B, M, {order}) for a tensor of order "
                         f"{order}, got shape {tuple(indices.shape)}")
    flat = indices.reshape(-1, order)
    if flat.shape[0] and (bool((flat.amin(0) < 0).any())
                          or bool((flat.amax(0).long() >= torch.tensor(shape, device=indices.device)).any())):
        raise ValueError(f"{name} out of range for a tensor of shape {tuple(shape)}")


def mode_sizes(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, refused unless non-empty and made of positive integers (a size of 2.7 is a
    mistake, not a 2).

    Parameters
    ----------
    shape : iterable
        The mode sizes as given (Python, NumPy or 0-d tensor integers).

    Returns
    -------
    tuple of int
        The sizes.

    Raises
    ------
    ValueError
        When ``shape`` is empty or holds a size that is not an integer >= 1.
    """
    try:
        sizes = () if isinstance(shape, str) else tuple(shape)
    except TypeError:  # not iterable
        sizes = ()
    if not sizes or not all(is_positive_integer(d) for d in sizes):
        raise ValueError(f"shape must be a non-empty tuple of positive integer mode sizes, got {shape}")
    return tuple(operator.index(d) for d in sizes)


def _positive_finite_scales(init_scale: Tensor | float) -> Tensor:
    """``init_scale`` as a float64 tensor, refused unless every value is positive and finite."""
    scales = torch.as_tensor(init_scale, dtype=torch.float64)
    if not bool(((scales > 0) & torch.isfinite(scales)).all()):
        raise ValueError(f"init_scale must be positive and finite, got {scales.tolist()}")
    return scales


def per_run_scales(
    init_scale: Tensor | float, generator: list[torch.Generator] | tuple, batch: int, dtype: torch.dtype
) -> tuple[list[torch.Generator], Tensor]:
    """Check ``init`` arguments: at least one run, one generator per run, finite positive init scales, one per run
    (or one for all), a floating dtype; returns the generators and a (B,) float64 tensor of scales."""
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    if isinstance(generator, torch.Generator):
        raise ValueError("generator must be a list of one torch.Generator per run (generators(seeds)), got one")
    gens = list(generator)
    if len(gens) != batch:
        raise ValueError(f"need one generator per run: batch={batch}, generators={len(gens)}")
    scale = _positive_finite_scales(init_scale).reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(batch)
    if scale.numel() != batch:
        raise ValueError(f"init_scale must be one per run (batch={batch}) or one for all, got {scale.tolist()}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    return gens, scale


def check_init(owner: str, init_method: str, allowed: tuple[str, ...]) -> None:
    """Refuse an init that does not apply: one line naming the argument and the allowed values."""
    if init_method not in allowed:
        raise ValueError(f"init_method must be one of {allowed} for {owner}, got {init_method!r}")


def product_entry_std(init_scale: Tensor | float, log_count: float, factors: int) -> Tensor:
    """The per-entry std s with count · s^(2·factors) = init_scale², from log(count); as a tensor like
    init_scale. This is E||W||_F² for W multilinear in ``factors`` zero-mean factors whose entries have
    variance s², when E||W||_F² = count · s^(2·factors) (count: a product of sizes). ValueError unless every
    init_scale is positive and finite."""
    return per_value(_positive_finite_scales(init_scale),
                     lambda scale: math.exp((2.0 * math.log(scale) - log_count) / (2.0 * factors)))


def per_value(values: Tensor | float, function) -> Tensor:
    """``function`` of every value, in float64 scalar arithmetic: the same result for a run whatever the
    batch it is in (vectorized kernels may round differently with the tensor's length)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    return torch.tensor([function(v) for v in values.reshape(-1).tolist()], dtype=torch.float64).reshape(values.shape)


def product_scale(std: float, log_count: float, factors: int) -> float:
    """The inverse of ``product_entry_std``: sqrt(count) · std^factors, computed in the log domain."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    log_scale = 0.5 * log_count + factors * math.log(std)
    if not -745.0 < log_scale < 709.0:
        raise ValueError(f"std {std} gives an init_scale of exp({log_scale:.4g}), outside float64")
    return math.exp(log_scale)


def batched_normal(
    gens: list[torch.Generator], shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device | str
) -> Tensor:
    """A ``(B, *shape)`` standard normal tensor, run b drawn from ``gens[b]`` (on the CPU, then moved)."""
    draws = [torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]
    return torch.stack(draws).to(dtype=dtype, device=device)


def power_law_rates(sigma: Tensor, inner: Tensor, order: int | float) -> Tensor:
    """σ̇ = N·γ·σ^(2−2/N) from σ and inner = <−∇L(W), T> = σ·γ, T the quantity's (unnormalized) term of W.

    Written as N·inner·σ^(1−2/N), which stays finite at σ = 0 for N >= 2.
    """
    if order == 1:
        return inner / sigma.clamp_min(torch.finfo(sigma.dtype).tiny)
    return order * inner * sigma.pow(1.0 - 2.0 / order)


def check_order(order: int | float | None, default: int) -> int | float:
    """The N of a law: ``default`` when ``order`` is None, else ``order`` (positive)."""
    if order is None:
        return default
    if not order > 0:
        raise ValueError(f"order must be positive, got {order}")
    return order
