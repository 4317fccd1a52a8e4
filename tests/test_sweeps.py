"""Sweeps: specs and their bad input, grouping into batched jobs, resume after a kill, failures, locks.

Tiny runs (12×12, rank 1, 60 observations, a few hundred steps) keep these fast; the Slurm executor
is tested against a real cluster in test_sweeps_slurm.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import ctrl_c_group, group_alive, wait_for

import implicitrank.run
from implicitrank import results
from implicitrank.cli import main
from implicitrank.errors import OutputExistsError
from implicitrank.run import RunConfig
from implicitrank.sweeps import (
    LocalExecutor,
    SerialExecutor,
    collect_rows,
    group_runs,
    load_spec,
    parse_spec,
    plan_sweep,
    run_job,
    run_sweep,
    sweep_status,
)
from implicitrank.sweeps.state import hold_lock, run_lock_path, sweep_lock
from implicitrank.threads import thread_environment

REPO = Path(__file__).resolve().parents[1]
TINY = {"shape": [12, 12], "rank": 1, "num_observations": 60, "max_steps": 300, "checkpoint_every": 50,
        "record_per_decade": 5}


def tiny(name: str = "tiny", base: dict | None = None, **sections):
    return parse_spec({"name": name, "base": {**TINY, **(base or {})}, **sections})


def table(out: Path) -> list[dict]:
    """The collected table without wall-clock times (the only column that may differ between two runs)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in collect_rows(out)]


SERIAL = SerialExecutor(threads=1)


# --- specs -----------------------------------------------------------------------------------------------

def test_spec_crosses_cartesian_axes_with_zipped_groups_and_expands_ranges():
    spec = tiny(axes={"depth": [2, 3], "seed": "0..2"},
                zip=[{"shape": [[12, 12], [10, 14]], "num_observations": [60, 70]}])
    configs = spec.configs()
    assert len(configs) == 2 * 3 * 2
    combos = {(c.depth, c.seed, c.shape, c.num_observations) for c in configs}
    assert combos == {(d, s, shape, k) for d in (2, 3) for s in (0, 1, 2)
                      for shape, k in (((12, 12), 60), ((10, 14), 70))}
    assert all(c.max_steps == 300 and c.rank == 1 for c in configs)  # the base
    assert len({c.run_id for c in configs}) == len(configs)


def test_run_ids_do_not_depend_on_how_the_spec_is_written():
    as_ints = tiny(axes={"init_scale": [1, 2], "seed": "0..1"}).configs()
    as_floats = tiny(axes={"seed": [0, 1], "init_scale": [1.0, 2.0]}).configs()
    assert {c.run_id for c in as_ints} == {c.run_id for c in as_floats}


def test_a_field_added_later_leaves_earlier_run_ids_unchanged():
    # Ids as implicitrank computed them before flow_method existed (commit 1551fa7): finished runs stay found.
    assert RunConfig().run_id == "ed6b0bd3a5a2"
    assert RunConfig(optimizer="gradient-flow", depth=2, seed=3).run_id == "1afe1d79cb01"
    rkc = RunConfig(optimizer="gradient-flow", depth=2, seed=3, flow_method="rkc")
    assert rkc.run_id != "1afe1d79cb01" and RunConfig.from_dict(rkc.to_dict()).run_id == rkc.run_id


def test_a_configs_dict_is_what_dataclasses_asdict_gives_and_its_id_follows_its_fields():
    # to_dict copies no field deeply (every field is a number, string, None or tuple of ints) and run_id is computed
    # once per frozen configuration: both must give what the deep copy and a fresh hash give.
    configs = [RunConfig(), RunConfig(model="cp", shape=(4, 5, 6), rank=2, num_observations=60, components=3),
               RunConfig(optimizer="gradient-flow", flow_method="rkc", target_norm=2.5, seed=7)]
    for config in configs:
        assert config.to_dict() == dataclasses.asdict(config)
        assert config.to_dict() is not config.to_dict()  # a caller may change its dict
        assert config.run_id == RunConfig.from_dict(config.to_dict()).run_id  # cached: the same as a fresh hash
        changed = dataclasses.replace(config, seed=config.seed + 1)
        assert changed.run_id != config.run_id and changed.run_id == RunConfig.from_dict(changed.to_dict()).run_id


