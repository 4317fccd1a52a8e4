"""``implicitrank locality is-same-class|pathfinder``: the locality-bias figure of Razin, Maman & Cohen 2022, §5.

Exits 0 when every claim of the figure holds (on the mean over seeds), 1 otherwise."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import UsageError
from . import _common
from ._common import format_table, int_list
from ._defaults import SCALES

RESNETS = ("resnet18", "resnet34")
PLAIN_CHANNELS = 16  # cnn.PlainCNN's default width


def register(subparsers) -> None:
    parser = _common.add_parser(
        subparsers, "locality",
        help="locality bias of CNNs and the regularizer that counters it (Razin et al. 2022, §5)",
        description="Train a CNN on a long-range task at each difficulty, with and without the interaction "
                    "regularizer, over seeds; write run directories, summary.csv/.md and accuracy.png.")
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    same = _common.add_parser(tasks, "is-same-class", help="two images a gap d apart: same class?",
                              description="Is Same Class: digits (built in) or CIFAR-10 pairs on a zero canvas.")
    same.add_argument("--distances", type=int_list, help="gaps d, e.g. 0,8,16,32 (default: the scale's)")
    same.add_argument("--source", choices=("digits", "cifar10"), help="image source (default: the scale's)")
    _common.add_data(same, "CIFAR-10: the directory of its python batches (data_batch_1.. test_batch), "
                           "for --source cifar10")
    _common.add_deprecated(same, "--cifar-path", "--data", "data")
    same.add_argument("--canvas", type=int_list,
                      help="canvas height,width (default: the scale's, in units of the --source images)")
    path = _common.add_parser(tasks, "pathfinder", help="two markers: on the same snake?",
                              description="Pathfinder images generated here and cached as .npz.")
    path.add_argument("--lengths", type=int_list, help="snake lengths L, e.g. 3,5,7,9 (default: the scale's)")
    path.add_argument("--cache-dir", help="where generated images are cached (default: <out>/pathfinder-cache)")
    path.add_argument("--patch-size", type=int, help="side of the regularizer's random patches")
    for sub in (same, path):
        sub.add_argument("--scale", choices=SCALES, default="quick",
                         help="preset set-up: quick runs on 2 CPU cores in minutes, paper is the published one")
        sub.add_argument("--reg-weights", type=_common.float_list, help="λ values, e.g. 0,1 (default: the scale's)")
        _common.add_seeds(sub, (0, 1), what="seeds")
        sub.add_argument("--model", choices=("plain", *RESNETS), help="network (default: the scale's)")
        sub.add_argument("--width-multiplier", type=float,
                         help="--model resnet18|resnet34: multiplier of the stage widths 64, 128, 256, 512 "
                              "(default: the scale's if it trains a ResNet, else 1)")
        sub.add_argument("--base-channels", type=_common.positive_int,
                         help="--model plain: channels of the first two blocks, doubled every two blocks "
                              f"(default: the scale's if it trains the plain CNN, else {PLAIN_CHANNELS})")
        sub.add_argument("--width", dest="removed_width", help=argparse.SUPPRESS)  # refused: it meant two things
        sub.add_argument("--n-train", type=int, help="training samples")
        sub.add_argument("--n-test", type=int, help="test samples")
        sub.add_argument("--epochs", type=int, help="maximum epochs")
        sub.add_argument("--epochs-after-fit", type=int, help="stop this many epochs after 100%% train accuracy")
        sub.add_argument("--batch-size", type=int, help="batch size")
        sub.add_argument("--lr", type=float, help="SGD learning rate (momentum 0.9)")
        _common.add_device(sub)
        _common.add_out(sub, "locality")
        sub.add_argument("--resume", action="store_true",
                         help="continue in an --out holding earlier runs of this figure: finished runs are kept, "
                              "unfinished ones resumed from their checkpoints; refused if they were trained with "
                              "other settings")
        _common.add_threads(sub)
        _common.add_progress(sub)
        sub.set_defaults(func=run_locality)


def network_width(args: argparse.Namespace, scale_model: str) -> float | None:
    """``LocalitySetup.width`` from ``--width-multiplier`` (ResNets) or ``--base-channels`` (plain CNN).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``locality`` arguments (``model``, ``width_multiplier``, ``base_channels``).
    scale_model : str
        The network of the ``--scale`` set-up.

    Returns
    -------
    float or None
        The flag's value; None keeps the scale's width, unless ``--model`` picks the other kind of network than
        ``scale_model``, whose default width (1 for a ResNet, 16 channels for the plain CNN) it then is.

    Raises
    ------
    UsageError
        When the flag given is the other network's, or its value is not positive.
    """
    model = args.model or scale_model
    resnet = model in RESNETS
    flags = {"--width-multiplier": args.width_multiplier, "--base-channels": args.base_channels}
    flag, other = ("--width-multiplier", "--base-channels") if resnet else ("--base-channels", "--width-multiplier")
    if flags[other] is not None:
        raise UsageError(f"{other} does not apply to --model {model}, which takes {flag}")
    if flags[flag] is not None:
        if not 0 < flags[flag] < math.inf:
            raise UsageError(f"{flag} must be positive (finite and > 0), got {flags[flag]}")
        return float(flags[flag])
    if resnet != (scale_model in RESNETS):
        return 1.0 if resnet else float(PLAIN_CHANNELS)
    return None


def run_locality(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..threads import LARGE_WORK

    if args.removed_width is not None:
        raise UsageError("--width is gone (it meant two things): use --width-multiplier for --model resnet18|resnet34 "
                         "or --base-channels for --model plain")
    _common.apply_threads(args.threads, work=LARGE_WORK)  # convolution networks: the free cores
    from ..devices import resolve_device
    from ..experiments.locality import aggregate, canvas_for, claims, run_sweep, setup_for, summary_markdown

    resolve_device(args.device)  # a device that is not here: refused before anything is generated or written

    setup = setup_for(args.task, args.scale)
    fields = {"reg_weights": args.reg_weights, "model": args.model, "width": network_width(args, setup.model),
              "n_train": args.n_train, "n_test": args.n_test}
    training = {"max_epochs": args.epochs, "epochs_after_fit": args.epochs_after_fit,
                "batch_size": args.batch_size, "lr": args.lr, "device": args.device}
    out = _common.resumable_out(args, "locality")
    if args.task == "is-same-class":
        if args.data is not None and (args.source or setup.source) != "cifar10":
            raise UsageError(f"--data applies to --source cifar10 only; --source {args.source or setup.source} reads "
                             "no file (leave --data out)")
        if args.source == "cifar10" and args.data is None:
            raise UsageError("--data is required with --source cifar10: the CIFAR-10 python batches (a directory "
                             "holding data_batch_1..5 and test_batch); --source digits needs no data")
        if args.canvas is not None and len(args.canvas) != 2:
            raise UsageError(f"--canvas must be height,width, got {args.canvas}")
        canvas = canvas_for(setup, args.source or setup.source) if args.canvas is None else tuple(args.canvas)
        cifar = _common.resolve_data(args.data)
        if cifar is not None and Path(cifar).is_file():  # one of the batches names the directory holding them all
            cifar = str(Path(cifar).parent)
        fields.update(difficulties=args.distances, source=args.source, cifar_path=cifar, canvas_hw=canvas)
    else:
        fields.update(difficulties=args.lengths, patch_size=args.patch_size,
                      cache_dir=args.cache_dir or str(Path(out) / "pathfinder-cache"))
    setup = replace(setup, **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if v is not None},
                    training=replace(setup.training, **{k: v for k, v in training.items() if v is not None}))
    earlier = Path(out) / setup.task
    if earlier.is_dir() and any(earlier.iterdir()) and not args.resume:
        raise UsageError(f"out: {earlier} holds earlier runs of this figure; pass --resume to keep them and run "
                         "only the rest, or choose another --out")
    rows = run_sweep(setup, out, args.seeds, progress=not args.no_progress)
    table = aggregate(rows)
    print(summary_markdown(setup, table))
    checked = claims(setup, table, args.scale)
    print(format_table(checked, ("claim", "paper_value", "our_value", "passed")))
    failed = sum(not row["passed"] for row in checked)
    # a claim whose cells' runs all diverged has no number: it fails, but it was not evaluated
    missing = sum(not math.isfinite(row["our_value"]) for row in checked)
    unmeasured = f" ({missing} of them without a number: their runs diverged)" if missing else ""
    print(f"results in {Path(out) / setup.task}; {failed} of {len(checked)} claim(s) failed{unmeasured}")
    return 1 if failed else 0
