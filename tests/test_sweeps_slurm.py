"""The slurm executor against a real Slurm cluster (munge, slurmdbd, MariaDB, slurmctld, slurmd).

Start one with ``.ci/start-slurm`` (CI does, before pytest); without a reachable cluster these tests
skip, saying so. Each test cancels whatever jobs it left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from processes import ctrl_c_group, wait_for

from implicitrank import results
from implicitrank.cli import main
from implicitrank.sweeps import (
    SerialExecutor,
    SlurmExecutor,
    SlurmOptions,
    collect_rows,
    parse_spec,
    plan_sweep,
    run_sweep,
)
from implicitrank.sweeps.state import lock_holder, run_lock_path, sweep_status

pytestmark = pytest.mark.slurm
ENV_FILE = Path(os.environ.get("IMPLICITRANK_SLURM_ROOT", "/tmp/implicitrank-slurm")) / "env"
TINY = {"shape": [12, 12], "rank": 1, "num_observations": 60, "record_per_decade": 5}


@pytest.fixture(scope="module")
def slurm():
    """A reachable cluster (SLURM_CONF from the environment, else from .ci/start-slurm's env file)."""
    if "SLURM_CONF" not in os.environ and ENV_FILE.is_file():
        os.environ["SLURM_CONF"] = ENV_FILE.read_text().strip().removeprefix("export SLURM_CONF=")
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm here (sinfo not on PATH); start one with .ci/start-slurm")
    answer = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if answer.returncode != 0:
        reason = (answer.stderr.strip().splitlines() or ["failed"])[-1]
        pytest.skip(f"no Slurm cluster reachable (sinfo: {reason}); start one with .ci/start-slurm")


def executor() -> SlurmExecutor:
    return SlurmExecutor(SlurmOptions(time=5), poll_seconds=0.5, sacct_seconds=1)


def cancel_leftovers(out: Path) -> None:
    subprocess.run(["scancel", "--name", f"implicitrank-{out.name}"], check=False, timeout=30)


def table(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in collect_rows(out)]


def test_job_ids_are_not_an_earlier_jobs_in_the_accounting(slurm):
    # .ci/start-slurm keeps the accounting database but starts each cluster with fresh state, which numbered jobs
    # from 1 again: sacct -j N then also gave an earlier cluster's job N and its array tasks (COMPLETED, while this
    # cluster's were pending), and submitit took their states for the sweep's jobs (runs reported interrupted)
    job = subprocess.run(["sbatch", "--parsable", "--hold", "--job-name", "implicitrank-id-check", "--wrap", "true"],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip().split(";")[0]
    try:
        deadline, records = time.monotonic() + 30, []
        while not any(r.split("|")[0] == job for r in records) and time.monotonic() < deadline:
            time.sleep(0.2)
            records = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-j", job, "-o", "JobIDRaw,JobID,Submit"],
                                     capture_output=True, text=True, timeout=30).stdout.split()
    finally:
        subprocess.run(["scancel", job], check=False, timeout=30)
    assert [r.split("|")[0] for r in records] == [job], f"sacct -j {job} also names earlier jobs: {records}"


def test_slurm_sweep_runs_a_job_array_and_matches_a_serial_sweep(slurm, tmp_path):
    spec = parse_spec({"name": "array", "base": {**TINY, "max_steps": 200},
                       "axes": {"depth": [2, 3], "seed": [0, 1]}})
    out = tmp_path / "slurm-array"
    try:
        report = run_sweep(spec, out, executor(), progress=False)
    finally:
        cancel_leftovers(out)
    assert report.complete, report.summary()
    assert len(report.jobs) == 2 and [o.status for o in report.outcomes] == ["done"] * 4
    tasks = sorted(p.name.split("_")[:2] for p in (out / "slurm").glob("*_log.out"))  # submitit's logs
    assert len(tasks) == 2 and tasks[0][0] == tasks[1][0] and [t[1] for t in tasks] == ["0", "1"]  # one array
    # the logs' folder existed before sbatch: one made after it returned (out/slurm/<job id>) was not there yet for
    # a task that started at once, which failed without running (slurmstepd: could not open its stdout file)
    script = next((out / "slurm").glob("*_submission.sh")).read_text()
    logs = [line.split("=", 1)[1] for line in script.splitlines() if line.startswith(("#SBATCH --output=",
                                                                                       "#SBATCH --error="))]
    assert len(logs) == 2 and all(Path(log).parent == (out / "slurm").absolute() for log in logs), logs
    run_sweep(spec, tmp_path / "serial", SerialExecutor(threads=1), progress=False)
    assert table(out) == table(tmp_path / "serial")


def test_cancelled_slurm_job_is_reported_and_its_run_resumes_from_its_checkpoint(slurm, tmp_path):
    # two jobs: a long run (cancelled once checkpointed) and a short one that finishes. The long run must
    # outlast the KillWait (1 s in .ci/start-slurm) during which a cancelled job's process keeps training,
    # with a wide margin on an idle machine (20,000 steps once finished in that window: ~10k steps/s here)
    # (a checkpoint every 1000 steps: at every 100, the rerun's 1000 checkpoints were a quarter of the test's time)
    spec = parse_spec({"name": "cancel", "base": {**TINY, "loss_threshold": 0.0, "checkpoint_every": 1000},
                       "zip": {"max_steps": [100_000, 100], "depth": [2, 3]}})
    out = tmp_path / "slurm-cancel"
    long_run = spec.configs()[0]
    reports = []
    sweep = threading.Thread(target=lambda: reports.append(
        run_sweep(spec, out, executor(), progress=False)))
    sweep.start()
    try:
        checkpoint = out / "runs" / long_run.run_id / "checkpoint.pt"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and sweep.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        holder = lock_holder(run_lock_path(out / ".locks", long_run.run_id))
        assert holder and holder["slurm_job"], "the long run never started on the cluster"
        subprocess.run(["scancel", holder["slurm_job"]], check=True, timeout=30)
        sweep.join(timeout=120)
        assert not sweep.is_alive(), "the sweep did not notice the cancelled job"
    finally:
        cancel_leftovers(out)
        sweep.join(timeout=60)

    outcomes = {o.run_id: o for o in reports[0].outcomes}
    assert outcomes[long_run.run_id].status == "interrupted"
    assert "CANCELLED" in outcomes[long_run.run_id].message
    assert outcomes[spec.configs()[1].run_id].status == "done"
    # Slurm reports CANCELLED at once, but the job's process gets SIGKILL only after KillWait: until then
    # it still holds the run's lock (the run shows as running) and nobody else may write the run
    lock = run_lock_path(out / ".locks", long_run.run_id)
    deadline = time.monotonic() + 60
    while lock_holder(lock) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    state = {s.run_id: s for s in sweep_status(out)}[long_run.run_id]
    assert state.status == "pending" and state.resumable and "CANCELLED" in state.detail, state

    rerun = run_sweep(spec, out, SerialExecutor(threads=1), progress=False)
    assert [(o.run_id, o.status) for o in rerun.outcomes] == [(long_run.run_id, "done")], rerun.summary()
    assert rerun.outcomes[0].resumed_from >= 1000  # from the checkpoint, not from the start
    assert rerun.complete
    assert [row["steps"] for row in collect_rows(out)] == [100_000, 100]


def queued(out: Path) -> list[str]:
    """The sweep's Slurm jobs (array tasks) that have not ended, as squeue lists them."""
    answer = subprocess.run(["squeue", "-h", "-r", "-n", f"implicitrank-{out.name}", "-o", "%i"], capture_output=True,
                            text=True, timeout=30)
    return sorted(answer.stdout.split())


def test_after_ctrl_c_the_runs_left_queued_on_slurm_are_running_for_status_and_a_rerun(slurm, tmp_path, capsys):
    # Ctrl-C leaves the submitted jobs to Slurm (as documented), but a run whose job was still queued showed as
    # pending in `sweep status`, and a rerun submitted it again
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "ctrlc"\n[base]\nshape = [12, 12]\nrank = 1\nnum_observations = 60\n'
                    "max_steps = 100000\nloss_threshold = 0.0\n[axes]\nseed = [0, 1]\n"
                    "[slurm]\ntime = 5\narray_parallelism = 1\n")  # one task runs, the other waits in the queue
    out = tmp_path / "ctrlc"
    process = subprocess.Popen([sys.executable, "-m", "implicitrank.cli", "sweep", str(spec), "--out", str(out),
                                "--executor", "slurm", "--no-batch", "--no-progress"], start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(queued(out)) == 2, process, seconds=60)
        err = ctrl_c_group(process)
        assert process.returncode == 130 and "keep running" in err and "Traceback" not in err, err
        jobs = queued(out)
        assert len(jobs) == 2, jobs  # still on Slurm: nothing ended them
        assert main(["sweep", "status", str(out)]) == 0
        said = capsys.readouterr().out
        assert "0 done, 2 running, 0 failed, 0 pending" in said, said
        code = main(["sweep", str(out), "--executor", "slurm", "--no-progress"])
        said = capsys.readouterr().out
        assert code == 1 and "nothing to run" in said and "2 running" in said, said
        assert queued(out) == jobs  # no job submitted again
    finally:
        cancel_leftovers(out)
        if process.poll() is None:
            process.kill()
            process.communicate()


