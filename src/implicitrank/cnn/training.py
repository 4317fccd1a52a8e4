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

from ..devices import check_device, resolve_device
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
    """Optimizer, stopping and regularization settings of one run, validated at construction.

    The defaults are the paper's: SGD lr 0.01, momentum 0.9, batch 64, at most 150 epochs, stop 20 epochs after
    the first epoch at 100% train accuracy.

    Attributes
    ----------
    lr : float
        SGD learning rate, > 0. Default 0.01.
    momentum : float
        SGD momentum, in [0, 1). Default 0.9.
    batch_size : int
        Samples per batch, >= 2 (patches are exchanged between samples). Default 64.
    max_epochs : int
        The most epochs to train. Default 150.
    epochs_after_fit : int
        Stop this many epochs after the first epoch at 100% train accuracy. Default 20.
    reg_weight : float
        λ in loss = BCE + λ·R, >= 0; 0 is plain training, without double backward. Default 0.
    eps : float
        Added to the gradient norms in R. Default 1e-8.
    weight_decay : float
        SGD weight decay, >= 0. Default 0.
    seed : int
        Seeds the data order, patch choices and shuffles of every epoch (from (seed, epoch)) and the final
        measurement of R. Default 0.
    eval_every : int
        Measure the test accuracy every k epochs (and always after the last one). Default 1.
    checkpoint_every : int
        Save a checkpoint every k epochs when a run directory is given; 0 never. Default 1.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Default ``"auto"``.
    progress : bool
        Show a progress bar. Default True.

    Raises
    ------
    UsageError
        When a field is out of range (see above).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (training: SGD lr 0.01, momentum 0.9,
    batch 64, no augmentation, at most 150 epochs, stop 20 epochs after 100% train accuracy).
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
        check_device(self.device)

    def torch_device(self) -> torch.device:
        """The device to train on.

        Returns
        -------
        torch.device
            ``cuda`` when ``device`` is ``"auto"`` and CUDA is available, ``cpu`` for ``"auto"`` without it,
            otherwise ``device`` itself.

        Raises
        ------
        UsageError
            When ``device`` names CUDA and none (or not that index) is present.
        """
        return resolve_device(self.device)


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def training_step(model: nn.Module, x: Tensor, y: Tensor, patches: tuple[Box, Box], permutation: Tensor,
                  reg_weight: float, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loss of one batch, loss = BCE(f(x), y) + λ·R, and its parts.

    BCE is the mean binary cross-entropy of the logits. When λ > 0, ``x`` is marked ``requires_grad`` (in place)
    and R comes from :func:`interaction_regularizer`, with a graph for double backward; when λ = 0 R is not
    computed.

    Parameters
    ----------
    model : torch.nn.Module
        The network f: its logits enter the BCE and, when λ > 0, its input gradients enter R.
    x : Tensor
        The batch, shape (batch, C, H, W).
    y : Tensor
        Shape (batch,), float labels 0 or 1.
    patches : tuple of Box
        Patches I and J of the regularizer.
    permutation : Tensor
        Shape (batch,), long: the sample each x̃_b takes patch J from.
    reg_weight : float
        λ.
    eps : float
        Added to the gradient norms in R.

    Returns
    -------
    loss : Tensor
        Scalar, BCE + λ·R, to call ``backward`` on.
    bce : Tensor
        Scalar, the binary cross-entropy.
    reg : Tensor
        Scalar, R (0 when λ = 0).
    logits : Tensor
        Shape (batch,), f(x).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (loss = BCE + λ·R).
    """
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
    """The fraction of samples whose predicted class (logit > 0 means 1) matches the label.

    The model runs in eval mode without gradients; its previous mode is restored.

    Parameters
    ----------
    model : torch.nn.Module
        The network, one logit per sample.
    data : LocalityDataset
        The samples (a task such as :class:`IsSameClass` or :class:`Pathfinder`), on the model's device.
    batch_size : int, optional
        Samples per forward pass. Default 512.

    Returns
    -------
    float
        The accuracy, in [0, 1]; NaN when any output is NaN or infinite (the model predicted nothing there: a NaN
        logit is not the negative class).
    """
    was_training = model.training
    model.eval()
    correct, finite = 0, True
    for start in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device))
        logits = model(x)
        finite = finite and bool(torch.isfinite(logits).all())
        correct += int(((logits > 0).float() == y).sum())
    model.train(was_training)
    return correct / len(data) if finite else math.nan


