"""``implicitrank mf | tf | htf``: train one configuration (several seeds, init scales and learning
rates at once, as one batch) and write a run directory per run; ``implicitrank plot RUN_DIR``."""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from . import _common, _defaults
from ._common import format_table, int_list

if TYPE_CHECKING:
    from ..run import RunConfig

COMMANDS = {
    "mf": ("matrix", "deep matrix factorization W = W_N...W_1 (Arora et al. 2019)"),
    "tf": ("cp", "CP tensor factorization (Razin, Maman & Cohen 2021)"),
    "htf": ("ht", "hierarchical tensor factorization over a mode tree (Razin, Maman & Cohen 2022)"),
}
TABLE = ("run", "status", "steps", "train_loss", "reconstruction_error", "unobserved_error", "effective_rank",
         "nuclear_norm", "seconds")
DATA_FILES = ("u.data",)  # what --data finds in a directory: MovieLens 100K's ratings


def register(subparsers) -> None:
    for command, (model, what) in COMMANDS.items():
        p = _common.add_parser(subparsers, command, help=f"train a {what}",
                               description=f"Train a {what} from small initialization and record its dynamics.")
        add_run_arguments(p, model)
        p.set_defaults(func=run_command, model=model)
    p = _common.add_parser(subparsers, "plot", help="(re)draw the plots of a run directory",
                           description="Draw quantities.png and errors.png from RUN_DIR/metrics.jsonl.")
    p.add_argument("run_dir", type=Path, help="a run directory written by mf/tf/htf")
    p.set_defaults(func=plot_command)


def defaults_for(model: str) -> dict:
    """The command's defaults: the matrix paper's for ``mf``/``nnm``, the tensor papers' for ``tf``/``htf``."""
    return {"matrix": _defaults.RUN, "cp": _defaults.TENSOR, "ht": _defaults.HIERARCHICAL}[model]


def add_data_arguments(p: argparse.ArgumentParser, model: str, seeds_help: str = "one run each") -> None:
    """The arguments that say which problem is solved (shared by the factorizations and baselines)."""
    d = defaults_for(model)
    files = model == "matrix"  # data files hold matrix completion problems: tf and htf refuse them (RunConfig)
    data = p.add_argument_group("data")
    data.add_argument("--shape", type=int, nargs="+", default=None,
                      help=f"mode sizes of the target (default: {' '.join(map(str, d['shape']))}"
                           + ("; with a .npz --data: its matrix's; with a MovieLens u.data: 943 1682, all of "
                              "ML-100K's users and items, for a split such as u1.base too, more only where its ids go "
                              "beyond)" if files else ")"))
    data.add_argument("--rank", type=int, default=d["rank"], help="rank of the generated ground truth")
    data.add_argument("--task", choices=_defaults.TASKS, default=d["task"], help="what is observed")
    data.add_argument("--num-observations", type=int, default=None,
                      help=f"observed entries (completion) or measurements (sensing) (default: {d['num_observations']}"
                           + ("; with a .npz --data: its mask's; with MovieLens: ratings trained on)" if files
                              else ")"))
    data.add_argument("--target-norm", type=float, default=None,
                      help="Frobenius norm of the ground truth (default: sqrt of the number of entries)")
    if files:
        _common.add_data(data, "a completion problem: .npz with 'matrix' and 'mask', or MovieLens u.data")
    else:  # kept so that a data file gets the one-line refusal that names mf and nnm, not 'unrecognized arguments'
        data.add_argument("--data", default=None, metavar="PATH",
                          help="not for tf/htf: data files (.npz, MovieLens u.data) hold matrix completion problems, "
                               "read by implicitrank mf and nnm; tf and htf train on a generated tensor")
    data.add_argument("--data-seeds", type=int_list, default=[0], help=f"observation-set seeds, {seeds_help}")
    data.add_argument("--truth-seed", type=int, default=0, help="seed of the generated ground truth")


