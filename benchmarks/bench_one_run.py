"""One ``implicitrank mf`` run against the eager 2019-style reference, whole processes (issue 18).

Problem (both sides): 100×100 rank-5 completion from 2000 observed entries, depth 3, global RMSprop lr 1e-3
(eps 1e-4), the 2019 code's init scale α = 1e-3 (‖W(0)‖_F = α·√100 = 1e-2: ``--init-scale 1e-2`` for ours, whose
``--init-scale`` is ‖W(0)‖_F itself), until the train loss is <= 1e-6; one torch thread each.

* Ours: the whole ``implicitrank mf`` process (imports, data, training with the default recording schedule of 20
  log-spaced records per decade and a checkpoint every 2000 steps, summary, plots), ``--repeats`` times; CPU
  seconds (user + system, from the kernel) and wall seconds.
* Ours, the flow: the same ``implicitrank mf`` process following the gradient flow that global RMSprop
  reparametrizes in time, by rkc (``--optimizer gradient-flow --flow-method rkc --rtol 1e-5``, what
  ``arora2019-completion --scale paper`` runs); its error is reported beside global RMSprop's, since it is the same
  end point only within the integrator's tolerance.
* Reference (``reference_2019.py``: what the original script does each step, autograd, one process per run): the
  whole process to convergence, as often as ours.
* Floor: what no implementation of the same steps can beat on this core: our process's CPU outside the training
  loop + steps × the CPU of the step's 6 (100×100)·(100×100) matmuls alone; ``best_ratio`` is reference / floor.
* Metric recording: the CPU of one ``train.record`` call (the spectrum and the other metrics of
  ``run.make_measure``) times the records of the default schedule over the run, as a share of our training CPU.

Ratios (reference CPU / ours) are reported as min and median over the repeats, all measured in one run of this
script. Writes benchmarks/results/bench_one_run.json.

    python benchmarks/bench_one_run.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results

from implicitrank.threads import THREAD_VARIABLES

HERE = Path(__file__).resolve().parent
PROBLEM = ["--lr", "1e-3", "--init-scale", "1e-2", "--depth", "3"]
FLOW = ["--init-scale", "1e-2", "--depth", "3", "--optimizer", "gradient-flow", "--flow-method", "rkc",
        "--rtol", "1e-5"]
REFERENCE = ["--lr", "1e-3", "--init-scale", "1e-3", "--depth", "3", "--threads", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    policy_env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}  # ours: the package's policy
    ours, flow, reference = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-one-run-") as tmp:
        for k in range(args.repeats):
            ours.append(_mf(PROBLEM, Path(tmp) / f"mf{k}", policy_env))
            flow.append(_mf(FLOW, Path(tmp) / f"flow{k}", policy_env))
            cpu, wall, summary = ours[-1]["cpu_seconds"], ours[-1]["wall_seconds"], ours[-1]
            ref_cpu, ref_wall, text = _child([sys.executable, str(HERE / "reference_2019.py"), *REFERENCE], env,
                                             capture=True)
            steps = int(re.search(r"^steps (\d+)", text, re.MULTILINE).group(1))
            reference.append({"cpu_seconds": ref_cpu, "wall_seconds": ref_wall, "steps": steps})
            print(f"repeat {k}: ours {cpu:.1f} s CPU ({wall:.1f} s wall, {summary['steps']} steps, training "
                  f"{summary['train_seconds']:.1f} s wall); reference {ref_cpu:.1f} s CPU ({ref_wall:.1f} s wall, "
                  f"{steps} steps); ratio {ref_cpu / cpu:.2f}; flow {flow[-1]['cpu_seconds']:.1f} s CPU "
                  f"({flow[-1]['gradient_evaluations']} gradient evaluations), ratio "
                  f"{ref_cpu / flow[-1]['cpu_seconds']:.2f}; squared error RMSprop "
                  f"{summary['reconstruction_error_squared']:.3g}, flow {flow[-1]['reconstruction_error_squared']:.3g}",
                  flush=True)
    recording = _recording_share(ours[0]["steps"])
    ratios = [r["cpu_seconds"] / o["cpu_seconds"] for o, r in zip(ours, reference)]
    matmuls = _matmul_seconds()
    floors = [o["cpu_seconds"] - recording["seconds_per_step"] * o["steps"] + o["steps"] * matmuls for o in ours]
    flow_ratios = [r["cpu_seconds"] / f["cpu_seconds"] for f, r in zip(flow, reference)]
    summary = {"ratio_min": min(ratios), "ratio_median": statistics.median(ratios),
               "flow_ratio_min": min(flow_ratios), "flow_ratio_median": statistics.median(flow_ratios),
               "flow_cpu_median": statistics.median(f["cpu_seconds"] for f in flow),
               "ours_cpu_min": min(o["cpu_seconds"] for o in ours),
               "ours_cpu_median": statistics.median(o["cpu_seconds"] for o in ours),
               "reference_cpu_median": statistics.median(r["cpu_seconds"] for r in reference),
               "step_cpu_seconds": recording["seconds_per_step"], "matmul_cpu_seconds_per_step": matmuls,
               "best_ratio": statistics.median(r["cpu_seconds"] / f for r, f in zip(reference, floors))}
    print(f"per step: ours {recording['seconds_per_step'] * 1e6:.0f} µs, its 6 matmuls alone {matmuls * 1e6:.0f} µs; "
          f"the best ratio any implementation of these steps could reach here: {summary['best_ratio']:.2f}")
    print(f"reference/ours CPU: min {summary['ratio_min']:.2f}, median {summary['ratio_median']:.2f} (target >= 3); "
          f"the flow: min {summary['flow_ratio_min']:.2f}, median {summary['flow_ratio_median']:.2f}")
    print(f"metric recording: {recording['records']} records × {recording['seconds_per_record'] * 1e3:.2f} ms = "
          f"{100 * recording['share_of_training']:.1f}% of the training CPU (target < 10%)")
    path = write_results("bench_one_run", {"problem": PROBLEM, "flow_problem": FLOW, "reference_problem": REFERENCE,
                                           "load_average": os.getloadavg(),
                                           "ours": ours, "flow": flow, "reference": reference, "recording": recording,
                                           "summary": summary})
    print(f"wrote {path}")


def _mf(problem: list[str], out: Path, env: dict) -> dict:
    """One whole ``implicitrank mf`` process on ``problem``: its CPU and wall seconds and its summary's numbers."""
    cpu, wall = _child([sys.executable, "-c", "import sys; from implicitrank.cli import main; sys.exit(main())",
                        "mf", *problem, "--no-progress", "--out", str(out)], env)
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    return {"cpu_seconds": cpu, "wall_seconds": wall, "steps": summary["steps"],
            "gradient_evaluations": summary["gradient_evaluations"], "train_seconds": summary["seconds"],
            "status": summary["status"], "reconstruction_error_squared": summary["reconstruction_error_squared"]}


