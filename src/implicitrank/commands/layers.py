"""``implicitrank layers demo``: factorized layers on scikit-learn's digits, collapsed and compressed.

The same MLP (64-h-h-10) and CNN (conv3x3-conv3x3/2-linear) are trained with every layer a depth-N
factorization (N = 1: the plain network, same init scheme; N >= 2: DeepLinear / DeepConv2d, the same
function class), then compared on test accuracy, the effective rank of each layer, and test accuracy
after truncating every layer to a kept rank. A linear autoencoder with a DeepLinear bottleneck shows the
latent covariance's effective rank with and without depth. Writes results.json, table.txt,
compression.png and ranks.png to the output directory; exits 1 when every network diverged (no result).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..progress import progress_enabled
from . import _common
from ._common import default_out, format_table, int_list
from ._defaults import DIGITS

if TYPE_CHECKING:
    from ..nn.digits_experiment import DigitsConfig


def register(subparsers) -> None:
    layers = _common.add_parser(subparsers, "layers", help="factorized network layers: demo on digits",
                                description="Factorized (over-parameterized) network layers.")
    commands = layers.add_subparsers(dest="layers_command", metavar="SUBCOMMAND", required=True)
    p = _common.add_parser(commands, "demo",
                           help="plain vs over-parameterized MLP/CNN on digits, compression, autoencoder (~30 s)",
                           description=__doc__)
    d = DIGITS
    _common.add_out(p, "layers-demo")
    p.add_argument("--architectures", type=_common.word_list, default=list(d["architectures"]),
                   help="comma-separated subset of mlp,cnn")
    p.add_argument("--depths", type=int_list, default=list(d["depths"]),
                   help="factorization depths of every layer, e.g. 1,2,3 or 1..4 (1 = plain)")
    p.add_argument("--hidden", type=int, default=d["hidden"], help="MLP hidden width")
    p.add_argument("--init-scale", type=float, default=d["init_scale"],
                   help="scale of every layer's end-to-end weight at init: E||W(0)||_F^2 = s^2 min(in, out)")
    p.add_argument("--epochs", type=int, default=d["epochs"], help="training epochs")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="minibatch size")
    p.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate")
    p.add_argument("--kept-ranks", type=int_list, default=list(d["kept_ranks"]), help="ranks of the compression curve")
    p.add_argument("--latent", type=int, default=d["latent"], help="autoencoder latent size")
    p.add_argument("--autoencoder-depths", type=int_list, default=list(d["autoencoder_depths"]),
                   help="bottleneck depths")
    p.add_argument("--autoencoder-init-scale", type=float, default=d["autoencoder_init_scale"],
                   help="init scale of the autoencoder's bottleneck (as --init-scale)")
    p.add_argument("--autoencoder-epochs", type=int, default=d["autoencoder_epochs"], help="autoencoder epochs")
    _common.add_seeds(p, (d["seed"],), what="seeds (initialization and minibatch order)", deprecated_seed=True)
    _common.add_threads(p)
    _common.add_progress(p)
    p.set_defaults(func=run_demo)


def config_from(args: argparse.Namespace) -> DigitsConfig:
    """The first seed's config (the others differ only in ``seed``)."""
    from ..nn.digits_experiment import DigitsConfig

    return DigitsConfig(
        architectures=tuple(args.architectures),
        depths=tuple(args.depths), hidden=args.hidden, init_scale=args.init_scale, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, kept_ranks=tuple(args.kept_ranks), latent=args.latent,
        autoencoder_depths=tuple(args.autoencoder_depths), autoencoder_init_scale=args.autoencoder_init_scale,
        autoencoder_epochs=args.autoencoder_epochs, seed=args.seeds[0])


def run_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    _common.apply_threads(args.threads)
    from tqdm import tqdm

    from .. import results
    from ..nn import SpectraLog
    from ..nn.digits_experiment import autoencoder_run, classifier_run, load_digits

    config = config_from(args)
    _common.refuse_repeats("--seeds", args.seeds)  # demo and layers demo dropped one silently
    seeds = list(args.seeds)
    out = args.out or default_out("layers-demo")
    _common.refuse_used_out(out, "results.json", "layers demo")
    out.mkdir(parents=True, exist_ok=True)
    args.after_interrupt = (f"the demo cannot be resumed and {out} holds only its config.json; delete it or choose "
                            "another --out to run it again")
    results.write_json(out / "config.json", {**vars(config), "seeds": seeds})
    data = load_digits()
    total = len(seeds) * (len(config.architectures) * len(config.depths) * config.epochs
                          + len(config.autoencoder_depths) * config.autoencoder_epochs)
    bar = tqdm(total=total, unit="epoch", file=sys.stderr, disable=not progress_enabled(not args.no_progress),
               leave=False)

    classifiers, histories, autoencoders = [], {}, []
    for seed in seeds:  # effective-rank histories (ranks.png) of the first seed
        seeded = replace(config, seed=seed)
        for architecture in config.architectures:
            for depth in config.depths:
                bar.set_description(f"{architecture} depth {depth} seed {seed}")
                log = SpectraLog(top=None)

                def after_epoch(model, epoch, log=log):
                    log(model, epoch)
                    bar.update()

                _, summary = classifier_run(architecture, depth, seeded, data, after_epoch=after_epoch)
                classifiers.append({**summary, "seed": seed})
                _warn_if_diverged(f"{architecture} depth {depth} seed {seed}", summary)
                if seed == seeds[0]:
                    histories[f"{architecture} depth {depth}"] = {"epochs": log.steps,
                                                                  "effective_ranks": log.effective_ranks}
        for depth in config.autoencoder_depths:
            bar.set_description(f"autoencoder depth {depth} seed {seed}")
            summary = autoencoder_run(depth, seeded, data, after_epoch=lambda model, epoch: bar.update())
            autoencoders.append({**summary, "seed": seed})
            _warn_if_diverged(f"autoencoder depth {depth} seed {seed}", summary)
    bar.close()

    text = tables(classifiers, autoencoders)
    print(text)
    (out / "table.txt").write_text(text + "\n")
    results.write_json(out / "results.json", {"classifiers": classifiers, "autoencoders": autoencoders,
                                              "effective_rank_history": histories})
    plot_compression(out / "compression.png", classifiers)
    plot_ranks(out / "ranks.png", histories)
    print(f"results in {out} (results.json, table.txt, compression.png, ranks.png)")
    return _common.exit_status([bool(run.get("diverged")) for run in classifiers + autoencoders], "epochs")