def add_run_arguments(p: argparse.ArgumentParser, model: str) -> None:
    d = defaults_for(model)
    add_data_arguments(p, model)
    m = p.add_argument_group("model")
    if model == "matrix":
        m.add_argument("--depth", type=int, default=d["depth"], help="number of factors N")
        m.add_argument("--width", type=int, default=None, help="hidden width (default: min(rows, cols))")
        m.add_argument("--init", choices=_defaults.MATRIX_INITS, default=d["init"], help="how the factors start")
    else:
        m.add_argument("--components", type=int, default=None,
                       help="CP components R / hierarchical width cap (default: enough not to constrain the rank)")
        m.add_argument("--init-mean", type=float, default=0.0, help="mean of the factor entries at init")
    if model == "cp":
        m.add_argument("--init", choices=_defaults.CP_INITS, default=d["init"],
                       help="balanced: each component's factors start with equal norms (the same W(0))")
    if model == "ht":
        m.add_argument("--init", choices=_defaults.HT_INITS, default=d["init"],
                       help="balanced: every local component's vectors start with equal norms")
        m.add_argument("--width", type=int, default=None, help="width of every internal node (default: up to the cap)")
        m.add_argument("--tree", default="balanced",
                       help="mode tree: balanced | opposite | windows | windows:HxW[:K] | a literal like ((0,1),(2,3))")
    init = m.add_mutually_exclusive_group()  # two spellings of one size of W(0)
    std = _defaults.INIT_STD.get(model)
    init.add_argument("--init-scale", type=float, nargs="+", default=None if std else [d["init_scale"]],
                      help="init scale(s), one run each: the root-mean-square Frobenius norm of the end-to-end "
                           "tensor at init, sqrt(E||W(0) - E W(0)||^2), for every model"
                           + (" (default: the one --init-std gives)" if std else ""))
    init.add_argument("--init-std", type=float, nargs="+",
                      help="init std(s), one run each, the tensor papers' convention: the std of every factor "
                           "entry of the gaussian init, taken as the --init-scale that gives it"
                           + (f" (default: {std})" if std else ""))
    _common.add_seeds(m)
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", choices=_defaults.METHODS, default=d["optimizer"], help="training method")
    o.add_argument("--lr", type=float, nargs="+", default=[d["lr"]], help="learning rate(s), one run each")
    o.add_argument("--eps", type=float, default=d["eps"], help="global RMSprop epsilon")
    o.add_argument("--rtol", type=float, default=d["rtol"], help="gradient-flow relative tolerance")
    o.add_argument("--atol", type=float, default=d["atol"], help="gradient-flow absolute tolerance")
    o.add_argument("--flow-method", choices=_defaults.FLOW_METHODS, default=d["flow_method"],
                   help="gradient-flow integrator: dopri5 (Dormand-Prince 5(4)), bosh3 (Bogacki-Shampine 3(2)) or "
                        "rkc (Runge-Kutta-Chebyshev, for the stiff phase after take-off)")
    o.add_argument("--max-steps", type=int, default=d["max_steps"], help="step cap per run")
    o.add_argument("--loss-threshold", type=float, default=d["loss_threshold"], help="stop a run at this train loss")
    _common.add_dtype(o, d["dtype"])
    _common.add_device(o, d["device"])
    _common.add_threads(o)
    r = p.add_argument_group("recording")
    r.add_argument("--record-every", type=int, default=d["record_every"], help="record metrics every k steps (0: off)")
    r.add_argument("--record-per-decade", type=int, default=d["record_per_decade"],
                   help="log-spaced records per decade of steps")
    r.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"], help="steps between checkpoints")
    r.add_argument("--top", type=int, default=d["top"], help="how many quantities to record")
    _common.add_out(r, "COMMAND")
    _common.add_resume(r)
    _common.add_tensorboard(r)
    _common.add_progress(r)


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """One config per (seed, data seed, init scale, lr) combination."""
    from ..run import RunConfig

    refuse_unused_options(args)
    shared = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__}
    shared["data"] = _common.resolve_data(args.data, DATA_FILES)
    shared |= resolve_problem(args, shared["data"])
    # One of the two is given, or neither: then mf has its --init-scale default and tf/htf the tensor papers' std.
    std = _defaults.INIT_STD.get(args.model)
    stds = args.init_std or ([std] if std and args.init_scale is None else None)
    scales = scales_for_entry_std(stds, shared) if stds else args.init_scale
    return [RunConfig(**{**shared, "seed": s, "data_seed": ds, "init_scale": i, "lr": lr})
            for s, ds, i, lr in itertools.product(args.seeds, args.data_seeds, scales, args.lr)]