def test_example_spec_loads():
    spec = load_spec(REPO / "examples" / "sweeps" / "arora2019-small.toml")
    assert spec.name == "arora2019-small"
    assert len(spec.configs()) == 3 * 2 * 2 * 3


def test_runs_with_a_data_file_and_no_shape_take_the_files_shape(tmp_path):
    """As ``mf --data`` does; the default 100×100 made every run fail ("holds a 6×5 problem, not 100×100; leave shape
    out", with shape left out), and a missing file went unnoticed until the runs."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", matrix=np.outer(rng.standard_normal(6), rng.standard_normal(5)),
             mask=rng.random((6, 5)) < 0.6)
    spec = parse_spec({"base": {"data": str(tmp_path / "x.npz")}, "axes": {"seed": "0..1"}})
    observed = int(np.load(tmp_path / "x.npz")["mask"].sum())  # recorded, not the default 2000
    assert [(c.shape, c.num_observations) for c in spec.configs()] == [((6, 5), observed)] * 2
    with pytest.raises(ValueError, match=f"does not match the data file .* observes {observed} entries"):
        parse_spec({"base": {"data": str(tmp_path / "x.npz"), "num_observations": 7},
                    "axes": {"seed": "0..1"}}).configs()
    with pytest.raises(ValueError, match="data: no such file"):
        parse_spec({"base": {"data": str(tmp_path / "none.npz")}, "axes": {"seed": "0..1"}}).configs()


@pytest.mark.parametrize("data, message", [
    ({"base": {"depht": 3}}, "base.depht: unknown config field"),
    ({"axes": {"sede": [1, 2]}}, "axes.sede: unknown config field"),
    ({"axes": {"seed": []}}, "axes.seed is empty"),
    ({"axes": {"seed": "4..0"}}, "is empty (B < A)"),
    ({"axes": {"seed": "a few"}}, "integer range 'A..B'"),
    ({"axes": {"seed": 3}}, "put single values in [base]"),
    ({"axes": {"depth": ["3"]}}, "axes.depth: expected int"),
    ({"axes": {"lr": [True]}}, "axes.lr: expected float"),
    ({"zip": [{"depth": [2, 3], "seed": [0, 1, 2]}]}, "zipped axes must have equal lengths"),
    ({"zip": [{}]}, "zip[0] is empty"),
    ({"axes": {"seed": [0, 1]}, "zip": {"seed": [2, 3]}}, "already an axis"),
    ({"axes": {"rank": [1, 20]}}, "the run with {'rank': 20} is not a valid configuration"),
    ({"axes": {"seed": [0, 0]}}, "are the same run"),
    # a field its optimizer or model ignores: the table would show runs differing in it with identical numbers
    ({"base": {"optimizer": "gd"}, "axes": {"eps": [1e-3, 1e-4]}}, "eps applies to optimizer global-rmsprop only"),
    ({"axes": {"rtol": [1e-4, 1e-5]}}, "rtol applies to optimizer gradient-flow only, not global-rmsprop"),
    ({"base": {"optimizer": "gradient-flow"}, "axes": {"lr": [0.1, 0.2]}}, "lr applies to optimizer gd | "),
    ({"axes": {"components": [3, 4]}}, "components applies to model cp | ht only, not matrix"),
    ({"base": {"tree": "balanced"}, "axes": {"seed": [0, 1]}}, "tree applies to model ht only, not matrix"),
    ({"sweep": {}}, "unknown sections ['sweep']"),
    ({"slurm": {"partitoin": "x"}}, "slurm: unknown options ['partitoin']"),
    ({"slurm": {"cpus": 0}}, "slurm.cpus must be an integer >= 1"),
    # submitit has Slurm signal a job 90 s before its limit (Slurm may signal up to 60 s early): a 1- or 2-minute
    # job was signalled at once and requeued without a step done, until its requeues ran out
    ({"slurm": {"time": 2}}, "slurm.time must be an integer >= 3 (minutes"),
])
def test_bad_specs_are_refused_naming_the_problem(data, message):
    with pytest.raises(ValueError) as err:
        parse_spec({**data, "base": {**TINY, **data.get("base", {})}}).configs()
    assert message in str(err.value)


def test_bad_files_and_executors_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="spec: no such file"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("[axes\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(tmp_path / "broken.toml")
    with pytest.raises(ValueError, match=r"executor must be one of \['serial', 'local', 'slurm'\]"):
        run_sweep(tiny(), tmp_path / "out", "cluster")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        LocalExecutor(workers=0)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        thread_environment(0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["flag", "spec"])
def test_a_slurm_time_limit_too_short_to_run_is_refused_in_one_line(tmp_path, capsys, where):
    # with --time 1 submitit's requeue signal (90 s before the limit) came at once: 'Ran 0 minutes out of requested 1
    # minutes', requeued until max_requeues ran out, never a step further; refused before anything is submitted
    spec = tmp_path / "spec.toml"
    spec.write_text('[base]\nshape = [8, 8]\nrank = 1\nnum_observations = 30\nmax_steps = 10\n'
                    + ("[slurm]\ntime = 2\n" if where == "spec" else ""))
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--executor", "slurm", "--no-progress",
                 *(["--time", "1"] if where == "flag" else [])])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("implicitrank sweep: error: slurm.time must be an integer >= 3 (minutes"), lines
    assert f"got {1 if where == 'flag' else 2}" in lines[0] and not out.exists()


def test_slurm_executor_without_slurm_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="executor: 'slurm' needs Slurm's commands"):
        run_sweep(tiny(axes={"seed": [0, 1]}), tmp_path / "out", "slurm")
    assert not (tmp_path / "out").exists()


# --- planning --------------------------------------------------------------------------------------------

def test_grouping_puts_runs_differing_only_in_per_run_values_into_one_job(tmp_path):
    spec = tiny(axes={"depth": [2, 3], "num_observations": [60, 80], "seed": "0..2", "init_scale": [1e-3, 1e-2],
                      "lr": [1e-2, 5e-3], "data_seed": [0, 1]})
    plan = plan_sweep(spec, tmp_path)
    jobs = plan.jobs(plan.configs)
    assert len(jobs) == 4  # depth × number of observations
    for job in jobs:
        assert len(job.configs) == 3 * 2 * 2 * 2
        assert len({(c.depth, c.num_observations) for c in job.configs}) == 1
        assert job.run_dirs == tuple(tmp_path / "runs" / c.run_id for c in job.configs)
    assert sorted(c.run_id for j in jobs for c in j.configs) == sorted(c.run_id for c in plan.configs)

    assert [len(j) for j in group_runs(plan.configs, max_batch=10)] == [10, 10, 4] * 4
    assert [len(j) for j in group_runs(plan.configs, batch=False)] == [1] * 96
    filled = group_runs(plan.configs[:24], min_jobs=5)  # one batch key halved until 5 cores have work
    assert sorted(len(j) for j in filled) == [3, 3, 6, 6, 6]
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        group_runs(plan.configs, max_batch=0)


def test_sensing_runs_with_different_data_seeds_are_not_batched(tmp_path):
    """A sensing batch shares one measurement set, so its data seed is not a per-run value."""
    plan = plan_sweep(tiny(base={"task": "sensing"}, axes={"data_seed": [0, 1], "seed": [0, 1]}), tmp_path)
    assert sorted(len(j.configs) for j in plan.jobs(plan.configs)) == [2, 2]


def test_batched_results_equal_separate_runs(tmp_path):
    spec = tiny(axes={"depth": [2, 3], "seed": [0, 1], "init_scale": [1e-3, 1e-2]})
    batched = run_sweep(spec, tmp_path / "batched", SERIAL, progress=False)
    separate = run_sweep(spec, tmp_path / "separate", SERIAL, batch=False, progress=False)
    assert len(batched.jobs) == 2 and len(separate.jobs) == 8
    assert batched.complete and separate.complete
    rows = table(tmp_path / "batched")
    assert len(rows) == 8 and rows == table(tmp_path / "separate")


# --- resume, failures, locks ------------------------------------------------------------------------------

def _local_sweep(tmp_path: Path, name: str, body: str) -> tuple[Path, Path, list[str]]:
    """The spec NAME.toml (``name`` and ``body``), its sweep directory and the command that runs it on two local
    one-run workers."""
    spec_path, out = tmp_path / f"{name}.toml", tmp_path / name
    spec_path.write_text(f'name = "{name}"\n{body}')
    return spec_path, out, [sys.executable, "-m", "implicitrank.cli", "sweep", str(spec_path), "--out", str(out),
                            "--executor", "local", "--workers", "2", "--no-batch", "--no-progress"]


def test_killed_local_sweep_reruns_to_the_same_table_with_no_run_lost_or_duplicated(tmp_path):
    spec_path, out, command = _local_sweep(tmp_path, "kill", '[base]\nshape = [12, 12]\nrank = 1\n'
                                           'num_observations = 60\nmax_steps = 1000\ncheckpoint_every = 25\n'
                                           'record_per_decade = 5\n[axes]\ndepth = [2, 3]\nseed = "0..1"\n')
    runs = out / "runs"
    log = tmp_path / "killed.log"
    with log.open("w") as stream:
        sweep = subprocess.Popen(command, start_new_session=True, stdout=stream, stderr=stream)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sweep.poll() is None:
            done = {p.parent.name for p in runs.glob("*/summary.json")}
            started = {p.parent.name for p in runs.glob("*/checkpoint.pt")} - done
            if done and started:  # halfway: a run finished and another one is checkpointed mid-way
                break
            time.sleep(0.05)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and its workers
        sweep.wait()
        while group_alive(sweep.pid):  # the workers, orphaned, may take a moment to go
            time.sleep(0.05)
    # What the kill left on disk: a run may have finished between the last look and the kill.
    done = {p.parent.name for p in runs.glob("*/summary.json")}
    started = {p.parent.name for p in runs.glob("*/checkpoint.pt")} - done
    assert done and started, f"the sweep ended before it could be killed halfway: {log.read_text()}"
    assert len(done) < 4

    rerun = run_sweep(spec_path, out, LocalExecutor(workers=2), batch=False, progress=False)
    assert rerun.complete, rerun.summary()
    assert {o.run_id for o in rerun.outcomes} == {c.run_id for c in rerun.plan.configs} - done
    assert all(o.threads == 1 for o in rerun.outcomes if o.status == "done")  # each worker pinned to its core
    resumed = {o.run_id: o.resumed_from for o in rerun.outcomes}
    assert all(resumed[run_id] > 0 for run_id in started)

    reference = run_sweep(spec_path, tmp_path / "uninterrupted", SERIAL, progress=False)
    rows = table(out)
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4
    assert sorted(p.name for p in runs.iterdir()) == sorted(c.run_id for c in reference.plan.configs)
    assert rows == table(tmp_path / "uninterrupted")


def _killed_while_writing(path: Path) -> None:
    """Leave beside ``path`` what a process killed (SIGKILL) in the middle of ``results.atomic_write(path, ...)``
    leaves: its temporary file, and no ``path``."""
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom implicitrank import results\n"
            "results.atomic_write(Path(sys.argv[1]), lambda h: (h.write(b'{'), h.flush(), "
            "os.kill(os.getpid(), signal.SIGKILL)))\n")
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == -signal.SIGKILL
    assert not path.exists()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")] != []


def test_a_sweep_killed_as_it_wrote_a_run_config_or_its_record_reruns_to_the_same_table(tmp_path):
    """A kill as a worker starts a run can land inside the write of the run's config.json, which leaves only
    ``.config.json.XXXXXXXX.tmp``: the rerun failed that run, 'not empty and not a run directory' (CI hit it in the
    kill test above). Likewise a sweep killed as it wrote sweep.json was refused as another command's output, and a
    checkpoint's half-written file stayed beside its run for good."""
    spec = tiny(base={"max_steps": 20}, axes={"seed": [0, 1]})
    reference = run_sweep(spec, tmp_path / "uninterrupted", SERIAL, progress=False)
    assert reference.complete

    out = tmp_path / "killed"
    _killed_while_writing(out / "sweep.json")
    assert run_sweep(spec, out, SERIAL, progress=False).complete
    run_dir = out / "runs" / reference.plan.configs[0].run_id
    shutil.rmtree(run_dir)
    _killed_while_writing(run_dir / "config.json")
    assert [p.name[:13] for p in run_dir.iterdir()] == [".config.json."]  # all the directory holds
    rerun = run_sweep(spec, out, SERIAL, progress=False)
    assert rerun.complete, rerun.summary()
    assert [o.run_id for o in rerun.outcomes] == [run_dir.name]
    assert table(out) == table(tmp_path / "uninterrupted")

    # killed as it wrote the run's checkpoint: the half-written file, as large as a checkpoint, was kept for good
    shutil.rmtree(run_dir)
    results.write_json(run_dir / "config.json", results.read_json(tmp_path / "uninterrupted" / "runs" / run_dir.name
                                                                  / "config.json"))
    _killed_while_writing(run_dir / "checkpoint.pt")
    assert run_sweep(spec, out, SERIAL, progress=False).complete
    assert not list(out.glob("**/.*.tmp"))
    assert table(out) == table(tmp_path / "uninterrupted")


