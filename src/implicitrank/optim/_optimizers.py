"""Optimizers as small (init, update) pairs over stacked ``(B, …)`` parameters (optax style).

``init(params) -> state`` and ``update(grads, state, lr) -> (updates, state)``, where ``lr`` is a
``(B,)`` tensor (one learning rate per run) and the step is θ ← θ − update. States are dicts of
tensors, so they checkpoint with ``torch.save`` and load back with ``weights_only=True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UsageError

State = dict[str, Tensor | list[Tensor]]


@dataclass(frozen=True)
class Optimizer:
    """An optimizer as a pair of functions over stacked per-run parameters (B, …), in the manner of optax.

    ``init(params) -> state``; ``update(grads, state, lr) -> (updates, state)`` with ``lr`` of shape (B,), one
    learning rate per run; the loop applies θ ← θ − update. Every update is proportional to ``lr``, so a run
    given lr = 0 stands still.

    Attributes
    ----------
    name : str
        The registry name (``gd``, ``global-rmsprop``, ``adam``).
    init : callable
        ``init(params) -> state``; the state is a dict of tensors (checkpointable with ``torch.save``).
    update : callable
        ``update(grads, state, lr) -> (updates, state)``.
    """

    name: str
    init: Callable[[list[Tensor]], State]
    update: Callable[[list[Tensor], State, Tensor], tuple[list[Tensor], State]]


def per_run(value: Tensor, like: Tensor) -> Tensor:
    """Reshape a (B,) tensor to broadcast against a (B, …) tensor.

    Parameters
    ----------
    value : Tensor
        (B,).
    like : Tensor
        (B, …), whose number of dimensions is matched.

    Returns
    -------
    Tensor
        A view of ``value``, (B, 1, …, 1).
    """
    return value.view(-1, *([1] * (like.dim() - 1)))


def gradient_descent() -> Optimizer:
    """Plain gradient descent, θ ← θ − lr·g: the discretization of gradient flow the theory studies.

    Returns
    -------
    Optimizer
        Named ``gd``, with an empty state.
    """

    def init(params: list[Tensor]) -> State:
        return {}

    def update(grads: list[Tensor], state: State, lr: Tensor) -> tuple[list[Tensor], State]:
        return [per_run(lr, g) * g for g in grads], state

    return Optimizer("gd", init, update)


def global_rmsprop(decay: float = 0.99, eps: float = 1e-4) -> Optimizer:
    """The papers' "global RMSprop": one scalar second moment per run over all its parameters.

    s_t = decay·s_{t−1} + (1−decay)·||g||², bias-corrected ŝ_t = s_t/(1 − decay^t), and
    θ ← θ − lr·g/(√ŝ_t + eps). The direction is exactly the gradient; only the step size adapts (a time
    reparametrization of gradient flow). eps was 1e-4 in Arora et al. 2019 and 1e-6 in Razin et al. 2021/2022.

    Parameters
    ----------
    decay : float, optional
        The second moment's decay, in [0, 1). Default 0.99.
    eps : float, optional
        Added to √ŝ_t, positive. Default 1e-4.

    Returns
    -------
    Optimizer
        Named ``global-rmsprop``; state ``second_moment`` (B,) and ``count``.

    Raises
    ------
    UsageError
        When ``decay`` is not in [0, 1) or ``eps`` is not positive and finite.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (its experiments' optimizer, eps 1e-4).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, §5 (experiments,
    eps 1e-6).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §4 (experiments, eps 1e-6).
    """
    if not 0.0 <= decay < 1.0:
        raise UsageError(f"decay must be in [0, 1), got {decay}")
    if not 0 < eps < math.inf:
        raise UsageError(f"eps must be positive and finite, got {eps}")

    def init(params: list[Tensor]) -> State:
        p = params[0]
        return {"second_moment": torch.zeros(p.shape[0], dtype=p.dtype, device=p.device),
                "count": torch.zeros((), dtype=p.dtype, device=p.device)}

    def update(grads: list[Tensor], state: State, lr: Tensor) -> tuple[list[Tensor], State]:
        squares = [g.pow(2).flatten(1).sum(1) for g in grads]
        sq_norm = squares[0]
        for square in squares[1:]:  # not sum(), whose 0 + ... is one more kernel a step
            sq_norm = sq_norm + square
        second = decay * state["second_moment"] + (1.0 - decay) * sq_norm
        count = state["count"] + 1
        step = lr / ((second / (1.0 - decay**count)).sqrt() + eps)
        return torch._foreach_mul(grads, [per_run(step, g) for g in grads]), {"second_moment": second, "count": count}

    return Optimizer("global-rmsprop", init, update)


def adam(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam with per-entry moments, applied to each run independently.

    Parameters
    ----------
    beta1 : float, optional
        First-moment decay, in [0, 1). Default 0.9.
    beta2 : float, optional
        Second-moment decay, in [0, 1). Default 0.999.
    eps : float, optional
        Added to the root of the bias-corrected second moment. Default 1e-8.

    Returns
    -------
    Optimizer
        Named ``adam``; state ``m``, ``v`` (one tensor per parameter) and ``count``.

    Raises
    ------
    UsageError
        When ``beta1`` or ``beta2`` is not in [0, 1), or ``eps`` is not positive and finite.

    References
    ----------
    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1.
    """
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise UsageError(f"beta1 and beta2 must be in [0, 1), got {beta1}, {beta2}")
    if not 0 < eps < math.inf:
        raise UsageError(f"eps must be positive and finite, got {eps}")

    def init(params: list[Tensor]) -> State:
        return {"m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params],
                "count": torch.zeros((), dtype=params[0].dtype, device=params[0].device)}

    def update(grads: list[Tensor], state: State, lr: Tensor) -> tuple[list[Tensor], State]:
        count = state["count"] + 1
        m = [beta1 * mi + (1 - beta1) * g for mi, g in zip(state["m"], grads)]
        v = [beta2 * vi + (1 - beta2) * g * g for vi, g in zip(state["v"], grads)]
        c1, c2 = 1 - beta1**count, 1 - beta2**count
        updates = [per_run(lr, mi) * (mi / c1) / ((vi / c2).sqrt() + eps) for mi, vi in zip(m, v)]
        return updates, {"m": m, "v": v, "count": count}

    return Optimizer("adam", init, update)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "gd": gradient_descent,
    "global-rmsprop": global_rmsprop,
    "adam": adam,
}


def make_optimizer(name: str, **options: float) -> Optimizer:
    """An optimizer from its registry name.

    Parameters
    ----------
    name : str
        ``gd``, ``global-rmsprop`` or ``adam``.
    **options : float
        Keyword arguments of that optimizer's factory (e.g. ``eps=1e-6``).

    Returns
    -------
    Optimizer
        The optimizer.

    Raises
    ------
    UsageError
        On an unknown name.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**options)
