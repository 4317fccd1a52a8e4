"""``implicitrank layers demo``: runs end to end on digits (tiny settings) and refuses bad input."""

import json

import pytest

from implicitrank.cli import main
from implicitrank.nn.digits_experiment import DigitsConfig

TINY = ["--architectures", "mlp,cnn", "--depths", "1,2", "--epochs", "1", "--hidden", "16", "--kept-ranks", "1,4",
        "--latent", "8", "--autoencoder-depths", "1,2", "--autoencoder-epochs", "1", "--no-progress"]


def test_demo_writes_its_table_plots_and_results(tmp_path, capsys):
    assert main(["layers", "demo", "--out", str(tmp_path), *TINY]) == 0
    assert {"config.json", "results.json", "table.txt", "compression.png", "ranks.png"} <= {
        p.name for p in tmp_path.iterdir()}
    results = json.loads((tmp_path / "results.json").read_text())
    depth_two = [s for s in results["classifiers"] if s["depth"] == 2]
    assert [s["architecture"] for s in depth_two] == ["mlp", "cnn"]
    for summary in depth_two:
        assert summary["params_trained"] > summary["params_collapsed"], "over-parameterized, then collapsed"
        assert [p["kept_rank"] for p in summary["compression"]] == [1, 4]
    assert [a["depth"] for a in results["autoencoders"]] == [1, 2]
    assert "latent_effective_rank" in capsys.readouterr().out


@pytest.mark.parametrize("argument, value", [("--architectures", "rnn"), ("--depths", "0,2"),
                                             ("--kept-ranks", "0"), ("--lr", "-1")])
def test_demo_refuses_bad_arguments_by_name(tmp_path, capsys, argument, value):
    given = dict(zip(TINY[:-1:2], TINY[1::2])) | {argument: value}  # a list option is given once: TINY's replaced
    assert main(["layers", "demo", "--out", str(tmp_path), *(a for pair in given.items() for a in pair),
                 "--no-progress"]) == 2
    assert argument.strip("-").replace("-", "_") in capsys.readouterr().err


def test_config_refuses_a_channels_pair_of_the_wrong_length():
    with pytest.raises(ValueError, match="channels"):
        DigitsConfig(channels=(8,))


def test_demo_runs_every_seed_of_the_list(tmp_path, capsys):
    args = ["--architectures", "mlp", "--depths", "2", "--epochs", "1", "--hidden", "8", "--kept-ranks", "1",
            "--latent", "4", "--autoencoder-depths", "1", "--autoencoder-epochs", "1", "--no-progress"]
    assert main(["layers", "demo", "--out", str(tmp_path), *args, "--seeds", "0,3"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["seed"] for s in results["classifiers"]] == [0, 3]
    assert [a["seed"] for a in results["autoencoders"]] == [0, 3]
    first, second = results["classifiers"]
    assert first["train_accuracy"] != second["train_accuracy"] or first["effective_ranks"] != second["effective_ranks"]


def test_a_diverging_network_has_no_numbers_and_the_demo_goes_on(tmp_path, capsys):
    """One depth diverging ended the demo with a traceback and lost the finished networks."""
    args = ["--architectures", "mlp", "--depths", "1,4", "--epochs", "2", "--hidden", "16", "--kept-ranks", "1",
            "--latent", "4", "--autoencoder-depths", "1", "--autoencoder-epochs", "1", "--lr", "300",
            "--init-scale", "3", "--no-progress"]
    assert main(["layers", "demo", "--out", str(tmp_path), *args]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    finished, diverged = results["classifiers"]
    assert "NaN/inf in epoch" in diverged["diverged"] and diverged["test_accuracy"] is None  # NaN, written as null
    assert "diverged" not in finished and 0 <= finished["test_accuracy"] <= 1
    captured = capsys.readouterr()
    assert "warning: mlp depth 4 seed 0" in captured.err and "diverged" in captured.out


def test_a_network_whose_outputs_overflow_after_training_has_no_accuracy():
    """argmax picks a class from NaN/inf logits too: a network whose finite weights overflow its outputs after the
    last epoch got an accuracy (of whatever class argmax chose) and no ``diverged``."""
    import math

    import torch

    from implicitrank.nn.digits_experiment import accuracy, classifier_run, load_digits

    data = load_digits()

    def blow_up(model, epoch):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(1e30)

    config = DigitsConfig(epochs=1, hidden=8, kept_ranks=(1,))
    model, summary = classifier_run("mlp", 2, config, data, after_epoch=blow_up)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert math.isnan(accuracy(model, data.test_x, data.test_y))
    assert "outputs became NaN/inf after epoch 1" in summary["diverged"]
    assert math.isnan(summary["test_accuracy"]) and math.isnan(summary["train_accuracy"])