def test_only_the_temporary_names_of_killed_writes_count_as_leftovers_a_users_own_dot_tmp_file_is_kept(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".notes.tmp").write_text("mine")
    with pytest.raises(OutputExistsError, match="is not empty and not a run directory"):
        results.prepare_run_dir(run_dir, {"seed": 0}, resume=False)
    assert [p.name for p in run_dir.iterdir()] == [".notes.tmp"]


def test_ctrl_c_on_a_local_sweep_saves_its_running_runs_and_says_how_to_continue(tmp_path):
    """Ctrl-C at a terminal reaches the sweep and its workers: an idle worker printed a KeyboardInterrupt traceback,
    a busy one kept only its last scheduled checkpoint (none here), and the message did not say how to continue."""
    _, out, command = _local_sweep(tmp_path, "ctrl-c", '[base]\nshape = [10, 10]\nrank = 2\nnum_observations = 30\n'
                                   'optimizer = "gd"\nlr = 0.01\nloss_threshold = 0\nmax_steps = 10000000\n'
                                   'checkpoint_every = 0\n[axes]\ndepth = [2, 3, 4]\n')
    runs = out / "runs"
    sweep = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    wait_for(lambda: len(list(runs.glob("*/config.json"))) == 2, sweep)
    time.sleep(1.0)  # both workers training, the third run queued
    err = ctrl_c_group(sweep)
    assert sweep.returncode == 130 and "Traceback" not in err, err
    assert f"to continue, run: implicitrank sweep {out}" in err, err
    saved = [torch.load(path, weights_only=False)["step"] for path in runs.glob("*/checkpoint.pt")]
    assert len(saved) == 2 and min(saved) > 0, saved  # the two running runs, at the steps they reached


