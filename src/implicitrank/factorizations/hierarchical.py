"""Hierarchical tensor factorization over a mode tree (Razin, Maman & Cohen, ICML 2022).

Node ν of the mode tree (``mode_tree.ModeTree``) holds a weight matrix W^(ν) ∈ R^{R_ν × R_Pa(ν)}, with
R_n = D_n at the leaf of mode n and parent width 1 at the root. Bottom-up,

    W_{n,r} = W^(n)[:, r]  (leaves),    W_{ν,r} = Σ_{r'} W^(ν)[r', r] · ⊗_{c ∈ children(ν)} W_{c,r'},

and the end tensor is W = W_{root,1}. ``params[ν]`` has shape (B, R_ν, R_Pa(ν)), in the tree's node order
(leaves = modes first, root last); B independent runs train at once.

Local component (ν, r) of an internal node ν, r ∈ [R_ν]: the r-th row of W^(ν) together with the r-th
column of every child's matrix — K_ν = |children(ν)| + 1 vectors, whose norms multiply to its norm σ_{ν,r}.
W is multilinear in those K vectors (they enter only through the r' = r term above), so with γ_{ν,r} the
projection of −∇L(W) on that term with unit vectors, gradient flow from a balanced init gives
(Razin et al. 2022, Thm. 1)

    σ̇_{ν,r} = K_ν · γ_{ν,r} · σ_{ν,r}^(2 − 2/K_ν):

local components are learned one at a time, which lowers the hierarchical tensor rank (the matricization
ranks over the tree's nodes; the rank at ν is at most min(R_ν, R_Pa(ν))).

HTF is a deep convolutional arithmetic circuit: an entry W[i] is computed without forming W by feeding
the one-hot vectors of i_1..i_N to the leaves and, level by level, product pooling over siblings then a
locally-connected 1×1 map (``evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor

from . import _protocol as protocol
from .mode_tree import ModeTree, Nested, balanced_binary_tree


@dataclass(frozen=True)
class HierarchicalFactorization:
    """Hierarchical tensor factorization of a tensor of shape ``shape`` over the mode tree ``tree``.

    Attributes
    ----------
    shape : tuple of int
        Mode sizes (D_1, ..., D_N), each positive.
    tree : ModeTree or nested tuples or None
        The mode tree over the N modes; None means the balanced binary tree over adjacent modes.
    widths : int or tuple of int or None
        R_ν of the internal nodes, one int for all or a tuple in ``tree.internal_nodes`` order; ``None``: every
        R_ν as large as can matter, capped at ``width_cap`` (see ``default_widths``).
    width_cap : int
        The cap on the default widths, >= 1. Default 512.
    init_method : str
        One of ``inits``. ``init_scale`` is, as for every factorization, the root-mean-square Frobenius norm of
        W(0) − E W(0) (see ``factorizations``). ``gaussian`` (default): entries i.i.d. N(init_mean, s²); for
        init_mean = 0, E||W(0)||_F² = Π_ν R_ν · s^(2M) over the M nodes (R_n = D_n at the leaves), which fixes s
        (``entry_std``; Razin et al. 2022 give s, ``scale_for_entry_std`` converts it); otherwise s solves the
        same equation for the variance of W(0) (E||W(0)||² − ||E W(0)||²). ``balanced``: entries
        ±α/√(R_ν·R_Pa(ν)) with random signs, so every local component's K vectors have the same norm; α such that
        E||W(0)||_F² = α^(2M)/Π_ν R_Pa(ν) = init_scale².
    init_mean : float
        The mean of the ``gaussian`` init's entries (default 0: a small init); must be 0 for ``balanced``.
    quantity_name : str
        ``local_component_norms``.

    Raises
    ------
    ValueError
        On an empty or non-positive shape, a tree over another number of modes, width_cap < 1, an unknown init,
        a non-finite init_mean (or a nonzero one with ``balanced``), or widths of the wrong count or below 1.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §3 and Appendix (init std per entry).
    """

    shape: tuple[int, ...]
    tree: ModeTree | Nested | None = None
    widths: int | tuple[int, ...] | None = None
    width_cap: int = 512
    init_method: str = "gaussian"
    init_mean: float = 0.0
    quantity_name: str = "local_component_norms"
    inits: ClassVar[tuple[str, ...]] = ("gaussian", "balanced")

    def __post_init__(self) -> None:
        shape = protocol.mode_sizes(self.shape)
        object.__setattr__(self, "shape", shape)
        tree = self.tree if self.tree is not None else balanced_binary_tree(len(shape))
        tree = tree if isinstance(tree, ModeTree) else ModeTree(tree)
        if tree.num_modes != len(shape):
            raise ValueError(f"tree must be over the {len(shape)} modes of shape {shape}, got a tree over "
                             f"{tree.num_modes} modes: {tree.nested!r}")
        object.__setattr__(self, "tree", tree)
        if not protocol.is_positive_integer(self.width_cap):
            raise ValueError(f"width_cap must be an integer >= 1, got {self.width_cap!r}")
        protocol.check_init("HierarchicalFactorization", self.init_method, self.inits)
        if not math.isfinite(self.init_mean):
            raise ValueError(f"init_mean must be finite, got {self.init_mean}")
        if self.init_method == "balanced" and self.init_mean != 0:
            raise ValueError(f"init_mean applies to the gaussian init only; balanced needs 0, got {self.init_mean}")
        given = self.widths if isinstance(self.widths, (list, tuple)) else (self.widths,)
        if self.widths is not None and not all(protocol.is_positive_integer(w) for w in given):
            raise ValueError(f"widths (R_ν) must be integers >= 1, got {self.widths!r}")  # 2.7 is no 2
        if isinstance(self.widths, (list, tuple)):
            object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
            if len(self.widths) != len(tree.internal_nodes):
                raise ValueError(f"widths must have one entry per internal node ({len(tree.internal_nodes)}), "
                                 f"got {len(self.widths)}")

    def _given_widths(self) -> tuple[int, ...]:
        count = len(self.tree.internal_nodes)
        return (int(self.widths),) * count if isinstance(self.widths, int) else tuple(self.widths)

    @property
    def order(self) -> int:
        """The order N of the tensor (number of modes)."""
        return len(self.shape)

    @cached_property
    def node_widths(self) -> tuple[int, ...]:
        """R_ν of every node (leaves: D_n), in node order."""
        internal = self._given_widths() if self.widths is not None else self.default_widths()
        return (*self.shape, *internal)

    def default_widths(self) -> tuple[int, ...]:
        """The default R_ν of each internal node: as wide as can matter, capped at ``width_cap``.

        For each internal node, the product of all but the largest of m_Pa, m_c1, ..., m_ck (capped at
        ``width_cap``), where m_c = min(Π_{n∈c} D_n, Π_{n∉c} D_n) bounds the matricization rank at child c and m_Pa
        that at ν itself (1 at the root). The local tensor at ν is a CP decomposition with R_ν terms of a tensor of
        those dimensions, whose CP rank is at most that product: a wider R_ν adds no expressiveness.

        Returns
        -------
        tuple of int
            One width per internal node, in ``tree.internal_nodes`` order.
        """
        tree, cap, total = self.tree, self.width_cap, math.prod(self.shape)

        def bound(node: int) -> int:
            if node == tree.root:
                return 1
            inside = math.prod(self.shape[m] for m in tree.modes[node])
            return min(inside, total // inside, cap)

        widths = []
        for node in tree.internal_nodes:
            dims = sorted([bound(node), *(bound(c) for c in tree.children[node])])
            widths.append(min(cap, math.prod(dims[:-1])))
        return tuple(widths)

    @property
    def num_parameters(self) -> int:
        """Parameters of one run: Σ_ν R_ν·R_Pa(ν) over the nodes' weight matrices W^(ν)."""
        return sum(self.node_widths[v] * self.parent_width(v) for v in range(self.tree.num_nodes))

    def parent_width(self, node: int) -> int:
        """R_Pa(ν): the number of columns of W^(ν) (1 at the root).

        Parameters
        ----------
        node : int
            Any node id (leaf or internal) whose parent is looked up in ``tree.parent``.

        Returns
        -------
        int
            R_Pa(ν), or 1 for the root (it has no parent).
        """
        parent = self.tree.parent[node]
        return 1 if parent < 0 else self.node_widths[parent]

    def local_order(self, node: int) -> int:
        """K_ν = |children(ν)| + 1, the number of vectors of a local component at ν.

        Parameters
        ----------
        node : int
            The node ν; its number of children is counted.

        Returns
        -------
        int
            K_ν, the exponent's N in the law σ̇ = K·γ·σ^(2−2/K) at ν.
        """
        return len(self.tree.children[node]) + 1

    def init(
        self,
        batch: int,
        init_scale: Tensor,
        generator: Sequence[torch.Generator],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """The node matrices W^(ν) of ``batch`` runs, run b drawn from ``generator[b]``.

        Parameters
        ----------
        batch : int
            Number of runs B; every node matrix gets this leading dimension.
        init_scale : Tensor
            The root-mean-square ||W(0) − E W(0)||_F, one per run or one for all, positive (see ``init_method`` in
            the class docstring).
        generator : sequence of torch.Generator
            One generator per run: run b's node matrices are drawn from ``generator[b]`` in node order (CPU, float64).
        dtype : torch.dtype, optional
            Dtype of the node matrices, cast after the float64 draw. Default ``torch.float32``.
        device : torch.device or str, optional
            Device of the node matrices. Default ``"cpu"``.

        Returns
        -------
        list of Tensor
            W^(ν), (B, R_ν, R_Pa(ν)) each, in node order (leaves first, root last).

        Raises
        ------
        ValueError
            When the number of generators is not ``batch`` or an init scale is not positive.
        """
        gens, scale = protocol.per_run_scales(init_scale, generator, batch, dtype)
        sizes = [(self.node_widths[v], self.parent_width(v)) for v in range(self.tree.num_nodes)]
        noise = [protocol.batched_normal(gens, size, dtype=torch.float64, device="cpu") for size in sizes]
        if self.init_method == "gaussian":
            std = self.entry_std(scale).view(-1, 1, 1)
            params = [self.init_mean + std * z for z in noise]
        else:
            log_parents = sum(math.log(b) for _, b in sizes)
            alpha = protocol.product_entry_std(scale, -log_parents, len(sizes))
            params = [(alpha / math.sqrt(a * b)).view(-1, 1, 1) * z.sign() for (a, b), z in zip(sizes, noise)]
        return [p.to(dtype=dtype, device=device).contiguous() for p in params]

    def entry_std(self, init_scale: Tensor | float) -> Tensor:
        """The std s of the ``gaussian`` init's entries for ``init_scale`` (see the class docstring).

        For init_mean ≠ 0, s is found by bisection on log s.

        Parameters
        ----------
        init_scale : Tensor or float
            Target root-mean-square ||W(0) − E W(0)||_F over the whole tree, scalar or one per run.

        Returns
        -------
        Tensor
            s for the entries of every node matrix, float64, shaped like ``init_scale``.
        """
        if self.init_mean == 0:
            log_count = sum(math.log(w) for w in self.node_widths)
            return protocol.product_entry_std(init_scale, log_count, self.tree.num_nodes)

        def std(scale: float) -> float:
            lo, hi, target = -300.0, 300.0, 2.0 * math.log(scale)
            for _ in range(100):  # bisection on log s: the variance of W(0) grows with s
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if self._log_variance(math.exp(mid)) < target else (lo, mid)
            return math.exp(0.5 * (lo + hi))

        return protocol.per_value(init_scale, std)

    def scale_for_entry_std(self, std: float) -> float:
        """The init_scale whose ``gaussian`` init draws the entries with std ``std`` (inverse of ``entry_std``).

        Parameters
        ----------
        std : float
            Std of the entries of every node matrix W^(ν), positive.

        Returns
        -------
        float
            The root-mean-square ||W(0) − E W(0)||_F of the tree's end tensor.

        Raises
        ------
        ValueError
            On ``std`` <= 0, or an init_scale outside the range of float64.
        """
        if self.init_mean == 0:
            return protocol.product_scale(std, sum(math.log(w) for w in self.node_widths), self.tree.num_nodes)
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        return protocol.product_scale(1.0, self._log_variance(std), 1)

    def _log_variance(self, std: float) -> float:
        """log(E||W(0)||_F² − ||E W(0)||_F²) for the ``gaussian`` init with entry std ``std``."""
        noisy, gap = self._log_moments(std), self._log_moments(0.0) - self._log_moments(std)
        return -math.inf if gap >= 0 else noisy + math.log(-math.expm1(gap))

    def _log_moments(self, std: float) -> float:
        """log E||W(0)||_F² for entries i.i.d. with mean μ = init_mean and std ``std``, bottom-up: with
        a_ν = E||W_{ν,r}||² and b_ν = E<W_{ν,r}, W_{ν,r̃}> (r ≠ r̃), m₂ = μ² + std²,
            a_n = D_n·m₂, b_n = D_n·μ² (leaves);  a_ν = R_ν·m₂·Π_c a_c + R_ν(R_ν−1)·μ²·Π_c b_c,
            b_ν = μ²·(R_ν·Π_c a_c + R_ν(R_ν−1)·Π_c b_c);   E||W||² = a_root (in the log domain)."""
        log_mu2 = 2.0 * math.log(abs(self.init_mean))
        log_m2 = math.log(self.init_mean**2 + std**2)
        tree, a, b = self.tree, [0.0] * self.tree.num_nodes, [0.0] * self.tree.num_nodes
        for n in range(self.order):
            a[n], b[n] = math.log(self.shape[n]) + log_m2, math.log(self.shape[n]) + log_mu2
        for node in tree.internal_nodes:
            width = self.node_widths[node]
            pa, pb = sum(a[c] for c in tree.children[node]), sum(b[c] for c in tree.children[node])
            pairs = math.log(width * (width - 1)) if width > 1 else -math.inf
            a[node] = _logaddexp(math.log(width) + log_m2 + pa, pairs + log_mu2 + pb)
            b[node] = log_mu2 + _logaddexp(math.log(width) + pa, pairs + pb)
        return a[tree.root]

    # ----- the end tensor and its entries -------------------------------------------------------------

    def end_to_end(self, params: list[Tensor]) -> Tensor:
        """W = W_{root,1} as a dense tensor, bottom-up over the tree. Small tensors only.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν) in node order, contracted bottom-up from the leaves to the root.

        Returns
        -------
        Tensor
            The dense W, (B, *shape), modes back in their original order.
        """
        tree, batch = self.tree, params[0].shape[0]
        dense: list[Tensor] = list(params[:self.order])  # W_{ν,r} for r ∈ [R_Pa(ν)], (B, Π D over ν, R_Pa(ν))
        mode_order: list[tuple[int, ...]] = [(n,) for n in range(self.order)]
        for node in tree.internal_nodes:
            kids = tree.children[node]
            pooled = dense[kids[0]]
            for child in kids[1:]:
                pooled = (pooled.unsqueeze(2) * dense[child].unsqueeze(1)).flatten(1, 2)
            dense.append(pooled @ params[node])
            mode_order.append(tuple(m for child in kids for m in mode_order[child]))
        order = mode_order[tree.root]
        w = dense[tree.root].reshape(batch, *(self.shape[m] for m in order))
        return w.permute(0, *(1 + order.index(m) for m in range(self.order)))

    def evaluate(self, params: list[Tensor], indices: Tensor, *, check: bool = True) -> Tensor:
        """Entries W[i] at integer multi-indices, without forming W.

        The ConvAC view: the leaf of mode n reads row i_n of W^(n) (its one-hot input times W^(n)); each internal
        node multiplies its children's outputs entrywise (product pooling) and applies W^(ν) (a 1×1
        locally-connected map). Nodes of one tree level with equal widths run as one batched op.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν), (B, R_ν, R_Pa(ν)), in node order: the weights of the circuit.
        indices : Tensor
            Integer multi-indices, one row i_n per leaf: (M, N) for all runs or (B, M, N).
        check : bool, optional
            Check ``indices`` (integer, shaped, in range) first. False where they were checked already, e.g. a
            task's, checked against the same shape when it was made: the check waits for the device at every
            step. Default True.

        Returns
        -------
        Tensor
            W[i] per run and multi-index, (B, M).

        Raises
        ------
        ValueError
            When ``indices`` is not integer, has the wrong shape, or is out of range.
        """
        if check:
            protocol.check_indices(indices, self.shape)
        idx = indices.long()
        if idx.dim() == 2:
            idx = idx.unsqueeze(0).expand(params[0].shape[0], -1, -1)

        def leaves(nodes: tuple[int, ...], weights: Tensor) -> Tensor:
            rows = idx[..., list(nodes)].permute(2, 0, 1)  # (G, B, M)
            return weights.gather(2, rows.unsqueeze(-1).expand(-1, -1, -1, weights.shape[-1]))

        return self._contract(params, leaves)

    def inner_rank_one(self, params: list[Tensor], vectors: Sequence[Tensor]) -> Tensor:
        """<A_i, W> for rank-one A_i = a_i^1 ⊗ ⋯ ⊗ a_i^N.

        The same circuit as ``evaluate`` with the leaf of mode n reading a_i^n W^(n) instead of a row.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν) in node order; leaf n's matrix is multiplied by the a_i^n.
        vectors : sequence of Tensor
            N matrices, ``vectors[n]`` of shape (M, D_n): row i is a_i^n.

        Returns
        -------
        Tensor
            <A_i, W> for each run and measurement i, (B, M).

        Raises
        ------
        ValueError
            When there are not N two-dimensional matrices with last dimension D_n.
        """
        if len(vectors) != self.order or any(v.dim() != 2 or v.shape[-1] != d for v, d in zip(vectors, self.shape)):
            raise ValueError(f"vectors must be {self.order} matrices (M, D_n) with D_n = {self.shape}, got "
                             f"{[tuple(v.shape) for v in vectors]}")

        def leaves(nodes: tuple[int, ...], weights: Tensor) -> Tensor:
            a = torch.stack([vectors[n] for n in nodes]).to(weights.dtype)  # (G, M, D)
            return torch.einsum("gmd,gbdr->gbmr", a, weights)

        return self._contract(params, leaves)

    def _contract(self, params: list[Tensor], leaves: Callable[[tuple[int, ...], Tensor], Tensor]) -> Tensor:
        """Run the circuit bottom-up from the leaf outputs ``leaves(nodes, stacked W^(n))`` (G, B, M, R_Pa).

        Leaf outputs are made where their parents read them (no separate leaf layer is stored). Every
        internal node's output is divided by its largest magnitude per entry (a constant: detached; 1 for an
        all-zero output, which the balanced init makes often) and the logarithm of that scale is carried, so
        products over many levels neither overflow nor underflow; the result, and so its gradient, is exactly
        that of the plain circuit.
        """
        plan = self._plan
        outputs: list[tuple[Tensor, Tensor] | None] = [None] * len(plan.leaf_groups)  # per internal group

        def read(group: int, positions: tuple[int, ...] | None) -> tuple[Tensor, Tensor | None]:
            if group < len(plan.leaf_groups):
                nodes = plan.leaf_groups[group]
                nodes = nodes if positions is None else tuple(nodes[k] for k in positions)
                return leaves(nodes, torch.stack([params[n] for n in nodes])), None
            out, logs = outputs[group]
            if positions is None:
                return out, logs
            index = torch.tensor(positions, device=out.device)
            return out.index_select(0, index), logs.index_select(0, index)

        def gather(column: tuple[tuple[int, tuple[int, ...] | None], ...]) -> tuple[Tensor, Tensor | None]:
            if len(column) == 1:  # the children at this position all come from one group
                return read(*column[0])
            parts = [read(group, positions) for group, positions in column]
            logs = [lg if lg is not None else torch.zeros_like(out[..., 0]) for out, lg in parts]
            return torch.cat([out for out, _ in parts]), torch.cat(logs)

        for nodes, columns in plan.internal_groups:
            pooled, logs = gather(columns[0])
            for column in columns[1:]:
                hidden, more = gather(column)
                pooled = pooled * hidden
                logs = more if logs is None else (logs if more is None else logs + more)
            out = pooled @ torch.stack([params[v] for v in nodes])
            largest = torch.linalg.vector_norm(out.detach(), ord=math.inf, dim=-1)
            # An all-zero output keeps scale 1: a scale of ``tiny`` would put log(tiny) into every ancestor (their
            # outputs are zero too), and exp of the sum underflows, dropping that entry's whole gradient.
            scale = torch.where(largest > 0, largest.clamp_min(torch.finfo(out.dtype).tiny), 1.0)
            outputs.append((out / scale.unsqueeze(-1), scale.log() if logs is None else logs + scale.log()))
        out, logs = outputs[-1]
        return out[0, ..., 0] * logs[0].exp()

    @cached_property
    def _plan(self) -> _Plan:
        """Groups of nodes evaluated together: leaves by (D_n, R_Pa); internal nodes by (height, number of
        children, R_ν, R_Pa), lower levels first (the root last)."""
        tree, leaf_groups, internal_groups = self.tree, {}, {}
        for n in range(self.order):
            leaf_groups.setdefault((self.shape[n], self.parent_width(n)), []).append(n)
        for v in tree.internal_nodes:
            key = (tree.height[v], len(tree.children[v]), self.node_widths[v], self.parent_width(v))
            internal_groups.setdefault(key, []).append(v)
        groups = [tuple(nodes) for nodes in leaf_groups.values()]
        groups += [tuple(nodes) for _, nodes in sorted(internal_groups.items())]
        where = {node: (g, k) for g, nodes in enumerate(groups) for k, node in enumerate(nodes)}
        internal = []
        for nodes in groups[len(leaf_groups):]:
            columns = []
            for kids in zip(*(tree.children[v] for v in nodes)):
                sources = {where[c][0] for c in kids}
                if len(sources) == 1:
                    group, positions = sources.pop(), tuple(where[c][1] for c in kids)
                    whole = positions == tuple(range(len(groups[group])))
                    columns.append(((group, None if whole else positions),))
                else:
                    columns.append(tuple((where[c][0], (where[c][1],)) for c in kids))
            internal.append((nodes, tuple(columns)))
        return _Plan(groups[:len(leaf_groups)], internal)

    # ----- local components -------------------------------------------------------------------------

    def local_component_norms(self, params: list[Tensor], node: int | None = None) -> Tensor:
        """σ_{ν,r} = ||W^(ν)[r, :]|| · Π_{c ∈ children(ν)} ||W^(c)[:, r]|| by fixed index r.

        Parameters
        ----------
        params : list of Tensor
            The node matrices; row r of W^(ν) and column r of each child's W^(c) enter.
        node : int, optional
            The internal node ν whose components are measured; None means the root.

        Returns
        -------
        Tensor
            σ_{ν,r} by index r, (B, R_ν), in the parameters' dtype.

        Raises
        ------
        ValueError
            When ``node`` is not an internal node.
        """
        node = self._internal(node)
        norms = torch.linalg.vector_norm(params[node], dim=2)
        for child in self.tree.children[node]:
            norms = norms * torch.linalg.vector_norm(params[child], dim=1)
        return norms

    def quantities(self, params: list[Tensor], *, sort: bool = True, node: int | None = None) -> Tensor:
        """The local component norms at ``node`` (default the root), sorted descending or by index.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν), (B, R_ν, R_Pa(ν)) each, whose local component norms are tracked.
        sort : bool, optional
            Sort descending (default True); False keeps the component index r.
        node : int, optional
            Which internal node's components to report (the root's when None).

        Returns
        -------
        Tensor
            The R_ν local component norms of each run, (B, R_ν).
        """
        norms = self.local_component_norms(params, node)
        return norms.sort(dim=-1, descending=True).values if sort else norms

    def predicted_rates(
        self, params: list[Tensor], gradient: Tensor, *, order: int | None = None, node: int | None = None
    ) -> Tensor:
        """σ̇_{ν,r} = K_ν·γ_{ν,r}·σ_{ν,r}^(2−2/K_ν) for every r at ``node`` (default the root).

        γ_{ν,r} = <−∇L(W), T_{ν,r}>/σ_{ν,r} with T_{ν,r} the component's term of W (``local_component_tensor``), so
        the rate is K·<−∇L(W), T_{ν,r}>·σ^(1−2/K), finite at σ = 0. Exact for gradient flow from a balanced init
        (``unbalancedness`` zero).

        Parameters
        ----------
        params : list of Tensor
            The node matrices at the current point, which give σ_{ν,r} and T_{ν,r}.
        gradient : Tensor
            ∇L(W), (B, *shape) (small tensors).
        order : int, optional
            Overrides K_ν = |children(ν)| + 1; None uses K_ν.
        node : int, optional
            The internal node whose law is stated; the root when None.

        Returns
        -------
        Tensor
            The predicted σ̇_{ν,r}, (B, R_ν), by component index r.

        References
        ----------
        N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
        Convolutional Neural Networks", ICML 2022, Theorem 1.
        """
        node = self._internal(node)
        inner = torch.stack([(-gradient * self.local_component_tensor(params, node, r)).flatten(1).sum(1)
                             for r in range(self.node_widths[node])], dim=1)
        return protocol.power_law_rates(self.local_component_norms(params, node), inner,
                                        protocol.check_order(order, self.local_order(node)))

    def local_component_tensor(self, params: list[Tensor], node: int, r: int) -> Tensor:
        """The term of W that local component (ν, r) carries.

        W with row r of W^(ν) kept and its other rows zeroed (W is linear in W^(ν), and only row r meets the
        component's child columns). Divided by σ_{ν,r} it is the unit-vector term Δ_{ν,r} whose projection gives
        γ_{ν,r}.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν) in node order; row r of W^(ν) is kept, the others zeroed.
        node : int
            The internal node ν of the component.
        r : int
            The component index, 0 <= r < R_ν.

        Returns
        -------
        Tensor
            T_{ν,r} as a dense (B, *shape) tensor (small tensors only).

        Raises
        ------
        ValueError
            When ``node`` is not internal or ``r`` is out of range.
        """
        node = self._internal(node)
        if not 0 <= r < self.node_widths[node]:
            raise ValueError(f"r must be in [0, {self.node_widths[node]}) at node {node}, got {r}")
        keep = torch.zeros_like(params[node])
        keep[:, r] = 1
        return self.end_to_end([p * keep if v == node else p for v, p in enumerate(params)])

    def unbalancedness(self, params: list[Tensor]) -> Tensor:
        """max over local components of max_{j,j'} | ||a_j||² − ||a_j'||² | over its K vectors, per run.

        Zero at a balanced init and conserved by gradient flow, since d||a_j||²/dt = 2σγ for every vector of a
        component.

        Parameters
        ----------
        params : list of Tensor
            The node matrices; at each internal node, its rows' and its children's columns' norms enter.

        Returns
        -------
        Tensor
            The largest gap of each run over all internal nodes, (B,).
        """
        gaps = []
        for node in self.tree.internal_nodes:
            sq = [params[node].pow(2).sum(2)] + [params[c].pow(2).sum(1) for c in self.tree.children[node]]
            sq = torch.stack(sq)
            gaps.append((sq.amax(0) - sq.amin(0)).amax(-1))
        return torch.stack(gaps, dim=1).amax(1)

    def _internal(self, node: int | None) -> int:
        node = self.tree.root if node is None else int(node)
        if node not in self.tree.internal_nodes:
            raise ValueError(f"node must be an internal node id in {self.tree.internal_nodes}, got {node}")
        return node

    # ----- matricizations ---------------------------------------------------------------------------

    def matricization_singular_values(self, params: list[Tensor]) -> list[Tensor]:
        """Singular values of W's matricization at every node (rows: the node's modes), without forming W.

        With W = Σ_r W_{ν,r} ⊗ Ψ_{ν,r}, the matricization is Σ_r vec(W_{ν,r}) vec(Ψ_{ν,r})ᵀ, so its squared
        singular values are the eigenvalues of G_ν^½ H_ν G_ν^½ with the Gram matrices

            G_n = W^(n)ᵀ W^(n),  G_ν = W^(ν)ᵀ (⊙_c G_c) W^(ν)                      (bottom-up),
            H_root = [1],        H_c = (W^(ν) H_ν W^(ν)ᵀ) ⊙ (⊙_{c' ≠ c} G_c')         (top-down),

        ⊙ the entrywise product (the Gram recursions of the hierarchical Tucker format, Hackbusch 2012,
        "Tensor Spaces and Numerical Tensor Calculus"). Each Gram is kept divided by its largest entry, its log
        scale carried, so deep trees neither overflow nor underflow.

        Parameters
        ----------
        params : list of Tensor
            The node matrices W^(ν) in node order; they are detached and taken in float64.

        Returns
        -------
        list of Tensor
            One (B, k_ν) float64 tensor per node, descending, k_ν = min(R_Pa(ν), Π_{n∈ν} D_n, Π_{n∉ν} D_n).
        """
        tree = self.tree
        p = [w.detach().double() for w in params]
        gram: list[tuple[Tensor, Tensor]] = [_normalized(w.transpose(1, 2) @ w) for w in p[:self.order]]
        for node in tree.internal_nodes:
            inner, logs = _hadamard([gram[c] for c in tree.children[node]])
            g, lg = _normalized(p[node].transpose(1, 2) @ inner @ p[node])
            gram.append((g, lg + logs))
        ones = torch.ones(p[0].shape[0], 1, 1, dtype=torch.float64, device=p[0].device)
        outside: list[tuple[Tensor, Tensor] | None] = [None] * tree.num_nodes
        outside[tree.root] = (ones, torch.zeros_like(ones[:, 0, 0]))
        for node in reversed(tree.internal_nodes):
            h, lh = outside[node]
            above, la = _normalized(p[node] @ h @ p[node].transpose(1, 2))
            kids = tree.children[node]
            for child in kids:
                outside[child] = _hadamard([(above, la + lh), *(gram[c] for c in kids if c != child)])
        values = []
        total = math.prod(self.shape)
        for node in range(tree.num_nodes):
            (g, lg), (h, lh) = gram[node], outside[node]
            evals, evecs = torch.linalg.eigh(g)
            root_g = evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.transpose(1, 2)
            sq = torch.linalg.eigvalsh(root_g @ h @ root_g).clamp_min(0).flip(-1)
            inside = math.prod(self.shape[m] for m in tree.modes[node])
            k = min(sq.shape[-1], inside, total // inside)
            values.append(sq[:, :k].sqrt() * (0.5 * (lg + lh)).exp().unsqueeze(-1))
        return values


@dataclass(frozen=True)
class _Plan:
    """The circuit's schedule: leaf groups, then internal groups, each with its children by position: a
    column is ((source group, positions in it or None for all of it),) when one group holds them all, else
    one (group, (position,)) per child."""

    leaf_groups: list[tuple[int, ...]]
    internal_groups: list[tuple[tuple[int, ...], tuple[tuple[tuple[int, tuple[int, ...] | None], ...], ...]]]


def _logaddexp(x: float, y: float) -> float:
    top = max(x, y)
    return top if top == -math.inf else top + math.log(math.exp(x - top) + math.exp(y - top))


def _normalized(gram: Tensor) -> tuple[Tensor, Tensor]:
    """(gram / s, log s) with s its largest magnitude per run (1 where it is zero)."""
    scale = gram.abs().amax(dim=(-2, -1))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return gram / scale.view(-1, 1, 1), scale.log()


def _hadamard(grams: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """The entrywise product of normalized Grams (gram, log scale), normalized again, with its log scale."""
    product, logs = grams[0]
    for g, lg in grams[1:]:
        product, logs = product * g, logs + lg
    product, lp = _normalized(product)
    return product, lp + logs
