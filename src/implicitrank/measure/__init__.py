"""Measurements: spectra, norms, ranks, errors and theory checks (no training: estimators that train live in
``implicitrank.theory`` and ``implicitrank.baselines``)."""

from .dynamics import RateCheck, Trajectory, check_rates
from .spectra import (
    effective_rank,
    frobenius_norm,
    nuclear_norm,
    numerical_rank,
    relative_error,
    schatten_norm,
    singular_values,
    spectral_norm,
)

__all__ = [
    "RateCheck", "Trajectory", "check_rates", "effective_rank", "frobenius_norm", "nuclear_norm", "numerical_rank",
    "relative_error", "schatten_norm", "singular_values", "spectral_norm",
]