def _warn_if_diverged(name: str, summary: dict) -> None:
    if summary.get("diverged"):
        print(f"warning: {name}: {summary['diverged']}; it has no numbers, the other runs go on", file=sys.stderr)


def tables(classifiers: list[dict], autoencoders: list[dict]) -> str:
    """Accuracy, per-layer effective rank and kept-rank accuracies; then the autoencoders (a diverged network's
    numbers read n/a or nan, its effective ranks "diverged")."""
    rows = []
    for s in classifiers:
        curve = {f"acc@r{p['kept_rank']}": p["test_accuracy"] for p in s["compression"]}
        ranks = "diverged" if s.get("diverged") else " ".join(f"{v:.1f}" for v in s["effective_ranks"].values())
        rows.append({"model": s["architecture"], "depth": s["depth"], "seed": s["seed"],
                     "train_acc": s["train_accuracy"], "test_acc": s["test_accuracy"],
                     "effective_rank_per_layer": ranks, "params_trained": s["params_trained"],
                     "params_collapsed": s["params_collapsed"], **curve})
    kept = next((s["compression"] for s in classifiers if s["compression"]), [])
    columns = ["model", "depth", "seed", "train_acc", "test_acc", "effective_rank_per_layer", "params_trained",
               "params_collapsed", *[f"acc@r{p['kept_rank']}" for p in kept]]
    ae_columns = ["depth", "seed", "test_reconstruction_mse", "latent_effective_rank", "bottleneck_effective_rank"]
    return (format_table(rows, columns) + "\n\nlinear autoencoder, DeepLinear bottleneck:\n"
            + format_table(autoencoders, ae_columns))


def plot_compression(path: Path, classifiers: list[dict]) -> None:
    import matplotlib.pyplot as plt

    from ..plots import save

    architectures = list(dict.fromkeys(s["architecture"] for s in classifiers))
    fig, axes = plt.subplots(1, len(architectures), figsize=(5.5 * len(architectures), 4), squeeze=False)
    for ax, architecture in zip(axes[0], architectures):
        for s in (s for s in classifiers if s["architecture"] == architecture and not s.get("diverged")):
            curve = s["compression"]
            ax.plot([p["kept_rank"] for p in curve], [p["test_accuracy"] for p in curve], marker="o",
                    label=f"depth {s['depth']} seed {s['seed']} (uncompressed {s['test_accuracy']:.3f})")
        ax.set(xscale="log", xlabel="kept rank per layer", ylabel="test accuracy", ylim=(0, 1),
               title=f"{architecture}: accuracy after truncated SVD")
        kept = sorted({p["kept_rank"] for s in classifiers for p in s["compression"]})
        ax.set_xticks(kept, [str(k) for k in kept])  # the ranks kept, not a log axis' 2×10⁰, 3×10⁰, ...
        ax.minorticks_off()
        if ax.lines:  # every network of the architecture diverged: no curve (matplotlib warned of an empty legend)
            ax.legend()
    save(fig, path)


def plot_ranks(path: Path, histories: dict[str, dict]) -> None:
    """Effective rank of every layer per epoch; one row per architecture, one column per depth."""
    import matplotlib.pyplot as plt

    from ..plots import save

    labels = list(histories)
    rows = list(dict.fromkeys(label.split()[0] for label in labels))
    cols = list(dict.fromkeys(label.split(maxsplit=1)[1] for label in labels))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4 * len(cols), 3.2 * len(rows)), squeeze=False,
                             sharey="row")
    for label, history in histories.items():
        architecture, depth = label.split(maxsplit=1)
        ax = axes[rows.index(architecture)][cols.index(depth)]
        # the k-th compressible layer from the input, and its name among the model's modules ("1", "features.3")
        for k, (name, ranks) in enumerate(history["effective_ranks"].items(), 1):
            ax.plot(history["epochs"], ranks, label=f"layer {k} (module {name})")
        ax.set(xlabel="epoch", ylabel="effective rank", title=label)
        if ax.lines:  # a network that diverged in its first epoch has none
            ax.legend(fontsize=8)
    save(fig, path)
