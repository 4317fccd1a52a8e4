"""compress: truncated SVD into two thin layers, with honest parameter and FLOP counts; layer_spectra."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from implicitrank.nn import DeepConv2d, DeepLinear, SpectraLog, collapse, compress, layer_spectra

DTYPE = torch.float64


def rank_r_linear(out_features: int, in_features: int, rank: int, seed: int = 0) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features, dtype=DTYPE)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, rank, generator=g, dtype=DTYPE)
                           @ torch.randn(rank, in_features, generator=g, dtype=DTYPE))
        layer.bias.copy_(torch.randn(out_features, generator=g, dtype=DTYPE))
    return layer


def best_rank_approximation(matrix: torch.Tensor, rank: int) -> np.ndarray:
    u, s, vh = np.linalg.svd(matrix.detach().numpy(), full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank]


def test_compressing_a_rank_r_layer_at_rank_r_keeps_its_function_and_counts_its_parameters():
    layer = rank_r_linear(30, 40, 3)
    x = torch.randn(8, 40, dtype=DTYPE)
    small, report = compress(layer, rank=3)
    assert [type(m) for m in small] == [nn.Linear, nn.Linear]
    torch.testing.assert_close(small(x), layer(x))
    (row,) = report.layers
    assert row.factored and row.rank == 3 and row.matrix_shape == (30, 40)
    assert report.params_before == 30 * 40 + 30 and report.params_after == 3 * (30 + 40) + 30
    assert report.params_after == sum(p.numel() for p in small.parameters())
    assert report.params_saved == 30 * 40 - 3 * 70
    assert (report.flops_before, report.flops_after) == (2 * 30 * 40, 2 * 3 * 70)
    assert row.energy_kept == pytest.approx(1.0, abs=1e-12)


def test_truncation_is_the_best_rank_r_approximation_eckart_young():
    torch.manual_seed(0)
    layer = DeepLinear(12, 9, 3, dtype=DTYPE)
    small, _ = compress(layer, rank=4)
    thin = small[1].weight @ small[0].weight
    np.testing.assert_allclose(thin.detach().numpy(), best_rank_approximation(layer.end_to_end(), 4), atol=1e-12)


def test_grouped_strided_conv_is_truncated_per_group_and_flops_counted_per_example():
    torch.manual_seed(0)
    layer = DeepConv2d(4, 8, 3, 3, width=16, stride=2, padding=1, groups=2, dtype=DTYPE)
    nn.init.normal_(layer.bias)
    x = torch.randn(3, 4, 9, 9, dtype=DTYPE)
    small, report = compress(layer, rank=2, example_input=x)
    kernel = layer.end_to_end().reshape(2, 4, -1)  # per group (out/g) x (in/g·k·k) = 4 x 18
    truncated = np.stack([best_rank_approximation(kernel[g], 2) for g in range(2)]).reshape(8, 2, 3, 3)
    reference = F.conv2d(x, torch.from_numpy(truncated), layer.bias, stride=2, padding=1, groups=2)
    torch.testing.assert_close(small(x), reference)
    (row,) = report.layers
    positions = 5 * 5  # output is 5x5
    assert row.matrix_shape == (4, 18) and row.groups == 2
    assert row.flops_before == 2 * positions * 8 * 2 * 9
    assert row.flops_after == 2 * positions * (2 * 2 * 2 * 9 + 8 * 2)
    assert report.params_after == sum(p.numel() for p in small.parameters())


def test_energy_keeps_the_fewest_singular_values_holding_that_share_of_the_squared_spectrum():
    torch.manual_seed(0)
    layer = nn.Linear(20, 16, bias=False, dtype=DTYPE)
    s = torch.linalg.svdvals(layer.weight.detach())
    share = s.square().cumsum(0) / s.square().sum()
    for energy in (0.3, 0.75, 0.9):
        expected = int((share < energy).sum()) + 1
        _, report = compress(layer, energy=energy)
        assert report.layers[0].rank == expected
        assert report.layers[0].energy_kept == pytest.approx(share[expected - 1].item())
        assert report.layers[0].energy_kept >= energy


def test_a_rank_that_saves_nothing_keeps_one_dense_truncated_layer():
    torch.manual_seed(0)
    layer = nn.Linear(10, 10, dtype=DTYPE)
    x = torch.randn(4, 10, dtype=DTYPE)
    same, report = compress(layer, energy=1.0)
    assert isinstance(same, nn.Linear) and not report.layers[0].factored
    assert report.params_after == report.params_before and report.flops_saved == 0
    torch.testing.assert_close(same(x), layer(x))
    dense, report = compress(layer, rank=6)  # 6·(10+10) > 100: two thin layers would be larger
    assert isinstance(dense, nn.Linear) and torch.linalg.matrix_rank(dense.weight).item() == 6


def test_rank_by_name_compresses_only_the_named_layers_of_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(DeepLinear(16, 16, 3, dtype=DTYPE), nn.ReLU(), DeepLinear(16, 4, 2, dtype=DTYPE))
    small, report = compress(model, rank={"0": 2})
    assert [row.name for row in report.layers] == ["0"]
    assert isinstance(small[0], nn.Sequential) and isinstance(small[2], nn.Linear)
    x = torch.randn(3, 16, dtype=DTYPE)
    torch.testing.assert_close(small[2].weight, model[2].end_to_end())
    assert small(x).shape == (3, 4)


def test_layer_spectra_measure_factorized_layers_end_to_end_and_groups_together():
    torch.manual_seed(0)
    model = nn.Sequential(DeepConv2d(4, 6, 3, 3, groups=2, dtype=DTYPE), nn.Flatten(),
                          DeepLinear(6, 5, 4, dtype=DTYPE))
    spectra = layer_spectra(model)
    assert sorted(spectra) == ["0", "2"]
    kernel = model[0].end_to_end().detach().reshape(2, 3, -1)
    groups_together = torch.cat([torch.linalg.svdvals(kernel[0]), torch.linalg.svdvals(kernel[1])])
    torch.testing.assert_close(spectra["0"].singular_values, groups_together.sort(descending=True).values)
    s = torch.linalg.svdvals(model[2].end_to_end().detach())
    torch.testing.assert_close(spectra["2"].singular_values, s)
    p = s / s.sum()
    assert spectra["2"].effective_rank == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    plain = layer_spectra(collapse(model))
    torch.testing.assert_close(plain["2"].singular_values, spectra["2"].singular_values)


def test_spectra_log_as_a_training_callback_sees_singular_values_learned_one_at_a_time():
    """Incremental learning from a small init (Arora et al. 2019, §3): the rank grows one step at a time."""
    torch.manual_seed(0)
    target = rank_r_linear(8, 8, 2).weight.detach()
    target_values = torch.linalg.svdvals(target)
    model = DeepLinear(8, 8, 3, init_scale=1e-3, bias=False, dtype=DTYPE)
    x = torch.randn(64, 8, dtype=DTYPE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    log = SpectraLog(top=3)
    for step in range(301):
        if step % 100 == 0:
            log(model, step)
        optimizer.zero_grad()
        (model(x) - x @ target.T).square().mean().backward()
        optimizer.step()
    assert log.steps == [0, 100, 200, 300] and log.singular_values[""][0].shape == (3,)
    at_100, at_300 = log.singular_values[""][1], log.singular_values[""][3]
    assert at_100[0] > 0.5 * target_values[0] and at_100[1] < 0.05 * target_values[1], "first one, then the next"
    assert at_300[1] > 0.5 * target_values[1] and at_300[2] < 1e-2, "the third direction is never learned"
    ranks = log.effective_ranks[""]
    assert ranks[0] > 4 and ranks[1] < 1.5 and 1.5 < ranks[3] < 2.0


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 11}, "rank"),
    ({"rank": 0}, "rank"),
    ({"rank": 2.5}, "rank"),
    ({"rank": {"2": 2}}, "unknown layers"),
    ({"energy": 0.0}, "energy"),
    ({"energy": 1.5}, "energy"),
    ({"energy": -0.2}, "energy"),
    ({"rank": 2, "energy": 0.9}, "exactly one"),
    ({}, "exactly one"),
])
def test_bad_compression_requests_are_refused_by_name(kwargs, match):
    layer = nn.Linear(20, 10)
    with pytest.raises(ValueError, match=match):
        compress(layer, **kwargs)


def test_spectra_log_refuses_a_nonpositive_top():
    with pytest.raises(ValueError, match="top"):
        SpectraLog(top=0)


def test_energy_of_an_all_zero_layer_keeps_rank_one():
    """Its cumulative energy was 0/0 everywhere, so the rank asked for was one past its size ('got 5' for 4x4)."""
    layer = nn.Linear(4, 4)
    nn.init.zeros_(layer.weight)
    _, report = compress(nn.Sequential(layer), energy=0.9)
    assert report.layers[0].rank == 1
