import ast
import math
from pathlib import Path

import pytest
import torch

from implicitrank.measure import (
    RateCheck,
    effective_rank,
    frobenius_norm,
    nuclear_norm,
    numerical_rank,
    relative_error,
    scaled_norm,
    schatten_norm,
    spectral_norm,
)


def test_effective_rank_of_k_equal_values_is_k_and_of_one_value_is_one():
    values = torch.tensor([[1.0, 1.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(effective_rank(values), torch.tensor([3.0, 1.0]))


def test_norms_agree_with_torch_linalg():
    w = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.linalg.svdvals(w)
    torch.testing.assert_close(nuclear_norm(s), torch.linalg.matrix_norm(w, ord="nuc"))
    torch.testing.assert_close(frobenius_norm(s), torch.linalg.matrix_norm(w))
    torch.testing.assert_close(spectral_norm(s), torch.linalg.matrix_norm(w, ord=2))
    torch.testing.assert_close(schatten_norm(s, 2.0), frobenius_norm(s))
    torch.testing.assert_close(schatten_norm(s, float("inf")), spectral_norm(s))
    with pytest.raises(ValueError, match="p must be positive"):
        schatten_norm(s, 0.0)


def test_numerical_rank_counts_values_above_tolerance():
    s = torch.tensor([10.0, 1.0, 1e-3, 1e-6])
    assert int(numerical_rank(s, tol=1e-4)) == 3
    assert int(numerical_rank(s, tol=0.5, relative=False)) == 2


def test_relative_error_overall_and_on_a_mask():
    target = torch.ones(1, 2, 2)
    w = torch.tensor([[[1.0, 1.0], [1.0, 3.0]]])
    assert float(relative_error(w, target)) == pytest.approx(2 / 2)
    mask = torch.tensor([[[True, True], [True, False]]])
    assert float(relative_error(w, target, mask)) == pytest.approx(0.0)


@pytest.mark.parametrize("scale", [1e-160, 1e160, 1e-300, 1e300])
def test_relative_error_is_scale_invariant_where_squared_entries_would_under_or_overflow(scale):
    """||W − W*|| / ||W*|| does not depend on the unit; squaring entries of 1e±160 does (it gave 2e-130 for an error
    of 0.1, and NaN)."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 12, 12, dtype=torch.float64, generator=g)
    w = target + 0.1 * torch.randn(2, 12, 12, dtype=torch.float64, generator=g)
    mask = torch.rand(1, 12, 12, generator=g) < 0.5
    for m in (None, mask):
        unit = relative_error(w, target, m)
        assert 0.05 < float(unit.min()) and float(unit.max()) < 0.2
        torch.testing.assert_close(relative_error(w * scale, target * scale, m), unit, rtol=1e-12, atol=0)
    empty = torch.zeros(1, 12, 12, dtype=torch.bool)
    assert relative_error(w * scale, target * scale, empty).isnan().all()  # no entry: no number, at any unit


@pytest.mark.parametrize("scale", [1e-170, 1e170])
def test_norms_scale_with_and_ranks_and_rate_errors_ignore_the_unit(scale):
    """float64 squares under- or overflow beyond 1e±154: [3, 2, 1]·1e-170 had Frobenius and Schatten-3 norm 0, the
    rate check's error read 0 (a false perfect match) and an effective rank of subnormal or huge values was off."""
    values = torch.tensor([[3.0, 2.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    for norm in (frobenius_norm, lambda v: schatten_norm(v, 3), lambda v: scaled_norm(v, -1)):
        torch.testing.assert_close(norm(values * scale) / scale, norm(values), rtol=1e-14, atol=0)
    torch.testing.assert_close(effective_rank(values * scale), effective_rank(values), rtol=1e-14, atol=0)
    g = torch.Generator().manual_seed(0)
    predicted = torch.randn(6, 2, 3, dtype=torch.float64, generator=g)
    measured = predicted + 0.05 * torch.randn(6, 2, 3, dtype=torch.float64, generator=g)
    unit = RateCheck(measured, predicted)
    check = RateCheck(measured * scale, predicted * scale)
    assert 0.01 < float(unit.error.min()) and float(unit.error.max()) < 0.2
    torch.testing.assert_close(check.error, unit.error, rtol=1e-14, atol=0)
    torch.testing.assert_close(check.relative_error, unit.relative_error, rtol=1e-14, atol=0)


def test_scaled_norm_and_effective_rank_of_zero_and_non_finite_values():
    values = torch.tensor([[3.0, 4.0], [0.0, 0.0], [math.inf, 1.0], [math.nan, 1.0]], dtype=torch.float64)
    assert scaled_norm(values, 1)[:3].tolist() == [5.0, 0.0, math.inf] and scaled_norm(values, 1)[3].isnan()
    ranks = effective_rank(values.abs())
    entropy = -(3 / 7 * math.log(3 / 7) + 4 / 7 * math.log(4 / 7))
    assert ranks[:2].tolist() == [pytest.approx(math.exp(entropy), rel=1e-14), 0.0] and ranks[2:].isnan().all()
    assert effective_rank(torch.tensor([[1e-310, 1e-310]], dtype=torch.float64)).item() == pytest.approx(2.0)


def test_relative_error_reads_masks_and_targets_by_shape_and_has_no_number_for_nothing():
    g = torch.Generator().manual_seed(0)
    w, target = torch.randn(2, 3, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, generator=g,
                                                                                    dtype=torch.float64)
    mask = torch.rand(2, 3, 4, generator=g) > 0.5
    expected = [float((w[b] - target[b])[mask[b]].norm() / target[b][mask[b]].norm()) for b in range(2)]
    torch.testing.assert_close(relative_error(w, target, mask), torch.tensor(expected, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask must broadcast"):  # same number of entries, other shape
        relative_error(w, target, mask.transpose(1, 2))
    shared = [float((w[b] - target[0]).norm() / target[0].norm()) for b in range(2)]
    torch.testing.assert_close(relative_error(w, target[0]), torch.tensor(shared, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask must be a boolean"):
        relative_error(w, target, mask.double())
    assert relative_error(w, target, torch.zeros_like(mask)).isnan().all()  # an empty mask: not a perfect 0
    assert relative_error(w, torch.zeros_like(target)).isnan().all()  # relative to nothing
    assert relative_error(torch.zeros_like(w), torch.zeros_like(target)).eq(0).all()  # exact


def test_numerical_rank_of_non_finite_values_is_missing_not_zero():
    ranks = numerical_rank(torch.tensor([[1.0, math.nan, 1.0], [math.inf, 1.0, 0.0], [1.0, 0.5, 0.0]]))
    assert ranks[:2].isnan().all() and ranks[2] == 2
    assert numerical_rank(torch.tensor([[1.0, 0.5, 0.0]])).dtype == torch.int64
    with pytest.raises(ValueError, match="tol must be positive"):
        numerical_rank(torch.ones(1, 2), tol=math.nan)


def test_singular_value_threshold_refuses_what_has_no_threshold():
    from implicitrank.baselines import singular_value_threshold

    v = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(singular_value_threshold(v, 0.5)[1], torch.tensor([2.5, 0.5], dtype=torch.float64))
    for threshold in (-1.0, math.nan):  # -1 grew [3, 1] to [4, 2]; NaN gave the zero matrix
        with pytest.raises(ValueError, match="threshold must be >= 0"):
            singular_value_threshold(v, threshold)
    with pytest.raises(ValueError, match="NaN or inf"):
        singular_value_threshold(torch.full((2, 2), math.nan, dtype=torch.float64), 0.5)


def test_measurements_only_measure_they_import_no_loop_optimizer_or_solver():
    """``measure`` computes from parameters and recorded trajectories; what trains or fits (recorders, CP-ALS
    ranks) lives in ``implicitrank.theory`` and ``implicitrank.baselines``."""
    package = Path(__file__).resolve().parents[1] / "src" / "implicitrank" / "measure"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("implicitrank."):
                imported.add(node.module.split(".")[1])
    assert imported, "no imports found: the check reads the wrong files"
    assert not imported & {"train", "flow", "optim", "baselines", "theory", "run", "experiments"}, imported


@pytest.mark.parametrize("measure", [effective_rank, numerical_rank, nuclear_norm, frobenius_norm, spectral_norm,
                                     lambda v: schatten_norm(v, 1)])
def test_spectral_measures_refuse_negative_or_empty_values(measure):
    with pytest.raises(ValueError, match="nonnegative"):  # effective_rank([2, -1]) was 2.9e-39
        measure(torch.tensor([[2.0, -1.0]]))
    with pytest.raises(ValueError, match="K >= 1"):
        measure(torch.zeros(3, 0))
