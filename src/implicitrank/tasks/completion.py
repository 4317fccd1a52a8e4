"""Completion: fit a tensor from some of its entries (Arora et al. 2019; Razin & Cohen 2020).

Loss convention (papers.md, common conventions): the **mean** over observed entries of the squared
error, with no ½: L(W) = (1/M) Σ_{(i,y)} (W[i] − y)². A learning rate is meaningful only together
with this convention.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._protocol import Observations
from ._values import check_values


@dataclass
class Completion(Observations):
    """Observed entries of a tensor of shape ``shape`` for B runs, fit by L(W) = (1/M) Σ_{(i,y)} (W[i] − y)².

    Parameters
    ----------
    shape : the shape of the tensor being completed.
    indices : (B, M, order) or (M, order) integer multi-indices (shared by all runs when 2-D); any
        integer dtype, so huge orders can be stored compactly.
    values : (B, M) observed values.
    target : optional (B, *shape) ground truth, for reconstruction errors.
    test_indices, test_values : optional held-out entries (e.g. MovieLens ratings not trained on).

    References
    ----------
    Arora, Cohen, Hu & Luo, NeurIPS 2019, §5 (matrix completion, mean squared error over the observed
    entries); Razin, Maman & Cohen, ICML 2021, §5 (tensor completion, same loss).
    """

    shape: tuple[int, ...]
    indices: Tensor
    values: Tensor
    target: Tensor | None = None
    test_indices: Tensor | None = None
    test_values: Tensor | None = None

    def __post_init__(self) -> None:
        order = len(self.shape)
        if self.indices.shape[-1] != order:
            raise ValueError(f"indices must end in the tensor order {order}, got shape {tuple(self.indices.shape)}")
        check_values(self.values, self.indices.shape[-2])
        sizes = torch.tensor(self.shape, device=self.indices.device)
        if bool(((self.indices < 0) | (self.indices >= sizes)).any()):
            raise ValueError(f"indices out of range for a tensor of shape {self.shape}")

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
        """Row-major positions of the observed entries, (B, M) int64."""
        strides = torch.tensor([math.prod(self.shape[k + 1:]) for k in range(len(self.shape))],
                               device=self.indices.device)
        flat = (self.indices.long() * strides).sum(-1)
        return flat.expand(self.batch, -1) if flat.dim() == 1 else flat

    def observed_mask(self) -> Tensor:
        """(B, *shape) boolean mask of observed entries (small tensors only)."""
        mask = torch.zeros(self.batch, math.prod(self.shape), dtype=torch.bool, device=self.values.device)
        mask.scatter_(1, self.flat_indices(), True)
        return mask.view(self.batch, *self.shape)

    def rows(self, rows: Tensor) -> Completion:
        """The task restricted to the observations at positions ``rows`` (B, or shared), e.g. a minibatch."""
        return Completion(self.shape, self.indices[..., rows, :], self.values[:, rows])

    def loss(self, model, params: list[Tensor]) -> Tensor:
        """Per-run mean squared error over observed entries, (B,)."""
        return (model.evaluate(params, self.indices) - self.values).pow(2).mean(dim=1)

    def dense_loss_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and ∇L(W) for a dense end-to-end W of shape (B, *shape).

        ∇L(W) is zero off the observed entries and 2(W[i] − y_i)/M on them.
        """
        flat_idx = self._flat
        flat_w = w.reshape(w.shape[0], -1)
        residual = flat_w.gather(1, flat_idx) - self.values
        grad = torch.zeros_like(flat_w).scatter_(1, flat_idx, residual * (2.0 / self.num_observations))
        return residual.pow(2).mean(dim=1), grad.view_as(w)

    @property
    def _flat(self) -> Tensor:
        cached = getattr(self, "_flat_cache", None)
        if cached is None:
            cached = self.flat_indices()
            self._flat_cache = cached
        return cached


def sample_observations(
    numel: int, num_observations: int, seeds: list[int], device: torch.device | str = "cpu"
) -> Tensor:
    """Per run, ``num_observations`` distinct flat positions drawn uniformly without replacement, (B, M)."""
    if not 1 <= num_observations <= numel:
        raise ValueError(f"num_observations must be in [1, {numel}] (the number of entries), got {num_observations}")
    rows = [torch.randperm(numel, generator=torch.Generator().manual_seed(int(s)))[:num_observations]
            for s in seeds]
    return torch.stack(rows).to(device)


def minibatches(task: Completion, batch_size: int, seed: int = 0) -> Callable[[int], Completion]:
    """The sampler of a minibatch fit: step k's part of ``task`` (pass it to ``train(..., sample=)``).

    Epoch e = k // ⌈M / batch_size⌉ is a shuffle of the M observed entries (shared by the runs, seeded by
    ``seed`` and e, so a resumed fit sees the same batches) cut into consecutive batches of ``batch_size``
    (the last one smaller).

    References
    ----------
    Razin, Maman & Cohen, ICML 2021, §5.2: natural data fit as tensor completion by minibatch Adam
    (batch 5000).
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


def complete_from_target(target: Tensor, num_observations: int, data_seeds: list[int]) -> Completion:
    """A completion task observing ``num_observations`` random entries of ``target`` (one tensor of
    shape ``shape``, shared by the runs); run b's observation set is drawn from ``data_seeds[b]``."""
    batch, shape = len(data_seeds), tuple(target.shape)
    flat = sample_observations(math.prod(shape), num_observations, data_seeds, device=target.device)
    multi = torch.stack(torch.unravel_index(flat, shape), dim=-1)
    values = target.reshape(-1)[flat]
    return Completion(shape, multi, values, target=target.expand(batch, *shape))