def test_batch_killed_between_two_runs_checkpoints_resumes_each_run_from_its_own(tmp_path, monkeypatch):
    """A job killed after writing one run's checkpoint but not the next run's leaves them at different
    steps; the runs resume in groups of equal step and end exactly as an uninterrupted batch."""
    plan = plan_sweep(tiny(axes={"seed": [0, 1]}), tmp_path / "killed")
    job = plan.jobs(plan.configs)[0]
    save = implicitrank.run._save_checkpoints

    def killed_after_the_first_run(state, dirs, *seconds):
        save(state, dirs[:1], *seconds)
        raise KeyboardInterrupt  # the kill, before the second run's checkpoint was written

    monkeypatch.setattr(implicitrank.run, "_save_checkpoints", killed_after_the_first_run)
    with pytest.raises(KeyboardInterrupt):
        run_job(job)
    monkeypatch.setattr(implicitrank.run, "_save_checkpoints", save)
    assert [(d / "checkpoint.pt").exists() for d in job.run_dirs] == [True, False]

    assert [(o.status, o.resumed_from) for o in run_job(job)] == [("done", 50), ("done", None)]
    reference = run_sweep(plan.spec, tmp_path / "uninterrupted", SERIAL, progress=False)
    assert reference.complete
    for config in plan.configs:
        resumed, uninterrupted = (results.read_metrics(d / "runs" / config.run_id)
                                  for d in (tmp_path / "killed", tmp_path / "uninterrupted"))
        assert resumed == uninterrupted


