"""Completion: fit a tensor from some of its entries (Arora et al. 2019; Razin & Cohen 2020).

Loss convention (papers.md, common conventions): the **mean** over observed entries of the squared
error, with no ½: L(W) = (1/M) Σ_{(i,y)} (W[i] − y)². A learning rate is meaningful only together
with this convention.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..factorizations import check_indices, is_positive_integer
from ._protocol import Observations
from ._values import check_values


@dataclass
class Completion(Observations):
    """Observed entries of a tensor of shape ``shape`` for B runs, fit by L(W) = (1/M) Σ_{(i,y)} (W[i] − y)².

    An entry observed more than once counts once per observation in the loss (natural data repeats images).

    Attributes
    ----------
    shape : tuple of int
        The shape of the tensor being completed.
    indices : Tensor
        (B, M, order) or (M, order) integer multi-indices (shared by all runs when 2-D); any integer dtype, so
        huge orders can be stored compactly.
    values : Tensor
        (B, M) observed values.
    target : Tensor or None
        Optional (B, *shape) ground truth, for reconstruction errors.
    test_indices, test_values : Tensor or None
        Optional held-out entries (e.g. MovieLens ratings not trained on).

    Raises
    ------
    ValueError
        When ``indices`` is not an integer (M, order) or (B, M, order) tensor with B the runs of ``values``,
        ``values`` is not (B, M) with B >= 1, an index is out of range (``test_indices`` likewise against
        ``test_values``), or ``target`` is not (B, *shape).

    References
    ----------
    S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019,
    Figure 2 (matrix completion, mean squared error over the observed entries).

    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, §5 (tensor
    completion, same loss).
    """

    shape: tuple[int, ...]
    indices: Tensor
    values: Tensor
    target: Tensor | None = None
    test_indices: Tensor | None = None
    test_values: Tensor | None = None

    def __post_init__(self) -> None:
        _check_indices("indices", self.indices, self.shape, self.values)
        check_values(self.values, self.indices.shape[-2])
        if self.test_indices is not None:  # its range was not checked, though the docstring said so
            _check_indices("test_indices", self.test_indices, self.shape, self.test_values)
        if self.values.shape[0] < 1:
            raise ValueError("values must hold at least one run (B >= 1), got B = 0")
        if self.target is not None and tuple(self.target.shape) != (self.values.shape[0], *self.shape):
            raise ValueError(f"target must be (B, *shape) = {(self.values.shape[0], *self.shape)}, got "
                             f"{tuple(self.target.shape)}")

    def run_fields(self) -> tuple[str, ...]:
        """``values``, ``target`` and ``test_values`` (when given), and the indices when each run has its own (3-D).

        Returns
        -------
        tuple of str
            Field names whose tensors have the runs along their first dimension.
        """
        per_run = {"indices": self.indices.dim() == 3, "test_values": self.test_values is not None,
                   "test_indices": self.test_indices is not None and self.test_indices.dim() == 3}
        return super().run_fields() + tuple(name for name, own in per_run.items() if own)

    def flat_indices(self) -> Tensor:
        """Row-major positions of the observed entries.

        Returns
        -------
        Tensor
            (B, M) int64.
        """
        strides = torch.tensor([math.prod(self.shape[k + 1:]) for k in range(len(self.shape))],
                               device=self.indices.device)
        flat = (self.indices.long() * strides).sum(-1)
        return flat.expand(self.batch, -1) if flat.dim() == 1 else flat

    def observed_mask(self) -> Tensor:
        """Boolean mask of the observed entries (small tensors only).

        Returns
        -------
        Tensor
            (B, *shape), bool.
        """
        mask = torch.zeros(self.batch, math.prod(self.shape), dtype=torch.bool, device=self.values.device)
        mask.scatter_(1, self.flat_indices(), True)
        return mask.view(self.batch, *self.shape)

    def rows(self, rows: Tensor) -> Completion:
        """The task restricted to the observations at positions ``rows``, e.g. a minibatch.

        Parameters
        ----------
        rows : Tensor
            Positions among the M observations (a 1-D index shared by the runs).

        Returns
        -------
        Completion
            The same shape with those indices and values (no target, no test entries).
        """
        return Completion(self.shape, self.indices[..., rows, :], self.values[:, rows])

    def loss(self, model, params: list[Tensor]) -> Tensor:
        """Per-run mean squared error over the observed entries, no ½.

        Parameters
        ----------
        model : Factorization
            The model, read through ``evaluate`` at ``indices`` only.
        params : list of Tensor
            The model's parameters for the B runs, one row of ``values`` each.

        Returns
        -------
        Tensor
            (1/M) Σ (W[i] − y)² per run, (B,).

        Raises
        ------
        ValueError
            When the model's shape is not the task's: its flat offsets would read other entries.
        """
        if tuple(getattr(model, "shape", self.shape)) != tuple(self.shape):
            raise ValueError(f"task shape {tuple(self.shape)} does not match model shape {tuple(model.shape)}")
        # checked here once: in range for this shape when the task was made, and the model's shape is the task's
        return (model.evaluate(params, self.indices, check=False) - self.values).pow(2).mean(dim=1)

    def dense_loss_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and ∇L(W) for a dense end-to-end W.

        ∇L(W) is zero off the observed entries and Σ 2(W[i] − y_i)/M on them (summed over an entry's observations).

        Parameters
        ----------
        w : Tensor
            The dense end-to-end tensor of each run, read at the observed entries.

        Returns
        -------
        tuple of (Tensor, Tensor)
            The loss (B,) and ∇L(W) (zero off the observed entries), shaped like ``w``.
        """
        flat_idx = self._flat
        flat_w = w.reshape(w.shape[0], -1)
        residual = flat_w.gather(1, flat_idx) - self.values
        # added, not written: an entry observed twice gets both terms of the loss's gradient
        grad = torch.zeros_like(flat_w).scatter_add_(1, flat_idx, residual * (2.0 / self.num_observations))
        return residual.pow(2).mean(dim=1), grad.view_as(w)

    @property
    def _flat(self) -> Tensor:
        cached = getattr(self, "_flat_cache", None)
        if cached is None:
            cached = self.flat_indices()
            self._flat_cache = cached
        return cached


