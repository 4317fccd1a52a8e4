"""CP tensor factorization W = Σ_r w_r^1 ⊗ ⋯ ⊗ w_r^N (Razin & Cohen 2020; Razin, Maman & Cohen 2021).

The parameters are one tensor ``params[0]`` of shape ``(B, N, D, R)`` with D = max_n D_n: run b's
factor vector w_r^n is ``params[0][b, n, :D_n, r]``. Rows ``D_n..D-1`` of a mode with D_n < D are padding:
they start at zero and no entry ever reads them, so their gradient is zero and they stay zero under
gradient descent, global RMSprop and Adam; norms are unaffected. One stacked tensor (not N small ones)
keeps an order-784 factorization a handful of tensor operations per step.

Evaluation at integer multi-indices never forms the tensor: W[i] = Σ_r Π_n w_r^n[i_n]. For orders up to
``DIRECT_MAX_ORDER`` the product is taken directly; above, it is taken in the log domain with a sign
(a product of 784 factors overflows or underflows float32), in chunks (of rows or of modes) so memory
stays about CHUNK_ELEMENTS numbers, with a closed-form backward
    ∂W[i]/∂w_r^n[i_n] = Π_{n'≠n} w_r^{n'}[i_{n'}] = sign · exp(Σ_{n'} log|w_r^{n'}[i_{n'}]| − log|w_r^n[i_n]|)
(see ``_LogDomainEvaluate``).

Small tensors (at most ``DENSE_MAX_ENTRIES`` entries) have a closed-form loss and gradient through the dense
W (``loss_and_grad``): with the modes split into a left group L and a right group R, W = K_L K_Rᵀ for the
Khatri–Rao products K_L, K_R of each group's factor matrices, and mode n's gradient is the MTTKRP
∂L/∂w_r^n[i] = Σ_{entries j with j_n = i} ∇L(W)[j] Π_{m≠n} w_r^m[j_m], taken as ∇L(W) K_R (or ∇L(W)ᵀ K_L) once
per group and then contracted with the group's other factors: three matrix products of size
(∏_L D) × R × (∏_R D) per step instead of gathers over every observed entry.

Tracked quantities: component norms σ_r = Π_n ||w_r^n||, which under gradient flow from a balanced
init obey σ̇_r = N·γ_r·σ_r^(2−2/N), γ_r = <−∇L(W), ⊗_n ŵ_r^n> (Razin et al. 2021, Thm. 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import _protocol as protocol

DIRECT_MAX_ORDER = 8
CHUNK_ELEMENTS = 1 << 22  # gathered entries per mode chunk: 16 MB in float32
MAX_DEFAULT_COMPONENTS = 100_000
ONE_HOT_MAX_MODE_SIZE = 16  # up to this mode size, sums over modes are one-hot matrix products
UNDERFLOW_FRACTION = 0.9
DENSE_MAX_ENTRIES = 1 << 16  # up to this many tensor entries, the gradient goes through the dense W


def cp_to_tensor(factors: Sequence[Tensor]) -> Tensor:
    """Σ_r w_r^1 ⊗ ⋯ ⊗ w_r^N from factor matrices ``(..., D_n, R)``; returns ``(..., D_1, ..., D_N)``.

    Built as an iterated Khatri–Rao product, so memory is that of the result times R.
    """
    product = khatri_rao(factors)
    return product.sum(-1).reshape(*product.shape[:-2], *(f.shape[-2] for f in factors))


def khatri_rao(factors: Sequence[Tensor]) -> Tensor:
    """Column-wise Kronecker product of factor matrices ``(..., D_n, R)``: ``(..., ∏ D_n, R)``, row index
    (i_1, …, i_N) in row-major order (the first mode varies slowest)."""
    product = factors[0]
    for factor in factors[1:]:
        product = (product.unsqueeze(-2) * factor.unsqueeze(-3)).flatten(-3, -2)
    return product


@dataclass(frozen=True)
class CPFactorization:
    """CP factorization W = Σ_r w_r^1 ⊗ ⋯ ⊗ w_r^N of a tensor of shape ``shape`` with R rank-one terms.

    Attributes
    ----------
    shape : tuple of int
        Mode sizes (D_1, ..., D_N), N >= 1, each positive.
    components : int or None
        R >= 1; ``None`` means the product of all mode sizes but the largest, which does not constrain the tensor
        rank (Razin & Cohen 2020: 64 for 8×8×8, 512 for 8^4).
    init_mean : float
        Every factor entry is init_mean + s·z, z i.i.d. N(0, 1) (default 0). ``init_scale`` is, as for every
        factorization, the root-mean-square Frobenius norm of W(0) − E W(0) (see ``factorizations``):
        Π_n D_n · R · ((init_mean² + s²)^N − init_mean^(2N)) = init_scale², which for init_mean = 0 is
        E||W(0)||_F² = R·Π_n D_n·s^(2N) (``entry_std``; the tensor papers give s, ``scale_for_entry_std``
        converts it). The order-784 natural-data experiment uses init_mean 1: W(0) is then not small.
    init_method : str
        One of ``inits``: ``gaussian`` (the above, default) or ``balanced`` (the same draw with each component's
        factors rescaled to equal norms σ_r^(1/N), see ``balanced``: the same W(0), unbalancedness ε = 0, as
        Razin et al. 2021, Theorem 1 assumes).
    quantity_name : str
        ``component_norms``.

    Raises
    ------
    ValueError
        On an empty or non-positive shape, R < 1, a default R above 100,000, a non-finite init_mean or an
        unknown init.

    References
    ----------
    N. Razin, N. Cohen, "Implicit Regularization in Deep Learning May Not Be Explainable by Norms", NeurIPS 2020,
    §5 (R = product of all mode sizes but the largest; init std per factor entry).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021,
    §4 and Appendix (init std; init mean 1 at order 784); Theorem 1 (balanced init).
    """

    shape: tuple[int, ...]
    components: int | None = None
    init_mean: float = 0.0
    init_method: str = "gaussian"
    quantity_name: str = "component_norms"
    inits: ClassVar[tuple[str, ...]] = ("gaussian", "balanced")

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", protocol.mode_sizes(self.shape))
        if self.components is None:
            default = math.prod(self.shape) // max(self.shape)
            if default > MAX_DEFAULT_COMPONENTS:
                raise ValueError(f"components must be given for shape of order {len(self.shape)}: the default "
                                 f"(product of all mode sizes but the largest) is {default:.3g} > "
                                 f"{MAX_DEFAULT_COMPONENTS}")
        elif not protocol.is_positive_integer(self.components):  # 2.5 or NaN failed only in init
            raise ValueError(f"components (R) must be an integer >= 1, got {self.components!r}")
        if not math.isfinite(self.init_mean):
            raise ValueError(f"init_mean must be finite, got {self.init_mean}")
        protocol.check_init("CPFactorization", self.init_method, self.inits)

    @property
    def order(self) -> int:
        """The order N of the tensor (number of modes)."""
        return len(self.shape)

    @property
    def num_components(self) -> int:
        """The number of components R (the default when ``components`` is None)."""
        return self.components if self.components is not None else math.prod(self.shape) // max(self.shape)

    @property
    def num_parameters(self) -> int:
        """Parameter entries of one run: N·max_n D_n·R, the N factor matrices of R columns held in one block padded
        to the largest mode."""
        return self.order * max(self.shape) * self.num_components

    def init(
        self,
        batch: int,
        init_scale: Tensor | float,
        generator: Sequence[torch.Generator],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Factor entries i.i.d. N(init_mean, s²) with s = ``entry_std(init_scale)``, run b drawn from ``generator[b]``.

        For ``init_method="balanced"`` each component is then rescaled by ``balanced``. Padding rows of modes with
        D_n < D are zero.

        Parameters
        ----------
        batch : int
            Number of runs B, the first dimension of the one (B, N, D, R) tensor.
        init_scale : Tensor or float
            The root-mean-square ||W(0) − E W(0)||_F, one per run or one for all, positive (see the class docstring).
        generator : sequence of torch.Generator
            One generator per run; run b's (N, D, R) noise comes from ``generator[b]``, on the CPU in float64.
        dtype : torch.dtype, optional
            Dtype the factors are cast to after the draw. Default ``torch.float32``.
        device : torch.device or str, optional
            Device the factors are moved to. Default ``"cpu"``.

        Returns
        -------
        list of Tensor
            One tensor (B, N, D, R), contiguous.

        Raises
        ------
        ValueError
            When the number of generators is not ``batch`` or an init scale is not positive.
        """
        gens, scale = protocol.per_run_scales(init_scale, generator, batch, dtype)
        noise = protocol.batched_normal(gens, (self.order, max(self.shape), self.num_components),
                                        dtype=torch.float64, device="cpu")
        std = self.entry_std(scale).view(-1, 1, 1, 1)
        params = [(self.init_mean + std * noise) * self._valid_rows(torch.float64, "cpu")]
        if self.init_method == "balanced":
            params = self.balanced(params)
        return [p.to(dtype=dtype, device=device).contiguous() for p in params]

    def _log_count(self) -> float:
        return math.log(self.num_components) + sum(math.log(d) for d in self.shape)

    def entry_std(self, init_scale: Tensor | float) -> Tensor:
        """The std s of the factor entries for ``init_scale`` (see the class docstring).

        With μ = init_mean and c = init_scale²/(R·Π D_n), s² = (μ^(2N) + c)^(1/N) − μ², taken as
        μ²·expm1(log1p(c/μ^(2N))/N) (and c^(1/N) for μ = 0).

        Parameters
        ----------
        init_scale : Tensor or float
            The target root-mean-square ||W(0) − E W(0)||_F: a float, or a tensor of one value per run.

        Returns
        -------
        Tensor
            The std s of every factor entry, float64, shaped like ``init_scale``.
        """
        if self.init_mean == 0:
            return protocol.product_entry_std(init_scale, self._log_count(), self.order)
        mu, log_mean = abs(self.init_mean), 2.0 * self.order * math.log(abs(self.init_mean))

        def std(scale: float) -> float:
            ratio = math.exp(2.0 * math.log(scale) - self._log_count() - log_mean)  # c / μ^(2N)
            return mu * math.sqrt(math.expm1(math.log1p(ratio) / self.order))

        return protocol.per_value(init_scale, std)

    def scale_for_entry_std(self, std: float) -> float:
        """The init_scale whose init draws the factor entries with std ``std`` (the inverse of ``entry_std``).

        Parameters
        ----------
        std : float
            The std s of every factor entry (as the tensor papers state init), positive.

        Returns
        -------
        float
            The init_scale (root-mean-square ||W(0) − E W(0)||_F) for this s and ``init_mean``.

        Raises
        ------
        ValueError
            When ``std`` is not positive or the init_scale it gives overflows or underflows float64.
        """
        if self.init_mean == 0:
            return protocol.product_scale(std, self._log_count(), self.order)
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        mu = abs(self.init_mean)
        log_sq = (self._log_count() + 2.0 * self.order * math.log(mu)
                  + math.log(math.expm1(self.order * math.log1p((std / mu) ** 2))))
        return protocol.product_scale(1.0, log_sq, 1)

    def _valid_rows(self, dtype: torch.dtype, device: torch.device | str) -> Tensor:
        """(N, D, 1) mask: 1 on rows i < D_n of mode n, 0 on padding."""
        rows = torch.arange(max(self.shape), device=device)
        sizes = torch.tensor(self.shape, device=device)
        return (rows < sizes.unsqueeze(1)).to(dtype).unsqueeze(-1)

    def factor_matrices(self, params: list[Tensor]) -> list[Tensor]:
        """The factor matrices [w_1^n … w_R^n] of each mode, without padding rows.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); mode n is cut to its first D_n rows.

        Returns
        -------
        list of Tensor
            N views of ``params[0]`` (no copies), mode n's of shape (B, D_n, R).
        """
        return [params[0][:, n, :d, :] for n, d in enumerate(self.shape)]

    def end_to_end(self, params: list[Tensor]) -> Tensor:
        """W = Σ_r ⊗_n w_r^n. Small tensors only (it has ∏ D_n entries).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R), whose rank-one terms are summed densely.

        Returns
        -------
        Tensor
            W with ∏ D_n entries per run, (B, *shape).
        """
        return cp_to_tensor(self.factor_matrices(params))

    def evaluate(self, params: list[Tensor], indices: Tensor, *, check: bool = True) -> Tensor:
        """Entries W[i] = Σ_r Π_n w_r^n[i_n] at integer multi-indices.

        Never forms W; above order 8 the product is taken in the log domain with a sign (see the module docstring).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); only the rows i_n the indices select are read.
        indices : Tensor
            Integer multi-indices (i_1, ..., i_N): (M, N) for every run alike, or (B, M, N) per run.
        check : bool, optional
            Check ``indices`` (integer, shaped, in range) first. False where they were checked already, e.g. a
            task's, checked against the same shape when it was made: the check waits for the device at every
            step. Default True.

        Returns
        -------
        Tensor
            W[i] for each run and multi-index, (B, M), differentiable in ``params``.

        Raises
        ------
        ValueError
            When ``indices`` is not integer, has the wrong shape, or is out of range.
        """
        factors = params[0]
        if check:
            protocol.check_indices(indices, self.shape)
        if self.order > DIRECT_MAX_ORDER:
            return _LogDomainEvaluate.apply(factors, indices)
        if factors.shape[2] > ONE_HOT_MAX_MODE_SIZE:
            return _gather(factors, indices, 0, self.order).prod(2).sum(-1)
        # w_r^n[i_n] as one-hot rows times the factor matrix, multiplied mode by mode: autograd's backward is
        # then matrix products and products (about 30% less CPU time than a gather with Tensor.prod at R = 1000)
        hot = _one_hot(indices, factors.shape[2], factors.dtype).unflatten(-1, (self.order, factors.shape[2]))
        product = _rows_times(hot[..., 0, :], factors[:, 0])
        for n in range(1, self.order):
            product = product * _rows_times(hot[..., n, :], factors[:, n])
        return product.sum(-1)

    @property
    def closed_form_gradient(self) -> bool:
        """Whether ``loss_and_grad`` applies: the tensor has at most DENSE_MAX_ENTRIES entries."""
        return math.prod(self.shape) <= DENSE_MAX_ENTRIES

    def loss_and_grad(
        self, params: list[Tensor], dense_loss_and_grad: Callable[[Tensor], tuple[Tensor, Tensor]]
    ) -> tuple[Tensor, list[Tensor]]:
        """Loss and closed-form gradient through the dense W (small tensors; see the module docstring).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R), split into a left and a right group of modes.
        dense_loss_and_grad : callable
            Maps W (B, *shape) to the per-run loss (B,) and ∇L(W) (B, *shape).

        Returns
        -------
        tuple of (Tensor, list of Tensor)
            The loss (B,) and the gradient of the one parameter tensor, (B, N, D, R) (zero on padding rows).

        Raises
        ------
        ValueError
            When the tensor has more than DENSE_MAX_ENTRIES (65,536) entries (``closed_form_gradient`` is False).
        """
        if not self.closed_form_gradient:
            raise ValueError(f"loss_and_grad forms the dense tensor: shape {self.shape} has more than "
                             f"{DENSE_MAX_ENTRIES} entries (use autograd through evaluate)")
        factors = self.factor_matrices(params)
        split = (self.order + 1) // 2
        left, right = factors[:split], factors[split:]
        left_kr = khatri_rao(left)  # (B, P_L, R)
        right_kr = khatri_rao(right) if right else torch.ones_like(left_kr[:, :1])  # (B, P_R, R)
        w = left_kr @ right_kr.transpose(1, 2)  # (B, P_L, P_R)
        loss, grad_w = dense_loss_and_grad(w.view(w.shape[0], *self.shape))
        grad_w = grad_w.reshape_as(w)
        grad = torch.zeros_like(params[0])
        for group, reduced, offset in ((left, grad_w @ right_kr, 0),
                                       (right, grad_w.transpose(1, 2) @ left_kr, split)):
            for k, g in enumerate(_group_mttkrp(group, reduced)):
                grad[:, offset + k, : g.shape[1]] = g
        return loss, [grad]

    def inner_rank_one(self, params: list[Tensor], vectors: Sequence[Tensor]) -> Tensor:
        """<A_i, W> for rank-one A_i = a_i^1 ⊗ ⋯ ⊗ a_i^N, as Σ_r Π_n <a_i^n, w_r^n> (no A_i and no W formed).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); each w_r^n is projected on every a_i^n.
        vectors : sequence of Tensor
            N matrices, ``vectors[n]`` of shape (M, D_n): row i is a_i^n.

        Returns
        -------
        Tensor
            One measurement <A_i, W> per run and i, (B, M).

        Raises
        ------
        ValueError
            When there are not N matrices or a matrix's last dimension is not D_n.
        """
        if len(vectors) != self.order or any(v.shape[-1] != d for v, d in zip(vectors, self.shape)):
            raise ValueError(f"vectors must be {self.order} matrices (M, D_n) with D_n = {self.shape}, got "
                             f"{[tuple(v.shape) for v in vectors]}")
        projections = [torch.einsum("md,bdr->bmr", v.to(params[0].dtype), f)
                       for v, f in zip(vectors, self.factor_matrices(params))]
        return torch.stack(projections, dim=2).prod(2).sum(-1)

    def factor_column_norms(self, params: list[Tensor]) -> Tensor:
        """||w_r^n|| for every mode and component.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); zero padding rows leave the norms unchanged.

        Returns
        -------
        Tensor
            ||w_r^n|| by mode n and component r, (B, N, R), in the parameters' dtype.
        """
        return torch.linalg.vector_norm(params[0], dim=2)

    def log_component_norms(self, params: list[Tensor]) -> Tensor:
        """log σ_r = Σ_n log ||w_r^n||, by fixed component index (no overflow at order 784).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R): the log-norms of a component's N factors are summed.

        Returns
        -------
        Tensor
            log σ_r, (B, R), float64 (−inf where a factor of the component is zero).
        """
        return self.factor_column_norms(params).double().log().sum(1)

    def component_norms(self, params: list[Tensor]) -> Tensor:
        """Component norms σ_r = Π_n ||w_r^n|| by fixed component index r.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); σ_r is the exponential of ``log_component_norms``.

        Returns
        -------
        Tensor
            σ_r by component index r, unsorted: (B, R), float64.
        """
        return self.log_component_norms(params).exp()

    def quantities(self, params: list[Tensor], *, sort: bool = True) -> Tensor:
        """Component norms, sorted descending or by component index.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R), whose component norms are the tracked quantities.
        sort : bool, optional
            Sort descending (default True); False keeps the order of the component index r.

        Returns
        -------
        Tensor
            The R component norms of each run, float64; the largest first when sorted.
        """
        norms = self.component_norms(params)
        return norms.sort(dim=-1, descending=True).values if sort else norms

    def predicted_rates(self, params: list[Tensor], gradient: Tensor, *, order: int | None = None) -> Tensor:
        """σ̇_r = N·γ_r·σ_r^(2−2/N), γ_r = <−∇L(W), ⊗_n ŵ_r^n>, by component index.

        Taken as N·<−∇L(W), ⊗_n w_r^n>·σ_r^(1−2/N), finite at σ_r = 0. Exact for gradient flow from a balanced init
        (``unbalancedness`` zero, e.g. after ``balanced``).

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R) at the current point: they give σ_r and ⊗_n w_r^n.
        gradient : Tensor
            ∇L(W), (B, *shape) (small tensors).
        order : int, optional
            Overrides N; None uses the tensor's order.

        Returns
        -------
        Tensor
            The predicted σ̇_r by component index r, (B, R), float64.

        References
        ----------
        N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021,
        Theorem 1.
        """
        factors = [f.double() for f in self.factor_matrices(params)]
        contracted = gradient.double().reshape(gradient.shape[0], self.shape[0], -1)
        contracted = torch.einsum("bdm,bdr->brm", contracted, factors[0])
        for n, factor in enumerate(factors[1:], start=1):
            contracted = torch.einsum("brdm,bdr->brm", contracted.unflatten(2, (self.shape[n], -1)), factor)
        inner = -contracted[..., 0]  # <−∇L(W), ⊗_n w_r^n>, (B, R)
        return protocol.power_law_rates(self.component_norms(params), inner, protocol.check_order(order, self.order))

    def unbalancedness(self, params: list[Tensor]) -> Tensor:
        """ε = max_r max_{n,n'} | ||w_r^n||² − ||w_r^{n'}||² | per run; conserved by gradient flow.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R); only their column norms ||w_r^n|| enter.

        Returns
        -------
        Tensor
            ε of each run, (B,), in the parameters' dtype.

        References
        ----------
        N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021,
        Lemma 1.
        """
        sq = self.factor_column_norms(params).pow(2)
        return (sq.amax(1) - sq.amin(1)).amax(-1)

    def balanced(self, params: list[Tensor]) -> list[Tensor]:
        """The same tensor with each component's factors rescaled to equal norms σ_r^(1/N) (ε = 0).

        Directions and signs are kept; a component with a zero factor is left as it is.

        Parameters
        ----------
        params : list of Tensor
            The stacked factors (B, N, D, R) to rebalance (left unmodified).

        Returns
        -------
        list of Tensor
            A new (B, N, D, R) tensor holding the same W, every factor of component r with norm σ_r^(1/N).
        """
        norms = self.factor_column_norms(params)
        target = norms.log().mean(1, keepdim=True).exp()
        scale = torch.where(norms > 0, target / norms.clamp_min(torch.finfo(norms.dtype).tiny), 1.0)
        return [params[0] * scale.unsqueeze(2)]


