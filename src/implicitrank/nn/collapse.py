"""After training: collapse factorized layers to plain ones, then compress by truncated SVD.

``collapse`` removes all over-parameterization overhead (ExpandNets, Guo et al., NeurIPS 2020, §3): the
result computes the same function with plain ``nn.Linear``/``nn.Conv2d`` layers. ``compress`` then keeps
the top ``r`` singular triplets of every layer's kernel matrix (Eckart–Young: the best rank-r
approximation in Frobenius and spectral norm) and stores W ≈ (U_r S_r^{1/2})(S_r^{1/2} V_rᵀ) as two thin
layers — cheap exactly when training left the layer close to low rank, which is what the implicit rank
bias of depth does (Arora et al., NeurIPS 2019).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._layers import PLAIN_LAYERS, FactorizedLayer, kernel_matrices


def collapse(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every factorized layer replaced by its equivalent plain layer.

    Factorized layers (:class:`DeepLinear`, :class:`DeepConv2d`, :class:`TensorizedLinear`) become the
    ``nn.Linear``/``nn.Conv2d`` holding their end-to-end weight (their ``collapsed()``), so the copy computes the
    same function (to float tolerance) without the over-parameterization. ``model`` itself is left untouched.

    Parameters
    ----------
    model : torch.nn.Module
        A network, or a single factorized layer.

    Returns
    -------
    torch.nn.Module
        A deep copy of ``model`` with its factorized layers collapsed; for a factorized layer, its plain layer.

    References
    ----------
    S. Guo, J. M. Alvarez, M. Salzmann, "ExpandNets: Linear Over-parameterization to Train Compact
    Convolutional Networks", NeurIPS 2020, §3 (contracting an expanded network back to the compact one).
    """
    if isinstance(model, FactorizedLayer):
        return model.collapsed()
    model = copy.deepcopy(model)
    _collapse_children(model)
    return model


def _collapse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, FactorizedLayer):
            setattr(module, name, child.collapsed())
        else:
            _collapse_children(child)


@dataclass(frozen=True)
class LayerCompression:
    """One layer's truncation by :func:`compress`.

    FLOPs count 2 per multiply-add of the weights (bias ignored), per example when ``compress`` got an
    ``example_input``, else per output position.

    Attributes
    ----------
    name : str
        The layer's name in ``named_modules()`` (``""`` for a model that is one layer).
    groups : int
        The layer's groups g (1 for a Linear layer).
    matrix_shape : tuple of int
        Shape of one group's kernel matrix, (out/g, in/g·kh·kw).
    rank : int
        Singular values kept per group.
    energy_kept : float
        Σ_{i≤r} σ_i² / Σ σ_i² over all groups.
    factored : bool
        Whether the layer became two thin layers (only when that is smaller; otherwise the truncated weight stays
        in one dense layer).
    params_before : int
        Parameters of the layer before (bias included).
    params_after : int
        Parameters of its replacement.
    flops_before : int
        FLOPs of the layer before.
    flops_after : int
        FLOPs of its replacement.
    """

    name: str
    groups: int
    matrix_shape: tuple[int, int]
    rank: int
    energy_kept: float
    factored: bool
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int

    @property
    def max_rank(self) -> int:
        """The largest rank a group's kernel matrix can have: its smaller side."""
        return min(self.matrix_shape)


