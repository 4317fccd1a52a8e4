"""The factorizations of the analogy table behind one protocol (see ``_protocol``).

Examples
--------
>>> from implicitrank.factorizations import CPFactorization, generators
>>> model = CPFactorization((3, 4, 5), components=2)
>>> params = model.init(2, 0.1, generators([0, 1]))  # two runs, one generator each
>>> tuple(model.end_to_end(params).shape), tuple(model.quantities(params).shape)
((2, 3, 4, 5), (2, 2))
"""

from ._protocol import Factorization, autograd_loss_and_grad, generators, loss_and_grad
from .cp import CPFactorization
from .hierarchical import HierarchicalFactorization
from .matrix import MatrixFactorization

__all__ = [
    "CPFactorization", "Factorization", "HierarchicalFactorization", "MatrixFactorization", "autograd_loss_and_grad",
    "generators", "loss_and_grad",
]