def test_a_sweep_with_nothing_to_run_draws_no_progress_bar(tmp_path, capsys, monkeypatch):
    """A rerun of a finished sweep drew an empty bar, ``sweep tiny: 0run [00:00, ?run/s]``, on stderr."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    spec = tiny(base={"max_steps": 20}, axes={"seed": [0, 1]})
    out = tmp_path / "sweep"
    assert run_sweep(spec, out, SERIAL).complete
    assert "sweep tiny" in capsys.readouterr().err  # the bar is drawn while there are runs
    assert run_sweep(spec, out, SERIAL).jobs == []
    assert capsys.readouterr().err == ""


def test_failed_run_records_its_error_and_only_retry_failed_reruns_it(tmp_path):
    data = tmp_path / "observed.npz"
    spec = tiny(axes={"data": [None, str(data)]})
    out = tmp_path / "sweep"
    first = run_sweep(spec, out, SERIAL, progress=False)
    assert [o.status for o in first.outcomes] == ["done", "failed"]
    failed_id = first.outcomes[1].run_id
    error = results.read_json(out / "runs" / failed_id / "error.json")
    assert error["type"] == "MissingInputError" and "observed.npz" in error["message"]
    assert "Traceback" in error["traceback"] and "load_npz_completion" in error["traceback"]
    assert [s.status for s in sweep_status(out)] == ["done", "failed"]

    assert run_sweep(spec, out, SERIAL, progress=False).jobs == []  # a failed run is not retried by default

    rng = np.random.default_rng(0)
    matrix = np.outer(rng.standard_normal(12), rng.standard_normal(12))
    mask = np.zeros(144, dtype=bool)
    mask[rng.permutation(144)[:TINY["num_observations"]]] = True  # the spec's count: a .npz fixes its observations
    np.savez(data, matrix=matrix, mask=mask.reshape(12, 12))
    retried = run_sweep(spec, out, SERIAL, retry_failed=True, progress=False)
    assert [(o.run_id, o.status) for o in retried.outcomes] == [(failed_id, "done")]
    assert retried.complete and not (out / "runs" / failed_id / "error.json").exists()


def test_a_run_the_batch_refuses_fails_alone_and_the_runs_batched_with_it_train(tmp_path):
    """run_batch refuses a batch where one run's W(0) underflows (depth 100 from init 1e-36), before anything is
    written: the sweep failed every run batched with it, the healthy init 1e-3 too. It now trains them one by one."""
    spec = tiny(axes={"init_scale": [1e-3, 1e-36]}, base={"depth": 100, "init": "gaussian", "max_steps": 20})
    out = tmp_path / "sweep"
    outcome = run_sweep(spec, out, SERIAL, progress=False)
    assert len(outcome.jobs) == 1  # one batch: the runs differ in a per-run value only
    assert [o.status for o in outcome.outcomes] == ["done", "failed"]
    error = results.read_json(out / "runs" / outcome.outcomes[1].run_id / "error.json")
    assert error["type"] == "UsageError" and "init_scale 1e-36" in error["message"] and "underflows" in error["message"]
    assert not (out / "runs" / outcome.outcomes[0].run_id / "error.json").exists()


def test_a_run_without_final_numbers_is_said_so_in_the_sweep_status_and_report(tmp_path):
    """A run whose final unobserved_error is NaN (an .npz with 0 at its unobserved entries) ended as
    metrics_not_finite: ``sweep status`` listed it as plain done and the report's problem list left it out."""
    from implicitrank.reports import write_report

    rng = np.random.default_rng(0)
    mask = rng.random((12, 12)) < 0.5
    np.savez(tmp_path / "x.npz", matrix=np.where(mask, np.outer(rng.standard_normal(12), rng.standard_normal(12)),
                                                 0.0), mask=mask)
    spec = tiny(base={"data": str(tmp_path / "x.npz"), "num_observations": int(mask.sum()), "init_scale": 1.0,
                      "loss_threshold": 0.1})
    out = tmp_path / "sweep"
    assert run_sweep(spec, out, SERIAL, progress=False).complete
    (state,) = sweep_status(out)
    assert state.status == "done" and "unobserved_error is NaN/inf" in state.detail
    page = write_report(out).read_text()
    assert "Runs that failed, diverged, lack final numbers" in page and "unobserved_error is NaN/inf" in page


