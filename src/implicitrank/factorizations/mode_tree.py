"""Mode trees: the hierarchy over the modes [N] that a hierarchical tensor factorization follows.

A mode tree over [N] (Razin, Maman & Cohen, ICML 2022, §3) has the root labelled by all modes, one
leaf per mode, and every internal node labelled by the disjoint union of its children's modes. It is
written here as nested tuples of mode indices, e.g. ``((0, 1), (2, 3))`` for the balanced binary tree
over four adjacent modes; any number of children per node is allowed. A nesting whose leaves are not
exactly the modes 0..N-1, each once, is not a mode tree and raises ``ValueError``.

Node numbering (used by the factorization's parameter list): leaves first, node ``n`` is the leaf of
mode ``n``; then the internal nodes in post-order (every child before its parent), the root last.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import UsageError

Nested = int | tuple["Nested", ...]


@dataclass(frozen=True)
class ModeTree:
    """A mode tree given as nested tuples of mode indices (see the module docstring).

    Derived, per node id: ``children`` (empty for leaves), ``parent`` (-1 for the root), ``modes``
    (the sorted modes below the node) and ``height`` (0 for leaves, else 1 + the children's largest).
    """

    nested: Nested
    children: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    parent: tuple[int, ...] = field(init=False, repr=False, compare=False)
    modes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    height: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nested = _as_tuples(self.nested)
        if not isinstance(nested, tuple):
            raise UsageError(f"tree must be nested tuples with an internal root, e.g. ((0, 1), (2, 3)); got {nested!r}")
        leaves = _leaves(nested)
        if sorted(leaves) != list(range(len(leaves))):
            raise UsageError(f"tree must partition the modes 0..N-1 (each mode in exactly one leaf); got leaves "
                             f"{leaves} for the tree {nested!r}")
        num_modes = len(leaves)
        children: list[tuple[int, ...]] = [()] * num_modes
        modes: list[tuple[int, ...]] = [(n,) for n in range(num_modes)]
        height: list[int] = [0] * num_modes

        def visit(node: Nested) -> int:
            if isinstance(node, int):
                return node
            kids = tuple(visit(child) for child in node)
            children.append(kids)
            modes.append(tuple(sorted(m for k in kids for m in modes[k])))
            height.append(1 + max(height[k] for k in kids))
            return len(children) - 1

        visit(nested)
        parent = [-1] * len(children)
        for node, kids in enumerate(children):
            for k in kids:
                parent[k] = node
        object.__setattr__(self, "nested", nested)
        object.__setattr__(self, "children", tuple(children))
        object.__setattr__(self, "parent", tuple(parent))
        object.__setattr__(self, "modes", tuple(modes))
        object.__setattr__(self, "height", tuple(height))

    @property
    def num_modes(self) -> int:
        return len(self.modes[-1])

    @property
    def num_nodes(self) -> int:
        return len(self.children)

    @property
    def root(self) -> int:
        return self.num_nodes - 1

    @property
    def internal_nodes(self) -> range:
        """Internal node ids, children before parents, the root last."""
        return range(self.num_modes, self.num_nodes)

    def node_of(self, modes: Sequence[int]) -> int:
        """The id of the node whose modes are exactly ``modes``."""
        key = tuple(sorted(int(m) for m in modes))
        if key not in self.modes:
            raise UsageError(f"no node of the tree {self.nested!r} has the modes {key}")
        return self.modes.index(key)


def _as_tuples(node: object) -> Nested:
    if isinstance(node, bool):
        raise UsageError(f"tree leaves must be mode indices (int), got {node!r}")
    if isinstance(node, int):
        if node < 0:
            raise UsageError(f"tree leaves must be mode indices >= 0, got {node}")
        return node
    if isinstance(node, (tuple, list)):
        if not node:
            raise UsageError("every internal node of a tree needs at least one child; got an empty node ()")
        return tuple(_as_tuples(child) for child in node)
    raise UsageError(f"tree nodes must be mode indices (int) or tuples of nodes, got {node!r}")


def _leaves(node: Nested) -> list[int]:
    return [node] if isinstance(node, int) else [m for child in node for m in _leaves(child)]


def balanced_binary_tree(order: int) -> ModeTree:
    """The balanced binary tree over adjacent modes: [N] splits into its first ⌈N/2⌉ and last ⌊N/2⌋
    modes, recursively (Razin et al. 2022, the tree of their HTF experiments)."""
    if order < 1:
        raise UsageError(f"order must be >= 1, got {order}")
    return ModeTree(_halves(tuple(range(order))) if order > 1 else (0,))


def _halves(modes: tuple[int, ...]) -> Nested:
    if len(modes) == 1:
        return modes[0]
    half = (len(modes) + 1) // 2
    return (_halves(modes[:half]), _halves(modes[half:]))


def opposite_modes_tree(order: int) -> ModeTree:
    """Siblings are opposite modes: leaves n and N-1-n are paired first (the middle mode of an odd order
    stays alone), then the pairs are joined by a balanced binary tree in order. It is the "mirror" pooling
    geometry of Cohen & Shashua (ICLR 2017): low hierarchical tensor rank over this tree favours
    interactions between far-apart modes, the adjacent-modes tree between nearby ones."""
    if order < 2:
        raise UsageError(f"order must be >= 2, got {order}")
    pairs: list[Nested] = [(n, order - 1 - n) for n in range(order // 2)]
    if order % 2:
        pairs.append(order // 2)
    return ModeTree(_join_balanced(pairs))


def _join_balanced(nodes: list[Nested]) -> Nested:
    if len(nodes) == 1:
        return nodes[0]
    half = (len(nodes) + 1) // 2
    return (_join_balanced(nodes[:half]), _join_balanced(nodes[half:]))


def square_windows_tree(rows: int, cols: int, window: int = 2) -> ModeTree:
    """The tree of a convolutional arithmetic circuit on a ``rows x cols`` image whose pixel (i, j) is
    mode i·cols + j: each level pools ``window x window`` windows of the level below (smaller windows at
    the borders when the grid does not divide), until one node is left (Razin et al. 2022, §5). The window is
    at most the grid's longer side: that one already pools the whole grid at once, as any larger one would."""
    if rows < 1 or cols < 1:
        raise UsageError(f"rows and cols must be >= 1, got {rows}x{cols}")
    if not 2 <= window <= max(rows, cols, 2):
        raise UsageError(f"window must be in [2, {max(rows, cols, 2)}] for a {rows}x{cols} grid (the longer side "
                         f"pools the whole grid in one node), got {window}")
    if rows * cols == 1:
        return ModeTree((0,))
    grid: list[list[Nested]] = [[i * cols + j for j in range(cols)] for i in range(rows)]
    while len(grid) * len(grid[0]) > 1:
        grid = [[_window(grid, i, j, window) for j in range(0, len(grid[0]), window)]
                for i in range(0, len(grid), window)]
    root = grid[0][0]
    return ModeTree(root if isinstance(root, tuple) else (root,))


def _window(grid: list[list[Nested]], i: int, j: int, window: int) -> Nested:
    cells = tuple(cell for row in grid[i:i + window] for cell in row[j:j + window])
    return cells[0] if len(cells) == 1 else cells


TREE_KINDS = "balanced, opposite, windows, windows:HxW[:K] or a nested tuple of the modes such as ((0,1),(2,3))"


def tree_from_spec(spec: str, shape: Sequence[int]) -> ModeTree:
    """A tree from a command-line word: ``balanced`` (adjacent modes), ``opposite``, ``windows``
    (2x2 windows of a square image; ``windows:HxW[:K]`` for another grid or window size) or a literal
    nested tuple such as ``((0,1),(2,3))``."""
    order = len(shape)
    if spec == "balanced":
        return balanced_binary_tree(order)
    if spec == "opposite":
        return opposite_modes_tree(order)
    if spec.startswith("windows"):
        parts = spec.split(":")
        side = round(order**0.5)
        try:
            rows, cols = (int(v) for v in parts[1].split("x")) if len(parts) > 1 else (side, side)
            window = int(parts[2]) if len(parts) > 2 else 2
        except ValueError as err:
            raise UsageError(f"tree spec {spec!r}: expected windows, windows:HxW or windows:HxW:K") from err
        if rows * cols != order:
            wrong = (f"needs one pixel per mode: the {rows}x{cols} grid has {rows * cols} pixels, the tensor {order} "
                     "modes" if len(parts) > 1 else
                     f"takes the {order} modes as the pixels of a square image, but {order} is not a square number")
            raise UsageError(f"tree {spec!r} {wrong}; name a grid of {order} pixels, e.g. windows:{_grid(order)}")
        try:
            return square_windows_tree(rows, cols, window)
        except UsageError as err:
            raise UsageError(f"tree spec {spec!r}: {err}") from None
    try:
        nested = ast.literal_eval(spec)
    except (ValueError, SyntaxError) as err:
        raise UsageError(f"tree must be one of {TREE_KINDS}, got {spec!r}") from err
    tree = ModeTree(nested)
    if tree.num_modes != order:
        raise UsageError(f"tree {spec!r} has {tree.num_modes} modes, the tensor has order {order}")
    return tree


def _grid(pixels: int) -> str:
    """The grid ``HxW`` of ``pixels`` pixels closest to a square (``1x3`` for 3, ``2x3`` for 6)."""
    rows = max(r for r in range(1, math.isqrt(pixels) + 1) if pixels % r == 0)
    return f"{rows}x{pixels // rows}"
