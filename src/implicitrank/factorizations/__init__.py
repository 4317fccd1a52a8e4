"""The factorizations of the analogy table behind one protocol (see ``_protocol``)."""

from ._protocol import Factorization, autograd_loss_and_grad, generators, loss_and_grad
from .cp import CPFactorization
from .hierarchical import HierarchicalFactorization
from .matrix import MatrixFactorization

__all__ = [
    "CPFactorization", "Factorization", "HierarchicalFactorization", "MatrixFactorization", "autograd_loss_and_grad",
    "generators", "loss_and_grad",
]
