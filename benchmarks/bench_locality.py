"""Throughput of the locality experiments: training steps with and without the interaction regularizer, and
Pathfinder generation.

Prints a table and writes benchmarks/results/bench_locality.json. The regularized step runs a second forward pass
(patch J shuffled) and two double-backward gradients; Razin, Maman & Cohen (2022) report it costs about 6× a
plain step. Ratios are measured in the same run, so they compare like with like.

    python benchmarks/bench_locality.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from implicitrank.cnn import (
    Box,
    PathfinderConfig,
    derangement,
    generate_pathfinder,
    pair_slots,
    resnet18,
    training_step,
)
from implicitrank.experiments.locality import build_model, setup_for


def step_rate(model, x, y, patches, reg_weight, seconds) -> float:
    """Training images per second of SGD steps with loss BCE + λ·R (λ = 0: plain step)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)

    def step():
        perm = derangement(len(x), generator, x.device)
        loss, *_ = training_step(model, x.clone(), y, patches, perm, reg_weight, 1e-8)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return count * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timings, skip the ResNet18 224-px case")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seconds = args.seconds / 2 if args.quick else args.seconds
    same, path = setup_for("is-same-class", "quick"), setup_for("pathfinder", "quick")
    cases = [("Is Same quick: ResNet18 x1/8, 1x8x56", lambda: build_model(same, 1), (1, *same.canvas_hw), 64,
              pair_slots((8, 8), same.canvas_hw, max(same.difficulties))),
             ("Pathfinder quick: plain CNN, 1x32x32", lambda: build_model(path, 1), (1, 32, 32), 64,
              (Box(4, 4, path.patch_size, path.patch_size), Box(20, 20, path.patch_size, path.patch_size)))]
    cases.append(("ResNet18 x1/4, 3x64x64", lambda: resnet18(width=0.25, in_channels=3), (3, 64, 64), 32,
                  (Box(16, 0, 32, 32), Box(16, 32, 32, 32))))
    if not args.quick:
        cases.append(("ResNet18 (paper), 3x224x224", lambda: resnet18(in_channels=3), (3, 224, 224),
                      64 if device.type == "cuda" else 8, (Box(96, 0, 32, 32), Box(96, 192, 32, 32))))
    rows = []
    for name, build, shape, batch, patches in cases:
        torch.manual_seed(0)
        x = torch.rand(batch, *shape, device=device)
        y = (torch.rand(batch, device=device) > 0.5).float()
        plain = step_rate(build().to(device), x, y, patches, 0.0, seconds)
        regularized = step_rate(build().to(device), x, y, patches, 1.0, seconds)
        rows.append({"case": name, "batch": batch, "plain_images_per_s": plain,
                     "regularized_images_per_s": regularized, "cost_ratio": plain / regularized})
    generation = []
    configs = [("paper L=9, 300->150", PathfinderConfig(length=9), 128 if args.quick else 256),
               ("paper L=3, 300->150", PathfinderConfig(length=3), 128 if args.quick else 256),
               ("quick L=6, 32x32", replace(setup_for("pathfinder", "quick").pathfinder, length=6), 512)]
    for name, config, n in configs:
        start = time.perf_counter()
        generate_pathfinder(config, n, seed=0)
        generation.append({"case": name, "images": n, "images_per_s": n / (time.perf_counter() - start)})
    print(f"device: {device}, torch threads: {torch.get_num_threads()}")
    print(f"{'training step':38s} {'batch':>5s} {'plain img/s':>12s} {'reg. img/s':>11s} {'cost ratio':>10s}")
    for r in rows:
        print(f"{r['case']:38s} {r['batch']:5d} {r['plain_images_per_s']:12.1f} {r['regularized_images_per_s']:11.1f} "
              f"{r['cost_ratio']:10.2f}")
    print(f"{'Pathfinder generation':34s} {'images':>6s} {'img/s':>10s}")
    for r in generation:
        print(f"{r['case']:34s} {r['images']:6d} {r['images_per_s']:10.1f}")
    out = Path(__file__).parent / "results" / "bench_locality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "training": rows,
                               "pathfinder": generation}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
