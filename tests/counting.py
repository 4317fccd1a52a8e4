"""A factorization for the tests that check which runs a loop still computes."""

from __future__ import annotations

from implicitrank.factorizations import MatrixFactorization

__all__ = ["CountingMatrix"]


class CountingMatrix(MatrixFactorization):
    """A matrix factorization that notes the batch size of every gradient it computes (``batch_sizes``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def loss_and_grad(self, params, dense_loss_and_grad):
        self.batch_sizes.append(params[0].shape[0])
        return super().loss_and_grad(params, dense_loss_and_grad)
