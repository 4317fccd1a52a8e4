"""An eager reference run written the way the 2019 code is written: one process per run, autograd, a logging line
every 1000 steps (issue 18's yardstick; ours, written for this benchmark, not anyone's code).

Deep matrix factorization W = W_N⋯W_1 completing a 100×100 rank-5 matrix from observed entries (Arora et al. 2019,
§5; the same data as ``implicitrank mf``: ``low_rank_matrix`` and ``complete_from_target``), trained by global
RMSprop (one second moment over all parameters) from a Gaussian init until the train loss is <= the threshold.
Every ``--log-every`` steps it computes and prints the loss, the reconstruction error and the top singular values,
as the original scripts log. The factors are ``nn.Parameter``s, the loss is ``loss.backward()``.

    python benchmarks/reference_2019.py [--depth 3] [--lr 1e-3] [--init-scale 1e-3] [--max-steps 100000]
        [--threads 1] [--time-steps K]

``--time-steps K`` runs K steps and prints the wall and CPU seconds per step and the CPU seconds before the first
step, instead of training to the threshold (``bench_one_run.py`` and ``bench_grid.py`` estimate full runs from them).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from implicitrank.tasks import complete_from_target, low_rank_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rank", type=int, default=5)
    parser.add_argument("--observations", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eps", type=float, default=1e-4)
    parser.add_argument("--init-scale", type=float, default=1e-3)
    parser.add_argument("--threshold", type=float, default=1e-6)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-steps", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    n = args.size
    truth = low_rank_matrix(n, n, args.rank, seed=0).float()
    task = complete_from_target(truth, args.observations, [args.seed])
    rows, cols = task.indices[0, :, 0], task.indices[0, :, 1]
    y = task.values[0].float()
    torch.manual_seed(args.seed)
    std = args.init_scale ** (1.0 / args.depth) / n**0.5
    factors = nn.ParameterList([nn.Parameter(torch.randn(n, n) * std) for _ in range(args.depth)])
    second, decay = 0.0, 0.99
    steps = args.time_steps or args.max_steps
    step_start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps + 1):
        w = factors[0]
        for f in factors[1:]:
            w = f @ w
        loss = (w[rows, cols] - y).pow(2).mean()
        if step % args.log_every == 0:
            with torch.no_grad():
                error = float((w - truth).norm() / truth.norm())
                sigma = torch.linalg.svdvals(w)[:args.rank + 1].tolist()
            print(f"step {step} loss {float(loss.detach()):.3e} error {error:.3e} sigma {[round(s, 4) for s in sigma]}",
                  flush=True)
        if not args.time_steps and float(loss) <= args.threshold:
            break
        for f in factors:
            f.grad = None
        loss.backward()
        with torch.no_grad():
            sq = sum(float(f.grad.pow(2).sum()) for f in factors)
            second = decay * second + (1 - decay) * sq
            size = args.lr / ((second / (1 - decay ** (step + 1))) ** 0.5 + args.eps)
            for f in factors:
                f -= size * f.grad
    took, cpu = time.perf_counter() - step_start, time.process_time() - cpu_start
    if args.time_steps:
        print(f"seconds_per_step {took / (steps + 1):.6e} cpu_seconds_per_step {cpu / (steps + 1):.6e} "
              f"startup_cpu_seconds {cpu_start:.3f}")
    print(f"steps {step} loss {float(loss.detach()):.3e} seconds {time.perf_counter() - started:.2f}")


if __name__ == "__main__":
    main()
