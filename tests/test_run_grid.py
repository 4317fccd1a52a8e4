"""run_grid: batches that cannot share a program train in parallel workers with the same results as one by one."""

from __future__ import annotations

import pytest

from implicitrank.experiments import _matrix_common
from implicitrank.experiments.arora2019_completion import grid_configs


def test_parallel_workers_give_the_results_of_serial_training(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = grid_configs(8, 1, "completion", 30, (2, 3), (1e-2, 1e-3), 1e-2, 40, 2)
    monkeypatch.setattr(_matrix_common, "PARALLEL_WORK", 10**12)
    serial = _matrix_common.run_grid(configs)
    used = []
    real_pool = _matrix_common.ProcessPoolExecutor

    def pool(workers, **options):
        used.append(workers)
        return real_pool(workers, **options)

    monkeypatch.setattr(_matrix_common, "PARALLEL_WORK", 0)
    monkeypatch.setattr(_matrix_common, "free_cores", lambda: 2)
    monkeypatch.setattr(_matrix_common, "policy_threads", lambda: 1)
    monkeypatch.setattr(_matrix_common, "ProcessPoolExecutor", pool)
    parallel = _matrix_common.run_grid(configs)
    assert used == [2]  # two batches (depths 2 and 3), two free cores
    assert [r.config for r in parallel] == configs
    for a, b in zip(serial, parallel):
        assert a.summary["train_loss"] == b.summary["train_loss"] and a.summary["steps"] == b.summary["steps"]
        assert a.summary["reconstruction_error"] == b.summary["reconstruction_error"]
        assert [row["step"] for row in a.rows] == [row["step"] for row in b.rows]
