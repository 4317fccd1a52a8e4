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
* ``end_to_end(params)``: the end-to-end tensor, shape ``(B, *shape)``;
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
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

INITS = ("gaussian", "balanced", "identity", "orthogonal")


@runtime_checkable
class Factorization(Protocol):
    """A batched factorization of a tensor of shape ``shape`` (see the module docstring)."""

    shape: tuple[int, ...]
    quantity_name: str
    init_method: str
    inits: tuple[str, ...]

    def entry_std(self, init_scale: Tensor | float) -> Tensor: ...

    def scale_for_entry_std(self, std: float) -> float: ...

    def init(
        self,
        batch: int,
        init_scale: Tensor,
        generator: torch.Generator | list[torch.Generator],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]: ...

    def end_to_end(self, params: list[Tensor]) -> Tensor: ...

    def evaluate(self, params: list[Tensor], indices: Tensor) -> Tensor: ...

    def quantities(self, params: list[Tensor], *, sort: bool = True) -> Tensor: ...

    def predicted_rates(self, params: list[Tensor], gradient: Tensor, *, order: int | None = None) -> Tensor: ...


def autograd_loss_and_grad(model: Factorization, params: list[Tensor], task) -> tuple[Tensor, list[Tensor]]:
    """Per-run loss ``(B,)`` and its gradients by autograd.

    Runs are independent, so the gradient of the summed loss is each run's own gradient.
    """
    with torch.enable_grad():
        leaves = [p.detach().requires_grad_(True) for p in params]
        loss = task.loss(model, leaves)
        grads = torch.autograd.grad(loss.sum(), leaves)
    return loss.detach(), [g.detach() for g in grads]


def loss_and_grad(model: Factorization, params: list[Tensor], task) -> tuple[Tensor, list[Tensor]]:
    """Per-run loss and gradients: the model's closed form where it has one (and, for a model with a
    ``closed_form_gradient`` flag, where that flag is true), else autograd."""
    closed_form = getattr(model, "loss_and_grad", None)
    if (closed_form is not None and hasattr(task, "dense_loss_and_grad")
            and getattr(model, "closed_form_gradient", True)):
        return closed_form(params, task.dense_loss_and_grad)
    return autograd_loss_and_grad(model, params, task)


def generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One ``torch.Generator`` per run, so run b of a batch equals the same run done alone."""
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def per_run_scales(
    init_scale: Tensor | float, generator: list[torch.Generator] | tuple, batch: int
) -> tuple[list[torch.Generator], Tensor]:
    """Check ``init`` arguments: one generator per run and positive init scales, one per run (or one
    for all); returns the generators and a (B,) float64 tensor of scales."""
    gens = list(generator)
    if len(gens) != batch:
        raise ValueError(f"need one generator per run: batch={batch}, generators={len(gens)}")
    scale = torch.as_tensor(init_scale, dtype=torch.float64).reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(batch)
    if scale.numel() != batch or bool((scale <= 0).any()):
        raise ValueError(f"init_scale must be positive, one per run (batch={batch}), got {scale.tolist()}")
    return gens, scale


def check_init(owner: str, init_method: str, allowed: tuple[str, ...]) -> None:
    """Refuse an init that does not apply: one line naming the argument and the allowed values."""
    if init_method not in allowed:
        raise ValueError(f"init_method must be one of {allowed} for {owner}, got {init_method!r}")


def product_entry_std(init_scale: Tensor | float, log_count: float, factors: int) -> Tensor:
    """The per-entry std s with count · s^(2·factors) = init_scale², from log(count); as a tensor like
    init_scale. This is E||W||_F² for W multilinear in ``factors`` zero-mean factors whose entries have
    variance s², when E||W||_F² = count · s^(2·factors) (count: a product of sizes)."""
    return per_value(init_scale, lambda scale: math.exp((2.0 * math.log(scale) - log_count) / (2.0 * factors)))


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
