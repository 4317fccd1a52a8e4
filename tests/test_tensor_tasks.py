"""Tensor tasks, CP-ALS, tensor measurements, and the CP science of Razin & Cohen 2020 / Razin et al. 2021."""

import math

import pytest
import torch

from implicitrank.baselines.cp_als import cp_als, cp_als_full, tensor_rank_by_als
from implicitrank.factorizations import CPFactorization, MatrixFactorization, generators
from implicitrank.factorizations.cp import cp_to_tensor
from implicitrank.measure import check_rates, effective_rank, relative_error
from implicitrank.measure.tensor import (
    cp_metrics,
    matricization_effective_ranks,
    matricization_ranks,
    matricize,
    tensor_rank_by_pruning,
)
from implicitrank.optim import global_rmsprop, gradient_descent
from implicitrank.tasks.completion import Completion
from implicitrank.tasks.tensors import (
    RankOneSensing,
    gaussian_tensor_sensing,
    low_rank_tensor,
    permutation_prefix,
    prefix_completion,
    rank_one_sensing,
)
from implicitrank.theory import rank_one_trajectory_distance, record_trajectory
from implicitrank.train import TrainConfig, train

# ---------------------------------------------------------------------------------------------- tasks


def test_low_rank_tensor_has_the_given_norm_and_rank():
    w = low_rank_tensor((5, 6, 7), 3, seed=1, frobenius_norm=2.0)
    assert math.isclose(torch.linalg.vector_norm(w).item(), 2.0, rel_tol=1e-12)
    ranks = matricization_ranks(w.unsqueeze(0), [[0], [1], [2]], tol=1e-9)
    assert ranks.tolist() == [[3, 3, 3]]
    assert cp_als_full(w, 3, restarts=2).relative_error < 1e-6
    assert torch.equal(w, low_rank_tensor((5, 6, 7), 3, seed=1, frobenius_norm=2.0))


def test_permutation_prefixes_are_distinct_and_nested():
    small, large = permutation_prefix((4, 5, 6), 30, seed=3), permutation_prefix((4, 5, 6), 90, seed=3)
    assert torch.equal(large[:30], small)
    assert len({tuple(i) for i in large.tolist()}) == 90
    assert (large >= 0).all() and (large < torch.tensor([4, 5, 6])).all()
    assert not torch.equal(permutation_prefix((4, 5, 6), 30, seed=4), small)


def test_prefix_completion_observes_the_target_at_its_indices():
    target = low_rank_tensor((3, 4, 5), 2)
    task = prefix_completion(target, 25, seed=0, batch=2)
    assert isinstance(task, Completion) and task.values.shape == (2, 25)
    assert torch.equal(task.values[1], target[tuple(task.indices.unbind(-1))])
    model = CPFactorization((3, 4, 5), components=3)
    params = model.init(2, model.scale_for_entry_std(0.5), generators([0, 1]), dtype=torch.float64)
    dense = (model.end_to_end(params)[:, task.indices[:, 0], task.indices[:, 1], task.indices[:, 2]]
             - task.values).pow(2).mean(1)
    assert torch.allclose(task.loss(model, params), dense)


def test_rank_one_sensing_measures_inner_products_without_forming_measurement_tensors():
    target = low_rank_tensor((3, 4, 2), 2, seed=2)
    task = rank_one_sensing(target, 15, seed=0, batch=2)
    a = torch.einsum("mi,mj,mk->mijk", *task.vectors)
    assert torch.allclose(task.values[0], torch.einsum("mijk,ijk->m", a, target))

    model = CPFactorization((3, 4, 2), components=3)
    params = model.init(2, model.scale_for_entry_std(0.7), generators([0, 1]), dtype=torch.float64)
    expected = (torch.einsum("mijk,bijk->bm", a, model.end_to_end(params)) - task.values).pow(2).mean(1)
    assert torch.allclose(task.loss(model, params), expected)  # via CP's inner_rank_one


def test_rank_one_sensing_gradient_in_closed_form_matches_autograd():
    target = low_rank_tensor((4, 5), 2, seed=0)
    task = rank_one_sensing(target, 12, seed=1)
    model = MatrixFactorization(4, 5, depth=2)  # has no inner_rank_one: the dense contraction is used
    params = model.init(1, model.scale_for_entry_std(0.5), generators([0]), dtype=torch.float64)
    w = model.end_to_end(params).requires_grad_(True)
    loss, grad = task.dense_loss_and_grad(w.detach())
    residual = torch.einsum("ij,mi,mj->m", w[0], *task.vectors) - task.values[0]
    (expected,) = torch.autograd.grad(residual.pow(2).mean(), w)
    assert torch.allclose(grad, expected) and torch.allclose(loss, residual.pow(2).mean().detach())


