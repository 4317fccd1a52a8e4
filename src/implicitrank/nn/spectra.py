"""Singular values and effective rank of every layer of a network, once or as a training callback.

A factorized layer is measured through its end-to-end weight; a (grouped) convolution through its kernel
matrices (out/g) x (in/g·kh·kw), whose block diagonal is the layer's matrix, so its singular values are
those of all groups together. Effective rank exp(H(σ/Σσ)) (Roy & Vetterli 2007), as in
:func:`implicitrank.measure.effective_rank`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..measure import effective_rank, singular_values
from ._layers import FactorizedLayer, kernel_matrices, layer_weight


@dataclass(frozen=True)
class LayerSpectrum:
    """Singular values and effective rank of one layer.

    Attributes
    ----------
    name : str
        The layer's name in ``named_modules()``.
    singular_values : Tensor
        The singular values of all its groups' kernel matrices together, descending, float64, on the CPU.
    effective_rank : float
        exp(H(σ/Σσ)), H the Shannon entropy, as :func:`implicitrank.measure.effective_rank`.
    """

    name: str
    singular_values: Tensor
    effective_rank: float


def layer_spectra(model: nn.Module) -> dict[str, LayerSpectrum]:
    """The spectrum of every Linear/Conv2d layer, plain or factorized, keyed by module name.

    A factorized layer is measured through its end-to-end weight; its parts are not listed on their own. A
    (grouped) layer's singular values are those of its kernel matrices (out/g) x (in/g·kh·kw) together.

    Parameters
    ----------
    model : torch.nn.Module
        The network (or a single layer, listed under ``""``).

    Returns
    -------
    dict of str to LayerSpectrum
        One entry per layer, in ``named_modules()`` order.
    """
    spectra: dict[str, LayerSpectrum] = {}
    inside: list[str] = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if any(name.startswith(prefix + ".") or not prefix for prefix in inside):
                continue
            found = layer_weight(module)
            if found is None:
                continue
            if isinstance(module, FactorizedLayer):
                inside.append(name)
            weight, groups = found
            values = singular_values(kernel_matrices(weight.detach().double().cpu(), groups)).flatten()
            values = values.sort(descending=True).values
            spectra[name] = LayerSpectrum(name, values, float(effective_rank(values)))
    return spectra


@dataclass
class SpectraLog:
    """A training callback: ``log(model, step)`` records every layer's effective rank and top singular values.

    Each call appends ``step`` to ``steps`` and, per layer of :func:`layer_spectra`, the effective rank and the
    ``top`` largest singular values.

    Attributes
    ----------
    top : int or None
        How many singular values to keep per record, >= 1; ``None`` keeps all. Default 8.
    steps : list of int
        The steps recorded so far.
    effective_ranks : dict of str to list of float
        Per layer name, the effective rank at each recorded step.
    singular_values : dict of str to list of Tensor
        Per layer name, the top singular values (descending, float64) at each recorded step.

    Raises
    ------
    ValueError
        When ``top`` is below 1.
    """

    top: int | None = 8
    steps: list[int] = field(default_factory=list)
    effective_ranks: dict[str, list[float]] = field(default_factory=dict)
    singular_values: dict[str, list[Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.top is not None and self.top < 1:
            raise ValueError(f"top must be >= 1 or None, got {self.top}")

    def __call__(self, model: nn.Module, step: int) -> None:
        self.steps.append(int(step))
        for name, spectrum in layer_spectra(model).items():
            self.effective_ranks.setdefault(name, []).append(spectrum.effective_rank)
            self.singular_values.setdefault(name, []).append(spectrum.singular_values[: self.top])
