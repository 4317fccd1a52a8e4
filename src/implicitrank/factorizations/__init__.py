"""The factorizations of the analogy table behind one protocol (see ``_protocol``): the same ``init_scale`` (the
root-mean-square Frobenius norm of W(0)), the same init vocabulary ``INITS``, and the same law
``predicted_rates`` of their ``quantities``.

Examples
--------
>>> from implicitrank.factorizations import CPFactorization, generators
>>> model = CPFactorization((3, 4, 5), components=2)
>>> params = model.init(2, 0.1, generators([0, 1]))  # two runs, one generator each; E||W(0)||_F² = 0.1²
>>> tuple(model.end_to_end(params).shape), tuple(model.quantities(params).shape)
((2, 3, 4, 5), (2, 2))
>>> round(model.scale_for_entry_std(0.1), 6)  # factor entries of std 0.1: sqrt(R·3·4·5)·0.1³
0.010954
>>> model.inits
('gaussian', 'balanced')
"""

from ._protocol import (
    INITS,
    Factorization,
    autograd_loss_and_grad,
    check_indices,
    generators,
    is_positive_integer,
    loss_and_grad,
    mode_sizes,
)
from .cp import CPFactorization
from .hierarchical import HierarchicalFactorization
from .matrix import MatrixFactorization

__all__ = [
    "CPFactorization", "Factorization", "HierarchicalFactorization", "INITS", "MatrixFactorization",
    "autograd_loss_and_grad", "check_indices", "generators", "is_positive_integer", "loss_and_grad", "mode_sizes",
]