@dataclass(frozen=True)
class CompressionReport:
    """What :func:`compress` did: parameters of the whole model and FLOPs of its compressed layers.

    Attributes
    ----------
    layers : tuple of LayerCompression
        One entry per compressed layer.
    params_before : int
        Parameters of the collapsed model, before truncation.
    params_after : int
        Parameters of the compressed model.
    """

    layers: tuple[LayerCompression, ...]
    params_before: int
    params_after: int

    @property
    def params_saved(self) -> int:
        """Parameters removed: ``params_before - params_after``."""
        return self.params_before - self.params_after

    @property
    def flops_before(self) -> int:
        """FLOPs of the compressed layers before truncation, summed."""
        return sum(layer.flops_before for layer in self.layers)

    @property
    def flops_after(self) -> int:
        """FLOPs of their replacements, summed."""
        return sum(layer.flops_after for layer in self.layers)

    @property
    def flops_saved(self) -> int:
        """FLOPs removed: ``flops_before - flops_after``."""
        return self.flops_before - self.flops_after

    def table(self) -> str:
        """The report as a plain-text table.

        Returns
        -------
        str
            One row per layer (name, kernel matrix shape, rank, energy kept, parameters and FLOPs before -> after)
            and a total row.
        """
        rows = [f"{'layer':<16}{'matrix':>12}{'rank':>6}{'energy':>8}{'params':>16}{'FLOPs':>20}"]
        for layer in self.layers:
            g = f"{layer.groups}x" if layer.groups > 1 else ""
            rows.append(f"{layer.name or '(model)':<16}{g + '{}x{}'.format(*layer.matrix_shape):>12}{layer.rank:>6}"
                        f"{layer.energy_kept:>8.4f}{f'{layer.params_before}->{layer.params_after}':>16}"
                        f"{f'{layer.flops_before}->{layer.flops_after}':>20}")
        rows.append(f"{'total':<16}{'':>12}{'':>6}{'':>8}{f'{self.params_before}->{self.params_after}':>16}"
                    f"{f'{self.flops_before}->{self.flops_after}':>20}")
        return "\n".join(rows)


def compress(
    model: nn.Module,
    *,
    rank: int | Mapping[str, int] | None = None,
    energy: float | None = None,
    example_input: Tensor | None = None,
) -> tuple[nn.Module, CompressionReport]:
    """Collapse ``model``, then replace its layers by their truncated SVD.

    Each chosen Linear/Conv2d layer keeps the top r singular triplets of every group's kernel matrix (the best
    rank-r approximation in Frobenius and spectral norm, by the Eckart–Young theorem) and is stored as
    W ≈ (U_r S_r^{1/2})(S_r^{1/2} V_rᵀ): two thin layers (a Linear or grouped k×k convolution to r channels per
    group, then a Linear or grouped 1×1 convolution carrying the bias), or, when the pair would not be smaller,
    one dense layer holding the truncated weight. ``model`` itself is left untouched. Give exactly one of
    ``rank`` and ``energy``.

    Parameters
    ----------
    model : torch.nn.Module
        The network (factorized layers are collapsed first, see :func:`collapse`).
    rank : int or Mapping of str to int, optional
        An int kept in every Linear/Conv2d layer (per group), or ``{layer name: rank}`` for just those layers
        (names as in ``named_modules()``; ``""`` for a model that is one layer). Each rank lies in
        [1, the smaller side of the layer's kernel matrix].
    energy : float, optional
        In (0, 1]: each layer keeps the fewest singular values with Σ_{i≤r} σ_i² ≥ energy·Σ σ_i² (per group; the
        layer takes the largest group's r).
    example_input : Tensor, optional
        A batch the model accepts; given, one forward pass counts each layer's output positions and FLOPs are
        per example. ``None`` (default): per output position.

    Returns
    -------
    compressed : torch.nn.Module
        The compressed copy.
    report : CompressionReport
        Per layer: rank, energy kept, parameters and FLOPs before and after.

    Raises
    ------
    ValueError
        When both or neither of ``rank`` and ``energy`` are given, ``energy`` is outside (0, 1], ``rank`` names
        unknown layers or is not a positive int, or a rank exceeds a layer's smaller side.
    """
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank= or energy=")
    if energy is not None and not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    plain = collapse(model)
    params_before = _count(plain)
    layers = {name: m for name, m in plain.named_modules() if isinstance(m, PLAIN_LAYERS)}
    if isinstance(rank, Mapping):
        unknown = sorted(set(rank) - set(layers))
        if unknown:
            raise ValueError(f"rank names unknown layers {unknown}; compressible layers are {sorted(layers)}")
        layers = {name: layers[name] for name in rank}
    elif rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be a positive int or a mapping of layer names to ranks, got {rank!r}")
    positions = _output_positions(plain, layers, example_input)
    reports = []
    with torch.no_grad():
        for name, layer in layers.items():
            groups = getattr(layer, "groups", 1)
            matrices = kernel_matrices(layer.weight.double(), groups)
            u, s, vh = torch.linalg.svd(matrices, full_matrices=False)
            r = _energy_rank(s, energy) if energy is not None else (rank[name] if isinstance(rank, Mapping) else rank)
            if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= s.shape[-1]:
                raise ValueError(f"rank for layer {name!r} must be an int in [1, {s.shape[-1]}] (the smaller side "
                                 f"of its kernel matrix, {tuple(matrices.shape[1:])} per group), got {r!r}")
            root = s[:, :r].sqrt()
            left, right = u[:, :, :r] * root.unsqueeze(1), root.unsqueeze(2) * vh[:, :r, :]
            replacement, factored = _thin_or_dense(layer, left, right)
            plain = _replace(plain, name, replacement)
            reports.append(LayerCompression(
                name=name, groups=groups, matrix_shape=tuple(matrices.shape[1:]), rank=r,
                energy_kept=float(s[:, :r].pow(2).sum() / s.pow(2).sum().clamp_min(1e-300)), factored=factored,
                params_before=_count(layer), params_after=_count(replacement),
                flops_before=2 * positions[name] * layer.weight.numel(),
                flops_after=2 * positions[name] * (sum(m.weight.numel() for m in replacement) if factored
                                                   else layer.weight.numel())))
    return plain, CompressionReport(tuple(reports), params_before, _count(plain))