def test_two_sweeps_cannot_write_one_directory_and_locked_runs_are_left_to_their_holder(tmp_path):
    spec = tiny(axes={"seed": [0, 1]}, base={"max_steps": 20})
    out = tmp_path / "sweep"
    run_sweep(spec, out, SERIAL, dry_run=True, progress=False)
    assert not out.exists()  # a dry run writes nothing
    out.mkdir()
    with sweep_lock(out):
        with pytest.raises(FileExistsError, match=f"pid {os.getpid()}"):
            run_sweep(spec, out, SERIAL, progress=False)
    plan = plan_sweep(spec, out)
    busy = plan.configs[1].run_id
    with hold_lock(run_lock_path(out / ".locks", busy)):
        report = run_sweep(spec, out, SERIAL, progress=False)  # the planner leaves a locked run alone
        assert [o.run_id for o in report.outcomes] == [plan.configs[0].run_id]
        assert {s.run_id: s.status for s in sweep_status(out)}[busy] == "running"
        assert f"pid {os.getpid()}" in sweep_status(out)[1].detail
        # and so does a job that finds it locked only when it starts
        assert [o.status for o in run_job(plan.jobs(plan.configs[1:])[0])] == ["running"]
    assert run_sweep(spec, out, SERIAL, progress=False).complete

    other = tmp_path / "other"
    (other / "notes").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not empty and holds no sweep.json"):
        run_sweep(spec, other, SERIAL, progress=False)
    with pytest.raises(FileExistsError, match="holds a sweep of other runs"):
        run_sweep(tiny(axes={"seed": [5]}), out, SERIAL, progress=False)


