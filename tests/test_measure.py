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
    assert relative_error(w * scale, target * scale, empty).tolist() == [0.0, 0.0]


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
