"""Cost of factorized layers (issue 8): training-step time of the over-parameterized MLP/CNN relative to the
plain one, and inference time after ``collapse`` relative to the plain one (target: equal within noise).

The networks are the digits demo's (MLP 64-h-h-10, CNN conv3x3-conv3x3/2-linear on 1x8x8 images), every
layer of depth N. "plain" is the pure ``nn.Linear``/``nn.Conv2d`` network (the collapse of depth 1). The
variants are timed interleaved (plain, deep, collapsed, plain, ...) so that load on a shared machine hits
them alike; each time is the best of ``--repeats`` rounds of ``--steps`` steps, all in this one run.

    python benchmarks/bench_layers.py [--batch-size 256] [--hidden 256] [--steps 10] [--depths 2,3,4] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch
from _common import write_results
from torch.nn import functional as F

from implicitrank.nn import collapse
from implicitrank.nn.digits_experiment import DigitsConfig, build


def train_steps(model, x, y, steps: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def infer(model, x, steps: int) -> None:
    with torch.no_grad():
        for _ in range(steps):
            model(x)


def interleaved_best(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Best wall time of each callable over ``repeats`` rounds, one call of each per round (after a warm-up)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width")
    parser.add_argument("--channels", type=int, nargs=2, default=(32, 64), help="CNN channels")
    parser.add_argument("--depths", type=lambda s: [int(v) for v in s.split(",")], default=[2, 3, 4])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    config = DigitsConfig(hidden=args.hidden, channels=tuple(args.channels))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 1, 8, 8, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)

    rows = []
    for architecture in ("mlp", "cnn"):
        plain = collapse(build(architecture, 1, config, torch.Generator().manual_seed(0))).to(device)
        for depth in args.depths:
            deep = build(architecture, depth, config, torch.Generator().manual_seed(0)).to(device)
            collapsed = collapse(deep)
            best = interleaved_best({
                "plain_train": partial(train_steps, plain, x, y, args.steps),
                "deep_train": partial(train_steps, deep, x, y, args.steps),
                "plain_infer": partial(infer, plain, x, args.steps),
                "deep_infer": partial(infer, deep, x, args.steps),
                "collapsed_infer": partial(infer, collapsed, x, args.steps),
            }, args.repeats)
            rows.append({"architecture": architecture, "depth": depth,
                         "params_plain": sum(p.numel() for p in plain.parameters()),
                         "params_deep": sum(p.numel() for p in deep.parameters()),
                         **{f"{name}_ms": 1e3 * seconds / args.steps for name, seconds in best.items()},
                         "train_vs_plain": best["deep_train"] / best["plain_train"],
                         "infer_vs_plain": best["deep_infer"] / best["plain_infer"],
                         "collapsed_vs_plain": best["collapsed_infer"] / best["plain_infer"]})

    print(f"device {device}, batch {args.batch_size}, threads {args.threads}, best of {args.repeats} rounds of "
          f"{args.steps} steps; times per step in ms")
    print(f"{'model':<6}{'depth':>5}{'params':>16}{'train plain':>12}{'deep':>8}{'x':>6}{'infer plain':>12}"
          f"{'deep':>8}{'x':>6}{'collapsed':>10}{'x':>6}")
    for r in rows:
        params = f"{r['params_plain']}->{r['params_deep']}"
        print(f"{r['architecture']:<6}{r['depth']:>5}{params:>16}"
              f"{r['plain_train_ms']:>12.3f}{r['deep_train_ms']:>8.3f}{r['train_vs_plain']:>6.2f}"
              f"{r['plain_infer_ms']:>12.3f}{r['deep_infer_ms']:>8.3f}{r['infer_vs_plain']:>6.2f}"
              f"{r['collapsed_infer_ms']:>10.3f}{r['collapsed_vs_plain']:>6.2f}")
    path = write_results("layers", {"args": vars(args) | {"device": str(device)}, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