def refuse_unused_options(args: argparse.Namespace) -> None:
    """Refuse an optimization option set away from its default for an optimizer that does not use it, and ``mf``'s
    ``--width`` at ``--depth 1``.

    ``--rtol``, ``--atol`` and ``--flow-method`` configure ``gradient-flow`` only, ``--eps`` ``global-rmsprop``
    only, and ``--lr`` every optimizer but ``gradient-flow``: a value given for another optimizer would be ignored
    without a word, and the run would not be the one asked for.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``mf``/``tf``/``htf`` arguments.

    Raises
    ------
    UsageError
        Naming the option and the optimizers that use it.
    """
    from ..run import FIELD_USERS  # which optimizers use which option, as sweep specs check it

    d = defaults_for(args.model)
    for name, (owner, users) in FIELD_USERS.items():
        if owner != "optimizer":
            continue
        value, default = getattr(args, name), ([d[name]] if name == "lr" else d[name])
        if args.optimizer not in users and value != default:
            raise UsageError(f"--{name.replace('_', '-')} applies to --optimizer {' | '.join(users)} only; "
                             f"--optimizer {args.optimizer} does not use it (leave it out)")
    # (not in RunConfig: a sweep whose base sets a width may have depth 1 among its axis's values)
    if args.model == "matrix" and args.width is not None and args.depth == 1:
        raise UsageError("--width applies to --depth >= 2 only: a depth-1 factorization is W itself, with no hidden "
                         "width (leave it out)")


def scales_for_entry_std(stds: list[float], shared: dict) -> list[float]:
    """``--init-std`` as init scales: for each std, the ||W(0)||_F whose gaussian init draws every factor entry with it.

    Parameters
    ----------
    stds : list of float
        The per-entry stds of the factors (the tensor papers' convention).
    shared : dict
        The ``RunConfig`` fields the runs share; they configure the model whose ``scale_for_entry_std`` converts.

    Returns
    -------
    list of float
        One init_scale per std.

    Raises
    ------
    UsageError
        When a std is not positive, or gives an init_scale outside float64.
    """
    from ..run import MODELS, RunConfig

    model = MODELS[shared["model"]].build(RunConfig(**{**shared, "init_scale": 1.0, "lr": 1.0}))  # (per-run values)
    scales = []
    for std in stds:
        if not 0 < std < math.inf:
            raise UsageError(f"--init-std must be positive (finite and > 0), got {std}")
        try:
            scales.append(model.scale_for_entry_std(std))
        except ValueError as err:  # an init_scale outside float64
            mean = shared.get("init_mean") or 0.0  # the factors' mean enters the conversion too
            given = f"--init-std {std:g}" + (f" with --init-mean {mean:g}" if mean else "")
            raise UsageError(f"{given}: {err}") from err
    return scales