def _check_indices(name: str, indices: Tensor, shape: tuple[int, ...], values: Tensor | None) -> None:
    """``indices`` must be integer, in range for ``shape``, and (M, order) shared by the runs or (B, M, order) with B
    the runs of ``values`` (when given)."""
    check_indices(indices, shape, name)
    if indices.dim() == 3 and values is not None and values.dim() >= 1 and indices.shape[0] != values.shape[0]:
        raise ValueError(f"{name} must be (M, {len(shape)}) shared by the runs or (B, M, {len(shape)}) with B = "
                         f"{values.shape[0]} (the runs of the values), got shape {tuple(indices.shape)}")


def multi_indices(flat: Tensor, shape: tuple[int, ...]) -> Tensor:
    """The row-major multi-indices of flat positions: i_k = ⌊f / Π_{l>k} n_l⌋ mod n_k, (…, len(shape)).

    What ``torch.unravel_index`` computes, without the second of start-up that its first call costs (it imports
    torch's symbolic-shape machinery and sympy: issue 18).

    Parameters
    ----------
    flat : Tensor
        Integer flat positions f in [0, Π n_k), any shape.
    shape : tuple of int
        The mode sizes (n_1, …, n_N).

    Returns
    -------
    Tensor
        ``flat.shape + (len(shape),)``, the index of each position along each mode.
    """
    modes, rest = [], flat
    for size in reversed(shape):
        modes.append(rest % size)
        rest = rest.div(size, rounding_mode="floor")
    return torch.stack(modes[::-1], dim=-1)


def sample_observations(
    numel: int, num_observations: int, seeds: Sequence[int], device: torch.device | str = "cpu"
) -> Tensor:
    """Per run, ``num_observations`` distinct flat positions drawn uniformly without replacement.

    Parameters
    ----------
    numel : int
        The number of entries of the tensor.
    num_observations : int
        M, in [1, numel].
    seeds : sequence of int
        One seed per run (run b's positions are a prefix of a random permutation seeded by ``seeds[b]``): a list,
        tuple, range or one-dimensional array or tensor of integers.
    device : torch.device or str, optional
        Device of the result. Default ``"cpu"``.

    Returns
    -------
    Tensor
        (B, M) int64 flat positions.

    Raises
    ------
    ValueError
        When ``num_observations`` is not an integer in [1, numel], or ``seeds`` is not a non-empty sequence of
        integers.
    """
    if not (is_positive_integer(num_observations) and num_observations <= numel):  # 4.5 failed inside randperm
        raise ValueError(f"num_observations must be an integer in [1, {numel}] (the number of entries), got "
                         f"{num_observations!r}")
    seeds = _seed_list(seeds, "seeds")
    rows = [torch.randperm(numel, generator=torch.Generator().manual_seed(int(s)))[:num_observations]
            for s in seeds]
    return torch.stack(rows).to(device)


