"""Optimizers as (init, update) pairs over stacked per-run tensors."""

from ._optimizers import (
    OPTIMIZERS,
    Optimizer,
    adam,
    global_rmsprop,
    gradient_descent,
    make_optimizer,
    per_run,
)

__all__ = ["OPTIMIZERS", "Optimizer", "adam", "global_rmsprop", "gradient_descent", "make_optimizer", "per_run"]