def test_gaussian_tensor_sensing_values_are_inner_products():
    target = low_rank_tensor((3, 3, 3), 1)
    task = gaussian_tensor_sensing(target, 10, seed=0, batch=1)
    assert torch.allclose(task.values[0], task.measurements @ target.reshape(-1))


@pytest.mark.parametrize("call, match", [
    (lambda: low_rank_tensor((3, 0), 1), "shape"),
    (lambda: low_rank_tensor((3, 3), 0), "rank"),
    (lambda: low_rank_tensor((3, 3), 1, frobenius_norm=0.0), "frobenius_norm"),
    (lambda: permutation_prefix((3, 3), 0), "num_observations"),
    (lambda: permutation_prefix((3, 3), 10), "num_observations"),
    (lambda: permutation_prefix((2,) * 64, 10), "not supported"),
    (lambda: rank_one_sensing(torch.ones(2, 2), 0), "num_observations"),
    (lambda: RankOneSensing((2, 3), [torch.ones(4, 2), torch.ones(4, 2)], torch.ones(1, 4)), "vectors"),
    (lambda: RankOneSensing((2, 3), [torch.ones(4, 2), torch.ones(4, 3)], torch.ones(1, 0)), "values"),
    (lambda: Completion((2, 3), torch.zeros(0, 2, dtype=torch.long), torch.zeros(1, 0)), "empty"),
    (lambda: Completion((2, 3), torch.tensor([[1, 3]]), torch.zeros(1, 1)), "out of range"),
    (lambda: Completion((2, 3, 4), torch.tensor([[1, 2]]), torch.zeros(1, 1)), "order"),
])
def test_bad_task_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -------------------------------------------------------------------------------------- CP-ALS, ranks


def test_cp_als_completes_a_low_rank_tensor_from_missing_entries():
    target = low_rank_tensor((6, 6, 6), 2, seed=3)
    task = prefix_completion(target, 100, seed=0)
    fit = cp_als(task.shape, task.indices, task.values[0], 2, restarts=3, seed=0)
    assert fit.mse < 1e-12
    assert relative_error(cp_to_tensor(fit.factors).unsqueeze(0), target.unsqueeze(0)).item() < 1e-4


@pytest.mark.parametrize("scale", [1e-9, 1e-170, 1e160])
def test_cp_als_and_the_als_rank_do_not_depend_on_the_unit(scale):
    """ALS is scale-equivariant; with an absolute ridge of 1e-12 the fit of data around 1e-9 stalled at error 0.09
    (rank None), at 1e-170 the tensor's norm underflowed (rank 0) and at 1e160 the mse overflowed (NaN)."""
    a, b, c = (torch.randn(d, 2, generator=torch.Generator().manual_seed(d), dtype=torch.float64) for d in (3, 4, 5))
    tensor = cp_to_tensor([a, b, c])
    unit = cp_als_full(tensor, 2)
    fit = cp_als_full(tensor * scale, 2)
    assert unit.relative_error < 1e-10 and fit.relative_error < 1e-10
    torch.testing.assert_close(cp_to_tensor(fit.factors) / scale, tensor, rtol=1e-8, atol=1e-8)
    assert tensor_rank_by_als(tensor * scale, max_rank=4) == tensor_rank_by_als(tensor, max_rank=4) == 2
    with pytest.raises(ValueError, match="finite"):
        tensor_rank_by_als(tensor * math.inf)


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank"), ({"ridge": 0.0}, "ridge"), ({"restarts": 0}, "restarts"),
    ({"indices": torch.tensor([[0, 9]])}, "out of range"), ({"values": torch.zeros(0)}, "values"),
])
def test_cp_als_refuses_bad_input(kwargs, match):
    args = {"shape": (3, 4), "indices": torch.tensor([[0, 1]]), "values": torch.ones(1), "rank": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        cp_als(args.pop("shape"), args.pop("indices"), args.pop("values"), args.pop("rank"), **args)


def test_matricize_groups_row_modes_first():
    w = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 2, 3, 4)
    m = matricize(w, [2, 0])
    assert m.shape == (1, 8, 3)
    assert torch.equal(m[0], w[0].permute(0, 2, 1).reshape(8, 3))
    with pytest.raises(ValueError, match="row_modes"):
        matricize(w, [3])


def test_matricization_ranks_of_a_cp_rank_two_tensor():
    w = low_rank_tensor((4, 4, 4, 4), 2, seed=0).unsqueeze(0)
    assert matricization_ranks(w, [[0], [0, 1], [1, 3]], tol=1e-9).tolist() == [[2, 2, 2]]
    eff = matricization_effective_ranks(w, [[0], [0, 1]])
    assert ((eff > 1.0) & (eff <= 2.0)).all()


