"""``implicitrank mf | tf | htf``: train one configuration (several seeds, init scales and learning
rates at once, as one batch) and write a run directory per run; ``implicitrank plot RUN_DIR``."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from ..plots import plot_run
from ..run import DTYPES, METHODS, RunConfig, run_batch
from ._common import default_out, format_table, int_list

COMMANDS = {
    "mf": ("matrix", "deep matrix factorization W = W_N...W_1 (Arora et al. 2019)"),
    "tf": ("cp", "CP tensor factorization (Razin, Maman & Cohen 2021)"),
    "htf": ("ht", "hierarchical tensor factorization over a mode tree (Razin, Maman & Cohen 2022)"),
}
TABLE = ("run", "status", "steps", "train_loss", "reconstruction_error", "unobserved_error", "effective_rank",
         "nuclear_norm", "seconds")


def register(subparsers) -> None:
    for command, (model, what) in COMMANDS.items():
        p = subparsers.add_parser(command, help=f"train a {what}",
                                  description=f"Train a {what} from small initialization and record its dynamics.",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_run_arguments(p, model)
        p.set_defaults(func=run_command, model=model)
    p = subparsers.add_parser("plot", help="(re)draw the plots of a run directory",
                              description="Draw quantities.png and errors.png from RUN_DIR/metrics.jsonl.")
    p.add_argument("run_dir", type=Path, help="a run directory written by mf/tf/htf")
    p.set_defaults(func=lambda a: print("\n".join(map(str, plot_run(a.run_dir)))) or 0)


def add_data_arguments(p: argparse.ArgumentParser, model: str) -> None:
    """The arguments that say which problem is solved (shared by the factorizations and baselines)."""
    d = RunConfig(model="matrix")
    data = p.add_argument_group("data")
    default_shape = list(d.shape) if model == "matrix" else [8, 8, 8]
    data.add_argument("--shape", type=int, nargs="+", default=default_shape, help="mode sizes of the target")
    data.add_argument("--rank", type=int, default=d.rank, help="rank of the generated ground truth")
    data.add_argument("--task", choices=("completion", "sensing"), default=d.task)
    data.add_argument("--num-observations", type=int, default=d.num_observations if model == "matrix" else 200,
                      help="observed entries (completion) or measurements (sensing)")
    data.add_argument("--target-norm", type=float, default=None,
                      help="Frobenius norm of the ground truth (default: sqrt of the number of entries)")
    data.add_argument("--data", default=None,
                      help="a completion problem from a file: .npz with 'matrix' and 'mask', or MovieLens u.data")
    data.add_argument("--data-seeds", type=int_list, default=[0], help="observation-set seeds (one run each)")
    data.add_argument("--truth-seed", type=int, default=0, help="seed of the generated ground truth")


def add_run_arguments(p: argparse.ArgumentParser, model: str) -> None:
    d = RunConfig(model="matrix")
    add_data_arguments(p, model)
    m = p.add_argument_group("model")
    if model == "matrix":
        m.add_argument("--depth", type=int, default=d.depth, help="number of factors N")
        m.add_argument("--width", type=int, default=None, help="hidden width (default: min(rows, cols))")
        m.add_argument("--init", choices=("gaussian", "balanced", "identity", "orthogonal"), default=d.init)
    else:
        m.add_argument("--components", type=int, default=None,
                       help="CP components R / hierarchical width cap (default: enough not to constrain the rank)")
        m.add_argument("--init-mean", type=float, default=0.0, help="mean of the factor entries at init")
    if model == "cp":
        m.add_argument("--init", choices=("gaussian", "balanced"), default=d.init,
                       help="balanced: each component's factors start with equal norms (the same W(0))")
    if model == "ht":
        m.add_argument("--init", choices=("gaussian", "balanced"), default=d.init,
                       help="balanced: every local component's vectors start with equal norms")
        m.add_argument("--width", type=int, default=None, help="width of every internal node (default: up to the cap)")
        m.add_argument("--tree", default="balanced",
                       help="mode tree: balanced | opposite | windows | windows:HxW[:K] | a literal like ((0,1),(2,3))")
    m.add_argument("--init-scale", type=float, nargs="+", default=[d.init_scale],
                   help="init scale(s), one run each: the root-mean-square Frobenius norm of the end-to-end "
                        "tensor at init, sqrt(E||W(0) - E W(0)||^2), for every model")
    m.add_argument("--seeds", type=int_list, default=[0], help="init seeds, e.g. 0..4 (one run each)")
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", choices=METHODS, default=d.optimizer)
    o.add_argument("--lr", type=float, nargs="+", default=[d.lr], help="learning rate(s), one run each")
    o.add_argument("--eps", type=float, default=d.eps, help="global RMSprop epsilon")
    o.add_argument("--rtol", type=float, default=d.rtol, help="gradient-flow relative tolerance")
    o.add_argument("--atol", type=float, default=d.atol, help="gradient-flow absolute tolerance")
    o.add_argument("--max-steps", type=int, default=d.max_steps)
    o.add_argument("--loss-threshold", type=float, default=d.loss_threshold, help="stop a run at this train loss")
    o.add_argument("--dtype", choices=tuple(DTYPES), default=d.dtype)
    o.add_argument("--device", default=d.device, help="auto | cpu | cuda")
    r = p.add_argument_group("recording")
    r.add_argument("--record-every", type=int, default=d.record_every, help="record metrics every k steps (0: off)")
    r.add_argument("--record-per-decade", type=int, default=d.record_per_decade,
                   help="log-spaced records per decade of steps")
    r.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    r.add_argument("--top", type=int, default=d.top, help="how many quantities to record")
    r.add_argument("--out", type=Path, default=None, help="output directory (default: runs/COMMAND-TIME)")
    r.add_argument("--resume", action="store_true", help="continue unfinished runs found in --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """One config per (seed, data seed, init scale, lr) combination."""
    shared = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__}
    shared["shape"] = tuple(args.shape)
    return [RunConfig(**{**shared, "seed": s, "data_seed": ds, "init_scale": i, "lr": lr})
            for s, ds, i, lr in itertools.product(args.seeds, args.data_seeds, args.init_scale, args.lr)]


def run_name(config: RunConfig) -> str:
    depth = f"depth{config.depth}-" if config.model == "matrix" else ""
    return f"{depth}init{config.init_scale:g}-lr{config.lr:g}-seed{config.seed}-data{config.data_seed}"


def run_command(args: argparse.Namespace) -> int:
    configs = configs_from_args(args)
    out = args.out or default_out(args.command)
    dirs = [out / run_name(c) for c in configs]
    result = run_batch(configs, dirs, resume=args.resume, progress=not args.no_progress)
    rows = [{"run": d.name, **s} for d, s in zip(dirs, result.summaries)]
    print(format_table(rows, TABLE))
    for row in rows:
        if row.get("message"):
            print(f"warning: {row['run']}: {row['message']}")
    print(f"results in {out}")
    return 0