def _energy_rank(s: Tensor, energy: float) -> int:
    """The fewest leading singular values holding ``energy`` of Σ σ² in every group (1 for an all-zero kernel,
    whose one value already holds all of its nothing)."""
    total = s.pow(2).sum(-1, keepdim=True)
    cumulative = torch.where(total > 0, s.pow(2).cumsum(-1) / total.clamp_min(1e-300), 1.0)
    # a tiny slack so that energy=1 is met despite rounding in the cumulative sum
    return int((cumulative < energy - 1e-12).sum(-1).max()) + 1


def _thin_or_dense(layer: nn.Module, left: Tensor, right: Tensor) -> tuple[nn.Module, bool]:
    """Two thin layers x -> right -> left (per group: right is (r, in/g·kh·kw), left (out/g, r)), or the
    dense layer with weight left @ right when the thin pair would not be smaller."""
    groups, r = left.shape[0], left.shape[2]
    weight = layer.weight
    bias = layer.bias is not None
    if left.numel() + right.numel() >= weight.numel():
        dense = copy.deepcopy(layer)
        dense.weight.copy_((left @ right).reshape(weight.shape))
        return dense, False
    kind = dict(device=weight.device, dtype=weight.dtype)
    if isinstance(layer, nn.Linear):
        first = nn.Linear(layer.in_features, r, bias=False, **kind)
        second = nn.Linear(r, layer.out_features, bias=bias, **kind)
    else:
        first = nn.Conv2d(layer.in_channels, groups * r, layer.kernel_size, stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, groups=groups, bias=False,
                          padding_mode=layer.padding_mode, **kind)
        second = nn.Conv2d(groups * r, layer.out_channels, 1, groups=groups, bias=bias, **kind)
    first.weight.copy_(right.reshape(first.weight.shape))
    second.weight.copy_(left.reshape(second.weight.shape))
    if bias:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second), True


def _replace(root: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``name`` in ``root``; returns the (possibly new) root."""
    if not name:
        return new
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent), child, new)
    return root


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _output_positions(model: nn.Module, layers: dict[str, nn.Module], example_input: Tensor | None) -> dict[str, int]:
    """Output positions per example of each layer (spatial positions of a conv, leading dims of a linear
    layer beyond the batch), measured by one forward pass on ``example_input``; 1 each without it."""
    if example_input is None:
        return dict.fromkeys(layers, 1)
    positions: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs, output: Tensor) -> None:
            channels = module.out_features if isinstance(module, nn.Linear) else module.out_channels
            positions[name] = output.numel() // (channels * example_input.shape[0])
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return positions
