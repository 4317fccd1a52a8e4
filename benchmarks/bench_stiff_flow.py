"""Gradient flow through the stiff phase: Runge–Kutta–Chebyshev against dopri5 and global RMSprop (issue 18).

After the first singular value takes off, the depth-4 flow is stiff: the learned singular values put
λ_max(∇²L) ≈ 0.5 while the next ones crawl on plateaus for ~10⁴ time units, so dopri5 (stable for h·λ_max ≲ 3.3)
crosses every later plateau at h ≈ 7 with 6 gradient evaluations a step. ``method="rkc"``
(``implicitrank.flow``) takes s stages a step with a stability interval ≈ 0.653·s², so its steps there are set by
accuracy instead.

Set-up (the paper grid's, ``arora2019-completion --scale paper``): 100×100 rank-5 ground truth, completion from
2000 observed entries (``--observations``; or ``--task sensing`` from that many Gaussian measurements), depth 4
(``--depth``: the grid's 2, 3 or 4), the grid's init scales α = 1e-3…1e-6 (‖W(0)‖_F = α·√100) for each seed of
``--seeds`` in one batch (as ``run_grid`` batches a depth: ``--seeds 0 1 2`` is the paper grid's batch of that
depth), float32, loss threshold 1e-6, one torch thread. Methods:

* global RMSprop, lr 1e-3, eps 1e-4 (the paper's optimizer, what the grid runs);
* gradient flow, dopri5, rtol 1e-4, atol 1e-9 (``RunConfig``'s defaults);
* gradient flow, rkc, at dopri5's tolerances and at rtol 1e-5 (``--rkc-rtols``): at 1e-4 its final errors
  differ from the flow's by up to ~25% (measured), at 1e-5 by ~2%.

Measured per method: process CPU seconds and wall seconds of the whole batch (min and median over ``--repeats``;
dopri5 ``--dopri5-repeats``, default 1: it is the slow, known baseline), batched gradient evaluations (a batched
evaluation of B runs counts once; RMSprop: one per step), steps and, per run, the squared relative error
‖W − W*‖²_F/‖W*‖²_F (the paper's reconstruction error), the effective rank, and whether the run converged.
The errors are checked against what the arora2019 claims test for depth 4 at 2000 observations: error ≤ 1e-3
(``RECOVERED``) and effective rank within 10% of the truth's; and each run's error against RMSprop's.

    PYTHONPATH=src python benchmarks/bench_stiff_flow.py [--depth 4] [--repeats 3] [--seeds 0] [--observations 2000]
        [--methods rkc global-rmsprop dopri5] [--rkc-rtols 1e-4 1e-5]

Prints a table and writes ``benchmarks/results/bench_stiff_flow.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _common import write_results

from implicitrank.experiments.arora2019_completion import RECOVERED, SCALES, grid_configs, truth_effective_rank
from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.flow import integrate
from implicitrank.measure import effective_rank
from implicitrank.optim import global_rmsprop
from implicitrank.run import build_task
from implicitrank.train import TrainConfig, train

THRESHOLD, RTOL, ATOL = 1e-6, 1e-4, 1e-9
PAPER = SCALES["paper"]


def _batch(task_name: str, depth: int, observations: int, seeds: tuple[int, ...]):
    """The grid's runs of ``depth`` and ``seeds``: one batch over the init scales and seeds (as ``run_grid``
    batches)."""
    configs = grid_configs(PAPER.size, PAPER.rank, task_name, observations, (depth,), PAPER.init_norms, PAPER.lr,
                           PAPER.max_steps, seeds)
    task = build_task(configs).to("cpu", torch.float32)
    model = MatrixFactorization(PAPER.size, PAPER.size, depth=depth)
    params = model.init(len(configs), torch.tensor([c.init_scale for c in configs]),
                        generators([c.seed for c in configs]), dtype=torch.float32)
    return model, task, params


def _run(method: str, model, task, params, rtol: float):
    config = TrainConfig(max_steps=PAPER.max_steps, loss_threshold=THRESHOLD, record_per_decade=0, progress=False)
    if method == "global-rmsprop":
        lr = torch.full((params[0].shape[0],), PAPER.lr)
        state = train(model, task, params, global_rmsprop(eps=1e-4), lr, config)
        return state, state.step + 1
    state = integrate(model, task, params, config, rtol=rtol, atol=ATOL, method=method)
    return state, int(state.optimizer_state["gradient_evaluations"])


def measure(method: str, task_name: str, depth: int, observations: int, seeds: tuple[int, ...], repeats: int,
            truth_rank: float, rtol: float = RTOL) -> dict:
    cpu, wall = [], []
    for _ in range(repeats):
        model, task, params = _batch(task_name, depth, observations, seeds)
        started_cpu, started = time.process_time(), time.perf_counter()
        state, evaluations = _run(method, model, task, params, rtol)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    w, target = model.end_to_end(state.params).double(), task.target.double()
    errors = ((w - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)).tolist()
    ranks = effective_rank(torch.linalg.svdvals(w)).tolist()
    runs = [{"init_scale": a, "seed": k} for a in PAPER.init_scales for k in seeds]
    row = {"method": method, "task": task_name, "depth": depth, "observations": observations, "seeds": list(seeds),
           "runs": runs,
           "cpu_seconds": cpu, "cpu_min": min(cpu), "cpu_median": statistics.median(cpu), "wall_seconds": wall,
           "wall_min": min(wall), "gradient_evaluations": evaluations, "batch_steps": state.step,
           "steps": state.steps.tolist(), "converged": (state.converged_at >= 0).tolist(),
           "error_squared": errors, "effective_rank": ranks, "train_loss": state.loss.tolist(),
           "claims_error_ok": all(e <= RECOVERED for e in errors),
           "claims_rank_ok": all(abs(r - truth_rank) <= 0.1 * truth_rank for r in ranks)}
    if method != "global-rmsprop":
        row["rtol"] = rtol
        row["flow_time"] = state.optimizer_state["time"].tolist()
        row["rejected"] = state.optimizer_state["rejected"].tolist()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of rkc and global RMSprop (default 3)")
    parser.add_argument("--dopri5-repeats", type=int, default=1, help="repeats of dopri5 (default 1)")
    parser.add_argument("--depth", type=int, default=4, choices=PAPER.depths, help="the grid's depth (default 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="grid seeds, all in one batch")
    parser.add_argument("--task", choices=("completion", "sensing"), default="completion",
                        help="the grid's completion runs (default) or its sensing runs (2000 Gaussian measurements)")
    parser.add_argument("--observations", type=int, nargs="+", default=[2000], help="observations or measurements")
    parser.add_argument("--methods", nargs="+", default=["rkc", "global-rmsprop", "dopri5"])
    parser.add_argument("--rkc-rtols", type=float, nargs="+", default=[RTOL, 1e-5],
                        help=f"rkc's rtols, one row each (default {RTOL:g}, dopri5's, and 1e-5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    truth_rank = truth_effective_rank(PAPER.size, PAPER.rank)
    rows = []
    seeds = tuple(args.seeds)
    for observations in args.observations:
        for method in args.methods:
            repeats = args.dopri5_repeats if method == "dopri5" else args.repeats
            for rtol in (args.rkc_rtols if method == "rkc" else [RTOL]) if repeats else []:
                rows.append(measure(method, args.task, args.depth, observations, seeds, repeats, truth_rank, rtol))
                r = rows[-1]
                label = f"{method} (rtol {rtol:g})" if method != "global-rmsprop" else method
                print(f"M={observations} {label:<20}  cpu min {r['cpu_min']:7.2f} s median "
                      f"{r['cpu_median']:7.2f} s  evals {r['gradient_evaluations']:>7}  batch steps "
                      f"{r['batch_steps']:>7}  err² {' '.join(f'{e:.2e}' for e in r['error_squared'])}  "
                      f"erank {' '.join(f'{e:.2f}' for e in r['effective_rank'])}", flush=True)
    ratios = []
    for observations in args.observations:
        here = [r for r in rows if r["observations"] == observations]
        for rkc in (r for r in here if r["method"] == "rkc"):
            for o in (r for r in here if r["method"] in ("global-rmsprop", "dopri5")):
                ratios.append({
                    "observations": observations, "seeds": list(seeds), "rkc_rtol": rkc["rtol"], "against": o["method"],
                    "cpu_min_ratio": o["cpu_min"] / rkc["cpu_min"],
                    "cpu_median_ratio": o["cpu_median"] / rkc["cpu_median"],
                    "evaluations_ratio": o["gradient_evaluations"] / rkc["gradient_evaluations"],
                    "error_ratio_rkc_over_other": [a / b for a, b in zip(rkc["error_squared"], o["error_squared"])]})
                x = ratios[-1]
                print(f"M={observations} {o['method']} / rkc (rtol {rkc['rtol']:g}): cpu x{x['cpu_min_ratio']:.2f} "
                      f"(min) x{x['cpu_median_ratio']:.2f} (median), evaluations x{x['evaluations_ratio']:.2f}; "
                      f"rkc err² / its err² {' '.join(f'{e:.3f}' for e in x['error_ratio_rkc_over_other'])}")
    payload = {"problem": {"size": PAPER.size, "rank": PAPER.rank, "task": args.task, "depth": args.depth,
                           "init_scales": PAPER.init_scales,
                           "lr": PAPER.lr, "eps": 1e-4, "rtol": RTOL, "atol": ATOL, "loss_threshold": THRESHOLD,
                           "dtype": "float32", "truth_effective_rank": truth_rank,
                           "claims": {"error_at_most": RECOVERED, "effective_rank_relative": 0.1}},
               "load_average": os.getloadavg(), "rows": rows, "ratios": ratios}
    print(f"wrote {write_results('bench_stiff_flow', payload)}")


if __name__ == "__main__":
    main()