def _group_mttkrp(group: Sequence[Tensor], reduced: Tensor) -> list[Tensor]:
    """For each mode n of a group with factor matrices (B, D_m, R): Σ over the group's other indices of
    ``reduced`` (B, ∏_group D, R) times Π_{m≠n} w_r^m[i_m], i.e. (B, D_n, R)."""
    letters = "acdefghijklmnopq"[: len(group)]
    shaped = reduced.view(reduced.shape[0], *(f.shape[1] for f in group), reduced.shape[-1])
    out = []
    for n in range(len(group)):
        others = [m for m in range(len(group)) if m != n]
        spec = ",".join([f"b{letters}r"] + [f"b{letters[m]}r" for m in others]) + f"->b{letters[n]}r"
        out.append(torch.einsum(spec, shaped, *(group[m] for m in others)))
    return out


def _gather(factors: Tensor, indices: Tensor, start: int, stop: int) -> Tensor:
    """table[b, n, i_n, :] for modes start..stop-1: (B, M, stop-start, C) from a table (B, N, D, C)."""
    batch, _, rows, components = factors.shape
    block = factors[:, start:stop].reshape(batch, -1, components)
    offsets = torch.arange(stop - start, device=factors.device) * rows
    local = indices[..., start:stop].long() + offsets
    if local.dim() == 2:
        return block[:, local]
    runs = torch.arange(batch, device=factors.device).view(-1, 1, 1)
    return block[runs, local]