def measure_interaction(model: nn.Module, data: LocalityDataset, seed: int = 0, batch_size: int = 256,
                        eps: float = 1e-8) -> float:
    """The regularizer R = mean_b |⟨ĝ_b, g̃_b⟩| over ``data``, with the model in eval mode.

    R is 1 when f ignores the interaction between patches I and J and lower the more the gradient on I depends
    on patch J. It is computed on consecutive batches (a last batch of one sample is skipped), each with its own
    patches and :func:`derangement` drawn from a generator seeded by ``seed``, and averaged weighted by batch
    size. The model's previous mode is restored.

    Parameters
    ----------
    model : torch.nn.Module
        The network, one logit per sample.
    data : LocalityDataset
        The samples, on the model's device (at least 2).
    seed : int, optional
        Seeds the patches and permutations. Default 0.
    batch_size : int, optional
        Samples per batch. Default 256.
    eps : float, optional
        Added to the gradient norms. Default 1e-8.

    Returns
    -------
    float
        R averaged over the samples, in [0, 1] (up to ``eps``).

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (the regularizer R).
    """
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

    Runs epochs from ``len(history)`` (a resumed run continues there) to ``max_epochs - 1``, unless
    ``stop(epoch)`` ends training first. Each epoch ``run_epoch(epoch)`` trains and returns its row; the row is
    appended to ``history``, the progress bar moves and ``after_epoch(epoch)`` runs.

    Parameters
    ----------
    run_epoch : callable
        ``run_epoch(epoch) -> dict``: trains one epoch (0-based) and returns its row, whose ``train_loss`` is the
        epoch's mean loss.
    history : list of dict
        The rows recorded so far; appended to in place.
    max_epochs : int
        The epoch count at which training ends.
    stop : callable, optional
        ``stop(epoch) -> bool``, asked before each epoch; True ends training. ``None`` (default): never.
    after_epoch : callable, optional
        ``after_epoch(epoch)``, run after each recorded epoch (checkpoints, logs). Default ``None``.
    progress : bool, optional
        Show a progress bar. Default True.
    hint : str, optional
        What the divergence error advises. Default ``"lower the learning rate"``.
    show : callable, optional
        ``show(row) -> dict of str``: the progress bar's text for a row. ``None`` (default) shows the loss.

    Returns
    -------
    list of dict
        ``history``, with the new rows.

    Raises
    ------
    FloatingPointError
        When an epoch's ``train_loss`` is NaN or infinite; the message names the epoch (counted from 1, as the
        rows count them) and ``hint``, and the rows recorded until then stay in ``history``.
    """
    bar = progress_bar(max_epochs, initial=len(history), unit="epoch", enabled=progress)
    try:
        for epoch in range(len(history), max_epochs):
            if stop is not None and stop(epoch):
                break
            row = run_epoch(epoch)
            if not math.isfinite(row["train_loss"]):  # epochs counted from 1, as the recorded rows count them
                raise FloatingPointError(f"train loss became NaN/inf in epoch {epoch + 1}; {hint}")
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


def _tested(model: nn.Module, test: LocalityDataset, epoch: int) -> float:
    """The test accuracy after ``epoch`` (0-based); FloatingPointError when the model's outputs are NaN/inf there
    (its weights may be finite yet overflow the forward pass: the run diverged though its train loss was finite)."""
    value = accuracy(model, test)
    if math.isnan(value):
        raise FloatingPointError(f"the test outputs became NaN/inf after epoch {epoch + 1}; lower lr or reg_weight")
    return value


def train_classifier(model: nn.Module, train: LocalityDataset, test: LocalityDataset, config: TrainingConfig,
                     run_dir: str | Path | None = None) -> dict:
    """Train a one-logit network on a locality task with SGD, optionally with the interaction regularizer.

    Each epoch shuffles ``train`` (the order, patches and permutations from a generator seeded by
    (``config.seed``, epoch)), minimizes BCE + λ·R per batch (:func:`training_step`), and records the epoch's
    mean loss, BCE, R and train accuracy (on the epoch's batches); the test accuracy is measured every
    ``eval_every`` epochs and after the last one. Training stops after ``max_epochs`` or ``epochs_after_fit``
    epochs after the first epoch at 100% train accuracy. The model is moved to the config's device and trained in
    place.

    Parameters
    ----------
    model : torch.nn.Module
        The one-logit network f, moved to the config's device and trained in place.
    train : LocalityDataset
        The training task (:class:`IsSameClass` or :class:`Pathfinder`).
    test : LocalityDataset
        The test task.
    config : TrainingConfig
        Optimizer, stopping and regularization settings.
    run_dir : str or Path or None, optional
        Where to write ``config.json``, a checkpoint every ``checkpoint_every`` epochs (a run resumes from it when
        present), ``metrics.jsonl`` (one row per epoch) and ``summary.json``. ``None`` (default): nothing is
        written.

    Returns
    -------
    dict
        The summary: ``status`` (``trained``, or ``diverged`` when the training loss became NaN or infinite: then
        its ``message`` names the epoch and the accuracies are NaN, so that a run of a sweep does not end it),
        ``last_test_acc`` (the reported number), ``best_test_acc``, ``last_train_acc``, ``test_interaction`` (R on
        the test set, :func:`measure_interaction`), ``epochs``, ``fit_epoch`` (1-based, ``None`` if 100% train
        accuracy was never reached), ``seconds`` and ``train_images_per_second``.

    References
    ----------
    N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
    Convolutional Neural Networks", ICML 2022, §5 (training set-up; the last test accuracy is reported).
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
            saved = load_torch(run_path / CHECKPOINT, keys=("model", "optimizer", "history", "fit_epoch", "elapsed"))
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
            row["test_acc"] = _tested(model, test, epoch)
        elapsed += time.perf_counter() - started
        return row

    def after_epoch(epoch: int) -> None:
        if run_path is not None and config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
            save_torch(run_path / CHECKPOINT, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                               "history": history, "fit_epoch": fit_epoch, "elapsed": elapsed})

    try:
        epoch_loop(run_epoch, history, config.max_epochs, stop=stopped, after_epoch=after_epoch,
                   progress=config.progress, hint="lower lr or reg_weight",
                   show=lambda row: {"train": f"{row['train_acc']:.3f}",
                                     "test": f"{row.get('test_acc', math.nan):.3f}"})
        if "test_acc" not in history[-1]:
            history[-1]["test_acc"] = _tested(model, test, len(history) - 1)
    except FloatingPointError as err:  # finished without numbers; the epochs before it are kept
        summary = {"status": "diverged", "message": f"{err}; the run stopped there and has no accuracies; the "
                                                    f"epochs recorded until then are in {METRICS}",
                   "last_test_acc": math.nan, "best_test_acc": math.nan, "last_train_acc": math.nan,
                   "test_interaction": math.nan, "epochs": len(history), "fit_epoch": None, "seconds": elapsed,
                   "train_images_per_second": len(history) * n / max(elapsed, 1e-9)}
        if run_path is not None:
            write_metrics(run_path / METRICS, history)
            write_json(run_path / SUMMARY, summary)
        return summary
    tested = [row["test_acc"] for row in history if "test_acc" in row]
    summary = {"status": "trained", "message": "",
               "last_test_acc": tested[-1], "best_test_acc": max(tested), "last_train_acc": history[-1]["train_acc"],
               "test_interaction": measure_interaction(model, test, config.seed, eps=config.eps),
               "epochs": len(history), "fit_epoch": None if fit_epoch is None else fit_epoch + 1,
               "seconds": elapsed, "train_images_per_second": len(history) * n / max(elapsed, 1e-9)}
    if run_path is not None:
        write_metrics(run_path / METRICS, history)
        write_json(run_path / SUMMARY, summary)
    return summary
