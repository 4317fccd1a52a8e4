# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Scaling out: sweeps on every core and on Slurm
#
# A finding about implicit regularization is a statement about a *grid*: depths × init scales × numbers of
# observations × seeds. `implicitrank sweep` runs such a grid from a small TOML spec, on one core, on every core of
# the machine, or as a Slurm job array, and it is built to be interrupted: finished runs are never rerun,
# interrupted runs resume from their checkpoints, and the same command run again picks up where it stopped.
#
# This tutorial runs a small grid of the kind behind Arora et al. 2019, Figure 1 (error against the number of
# observed entries, per depth), interrupts it, resumes it, collects one table, and runs the same spec on Slurm.

# %%
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt

from implicitrank.sweeps import collect_rows


def implicitrank(*args: str) -> None:
    """Run the command line as a user would, and show what it prints."""
    print("$ implicitrank", " ".join(args))
    done = subprocess.run([sys.executable, "-m", "implicitrank.cli", *args], capture_output=True, text=True)
    print((done.stdout + done.stderr).rstrip())
    done.check_returncode()


# %% [markdown]
# ## The spec
#
# `[base]` holds the fields every run shares (any field of a run's configuration that its optimizer and model use:
# the model, the task, the optimizer, when to stop, how often to checkpoint); `[axes]` the values to cross. Here: a
# 20×20 rank-2 matrix completed from 120, 200 or 280 of its 400 entries by depth-2 and depth-3 factorizations, two
# seeds each.

# %%
spec = Path("depth-vs-observations.toml")
spec.write_text('''\
name = "depth-vs-observations"

[base]
model = "matrix"
task = "completion"
shape = [20, 20]
rank = 2
optimizer = "global-rmsprop"
lr = 3e-2
init_scale = 1e-3
loss_threshold = 1e-5
max_steps = 3000
checkpoint_every = 100

[axes]
depth = [2, 3]
num_observations = [120, 200, 280]
seed = "0..1"

[slurm]
time = 10
cpus = 1
''')

# %% [markdown]
# `--dry-run` shows the plan without running anything. Runs that differ only in per-run values (here the seed)
# train together as one batched job: 12 runs become 6 jobs.

# %%
implicitrank("sweep", str(spec), "--out", "local", "--dry-run")

# %% [markdown]
# ## Run it on every core, and pull the plug halfway
#
# `--executor local` runs the jobs in a pool of worker processes, one per core, each pinned to one thread. We
# start it in the background and kill it (and its workers) with SIGKILL as soon as the first runs are finished —
# as if the machine went down.

# %%
command = [sys.executable, "-m", "implicitrank.cli", "sweep", str(spec), "--out", "local", "--executor", "local",
           "--no-progress"]
sweep = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while sweep.poll() is None and not list(Path("local/runs").glob("*/summary.json")):
    time.sleep(0.05)
os.killpg(sweep.pid, signal.SIGKILL)
sweep.wait()
time.sleep(0.5)  # let the orphaned workers go

# %% [markdown]
# `sweep status` reads the state off the disk: which runs are done, which were interrupted mid-way (they left a
# checkpoint) and which never started.

# %%
implicitrank("sweep", "status", "local")

# %% [markdown]
# ## Resume
#
# The same command again: finished runs are skipped, interrupted ones continue exactly from their last
# checkpoint, the rest start. Nothing is rerun and nothing is overwritten.

# %%
implicitrank("sweep", str(spec), "--out", "local", "--executor", "local", "--no-progress")
implicitrank("sweep", "status", "local")

# %% [markdown]
# ## Collect one table
#
# `collect` writes `results.csv`: one row per run, its configuration beside its summary (reconstruction error
# `‖W − W*‖_F/‖W*‖_F`, effective rank, norms, steps, status); `collect_rows` gives the same rows in Python. The error
# falls with the number of observations (Arora et al. 2019, Figure 1). The runs are short (at most 3,000 steps: depth 3
# from 120 observations stops at that cap), and their two seeds differ only in the init, so their dots nearly meet.

# %%
implicitrank("collect", "local")
rows = collect_rows("local")  # the same rows, as dicts
fig, ax = plt.subplots(figsize=(6, 3.8))
for depth in (2, 3):
    points = sorted((r["num_observations"], r["reconstruction_error"]) for r in rows if r["depth"] == depth)
    ax.plot(*zip(*points), "o", alpha=0.6, label=f"depth {depth} (each seed)")
ax.set(yscale="log", xlabel="observed entries (of 400)", ylabel=r"$\|W - W^*\|_F\, /\, \|W^*\|_F$",
       title="20×20 rank-2 completion, init 1e-3")
ax.axhline(1e-2, color="grey", ls=":")
ax.legend()
plt.show()

# %% [markdown]
# ## The report
#
# Every `sweep` ends by writing `report.html` into its directory (and `implicitrank report DIR` writes it again at
# any time): one self-contained page — the table, sortable; error and effective rank against each axis; the runs'
# status with the messages of any that failed — to open in a browser or attach to a review.

# %%
implicitrank("report", "local")
print(f"{Path('local/report.html').stat().st_size / 1e3:.0f} kB, images embedded: open it in any browser")

# %% [markdown]
# ## The same spec on Slurm
#
# `--executor slurm` submits the jobs as one job array through submitit; the spec's `[slurm]` table sets the
# defaults (time limit, CPUs, GPUs, partition), which flags override. A job that reaches its time limit is requeued
# and resumes from its checkpoints; the limit is at least 3 minutes (`--time 3`), since Slurm signals a job for its
# requeue up to 150 s before the limit. The runs are the same runs — same ids, same seeds — so the table matches the
# local one. Ctrl-C stops the sweep, not its jobs: they keep running on the cluster (it prints their ids for
# `scancel`); meanwhile `sweep status` shows their runs as running and a rerun leaves those runs to them.
# (This cell runs where a Slurm cluster is reachable, as in this project's CI.)

# %%
if shutil.which("sinfo") and subprocess.run(["sinfo"], capture_output=True).returncode == 0:
    implicitrank("sweep", str(spec), "--out", "slurm", "--executor", "slurm", "--no-progress")
    implicitrank("collect", "slurm")
    local = {r["run_id"]: r["reconstruction_error"] for r in rows}
    on_slurm = {r["run_id"]: r["reconstruction_error"] for r in collect_rows("slurm")}
    print("same runs, same errors on Slurm as on the local cores:", on_slurm == local)
else:
    print("no Slurm cluster reachable here; on a cluster run:")
    print(f"  implicitrank sweep {spec} --executor slurm --partition NAME --time 30")

# %% [markdown]
# A larger grid (30×30, three depths, two init scales, two numbers of observations) is
# `examples/sweeps/arora2019-small.toml`.
#
# **Reference.** S. Arora, N. Cohen, W. Hu, Y. Luo, *Implicit Regularization in Deep Matrix Factorization*,
# NeurIPS 2019.