def refused_sweep(tmp_path: Path, capsys, flags: list[str]) -> str:
    """The one line on stderr of a slurm sweep refused for ``flags`` (exit status 2, no run started)."""
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "refused"\n[base]\nshape = [8, 8]\nrank = 1\nnum_observations = 30\n'
                    "max_steps = 10\n[axes]\nseed = [0, 1]\n")
    out = tmp_path / ("out" + "".join(flags).replace("-", "_"))
    try:
        code = main(["sweep", str(spec), "--out", str(out), "--executor", "slurm", "--no-progress", *flags])
    finally:
        cancel_leftovers(out)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("implicitrank sweep: error: "), captured.err
    assert not (out / "runs").exists()
    return lines[0]


def nodes() -> list[list[str]]:
    """Each node configuration's CPUs, memory (MB) and generic resources, as sinfo gives them."""
    answer = subprocess.run(["sinfo", "-h", "-o", "%c|%m|%G"], capture_output=True, text=True, timeout=30)
    return [line.split("|") for line in answer.stdout.split()]


def test_slurm_options_sbatch_refuses_are_one_line_errors_naming_them(slurm, tmp_path, capsys):
    # memory (or GPUs) no node has: sbatch refused the array, and submitit's FailedJobError came out as a traceback
    # (exit status 1) after sbatch's own lines, which submitit printed
    most_mb = max(int(node[1].rstrip("+")) for node in nodes())
    line = refused_sweep(tmp_path, capsys, ["--mem-gb", str(10 * most_mb)])
    assert "sbatch refused the jobs" in line and f"mem_gb={10.0 * most_mb}" in line, line
    assert f"most likely --mem-gb (slurm.mem_gb = {10.0 * most_mb}" in line, line
    if not any("gpu" in node[2] for node in nodes()):
        # sbatch says 'Invalid generic resource (gres) specification': the line names --gpus, the option behind it
        line = refused_sweep(tmp_path, capsys, ["--gpus", "1"])
        assert "sbatch refused the jobs" in line and "gpus=1" in line, line
        assert "most likely --gpus (slurm.gpus = 1" in line and "--mem-gb" not in line, line


