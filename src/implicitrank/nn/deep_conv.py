"""A convolution stored as a k×k convolution followed by 1×1 convolutions (ExpandNets-style expansion).

A 1×1 convolution mixes channels at each position, so it commutes with the spatial part of the k×k one:
the stack is exactly one k×k convolution whose kernel, per group and flattened to a matrix
``(out/g) x (in/g·k·k)``, is the product W_N ⋯ W_1 of the flattened kernels — a deep matrix
factorization (Arora et al., NeurIPS 2019) of every group's kernel matrix (Guo, Alvarez & Salzmann,
"ExpandNets", NeurIPS 2020, §3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..factorizations import MatrixFactorization
from ._init import matrix_factors
from ._layers import filled

Pair = int | tuple[int, int]


def _pair(value: Pair, name: str, least: int = 1) -> tuple[int, int]:
    """``value`` as a pair of ints >= ``least`` (a stride of 0 or a padding of -1 failed only in forward)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < least for v in pair):
        raise ValueError(f"{name} must be an int >= {least} or a pair of them, got {value!r}")
    return pair


class DeepConv2d(nn.Module):
    """A convolution stored as a deep matrix factorization of its kernel: mathematically one ``nn.Conv2d``.

    A k×k ``groups``-grouped convolution ``in -> width``, then ``depth - 1`` grouped 1×1 convolutions
    ``width -> … -> out``; the bias, if any, is added once at the end. Per group, the flattened kernels multiply
    to the equivalent kernel matrix W_N ⋯ W_1 of shape (out/g, in/g·kh·kw), whose singular values gradient
    descent learns one at a time from a small initialization, as for :class:`DeepLinear`.

    Parameters
    ----------
    in_channels : int
        Input channels, a multiple of ``groups``.
    out_channels : int
        Output channels, a multiple of ``groups``.
    kernel_size : int or tuple of int
        (kh, kw) of the first convolution, as ``nn.Conv2d``.
    depth : int
        N >= 1 convolutions in the stack (1 is a plain convolution).
    width : int or None, optional
        Channels between the convolutions, a multiple of ``groups``; ``None`` (default) means ``out_channels``,
        which leaves each group's kernel rank unconstrained.
    stride : int or tuple of int, optional
        Stride of the first convolution. Default 1.
    padding : int or tuple of int or str, optional
        Zero padding of the first convolution, or ``"same"`` / ``"valid"``. Default 0.
    dilation : int or tuple of int, optional
        Dilation of the first convolution. Default 1.
    groups : int, optional
        Groups g of every convolution in the stack. Default 1.
    bias : bool, optional
        Learn an additive bias (initialized to zero), applied once after the last convolution. Default True.
    init_scale : float, optional
        Per group as in :class:`DeepLinear`: E||W(0)||_F² = init_scale²·min(rows, cols) for each group's kernel
        matrix. Default 1.
    init : str, optional
        An initialization scheme of :class:`~implicitrank.factorizations.MatrixFactorization`. Default
        ``"gaussian"``.
    generator : torch.Generator or None, optional
        Seeds one independent draw of the factorized kernel per group; ``None`` takes those seeds from torch's
        global RNG.
    device : torch.device or str or None, optional
        Device of the kernels and the bias, the CPU when ``None``.
    dtype : torch.dtype or None, optional
        The kernels' and the bias' dtype, torch's default dtype when ``None``.

    Raises
    ------
    ValueError
        When ``groups`` < 1, a channel count or ``width`` is not a positive multiple of ``groups``, ``padding`` is
        an unknown string, a size is not an int or a pair of ints (>= 1; ``padding`` >= 0), ``depth`` < 1,
        ``init_scale`` is not positive or ``init`` is not a scheme of the factorization.

    References
    ----------
    S. Guo, J. M. Alvarez, M. Salzmann, "ExpandNets: Linear Over-parameterization to Train Compact
    Convolutional Networks", NeurIPS 2020, §3 (linear expansion of convolutional layers).

    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Theorem 3 (the singular value dynamics of a deep matrix factorization).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        depth: int,
        width: int | None = None,
        *,
        stride: Pair = 1,
        padding: Pair | str = 0,
        dilation: Pair = 1,
        groups: int = 1,
        bias: bool = True,
        init_scale: float = 1.0,
        init: str = "gaussian",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        width = out_channels if width is None else width
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width)):
            if value < 1 or value % groups:
                raise ValueError(f"{name} must be a positive multiple of groups={groups}, got {value}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        self.in_channels, self.out_channels, self.depth, self.width, self.groups = (
            in_channels, out_channels, depth, width, groups)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", least=0)
        kh, kw = self.kernel_size
        rows, cols = out_channels // groups, in_channels // groups * kh * kw
        self.factorization = MatrixFactorization(
            rows, cols, depth=depth, widths=None if depth == 1 else (width // groups,) * (depth - 1))
        factors = matrix_factors(rows, cols, depth, width // groups, init=init, init_scale=init_scale,
                                 groups=groups, generator=generator, dtype=dtype, device=device)
        first = factors[0].reshape(-1, in_channels // groups, kh, kw)
        rest = [f.reshape(-1, f.shape[-1], 1, 1) for f in factors[1:]]
        self.kernels = nn.ParameterList([nn.Parameter(k.contiguous()) for k in (first, *rest)])
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=first.dtype, device=first.device)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Apply the convolutions one after another (never forming the equivalent kernel), then the bias.

        Parameters
        ----------
        x : Tensor
            A (batch, in_channels, H, W) batch of feature maps, read by the k×k convolution.

        Returns
        -------
        Tensor
            Shape (batch, out_channels, H', W'), as ``nn.Conv2d`` with the same size arguments gives.
        """
        last = len(self.kernels) - 1
        x = F.conv2d(x, self.kernels[0], self.bias if last == 0 else None, self.stride, self.padding,
                     self.dilation, self.groups)
        for j in range(1, last + 1):
            x = F.conv2d(x, self.kernels[j], self.bias if j == last else None, groups=self.groups)
        return x

    def end_to_end(self) -> Tensor:
        """The equivalent kernel: per group the product of the flattened kernels, W_N ⋯ W_1.

        W_1 is the flattened k×k kernel, (width/g, in/g·kh·kw); the product is differentiable.

        Returns
        -------
        Tensor
            Shape (out_channels, in_channels/groups, kh, kw).
        """
        g = self.groups
        matrices = [k.reshape(g, k.shape[0] // g, -1) for k in self.kernels]
        product = self.factorization.end_to_end(matrices)
        return product.reshape(self.out_channels, self.in_channels // g, *self.kernel_size)

    def collapsed(self) -> nn.Conv2d:
        """Collapse the stack into the one ``nn.Conv2d`` it equals (ExpandNets' contraction).

        Returns
        -------
        torch.nn.Conv2d
            A new layer with this layer's kernel size, stride, padding, dilation and groups, holding copies of
            :meth:`end_to_end`'s kernel and of the bias.
        """
        weight = self.end_to_end().detach()
        plain = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                          padding=self.padding, dilation=self.dilation, groups=self.groups,
                          bias=self.bias is not None, device=weight.device, dtype=weight.dtype)
        return filled(plain, weight, self.bias)

    def extra_repr(self) -> str:
        """The arguments ``print(module)`` lists for the convolution stack.

        Returns
        -------
        str
            In and out channels (as ``nn.Conv2d`` prints them), then kernel size, depth, width, stride, padding,
            dilation, groups and whether there is a bias.
        """
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, depth={self.depth}, "
                f"width={self.width}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")
