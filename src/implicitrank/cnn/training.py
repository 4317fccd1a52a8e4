"""Training a one-logit CNN on a locality task, with or without the interaction regularizer.

The paper's settings (Razin, Maman & Cohen 2022, §5) are the defaults: SGD lr 0.01, momentum 0.9, batch 64, no
augmentation, at most 150 epochs, stop 20 epochs after the first epoch at 100% train accuracy (measured on the
epoch's training batches), report the last test accuracy (the best one is recorded too). Data order, patch
choices and shuffles come from generators seeded by (seed, epoch), so a run resumed from its checkpoint continues
exactly as it would have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ..progress import progress_bar
from ..results import CHECKPOINT, CONFIG, METRICS, SUMMARY, load_torch, save_torch, write_json, write_metrics
from .regularizer import Box, derangement, interaction_regularizer


class LocalityDataset(Protocol):
    """What training needs from a task: its size, labels, batches on the device, the regularizer's patches I, J."""

    labels: Tensor

    def __len__(self) -> int: ...

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]: ...

    def patches(self, generator: torch.Generator) -> tuple[Box, Box]: ...

    def to(self, device: torch.device | str) -> LocalityDataset: ...


@dataclass(frozen=True)
class TrainingConfig:
    """Optimizer, stopping and regularization settings of one run.

    reg_weight : λ in loss = BCE + λ·R (0: plain training, no double backward).
    epochs_after_fit : stop this many epochs after the first epoch at 100% train accuracy.
    checkpoint_every : save a checkpoint every k epochs (0: never) when a run directory is given.
    device : "auto" (CUDA when present), "cpu" or "cuda".
    """

    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 64
    max_epochs: int = 150
    epochs_after_fit: int = 20
    reg_weight: float = 0.0
    eps: float = 1e-8
    weight_decay: float = 0.0
    seed: int = 0
    eval_every: int = 1
    checkpoint_every: int = 1
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.batch_size < 2:
            raise UsageError(f"batch_size must be >= 2 (patches are shuffled between samples), got {self.batch_size}")
        if self.max_epochs < 1:
            raise UsageError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.epochs_after_fit < 0:
            raise UsageError(f"epochs_after_fit must be >= 0, got {self.epochs_after_fit}")
        if not (self.reg_weight >= 0 and math.isfinite(self.reg_weight)):
            raise UsageError(f"reg_weight (λ) must be >= 0, got {self.reg_weight}")
        if not self.eps > 0:
            raise UsageError(f"eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.eval_every < 1 or self.checkpoint_every < 0:
            raise UsageError(f"eval_every must be >= 1 and checkpoint_every >= 0, got {self.eval_every}, "
                             f"{self.checkpoint_every}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"device must be one of ('auto', 'cpu', 'cuda'), got {self.device!r}")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def training_step(model: nn.Module, x: Tensor, y: Tensor, patches: tuple[Box, Box], permutation: Tensor,
                  reg_weight: float, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Loss = BCE(f(x), y) + λ·R and its parts (loss, bce, R, logits); R is not computed when λ = 0."""
    if reg_weight == 0:
        logits = model(x)
        bce = F.binary_cross_entropy_with_logits(logits, y)
        return bce, bce, torch.zeros((), device=x.device), logits
    x = x.requires_grad_(True)
    logits = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, y)
    reg = interaction_regularizer(model, x, logits, *patches, permutation, eps)
    return bce + reg_weight * reg, bce, reg, logits


@torch.no_grad()
def accuracy(model: nn.Module, data: LocalityDataset, batch_size: int = 512) -> float:
    """Fraction of samples whose logit sign matches the label (model in eval mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device))
        correct += int(((model(x) > 0).float() == y).sum())
    model.train(was_training)
    return correct / len(data)


def measure_interaction(model: nn.Module, data: LocalityDataset, seed: int = 0, batch_size: int = 256,
                        eps: float = 1e-8) -> float:
    """The regularizer R = mean_b |⟨ĝ_b, g̃_b⟩| over ``data`` with the model in eval mode: 1 when f ignores the
    interaction between patches I and J, lower the more the gradient on I depends on patch J."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for start in range(0, len(data) - 1, batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
        if len(index) < 2:
            break
        x, _ = data.batch(index)
        x.requires_grad_(True)
        permutation = derangement(len(index), generator, x.device)
        reg = interaction_regularizer(model, x, model(x), *data.patches(generator), permutation, eps)
        total += float(reg.detach()) * len(index)
        count += len(index)
    model.train(was_training)
    return total / count


def epoch_loop(
    run_epoch: Callable[[int], dict],
    history: list[dict],
    max_epochs: int,
    *,
    stop: Callable[[int], bool] | None = None,
    after_epoch: Callable[[int], None] | None = None,
    progress: bool = True,
    hint: str = "lower the learning rate",
    show: Callable[[dict], dict[str, str]] | None = None,
) -> list[dict]:
    """What minibatch training of a network shares, epoch by epoch: stopping, recording, progress, checkpoints
    and divergence.

    From epoch ``len(history)`` (a resumed run continues there) to ``max_epochs - 1``, unless ``stop(epoch)``
    ends training first: ``run_epoch(epoch)`` trains one epoch and returns its row, whose ``train_loss`` is the
    epoch's mean loss; a NaN/inf ``train_loss`` raises ``FloatingPointError`` naming the epoch (with ``hint``),
    the rows recorded until then kept in ``history``; otherwise the row is appended to ``history``, the
    progress bar moves (``show(row)`` adds to its text) and ``after_epoch(epoch)`` runs (checkpoints, logs).
    """
    bar = progress_bar(max_epochs, initial=len(history), unit="epoch", enabled=progress)
    try:
        for epoch in range(len(history), max_epochs):
            if stop is not None and stop(epoch):
                break
            row = run_epoch(epoch)
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(f"train loss became NaN/inf in epoch {epoch}; {hint}")
            history.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(**(show(row) if show is not None else {"loss": f"{row['train_loss']:.3g}"}))
            if after_epoch is not None:
                after_epoch(epoch)
    finally:
        if bar is not None:
            bar.close()
    return history


def train_classifier(model: nn.Module, train: LocalityDataset, test: LocalityDataset, config: TrainingConfig,
                     run_dir: str | Path | None = None) -> dict:
    """Train ``model`` on ``train`` and return the summary (last/best test accuracy, the final regularizer value R on
    the test set, epochs, fit epoch, time).

    With ``run_dir``: writes config.json, a checkpoint every ``checkpoint_every`` epochs (resumed from if present),
    metrics.jsonl (one row per epoch) and summary.json.
    """
    device = config.torch_device()
    model.to(device).train()
    train, test = train.to(device), test.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    history: list[dict] = []
    fit_epoch: int | None = None
    elapsed = 0.0
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None:
        write_json(run_path / CONFIG, asdict(config))
        if (run_path / CHECKPOINT).is_file():
            saved = load_torch(run_path / CHECKPOINT)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            history, fit_epoch, elapsed = saved["history"], saved["fit_epoch"], saved["elapsed"]
    n = len(train)

    def stopped(epoch: int) -> bool:
        return fit_epoch is not None and epoch >= fit_epoch + 1 + config.epochs_after_fit

    def run_epoch(epoch: int) -> dict:
        nonlocal fit_epoch, elapsed
        started = time.perf_counter()
        generator = _generator(config.seed, epoch)
        order = torch.randperm(n, generator=generator).to(device)
        totals = torch.zeros(4, device=device)  # loss, bce, R (sums over samples), correct
        seen = 0
        for start in range(0, n - 1, config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2:
                break
            x, y = train.batch(index)
            patches = train.patches(generator)
            permutation = derangement(len(index), generator, device)
            loss, bce, reg, logits = training_step(model, x, y, patches, permutation, config.reg_weight, config.eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                totals += torch.stack([loss.detach() * len(index), bce.detach() * len(index),
                                       reg.detach() * len(index), ((logits > 0).float() == y).sum()])
            seen += len(index)
        loss_sum, bce_sum, reg_sum, correct = totals.tolist()
        train_acc = correct / seen
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_bce": bce_sum / seen,
               "train_reg": reg_sum / seen if config.reg_weight else None, "train_acc": train_acc}
        if not math.isfinite(loss_sum):
            return row  # epoch_loop stops here, naming the epoch
        last = epoch + 1 == config.max_epochs or stopped(epoch + 1)
        if train_acc == 1.0 and fit_epoch is None:
            fit_epoch = epoch
            last = last or config.epochs_after_fit == 0
        if (epoch + 1) % config.eval_every == 0 or last:
            row["test_acc"] = accuracy(model, test)
        elapsed += time.perf_counter() - started
        return row

    def after_epoch(epoch: int) -> None:
        if run_path is not None and config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
            save_torch(run_path / CHECKPOINT, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                               "history": history, "fit_epoch": fit_epoch, "elapsed": elapsed})

    epoch_loop(run_epoch, history, config.max_epochs, stop=stopped, after_epoch=after_epoch,
               progress=config.progress, hint="lower lr or reg_weight",
               show=lambda row: {"train": f"{row['train_acc']:.3f}", "test": f"{row.get('test_acc', math.nan):.3f}"})
    if "test_acc" not in history[-1]:
        history[-1]["test_acc"] = accuracy(model, test)
    tested = [row["test_acc"] for row in history if "test_acc" in row]
    summary = {"last_test_acc": tested[-1], "best_test_acc": max(tested), "last_train_acc": history[-1]["train_acc"],
               "test_interaction": measure_interaction(model, test, config.seed, eps=config.eps),
               "epochs": len(history), "fit_epoch": None if fit_epoch is None else fit_epoch + 1,
               "seconds": elapsed, "train_images_per_second": len(history) * n / max(elapsed, 1e-9)}
    if run_path is not None:
        write_metrics(run_path / METRICS, history)
        write_json(run_path / SUMMARY, summary)
    return summary
