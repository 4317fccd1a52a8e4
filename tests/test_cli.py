import json

import pytest

from implicitrank.cli import main

TINY = ["--shape", "12", "10", "--rank", "2", "--num-observations", "70", "--max-steps", "300", "--no-progress"]


def test_every_command_has_help(capsys):
    from implicitrank.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"mf", "tf", "htf", "nnm", "plot", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_mf_writes_one_directory_per_run_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "mf"
    assert main(["mf", *TINY, "--seeds", "0..1", "--init-scale", "1e-3", "1e-2", "--out", str(out)]) == 0
    runs = sorted(p.name for p in out.iterdir())
    assert len(runs) == 4
    summary = json.loads((out / runs[0] / "summary.json").read_text())
    assert summary["steps"] <= 300 and summary["reconstruction_error"] is not None
    assert "reconstruction_error" in capsys.readouterr().out
    assert main(["mf", *TINY, "--seeds", "0..1", "--init-scale", "1e-3", "1e-2", "--out", str(out)]) == 2
    assert "finished run" in capsys.readouterr().err


def test_plot_redraws_a_run(tmp_path):
    main(["mf", *TINY, "--out", str(tmp_path / "r")])
    run = next((tmp_path / "r").iterdir())
    (run / "errors.png").unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "errors.png").exists()
    assert main(["plot", str(tmp_path / "nowhere")]) == 2


def test_nnm_solves_the_same_problem(tmp_path):
    assert main(["nnm", "--shape", "12", "10", "--rank", "1", "--num-observations", "80",
                 "--out", str(tmp_path / "n")]) == 0
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["constraint_residual"] < 1e-5 and summary["reconstruction_error"] < 1e-2


@pytest.mark.parametrize(
    "args, message",
    [
        (["mf", "--shape", "5", "5", "--rank", "6"], "rank must be in [1, 5]"),
        (["mf", "--shape", "5", "5", "--rank", "1", "--num-observations", "26"], "num_observations must be in [1, 25]"),
        (["mf", "--lr", "0"], "lr must be positive"),
        (["mf", "--lr", "-1"], "lr must be positive"),
        (["mf", "--init-scale", "0"], "init_scale must be positive"),
        (["mf", "--depth", "0"], "depth must be >= 1"),
        (["mf", "--data", "/nonexistent/u.data"], "no such file"),
        (["mf", "--shape", "3", "4", "5"], "shape must be (rows, cols)"),
        (["mf", "--device", "tpu"], "device must be one of"),
    ],
)
def test_bad_input_gets_a_clear_error_naming_the_argument(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    assert main([*args, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("summary.json"))


def test_malformed_data_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "u.data"
    bad.write_text("this is not\tmovielens\n")
    assert main(["mf", "--data", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "MovieLens" in capsys.readouterr().err