def test_tensor_rank_by_als_and_by_pruning():
    assert tensor_rank_by_als(low_rank_tensor((4, 4, 4), 2, seed=5), tol=1e-4, max_rank=4) == 2
    model = CPFactorization((3, 4, 5), components=5)
    params = model.init(2, model.scale_for_entry_std(1.0), generators([0, 1]), dtype=torch.float64)
    params[0][0, :, :, 2:] *= 1e-3  # run 0: two large components and three tiny ones
    assert tensor_rank_by_pruning(model, params, tol=1e-2).tolist()[0] == 2
    assert tensor_rank_by_pruning(model, params, tol=1e-2).tolist()[1] >= 4
    for scale in (1e-60, 1e55):  # W scaled by 1e-180 and 1e165: its norm under- or overflowed (rank 0)
        scaled = [params[0] * scale]
        assert tensor_rank_by_pruning(model, scaled, tol=1e-2).tolist() == tensor_rank_by_pruning(
            model, params, tol=1e-2).tolist()


def test_pruning_rank_is_nan_for_a_tensor_without_numbers_and_at_most_every_component_otherwise():
    """A NaN tensor had rank −1, an integer a median would take; a tolerance below the rounding of the partial sums
    (a huge tensor against a fixed budget) gave −1 too, though all R components are the tensor itself."""
    model = CPFactorization((3, 4, 5), components=5)
    params = model.init(2, model.scale_for_entry_std(1.0), generators([0, 1]), dtype=torch.float64)
    params[0][0, :, :, 2:] *= 1e-3
    broken = [params[0].clone()]
    broken[0][1, 0, 0, 0] = math.nan
    ranks = tensor_rank_by_pruning(model, broken, tol=1e-2)
    assert ranks[0].item() == 2 and math.isnan(ranks[1].item())
    assert tensor_rank_by_pruning(model, params, tol=1e-30).tolist() == [5, 5]


# --------------------------------------------------------------------------------------------- science


def fit(model, task, std, lr, steps, record_every, seed=0):
    params = model.init(task.batch, model.scale_for_entry_std(std), generators([seed] * task.batch))

    def measure(p, loss):
        return {"norms": model.component_norms(p), "error": relative_error(model.end_to_end(p), task.target)}

    config = TrainConfig(max_steps=steps, loss_threshold=1e-7, record_every=record_every, record_per_decade=0,
                         progress=False)
    return train(model, task, params, global_rmsprop(eps=1e-6), torch.tensor([lr]), config, measure=measure)


def test_from_small_init_cp_learns_components_one_at_a_time_and_recovers_the_tensor():
    shape, rank = (6, 6, 6), 3
    task = prefix_completion(low_rank_tensor(shape, rank, seed=0, frobenius_norm=6**1.5), 100).to("cpu",
                                                                                                   torch.float32)
    state = fit(CPFactorization(shape), task, std=1e-3, lr=2e-2, steps=1600, record_every=10)
    assert state.records[-1]["error"].item() < 0.05

    norms = torch.stack([r["norms"][0] for r in state.records])  # (T, R) by fixed component index
    steps = torch.tensor([r["step"] for r in state.records])
    final = norms[-1]
    learned = final.argsort(descending=True)[:rank]
    assert final[learned[-1]] > 100 * final.sort(descending=True).values[rank]  # exactly `rank` components grew
    takeoff = [int(steps[(norms[:, r] >= 0.5 * final[r]).nonzero()[0]]) for r in learned.tolist()]
    assert takeoff[0] < takeoff[1] < takeoff[2]
    for k in range(rank - 1):  # when one component takes off, the next one is still near zero
        at = int((steps == takeoff[k]).nonzero()[0])
        assert norms[at, learned[k + 1]] < 0.1 * final[learned[k + 1]]


def test_rank_one_solvable_completion_ends_at_tensor_rank_one():
    # Razin & Cohen 2020 §5: order 3, dims 8, rank 1, ||W*|| = 1, 100 observations, R = 64, init std 1e-3
    shape = (8, 8, 8)
    task = prefix_completion(low_rank_tensor(shape, 1, seed=2), 100, seed=0).to("cpu", torch.float32)
    model = CPFactorization(shape)
    state = fit(model, task, std=1e-3, lr=1e-2, steps=1000, record_every=50)
    assert state.loss.item() <= 1e-7
    assert effective_rank(model.component_norms(state.params)).item() < 1.05
    assert tensor_rank_by_pruning(model, state.params, tol=1e-2).item() == 1
    assert tensor_rank_by_als(model.end_to_end(state.params)[0], tol=1e-2, max_rank=3) == 1
    assert state.records[-1]["error"].item() < 0.02


