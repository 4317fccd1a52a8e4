"""Deep matrix factorization W = W_N ⋯ W_1 (Arora, Cohen, Hu & Luo, NeurIPS 2019).

Every factor carries a leading run dimension B: ``params[j]`` has shape ``(B, d_{j+1}, d_j)`` with
``d_0 = n`` (columns), ``d_N = m`` (rows) and hidden widths ``d_1 … d_{N-1}`` (default
``min(m, n)``, which does not constrain the rank). Depth 1 is gradient descent on W itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import _protocol as protocol


@dataclass(frozen=True)
class MatrixFactorization:
    """Depth-``depth`` factorization W = W_N ⋯ W_1 of a ``rows x cols`` matrix.

    Attributes
    ----------
    rows, cols : int
        The shape of the end-to-end matrix W, positive.
    depth : int
        N >= 1, the number of factors. Default 3.
    widths : tuple of int or None
        Hidden widths d_1..d_{N-1} (depth − 1 positive entries); ``None`` means ``min(rows, cols)`` each, which
        does not constrain the rank.
    init_method : str
        One of ``inits`` (all of ``INITS``), default ``gaussian``. ``init_scale`` is, as for every factorization,
        the root-mean-square Frobenius norm of W(0) (see ``factorizations``): ``gaussian``: every factor entry
        i.i.d. N(0, s²) with d_0·d_1⋯d_N·s^(2N) = init_scale² (``entry_std``; square n×n at width n:
        s = init_scale^(1/N)·n^(−(N+1)/(2N)), so init_scale = ||W(0)||_F is the x-axis of Arora et al. 2019,
        Figure 2, and their "init_scale" α is init_scale/√n); ``balanced``: a Gaussian end-to-end matrix
        rescaled to ||W(0)||_F = init_scale, split by SVD into exactly balanced factors
        (W_{j+1}ᵀ W_{j+1} = W_j W_jᵀ; needs every width >= min(rows, cols)); ``identity``:
        W(0) = (init_scale/√k)·I, k = min(m, n), each factor (init_scale/√k)^(1/N) times a rectangular identity
        (also balanced); ``orthogonal``: each factor c times a random matrix with orthonormal rows or columns,
        c such that ||W(0)||_F = init_scale.
    quantity_name : str
        ``singular_values``.

    Raises
    ------
    ValueError
        On a non-positive shape or width, depth < 1, ``widths`` of the wrong length, or an unknown init.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (x-axis ||W(0)||_F) and Figure 3 (identity init).
    """

    rows: int
    cols: int
    depth: int = 3
    widths: tuple[int, ...] | None = None
    init_method: str = "gaussian"
    quantity_name: str = "singular_values"
    inits: ClassVar[tuple[str, ...]] = protocol.INITS

    def __post_init__(self) -> None:
        if not (protocol.is_positive_integer(self.rows) and protocol.is_positive_integer(self.cols)):
            raise ValueError(f"shape must be positive integers, got rows={self.rows}, cols={self.cols}")
        if not protocol.is_positive_integer(self.depth):
            raise ValueError(f"depth must be an integer >= 1, got {self.depth}")
        protocol.check_init("MatrixFactorization", self.init_method, self.inits)
        if self.widths is not None:
            if len(self.widths) != self.depth - 1:
                raise ValueError(f"widths must have depth-1 = {self.depth - 1} entries, got {len(self.widths)}")
            if not all(protocol.is_positive_integer(w) for w in self.widths):
                raise ValueError(f"widths must be positive integers, got {self.widths}")

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape (rows, cols) of the end-to-end matrix."""
        return (self.rows, self.cols)

    @property
    def dims(self) -> tuple[int, ...]:
        """(d_0, ..., d_N): d_0 = cols, d_N = rows."""
        hidden = self.widths if self.widths is not None else (min(self.rows, self.cols),) * (self.depth - 1)
        return (self.cols, *hidden, self.rows)

    @property
    def num_parameters(self) -> int:
        """Parameters of one run: Σ_j d_j·d_{j−1} over the factors W_j ∈ R^{d_j × d_{j−1}}."""
        dims = self.dims
        return sum(a * b for a, b in zip(dims, dims[1:]))

    def init(
        self,
        batch: int,
        init_scale: Tensor,
        generator: Sequence[torch.Generator],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """The factors of ``batch`` runs, (B, d_{j+1}, d_j) each, run b drawn from ``generator[b]``.

        Parameters
        ----------
        batch : int
            Number of runs B, the leading dimension of each factor.
        init_scale : Tensor
            The root-mean-square ||W(0)||_F, one per run or one for all, positive (see ``init_method`` in the
            class docstring).
        generator : sequence of torch.Generator
            One generator per run, drawing on the CPU in float64 (``identity`` draws nothing).
        dtype : torch.dtype, optional
            Dtype of the N factors, cast after the float64 init. Default ``torch.float32``.
        device : torch.device or str, optional
            Device on which the factors are returned. Default ``"cpu"``.

        Returns
        -------
        list of Tensor
            The N factors W_1..W_N, contiguous, shapes (B, d_{j+1}, d_j).

        Raises
        ------
        ValueError
            When the number of generators is not ``batch``, an init scale is not positive, or (``balanced``) a
            width is below min(rows, cols).
        """
        gens, scale = protocol.per_run_scales(init_scale, generator, batch, dtype)
        dims, k, N = self.dims, min(self.rows, self.cols), self.depth
        params: list[Tensor]
        if self.init_method == "gaussian":
            s = self.entry_std(scale).view(-1, 1, 1)
            params = [s * protocol.batched_normal(gens, (dims[j + 1], dims[j]), dtype=torch.float64, device="cpu")
                      for j in range(N)]
        elif self.init_method == "identity":
            per_factor = (scale / math.sqrt(k)) ** (1.0 / N)
            params = [per_factor.view(-1, 1, 1) * torch.eye(dims[j + 1], dims[j], dtype=torch.float64).expand(
                batch, -1, -1) for j in range(N)]
        elif self.init_method == "orthogonal":
            params = []
            for j in range(N):
                a = protocol.batched_normal(gens, (max(dims[j + 1], dims[j]), min(dims[j + 1], dims[j])),
                                            dtype=torch.float64, device="cpu")
                q = torch.linalg.qr(a).Q
                params.append(q if dims[j + 1] >= dims[j] else q.transpose(1, 2))
            per_factor = (scale / torch.linalg.matrix_norm(self.end_to_end(params))) ** (1.0 / N)
            params = [per_factor.view(-1, 1, 1) * q for q in params]
        else:
            params = self._balanced(gens, scale)
        return [p.to(dtype=dtype, device=device).contiguous() for p in params]

    def entry_std(self, init_scale: Tensor | float) -> Tensor:
        """The std s of the ``gaussian`` init's factor entries: E||W(0)||_F² = d_0·d_1⋯d_N·s^(2N) = init_scale².

        Parameters
        ----------
        init_scale : Tensor or float
            Target root-mean-square ||W(0)||_F of the ``gaussian`` init, scalar or per run.

        Returns
        -------
        Tensor
            s (the same for all N factors), float64, shaped like ``init_scale``.
        """
        return protocol.product_entry_std(init_scale, sum(math.log(d) for d in self.dims), self.depth)

    def scale_for_entry_std(self, std: float) -> float:
        """The init_scale whose ``gaussian`` init draws every factor entry with std ``std``.

        Parameters
        ----------
        std : float
            Std of each entry of the N factors, positive.

        Returns
        -------
        float
            sqrt(d_0·d_1⋯d_N)·std^N.

        Raises
        ------
        ValueError
            If ``std`` <= 0, or sqrt(d_0⋯d_N)·std^N over- or underflows float64.
        """
        return protocol.product_scale(std, sum(math.log(d) for d in self.dims), self.depth)

    def _balanced(self, gens: list[torch.Generator], scale: Tensor) -> list[Tensor]:
        """Split a Gaussian end-to-end matrix of norm init_scale into balanced factors.

        With W = U S V^T (thin SVD, k = min(m,n)) take W_1 = S^(1/N) V^T (padded), W_j = S^(1/N) for the
        middle factors and W_N = U S^(1/N); then W_{j+1}^T W_{j+1} = W_j W_j^T for every j.
        """
        dims, N, k = self.dims, self.depth, min(self.rows, self.cols)
        if any(w < k for w in dims[1:-1]):
            raise ValueError(f"balanced init needs every width >= min(rows, cols) = {k}, got {dims[1:-1]}")
        target = protocol.batched_normal(gens, (self.rows, self.cols), dtype=torch.float64, device="cpu")
        target = target * (scale / torch.linalg.matrix_norm(target)).view(-1, 1, 1)
        if N == 1:
            return [target]
        u, s, vh = torch.linalg.svd(target, full_matrices=False)
        root = torch.diag_embed(s ** (1.0 / N))
        batch = target.shape[0]
        params = []
        for j in range(N):
            d_out, d_in = dims[j + 1], dims[j]
            block = torch.zeros(batch, d_out, d_in, dtype=torch.float64)
            if j == 0:
                block[:, :k, :] = root @ vh
            elif j == N - 1:
                block[:, :, :k] = u @ root
            else:
                block[:, :k, :k] = root
            params.append(block)
        return params

    def end_to_end(self, params: list[Tensor]) -> Tensor:
        """W = W_N ⋯ W_1.

        Parameters
        ----------
        params : list of Tensor
            W_1, ..., W_N in the order they are applied, (B, d_{j+1}, d_j) each.

        Returns
        -------
        Tensor
            The product W, (B, rows, cols).
        """
        product = params[0]
        for factor in params[1:]:
            product = factor @ product
        return product

    def evaluate(self, params: list[Tensor], indices: Tensor, *, check: bool = True) -> Tensor:
        """Entries W[i, j] at ``indices``.

        Parameters
        ----------
        params : list of Tensor
            The factors; their product W is formed, then read at the indices.
        indices : Tensor
            Integer (row, column) pairs, (M, 2) shared by all runs or (B, M, 2).
        check : bool, optional
            Check ``indices`` (integer, shaped, in range) first. False where they were checked already, e.g. a
            task's, checked against the same shape when it was made: the check waits for the device at every
            step. Default True.

        Returns
        -------
        Tensor
            W[i, j] per run and pair, (B, M).

        Raises
        ------
        ValueError
            When ``indices`` is not integer, has the wrong shape or number of runs, or is out of range.
        """
        if check:
            protocol.check_indices(indices, self.shape)
        w = self.end_to_end(params)
        if indices.dim() == 3 and indices.shape[0] != w.shape[0]:
            raise ValueError(f"indices hold {indices.shape[0]} runs' observations, the parameters {w.shape[0]} runs")
        flat = indices[..., 0].long() * self.cols + indices[..., 1].long()  # gather takes int64 only
        if flat.dim() == 1:
            flat = flat.expand(w.shape[0], -1)
        return w.reshape(w.shape[0], -1).gather(1, flat)

    def quantities(self, params: list[Tensor], *, sort: bool = True) -> Tensor:
        """Singular values of W, descending.

        Parameters
        ----------
        params : list of Tensor
            The factors, whose product's singular values are returned.
        sort : bool, optional
            Ignored: singular values have no other order. Default True.

        Returns
        -------
        Tensor
            σ_1 >= σ_2 >= ... of W, (B, min(rows, cols)).
        """
        return torch.linalg.svdvals(self.end_to_end(params))

    def predicted_rates(self, params: list[Tensor], gradient: Tensor, *, order: int | None = None) -> Tensor:
        """σ̇_r = −N·(σ_r²)^(1−1/N)·<∇L(W), u_r v_rᵀ> for the singular triplets (σ_r, u_r, v_r) of W.

        N is the depth (``order`` overrides it); depth 1 gives σ̇_r = −<∇L(W), u_r v_rᵀ>. Exact for gradient flow
        from a balanced init. Theorem 3 takes distinct singular values. A positive one repeated k times (within
        1000 machine epsilons of σ_1, as at the identity init) has no particular u_r, v_r: the rates of its k sorted
        copies are −N·σ^(2−2/N) times the eigenvalues of the symmetric part of U_cᵀ ∇L(W) V_c over its singular
        spaces U_c, V_c (first-order perturbation of a repeated singular value; under the balanced flow
        U_cᵀ Ẇ V_c = −N·σ^(2−2/N)·U_cᵀ ∇L(W) V_c).

        Parameters
        ----------
        params : list of Tensor
            The factors at the current point; W is formed and decomposed by SVD.
        gradient : Tensor
            ∇L(W), (B, rows, cols).
        order : int, optional
            Overrides N; None uses the depth.

        Returns
        -------
        Tensor
            Predicted σ̇_r, (B, min(rows, cols)), in the (descending) order of the singular values.

        References
        ----------
        S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
        Theorem 3.
        """
        n = protocol.check_order(order, self.depth)
        u, s, vh = torch.linalg.svd(self.end_to_end(params), full_matrices=False)
        inner = u.transpose(1, 2) @ gradient.to(s.dtype) @ vh.transpose(1, 2)  # <∇L, u_r v_qᵀ>, (B, K, K)
        projection = inner.diagonal(dim1=1, dim2=2).clone()
        for b, start, stop in _repeated(s):
            block = inner[b, start:stop, start:stop]
            # ascending, so the rates −N·σ^(2−2/N)·λ descend with the sorted copies
            projection[b, start:stop] = torch.linalg.eigvalsh(0.5 * (block + block.T))
        return -n * s.pow(2.0 - 2.0 / n) * projection

    def loss_and_grad(
        self, params: list[Tensor], dense_loss_and_grad: Callable[[Tensor], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, list[Tensor]]:
        """Loss and closed-form gradients: dL/dW_j = (W_N⋯W_{j+1})ᵀ ∇L(W) (W_{j−1}⋯W_1)ᵀ.

        Prefix products are kept from the forward pass; the backward pass carries
        A_j = (W_N⋯W_{j+1})ᵀ ∇L(W) down the chain, so a step costs 3(N−1) matmuls, like autograd but without its
        bookkeeping.

        Parameters
        ----------
        params : list of Tensor
            The factors W_1..W_N; their prefix products are kept for the backward pass.
        dense_loss_and_grad : callable
            Maps W (B, rows, cols) to the per-run loss (B,) and ∇L(W) (B, rows, cols).

        Returns
        -------
        tuple of (Tensor, list of Tensor)
            The loss (B,) and dL/dW_j for j = 1..N, each shaped like W_j.
        """
        prefixes = [params[0]]
        for factor in params[1:]:
            prefixes.append(factor @ prefixes[-1])
        loss, grad_w = dense_loss_and_grad(prefixes[-1])
        grads: list[Tensor] = [grad_w] * len(params)
        carried = grad_w
        for j in range(len(params) - 1, 0, -1):
            grads[j] = carried @ prefixes[j - 1].transpose(1, 2)
            carried = params[j].transpose(1, 2) @ carried
        grads[0] = carried
        return loss, grads

    def unbalancedness(self, params: list[Tensor]) -> Tensor:
        """max_j ||W_{j+1}ᵀ W_{j+1} − W_j W_jᵀ||_F per run.

        Zero at a balanced point and conserved by gradient flow, so a balanced init stays balanced.

        Parameters
        ----------
        params : list of Tensor
            The factors; every adjacent pair (W_j, W_{j+1}) is compared.

        Returns
        -------
        Tensor
            The largest gap of each run, (B,); zeros at depth 1 (one factor, no pair).

        References
        ----------
        S. Arora, N. Cohen, E. Hazan, "On the Optimization of Deep Networks: Implicit Acceleration by
        Overparameterization", ICML 2018, Theorem 1 (the balancedness it assumes).
        """
        if len(params) == 1:
            return torch.zeros(params[0].shape[0], dtype=params[0].dtype, device=params[0].device)
        gaps = [torch.linalg.matrix_norm(params[j + 1].transpose(1, 2) @ params[j + 1]
                                         - params[j] @ params[j].transpose(1, 2))
                for j in range(len(params) - 1)]
        return torch.stack(gaps, dim=1).amax(dim=1)


def _repeated(s: Tensor, epsilons: float = 1000.0) -> list[tuple[int, int, int]]:
    """(run, start, stop) of each run's clusters of two or more positive singular values (descending ``s``) that
    agree within ``epsilons`` machine epsilons of the run's σ_1."""
    tolerance = (epsilons * torch.finfo(s.dtype).eps * s[:, :1]).tolist()
    clusters = []
    for b, (values, (tol,)) in enumerate(zip(s.tolist(), tolerance)):
        start = 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i - 1] - values[i] > tol or values[i] <= tol:
                if i - start > 1 and values[start] > tol:
                    clusters.append((b, start, i))
                start = i
    return clusters

