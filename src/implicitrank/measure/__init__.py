"""Measurements: spectra, norms, ranks, errors and theory checks (no training: estimators that train live in
``implicitrank.theory`` and ``implicitrank.baselines``).

Examples
--------
>>> import torch
>>> from implicitrank.measure import effective_rank, numerical_rank
>>> singular_values = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1e-6, 0.0]])
>>> effective_rank(singular_values), numerical_rank(singular_values)
(tensor([2.0000, 1.0000]), tensor([2, 1]))
"""

from .dynamics import RateCheck, Trajectory, check_rates
from .spectra import (
    effective_rank,
    frobenius_norm,
    norm_ratio,
    nuclear_norm,
    numerical_rank,
    relative_error,
    scaled_norm,
    schatten_norm,
    singular_values,
    spectral_norm,
)

__all__ = [
    "RateCheck", "Trajectory", "check_rates", "effective_rank", "frobenius_norm", "norm_ratio", "nuclear_norm",
    "numerical_rank", "relative_error", "scaled_norm", "schatten_norm", "singular_values", "spectral_norm",
]
