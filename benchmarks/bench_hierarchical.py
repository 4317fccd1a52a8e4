"""Hierarchical tensor factorization speed (issue 3, performance).

1. Steps per second of the order-4 HT completion of Razin et al. 2022 (dims 8, balanced binary tree over
   adjacent modes, default widths — 64 here, every width that can matter —, 2048 observed entries, global
   RMSprop) through ``train``: one run and a batch of 8 runs.
2. Evaluation at integer indices without forming the tensor (the ConvAC circuit, nodes of a level batched):
   forward and forward+backward time for 5000 entries of an order-64 (8×8 image, 2×2 windows) and an
   order-784 (28×28 image, 2×2 windows) binary tensor, widths 15, init std 1/√15 (entries stay O(1)).

    python benchmarks/bench_hierarchical.py [--device cpu|cuda] [--steps 200] [--threads 1]

On a CPU shared with other busy processes, pass ``--threads 1``: PyTorch's default of one OpenMP thread per
core then spins against the other processes (here: 30x slower steps with 2 threads than with 1 on a loaded
2-core machine).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from _common import best_seconds, sync, write_results

from implicitrank.factorizations import HierarchicalFactorization, generators
from implicitrank.factorizations.mode_tree import square_windows_tree
from implicitrank.optim import global_rmsprop
from implicitrank.tasks.completion import Completion, complete_from_target
from implicitrank.tasks.hierarchical_truth import low_hierarchical_rank_tensor
from implicitrank.train import TrainConfig, train


def order_4_steps(device: torch.device, steps: int) -> dict:
    shape = (8, 8, 8, 8)
    target = low_hierarchical_rank_tensor(shape, 5, seed=0, frobenius_norm=64.0)
    single = complete_from_target(target, 2048, [0]).to(device, torch.float32)
    model = HierarchicalFactorization(shape)
    out: dict = {"widths": list(model.node_widths)}
    for batch in (1, 8):
        task = Completion(shape, single.indices, single.values.expand(batch, -1).clone())
        params = model.init(batch, model.scale_for_entry_std(1e-2), generators(range(batch)), device=device)
        config = TrainConfig(max_steps=steps, loss_threshold=0.0, record_per_decade=0, sync_every=steps,
                             progress=False)
        lr = torch.full((batch,), 1e-2, device=device)
        train(model, task, params, global_rmsprop(eps=1e-6), lr, config)  # warm-up
        sync(device)
        start = time.perf_counter()
        train(model, task, params, global_rmsprop(eps=1e-6), lr, config)
        sync(device)
        seconds = time.perf_counter() - start
        out[f"batch_{batch}"] = {"steps_per_second": steps / seconds, "run_steps_per_second": batch * steps / seconds}
    return out


def evaluation(device: torch.device, side: int, entries: int = 5000, width: int = 15) -> dict:
    order = side * side
    model = HierarchicalFactorization((2,) * order, square_windows_tree(side, side), widths=width)
    params = model.init(1, model.scale_for_entry_std(width**-0.5), generators([0]), device=device)
    leaves = [p.detach().requires_grad_(True) for p in params]
    indices = torch.randint(0, 2, (entries, order), generator=torch.Generator().manual_seed(0),
                            dtype=torch.uint8).to(device)

    def forward() -> None:
        with torch.no_grad():
            model.evaluate(params, indices)
        sync(device)

    def forward_backward() -> None:
        model.evaluate(leaves, indices).pow(2).mean().backward()
        sync(device)

    return {"order": order, "internal_nodes": len(model.tree.internal_nodes), "entries": entries, "width": width,
            "forward_seconds": best_seconds(forward), "forward_backward_seconds": best_seconds(forward_backward),
            "finite": bool(torch.isfinite(model.evaluate(params, indices)).all())}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200, help="steps timed for the order-4 case")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = order_4_steps(device, args.steps)
    evals = [evaluation(device, side) for side in (8, 28)]
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print("| case | measure | value |\n|---|---|---|")
    for batch in (1, 8):
        row = steps[f"batch_{batch}"]
        print(f"| order 4, dims 8, widths {steps['widths'][4:]}, 2048 obs, B={batch} | steps/s (run-steps/s) | "
              f"{row['steps_per_second']:.1f} ({row['run_steps_per_second']:.1f}) |")
    for row in evals:
        name = f"order {row['order']} ({row['internal_nodes']} internal nodes), widths {row['width']}"
        print(f"| {name}, {row['entries']} entries | forward | {1e3 * row['forward_seconds']:.1f} ms |")
        print(f"| | forward + backward | {1e3 * row['forward_backward_seconds']:.1f} ms |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS of the process: {peak:.0f} MB")
    path = write_results("bench_hierarchical", {"device": args.device, "order4": steps, "evaluation": evals,
                                                "peak_rss_mb": peak})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
