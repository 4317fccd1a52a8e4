"""The factorized-layers experiment on scikit-learn's digits: plain vs over-parameterized networks.

The same MLP and CNN (same function class) are trained with every layer a depth-N factorization
(:class:`DeepLinear`, :class:`DeepConv2d`; N = 1 is the plain network, same init scheme), then compared
on test accuracy, effective rank of each layer, and test accuracy after truncating every layer to a kept
rank (``compress``). A linear autoencoder with a ``DeepLinear`` bottleneck shows the latent covariance's
effective rank falling with depth (implicit rank-minimizing autoencoders: Jing, Zbontar & LeCun 2020).
Depth lowers rank through σ̇ ∝ σ^{2−2/N} (Arora et al., NeurIPS 2019); collapsing the trained layers
removes the overhead (ExpandNets, Guo et al., NeurIPS 2020).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..cnn.images import digits_source
from ..cnn.training import epoch_loop
from ..errors import UsageError
from ..measure import effective_rank
from .collapse import collapse, compress
from .deep_conv import DeepConv2d
from .deep_linear import DeepLinear
from .spectra import layer_spectra

ARCHITECTURES = ("mlp", "cnn")


@dataclass(frozen=True)
class DigitsConfig:
    """What the experiment trains. ``depths`` are the factorization depths of every layer (1 = plain);
    ``kept_ranks`` the ranks of the compression curve (capped at each layer's largest rank)."""

    architectures: tuple[str, ...] = ARCHITECTURES
    depths: tuple[int, ...] = (1, 2, 3)
    hidden: int = 64
    channels: tuple[int, int] = (16, 32)
    init_scale: float = 0.3
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    kept_ranks: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
    latent: int = 32
    autoencoder_depths: tuple[int, ...] = (1, 4)
    autoencoder_init_scale: float = 0.1
    autoencoder_epochs: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.architectures or set(self.architectures) - set(ARCHITECTURES):
            raise UsageError(f"architectures must be a non-empty subset of {ARCHITECTURES}, got {self.architectures}")
        for name in ("depths", "autoencoder_depths", "kept_ranks"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise UsageError(f"{name} must be a non-empty tuple of ints >= 1, got {values}")
        for name in ("architectures", "depths", "autoencoder_depths", "kept_ranks"):  # a repeat trains a twin
            values = getattr(self, name)
            if len(set(values)) < len(values):
                raise UsageError(f"{name} must be distinct, got {list(values)}")
        for name in ("hidden", "epochs", "batch_size", "latent", "autoencoder_epochs"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise UsageError(f"channels must be two ints >= 1, got {self.channels}")
        for name in ("init_scale", "autoencoder_init_scale", "lr"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")
        finfo = torch.finfo(torch.float32)  # the networks' dtype (lr inf made every weight NaN)
        for name in ("init_scale", "autoencoder_init_scale", "lr"):
            if not finfo.tiny <= getattr(self, name) <= finfo.max:
                raise UsageError(f"{name} {getattr(self, name):g} is outside the range of float32 ({finfo.tiny:.3g} "
                                 f"to {finfo.max:.3g}), the networks' dtype")


@dataclass(frozen=True)
class Digits:
    """Images (N, 1, 8, 8) in [0, 1] and labels, the cnn module's fixed train/test split."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


def load_digits() -> Digits:
    train, test = digits_source("train"), digits_source("test")
    return Digits(train.images.float() * train.scale, train.labels, test.images.float() * test.scale, test.labels)


def build(architecture: str, depth: int, config: DigitsConfig, generator: torch.Generator) -> nn.Module:
    """The MLP 64-h-h-10 or the CNN conv3x3(c1)-conv3x3/2(c2)-linear(10), every layer of depth ``depth``."""
    kind = dict(depth=depth, init_scale=config.init_scale, generator=generator)
    if architecture == "mlp":
        h = config.hidden
        return nn.Sequential(nn.Flatten(), DeepLinear(64, h, **kind), nn.ReLU(), DeepLinear(h, h, **kind), nn.ReLU(),
                             DeepLinear(h, 10, **kind))
    if architecture == "cnn":
        c1, c2 = config.channels
        return nn.Sequential(DeepConv2d(1, c1, 3, padding=1, **kind), nn.ReLU(),
                             DeepConv2d(c1, c2, 3, stride=2, padding=1, **kind), nn.ReLU(), nn.Flatten(),
                             DeepLinear(c2 * 16, 10, **kind))
    raise UsageError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def fit(
    model: nn.Module,
    inputs: Tensor,
    loss: Callable[[Tensor, Tensor], Tensor],
    targets: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    after_epoch: Callable[[nn.Module, int], None] | None = None,
) -> list[dict]:
    """Adam on minibatches (reshuffled each epoch by ``generator``); ``after_epoch(model, epoch)`` after each.

    The epochs run in the networks' shared loop (:func:`implicitrank.cnn.training.epoch_loop`): a NaN/inf epoch
    loss stops training with a message naming the epoch. Returns the rows (epoch, mean train loss).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def run_epoch(epoch: int) -> dict:
        total = torch.zeros((), device=inputs.device)
        for batch in torch.randperm(len(inputs), generator=generator).split(batch_size):
            optimizer.zero_grad()
            value = loss(model(inputs[batch]), targets[batch])
            value.backward()
            optimizer.step()
            total += value.detach() * len(batch)
        return {"epoch": epoch + 1, "train_loss": float(total) / len(inputs)}

    return epoch_loop(run_epoch, [], epochs, progress=False,
                      after_epoch=None if after_epoch is None else lambda epoch: after_epoch(model, epoch + 1))


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The fraction of rows of ``x`` whose largest logit is the label; NaN when any logit is NaN or infinite (argmax
    would still pick a class)."""
    with torch.no_grad():
        logits = model(x)
    if not bool(torch.isfinite(logits).all()):
        return math.nan
    return (logits.argmax(1) == y).double().mean().item()


def compression_curve(model: nn.Module, data: Digits, kept_ranks: tuple[int, ...]) -> list[dict]:
    """Test accuracy and parameter count after truncating every layer to min(r, its largest rank)."""
    largest = {name: len(spectrum.singular_values) for name, spectrum in layer_spectra(model).items()}
    points = []
    for r in kept_ranks:
        small, report = compress(model, rank={name: min(r, top) for name, top in largest.items()})
        points.append({"kept_rank": r, "test_accuracy": accuracy(small, data.test_x, data.test_y),
                       "params": report.params_after, "flops": report.flops_after})
    return points


def classifier_run(architecture: str, depth: int, config: DigitsConfig, data: Digits,
                   after_epoch: Callable[[nn.Module, int], None] | None = None) -> tuple[nn.Module, dict]:
    """Train one network; returns it and its summary (accuracies, per-layer effective ranks, parameters). A network
    whose loss becomes NaN/inf has no numbers: its summary holds ``diverged`` (the message naming the epoch) and NaN
    accuracies, so that the runs beside it go on."""
    generator = torch.Generator().manual_seed(config.seed)
    model = build(architecture, depth, config, generator)
    def diverged(message: str) -> tuple[nn.Module, dict]:
        return model, {"architecture": architecture, "depth": depth, "diverged": message,
                       "train_accuracy": math.nan, "test_accuracy": math.nan, "effective_ranks": {},
                       "params_trained": sum(p.numel() for p in model.parameters()), "params_collapsed": None,
                       "compression": []}

    try:
        fit(model, data.train_x, F.cross_entropy, data.train_y, epochs=config.epochs, batch_size=config.batch_size,
            lr=config.lr, generator=generator, after_epoch=after_epoch)
    except FloatingPointError as err:
        return diverged(str(err))
    train_accuracy, test_accuracy = accuracy(model, data.train_x, data.train_y), accuracy(model, data.test_x,
                                                                                          data.test_y)
    if math.isnan(train_accuracy) or math.isnan(test_accuracy):  # finite weights can still overflow the outputs
        return diverged(f"the outputs became NaN/inf after epoch {config.epochs}; lower the learning rate")
    plain = collapse(model)
    summary = {
        "architecture": architecture, "depth": depth,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "effective_ranks": {name: s.effective_rank for name, s in layer_spectra(model).items()},
        "params_trained": sum(p.numel() for p in model.parameters()),
        "params_collapsed": sum(p.numel() for p in plain.parameters()),
        "compression": compression_curve(model, data, config.kept_ranks),
    }
    return model, summary


def autoencoder(depth: int, config: DigitsConfig, generator: torch.Generator) -> nn.Sequential:
    """x -> encoder (64 -> latent) -> DeepLinear bottleneck (latent -> latent, depth N) -> decoder (latent -> 64),
    all linear; the first two modules give the latent code."""
    kind = dict(init_scale=config.autoencoder_init_scale, generator=generator)
    return nn.Sequential(DeepLinear(64, config.latent, 1, **kind), DeepLinear(config.latent, config.latent, depth,
                                                                              **kind),
                         DeepLinear(config.latent, 64, 1, **kind))


def latent_effective_rank(model: nn.Sequential, x: Tensor) -> float:
    """Effective rank of the latent codes' covariance (its eigenvalues are its singular values)."""
    with torch.no_grad():
        codes = model[:2](x)
        codes = codes - codes.mean(0)
        covariance = codes.T @ codes / (len(codes) - 1)
        return float(effective_rank(torch.linalg.svdvals(covariance.double())))


def autoencoder_run(depth: int, config: DigitsConfig, data: Digits,
                    after_epoch: Callable[[nn.Module, int], None] | None = None) -> dict:
    """Train the linear autoencoder on the flattened train images (mean squared error); one whose loss becomes
    NaN/inf has ``diverged`` (the message) and NaN numbers."""
    generator = torch.Generator().manual_seed(config.seed)
    model = autoencoder(depth, config, generator)
    train, test = data.train_x.flatten(1), data.test_x.flatten(1)
    try:
        fit(model, train, F.mse_loss, train, epochs=config.autoencoder_epochs, batch_size=config.batch_size,
            lr=config.lr, generator=generator, after_epoch=after_epoch)
    except FloatingPointError as err:
        return {"depth": depth, "diverged": str(err), "test_reconstruction_mse": math.nan,
                "latent_effective_rank": math.nan, "bottleneck_effective_rank": math.nan}
    with torch.no_grad():
        test_error = F.mse_loss(model(test), test).item()
    return {"depth": depth, "test_reconstruction_mse": test_error,
            "latent_effective_rank": latent_effective_rank(model, test),
            "bottleneck_effective_rank": layer_spectra(model[1])[""].effective_rank}