def _mode_chunks(factors: Tensor, indices: Tensor):
    """Mode ranges [start, stop) holding about CHUNK_ELEMENTS gathered entries each."""
    batch, order, _, components = factors.shape
    size = max(1, CHUNK_ELEMENTS // max(1, batch * indices.shape[-2] * components))
    return [(s, min(s + size, order)) for s in range(0, order, size)]


class _LogDomainEvaluate(torch.autograd.Function):
    """Σ_r Π_n w_r^n[i_n] as Σ_r sign_r · exp(L_r), L_r = Σ_n log|w_r^n[i_n]|, with a closed-form backward.

    L and the count of negative factors (whose parity is the sign) are sums over modes of a small table
    T = [log|w|, 1{w < 0}] of shape (B, N·D, 2R). For small mode sizes (D <= ONE_HOT_MAX_MODE_SIZE) the
    sums are matrix products onehot(i) @ T over chunks of rows (the one-hot rows are built per chunk,
    never cached); otherwise T is gathered chunk by chunk over the modes. |w| is clamped at the dtype's
    ``tiny``, which keeps a zero factor's partial products finite (exact up to 1e-38).

    Backward: ∂W[i]/∂w_r^n[i_n] = sign_r · sgn(w_r^n[i_n]) · exp(L_r − log|w_r^n[i_n]|). With shared
    scales K_r = max_m L_{m,r} it is sgn(w)·exp(K_r − log|w|) · Σ_{m: i_{m,n} = d} g_m sign_{m,r} exp(L_{m,r} − K_r),
    one product onehot^T @ c. That form is used when no exp(L − K) underflows (L within
    UNDERFLOW_FRACTION·log(1/tiny) of K_r); otherwise each partial product is formed in the log domain.
    """

    @staticmethod
    def forward(ctx, factors: Tensor, indices: Tensor) -> Tensor:
        table = _log_sign_table(factors)
        components = factors.shape[-1]
        if factors.shape[2] <= ONE_HOT_MAX_MODE_SIZE:
            flat_table = table.flatten(1, 2)
            totals = torch.cat([_rows_times(_one_hot(indices[..., rows, :], factors.shape[2], table.dtype), flat_table)
                                for rows in _row_chunks(factors, indices)], dim=-2)
        else:
            totals = sum(_gather(table, indices, start, stop).sum(2) for start, stop in _mode_chunks(factors, indices))
        log_abs, sign = totals[..., :components], 1.0 - 2.0 * torch.remainder(totals[..., components:], 2.0)
        ctx.save_for_backward(factors, indices, log_abs, sign)
        return (sign * log_abs.exp()).sum(-1)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        factors, indices, log_abs, sign = ctx.saved_tensors
        table = _log_sign_table(factors)
        shift = log_abs.amax(dim=-2, keepdim=True)  # K_r, (B, 1, R)
        margin = UNDERFLOW_FRACTION * -math.log(torch.finfo(factors.dtype).tiny)
        if factors.shape[2] <= ONE_HOT_MAX_MODE_SIZE and bool((log_abs >= shift - margin).all()):
            return _one_hot_backward(factors, indices, table, grad_out.unsqueeze(-1) * sign, log_abs, shift), None
        return _gathered_backward(factors, indices, table, grad_out.unsqueeze(-1) * sign, log_abs), None


def _one_hot_backward(factors, indices, table, weight, log_abs, shift) -> Tensor:
    batch, order, rows, components = factors.shape
    scaled = weight * (log_abs - shift).exp()  # g_m sign_{m,r} exp(L_{m,r} − K_r), (B, M, R)
    sums = sum(_transposed_rows_times(_one_hot(indices[..., chunk, :], rows, factors.dtype), scaled[:, chunk])
               for chunk in _row_chunks(factors, indices))  # (B, N·D, R)
    sums = sums.view(batch, order, rows, components)
    partial = (shift.unsqueeze(1) - table[..., :components]).exp() * (1.0 - 2.0 * table[..., components:])
    # a row no entry reads (padding, an unobserved value) has sum 0: keep its gradient 0 even if `partial` is inf
    return torch.where(sums == 0, 0.0, sums * partial)


def _gathered_backward(factors, indices, table, weight, log_abs) -> Tensor:
    batch, order, rows, components = factors.shape
    grad = torch.zeros_like(factors).view(-1, components)
    runs = torch.arange(batch, device=factors.device).view(-1, 1, 1) * (order * rows)
    log_abs, weight = log_abs.unsqueeze(2), weight.unsqueeze(2)  # (B, M, 1, R)
    for start, stop in _mode_chunks(factors, indices):
        entries = _gather(table, indices, start, stop)
        others = (log_abs - entries[..., :components]).exp() * (1.0 - 2.0 * entries[..., components:])
        modes = torch.arange(start, stop, device=factors.device) * rows
        flat = runs + (indices[..., start:stop].long() + modes).expand(batch, -1, -1)
        grad.index_add_(0, flat.reshape(-1), (weight * others).reshape(-1, components))
    return grad.view_as(factors)


def _one_hot(indices: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """(..., M, N) integer indices -> (..., M, N·size) one-hot rows (mode n's block is n·size … n·size+size−1)."""
    values = torch.arange(size, device=indices.device).to(indices.dtype)
    return (indices.unsqueeze(-1) == values).to(dtype).flatten(-2)


def _rows_times(hot: Tensor, table: Tensor) -> Tensor:
    """hot @ table[b] for every run: (M, K) or (B, M, K) with (B, K, C) -> (B, M, C); a shared ``hot`` is
    multiplied once against all runs' columns instead of being copied per run."""
    return torch.einsum("mk,bkc->bmc", hot, table) if hot.dim() == 2 else torch.bmm(hot, table)


def _transposed_rows_times(hot: Tensor, values: Tensor) -> Tensor:
    """hot^T @ values[b] for every run: (M, K) or (B, M, K) with (B, M, C) -> (B, K, C)."""
    return torch.einsum("mk,bmc->bkc", hot, values) if hot.dim() == 2 else torch.bmm(hot.transpose(1, 2), values)


def _row_chunks(factors: Tensor, indices: Tensor) -> list[slice]:
    """Row ranges whose one-hot block has about CHUNK_ELEMENTS entries."""
    batch, order, rows, _ = factors.shape
    per_row = order * rows * (batch if indices.dim() == 3 else 1)
    size = max(1, CHUNK_ELEMENTS // per_row)
    return [slice(s, s + size) for s in range(0, indices.shape[-2], size)]


def _log_sign_table(factors: Tensor) -> Tensor:
    """[log|w|, 1{w < 0}] along the component axis, (B, N, D, 2R)."""
    log_abs = factors.abs().clamp_min(torch.finfo(factors.dtype).tiny).log()
    return torch.cat([log_abs, (factors < 0).to(factors.dtype)], dim=-1)
