"""Theory checks: the measured rates of a factorization's quantities against the law it states.

Every factorization states one law through ``predicted_rates(params, gradient)`` (see
``factorizations._protocol``): under gradient flow from a balanced init its quantities obey
    σ̇_r = N · γ_r · σ_r^(2 − 2/N),   γ_r = <−∇L(W), Δ_r>,
singular values of a depth-N matrix factorization (Arora et al. 2019, Thm. 3), component norms of an order-N
CP factorization (Razin et al. 2021, Thm. 1), local component norms with N = K_ν = |children(ν)| + 1 in a
hierarchical factorization (Razin et al. 2022, Thm. 1). ``check_rates`` compares a recorded ``Trajectory``
(``implicitrank.theory.record_trajectory`` makes one by plain gradient descent) with that law; passing
another ``order`` gives the law of another N, which a check must reject (the negative control).

References
----------
S. Arora, N. Cohen, W. Hu, Y. Luo, NeurIPS 2019, Theorem 3; N. Razin, A. Maman, N. Cohen, ICML 2021,
Theorem 1; N. Razin, A. Maman, N. Cohen, ICML 2022, Theorem 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .spectra import norm_ratio


@dataclass(frozen=True)
class Trajectory:
    """Snapshots of a run at times t = lr·step.

    Attributes
    ----------
    times : Tensor
        (T,) times, T >= 2.
    params : list of Tensor
        One (T, B, …) tensor per parameter.
    end_to_end : Tensor
        W(t), (T, B, *shape).
    gradients : Tensor
        ∇L(W(t)), (T, B, *shape).

    Raises
    ------
    ValueError
        When there are fewer than two time points.
    """

    times: Tensor
    params: list[Tensor]
    end_to_end: Tensor
    gradients: Tensor

    def __post_init__(self) -> None:
        if self.times.numel() < 2:
            raise ValueError(f"a trajectory needs at least two time points, got {self.times.numel()}")

    def at(self, i: int) -> list[Tensor]:
        """The parameters at time index ``i``.

        Parameters
        ----------
        i : int
            Index into ``times``.

        Returns
        -------
        list of Tensor
            One (B, …) tensor per parameter.
        """
        return [p[i] for p in self.params]


@dataclass(frozen=True)
class RateCheck:
    """Measured and predicted rates of K quantities over T − 1 intervals.

    Measured: (σ(t_{i+1}) − σ(t_i))/(t_{i+1} − t_i). Predicted: the law at both ends, averaged (trapezoid), so the
    comparison is second-order accurate in the time step.

    Attributes
    ----------
    measured : Tensor
        (T − 1, B, K), float64.
    predicted : Tensor
        (T − 1, B, K), float64.
    """

    measured: Tensor
    predicted: Tensor

    @property
    def relative_error(self) -> Tensor:
        """||measured − predicted|| / ||predicted|| over the intervals, per run and quantity, (B, K)."""
        return norm_ratio(self.measured - self.predicted, self.predicted, 0)

    @property
    def error(self) -> Tensor:
        """||measured − predicted|| / ||predicted|| over all intervals and quantities, per run, (B,)."""
        return norm_ratio(self.measured - self.predicted, self.predicted, (0, 2))


def check_rates(
    model, trajectory: Trajectory, *, order: int | None = None, top: int | None = None, **where
) -> RateCheck:
    """Compare the measured rates of ``model.quantities`` along ``trajectory`` with ``model.predicted_rates``.

    The law is σ̇_r = N·γ_r·σ_r^(2−2/N), γ_r = <−∇L(W), Δ_r> (see the module docstring). It holds for gradient
    flow from a balanced init: record with a small learning rate.

    Parameters
    ----------
    model : Factorization
        The factorization the trajectory was recorded with.
    trajectory : Trajectory
        The recorded run (``implicitrank.theory.record_trajectory`` makes one).
    order : int, optional
        Overrides the law's N (a wrong N is the negative control); None keeps the model's.
    top : int, optional
        Keep the ``top`` >= 1 quantities largest at the end of the trajectory (the others barely move and their
        rates are noise); None keeps all.
    **where
        Passed to both ``quantities`` and ``predicted_rates`` (e.g. ``node=`` for a hierarchical
        factorization's local components at another node).

    Returns
    -------
    RateCheck
        Measured and trapezoid-averaged predicted rates, (T − 1, B, K) each; ``relative_error`` and ``error``
        summarize them.

    Raises
    ------
    ValueError
        If ``top`` is given and below 1.

    References
    ----------
    Arora et al., "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019, Theorem 3 (the
    matrix law that ``MatrixFactorization.predicted_rates`` states).

    Razin et al., "Implicit Regularization in Tensor Factorization", ICML 2021, Theorem 1 (CP).

    Razin et al., "Implicit Regularization in Hierarchical Tensor Factorization and Deep Convolutional Neural
    Networks", ICML 2022, Theorem 1 (hierarchical, at any internal node).
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    steps = range(trajectory.times.numel())
    sigma = torch.stack([model.quantities(trajectory.at(i), sort=False, **where) for i in steps]).double()
    rate = torch.stack([model.predicted_rates(trajectory.at(i), trajectory.gradients[i], order=order, **where)
                        for i in steps]).double()
    if top is not None:
        keep = sigma[-1].argsort(dim=-1, descending=True)[:, :top].expand(len(steps), -1, -1)
        sigma, rate = sigma.gather(2, keep), rate.gather(2, keep)
    dt = (trajectory.times[1:] - trajectory.times[:-1]).double().view(-1, 1, 1)
    return RateCheck((sigma[1:] - sigma[:-1]) / dt, 0.5 * (rate[1:] + rate[:-1]))