def test_command_line_runs_reports_and_collects(tmp_path, capsys):
    spec_path = tmp_path / "cli.toml"
    spec_path.write_text('[base]\nshape = [12, 12]\nrank = 1\nnum_observations = 60\nmax_steps = 50\n'
                         '[axes]\nseed = "0..1"\ndepth = [2, 3]\n')  # axes not in alphabetical order
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec_path), "--out", str(out), "--dry-run"]) == 0
    assert "4 runs" in capsys.readouterr().out and not out.exists()
    assert main(["sweep", str(spec_path), "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    assert main(["sweep", "status", str(out)]) == 0
    assert "4 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out
    (out / "results.csv").unlink()
    assert main(["collect", str(out)]) == 0
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 4
    record = json.loads((out / "results.provenance.json").read_text())
    assert record["provenance"]["seeds"] == [0, 1] and len(record["runs"]) == 4
    assert all(r["seeds"] in ([0], [1]) and r["git_commit"] == record["provenance"]["git_commit"]
               for r in record["runs"].values())
    assert (out / "results.parquet").exists() == (importlib.util.find_spec("pyarrow") is not None)
    recorded, rows = (out / "sweep.json").read_text(), (out / "results.csv").read_text()
    assert main(["sweep", str(out), "--no-progress"]) == 0  # a directory reruns its stored sweep
    assert "nothing to run" in capsys.readouterr().out
    # its record is kept: rewritten from the spec read back (axes sorted), it listed the runs in another order
    assert (out / "sweep.json").read_text() == recorded and (out / "results.csv").read_text() == rows
    assert main(["sweep", "status", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
