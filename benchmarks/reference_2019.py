"""An eager reference run written the way the 2019 code is written: issue 18's yardstick (ours, written for this
benchmark from a reading of the original scripts, not anyone's code).

Deep matrix factorization W = W_N⋯W_1 completing a 100×100 rank-5 matrix from observed entries (Arora et al. 2019,
§5; the same data as ``implicitrank mf``: ``low_rank_matrix`` and ``complete_from_target``), trained by global
RMSprop from a Gaussian init until the train loss is <= the threshold, one process per run. What each step does is
what the original training script does each step:

* the factors are bias-free ``nn.Linear`` layers and W is their chained product, built on the autograd graph;
* the train loss over the observed entries, and the parameters' squared norm (also on the graph), every step;
* ``loss.backward()``, then the test error over the whole matrix and the train loss read on the host, every step;
* the optimizer keeps one second moment over all parameters, summed parameter by parameter as 0-d tensors, and
  updates each parameter by ``-(lr / sqrt(bias-corrected moment + eps)) * grad``;
* every ``--log-every`` (1000) steps, and at the last step: the SVD of W, the gradient ∇L(W) projected on the
  singular vectors (diagonal vs off-diagonal statistics), the Schatten-2/N quasi-norm, the gradient and parameter
  RMS, a printed line, and W saved to disk.

Init: each factor's entries are N(0, s²) with s = init_scale^(1/N)/√n, so ‖W(0)‖_F ≈ init_scale·√n (the 2019
code's convention; ``implicitrank``'s ``--init-scale`` is ‖W(0)‖_F itself, so ``--init-scale 1e-3`` here is
``implicitrank mf --init-scale 1e-2`` for n = 100).

    python benchmarks/reference_2019.py [--depth 3] [--lr 1e-3] [--init-scale 1e-3] [--max-steps 1000000]
        [--threads 1] [--time-steps K]

``--time-steps K`` runs K steps and prints the wall and CPU seconds per step and the CPU seconds before the first
step, instead of training to the threshold.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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
    parser.add_argument("--max-steps", type=int, default=1_000_000)
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
    layers = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(args.depth)])
    std = args.init_scale ** (1.0 / args.depth) / n**0.5
    for layer in layers:
        nn.init.normal_(layer.weight, std=std)
    params = list(layers.parameters())
    second, decay, count = torch.tensor(0.0), 0.99, 0
    out = Path(tempfile.mkdtemp(prefix="reference-2019-"))
    steps = args.time_steps or args.max_steps
    step_start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        w = layers[0].weight.t()  # W^T = W_1^T W_2^T ⋯, built layer by layer as the network's forward pass
        for layer in layers[1:]:
            w = layer(w)
        w = w.t()
        loss = (w[rows, cols] - y).pow(2).mean()
        param_norm = sum(p.pow(2).sum() for p in params)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            test_error = (truth - w).reshape(-1).pow(2).mean()
            done = not args.time_steps and loss.item() <= args.threshold
            if step % args.log_every == 0 or done:
                _log(step, w, loss, test_error, param_norm, params, rows, cols, y, args, out)
            if done:
                break
            second.mul_(decay)
            count += 1
            for p in params:
                second.add_((1 - decay) * p.grad.pow(2).sum().float())
            size = args.lr / second.div(1 - decay**count).sqrt().add(args.eps)
            for p in params:
                p.add_(-size * p.grad)
    took, cpu = time.perf_counter() - step_start, time.process_time() - cpu_start
    if args.time_steps:
        print(f"seconds_per_step {took / steps:.6e} cpu_seconds_per_step {cpu / steps:.6e} "
              f"startup_cpu_seconds {cpu_start:.3f}")
    print(f"steps {step} loss {loss.item():.3e} seconds {time.perf_counter() - started:.2f}")


def _log(step, w, loss, test_error, param_norm, params, rows, cols, y, args, out: Path) -> None:
    """The every-1000-steps diagnostics: spectrum, ∇L(W) in the singular basis, norms, a line, W on disk."""
    u, sigma, vh = torch.linalg.svd(w)
    schatten = sigma.pow(2.0 / args.depth).sum()
    grad_w = torch.zeros_like(w)
    grad_w[rows, cols] = (w[rows, cols] - y) / len(y)
    projected = (u.t() @ grad_w @ vh.t()).abs()
    diagonal = projected.diagonal()
    off_diagonal = projected[~torch.eye(len(projected), dtype=torch.bool)]
    grads = torch.cat([p.grad.reshape(-1) for p in params]).numpy()
    grad_rms = float((grads**2).mean() ** 0.5)
    param_rms = (param_norm.item() / len(grads)) ** 0.5
    print(f"step {step}: train {loss.item():.3e} test {test_error.item():.3e} schatten {schatten:.3e} "
          f"grad {grad_rms:.3e} params {param_rms:.3e} diag {diagonal.mean():.2e}±{diagonal.std():.2e} "
          f"off {off_diagonal.mean():.2e}±{off_diagonal.std():.2e} sigma {sigma[:args.rank + 1].tolist()}",
          flush=True)
    torch.save(w.detach(), out / "final.pt")


if __name__ == "__main__":
    main()
