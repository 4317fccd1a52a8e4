"""The interaction regularizer R = mean_b |⟨ĝ_b, g̃_b⟩| (Razin, Maman & Cohen 2022, §5)."""

import pytest
import torch
from torch import nn

from implicitrank.cnn import Box, PlainCNN, derangement, frozen_batchnorm_statistics, interaction_regularizer
from implicitrank.cnn.regularizer import random_patch_pair

FIRST, SECOND = Box(0, 0, 4, 4), Box(0, 6, 4, 4)


class PatchFunction(nn.Module):
    """f(x) = φ(x_I, x_J) for a given φ of the two 4×4 patches."""

    def __init__(self, phi) -> None:
        super().__init__()
        self.phi = phi
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        a = x[:, 0, FIRST.rows, FIRST.cols].flatten(1)
        b = x[:, 0, SECOND.rows, SECOND.cols].flatten(1)
        return self.phi(self.scale * a, b)


def _regularizer(model, x, seed=0):
    x = x.clone().requires_grad_(True)
    perm = derangement(len(x), torch.Generator().manual_seed(seed))
    return interaction_regularizer(model, x, model(x), FIRST, SECOND, perm)


def _value(model, x) -> float:
    return float(_regularizer(model, x).detach())


def test_regularizer_is_one_for_a_function_separable_across_the_patches():
    x = torch.randn(16, 1, 4, 10, dtype=torch.float64)
    additive = PatchFunction(lambda a, b: (a.sin() * a).sum(1) + (b ** 3).sum(1))
    multiplicative = PatchFunction(lambda a, b: torch.tanh(a).sum(1) * (1 + b.square().sum(1)))
    for model in (additive.double(), multiplicative.double()):
        assert _value(model, x) == pytest.approx(1.0, abs=1e-7)  # 1 up to eps = 1e-8


def test_regularizer_is_below_one_when_the_function_multiplies_the_patches():
    x = torch.randn(16, 1, 4, 10, dtype=torch.float64)
    model = PatchFunction(lambda a, b: (a * b).sum(1)).double()  # ∇_{x_I} f = x_J: changes with patch J
    assert _value(model, x) < 0.5


def test_regularizer_is_one_for_a_cnn_too_local_to_connect_the_patches():
    torch.manual_seed(0)
    model = _Sum(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 1, 1)))
    x = torch.randn(8, 1, 4, 10)
    assert _value(model, x) == pytest.approx(1.0, abs=1e-5)


class _Sum(nn.Module):
    """Sum over positions of a convolutional feature map with a 3×3 receptive field: additive over far patches."""

    def __init__(self, features):
        super().__init__()
        self.features = features

    def forward(self, x):
        return self.features(x).sum(dim=(1, 2, 3))


def test_regularizer_gradient_reaches_the_parameters_and_matches_finite_differences():
    torch.manual_seed(0)
    model = PatchFunction(lambda a, b: torch.tanh((a * b).sum(1)) + a.sum(1)).double()
    x = torch.randn(8, 1, 4, 10, dtype=torch.float64)
    reg = _regularizer(model, x)
    (grad,) = torch.autograd.grad(reg, model.scale)
    assert grad.abs().item() > 0
    step = 1e-6
    with torch.no_grad():
        model.scale += step
    up = _value(model, x)
    with torch.no_grad():
        model.scale -= 2 * step
    down = _value(model, x)
    assert grad.item() == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-9)


def test_every_cnn_parameter_receives_a_gradient_from_the_regularizer():
    torch.manual_seed(0)
    model = PlainCNN(in_channels=1, width=4, depth=3)
    x = torch.randn(8, 1, 4, 10)
    reg = _regularizer(model, x)
    grads = torch.autograd.grad(reg, list(model.parameters()), allow_unused=True)
    conv_weights = [g for (name, _), g in zip(model.named_parameters(), grads) if name.endswith("weight")]
    assert all(g is not None and g.abs().sum().item() > 0 for g in conv_weights)


def test_shuffled_pass_leaves_batchnorm_running_statistics_unchanged():
    torch.manual_seed(0)
    model = PlainCNN(in_channels=1, width=4, depth=3).train()
    x = torch.randn(8, 1, 4, 10)
    with torch.no_grad():
        model(x)  # the ordinary forward pass updates the statistics once
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    with frozen_batchnorm_statistics(model):
        model(x + 1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_a_regularized_step_updates_batchnorm_statistics_exactly_as_a_plain_forward_would():
    torch.manual_seed(0)
    model = PlainCNN(in_channels=1, width=4, depth=3).train()
    reference = PlainCNN(in_channels=1, width=4, depth=3).train()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 1, 4, 10)
    _regularizer(model, x)
    with torch.no_grad():
        reference(x)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(a, b), name


def test_derangement_moves_every_sample_and_patch_pairs_do_not_overlap():
    generator = torch.Generator().manual_seed(3)
    for n in (2, 3, 17):
        perm = derangement(n, generator)
        assert sorted(perm.tolist()) == list(range(n))
        assert bool((perm != torch.arange(n)).all())
    for _ in range(50):
        first, second = random_patch_pair((6, 6), 2, generator)
        assert not first.overlaps(second)
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, generator)
