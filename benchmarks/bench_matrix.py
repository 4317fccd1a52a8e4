"""Steps per second of 100x100 depth-3 completion with 2000 observations (issue: foundation).

Compares, in one run: a straightforward eager reference loop (nn.Linear layers, autograd,
torch.optim.SGD each step), our single run (B = 1), our batch of 16 runs, and the matmul-bound limit
(FLOPs per step / measured batched-matmul throughput). All use plain gradient descent.

    python benchmarks/bench_matrix.py [--steps 300] [--device cpu|cuda] [--dtype float32]
"""

from __future__ import annotations

import argparse

import torch
from _common import best_seconds, write_results
from torch import nn

from implicitrank.factorizations import MatrixFactorization, generators
from implicitrank.optim import gradient_descent
from implicitrank.tasks import complete_from_target, low_rank_matrix
from implicitrank.train import TrainConfig, train

N, DEPTH, OBS, LR = 100, 3, 2000, 1e-3


def reference_loop(task, steps: int, device, dtype) -> None:
    layers = nn.Sequential(*[nn.Linear(N, N, bias=False) for _ in range(DEPTH)]).to(device, dtype)
    optimizer = torch.optim.SGD(layers.parameters(), lr=LR)
    eye = torch.eye(N, device=device, dtype=dtype)
    rows, cols = task.indices[0, :, 0], task.indices[0, :, 1]
    for _ in range(steps):
        optimizer.zero_grad()
        w = layers(eye).T  # eye @ W1^T @ W2^T @ W3^T = (W3 W2 W1)^T
        loss = (w[rows, cols] - task.values[0]).pow(2).mean()
        loss.backward()
        optimizer.step()


def ours(task, batch: int, steps: int, device, dtype) -> None:
    model = MatrixFactorization(N, N, DEPTH)
    # the paper's init scale 1e-3: ||W(0)||_F ≈ 1e-3·√N, the factorization's init_scale
    params = model.init(batch, torch.full((batch,), 1e-3 * N**0.5), generators(range(batch)), dtype=dtype,
                        device=device)
    config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_per_decade=0, sync_every=steps, progress=False)
    train(model, task, params, gradient_descent(), torch.full((batch,), LR), config)


def matmul_throughput(batch: int, device, dtype, repeats: int = 200) -> float:
    a = torch.randn(batch, N, N, device=device, dtype=dtype)
    b = torch.randn(batch, N, N, device=device, dtype=dtype)
    c = torch.empty(batch, N, N, device=device, dtype=dtype)

    def products() -> None:
        for _ in range(repeats):
            torch.bmm(a, b, out=c)

    seconds = best_seconds(products)
    return repeats * batch * 2 * N**3 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    target = low_rank_matrix(N, N, 5, seed=0)
    single = complete_from_target(target, OBS, [0]).to(device, dtype)
    batched = complete_from_target(target, OBS, list(range(16))).to(device, dtype)
    flops_per_step = 3 * (DEPTH - 1) * 2 * N**3  # (N-1) forward + 2(N-1) backward matmuls of n^3 MACs
    rows = {}
    rows["reference (nn.Linear + autograd + torch.optim)"] = (
        1, args.steps / best_seconds(lambda: reference_loop(single, args.steps, device, dtype)))
    rows["ours, single run"] = (1, args.steps / best_seconds(lambda: ours(single, 1, args.steps, device, dtype)))
    rows["ours, batch of 16"] = (16, args.steps / best_seconds(lambda: ours(batched, 16, args.steps, device, dtype)))
    limit = matmul_throughput(16, device, dtype) / flops_per_step
    ref = rows["reference (nn.Linear + autograd + torch.optim)"][1]
    print(f"100x100 depth-3 completion, {OBS} observations, {args.device} {args.dtype}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'loop':50s} {'steps/s':>10s} {'runs*steps/s':>13s} {'vs reference':>13s}")
    out = {}
    for name, (batch, steps_per_s) in rows.items():
        per_run = batch * steps_per_s
        print(f"{name:50s} {steps_per_s:10.0f} {per_run:13.0f} {per_run / ref:12.2f}x")
        out[name] = {"batch": batch, "steps_per_second": steps_per_s, "run_steps_per_second": per_run,
                     "ratio_to_reference": per_run / ref}
    batched_rate = rows["ours, batch of 16"][0] * rows["ours, batch of 16"][1]
    print(f"{'matmul-bound limit (batched bmm throughput)':50s} {'':10s} {limit:13.0f} "
          f"(ours batched reaches {batched_rate / limit:.0%} of it)")
    out["matmul_bound_run_steps_per_second"] = limit
    out["batched_fraction_of_limit"] = batched_rate / limit
    print("wrote", write_results("bench_matrix", {"device": args.device, "dtype": args.dtype, "rows": out}))


if __name__ == "__main__":
    main()
