"""Training on the locality tasks: regularized steps, early stopping, checkpoint/resume, the sweep's tables."""

import json
import math
from dataclasses import replace

import pytest
import torch

from implicitrank.cnn import (
    IsSameClass,
    PlainCNN,
    TrainingConfig,
    digits_source,
    measure_interaction,
    train_classifier,
    training_step,
)
from implicitrank.cnn.regularizer import derangement
from implicitrank.experiments.locality import aggregate, run_locality_experiment, setup_for, summary_markdown
from implicitrank.experiments.locality import claims as locality_claims


def _data(n, seed, distance=4):
    source = digits_source("train" if seed % 2 == 0 else "test")
    return IsSameClass.generate(source, n, (8, 24), distance, seed)


def test_regularized_loss_is_bce_plus_lambda_times_r_and_lambda_zero_skips_r():
    torch.manual_seed(0)
    model = PlainCNN(in_channels=1, width=4, depth=3).double()
    x, y = _data(16, 0).batch(torch.arange(16))
    x = x.double()
    first, second = _data(16, 0).slots
    perm = derangement(16, torch.Generator().manual_seed(0))
    loss, bce, reg, _ = training_step(model, x.clone(), y.double(), (first, second), perm, 0.7, 1e-8)
    assert float(loss.detach()) == pytest.approx(float(bce.detach()) + 0.7 * float(reg.detach()), rel=1e-12)
    assert 0 < float(reg.detach()) < 1
    with torch.no_grad():
        _, plain_bce, plain_reg, _ = training_step(model, x.clone(), y.double(), (first, second), perm, 0.0, 1e-8)
    assert float(plain_bce) == pytest.approx(float(bce.detach()), rel=1e-12) and float(plain_reg) == 0


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="reg_weight"):
        TrainingConfig(reg_weight=-0.1)
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=1)
    with pytest.raises(ValueError, match="device must be one of"):
        TrainingConfig(device="tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        TrainingConfig(device="cuda:x")
    assert TrainingConfig(device="cuda:1").device == "cuda:1"  # what --device's help offers (refused before)


def test_training_stops_a_given_number_of_epochs_after_fitting_and_resumes_exactly(tmp_path):
    train, test = _data(32, 0), _data(32, 1)
    config = TrainingConfig(lr=0.05, batch_size=16, max_epochs=40, epochs_after_fit=2, progress=False)
    torch.manual_seed(0)
    full = train_classifier(PlainCNN(in_channels=1, width=8, depth=3), train, test, config, tmp_path / "full")
    assert full["fit_epoch"] is not None and full["epochs"] == full["fit_epoch"] + 2
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert rows[full["fit_epoch"] - 1]["train_acc"] == 1.0 and full["last_test_acc"] == rows[-1]["test_acc"]

    torch.manual_seed(0)
    short = TrainingConfig(**{**config.__dict__, "max_epochs": 3})
    train_classifier(PlainCNN(in_channels=1, width=8, depth=3), train, test, short, tmp_path / "split")
    torch.manual_seed(123)  # the resumed run must not depend on the fresh initialization
    resumed = train_classifier(PlainCNN(in_channels=1, width=8, depth=3), train, test, config, tmp_path / "split")
    assert resumed["epochs"] == full["epochs"] and resumed["last_test_acc"] == full["last_test_acc"]


def test_test_scale_experiment_writes_runs_tables_plot_and_claims(tmp_path):
    claims = run_locality_experiment("is-same-class", "test", tmp_path, seeds=[0], progress=False)
    assert {"claim", "paper_value", "our_value", "tolerance", "passed"} == set(claims[0])
    # "near chance at d = 40" and "λ leaves d = 0 unchanged" hold for a network that learns nothing anywhere: a row
    # checks their premise, that λ = 0 learns d = 0, and they pass only with it (claims.csv said "passed" where the
    # per-seed claims.md said "fail")
    premise = next(c for c in claims if "above chance" in c["claim"])
    assert premise["passed"] == (premise["our_value"] > 55.0)
    blank = [{"reg_weight": lam, "difficulty": d, "test_acc_mean": 50.0} for lam in (0.0, 1.0) for d in (0, 40)]
    vacuous = {c["claim"]: c["passed"] for c in locality_claims(setup_for("is-same-class", "quick"), blank, "quick")}
    assert [v for k, v in vacuous.items() if "is near chance" in k or "unchanged" in k] == [False, False]
    assert [v for k, v in vacuous.items() if "above chance" in k] == [False]
    learned = [r | {"test_acc_mean": 90.0} if (r["reg_weight"], r["difficulty"]) in ((0.0, 0), (1.0, 0)) else r
               for r in blank]
    held = {c["claim"]: c["passed"] for c in locality_claims(setup_for("is-same-class", "quick"), learned, "quick")}
    assert [v for k, v in held.items() if "is near chance" in k or "unchanged" in k] == [True, True]
    # λ's gain at the far difficulty counts only if it does not gain as much at the near one
    both = [r | {"test_acc_mean": 60.0} if r["reg_weight"] == 1.0 else r for r in blank]
    gains = {c["claim"]: c["passed"] for c in locality_claims(setup_for("is-same-class", "quick"), both, "quick")}
    assert [v for k, v in gains.items() if "recovers" in k] == [False]
    only_far = [r | {"test_acc_mean": 60.0} if (r["reg_weight"], r["difficulty"]) == (1.0, 40) else r for r in blank]
    gains = {c["claim"]: c["passed"] for c in locality_claims(setup_for("is-same-class", "quick"), only_far, "quick")}
    assert [v for k, v in gains.items() if "recovers" in k] == [True]
    missing_near = [r for r in only_far if (r["reg_weight"], r["difficulty"]) != (1.0, 0)]  # no number to compare
    gains = {c["claim"]: c["passed"] for c in locality_claims(setup_for("is-same-class", "quick"), missing_near,
                                                              "quick")}
    assert [v for k, v in gains.items() if "recovers" in k] == [False]
    base = tmp_path / "is-same-class"
    assert (base / "summary.md").is_file() and (base / "accuracy.png").is_file() and (base / "runs.csv").is_file()
    setup = setup_for("is-same-class", "test")
    assert len((base / "runs.csv").read_text().splitlines()) == 1 + len(setup.difficulties) * len(setup.reg_weights)
    assert (base / "lam=1" / "d=40" / "seed=0" / "summary.json").is_file()
    # rerun (as --resume does): every run is reused, and runs.csv was rewritten with its columns in another order
    written = (base / "runs.csv").read_text()
    assert run_locality_experiment("is-same-class", "test", tmp_path, seeds=[0], progress=False) == claims
    assert (base / "runs.csv").read_text() == written


def test_summary_shows_the_seed_spread_only_when_there_is_one():
    setup = setup_for("is-same-class", "test")
    runs = [{"reg_weight": 0.0, "difficulty": 0, "seed": s, "last_test_acc": a, "best_test_acc": a, "epochs": 2}
            for s, a in ((0, 0.6), (1, 0.7))]
    assert "| 65.0 ± 7.1 |" in summary_markdown(setup, aggregate(runs))
    one = summary_markdown(setup, aggregate(runs[:1]))
    assert "| 60.0 |" in one and "±" not in one


def test_bad_sweep_settings_are_refused_before_any_training():
    with pytest.raises(ValueError, match="distance 60 does not fit"):
        replace(setup_for("is-same-class", "quick"), difficulties=(0, 60))
    with pytest.raises(ValueError, match="lengths L must be >= 1"):
        replace(setup_for("pathfinder", "quick"), difficulties=(0, 3))
    with pytest.raises(ValueError, match="reg_weights"):
        replace(setup_for("pathfinder", "quick"), reg_weights=(0.0, -1.0))
    with pytest.raises(ValueError, match="scale must be one of"):
        setup_for("is-same-class", "huge")


def test_measured_interaction_is_one_for_a_network_too_local_to_see_both_images():
    data = _data(40, 1, distance=8)
    torch.manual_seed(0)
    local = PlainCNN(in_channels=1, width=4, depth=1)  # one 3×3 convolution, then global average pooling
    deep = PlainCNN(in_channels=1, width=4, depth=5)
    assert measure_interaction(local, data) == pytest.approx(1.0, abs=1e-4)
    assert measure_interaction(deep, data) < 0.999


def test_the_networks_epoch_loop_resumes_stops_and_names_the_diverging_epoch():
    from implicitrank.cnn import epoch_loop

    losses = [0.5, 0.25, float("nan"), 0.1]
    saved = []
    history = [{"epoch": 1, "train_loss": losses[0]}]  # resumed after one epoch
    with pytest.raises(FloatingPointError, match="NaN/inf in epoch 3; lower the learning rate"):  # rows count 1..
        epoch_loop(lambda e: {"epoch": e + 1, "train_loss": losses[e]}, history, 4, after_epoch=saved.append,
                   progress=False)
    assert [row["epoch"] for row in history] == [1, 2] and saved == [1]  # what was recorded is kept
    rows = epoch_loop(lambda e: {"epoch": e + 1, "train_loss": 1.0}, [], 10, stop=lambda e: e == 3, progress=False)
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_a_diverging_run_finishes_without_accuracies_and_its_sweep_goes_on(tmp_path):
    """One λ too large ended the whole figure with a traceback (the other runs never ran, no table was written)."""
    from implicitrank.experiments.locality import run_sweep

    setup = replace(setup_for("is-same-class", "test"), reg_weights=(0.0, 1e30))
    rows = run_sweep(setup, tmp_path, seeds=(0,), progress=False)
    diverged = [r for r in rows if r["reg_weight"] == 1e30]
    assert len(rows) == 2 * len(setup.difficulties) and all(r["status"] == "diverged" for r in diverged)
    # its row is its summary.json, as read back for a run reused: no accuracy (null)
    assert all("NaN/inf in epoch" in r["message"] and r["last_test_acc"] is None for r in diverged)
    table = {(r["reg_weight"], r["difficulty"]): r for r in aggregate(rows)}
    assert all(math.isnan(table[(1e30, d)]["test_acc_mean"]) for d in setup.difficulties)
    assert all(table[(0.0, d)]["test_acc_mean"] >= 0 for d in setup.difficulties)
    run = tmp_path / "is-same-class" / "lam=1e+30" / f"d={setup.difficulties[0]}" / "seed=0"
    assert (run / "metrics.jsonl").is_file() and json.loads((run / "summary.json").read_text())["status"] == "diverged"
    rerun = run_sweep(setup, tmp_path, seeds=(0,), progress=False)  # finished, diverged included: nothing retrains
    assert [r["status"] for r in rerun] == [r["status"] for r in rows]


def test_a_cell_with_one_diverged_seed_of_two_aggregates_to_nan_not_a_traceback():
    """locality --lr 1e6 with two seeds: statistics.stdev over a NaN raised AttributeError, and no summary was
    written. The cell's mean and spread are NaN; a cell of finite seeds keeps its numbers."""
    row = {"reg_weight": 0.0, "difficulty": 0, "best_test_acc": 0.7, "epochs": 3}
    rows = [row | {"last_test_acc": 0.6}, row | {"last_test_acc": None},
            row | {"difficulty": 1, "last_test_acc": 0.6}, row | {"difficulty": 1, "last_test_acc": 0.8}]
    table = {r["difficulty"]: r for r in aggregate(rows)}
    assert math.isnan(table[0]["test_acc_mean"]) and math.isnan(table[0]["test_acc_std"])
    assert table[1]["test_acc_mean"] == pytest.approx(70.0) and table[1]["test_acc_std"] == pytest.approx(14.142, 1e-4)


def test_a_model_whose_outputs_overflow_after_its_last_epoch_is_diverged_not_at_chance():
    """With lr 1e38 one epoch leaves finite weights (~1e36) whose forward pass gives NaN logits; NaN > 0 is False, so
    every sample counted as class 0 and the run was "trained" at 50% on balanced labels."""
    from implicitrank.experiments.locality import build_data, build_model

    setup = setup_for("is-same-class", "test")
    train, test = build_data(setup, 40, 0)
    torch.manual_seed(0)
    model = build_model(setup, 1)
    summary = train_classifier(model, train, test, replace(setup.training, reg_weight=0.0, seed=0, progress=False,
                                                           lr=1e38, max_epochs=1))
    assert summary["status"] == "diverged" and "test outputs became NaN/inf after epoch 1" in summary["message"]
    assert math.isnan(summary["last_test_acc"]) and math.isnan(summary["last_train_acc"])


def test_the_figure_s_claims_read_a_diverged_run_s_null_accuracy_as_missing():
    """summary.json stores a diverged run's NaN as null; the per-seed claims multiplied it by 100 (TypeError)."""
    from implicitrank.experiments.razin2022_locality import seed_claims

    setup = setup_for("is-same-class", "test")
    rows = [{"seed": 0, "reg_weight": lam, "difficulty": d, "last_test_acc": None if lam else 0.5}
            for lam in setup.reg_weights for d in setup.difficulties]
    claims = seed_claims(setup, rows, (0,), "test")
    regularized = [c for c in claims if "λ=0:" not in c.claim and "near chance" not in c.claim]
    assert regularized and all(c.status == "fail" and c.missing == 1 for c in regularized)


def test_a_finished_or_checkpointed_run_trained_with_other_settings_is_not_reused(tmp_path):
    """``--resume`` kept any run with a summary.json (or resumed any checkpoint), so a rerun asking lr 0.5 for 4 epochs
    printed the lr 0.01, 2-epoch runs' numbers as its own. Now the stored settings must match, before any training."""
    from implicitrank.errors import UsageError
    from implicitrank.experiments.locality import run_sweep

    setup = replace(setup_for("is-same-class", "test"), reg_weights=(0.0,), difficulties=(0,))
    first = run_sweep(setup, tmp_path, seeds=(0,), progress=False)
    run = tmp_path / "is-same-class" / "lam=0" / "d=0" / "seed=0"
    assert (run / "settings.json").is_file()
    assert run_sweep(setup, tmp_path, seeds=(0,), progress=False) == first  # same settings: reused as it was
    changed = replace(setup, training=replace(setup.training, lr=0.5, max_epochs=4))
    with pytest.raises(UsageError, match=r"trained with other settings: training\.lr 0\.01 \(now 0\.5\), "
                                         r"training\.max_epochs 2 \(now 4\)"):
        run_sweep(changed, tmp_path, seeds=(0, 1), progress=False)
    assert not (tmp_path / "is-same-class" / "lam=0" / "d=0" / "seed=1").exists()  # refused before training seed 1
    with pytest.raises(UsageError, match=r"n_train 64 \(now 32\)"):
        run_sweep(replace(setup, n_train=32), tmp_path, seeds=(0,), progress=False)
    (run / "settings.json").unlink()  # a run from before settings were recorded: its training config is checked
    with pytest.raises(UsageError, match=r"training\.lr 0\.01 \(now 0\.5\)"):
        run_sweep(changed, tmp_path, seeds=(0,), progress=False)
