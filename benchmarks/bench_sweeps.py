"""Wall time of a tiny 200-run grid with the serial and local executors, one job per run and batched,
and the per-run overhead of the slurm executor (when a Slurm cluster answers).

    python benchmarks/bench_sweeps.py [--runs 200] [--max-steps 200] [--slurm-runs 8]

The grid is depth ∈ {2, 3} × seeds (12×12 rank-1 completion, 60 observations): two batch keys, so
batched grouping makes 2 jobs of 100 runs (split further to fill the local cores). The slurm overhead
is (slurm wall − serial wall) / runs for runs submitted one job each with array parallelism 1, i.e.
what a job costs beyond its training: scheduling, starting Python and importing torch, polling. The
local pool's own start (spawning workers that import torch) is timed apart, on 2 one-step runs.
Prints a table and writes benchmarks/results/bench_sweeps.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from implicitrank.sweeps import LocalExecutor, SerialExecutor, SlurmExecutor, SlurmOptions, parse_spec, run_sweep
from implicitrank.threads import available_cores

RESULTS = Path(__file__).parent / "results" / "bench_sweeps.json"


def grid(runs: int, max_steps: int, name: str) -> dict:
    return {"name": name,
            "base": {"shape": [12, 12], "rank": 1, "num_observations": 60, "max_steps": max_steps,
                     "record_per_decade": 5, "checkpoint_every": max_steps + 1},
            "axes": {"depth": [2, 3], "seed": f"0..{runs // 2 - 1}"}}


def timed(spec: dict, executor, batch: bool, root: Path) -> float:
    started = time.perf_counter()
    report = run_sweep(parse_spec(spec), root / f"{spec['name']}-{executor.name}-{batch}", executor, batch=batch,
                       progress=False)
    seconds = time.perf_counter() - started
    if not report.complete:
        raise RuntimeError(report.summary())
    return seconds


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--slurm-runs", type=int, default=8, help="runs for the slurm overhead (0: skip)")
    args = parser.parse_args()
    cores = available_cores()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = grid(args.runs, args.max_steps, "grid")
        for label, executor, batch in [("serial, a job per run", SerialExecutor(threads=1), False),
                                       (f"local ({cores} workers), a job per run", LocalExecutor(), False),
                                       ("serial, batched", SerialExecutor(threads=1), True),
                                       (f"local ({cores} workers), batched", LocalExecutor(), True)]:
            seconds = timed(spec, executor, batch, root)
            rows.append({"mode": label, "runs": args.runs, "seconds": seconds,
                         "per_run_ms": 1e3 * seconds / args.runs})
            print(f"{label:<36} {seconds:8.1f} s  {1e3 * seconds / args.runs:8.1f} ms/run", flush=True)
        startup = timed(grid(2, 1, "startup"), LocalExecutor(), False, root)
        rows.append({"mode": f"local ({cores} workers): start the pool, 2 runs of 1 step", "runs": 2,
                     "seconds": startup, "per_run_ms": 1e3 * startup / 2})
        print(f"local pool start (spawn, import torch) {startup:8.1f} s", flush=True)
        slurm = None
        if args.slurm_runs and slurm_up():
            small = grid(args.slurm_runs, args.max_steps, "slurm")
            serial = timed(small, SerialExecutor(threads=1), False, root)
            on_slurm = timed(small, SlurmExecutor(SlurmOptions(time=10, array_parallelism=1), poll_seconds=0.2,
                                                   sacct_seconds=5),
                             False, root)
            slurm = {"runs": args.slurm_runs, "serial_seconds": serial, "slurm_seconds": on_slurm,
                     "overhead_per_run_s": (on_slurm - serial) / args.slurm_runs}
            print(f"slurm, a job per run, one at a time   {on_slurm:8.1f} s  (serial {serial:.1f} s): "
                  f"{slurm['overhead_per_run_s']:.2f} s overhead per run", flush=True)
        else:
            print("slurm: no cluster answers (sinfo); start one with .ci/start-slurm to measure its overhead")
    ratios = {"serial: one job per run / batched": rows[0]["seconds"] / rows[2]["seconds"],
              "a job per run: serial / local": rows[0]["seconds"] / rows[1]["seconds"],
              "batched: serial / local": rows[2]["seconds"] / rows[3]["seconds"]}
    for name, ratio in ratios.items():
        print(f"{name:<36} {ratio:8.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cores": cores, "machine": platform.platform(), "max_steps": args.max_steps,
                                   "modes": rows, "ratios": ratios, "slurm": slurm},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
