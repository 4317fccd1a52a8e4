"""Baselines: minimum nuclear norm (ADMM against cvxpy) and minimum Frobenius norm (what depth-1 GD reaches)."""

from __future__ import annotations

import pytest
import torch

from implicitrank.baselines import min_frobenius, nuclear_norm_min
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.optim import gradient_descent
from implicitrank.tasks import Completion, complete_from_target, gaussian_sensing, low_rank_matrix
from implicitrank.train import TrainConfig, train


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


@pytest.fixture(scope="module")
def small_completion() -> Completion:
    """12x12 rank 2 with 70 of 144 entries observed: under-sampled enough that the solution is not the truth."""
    return complete_from_target(low_rank_matrix(12, 12, 2, seed=1), 70, [3])


@pytest.mark.parametrize("eps", [0.0, 1e-2])
def test_admm_agrees_with_cvxpy_on_small_completion(small_completion: Completion, eps: float) -> None:
    ours = nuclear_norm_min(small_completion, eps_constraint=eps, tol=1e-8)
    reference = nuclear_norm_min(small_completion, eps_constraint=eps, method="cvxpy", solver="CLARABEL")
    assert ours.converged and reference.converged
    assert ours.constraint_residual <= 1e-8
    assert abs(ours.nuclear_norm - reference.nuclear_norm) <= 1e-6 * reference.nuclear_norm
    assert _relative(ours.solution, reference.solution) <= 1e-4


def test_admm_agrees_with_cvxpy_on_sensing() -> None:
    task = gaussian_sensing(low_rank_matrix(8, 8, 1, seed=1), 30, seed=2)
    ours = nuclear_norm_min(task, tol=1e-8)
    reference = nuclear_norm_min(task, method="cvxpy", solver="CLARABEL")
    assert ours.converged and ours.constraint_residual <= 1e-8
    assert abs(ours.nuclear_norm - reference.nuclear_norm) <= 1e-6 * reference.nuclear_norm
    assert _relative(ours.solution, reference.solution) <= 1e-4


@pytest.mark.parametrize("eps", [0.0, 1e-2])
def test_duality_gap_brackets_the_cvxpy_optimum(small_completion: Completion, eps: float) -> None:
    """The reported gap certifies the answer: the optimum lies in [||X||_*(1 − gap), ||X||_*] up to the
    feasibility tolerance, and the stopping test only passes with the gap below tol."""
    ours = nuclear_norm_min(small_completion, eps_constraint=eps, tol=1e-6)
    optimum = nuclear_norm_min(small_completion, eps_constraint=eps, method="cvxpy", solver="CLARABEL").nuclear_norm
    assert ours.converged and abs(ours.duality_gap) <= 1e-6
    assert ours.nuclear_norm * (1 - ours.duality_gap) <= optimum * (1 + 1e-8)
    assert ours.nuclear_norm >= optimum * (1 - 1e-5)
    capped = nuclear_norm_min(small_completion, eps_constraint=eps, tol=1e-12, max_iter=3)
    assert not capped.converged and capped.duality_gap > 1e-12
    assert capped.nuclear_norm * (1 - capped.duality_gap) <= optimum * (1 + 1e-8)


def test_admm_certifies_the_relaxed_well_sampled_completion_within_two_thousand_svds() -> None:
    """eps > 0 with half the entries observed, the degenerate case of issue 18 (few active constraints, DR's tail
    sublinear at the first ρ: over 2,000 SVDs before the penalty increase and the tangent-space dual certificate):
    certified at tol 1e-6 within 2,000 SVDs, and the certificate brackets cvxpy's optimum."""
    task = complete_from_target(low_rank_matrix(25, 25, 2, seed=0), 312, [0])
    ours = nuclear_norm_min(task, eps_constraint=1e-3, tol=1e-6, max_iter=2_000)
    optimum = nuclear_norm_min(task, eps_constraint=1e-3, method="cvxpy", solver="CLARABEL").nuclear_norm
    assert ours.converged and ours.constraint_residual <= 1e-6 and ours.duality_gap <= 1e-6
    assert ours.nuclear_norm * (1 - ours.duality_gap) <= optimum * (1 + 1e-8)
    assert abs(ours.nuclear_norm - optimum) <= 1e-6 * optimum


def test_reported_residual_and_norm_match_the_returned_solution(small_completion: Completion) -> None:
    result = nuclear_norm_min(small_completion, tol=1e-6)
    observed = result.solution.reshape(-1)[small_completion.flat_indices()[0]]
    y = small_completion.values[0]
    assert result.constraint_residual == pytest.approx(float((observed - y).norm() / y.norm()), rel=1e-9, abs=1e-15)
    assert result.constraint_residual <= 1e-6
    assert result.nuclear_norm == pytest.approx(float(torch.linalg.svdvals(result.solution).sum()), rel=1e-12)


def test_minimum_nuclear_norm_is_at_most_the_truths(small_completion: Completion) -> None:
    """The ground truth is feasible, so the minimum cannot exceed its nuclear norm."""
    result = nuclear_norm_min(small_completion, tol=1e-8)
    truth = small_completion.target[0]
    assert result.nuclear_norm <= float(torch.linalg.svdvals(truth).sum()) * (1 + 1e-8)


