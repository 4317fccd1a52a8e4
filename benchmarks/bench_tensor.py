"""CP tensor factorization at scale (issue 3, performance).

1. One epoch of the order-784 completion of Razin et al. 2021 §5.2: 60,000 synthetic binary 28×28
   images (MNIST-like: ink in a central blob), labels 2/0, CP with R = 15, init mean 1, Adam, batch 5000
   (12 steps). Reports the epoch time, the time of the train-error pass (60k forward) alone, and the
   peak resident memory of the process (target < 1 GB; indices stay uint8, no one-hot cache).
2. Steps per second of the order-4, dims-10 CP with R = 1000 on 2000 observations (Razin et al. 2021
   §5.1) with global RMSprop through ``train``: one run and a batch of 4 runs.

Each case runs in a fresh subprocess so its peak memory is its own.

    python benchmarks/bench_tensor.py [--device cpu|cuda] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from _common import sync, write_results

from implicitrank.factorizations import CPFactorization, generators
from implicitrank.optim import adam, global_rmsprop
from implicitrank.tasks.completion import Completion, minibatches
from implicitrank.tasks.natural import one_vs_all_error
from implicitrank.tasks.tensors import low_rank_tensor, prefix_completion
from implicitrank.train import TrainConfig, train


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def synthetic_binary_images(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 784) uint8 pixels: ink with probability 0.35 inside a central 18×14 blob, 0.02 outside."""
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    blob = (((rows - 13.5) / 9.0) ** 2 + ((cols - 13.5) / 7.0) ** 2 <= 1.0).reshape(-1)
    prob = torch.where(blob, 0.35, 0.02)
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([(torch.rand(5000, 784, generator=gen) < prob).to(torch.uint8) for _ in range(count // 5000)])


def order_784_epoch(device: torch.device) -> dict:
    baseline = peak_rss_mb()
    images = synthetic_binary_images(60_000).to(device)
    labels = torch.where(torch.rand(1, 60_000, generator=torch.Generator().manual_seed(1)) < 0.1, 2.0, 0.0)
    task = Completion((2,) * 784, images, labels.to(device))
    model = CPFactorization(task.shape, components=15, init_mean=1.0)
    params = model.init(1, model.scale_for_entry_std(1e-3), generators([0]), device=device)
    # one epoch of minibatch Adam: the batched loop with a sampler (12 batches of 5000)
    config = TrainConfig(max_steps=12, loss_threshold=0.0, record_per_decade=0, progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    state = train(model, task, params, adam(), torch.tensor([5e-4]), config, sample=minibatches(task, 5000))
    sync(device)
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    error = one_vs_all_error(model, state.params, task.indices, task.values)
    sync(device)
    error_pass = time.perf_counter() - start
    out = {"epoch_seconds_with_error_pass": train_seconds + error_pass, "error_pass_seconds": error_pass,
           "train_seconds": train_seconds, "train_cpu_seconds": train_cpu, "steps": state.step,
           "train_error": float(error[0]), "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": baseline}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def order_4_steps(device: torch.device, steps: int) -> dict:
    shape = (10, 10, 10, 10)
    task = prefix_completion(low_rank_tensor(shape, 5, seed=0), 2000, seed=0).to(device, torch.float32)
    out = {}
    for batch in (1, 4):
        batched = Completion(shape, task.indices, task.values.expand(batch, -1).clone())
        model = CPFactorization(shape, components=1000)
        params = model.init(batch, model.scale_for_entry_std(5e-3), generators(range(batch)), device=device)
        config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_per_decade=0, sync_every=steps,
                             progress=False)
        warm_up = TrainConfig(max_steps=3, loss_threshold=0.0, record_per_decade=0, progress=False)
        train(model, batched, params, global_rmsprop(eps=1e-6), torch.full((batch,), 1e-2), warm_up)
        start, cpu = time.perf_counter(), time.process_time()
        train(model, batched, params, global_rmsprop(eps=1e-6), torch.full((batch,), 1e-2), config)
        sync(device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        out[f"batch_{batch}"] = {"steps_per_second": steps / seconds, "run_steps_per_second": batch * steps / seconds,
                                 "cpu_seconds_per_step": cpu_seconds / steps}
    out["peak_rss_mb"] = peak_rss_mb()
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30, help="steps timed for the order-4 case")
    parser.add_argument("--case", choices=("order784", "order4"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.case == "order784":
        print(json.dumps(order_784_epoch(device)))
        return
    if args.case == "order4":
        print(json.dumps(order_4_steps(device, args.steps)))
        return
    results = {}
    for case in ("order784", "order4"):
        command = [sys.executable, __file__, "--case", case, "--device", args.device, "--steps", str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[case] = json.loads(done.stdout.strip().splitlines()[-1])
    big, small = results["order784"], results["order4"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} (wall times on a shared machine; CPU seconds are the process's own)")
    print("| case | measure | value |\n|---|---|---|")
    print(f"| order 784, R=15, 60k entries, batch 5000 | one epoch (12 Adam steps) | {big['train_seconds']:.2f} s "
          f"({big['train_cpu_seconds']:.2f} CPU s) |")
    print(f"| | train-error pass over 60k entries | {big['error_pass_seconds']:.2f} s |")
    print(f"| | peak RSS of the process (after imports: {big['rss_after_imports_mb']:.0f} MB) | "
          f"{big['peak_rss_mb']:.0f} MB |")
    for batch in (1, 4):
        row = small[f"batch_{batch}"]
        print(f"| order 4, dims 10, R=1000, 2000 obs, B={batch} | steps/s (run-steps/s; CPU s per step) | "
              f"{row['steps_per_second']:.1f} ({row['run_steps_per_second']:.1f}; {row['cpu_seconds_per_step']:.2f}) |")
    path = write_results("bench_tensor", {"device": args.device, "load_average": load, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
