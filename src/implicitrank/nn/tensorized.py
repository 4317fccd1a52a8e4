"""A linear layer whose weight is a tensor held as a CP or hierarchical tensor factorization.

With ``out = o_1⋯o_K`` and ``in = i_1⋯i_K``, the weight matrix is read as the order-K tensor
T[(o_1,i_1), …, (o_K,i_K)] = W[(o_1,…,o_K), (i_1,…,i_K)] (mode k pairs the k-th output and input
digits, as in tensorized networks: Novikov et al., NeurIPS 2015), and T is a CP factorization
(Razin, Maman & Cohen, ICML 2021) or a hierarchical tensor factorization over a mode tree (Razin, Maman &
Cohen, ICML 2022) — the package's ``CPFactorization`` / ``HierarchicalFactorization``. Gradient descent
on their factors learns components one at a time (σ̇ ∝ σ^{2−2/K}), lowering the tensor (or hierarchical
tensor) rank: the tensor analogue of :class:`DeepLinear`'s low matrix rank.

The forward pass never forms W: per mode it applies each leaf's (o_k × i_k) slices to the input's k-th
digit, carrying one channel index per open node of the tree (memory about batch × max(in, out) × the
product of the widths on a root-to-leaf path; CP is the one-level case).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..factorizations import CPFactorization, HierarchicalFactorization
from ._init import child_generators
from ._layers import filled

FORMATS = ("cp", "hierarchical")
LETTERS = "defghijklmnopqstuvwxyz"  # mode subscripts for einsum (a, b, c, r reserved)


class TensorizedLinear(nn.Module):
    """y = W x + b with W (out x in) a CP or hierarchical factorization of its order-K tensorization.

    The weight is read as the order-K tensor T[(o_1,i_1), …, (o_K,i_K)] = W[(o_1,…,o_K), (i_1,…,i_K)] (mode k
    pairs the k-th output and input digits, of size o_k·i_k), held as a
    :class:`~implicitrank.factorizations.CPFactorization` or a
    :class:`~implicitrank.factorizations.HierarchicalFactorization`. Gradient descent on the factors learns
    components one at a time (σ̇ ∝ σ^(2−2/K)), lowering the tensor (or hierarchical tensor) rank. The forward
    pass never forms W.

    Parameters
    ----------
    in_shape : sequence of int
        (i_1, …, i_K); in_features = Π i_k.
    out_shape : sequence of int
        (o_1, …, o_K), the same length K; out_features = Π o_k.
    format : str, optional
        ``"cp"`` (default) or ``"hierarchical"`` (needs K >= 2).
    rank : int or tuple of int or None, optional
        CP: the number of components R (one int); hierarchical: the width of every internal node, or a tuple in
        the tree's internal-node order. ``None`` (default): the factorization's default (as large as can matter).
    tree : object, optional
        The mode tree (nested tuples over modes 0..K-1) of the hierarchical format; ``None`` (default) is the
        balanced binary tree. Not allowed with ``"cp"``.
    init_scale : float, optional
        Every factor entry i.i.d. Gaussian with the std that gives the end-to-end weight
        E||W(0)||_F² = init_scale²·min(in, out), as :class:`DeepLinear` (the factorization's init_scale is
        init_scale·√min(in, out); 1 is a standard scale; small values bring out the implicit rank bias).
        Default 1.
    bias : bool, optional
        Learn an additive bias (initialized to zero). Default True.
    generator : torch.Generator or None, optional
        Seeds the Gaussian entries of every factor (CP factor matrices or the tree's node matrices); ``None``
        takes the seed from torch's global RNG.
    device : torch.device or str or None, optional
        The factors' and the bias' device: ``None`` keeps them on the CPU.
    dtype : torch.dtype or None, optional
        ``None`` means ``torch.get_default_dtype()``; otherwise the dtype of every factor and of the bias.

    Raises
    ------
    ValueError
        When the shapes are empty, of different lengths or not positive, there are more than 22 modes, ``format``
        is unknown, ``init_scale`` is not positive, ``tree`` or a tuple ``rank`` is given with ``"cp"``, or the
        hierarchical format gets a single mode.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, Theorem 1
    (component norms: σ̇_r = N·γ_r·σ_r^(2−2/N)).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, Theorem 1 (local component norms).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        format: str = "cp",
        rank: int | tuple[int, ...] | None = None,
        *,
        tree: object = None,
        init_scale: float = 1.0,
        bias: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_shape, out_shape = tuple(int(d) for d in in_shape), tuple(int(d) for d in out_shape)
        if not in_shape or len(in_shape) != len(out_shape) or min(in_shape + out_shape) < 1:
            raise ValueError(f"in_shape and out_shape must be non-empty, of equal length and positive, got "
                             f"{in_shape} and {out_shape}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        if len(in_shape) > len(LETTERS):
            raise ValueError(f"at most {len(LETTERS)} modes, got {len(in_shape)}")
        if not 0 < init_scale < math.inf:
            raise ValueError(f"init_scale must be positive and finite, got {init_scale}")
        if format == "cp" and tree is not None:
            raise ValueError("tree applies to the hierarchical format only")
        self.in_shape, self.out_shape, self.format = in_shape, out_shape, format
        self.in_features, self.out_features = math.prod(in_shape), math.prod(out_shape)
        shape = tuple(o * i for o, i in zip(out_shape, in_shape))
        if format == "cp":
            if isinstance(rank, tuple):
                raise ValueError(f"rank of the cp format must be one int (components), got {rank}")
            self.factorization = CPFactorization(shape, components=rank)
        else:
            if len(shape) < 2:
                raise ValueError(f"the hierarchical format needs at least 2 modes, got in_shape={in_shape}")
            self.factorization = HierarchicalFactorization(shape, tree=tree, widths=rank)
        # the factorization's init_scale is the root-mean-square ||W(0)||_F (W's entries are the weight's)
        norm = init_scale * math.sqrt(min(self.in_features, self.out_features))
        dtype = dtype or torch.get_default_dtype()
        params = self.factorization.init(1, torch.tensor(norm), child_generators(generator, 1), dtype=dtype,
                                         device=device or "cpu")
        self.factors = nn.ParameterList([nn.Parameter(p) for p in params])
        self.bias = nn.Parameter(torch.zeros(self.out_features, dtype=dtype, device=device)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Apply W and add the bias, mode by mode, without forming W.

        Parameters
        ----------
        x : Tensor
            Shape (..., in_features), in_features = Π i_k; the last dimension is split into the K input digits
            (i_1, …, i_K), row-major.

        Returns
        -------
        Tensor
            W x (+ b if learned): the output digits (o_1, …, o_K) flattened into a last dimension ``out_features``.
        """
        lead = x.shape[:-1]
        t = x.reshape(-1, 1, *self.in_shape)
        if self.format == "cp":
            t = self._cp_apply(t)
        else:
            t = self._tree_apply(self.factorization.tree.root, t, 1)
        y = t.reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def _leaf(self, mode: int, params: Tensor) -> Tensor:
        """Leaf matrix (D_k, R) of mode k as (R, o_k, i_k)."""
        return params.reshape(self.out_shape[mode], self.in_shape[mode], -1).permute(2, 0, 1)

    def _mode_product(self, t: Tensor, mode: int, leaf: Tensor) -> Tensor:
        """t (B, C, R, d_1..d_K) with digit ``mode`` an input digit; for each channel r apply leaf[r]
        (o_k x i_k) to it. Diagonal in r."""
        modes = LETTERS[: len(self.in_shape)]
        out = modes.replace(modes[mode], "a")
        return torch.einsum(f"bcr{modes},ra{modes[mode]}->bcr{out}", t, leaf)

    def _cp_apply(self, t: Tensor) -> Tensor:
        """Σ_r (⊗_k A_r^k) x: open the component channel r, apply every mode, sum over r."""
        factors = self.factorization.factor_matrices(list(self.factors))
        components = factors[0].shape[-1]
        t = t.unsqueeze(2).expand(-1, -1, components, *self.in_shape)
        for mode, matrix in enumerate(factors):
            t = self._mode_product(t, mode, self._leaf(mode, matrix[0]))
        return t.sum(2)

    def _tree_apply(self, node: int, t: Tensor, width: int) -> Tensor:
        """Apply M_{ν,r} (the operator of node ν's column r, r < ``width`` = R_Pa(ν)) to t (B, C·width, digits),
        diagonal in the last channel: M_{n,r} = leaf slices; M_{ν,r} = Σ_{r'} W^(ν)[r', r] ⊗_c M_{c,r'}."""
        tree, params = self.factorization.tree, self.factors
        batch, digits = t.shape[0], t.shape[2:]
        if not tree.children[node]:
            t = t.reshape(batch, -1, width, *digits)
            return self._mode_product(t, node, self._leaf(node, params[node][0])).flatten(1, 2)
        inner = self.factorization.node_widths[node]
        t = t.unsqueeze(2).expand(-1, -1, inner, *digits).flatten(1, 2)
        for child in tree.children[node]:
            t = self._tree_apply(child, t, inner)
        t = t.reshape(batch, -1, width, inner, *t.shape[2:])
        return torch.einsum("bcqr...,rq->bcq...", t, params[node][0]).flatten(1, 2)

    def end_to_end(self) -> Tensor:
        """The weight matrix W, formed from the factorization's end-to-end tensor (differentiable).

        Returns
        -------
        Tensor
            Shape (out_features, in_features).
        """
        k = len(self.in_shape)
        tensor = self.factorization.end_to_end(list(self.factors))[0]
        paired = tensor.reshape(*(d for pair in zip(self.out_shape, self.in_shape) for d in pair))
        order = [2 * j for j in range(k)] + [2 * j + 1 for j in range(k)]
        return paired.permute(order).reshape(self.out_features, self.in_features)

    def quantities(self) -> Tensor:
        """The factorization's tracked quantities, descending.

        Their number above a threshold estimates the tensor rank (CP) or the root's part of the hierarchical
        tensor rank.

        Returns
        -------
        Tensor
            One value per component: the component norms Π_k ‖w_r^k‖ (CP, shape (R,)) or the local component
            norms at the root (hierarchical, one per root component).
        """
        return self.factorization.quantities(list(self.factors))[0]

    def collapsed(self) -> nn.Linear:
        """A dense ``nn.Linear`` computing the same map, its weight formed once from the factors.

        Returns
        -------
        torch.nn.Linear
            A new layer whose weight is a detached copy of :meth:`end_to_end` (all out_features·in_features
            entries) and whose bias is copied, independent of this layer from then on.
        """
        weight = self.end_to_end().detach()
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=weight.device,
                          dtype=weight.dtype)
        return filled(plain, weight, self.bias)

    def extra_repr(self) -> str:
        """The summary line of ``print(module)`` for a tensorized layer.

        Returns
        -------
        str
            ``in_shape``, ``out_shape``, ``"cp"`` or ``"hierarchical"``, the count of factor entries (what the
            layer stores instead of W) and whether there is a bias.
        """
        return (f"in_shape={self.in_shape}, out_shape={self.out_shape}, format={self.format!r}, "
                f"parameters={sum(p.numel() for p in self.factors)}, bias={self.bias is not None}")