def test_nuclear_norm_recovers_a_well_sampled_low_rank_matrix() -> None:
    """Candès & Recht (2009): enough random entries of an incoherent low-rank matrix determine it."""
    truth = low_rank_matrix(20, 20, 1, seed=4)
    result = nuclear_norm_min(complete_from_target(truth, 200, [5]), tol=1e-8)
    assert _relative(result.solution, truth) <= 1e-5


@pytest.mark.parametrize("eps", [0.0, 1e-2])
@pytest.mark.parametrize("unit", [1e-160, 1e160])
def test_the_solve_is_scale_equivariant_where_squared_entries_would_under_or_overflow(
        small_completion: Completion, unit: float, eps: float) -> None:
    """min ||X||_* s.t. |A(X) − y| <= eps scales with y and eps: observations of 1e∓160 (whose squares leave float64
    in the SVT's Gram matrix) give the unit problem's solution times the unit, certified, with the same iterations
    and a residual measured in the same units."""
    unit_result = nuclear_norm_min(small_completion, eps_constraint=eps, tol=1e-8)
    scaled = Completion(small_completion.shape, small_completion.indices, small_completion.values * unit)
    result = nuclear_norm_min(scaled, eps_constraint=eps * unit, tol=1e-8)
    assert result.converged and result.iterations == unit_result.iterations
    assert result.nuclear_norm / unit == pytest.approx(unit_result.nuclear_norm, rel=1e-12)
    # the same iterates up to rounding: multiplying by 1e±160 (not a power of 2) rounds every entry, and 214
    # iterations carry that to 1.15e-12 on an AMD EPYC (entries of order 1), 100× below the certificate's 1e-8
    assert torch.allclose(result.solution / unit, unit_result.solution, rtol=0, atol=1e-10)
    assert result.constraint_residual == pytest.approx(unit_result.constraint_residual, abs=1e-12)


def test_each_run_of_a_batched_task_is_solved_with_its_own_observations() -> None:
    truth = low_rank_matrix(10, 10, 2, seed=6)
    batched = complete_from_target(truth, 50, [7, 8])
    for run, seed in enumerate([7, 8]):
        alone = nuclear_norm_min(complete_from_target(truth, 50, [seed]), tol=1e-8)
        assert _relative(nuclear_norm_min(batched, run, tol=1e-8).solution, alone.solution) <= 1e-12


def _depth_one_gd(task, lr: float, steps: int) -> torch.Tensor:
    model = MatrixFactorization(*task.shape, depth=1)
    params = model.init(task.batch, torch.tensor(1e-8), generators(list(range(task.batch))), dtype=torch.float64)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_per_decade=0, progress=False)
    state = train(model, task, params, gradient_descent(), torch.full((task.batch,), lr), config)
    return model.end_to_end(state.params)


def test_depth_one_gd_from_tiny_init_reaches_minimum_frobenius_completion() -> None:
    task = complete_from_target(low_rank_matrix(15, 15, 2, seed=0), 60, [1, 2])
    # Loss = mean over M of squared errors: each observed entry contracts by 1 − 2·lr/M per step.
    reached = _depth_one_gd(task, lr=task.num_observations / 4, steps=60)
    expected = min_frobenius(task)
    assert torch.equal(expected.reshape(2, -1).count_nonzero(dim=1), torch.tensor([60, 60]))
    assert float((reached - expected).norm() / expected.norm()) <= 1e-6


def test_depth_one_gd_from_tiny_init_reaches_minimum_frobenius_sensing() -> None:
    task = gaussian_sensing(low_rank_matrix(6, 6, 1, seed=0), 20, seed=1)
    a = task.measurements
    eigenvalues = torch.linalg.eigvalsh(a @ a.T)
    # GD contracts the residual along A Aᵀ's eigenvectors by 1 − 2·lr·λ/M per step.
    lr = task.num_observations / (2 * float(eigenvalues.max()))
    steps = int(20 * float(eigenvalues.max() / eigenvalues.min()))
    reached = _depth_one_gd(task, lr=lr, steps=steps)
    expected = min_frobenius(task)
    assert float((reached - expected).norm() / expected.norm()) <= 1e-6
    assert float((expected.reshape(1, -1) @ a.T - task.values).abs().max()) <= 1e-10


@pytest.mark.parametrize(("options", "named"), [
    ({"method": "newton"}, "method"),
    ({"eps_constraint": -1.0}, "eps_constraint"),
    ({"tol": 0.0}, "tol"),
    ({"max_iter": 0}, "max_iter"),
    ({"memory": -1}, "memory"),
    ({"run": 1}, "run"),
])
def test_bad_arguments_are_named(small_completion: Completion, options: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        nuclear_norm_min(small_completion, **options)


def test_bad_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="eps_constraint"):
        nuclear_norm_min(gaussian_sensing(low_rank_matrix(4, 4, 1), 5), eps_constraint=1e-3)
    cube = Completion((3, 3, 3), torch.tensor([[0, 1, 2]]), torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="matrix task"):
        nuclear_norm_min(cube)
    with pytest.raises(ValueError, match="task"):
        nuclear_norm_min(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="task"):
        min_frobenius(torch.zeros(3, 3))


