"""The thread policy: one thread for small problems, the free cores (never more) for large ones, --threads over both."""

from __future__ import annotations

import os

import pytest
import torch

from implicitrank import threads


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch):
    """The policy with no explicit choice made (a test calling main with --threads would leave one) and
    torch's thread count and the pinning environment restored afterwards."""
    monkeypatch.setattr(threads, "_explicit", None)
    for name in threads.THREAD_VARIABLES:  # recorded, so that monkeypatch restores them
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    previous = torch.get_num_threads()
    yield threads
    torch.set_num_threads(previous)


def test_small_problems_run_on_one_thread_and_large_ones_on_the_free_cores(policy, monkeypatch) -> None:
    monkeypatch.setattr(policy, "free_cores", lambda: 3)
    assert policy.policy_threads(100 * 100 * 100) == 1
    assert policy.policy_threads(72 * 100 * 100 * 100) == 1
    assert policy.policy_threads(policy.LARGE_WORK) == 3


def test_free_cores_leave_out_the_cores_other_processes_keep_busy(policy, monkeypatch) -> None:
    monkeypatch.setattr(policy, "available_cores", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for busy, free in [(0, 2), (1, 1), (5, 1)]:
        monkeypatch.setattr(policy, "busy_cores", lambda busy=busy: busy)
        assert policy.free_cores() == free
    # Pinned to 2 of 8 cores: busy threads the 6 other cores can hold do not count against ours.
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(policy, "busy_cores", lambda: 6)
    assert policy.free_cores() == 2
    monkeypatch.setattr(policy, "busy_cores", lambda: 7)
    assert policy.free_cores() == 1


def test_busy_cores_counts_runnable_threads_other_than_the_reader(policy) -> None:
    busy = policy.busy_cores(samples=3, interval=0.0)
    assert 0 <= busy and isinstance(busy, int)
    assert 1 <= policy.free_cores() <= policy.available_cores()


def test_an_explicit_choice_overrides_the_policy_and_use_policy_sets_torch(policy, monkeypatch) -> None:
    monkeypatch.setattr(policy, "free_cores", lambda: 1)
    torch.set_num_threads(2)
    assert policy.use_policy(0.0) == 1
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    policy.pin_threads(2)
    assert policy.policy_threads(0.0) == 2 and policy.policy_threads(policy.LARGE_WORK) == 2
    assert torch.get_num_threads() == 2 and os.environ["MKL_NUM_THREADS"] == "2"


def test_a_small_run_trains_on_one_thread_whatever_torch_was_set_to(policy, monkeypatch, tmp_path) -> None:
    from implicitrank import run

    seen = []
    original = run.train_configured

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(run, "train_configured", spy)
    torch.set_num_threads(2)
    config = run.RunConfig(shape=(6, 6), rank=1, num_observations=20, depth=2, max_steps=5, checkpoint_every=0)
    run.run_batch([config], [tmp_path / "run"], progress=False, plots=False)
    assert seen == [1] and torch.get_num_threads() == 2


def test_an_explicit_count_for_a_while_overrides_the_policy_of_the_runs_inside(policy) -> None:
    with policy.torch_threads(2, explicit=True):
        assert policy.policy_threads(0.0) == 2 and torch.get_num_threads() == 2
    assert policy.policy_threads(0.0) == 1
    with policy.torch_threads(2):  # a cap that is not the user's choice leaves the policy alone
        assert policy.policy_threads(0.0) == 1
