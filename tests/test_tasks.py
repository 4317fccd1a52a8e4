import math

import numpy as np
import pytest
import torch

from implicitrank.tasks import (
    Completion,
    Task,
    complete_from_target,
    gaussian_sensing,
    load_npz_completion,
    low_rank_matrix,
    movielens_completion,
    multi_indices,
    sample_observations,
)


def test_ground_truth_has_the_requested_rank_and_norm():
    w = low_rank_matrix(20, 15, 3, seed=4, frobenius_norm=7.0)
    s = torch.linalg.svdvals(w)
    assert int((s > 1e-9 * s[0]).sum()) == 3
    assert float(torch.linalg.matrix_norm(w)) == pytest.approx(7.0)
    assert float(torch.linalg.matrix_norm(low_rank_matrix(20, 15, 3))) == pytest.approx(300**0.5)


def test_observations_are_distinct_seeded_and_differ_between_seeds():
    a = sample_observations(100, 40, [0, 1])
    assert all(len(set(row.tolist())) == 40 for row in a)
    torch.testing.assert_close(a, sample_observations(100, 40, [0, 1]))
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("shape", [(7,), (6, 5), (3, 1, 4, 2), (2,) * 9])
def test_multi_indices_agree_with_numpy_unravel_index(shape):
    flat = torch.randint(math.prod(shape), (3, 11), generator=torch.Generator().manual_seed(0))
    expected = np.stack(np.unravel_index(flat.numpy(), shape), axis=-1)
    got = multi_indices(flat, shape)
    assert got.dtype == flat.dtype and got.shape == (3, 11, len(shape))
    np.testing.assert_array_equal(got.numpy(), expected)