def resolve_problem(args: argparse.Namespace, data: str | None) -> dict[str, object]:
    """``shape`` and ``num_observations``: ``--shape`` and ``--num-observations`` (or their defaults), or with
    ``data`` (the resolved ``--data``) the file's shape and, for a ``.npz``, its mask's observed entries (either
    option given too must equal the file's; ``--rank``, ``--target-norm`` and ``--truth-seed``, which describe a
    generated ground truth, are refused)."""
    model = getattr(args, "model", "matrix")
    defaults = defaults_for(model)
    count = args.num_observations if args.num_observations is not None else defaults["num_observations"]
    if data is None or model != "matrix":  # (a tensor model with --data is refused by RunConfig)
        return {"shape": tuple(args.shape or defaults["shape"]), "num_observations": count}
    from ..tasks.files import data_observations, data_shape

    # options of a generated ground truth: with a file they changed nothing, silently (--rank 50 on a 10×10 file)
    for flag, value, default in (("--rank", args.rank, defaults["rank"]), ("--target-norm", args.target_norm, None),
                                 ("--truth-seed", args.truth_seed, 0)):
        if value != default:
            raise UsageError(f"{flag} describes a generated ground truth, and the data file {data} holds its own; "
                             f"leave {flag} out with --data")
    shape = data_shape(data)
    if args.shape is not None and tuple(args.shape) != shape:
        raise UsageError(f"--shape {' '.join(map(str, args.shape))} does not match the data file {data}, "
                         f"which holds a {shape[0]}×{shape[1]} matrix; leave --shape out with --data")
    observed = data_observations(data)
    several_seeds = len(getattr(args, "data_seeds", None) or ()) > 1
    if several_seeds and observed is not None:
        raise UsageError(f"--data-seeds: the mask of {data} fixes the observed entries, so every data seed is the "
                         "same problem; give one (or leave --data-seeds out)")
    if several_seeds:  # was "configs of one batch may differ only in ...", unnamed
        raise UsageError(f"--data-seeds: the runs of one command train on the same ratings of {data}, sampled with "
                         "one data seed; give one, and run once per data seed (each with its own --out)")
    if observed is not None:
        if args.num_observations is not None and args.num_observations != observed:
            raise UsageError(f"--num-observations {args.num_observations} does not match the data file {data}, "
                             f"whose mask observes {observed} entries; leave --num-observations out with a .npz")
        count = observed
    return {"shape": shape, "num_observations": count}


def run_name(config: RunConfig) -> str:
    """The run's directory name, e.g. ``depth3-init0.001-lr0.01-seed0-data0`` (``-flow-`` in place of the learning
    rate for gradient flow, which has none)."""
    depth = f"depth{config.depth}-" if config.model == "matrix" else ""
    training = "flow" if config.optimizer == "gradient-flow" else f"lr{config.lr:g}"
    return f"{depth}init{config.init_scale:g}-{training}-seed{config.seed}-data{config.data_seed}"


def _refuse_repeats(args: argparse.Namespace) -> None:
    """Each value of a list flag is one run: a value given twice (or two equal to the 6 significant digits of the run
    directory's name) would be one run directory for two runs."""
    for flag, values in (("--seeds", args.seeds), ("--data-seeds", args.data_seeds), ("--lr", args.lr),
                         ("--init-scale", getattr(args, "init_scale", None)),
                         ("--init-std", getattr(args, "init_std", None))):
        _common.refuse_repeats(flag, values)


def run_command(args: argparse.Namespace) -> int:
    _common.apply_threads(args.threads)
    from ..run import check_memory, run_batch

    _refuse_repeats(args)
    configs = configs_from_args(args)
    check_memory(configs)
    out = _common.resumable_out(args, args.command)
    dirs = [out / run_name(c) for c in configs]
    result = run_batch(configs, dirs, resume=args.resume, progress=not args.no_progress, tensorboard=args.tensorboard)
    rows = [{"run": d.name, **s} for d, s in zip(dirs, result.summaries)]
    print(format_table(rows, TABLE))
    for row in rows:
        if row.get("message"):
            print(f"warning: {row['run']}: {row['message']}")
    print(f"results in {out}")
    return _common.exit_status([row["status"] == "diverged" for row in rows], "steps")


def plot_command(args: argparse.Namespace) -> int:
    from ..plots import plot_run

    print("\n".join(map(str, plot_run(args.run_dir))))
    return 0