def _child(command: list[str], env: dict, capture: bool = False):
    """CPU (user + system of the finished child) and wall seconds of ``command`` (and its output if ``capture``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return (cpu, wall, done.stdout) if capture else (cpu, wall)


def _matmul_seconds() -> float:
    """CPU seconds of the 6 (1, 100, 100) matmuls of one depth-3 step, best of 3 windows."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(1, 100, 100), torch.randn(1, 100, 100)
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for _ in range(3000):
            a @ b
        best = min(best, (time.process_time() - began) / 3000 * 6)
    return best


def _recording_share(steps: int) -> dict:
    """CPU of the default schedule's records over ``steps`` steps, against that of the steps themselves."""
    import torch

    from implicitrank.factorizations import generators
    from implicitrank.optim import global_rmsprop
    from implicitrank.run import MODELS, RunConfig, build_task, make_measure
    from implicitrank.train import TrainConfig, record, start, train

    torch.set_num_threads(1)
    config = RunConfig(lr=1e-3, init_scale=1e-2, depth=3)
    model, task = MODELS["matrix"].build(config), build_task([config]).to("cpu", torch.float32)
    params = model.init(1, torch.tensor([1e-2]), generators([0]))
    measure = make_measure(model, task, config.top)
    schedule = TrainConfig(max_steps=steps)
    records = sum(schedule.records_at(s) for s in range(steps + 1)) + 1
    state = start(params, global_rmsprop())
    state.loss = task.loss(model, params)
    began = time.process_time()
    for k in range(50):
        state.step = k + 1
        record(state, measure)
    per_record = (time.process_time() - began) / 50
    window = 2000
    began = time.process_time()
    train(model, task, params, global_rmsprop(), torch.tensor([1e-3]),
          TrainConfig(max_steps=window, loss_threshold=0.0, record_per_decade=0, progress=False))
    per_step = (time.process_time() - began) / window
    return {"records": records, "seconds_per_record": per_record, "seconds_per_step": per_step,
            "share_of_training": records * per_record / (steps * per_step)}


if __name__ == "__main__":
    main()
