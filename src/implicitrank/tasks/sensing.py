"""Matrix sensing: y_i = <A_i, W*> with Gaussian measurement matrices (Arora et al. 2019 §5).

Loss: the mean over measurements of (<A_i, W> − y_i)², no ½. The measurements are stored as one
(M, m·n) matrix A (shared by the runs), so the prediction is the matrix–vector product A vec(W) and
the gradient Aᵀ(2r/M): no B×M×m×n product is ever formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..factorizations import is_positive_integer
from ._protocol import Observations
from ._values import check_values


@dataclass
class Sensing(Observations):
    """y_i = <A_i, W*> for B runs, fit by L(W) = (1/M) Σ_i (<A_i, W> − y_i)².

    Attributes
    ----------
    shape : tuple of int
        The shape of W.
    measurements : Tensor
        (M, numel), rows vec(A_i) (shared by the runs).
    values : Tensor
        (B, M) the measurements y_i.
    target : Tensor or None
        The optional (B, *shape) ground truth W*.

    Raises
    ------
    ValueError
        When ``measurements`` is not (M, numel), ``values`` is not a floating-point (B, M), or their dtypes differ.

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (matrix sensing with Gaussian measurement matrices).
    """

    shape: tuple[int, ...]
    measurements: Tensor  # (M, numel), rows are vec(A_i)
    values: Tensor  # (B, M)
    target: Tensor | None = None

    def __post_init__(self) -> None:
        numel = math.prod(self.shape)
        if self.measurements.dim() != 2 or self.measurements.shape[1] != numel:
            raise ValueError(f"measurements must be (M, {numel}), got {tuple(self.measurements.shape)}")
        check_values(self.values, self.measurements.shape[0])
        if self.measurements.dtype != self.values.dtype:
            raise ValueError(f"measurements and values must share a dtype, got {self.measurements.dtype} and "
                             f"{self.values.dtype}")

    def loss(self, model, params: list[Tensor]) -> Tensor:
        """Per-run mean over measurements of (<A_i, W> − y_i)², no ½.

        Parameters
        ----------
        model : Factorization
            The model; its dense end-to-end W is formed and measured.
        params : list of Tensor
            Parameters of the B runs, each run's W measured by the shared A.

        Returns
        -------
        Tensor
            The mean squared measurement residual per run, (B,).
        """
        w = model.end_to_end(params).reshape(self.batch, -1)
        return (w @ self.measurements.T - self.values).pow(2).mean(dim=1)

    def dense_loss_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and ∇L(W) = Aᵀ(2r/M), r the residuals, for a dense end-to-end W.

        Parameters
        ----------
        w : Tensor
            The dense W of each run, (B, *shape); flattened and multiplied by Aᵀ.

        Returns
        -------
        tuple of (Tensor, Tensor)
            The loss (B,) and Aᵀ(2r/M) reshaped like ``w``.
        """
        residual = w.reshape(w.shape[0], -1) @ self.measurements.T - self.values
        grad = (residual * (2.0 / self.num_observations)) @ self.measurements
        return residual.pow(2).mean(dim=1), grad.view_as(w)


def gaussian_sensing(target: Tensor, num_observations: int, seed: int = 0, batch: int = 1) -> Sensing:
    """Sensing of ``target`` by measurement matrices with i.i.d. N(0, 1/n²) entries, n the number of columns.

    The matrices are drawn in float64 from ``seed`` and stored in the target's dtype; y_i = <A_i, W*>.

    Parameters
    ----------
    target : Tensor
        The ground truth W*, one matrix (no run dimension).
    num_observations : int
        M, the number of measurements, >= 1.
    seed : int, optional
        Seeds the float64 draw of all M measurement matrices. Default 0.
    batch : int, optional
        Number of runs B; all share A and y (``target`` and ``values`` are expanded). Default 1.

    Returns
    -------
    Sensing
        The task, with ``target`` expanded to (B, *shape).

    Raises
    ------
    ValueError
        For ``num_observations`` or ``batch`` not an integer >= 1, a 0-d ``target``, or one that is not a finite
        floating-point tensor (integer measurements would be truncated).

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (sensing: A_i i.i.d. N(0, 1/n²), y_i = <A_i, W*>).
    """
    for name, value in (("num_observations", num_observations), ("batch", batch)):
        if not is_positive_integer(value):  # 2.5 failed inside torch
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if target.dim() < 1:
        raise ValueError("target must have at least one dimension, got a 0-d tensor")
    if not target.is_floating_point() or not bool(torch.isfinite(target).all()):
        raise ValueError(f"target must be a finite floating-point tensor (the measurements take its dtype), got "
                         f"{target.dtype}")
    shape = tuple(target.shape)
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(num_observations, math.prod(shape), generator=g, dtype=torch.float64) / shape[-1]
    a = a.to(target.device)
    values = (a @ target.reshape(-1).to(a.dtype)).to(target.dtype).expand(batch, -1)
    return Sensing(shape, a.to(target.dtype), values, target=target.expand(batch, *shape))