def test_component_norm_dynamics_match_theorem_one_on_a_small_lr_balanced_run():
    shape = (4, 4, 4)
    task = prefix_completion(low_rank_tensor(shape, 2, seed=0, frobenius_norm=8.0), 30, batch=2)
    model = CPFactorization(shape, components=4)
    params = model.balanced(model.init(2, model.scale_for_entry_std(0.3), generators([0, 1]), dtype=torch.float64))
    assert model.unbalancedness(params).max() < 1e-12
    trajectory = record_trajectory(model, task, params, lr=3e-3, steps=100)
    norms = model.component_norms(trajectory.at(-1)), model.component_norms(trajectory.at(0))
    moved = (norms[0] - norms[1]).abs() / norms[1]
    assert moved.max() > 0.02  # the norms really move during the check
    assert check_rates(model, trajectory).error.max() < 0.02
    # The check can fail: against the law of order 1 (σ̇ = γ, exponent 0 instead of 4/3) the same trajectory
    # is far off. (Order 2 is not: at these norms (≈0.2) its 2·σ differs from 3·σ^(4/3) by only ≈10%.)
    assert check_rates(model, trajectory, order=1).error.min() > 0.5


def test_unbalancedness_is_conserved_by_small_step_gradient_descent():
    shape = (4, 4, 4)
    task = prefix_completion(low_rank_tensor(shape, 2, seed=0, frobenius_norm=8.0), 30, batch=2)
    model = CPFactorization(shape, components=4)
    params = model.init(2, model.scale_for_entry_std(0.3), generators([0, 1]), dtype=torch.float64)
    config = TrainConfig(max_steps=100, loss_threshold=0.0, record_per_decade=0, progress=False)
    records = train(model, task, params, gradient_descent(), torch.full((2,), 3e-3), config,
                    measure=cp_metrics(model)).records
    first, last = records[0], records[-1]
    assert first["factor_column_norms"].shape == (2, 3, 4) and first["component_norms_by_index"].shape == (2, 4)
    moved = (last["component_norms_by_index"] - first["component_norms_by_index"]).abs().amax(1)
    assert (moved > 0.02 * first["component_norms_by_index"].amax(1)).all()
    assert torch.allclose(last["unbalancedness"], first["unbalancedness"], rtol=1e-3)


def test_predicted_rates_use_projections_of_the_negative_gradient_on_normalized_components():
    shape = (3, 4, 2)
    task = prefix_completion(low_rank_tensor(shape, 2), 12)
    model = CPFactorization(shape, components=3)
    params = model.init(1, model.scale_for_entry_std(0.5), generators([0]), dtype=torch.float64)
    w = model.end_to_end(params).requires_grad_(True)
    residual = w[0][tuple(task.indices.unbind(-1))] - task.values[0]
    (grad,) = torch.autograd.grad(residual.pow(2).mean(), w)
    factors = [f[0] / f[0].norm(dim=0) for f in model.factor_matrices(params)]
    units = torch.einsum("ir,jr,kr->rijk", *factors)
    expected = -torch.einsum("rijk,ijk->r", units, grad[0])
    sigma = model.component_norms(params)[0]
    rates = model.predicted_rates(params, task.dense_loss_and_grad(model.end_to_end(params))[1])[0]
    assert torch.allclose(rates, 3 * expected * sigma.pow(2 - 2 / 3))


def test_small_init_cp_follows_the_rank_one_trajectory_until_a_second_component_is_needed():
    shape = (4, 4, 4)
    target = low_rank_tensor(shape, 2, seed=0, frobenius_norm=8.0)
    task = prefix_completion(target, 30)
    model = CPFactorization(shape, components=16)
    params = model.init(1, model.scale_for_entry_std(1e-2), generators([0]), dtype=torch.float64)
    comparison = rank_one_trajectory_distance(model, task, params, lr=0.5, steps=1000, every=50)
    ratio = comparison.distance[:, 0] / comparison.norm[:, 0]
    grown = comparison.norm[:, 0] > 0.5 * 8.0
    assert grown.any() and ratio[grown].min() < 0.01  # W(t) is large and still on the rank-one trajectory
    assert ratio[-1] > 0.1  # later the CP run leaves it to fit a second component


def test_tf_command_trains_cp_and_writes_a_run_directory(tmp_path, capsys):
    from implicitrank.cli import main

    args = ["tf", "--shape", "4", "4", "4", "--rank", "1", "--num-observations", "30", "--components", "8",
            "--max-steps", "40", "--out", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0
    summaries = list((tmp_path / "runs").glob("*/summary.json"))
    assert len(summaries) == 1 and "reconstruction_error" in summaries[0].read_text()
    assert main([*args[:-3], "--components", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "components" in capsys.readouterr().err
