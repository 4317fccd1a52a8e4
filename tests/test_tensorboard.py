"""TensorBoard events are the rows of metrics.jsonl, read back with TensorBoard's own event reader."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from implicitrank.cli import main
from implicitrank.tensorboard import scalars

TINY = ["--shape", "10", "8", "--rank", "2", "--num-observations", "50", "--max-steps", "200", "--no-progress"]


def _events(directory):
    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _assert_events_equal_metrics(run_dir, events_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    events = _events(events_dir)
    expected = {}
    for row in rows:
        for tag, value in scalars(row).items():
            expected.setdefault(tag, []).append((row["step"], value))
    assert {"train_loss", "reconstruction_error", "effective_rank", "singular_values/1"} <= set(expected)
    logged = set(events.Tags()["scalars"])
    assert set(expected) <= logged
    for tag, points in expected.items():
        read = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in read] == [s for s, _ in points], tag
        assert [v for _, v in read] == pytest.approx([v for _, v in points], rel=1e-6), tag
    # The config as hyperparameters, with the final metrics of the summary.
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    hparams = metadata.parse_session_start_info_plugin_data(content).hparams
    assert hparams["init_scale"].number_value == pytest.approx(config["init_scale"])
    assert hparams["optimizer"].string_value == config["optimizer"]
    assert hparams["shape"].string_value == "x".join(map(str, config["shape"]))
    final = events.Scalars("final/reconstruction_error")
    assert [e.value for e in final] == pytest.approx([summary["reconstruction_error"]], rel=1e-6)


def test_mf_tensorboard_events_equal_metrics_jsonl(tmp_path):
    out = tmp_path / "mf"
    assert main(["mf", *TINY, "--seeds", "0..1", "--tensorboard", "--out", str(out)]) == 0
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert len(list(run.glob("events.out.tfevents.*"))) == 1
        _assert_events_equal_metrics(run, run)


def test_sweep_spec_key_writes_events_beside_each_run(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "tb"\ntensorboard = true\n[base]\nshape = [8, 8]\nrank = 1\nnum_observations = 40\n'
                    'max_steps = 150\ncheckpoint_every = 0\n[axes]\ndepth = [2, 3]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep"), "--no-progress"]) == 0
    runs = sorted((tmp_path / "sweep" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        _assert_events_equal_metrics(run, run)
    # The same sweep without the key writes none.
    spec.write_text(spec.read_text().replace("tensorboard = true\n", "").replace('"tb"', '"plain"'))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "plain"), "--no-progress"]) == 0
    assert not list((tmp_path / "plain").rglob("events.out.tfevents.*"))


def test_reproduce_tensorboard_logs_the_runs_of_an_experiment(tmp_path):
    out = tmp_path / "reproduce"
    assert main(["reproduce", "arora2019-completion", "--scale", "test", "--tensorboard", "--out", str(out)]) == 0
    logs = sorted((out / "arora2019-completion" / "tensorboard").iterdir())
    assert logs and all(len(list(d.glob("events.out.tfevents.*"))) == 1 for d in logs)
    events = _events(logs[0])
    assert {"train_loss", "reconstruction_error", "singular_values/1"} <= set(events.Tags()["scalars"])
