"""Gradient flow against GD and global RMSprop, and the training step against the matmul-bound limit (issue 6).

Part 1, cost to train loss 1e-6: 100×100 rank-5 completion from 2000 observed entries (papers.md §1: ground truth
with ||W*||_F = 100, Gaussian init of scale 1e-3), depths 2 and 3, float32, one run each:

* gradient flow (``implicitrank.flow.integrate``, Dormand–Prince 5(4)) at rtol 1e-4, and at rtol 1e-7 in
  float64 as the reference (the difference of their final matrices says how converged the integration is);
* global RMSprop at lr 1e-3, eps 1e-4 (the papers' optimizer), run to the loss threshold;
* plain GD at the largest lr of ``--gd-lrs`` that *tracks* the flow: its top-5 singular values stay within 1%
  of the flow's at every accepted flow step (relative 2-norm), measured over GD's run. GD needs exactly
  ceil(T/lr) steps to reach the flow's time T at which the flow hits the loss threshold; when that exceeds
  ``--gd-cap`` steps, GD is stopped at the cap and its steps and seconds to T are EXTRAPOLATED (steps exact,
  seconds = steps × measured seconds per step), marked ``extrapolated`` in the table and the JSON.

Reported per method: gradient evaluations, wall seconds, final train loss, and the reconstruction error
||W − W*||_F/||W*||_F with its square (Arora et al. 2019's convention), side by side.

Part 2, hot path: steps per second of ``train.train`` with plain GD (closed-form batched gradients) for B = 1
and B = 16 runs of depth-3 100×100 completion, against the matmul-bound limit = measured batched-matmul
throughput (torch.bmm, same shapes and dtype) / FLOPs per step (6(N−1)n³ per run for depth N: N−1 products
forward, 2(N−1) backward).

    python benchmarks/bench_speed.py [--threads 2] [--depths 2 3] [--gd-lrs 1 0.3 0.1 0.03] [--gd-cap 50000]

Prints tables and writes benchmarks/results/bench_speed.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.flow import integrate
from implicitrank.optim import global_rmsprop, gradient_descent
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.train import TrainConfig, train

N, RANK, OBSERVATIONS, INIT_SCALE, THRESHOLD, TOP = 100, 5, 2000, 1e-3, 1e-6, 5
TRACKING = 1e-2


def _problem(depth: int, batch: int = 1, dtype: torch.dtype = torch.float32):
    truth = low_rank_matrix(N, N, RANK, seed=0)
    task = complete_from_target(truth, OBSERVATIONS, [0] * batch).to("cpu", dtype)
    model = MatrixFactorization(N, N, depth=depth)
    # INIT_SCALE is the paper's α: ||W(0)||_F ≈ α·√N, the factorization's init_scale
    params = model.init(batch, torch.tensor(INIT_SCALE * N**0.5), generators(list(range(batch))), dtype=dtype)
    return model, task, params, truth


def _errors(model, params, truth) -> dict[str, float]:
    w = model.end_to_end(params)[0].double()
    relative = float(torch.linalg.matrix_norm(w - truth) / torch.linalg.matrix_norm(truth))
    return {"reconstruction_error": relative, "reconstruction_error_squared": relative**2}


def _config(max_steps: int, **options) -> TrainConfig:
    return TrainConfig(max_steps=max_steps, loss_threshold=options.pop("loss_threshold", THRESHOLD),
                       record_per_decade=0, progress=False, **options)


def _top(model):
    return lambda p, loss: {"sigma": model.quantities(p)[:, :TOP]}


def bench_flow(depth: int, rtol: float, dtype: torch.dtype = torch.float32) -> tuple[dict, np.ndarray, np.ndarray]:
    model, task, params, truth = _problem(depth, dtype=dtype)
    started = time.perf_counter()
    state = integrate(model, task, params, _config(10**6), rtol=rtol, atol=1e-3 * INIT_SCALE / N)
    seconds = time.perf_counter() - started
    traced = integrate(model, task, params, _config(10**6, record_every=1), rtol=rtol, atol=1e-3 * INIT_SCALE / N,
                       measure=_top(model))
    times = np.array([float(r["time"][0]) for r in traced.records])
    sigma = np.stack([r["sigma"][0].numpy() for r in traced.records])
    label = f"gradient flow (dopri5, rtol {rtol:g}{', float64' if dtype == torch.float64 else ''})"
    row = {"method": label, "gradient_evaluations": int(state.optimizer_state["gradient_evaluations"]),
           "seconds": seconds, "steps": state.step,
           "rejected_steps": int(state.optimizer_state["rejected"].sum()),
           "flow_time": float(state.optimizer_state["time"][0]), "train_loss": float(state.loss[0]),
           "converged": bool(state.converged_at[0] >= 0), "extrapolated": False,
           "end_to_end": model.end_to_end(state.params)[0].double(), **_errors(model, state.params, truth)}
    return row, times, sigma


def bench_rmsprop(depth: int, cap: int) -> dict:
    model, task, params, truth = _problem(depth)
    started = time.perf_counter()
    state = train(model, task, params, global_rmsprop(eps=1e-4), torch.tensor([1e-3]), _config(cap))
    seconds = time.perf_counter() - started
    steps = int(state.steps[0])
    return {"method": "global RMSprop (lr 1e-3, eps 1e-4)", "gradient_evaluations": steps + 1, "seconds": seconds,
            "steps": steps, "train_loss": float(state.loss[0]), "converged": bool(state.converged_at[0] >= 0),
            "extrapolated": False, **_errors(model, state.params, truth)}


def bench_gd(depth: int, lrs: list[float], cap: int, flow_time: float, times: np.ndarray, sigma: np.ndarray) -> dict:
    """GD at the largest lr that tracks the flow (see the module docstring)."""
    model, task, params, truth = _problem(depth)
    tried = []
    for lr in sorted(lrs, reverse=True):
        needed = math.ceil(flow_time / lr)
        run_steps = min(needed, cap)
        every = max(1, run_steps // 2000)
        started = time.perf_counter()
        state = train(model, task, params, gradient_descent(), torch.tensor([lr]),
                      _config(run_steps, loss_threshold=0.0, record_every=every), measure=_top(model))
        seconds = time.perf_counter() - started
        gd_times = np.array([lr * r["step"] for r in state.records])
        gd_sigma = np.stack([r["sigma"][0].numpy() for r in state.records])
        inside = times <= gd_times[-1]
        on_flow = np.stack([np.interp(times[inside], gd_times, gd_sigma[:, k]) for k in range(TOP)], axis=1)
        gap = float((np.linalg.norm(on_flow - sigma[inside], axis=1) / np.linalg.norm(sigma[inside], axis=1)).max())
        tried.append({"lr": lr, "gap": gap, "horizon": float(gd_times[-1])})
        if gap <= TRACKING or lr == min(lrs):
            break
    per_step = _seconds_per_step(model, task, params, lr)
    capped = needed > run_steps
    row = {"method": f"GD (lr {lr:g})", "lr": lr, "gradient_evaluations": needed + 1, "steps": needed,
           "steps_run": run_steps, "seconds_per_step": per_step,
           "seconds": needed * per_step if capped else seconds, "extrapolated": capped,
           "trajectory_gap_to_flow": gap, "tracking_tolerance": TRACKING, "lrs_tried": tried,
           "train_loss": float(state.loss[0]), "converged": (not capped) and bool(state.loss[0] <= THRESHOLD * 1.5)}
    if not capped:
        row.update(_errors(model, state.params, truth))
    return row


def _seconds_per_step(model, task, params, lr: float, steps: int = 1000) -> float:
    lrs = torch.full((params[0].shape[0],), lr)
    train(model, task, params, gradient_descent(), lrs, _config(20, loss_threshold=0.0))
    started = time.perf_counter()
    train(model, task, params, gradient_descent(), lrs, _config(steps, loss_threshold=0.0))
    return (time.perf_counter() - started) / steps


def bench_hot_path(depth: int, batches: list[int], steps: int) -> list[dict]:
    rows = []
    for batch in batches:
        model, task, params, _ = _problem(depth, batch)
        per_step = _seconds_per_step(model, task, params, 0.1, steps)
        flops = 6 * (depth - 1) * N**3 * batch
        a = torch.randn(batch, N, N)
        b = torch.randn(batch, N, N)
        for _ in range(20):
            torch.bmm(a, b)
        repeats = max(50, steps)
        started = time.perf_counter()
        for _ in range(repeats):
            torch.bmm(a, b)
        bmm_seconds = (time.perf_counter() - started) / repeats
        throughput = 2 * batch * N**3 / bmm_seconds
        limit = throughput / flops
        rows.append({"batch": batch, "depth": depth, "steps_per_second": 1 / per_step,
                     "run_steps_per_second": batch / per_step, "bmm_gflops": throughput / 1e9,
                     "achieved_gflops": flops / per_step / 1e9, "matmul_bound_steps_per_second": limit,
                     "fraction_of_limit": (1 / per_step) / limit})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--gd-lrs", type=float, nargs="+", default=[1.0, 0.3, 0.1, 0.03],
                        help="GD learning rates to try, largest first; the first that tracks the flow is used")
    parser.add_argument("--gd-cap", type=int, default=50_000, help="GD steps actually run (more are extrapolated)")
    parser.add_argument("--rmsprop-cap", type=int, default=1_000_000, help="global RMSprop step cap")
    parser.add_argument("--hot-steps", type=int, default=500, help="steps timed in the hot-path benchmark")
    parser.add_argument("--skip-cost", action="store_true", help="only the hot-path benchmark")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cost = []
    for depth in ([] if args.skip_cost else args.depths):
        flow, times, sigma = bench_flow(depth, 1e-4)
        tight, _, _ = bench_flow(depth, 1e-7, torch.float64)
        reference = tight.pop("end_to_end")
        difference = torch.linalg.matrix_norm(flow.pop("end_to_end") - reference) / torch.linalg.matrix_norm(reference)
        flow["relative_difference_to_reference"] = float(difference)
        rows = [flow, tight, bench_rmsprop(depth, args.rmsprop_cap),
                bench_gd(depth, args.gd_lrs, args.gd_cap, flow["flow_time"], times, sigma)]
        for row in rows:
            row["depth"] = depth
            row["evaluations_ratio_to_flow"] = row["gradient_evaluations"] / flow["gradient_evaluations"]
        cost.extend(rows)
    hot = bench_hot_path(3, [1, 16], args.hot_steps)
    _print(cost, hot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
            "load_average": os.getloadavg(), "problem": {"n": N, "rank": RANK, "observations": OBSERVATIONS,
                                                          "init_scale": INIT_SCALE, "loss_threshold": THRESHOLD}}
    args.out.write_text(json.dumps({"meta": meta, "cost_to_threshold": cost, "hot_path": hot}, indent=2))
    print(f"wrote {args.out}")


def _print(cost: list[dict], hot: list[dict]) -> None:
    if cost:
        print(f"{'depth':>5} {'method':<36} {'grad evals':>11} {'x flow':>8} {'seconds':>10} {'loss':>9} "
              f"{'rel err':>9} {'err^2':>9}")
        for r in cost:
            seconds = f"{r['seconds']:.1f}{'*' if r['extrapolated'] else ''}"
            error = f"{r['reconstruction_error']:.3e}" if "reconstruction_error" in r else "n/a"
            squared = f"{r['reconstruction_error_squared']:.2e}" if "reconstruction_error" in r else "n/a"
            print(f"{r['depth']:>5} {r['method']:<36} {r['gradient_evaluations']:>11} "
                  f"{r['evaluations_ratio_to_flow']:>7.1f}x {seconds:>10} {r['train_loss']:>9.2e} {error:>9} "
                  f"{squared:>9}")
        print("* extrapolated: GD capped; steps to the flow's time T are exact, seconds = steps x seconds/step")
    print(f"{'B':>3} {'steps/s':>9} {'run-steps/s':>12} {'GFLOP/s':>8} {'bmm GFLOP/s':>12} {'limit steps/s':>14} "
          f"{'of limit':>9}")
    for r in hot:
        print(f"{r['batch']:>3} {r['steps_per_second']:>9.1f} {r['run_steps_per_second']:>12.1f} "
              f"{r['achieved_gflops']:>8.2f} {r['bmm_gflops']:>12.2f} {r['matmul_bound_steps_per_second']:>14.1f} "
              f"{r['fraction_of_limit']:>8.0%}")


if __name__ == "__main__":
    main()
