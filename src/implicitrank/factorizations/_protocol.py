"""The one small protocol behind the three factorizations of the analogy table.

Matrix factorization (singular values), CP tensor factorization (component norms) and hierarchical
tensor factorization (local component norms) all expose the same four things, so tasks, training,
measurements, results and the command line are written once against them:

* ``init(batch, init_scale, generator)``: the parameters, a list of tensors with a leading run
  dimension ``B`` (B independent runs train in one tensor program; a single run is B = 1);
* ``end_to_end(params)``: the end-to-end tensor, shape ``(B, *shape)``;
* ``evaluate(params, indices)``: its entries at integer multi-indices without forming it, ``(B, M)``;
* ``quantities(params)``: the tracked quantities (``quantity_name``), ``(B, K)``, sorted descending;
  they obey sigma_dot = K * gamma * sigma^(2 - 2/K) (Arora et al. 2019, Thm. 3; Razin et al. 2021, 2022).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Factorization(Protocol):
    """A batched factorization of a tensor of shape ``shape`` (see the module docstring)."""

    shape: tuple[int, ...]
    quantity_name: str

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

    def quantities(self, params: list[Tensor]) -> Tensor: ...


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


def batched_normal(
    gens: list[torch.Generator], shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device | str
) -> Tensor:
    """A ``(B, *shape)`` standard normal tensor, run b drawn from ``gens[b]`` (on the CPU, then moved)."""
    draws = [torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]
    return torch.stack(draws).to(dtype=dtype, device=device)
