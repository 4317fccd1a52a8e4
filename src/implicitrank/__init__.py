"""implicitrank: implicit rank regularization in deep matrix, tensor and hierarchical tensor factorizations.

The names a user starts from are here; everything else lives in its package (``factorizations``,
``tasks``, ``optim``, ``train``, ``flow``, ``measure``, ``baselines``, ``theory``, ``run``,
``experiments``, ``sweeps``, ``cnn``, ``nn``). They are imported on first use (PEP 562), so that
``import implicitrank`` (and ``implicitrank --help``) does not import torch.

Examples
--------
Depth-3 matrix factorization completing a rank-2 matrix from small init learns a low-rank solution:

>>> import torch
>>> import implicitrank as ir
>>> from implicitrank.train import train
>>> task = ir.complete_from_target(ir.low_rank_matrix(10, 10, rank=2, seed=0), 70, data_seeds=[0])
>>> model = ir.MatrixFactorization(10, 10, depth=3)
>>> params = model.init(1, 1e-3, ir.generators([0]), dtype=torch.float64)
>>> state = train(model, task, params, ir.gradient_descent(), torch.tensor([0.5]),
...               ir.TrainConfig(max_steps=3000, loss_threshold=1e-8, progress=False))
>>> singular_values = model.quantities(state.params)[0]
>>> int((singular_values > 0.01 * singular_values[0]).sum())  # two singular values learned, the rest near 0
2
>>> bool(ir.relative_error(model.end_to_end(state.params), task.target) < 0.01)  # and the matrix recovered
True

References
----------
Arora, Cohen, Hu & Luo, Implicit Regularization in Deep Matrix Factorization, NeurIPS 2019.
Razin & Cohen, Implicit Regularization in Deep Learning May Not Be Explainable by Norms, NeurIPS 2020.
Razin, Maman & Cohen, Implicit Regularization in Tensor Factorization, ICML 2021.
Razin, Maman & Cohen, Implicit Regularization in Hierarchical Tensor Factorization and Deep Convolutional
Neural Networks, ICML 2022.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module it comes from. The loop itself stays ``implicitrank.train.train``: a function named like
# its module would be shadowed by the module as soon as anything imports ``implicitrank.train``.
_EXPORTS = {
    "MatrixFactorization": "factorizations",
    "CPFactorization": "factorizations",
    "HierarchicalFactorization": "factorizations",
    "generators": "factorizations",
    "Task": "tasks",
    "Completion": "tasks",
    "Sensing": "tasks",
    "complete_from_target": "tasks",
    "gaussian_sensing": "tasks",
    "low_rank_matrix": "tasks",
    "gradient_descent": "optim",
    "global_rmsprop": "optim",
    "adam": "optim",
    "TrainConfig": "train",
    "integrate": "flow",
    "effective_rank": "measure",
    "relative_error": "measure",
    "RunConfig": "run",
    "run_batch": "run",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