def _seed_list(seeds: Any, name: str) -> list[int]:
    """``seeds``, one per run, as a list of ints.

    Parameters
    ----------
    seeds : Any
        A list, tuple, range or one-dimensional array or tensor of integers, at least one.
    name : str
        What the messages call it (``data_seeds``).

    Returns
    -------
    list of int
        The seeds, in order.

    Raises
    ------
    ValueError
        For a single number (a seed, or a count of runs? ``3`` was a TypeError, ``[3]`` is one run of seed 3), a
        seed that is not an integer (0.5 was read as 0) or no seed at all.
    """
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or getattr(seeds, "ndim", 1) != 1:
        raise ValueError(f"{name} must be a sequence of integer seeds, one per run (e.g. [3] for one run of seed 3), "
                         f"got {seeds!r}")
    try:
        values = [operator.index(s) for s in seeds]
    except TypeError:
        raise ValueError(f"{name} must be integer seeds, one per run, got {list(seeds)!r}") from None
    if not values:
        raise ValueError(f"{name} is empty (one seed per run): need at least one run")
    return values


def minibatches(task: Completion, batch_size: int, seed: int = 0) -> Callable[[int], Completion]:
    """The sampler of a minibatch fit: step k's part of ``task`` (pass it to ``train(..., sample=)``).

    Epoch e = k // ⌈M / batch_size⌉ is a shuffle of the M observed entries (shared by the runs, seeded by
    ``seed`` and e, so a resumed fit sees the same batches) cut into consecutive batches of ``batch_size``
    (the last one smaller).

    Parameters
    ----------
    task : Completion
        The full task.
    batch_size : int
        Observations per minibatch, >= 1.
    seed : int, optional
        Seed of the shuffles. Default 0.

    Returns
    -------
    callable
        ``sample(step) -> Completion``, the minibatch of that step.

    Raises
    ------
    ValueError
        When ``batch_size`` is below 1 (an empty minibatch).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021, §5.2 (natural data
    fit as tensor completion by minibatch Adam, batch 5000).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    per_epoch = math.ceil(task.num_observations / batch_size)
    shuffled: dict[int, Tensor] = {}

    def sample(step: int) -> Completion:
        epoch, part = divmod(step, per_epoch)
        if epoch not in shuffled:
            shuffled.clear()
            generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
            shuffled[epoch] = torch.randperm(task.num_observations, generator=generator).to(task.device)
        return task.rows(shuffled[epoch][part * batch_size:(part + 1) * batch_size])

    return sample


def complete_from_target(target: Tensor, num_observations: int, data_seeds: Sequence[int]) -> Completion:
    """A completion task observing ``num_observations`` random entries of ``target``, shared by the runs.

    Parameters
    ----------
    target : Tensor
        The ground truth, one tensor of shape ``shape`` (no run dimension).
    num_observations : int
        M, the number of distinct entries observed per run.
    data_seeds : sequence of int
        One seed per run; run b's observation set is drawn from ``data_seeds[b]`` (equal seeds: equal sets). A
        list, tuple, range or one-dimensional array or tensor of integers.

    Returns
    -------
    Completion
        B = len(data_seeds) runs, with ``target`` expanded to (B, *shape).

    Raises
    ------
    ValueError
        When ``num_observations`` is not in [1, numel], or ``data_seeds`` is not a non-empty sequence of integers.
    """
    target = target.detach()  # the task is data: a target that requires grad would grow a graph at every step
    data_seeds = _seed_list(data_seeds, "data_seeds")
    batch, shape = len(data_seeds), tuple(target.shape)
    flat = sample_observations(math.prod(shape), num_observations, data_seeds, device=target.device)
    multi = multi_indices(flat, shape)
    values = target.reshape(-1)[flat]
    return Completion(shape, multi, values, target=target.expand(batch, *shape))