def test_drawing_a_completion_task_does_not_import_sympy():
    """``torch.unravel_index`` imports torch's symbolic shapes and sympy on first use: a second of every process's
    start-up (issue 18). ``complete_from_target``, ``prefix_completion`` and ``cp_als_full`` do without it."""
    import subprocess
    import sys

    script = """
import sys, torch
from implicitrank.baselines.cp_als import cp_als_full
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.tasks.tensors import prefix_completion
complete_from_target(low_rank_matrix(6, 5, 2), 12, [0, 1])
prefix_completion(torch.ones(2, 3, 4), 5)
cp_als_full(torch.ones(2, 2, 2), 1, max_iterations=2)
print(sorted(m for m in ("sympy", "torch.fx.experimental.symbolic_shapes") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_completion_values_are_the_target_at_the_indices_and_mask_agrees():
    target = low_rank_matrix(6, 5, 2)
    task = complete_from_target(target, 12, [3])
    assert torch.equal(task.values[0], target[task.indices[0, :, 0], task.indices[0, :, 1]])
    assert int(task.observed_mask().sum()) == 12


def test_sensing_uses_gaussian_measurements_of_variance_one_over_n_squared():
    target = low_rank_matrix(30, 30, 2)
    task = gaussian_sensing(target, 500, seed=1)
    assert float(task.measurements.std()) == pytest.approx(1 / 30, rel=0.02)
    torch.testing.assert_close(task.values[0], task.measurements @ target.reshape(-1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rows": 5, "cols": 5, "rank": 6}, "rank"),
        ({"rows": 5, "cols": 5, "rank": 0}, "rank"),
        ({"rows": 3, "cols": 3, "rank": 1.5}, "rank must be in"),  # failed inside randn
        ({"rows": 3.5, "cols": 3, "rank": 1}, "shape must be positive integers"),
        ({"rows": 3, "cols": 3, "rank": 1, "dtype": torch.int64}, "dtype must be a floating-point"),  # was -1/0/1
        ({"rows": 3, "cols": 3, "rank": 1, "frobenius_norm": math.inf}, "frobenius_norm must be positive and"),
        ({"rows": 3, "cols": 3, "rank": 1, "frobenius_norm": math.nan}, "frobenius_norm must be positive and"),
    ],
)
def test_bad_ground_truth_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        low_rank_matrix(**kwargs)


def test_too_many_observations_and_nan_values_are_rejected():
    with pytest.raises(ValueError, match="num_observations"):
        sample_observations(10, 11, [0])
    with pytest.raises(ValueError, match="NaN"):
        Completion((2, 2), torch.tensor([[0, 0]]), torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="out of range"):
        Completion((2, 2), torch.tensor([[0, 2]]), torch.tensor([[1.0]]))


def test_every_task_rejects_non_finite_observed_values():
    from implicitrank.tasks import Sensing

    with pytest.raises(ValueError, match="NaN or inf"):
        Sensing((2, 2), torch.ones(1, 4), torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match="empty"):
        Sensing((2, 2), torch.ones(0, 4), torch.zeros(1, 0))


def test_npz_loader_reads_matrix_and_mask(tmp_path):
    matrix = np.arange(12, dtype=float).reshape(3, 4)
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 1] = mask[2, 3] = True
    np.savez(tmp_path / "p.npz", matrix=matrix, mask=mask)
    task = load_npz_completion(tmp_path / "p.npz")
    assert task.shape == (3, 4) and task.values.tolist() == [[1.0, 11.0]]
    torch.testing.assert_close(task.target[0], torch.from_numpy(matrix))


def test_npz_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data"):
        load_npz_completion(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", matrix=np.ones((2, 2)))
    with pytest.raises(ValueError, match="mask"):
        load_npz_completion(tmp_path / "bad.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="npz"):
        load_npz_completion(tmp_path / "garbage.npz")
    np.savez(tmp_path / "nan.npz", matrix=np.full((2, 2), np.nan), mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        load_npz_completion(tmp_path / "nan.npz")


def test_movielens_loader_splits_ratings_into_train_and_held_out(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{rng.integers(1, 944)}\t{rng.integers(1, 1683)}\t{rng.integers(1, 6)}\t88125{k}" for k in range(50)]
    (tmp_path / "u.data").write_text("\n".join(rows) + "\n")
    task = movielens_completion(tmp_path / "u.data", num_observations=30, seed=0)
    assert task.shape == (943, 1682)
    assert task.num_observations == 30 and task.test_values.shape == (1, 20)
    assert set(task.values[0].tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_movielens_loader_errors(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t3\n")
    with pytest.raises(ValueError, match="4 columns"):
        movielens_completion(tmp_path / "u.data")
    (tmp_path / "v.data").write_text("a\tb\tc\td\n")
    with pytest.raises(ValueError, match="MovieLens"):
        movielens_completion(tmp_path / "v.data")


def _every_task():
    from implicitrank.tasks.tensors import prefix_completion, rank_one_sensing

    target = low_rank_matrix(4, 3, 1, dtype=torch.float32)
    return [complete_from_target(target, 5, [0, 1]), gaussian_sensing(target, 6, batch=2),
            prefix_completion(target, 5, batch=2), rank_one_sensing(target, 6, batch=2)]


@pytest.mark.parametrize("task", _every_task(), ids=lambda t: type(t).__name__)
def test_every_task_follows_the_task_protocol_and_moves_like_a_tensor(task):
    assert isinstance(task, Task)
    assert (task.batch, task.num_observations, task.dtype) == (2, task.values.shape[1], torch.float32)
    calls = [task.to(torch.float64), task.to("cpu", torch.float64), task.to(dtype=torch.float64, device="cpu"),
             task.to(torch.float64, "cpu")]
    for moved in calls:
        assert moved.dtype == torch.float64 and moved.device == torch.device("cpu")
        for name, value in vars(task).items():
            if isinstance(value, torch.Tensor):  # floating tensors take the dtype, integer indices keep theirs
                assert getattr(moved, name).dtype == (torch.float64 if value.is_floating_point() else value.dtype)
                torch.testing.assert_close(getattr(moved, name), value, check_dtype=False)
    assert task.to("cpu").dtype == torch.float32
    with pytest.raises(ValueError, match="floating-point"):
        task.to(torch.int64)
    with pytest.raises(TypeError, match="device"):
        task.to(3)


@pytest.mark.parametrize("loop", ["train", "integrate"])
def test_a_float64_task_with_float32_parameters_is_refused_before_the_first_step(loop):
    from implicitrank.factorizations import MatrixFactorization, generators
    from implicitrank.flow import integrate
    from implicitrank.optim import gradient_descent
    from implicitrank.train import TrainConfig, train

    task = complete_from_target(low_rank_matrix(4, 3, 1), 5, [0, 1])  # float64
    model = MatrixFactorization(4, 3, depth=2)
    params = model.init(2, 0.1, generators([0, 1]))  # float32
    config = TrainConfig(max_steps=2, progress=False)
    run = {"train": lambda t, p: train(model, t, p, gradient_descent(), torch.full((2,), 0.1), config),
           "integrate": lambda t, p: integrate(model, t, p, config)}[loop]
    with pytest.raises(ValueError, match=r"task is torch.float64 on cpu but the parameters are torch.float32 on cpu; "
                                         r"move the task with task.to\('cpu', torch.float32\)"):
        run(task, params)
    with pytest.raises(ValueError, match="task has 2 runs but the parameters have 1"):
        run(task.to(torch.float32), [p[:1] for p in params])
    assert run(task.to(torch.float32), params).step == 2


def test_indices_must_be_integer_and_shared_or_one_set_per_run():
    values = torch.tensor([[1.0, 2.0]] * 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"indices must be .*B = 3"):  # run 0's set read as every run's
        Completion((2, 2), torch.tensor([[[0, 0], [1, 1]]]), values)
    with pytest.raises(ValueError, match="indices must be an integer tensor"):  # truncated to (0, 0), (1, 1)
        Completion((2, 2), torch.tensor([[0.9, 0.6], [1.2, 1.0]]), values[:1])
    with pytest.raises(ValueError, match="test_indices must be an integer tensor"):
        Completion((2, 2), torch.tensor([[0, 0], [1, 1]]), values[:1], test_indices=torch.tensor([[0.5, 1.0]]),
                   test_values=torch.tensor([[1.0]]))


def test_an_entry_observed_twice_counts_twice_in_the_dense_gradient_as_in_the_loss():
    """∇L of L = mean over observations, by autograd, against the closed form the training steps use."""
    task = Completion((2, 2), torch.tensor([[0, 0], [0, 0], [1, 1]]), torch.tensor([[1.0, 3.0, 2.0]],
                                                                                     dtype=torch.float64))
    w = torch.tensor([[[0.5, -1.0], [2.0, 0.25]]], dtype=torch.float64, requires_grad=True)
    loss, grad = task.dense_loss_and_grad(w.detach())
    reference = (w.reshape(1, -1)[:, [0, 0, 3]] - task.values).pow(2).mean(1)
    (expected,) = torch.autograd.grad(reference.sum(), w)
    torch.testing.assert_close(loss, reference.detach())
    torch.testing.assert_close(grad, expected)


def test_sensing_of_an_integer_target_is_refused_not_measured_with_truncated_matrices():
    with pytest.raises(ValueError, match="target must be a finite floating-point"):
        gaussian_sensing(torch.tensor([[3, 1], [2, 5]]), 4)  # measurements were cast to int: {-1, 0, 1}
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        gaussian_sensing(torch.ones(2, 2, dtype=torch.float64), 4, batch=-1)


def test_tasks_need_floating_values_and_sensing_one_dtype():
    from implicitrank.tasks import Sensing

    with pytest.raises(ValueError, match="values must be a floating-point"):  # task.to(float64) kept them int64
        Completion((2, 2), torch.tensor([[0, 0]]), torch.tensor([[3]]))
    with pytest.raises(ValueError, match="share a dtype"):
        Sensing((2, 2), torch.ones(1, 4, dtype=torch.float32), torch.ones(1, 1, dtype=torch.float64))
