"""The check every task makes of its observed values."""

from __future__ import annotations

import torch
from torch import Tensor


def check_values(values: Tensor, num_observations: int) -> None:
    """Observed values must be a finite floating-point (B, M) tensor with M = ``num_observations`` >= 1."""
    if not values.is_floating_point():
        raise ValueError(f"values must be a floating-point tensor, got {values.dtype}")
    if values.dim() != 2 or values.shape[1] != num_observations:
        raise ValueError(f"values must be (B, M) with M = {num_observations}, got {tuple(values.shape)}")
    if num_observations == 0:
        raise ValueError("the observation set is empty: num_observations must be >= 1")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("observed values contain NaN or inf")
