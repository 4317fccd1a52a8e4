"""Measurements: spectra, norms, ranks, errors and theory checks."""

from .dynamics import (
    Trajectory,
    check_singular_value_dynamics,
    predicted_singular_value_rates,
    record_trajectory,
)
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
    "Trajectory", "check_singular_value_dynamics", "effective_rank", "frobenius_norm", "nuclear_norm",
    "numerical_rank", "predicted_singular_value_rates", "record_trajectory", "relative_error", "schatten_norm",
    "singular_values", "spectral_norm",
]
