"""The Python API refuses bad input in one error naming the argument, where it computed a wrong number, a NaN
without a word, or failed deep inside (an audit of the public functions, 2026-12-03)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from implicitrank.baselines.cp_als import cp_als
from implicitrank.errors import UsageError
from implicitrank.factorizations import CPFactorization, MatrixFactorization, generators
from implicitrank.measure import schatten_norm, singular_values
from implicitrank.nn import DeepConv2d
from implicitrank.optim import gradient_descent
from implicitrank.run import RunConfig, run_batch
from implicitrank.tasks import Completion, complete_from_target, gaussian_sensing, low_rank_matrix
from implicitrank.train import TrainConfig, train

INDICES = torch.tensor([[0, 1], [1, 0], [1, 1]])
VALUES = torch.tensor([[1.0, 2.0, 3.0]])


def _completion(**fields):
    return Completion(**{"shape": (2, 2), "indices": INDICES, "values": VALUES} | fields)


CASES = {
    # what happened before, then the call
    "completion target of another shape (accepted)": (
        lambda: _completion(target=torch.zeros(1, 3, 3)), "target must be \\(B, \\*shape\\)"),
    "completion test_indices out of range (accepted, though documented to raise)": (
        lambda: _completion(test_indices=torch.tensor([[5, 0]]), test_values=torch.tensor([[1.0]])),
        "test_indices out of range"),
    "completion of zero runs (accepted)": (
        lambda: _completion(values=torch.zeros(0, 3)), "at least one run"),
    "4.5 observations (failed inside randperm)": (
        lambda: complete_from_target(low_rank_matrix(4, 4, 1), 4.5, [0]), "num_observations must be an integer"),
    "sensing batch 2.5 (failed inside torch)": (
        lambda: gaussian_sensing(low_rank_matrix(4, 4, 1), 5, batch=2.5), "batch must be an integer"),
    "sensing a 0-d target (failed inside torch)": (
        lambda: gaussian_sensing(torch.tensor(1.0), 5), "at least one dimension"),
    "cp_als float indices (truncated: 1.7 read as 1)": (
        lambda: cp_als((2, 2), INDICES.float() + 0.7, VALUES[0], 1), "integer dtype"),
    "cp_als a NaN value (the fit's mse was NaN)": (
        lambda: cp_als((2, 2), INDICES, torch.tensor([1.0, math.nan, 3.0]), 1), "values must be finite"),
    "cp_als tol NaN (ran every iteration)": (
        lambda: cp_als((2, 2), INDICES, VALUES[0], 1, tol=math.nan), "tol and mse_threshold must be finite"),
    "cp_als rank 1.5 (failed inside torch)": (
        lambda: cp_als((2, 2), INDICES, VALUES[0], 1.5), "rank must be an integer"),
    "CP components 2.5 (failed only in init)": (
        lambda: CPFactorization((2, 2, 2), components=2.5), "components \\(R\\) must be an integer"),
    "CP components NaN (failed only in init)": (
        lambda: CPFactorization((2, 2, 2), components=math.nan), "components \\(R\\) must be an integer"),
    "DeepConv2d stride 0 (failed in forward)": (
        lambda: DeepConv2d(2, 2, 3, 2, stride=0), "stride must be an int >= 1"),
    "DeepConv2d padding -1 (failed in forward)": (
        lambda: DeepConv2d(2, 2, 3, 2, padding=-1), "padding must be an int >= 0"),
    "singular_values top -1 (dropped the smallest value)": (
        lambda: singular_values(torch.eye(3)[None], top=-1), "top must be an integer >= 1"),
    "schatten_norm p NaN (returned NaN)": (
        lambda: schatten_norm(torch.ones(1, 3), math.nan), "p must be positive"),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused_naming_the_argument(name):
    call, words = CASES[name]
    with pytest.raises(ValueError, match=words):
        call()


def test_data_seeds_are_any_sequence_of_integers_and_nothing_else():
    """A list, tuple, range, array or tensor of seeds draws the same observation sets; a single number (TypeError:
    no len()), a 0-d array (the same), 0.5 (read as seed 0) or text (int()'s ValueError) is refused naming it."""
    target = low_rank_matrix(4, 4, 1)
    expected = complete_from_target(target, 5, [0, 3]).indices
    for seeds in ((0, 3), range(0, 6, 3), np.array([0, 3]), torch.tensor([0, 3])):
        assert torch.equal(complete_from_target(target, 5, seeds).indices, expected), seeds
    for seeds, words in ((3, "a sequence of integer seeds"), (np.array(2), "a sequence"), ([0.5], "integer seeds"),
                         (["a"], "integer seeds")):
        with pytest.raises(ValueError, match=f"data_seeds must be {words}"):
            complete_from_target(target, 5, seeds)


@pytest.mark.parametrize(("fields", "message"), [
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),  # accepted
    ({"seed": True}, "seed must be an integer, got True"),  # accepted as seed 1
    ({"lr": "0.1"}, "lr must be a number, got '0.1'"),  # the rest: a TypeError comparing a str with a number
    ({"rank": "5"}, "rank must be an integer, got '5'"),
    ({"target_norm": "3"}, "target_norm must be a number or None, got '3'"),
    ({"width": "3"}, "width must be an integer or None, got '3'"),
    ({"init_mean": "0"}, "init_mean must be a number, got '0'"),
])
def test_run_config_refuses_a_field_of_another_kind_naming_it(fields, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        RunConfig(**fields)


def test_run_config_stores_numpy_numbers_as_python_ones():
    """Its run_id hashes its JSON, which raised TypeError on a NumPy integer or float32."""
    given = RunConfig(data_seed=np.int64(3), lr=np.float32(0.5), init_scale=np.float64(0.25))
    assert type(given.data_seed) is int and type(given.lr) is float
    assert type(given.init_scale) is float  # a subclass of float, so it was kept as np.float64
    assert given.run_id == RunConfig(data_seed=3, lr=0.5, init_scale=0.25).run_id


def test_run_batch_refuses_one_directory_for_two_runs_before_writing(tmp_path):
    """The second run found the first one's config.json: an OutputExistsError, and a stray config.json left."""
    configs = [RunConfig(shape=(6, 5), rank=1, num_observations=10, max_steps=2, device="cpu", seed=s) for s in (0, 1)]
    for second in (tmp_path / "x", tmp_path / "y" / ".." / "x"):
        with pytest.raises(UsageError, match="run_dirs: .*x is given twice"):
            run_batch(configs, [tmp_path / "x", second], progress=False)
        assert not (tmp_path / "x").exists()


def test_train_without_parameters_or_a_task_says_what_is_missing():
    """``train(params=None)`` raised "'NoneType' object is not iterable" from deep inside."""
    model = MatrixFactorization(3, 3, 2)
    task = complete_from_target(low_rank_matrix(3, 3, 1), 5, [0])
    params = model.init(1, 1e-2, generators([0]))
    config = TrainConfig(max_steps=2, progress=False)
    with pytest.raises(UsageError, match="params must be given unless a state is resumed"):
        train(model, task.to(torch.float32), None, gradient_descent(), torch.tensor([0.1]), config)
    with pytest.raises(UsageError, match="task must be given unless an objective"):
        train(model, None, params, gradient_descent(), torch.tensor([0.1]), config)
    good = [CPFactorization((2, 2, 2), components=2).num_parameters, singular_values(torch.eye(3)[None], top=2)]
    assert good[0] == 12 and good[1].shape == (1, 2)  # the valid forms still work
