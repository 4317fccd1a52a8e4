"""What the model-level tools need to know about layers: which are factorized, and each layer's kernel
matrices (one per group)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class FactorizedLayer(Protocol):
    """A layer stored as a factorization of one plain layer: ``end_to_end()`` is that layer's weight and
    ``collapsed()`` the plain layer itself (outputs equal to float tolerance)."""

    def end_to_end(self) -> Tensor: ...

    def collapsed(self) -> nn.Module: ...


PLAIN_LAYERS = (nn.Linear, nn.Conv2d)


def filled(plain: nn.Linear | nn.Conv2d, weight: Tensor, bias: Tensor | None) -> nn.Linear | nn.Conv2d:
    """``plain`` (a fresh layer of the right shape) holding ``weight`` and ``bias``: a factorized layer's
    ``collapsed()``."""
    with torch.no_grad():
        plain.weight.copy_(weight)
        if bias is not None:
            plain.bias.copy_(bias)
    return plain


def kernel_matrices(weight: Tensor, groups: int = 1) -> Tensor:
    """A Linear weight (out, in) or Conv2d weight (out, in/g, kh, kw) as its ``groups`` kernel matrices,
    (g, out/g, in/g·kh·kw); the layer's matrix is their block diagonal, so its singular values are theirs
    together."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def layer_weight(module: nn.Module) -> tuple[Tensor, int] | None:
    """(weight, groups) of a plain or factorized Linear/Conv2d layer, ``None`` for any other module."""
    if isinstance(module, FactorizedLayer):
        return module.end_to_end(), getattr(module, "groups", 1)
    if isinstance(module, PLAIN_LAYERS):
        return module.weight, getattr(module, "groups", 1)
    return None
