"""The allocator's policy: freed memory kept for reuse cuts a training loop's page faults; the user's choice stands."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from implicitrank.allocator import allocator_environment

VARIABLES = tuple(allocator_environment())

# rkc steps of a depth-3, 100×100 completion batch of 8 runs (float32: 320 KB a factor), after 5 warm-up steps;
# prints the page faults per step and what keep_freed_memory returned.
LOOP = """
import json, resource, sys
from implicitrank.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "policy" else None
import torch
torch.set_num_threads(1)
from implicitrank import flow
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.train import TrainConfig
task = complete_from_target(low_rank_matrix(100, 100, 5, seed=0), 2000, list(range(8))).to("cpu", torch.float32)
model = MatrixFactorization(100, 100, depth=3)
params = model.init(8, torch.full((8,), 1e-2), generators(list(range(8))))
def steps(n, state=None):
    config = TrainConfig(max_steps=n, loss_threshold=0.0, record_per_decade=0, progress=False)
    return flow.integrate(model, task, None if state else params, config, method="rkc", rtol=1e-5, state=state)
state = steps(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
state = steps(65, state)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults_per_step": faults / (state.step - 5), "applied": applied}))
"""


def _clean_environment(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in VARIABLES} | {"OMP_NUM_THREADS": "1"} | extra


def _loop(mode: str, **extra: str) -> dict:
    done = subprocess.run([sys.executable, "-c", LOOP, mode], env=_clean_environment(**extra), capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallopt"), reason="the C library has no mallopt (not glibc)")
def test_keeping_freed_memory_cuts_the_page_faults_of_a_training_loop() -> None:
    """Measured on the paper's batch: ~670 page faults a step with glibc's defaults, ~13 with the policy; here a
    smaller batch, where at least a 5-fold cut is asked for."""
    default, policy = _loop("default"), _loop("policy")
    assert policy["applied"] is True
    assert policy["faults_per_step"] * 5 <= default["faults_per_step"], (default, policy)


def test_a_threshold_set_by_the_user_is_left_as_it_is() -> None:
    code = ("import os; from implicitrank.allocator import keep_freed_memory; applied = keep_freed_memory(); "
            "print(applied, os.environ.get('MALLOC_MMAP_THRESHOLD_'), os.environ['MALLOC_TRIM_THRESHOLD_'])")
    done = subprocess.run([sys.executable, "-c", code], env=_clean_environment(MALLOC_TRIM_THRESHOLD_="131072"),
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "None", "131072"]


def test_reproduce_hands_the_policy_to_the_processes_it_starts(tmp_path) -> None:
    """``reproduce`` (whose grids train batches) sets the environment its grid workers start with; the single-run
    commands leave the allocator alone."""
    code = ("import contextlib, os, sys; from implicitrank.cli import main\n"
            "with contextlib.suppress(SystemExit): main(sys.argv[1:])\n"
            f"print(*[os.environ.get(k) for k in {VARIABLES!r}])")
    for argv, expected in ((["reproduce", "--list"], list(allocator_environment().values())),
                           (["mf", "--depth", "0"], ["None", "None"])):  # refused in the command
        done = subprocess.run([sys.executable, "-c", code, *argv], env=_clean_environment(), capture_output=True,
                              text=True, cwd=tmp_path)
        assert done.stdout.split()[-2:] == expected, argv
