"""DeepLinear and DeepConv2d: one plain layer stored as a deep matrix factorization; collapse is exact."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from implicitrank.factorizations import MatrixFactorization
from implicitrank.nn import DeepConv2d, DeepLinear, collapse

DTYPE = torch.float64


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_deep_linear_is_the_linear_map_of_its_end_to_end_matrix(depth, bias):
    torch.manual_seed(0)
    layer = DeepLinear(7, 5, depth, width=9, bias=bias, dtype=DTYPE)
    if bias:
        nn.init.normal_(layer.bias)
    x = torch.randn(3, 4, 7, dtype=DTYPE)
    product = torch.eye(7, dtype=DTYPE)
    for factor in layer.factors:
        product = factor @ product
    torch.testing.assert_close(layer.end_to_end(), product)
    torch.testing.assert_close(layer(x), F.linear(x, product, layer.bias))
    dims = (7, *[9] * (depth - 1), 5)
    assert [tuple(f.shape) for f in layer.factors] == [(dims[j + 1], dims[j]) for j in range(depth)]


def test_deep_linear_draws_its_factors_from_the_matrix_factorization_init():
    generator = torch.Generator().manual_seed(3)
    layer = DeepLinear(6, 4, 3, init="balanced", init_scale=0.5, bias=False, generator=generator, dtype=DTYPE)
    w = [f.detach() for f in layer.factors]
    for lower, upper in zip(w, w[1:]):  # balancedness W_{j+1}^T W_{j+1} = W_j W_j^T
        torch.testing.assert_close(upper.T @ upper, lower @ lower.T)
    # the balanced scheme scales the end-to-end matrix to ||W(0)||_F = init_scale·sqrt(min(m, n)) exactly
    assert torch.linalg.matrix_norm(layer.end_to_end()).item() == pytest.approx(0.5 * 4**0.5, rel=1e-9)
    assert layer.widths == MatrixFactorization(4, 6, depth=3).dims == (6, 4, 4, 4)


def test_same_seed_gives_the_same_layer_and_torch_manual_seed_is_enough():
    a = DeepLinear(5, 5, 3, generator=torch.Generator().manual_seed(1))
    b = DeepLinear(5, 5, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    c = DeepConv2d(2, 4, 3, 2)
    torch.manual_seed(7)
    d = DeepConv2d(2, 4, 3, 2)
    torch.testing.assert_close(a.end_to_end(), b.end_to_end(), rtol=0, atol=0)
    torch.testing.assert_close(c.end_to_end(), d.end_to_end(), rtol=0, atol=0)


CONV_CASES = [  # (in, out, kernel, depth, width, stride, padding, dilation, groups, bias)
    (3, 5, 3, 3, 8, 1, 0, 1, 1, True),
    (4, 6, 3, 2, None, 2, 1, 1, 2, True),
    (6, 6, (3, 1), 4, 12, (2, 1), (1, 0), 1, 3, False),
    (4, 8, 3, 3, 8, 1, "same", 2, 4, True),
    (4, 4, 5, 2, 4, 3, 2, 1, 4, True),  # depthwise
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_deep_conv_collapses_to_one_conv_with_the_end_to_end_kernel(case):
    c_in, c_out, k, depth, width, stride, padding, dilation, groups, bias = case
    torch.manual_seed(0)
    layer = DeepConv2d(c_in, c_out, k, depth, width, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, bias=bias, dtype=DTYPE)
    if bias:
        nn.init.normal_(layer.bias)
    x = torch.randn(2, c_in, 11, 10, dtype=DTYPE)
    plain = collapse(layer)
    assert isinstance(plain, nn.Conv2d)
    assert (plain.stride, plain.groups, plain.dilation) == (layer.stride, groups, layer.dilation)
    torch.testing.assert_close(plain(x), layer(x))
    reference = F.conv2d(x, layer.end_to_end(), layer.bias, layer.stride, layer.padding, layer.dilation, groups)
    torch.testing.assert_close(layer(x), reference)


@pytest.mark.parametrize("bias", [True, False])
def test_collapse_replaces_every_factorized_layer_and_keeps_the_outputs(bias):
    torch.manual_seed(0)
    model = nn.Sequential(
        DeepConv2d(3, 8, 3, 3, padding=1, stride=2, groups=1, bias=bias, dtype=DTYPE), nn.ReLU(),
        DeepConv2d(8, 8, 3, 2, width=16, padding=1, groups=4, bias=bias, dtype=DTYPE), nn.ReLU(),
        nn.Flatten(),
        nn.Sequential(DeepLinear(8 * 16, 12, 3, width=20, bias=bias, dtype=DTYPE), nn.Tanh()),
        nn.Linear(12, 4, dtype=DTYPE),
    )
    x = torch.randn(5, 3, 8, 8, dtype=DTYPE)
    plain = collapse(model)
    kinds = [type(m) for m in plain.modules()]
    assert DeepLinear not in kinds and DeepConv2d not in kinds
    assert kinds.count(nn.Conv2d) == 2 and kinds.count(nn.Linear) == 2
    torch.testing.assert_close(plain(x), model(x))
    assert isinstance(model[0], DeepConv2d), "collapse must leave its input untouched"


def test_collapsed_layer_in_float32_matches_to_float_tolerance():
    torch.manual_seed(0)
    layer = DeepConv2d(16, 32, 3, 4, width=64, padding=1)
    x = torch.randn(4, 16, 12, 12)
    torch.testing.assert_close(collapse(layer)(x), layer(x), rtol=1e-4, atol=1e-5)


def test_collapse_gives_the_same_gradient_with_respect_to_the_input():
    torch.manual_seed(0)
    model = nn.Sequential(DeepLinear(6, 6, 3, dtype=DTYPE), nn.Tanh(), DeepLinear(6, 2, 2, dtype=DTYPE))
    x = torch.randn(4, 6, dtype=DTYPE, requires_grad=True)
    (grad_deep,) = torch.autograd.grad(model(x).square().sum(), x)
    (grad_plain,) = torch.autograd.grad(collapse(model)(x).square().sum(), x)
    torch.testing.assert_close(grad_plain, grad_deep)


@pytest.mark.parametrize("make, match", [
    (lambda: DeepLinear(4, 4, 0), "depth"),
    (lambda: DeepLinear(0, 4, 2), "in_features"),
    (lambda: DeepLinear(4, 4, 2, width=0), "width"),
    (lambda: DeepLinear(4, 4, 2, init="xavier"), "init"),
    (lambda: DeepLinear(4, 4, 2, init_scale=0.0), "init_scale"),
    (lambda: DeepConv2d(4, 4, 3, 0), "depth"),
    (lambda: DeepConv2d(4, 6, 3, 2, groups=4), "out_channels"),
    (lambda: DeepConv2d(4, 4, 3, 2, width=6, groups=4), "width"),
    (lambda: DeepConv2d(4, 4, 3, 2, padding="full"), "padding"),
    (lambda: DeepConv2d(4, 4, (3, 3, 3), 2), "kernel_size"),
])
def test_bad_layer_arguments_are_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()
