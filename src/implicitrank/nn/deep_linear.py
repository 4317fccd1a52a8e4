"""A linear layer stored as a deep matrix factorization, y = W_N ⋯ W_1 x + b.

Same function class as ``nn.Linear`` (the hidden widths default to ``min(in, out)``, which leaves the
rank unconstrained), but gradient descent on the factors drives the end-to-end matrix towards low rank:
its singular values move as σ̇ ∝ σ^{2−2/N} and are learned one at a time from a small initialization
(Arora, Cohen, Hu & Luo, NeurIPS 2019, Thm. 3). Linear over-parameterization of this kind is what
ExpandNets (Guo, Alvarez & Salzmann, NeurIPS 2020) collapse after training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..factorizations import MatrixFactorization
from ._init import matrix_factors
from ._layers import filled


class DeepLinear(nn.Module):
    """A linear layer stored as a deep matrix factorization: y = W_N ⋯ W_1 x + b.

    W_j has shape (d_j, d_{j-1}), d_0 = ``in_features``, d_N = ``out_features``. The function class is that of
    ``nn.Linear``, but gradient descent on the factors moves the end-to-end matrix's singular values as
    σ̇_r = −N·(σ_r²)^(1−1/N)·⟨∇L(W), u_r v_rᵀ⟩, so from a small initialization they are learned one at a time and
    W tends to low rank.

    Parameters
    ----------
    in_features : int
        Input size d_0.
    out_features : int
        Output size d_N.
    depth : int
        N >= 1 factors (1 is a plain linear layer).
    width : int or None, optional
        Every hidden width d_1..d_{N-1}; ``None`` (default) means ``min(in, out)`` (rank unconstrained).
    init_scale : float, optional
        The scale of the end-to-end matrix at initialization, E||W(0)||_F² = init_scale²·min(in, out) for every
        scheme (the :class:`~implicitrank.factorizations.MatrixFactorization` init_scale, the root-mean-square
        ||W(0)||_F, is init_scale·√min(in, out)); small values (e.g. 1e-3) bring out the implicit low-rank bias,
        ~1 matches common network initializations. Default 1.
    init : str, optional
        An initialization scheme of :class:`~implicitrank.factorizations.MatrixFactorization` (its ``inits``).
        Default ``"gaussian"``.
    bias : bool, optional
        Learn an additive bias b (initialized to zero), applied once after the product. Default True.
    generator : torch.Generator or None, optional
        Seeds the draw of the factors W_1..W_N; with ``None`` the seed comes from torch's global RNG, so
        ``torch.manual_seed`` alone makes the layer reproducible.
    device : torch.device or str or None, optional
        Where the factors and the bias are created (the CPU for ``None``).
    dtype : torch.dtype or None, optional
        Floating type of the factors and the bias; ``None`` uses ``torch.get_default_dtype()``.

    Raises
    ------
    ValueError
        When ``in_features``, ``out_features``, ``depth`` or ``width`` is below 1, ``init_scale`` is not positive
        or ``init`` is not a scheme of the factorization.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Theorem 3 (singular value dynamics).

    S. Guo, J. M. Alvarez, M. Salzmann, "ExpandNets: Linear Over-parameterization to Train Compact
    Convolutional Networks", NeurIPS 2020, §3 (linear over-parameterization, collapsed after training).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        depth: int,
        width: int | None = None,
        *,
        init_scale: float = 1.0,
        init: str = "gaussian",
        bias: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        factors = matrix_factors(out_features, in_features, depth, width, init=init, init_scale=init_scale,
                                 generator=generator, dtype=dtype, device=device)
        self.in_features, self.out_features, self.depth = in_features, out_features, depth
        self.factorization = MatrixFactorization(out_features, in_features, depth=depth,
                                                 widths=None if width is None else (width,) * (depth - 1))
        self.factors = nn.ParameterList([nn.Parameter(f[0]) for f in factors])
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=factors[0].dtype, device=factors[0].device)) \
            if bias else None

    @property
    def widths(self) -> tuple[int, ...]:
        """(d_0, ..., d_N)."""
        return self.factorization.dims

    def forward(self, x: Tensor) -> Tensor:
        """Apply the factors one after another (never forming W), then the bias.

        Parameters
        ----------
        x : Tensor
            Inputs whose last dimension has size d_0 = ``in_features``; any leading dimensions.

        Returns
        -------
        Tensor
            W_N ⋯ W_1 x (+ b if learned), with the last dimension now d_N = ``out_features``.
        """
        for factor in self.factors:
            x = F.linear(x, factor)
        return x if self.bias is None else x + self.bias

    def end_to_end(self) -> Tensor:
        """The end-to-end matrix W = W_N ⋯ W_1 (differentiable).

        Returns
        -------
        Tensor
            Shape (out_features, in_features).
        """
        return self.factorization.end_to_end([f.unsqueeze(0) for f in self.factors])[0]

    def collapsed(self) -> nn.Linear:
        """Collapse the factors into one ``nn.Linear``, as ExpandNets do after training.

        Returns
        -------
        torch.nn.Linear
            A new layer with weight W = W_N ⋯ W_1 and this layer's bias, both copied, so training either layer
            afterwards leaves the other alone.
        """
        weight = self.end_to_end().detach()
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=weight.device, dtype=weight.dtype)
        return filled(plain, weight, self.bias)

    def extra_repr(self) -> str:
        """What ``print(module)`` shows inside ``DeepLinear(...)``.

        Returns
        -------
        str
            ``in_features``, ``out_features``, the depth N, the widths (d_0, ..., d_N) and whether b is learned.
        """
        return (f"in_features={self.in_features}, out_features={self.out_features}, depth={self.depth}, "
                f"widths={self.widths}, bias={self.bias is not None}")
