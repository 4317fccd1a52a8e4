"""Optimizers as (init, update) pairs over stacked per-run tensors.

Examples
--------
>>> import torch
>>> from implicitrank.optim import gradient_descent
>>> optimizer = gradient_descent()
>>> state = optimizer.init([torch.zeros(2, 3)])
>>> updates, state = optimizer.update([torch.ones(2, 3)], state, torch.tensor([0.1, 0.2]))  # one lr per run
>>> updates[0][:, 0]
tensor([0.1000, 0.2000])
"""

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