def test_anderson_gram_updated_a_row_at_a_time_equals_the_recomputed_one() -> None:
    """The secants' Gram matrix ΔGᵀΔG, kept up to date row by row through the ring buffer's wrap-around and a
    restart, equals the product of the last secants pushed, and the extrapolation W + G − (ΔW + ΔG)γ solves
    γ = argmin ||G − ΔG γ|| (checked by least squares)."""
    from implicitrank.baselines.nuclear_norm import _Secants

    generator = torch.Generator().manual_seed(0)
    secants = _Secants(numel=30, memory=4, dtype=torch.float64)
    for pushes in (3, 7, 2):  # the second wraps around the buffer; the third follows a restart
        secants.clear()
        pushed = [tuple(torch.randn(5, 6, generator=generator, dtype=torch.float64) for _ in range(2))
                  for _ in range(pushes)]
        for d_w, d_g in pushed:
            secants.push(d_w, d_g)
        last = pushed[-4:]
        d_g = torch.stack([g.reshape(-1) for _, g in last])
        d_sum = torch.stack([(w + g).reshape(-1) for w, g in last])
        assert secants.size == len(last)
        order = sorted(range(len(last)), key=lambda k: (pushes - len(last) + k) % 4)  # ring buffer rows
        torch.testing.assert_close(secants.gram[:len(last), :len(last)], (d_g @ d_g.T)[order][:, order],
                                   rtol=1e-12, atol=1e-12)
        w, g = (torch.randn(5, 6, generator=generator, dtype=torch.float64) for _ in range(2))
        gamma = torch.linalg.lstsq(d_g.T, g.reshape(-1, 1)).solution.squeeze(1)
        expected = w.reshape(-1) + g.reshape(-1) - gamma @ d_sum
        torch.testing.assert_close(secants.extrapolate(w, g), expected.view_as(w))


def test_minimum_frobenius_sensing_in_float32_is_as_accurate_as_float32_allows() -> None:
    """The normal equations square cond(A): in float32, 99 measurements of a 10×10 matrix gave an interpolant 2.1e-5
    off here (2e-3 for another draw); solved in float64 and returned in float32 it is off by float32 rounding only."""
    task = gaussian_sensing(low_rank_matrix(10, 10, 2, seed=0).double(), 99, seed=3)
    exact = min_frobenius(task)
    single = min_frobenius(task.to("cpu", torch.float32))
    assert single.dtype == torch.float32
    assert float((single.double() - exact).norm() / exact.norm()) <= 1e-6


def test_minimum_frobenius_of_an_entry_observed_twice_is_the_least_squares_mean_gd_reaches() -> None:
    task = Completion((2, 2), torch.tensor([[0, 0], [0, 0], [1, 1]]), torch.tensor([[1.0, 3.0, 2.0]],
                                                                                     dtype=torch.float64))
    w = torch.zeros(1, 2, 2, dtype=torch.float64)
    for _ in range(2000):  # depth-1 gradient descent from zero on the task's own loss
        w -= 0.5 * task.dense_loss_and_grad(w)[1]
    expected = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(min_frobenius(task), expected)


def test_minimum_frobenius_refuses_linearly_dependent_measurements() -> None:
    from implicitrank.tasks import Sensing

    a = torch.randn(12, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # 12 rows in R^9
    with pytest.raises(ValueError, match="linearly dependent"):
        min_frobenius(Sensing((3, 3), a, torch.ones(1, 12, dtype=torch.float64)))


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_the_admm_takes_at_most_max_iter_svds_and_says_when_it_stopped_there(eps):
    """``max_iter`` caps the SVDs (the result's ``iterations``): a cap of k gave k + 1 (and up to k + 2)."""
    task = complete_from_target(low_rank_matrix(12, 10, 2, seed=0), 60, [0]).to("cpu", torch.float64)
    for cap in range(1, 12):
        solved = nuclear_norm_min(task, eps_constraint=eps, max_iter=cap)
        assert solved.iterations <= cap and not solved.converged
    assert nuclear_norm_min(task, eps_constraint=eps).converged


def test_nnm_marks_a_solve_stopped_by_its_cap_as_not_converged(tmp_path, capsys):
    from implicitrank.cli import main
    from implicitrank.results import read_json

    argv = ["nnm", "--shape", "6", "6", "--rank", "2", "--num-observations", "20"]
    assert main([*argv, "--max-iter", "3", "--out", str(tmp_path / "capped")]) == 0
    summary = read_json(tmp_path / "capped" / "summary.json")
    assert summary["status"] == "not converged" and summary["iterations"] == 3 and "raise --max-iter" in summary[
        "message"]
    assert "warning: capped: stopped after 3 iterations" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "solved")]) == 0
    assert read_json(tmp_path / "solved" / "summary.json")["status"] == "converged"
