"""TensorizedLinear: the weight's tensorization held as a CP / hierarchical factorization of the package."""

import math

import pytest
import torch
from torch import nn

from implicitrank.nn import TensorizedLinear, collapse, compress, layer_spectra

DTYPE = torch.float64

CASES = [  # (format, in_shape, out_shape, rank, tree)
    ("cp", (4, 3), (2, 5), 6, None),
    ("cp", (2, 3, 4), (3, 2, 2), None, None),
    ("cp", (7,), (5,), 3, None),
    ("hierarchical", (4, 3), (2, 5), None, None),
    ("hierarchical", (2, 3, 2, 2), (2, 2, 3, 1), 3, None),
    ("hierarchical", (2, 3, 2), (2, 2, 3), (4, 5), ((0, 2), 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_forward_without_forming_the_weight_is_the_linear_map_of_the_end_to_end_matrix(case):
    fmt, in_shape, out_shape, rank, tree = case
    torch.manual_seed(0)
    layer = TensorizedLinear(in_shape, out_shape, fmt, rank, tree=tree, dtype=DTYPE)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, 3, layer.in_features, dtype=DTYPE)
    torch.testing.assert_close(layer(x), x @ layer.end_to_end().T + layer.bias)
    torch.testing.assert_close(collapse(layer)(x), layer(x))


@pytest.mark.parametrize("fmt", ["cp", "hierarchical"])
def test_the_weight_is_the_paired_mode_tensorization_of_the_factorization_end_tensor(fmt):
    """W[(o_1, o_2), (i_1, i_2)] = T[o_1·i_size_1 + i_1, o_2·i_size_2 + i_2]."""
    torch.manual_seed(0)
    layer = TensorizedLinear((4, 3), (2, 5), fmt, dtype=DTYPE)
    tensor = layer.factorization.end_to_end(list(layer.factors))[0].detach()
    weight = layer.end_to_end().detach()
    for o1, o2, i1, i2 in [(0, 0, 0, 0), (1, 4, 3, 2), (1, 2, 0, 1), (0, 3, 2, 0)]:
        assert weight[o1 * 5 + o2, i1 * 3 + i2] == tensor[o1 * 4 + i1, o2 * 3 + i2]
    torch.testing.assert_close(layer.quantities(), layer.factorization.quantities(list(layer.factors))[0])


@pytest.mark.parametrize("fmt", ["cp", "hierarchical"])
def test_gradients_through_the_forward_pass_equal_those_through_the_formed_weight(fmt):
    torch.manual_seed(0)
    layer = TensorizedLinear((2, 3, 2), (3, 2, 2), fmt, dtype=DTYPE)
    x, y = torch.randn(6, 12, dtype=DTYPE), torch.randn(6, 12, dtype=DTYPE)
    params = list(layer.parameters())
    fast = torch.autograd.grad((layer(x) - y).square().sum(), params)
    formed = torch.autograd.grad((x @ layer.end_to_end().T + layer.bias - y).square().sum(), params)
    for a, b in zip(fast, formed):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fmt, in_shape, out_shape, rank", [("cp", (2, 3, 2), (3, 2, 2), 4),
                                                            ("hierarchical", (4, 3), (2, 5), 3)])
def test_init_scale_sets_the_expected_squared_norm_of_the_weight(fmt, in_shape, out_shape, rank):
    """E||W(0)||_F² = init_scale²·min(in, out), as for DeepLinear. Products of Gaussians are heavy-tailed:
    the mean of 300 draws has a standard error of about 5% here, so 20% is four standard errors."""
    squares = [TensorizedLinear(in_shape, out_shape, fmt, rank, init_scale=0.5, dtype=DTYPE,
                                generator=torch.Generator().manual_seed(seed)).end_to_end().detach().square().sum()
               for seed in range(300)]
    expected = 0.5**2 * min(math.prod(in_shape), math.prod(out_shape))
    assert torch.stack(squares).mean().item() == pytest.approx(expected, rel=0.2)


def test_tensorized_layers_are_measured_and_compressed_like_the_others():
    torch.manual_seed(0)
    model = nn.Sequential(TensorizedLinear((4, 4), (4, 4), "hierarchical", dtype=DTYPE), nn.ReLU(),
                          TensorizedLinear((4, 4), (2, 5), "cp", 2, dtype=DTYPE))
    spectra = layer_spectra(model)
    assert sorted(spectra) == ["0", "2"]
    torch.testing.assert_close(spectra["2"].singular_values, torch.linalg.svdvals(model[2].end_to_end().detach()))
    small, report = compress(model, rank={"0": 3})
    assert report.layers[0].matrix_shape == (16, 16) and report.layers[0].rank == 3
    assert small(torch.randn(2, 16, dtype=DTYPE)).shape == (2, 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"in_shape": (4, 3), "out_shape": (2,)}, "in_shape"),
    ({"in_shape": (4, 0), "out_shape": (2, 2)}, "in_shape"),
    ({"format": "tucker"}, "format"),
    ({"format": "cp", "tree": ((0, 1),)}, "tree"),
    ({"format": "cp", "rank": (2, 3)}, "rank"),
    ({"format": "cp", "rank": 0}, "components"),
    ({"format": "hierarchical", "in_shape": (12,), "out_shape": (10,)}, "at least 2 modes"),
    ({"format": "hierarchical", "rank": (2, 3, 4)}, "widths"),
    ({"init_scale": 0.0}, "init_scale"),
])
def test_bad_tensorized_arguments_are_refused_by_name(kwargs, match):
    arguments = {"in_shape": (4, 3), "out_shape": (2, 5), **kwargs}
    with pytest.raises(ValueError, match=match):
        TensorizedLinear(**arguments)