@pytest.mark.timeout(120)
def test_more_cpus_than_any_node_has_are_refused_before_the_sweep_waits_for_ever(slurm, tmp_path, capsys):
    # Slurm queued such an array, pending for ever (reason PartitionConfig), and the sweep waited on it without end
    most = max(int(node[0].rstrip("+")) for node in nodes())
    line = refused_sweep(tmp_path, capsys, ["--cpus", str(most + 1)])
    assert f"slurm.cpus must be at most {most}" in line and f"got {most + 1}" in line, line


@pytest.mark.slow
def test_preempted_slurm_job_is_requeued_and_resumes_from_its_checkpoint(slurm, tmp_path):
    spec = parse_spec({"name": "preempt", "base": {**TINY, "loss_threshold": 0.0, "checkpoint_every": 100,
                                                   "max_steps": 8000}})
    out = tmp_path / "slurm-preempt"
    plan = plan_sweep(spec, out)
    jobs = plan.jobs(plan.configs)
    slurm_executor = executor()
    try:
        handles = slurm_executor.submit(jobs, out)
        checkpoint = plan.run_dir(plan.configs[0]) / "checkpoint.pt"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), "the run never checkpointed on the cluster"
        handles[0]._interrupt()  # what Slurm sends on preemption: SIGTERM, then submitit's USR signal
        outcomes = slurm_executor.wait(handles, jobs, lambda n: None)
    finally:
        cancel_leftovers(out)
    assert [o.status for o in outcomes] == ["done"]
    assert outcomes[0].resumed_from >= 100  # the requeued job went on from the checkpoint
    assert results.read_json(plan.run_dir(plan.configs[0]) / "summary.json")["steps"] == 8000
