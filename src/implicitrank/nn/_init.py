"""Factor initialization for the layers: the foundation's deep-matrix-factorization schemes, one run per group."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..factorizations import MatrixFactorization


def child_generators(generator: torch.Generator | None, count: int) -> list[torch.Generator]:
    """``count`` generators seeded from ``generator`` (or from torch's global RNG when ``None``), so
    ``torch.manual_seed`` alone makes a layer's initialization reproducible."""
    seeds = torch.randint(0, 2**62, (count,), generator=generator)
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def matrix_factors(
    rows: int,
    cols: int,
    depth: int,
    width: int | None,
    *,
    init: str,
    init_scale: float,
    groups: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Factors W_1..W_N of ``groups`` independent ``rows x cols`` deep matrix factorizations, shapes
    ``(groups, d_{j+1}, d_j)``, drawn by :class:`MatrixFactorization` (``init`` one of its schemes; the
    groups are its batch of runs). ``width`` is every hidden width (``None``: ``min(rows, cols)``).
    ``init_scale`` is per unit of √min(rows, cols): E||W(0)||_F² = init_scale²·min(rows, cols) (the factorization's
    init_scale, the root-mean-square ||W(0)||_F, is init_scale·√min(rows, cols)), so 1 is a standard scale."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if width is not None and width < 1:
        raise ValueError(f"width must be >= 1 or None, got {width}")
    if not 0 < init_scale < math.inf:
        raise ValueError(f"init_scale must be positive and finite, got {init_scale}")
    widths = None if width is None else (width,) * (depth - 1)
    factorization = MatrixFactorization(rows, cols, depth=depth, widths=widths, init_method=init)
    return factorization.init(
        groups,
        torch.tensor(float(init_scale) * math.sqrt(min(rows, cols))),
        child_generators(generator, groups),
        dtype=dtype or torch.get_default_dtype(),
        device=device or "cpu",
    )
