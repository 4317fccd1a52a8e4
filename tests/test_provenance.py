"""Provenance: every run directory, sweep table and claims file records where its numbers came from."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from implicitrank import __version__, provenance
from implicitrank.run import RunConfig, run_batch

KEYS = {"implicitrank", "git_commit", "git_dirty", "python", "torch", "numpy", "device", "dtype", "torch_threads",
        "seeds", "command", "started", "ended"}


def test_collect_records_versions_threads_seeds_command_and_times():
    record = provenance.collect(seeds=[0, 2], device="cpu", dtype="float64", started="2026-01-01T00:00:00+00:00")
    assert KEYS <= set(record)
    assert record["implicitrank"] == __version__ and record["torch"] == torch.__version__
    assert record["seeds"] == [0, 2] and record["dtype"] == "float64" and record["command"] == sys.argv
    assert record["torch_threads"] == torch.get_num_threads() and record["ended"] >= record["started"]
    assert record["git_commit"] is None or len(record["git_commit"]) == 40
    assert json.loads(json.dumps(record)) == record


def test_every_run_directory_records_its_provenance(tmp_path):
    config = RunConfig(shape=(6, 6), rank=1, num_observations=20, depth=2, max_steps=5, checkpoint_every=0, seed=3)
    run_batch([config], [tmp_path / "run"], progress=False, plots=False)
    record = json.loads((tmp_path / "run" / "summary.json").read_text())["provenance"]
    assert KEYS <= set(record) and record["seeds"] == [3] and record["device"] == "cpu"
    assert record["dtype"] == config.dtype and record["started"] <= record["ended"]


def test_reading_the_checkout_never_writes_its_index(tmp_path):
    """A plain ``git status`` rewrote a stale index under index.lock, which a killed job left in the user's checkout
    (their next commit failed on it); the provenance reads the checkout without git's optional locks."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "f"], ["commit", "-qm", "x"]):
        if args[0] == "add":
            (tmp_path / "f").write_text("a\n")
        subprocess.run([git, *args], cwd=tmp_path, env=env, check=True)
    index = tmp_path / ".git" / "index"
    written = index.stat().st_mtime_ns
    os.utime(tmp_path / "f", ns=(written + 5 * 10**9, written + 5 * 10**9))  # same content, newer stat: index stale
    state = provenance.checkout_state(tmp_path)
    assert state["dirty"] is False and len(state["commit"]) == 40
    assert index.stat().st_mtime_ns == written  # not rewritten (a plain `git status` rewrites it here)
    subprocess.run([git, "status", "--porcelain"], cwd=tmp_path, check=True, capture_output=True)
    assert index.stat().st_mtime_ns != written  # the control: what the plain command does to this checkout
