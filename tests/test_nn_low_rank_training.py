"""The implicit rank bias at work in trained layers: deep factorized layers end low-rank and compress."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from implicitrank.nn import DeepLinear, compress, layer_spectra

DTYPE = torch.float64


def low_rank_regression(seed: int, out_features=10, in_features=20, rank=2, samples=12, noise=0.1):
    """y = W* x + ε with W* rank ``rank`` (orthonormal factors) and fewer samples than inputs."""
    g = torch.Generator().manual_seed(seed)
    left = torch.linalg.qr(torch.randn(out_features, rank, generator=g, dtype=DTYPE)).Q
    right = torch.linalg.qr(torch.randn(in_features, rank, generator=g, dtype=DTYPE)).Q
    x = torch.randn(samples, in_features, generator=g, dtype=DTYPE)
    clean = x @ (left @ right.T).T
    noise_std = noise * clean.std()
    return x, clean + noise_std * torch.randn(clean.shape, generator=g, dtype=DTYPE), noise_std.item() ** 2


def fit(model: nn.Module, x, y, steps=300, lr=0.5) -> float:
    """Full-batch gradient descent on the mean squared error; returns the final loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.mark.parametrize("baseline", ["nn.Linear", "depth 1, same small init"])
def test_depth_three_small_init_ends_low_rank_where_a_plain_layer_does_not_and_compresses_to_the_true_rank(baseline):
    """Few noisy samples leave many interpolating solutions. ``nn.Linear`` keeps its initialization in the
    inputs' null space (high rank); depth 1 from a small init goes to the minimum-norm interpolant, which
    fits the noise with every direction; depth 3 learns the large singular directions first and ends near
    rank 2 (Arora et al., NeurIPS 2019, Thm. 3 and §3)."""
    x, y, noise_variance = low_rank_regression(seed=0)
    torch.manual_seed(0)
    deep = DeepLinear(20, 10, 3, init_scale=1e-3, bias=False, dtype=DTYPE)
    plain = (nn.Linear(20, 10, bias=False, dtype=DTYPE) if baseline == "nn.Linear"
             else DeepLinear(20, 10, 1, init_scale=1e-3, bias=False, dtype=DTYPE))
    deep_loss = fit(deep, x, y)
    fit(plain, x, y)
    deep_rank, plain_rank = layer_spectra(deep)[""].effective_rank, layer_spectra(plain)[""].effective_rank
    assert deep_rank < 2.25
    assert plain_rank > deep_rank + 1.0
    small, report = compress(deep, rank=2)
    small_loss = (small(x) - y).square().mean().item()
    assert small_loss < 1.1 * deep_loss and small_loss < noise_variance, "rank 2 keeps the fit of the signal"
    assert report.layers[0].energy_kept > 0.999
    assert report.params_after == 2 * (20 + 10) == sum(p.numel() for p in small.parameters())


def test_compressing_a_trained_deep_mlp_at_the_true_rank_keeps_its_test_accuracy():
    """Labels from a rank-2 linear teacher, argmax(T x); the first layer only needs rank 2. Tolerance: two
    points of test accuracy (6 of 300 examples)."""
    g = torch.Generator().manual_seed(0)
    d, classes, rank, n = 24, 8, 2, 300
    teacher = torch.randn(classes, rank, generator=g) @ torch.randn(rank, d, generator=g)
    x = torch.randn(2 * n, d, generator=g)
    y = (x @ teacher.T).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(DeepLinear(d, 32, 3, init_scale=1e-2), nn.ReLU(), DeepLinear(32, classes, 3, init_scale=1e-2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(x[:n]), y[:n]).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(x[n:]).argmax(1) == y[n:]).double().mean().item()
        small, report = compress(model, rank={"0": rank})
        small_accuracy = (small(x[n:]).argmax(1) == y[n:]).double().mean().item()
    assert accuracy > 0.8, "the model did learn the task"
    assert small_accuracy >= accuracy - 0.02
    plain_parameters = (d * 32 + 32) + (32 * classes + classes)
    assert report.params_before == plain_parameters
    assert report.params_after == plain_parameters - d * 32 + rank * (d + 32)
    assert report.params_after == sum(p.numel() for p in small.parameters())
