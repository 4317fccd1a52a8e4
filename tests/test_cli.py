import json
import math
import os

import pytest

from implicitrank import plots
from implicitrank.cli import main, subcommands

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


def test_nnm_records_its_problem_and_solver_not_training_fields_and_is_titled_by_its_data_seed(tmp_path):
    # config.json listed lr, eps, depth, init_scale, optimizer... that a solve never uses, and its title said
    # "seed 0" (the unused init seed) for an observation set drawn with --data-seeds 3.
    assert main(["nnm", "--shape", "12", "10", "--rank", "1", "--num-observations", "80", "--data-seeds", "3",
                 "--out", str(tmp_path / "n")]) == 0
    config = json.loads((tmp_path / "n" / "config.json").read_text())
    assert config == {"baseline": "nuclear_norm_min", "eps_constraint": 0.0, "method": "admm", "tol": 1e-7,
                      "max_iter": 20000, "model": "matrix", "task": "completion", "shape": [12, 10], "rank": 1,
                      "num_observations": 80, "target_norm": None, "data": None, "data_seed": 3, "truth_seed": 0,
                      "dtype": "float64"}
    setup = plots.describe_setup(config)
    assert setup.endswith("data seed 3, truth seed 0") and "init" not in setup and "; seed" not in setup


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
        (["mf", "--device", "cuda:"], "device must be one of"),
        (["mf", "--optimizer", "gd", "--rtol", "1e-6"], "--rtol applies to --optimizer gradient-flow only"),
        (["mf", "--flow-method", "rkc"], "--flow-method applies to --optimizer gradient-flow only"),
        (["tf", "--optimizer", "adam", "--atol", "1e-12"], "--atol applies to --optimizer gradient-flow only"),
        (["htf", "--optimizer", "gd", "--eps", "1e-3"], "--eps applies to --optimizer global-rmsprop only"),
        (["mf", "--optimizer", "gradient-flow", "--lr", "0.1"], "--optimizer gradient-flow does not use it"),
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


HEAVY = ("torch", "numpy", "matplotlib", "scipy", "sklearn", "submitit", "tqdm")


def test_help_of_every_command_imports_no_heavy_module():
    """``implicitrank --help`` and each command's ``--help`` build every parser without loading torch,
    numpy, matplotlib, scipy, scikit-learn, submitit or tqdm (start-up time: issue 18)."""
    import subprocess
    import sys

    script = f"""
import sys
from implicitrank.cli import build_parser, main, subcommands

names = [[]] + [name.split() for name, _ in subcommands(build_parser())]
for argv in names:
    try:
        main([*argv, "--help"])
    except SystemExit as exit:
        assert exit.code == 0, argv
loaded = [m for m in {HEAVY!r} if m in sys.modules]
print("LOADED", loaded, len(names), file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("LOADED [] "), line
    assert int(line.split()[-1]) >= 12  # the top level and every command, nested ones included


def test_version(capsys):
    import implicitrank

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"implicitrank {implicitrank.__version__}"


def test_parser_defaults_equal_the_library_defaults():
    """The parsers read their defaults from ``commands._defaults`` (no torch); these equal the library's own."""
    import dataclasses

    from implicitrank.cli import build_parser
    from implicitrank.commands import _defaults
    from implicitrank.experiments import SCALE_NAMES
    from implicitrank.factorizations import CPFactorization, HierarchicalFactorization, MatrixFactorization
    from implicitrank.flow import METHODS as FLOW_METHODS
    from implicitrank.nn.digits_experiment import DigitsConfig
    from implicitrank.run import DTYPES, METHODS, TASKS, RunConfig
    from implicitrank.sweeps.executors import EXECUTORS, MIN_TIME, SlurmOptions

    config = RunConfig()
    assert {k: getattr(config, k) for k in _defaults.RUN} == _defaults.RUN
    assert _defaults.FLOW_METHODS == FLOW_METHODS
    assert _defaults.METHODS == METHODS and _defaults.DTYPES == tuple(DTYPES) and _defaults.TASKS == TASKS
    assert _defaults.MATRIX_INITS == MatrixFactorization.inits and _defaults.CP_INITS == CPFactorization.inits
    assert _defaults.HT_INITS == HierarchicalFactorization.inits
    assert _defaults.SCALES == SCALE_NAMES and _defaults.EXECUTORS == EXECUTORS
    slurm = SlurmOptions()
    assert {k: getattr(slurm, k) for k in _defaults.SLURM} == _defaults.SLURM
    assert _defaults.SLURM_MIN_TIME == MIN_TIME
    assert dataclasses.asdict(DigitsConfig()).items() >= {k: v for k, v in _defaults.DIGITS.items()}.items()

    commands = dict(subcommands(build_parser()))
    mf = vars(commands["mf"].parse_args([]))
    for name in ("rank", "task", "depth", "init", "optimizer", "eps", "max_steps", "dtype"):
        assert mf[name] == getattr(config, name), name
    from implicitrank.commands.factorize import resolve_problem  # shape and observations: the library's (no --data)

    problem = resolve_problem(commands["mf"].parse_args([]), None)
    assert problem == {"shape": config.shape, "num_observations": config.num_observations}
    assert mf["lr"] == [config.lr] and mf["init_scale"] == [config.init_scale]


@pytest.mark.parametrize("command", ["tf", "htf"])
def test_tensor_commands_default_to_the_tensor_papers_optimizer(command):
    """Razin et al. 2021/2022 ran global RMSprop with eps 1e-6, not the 2019 matrix paper's 1e-4."""
    from implicitrank.cli import build_parser
    from implicitrank.commands.factorize import configs_from_args

    args = dict(subcommands(build_parser()))[command].parse_args([])
    config = configs_from_args(args)[0]
    assert config.eps == 1e-6 and config.optimizer == "global-rmsprop"
    assert dict(subcommands(build_parser()))["mf"].parse_args([]).eps == 1e-4


def test_tf_with_no_options_recovers_its_default_tensor(tmp_path):
    """The default problem is one the method solves (8×8×8, CP rank 3, 200 entries: Razin & Cohen 2020's order-3
    completion): from the matrix paper's rank 5 tf stopped at its 100,000-step cap with error 4.6."""
    out = tmp_path / "tf"
    assert main(["tf", "--no-progress", "--out", str(out)]) == 0
    (summary,) = [json.loads(path.read_text()) for path in out.glob("*/summary.json")]
    assert summary["status"] == "converged" and summary["reconstruction_error"] < 1e-2, summary


def test_tf_starts_at_the_norm_of_the_tensor_papers_init_std(tmp_path):
    """tf defaults to the tensor papers' init, factor entries of std 1e-3 (Razin & Cohen 2020's 8×8×8 completion
    with R = 64, Razin et al. 2022): ||W(0)||_F = sqrt(R·8³)·std³ ≈ 1.8e-7, not --init-scale's 1e-3; summary.json
    records both."""
    out = tmp_path / "tf"
    assert main(["tf", "--max-steps", "0", "--seeds", "0..7", "--no-progress", "--out", str(out)]) == 0
    summaries = [json.loads(path.read_text()) for path in out.glob("*/summary.json")]
    expected = math.sqrt(64 * 8**3) * 1e-3**3
    assert len(summaries) == 8
    for summary in summaries:
        assert summary["init_std"] == pytest.approx(1e-3, rel=1e-9)
        assert summary["init_scale"] == pytest.approx(expected, rel=1e-9)
    rms = math.sqrt(sum(s["frobenius_norm"] ** 2 for s in summaries) / len(summaries))  # ||W(0)||_F: no step taken
    assert rms == pytest.approx(expected, rel=0.1)  # 8 draws (2% off with these seeds)


@pytest.mark.parametrize(("argv", "std"), [(["tf"], 1e-3), (["htf"], 1e-2), (["mf", "--init-std", "1e-3"], 1e-3),
                                           (["tf", "--init-std", "1e-2", "5e-3"], 1e-2)])
def test_init_std_is_the_factor_entries_std_in_every_command(argv, std):
    """``--init-std`` means the same in mf, tf and htf: the init_scale whose gaussian init has factor entries of that
    std (``scale_for_entry_std``); tf and htf default to the papers' (1e-3 CP, 1e-2 HT), mf to --init-scale 1e-3."""
    from implicitrank.cli import build_parser
    from implicitrank.commands.factorize import configs_from_args
    from implicitrank.run import MODELS

    configs = configs_from_args(dict(subcommands(build_parser()))[argv[0]].parse_args(argv[1:]))
    model = MODELS[configs[0].model].build(configs[0])
    assert configs[0].init_scale == model.scale_for_entry_std(std)
    assert float(model.entry_std(configs[0].init_scale)) == pytest.approx(std, rel=1e-9)
    if argv == ["tf", "--init-std", "1e-2", "5e-3"]:
        assert [c.init_scale for c in configs] == [model.scale_for_entry_std(s) for s in (1e-2, 5e-3)]
    assert configs_from_args(dict(subcommands(build_parser()))["mf"].parse_args([]))[0].init_scale == 1e-3
    given = dict(subcommands(build_parser()))["tf"].parse_args(["--init-scale", "0.1"])  # not the default std's
    assert configs_from_args(given)[0].init_scale == 0.1


def test_every_default_is_shown_once_in_help():
    from implicitrank.cli import build_parser

    for name, parser in [("implicitrank", build_parser()), *subcommands(build_parser())]:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or not action.help or action.help == "==SUPPRESS==":
                continue
            text = formatter._expand_help(action)
            assert text.count("(default") <= 1, (name, action.dest, text)
            if action.default not in (None, False, "==SUPPRESS==") and action.dest not in ("help", "version"):
                assert "default" in text, (name, action.dest, text)


def test_more_threads_than_cores_are_named_in_a_warning_and_more_than_the_cpus_refused(tmp_path, capsys, monkeypatch):
    """``--threads 1000`` on a 2-core machine ran on 2 threads without a word; ``--threads 100000`` crashed the
    process (SIGSEGV) and starved the machine of processes. More threads than this process's cores (its CPU
    affinity, here set to one) are set with a warning; more than the machine's CPUs are refused."""
    import os

    import implicitrank.threads
    from implicitrank.cli import main
    from implicitrank.threads import THREAD_VARIABLES, torch_threads

    for name in THREAD_VARIABLES:  # --threads sets them for libraries loaded later: put them back afterwards
        present = name in os.environ
        monkeypatch.setenv(name, os.environ.get(name, ""))  # recorded as it was, absent or not
        if not present:
            monkeypatch.delenv(name)
    tiny = ["mf", "--shape", "6", "6", "--rank", "1", "--num-observations", "20", "--max-steps", "2", "--no-progress"]
    cpus = os.cpu_count() or 1
    with pytest.raises(SystemExit) as refused:
        main([*tiny, "--threads", str(cpus + 1), "--out", str(tmp_path / "refused")])
    assert refused.value.code == 2
    assert f"--threads: expected at most {cpus} (this machine's CPUs)" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    monkeypatch.setattr(implicitrank.threads, "available_cores", lambda: 1)
    with torch_threads(None):  # restores the thread count the command sets
        assert main([*tiny, "--threads", str(min(2, cpus)), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert ("warning: --threads 2 is more than the 1 cores this process may use" in err) == (cpus >= 2)
    with torch_threads(None):
        assert main([*tiny, "--threads", "1", "--out", str(tmp_path / "p")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_list_default_is_shown_as_it_is_typed():
    """``locality pathfinder --help`` showed "(default: 0 1)" for --seeds, which takes one comma list: typed as
    shown, ``--seeds 0 1`` is refused. Every list default, typed as its help shows it, parses back to itself."""
    import re

    from implicitrank.cli import build_parser

    checked = 0
    for name, parser in [("implicitrank", build_parser()), *subcommands(build_parser())]:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or not isinstance(action.default, (list, tuple)):
                continue
            shown = re.search(r"\(default: ([^)]*)\)", formatter._expand_help(action)).group(1)
            parsed = parser.parse_args([action.option_strings[0], *shown.split()])
            assert getattr(parsed, action.dest) == list(action.default), (name, action.dest, shown)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("command", [["mf"], ["tf"], ["htf"], ["demo"], ["reproduce"], ["layers", "demo"],
                                     ["locality", "pathfinder"], ["locality", "is-same-class"]])
def test_seeds_is_a_list_everywhere(command):
    from implicitrank.cli import build_parser

    parser = dict(subcommands(build_parser()))[" ".join(command)]
    assert parser.parse_args(["--seeds", "0..2"]).seeds == [0, 1, 2]
    assert parser.parse_args(["--seeds", "0,2,5"]).seeds == [0, 2, 5]
    assert parser.parse_args(["--seeds", "3"]).seeds == [3]


def test_old_seed_flag_warns_and_means_one_seed(capsys):
    from implicitrank.cli import build_parser

    parser = dict(subcommands(build_parser()))["demo"]
    assert parser.parse_args(["--seed", "4"]).seeds == [4]
    assert "--seed is deprecated; use --seeds" in capsys.readouterr().err


def test_workers_means_parallel_worker_processes_in_reproduce_and_sweep(capsys):
    """One flag for one idea: ``--workers`` in reproduce (experiments of 'all') and sweep (local jobs); reproduce's
    old ``--jobs`` still works, with a one-line warning."""
    from implicitrank.cli import build_parser

    commands = dict(subcommands(build_parser()))
    helps = {name: next(a.help for a in commands[name]._actions if "--workers" in a.option_strings)
             for name in ("reproduce", "sweep")}
    assert all(h.startswith("worker processes running in parallel (") for h in helps.values()), helps
    assert commands["reproduce"].parse_args(["all", "--workers", "3"]).workers == 3
    assert commands["sweep"].parse_args(["spec.toml", "--workers", "3"]).workers == 3
    assert capsys.readouterr().err == ""
    assert commands["reproduce"].parse_args(["all", "--jobs", "3"]).workers == 3
    warning = "implicitrank reproduce: warning: --jobs is deprecated; use --workers"
    assert capsys.readouterr().err.splitlines() == [warning]


def test_reproduce_runs_the_seeds_given(tmp_path, capsys):
    """``--seeds`` lists the seeds in reproduce too: ``2`` is seed 2 (it was a count of two; a note says so)."""
    out = tmp_path / "o"
    assert main(["reproduce", "arora2019-dynamics", "--scale", "test", "--seeds", "2", "--no-progress",
                 "--out", str(out)]) in (0, 1)  # 1: a claim failed at this scale
    assert "--seeds is a list of seeds: 2 runs seed 2 only" in capsys.readouterr().err
    claims = json.loads((out / "arora2019-dynamics" / "claims.json").read_text())["claims"]
    assert {s for c in claims for s in c["seeds"]} == {2}


def test_data_directory_is_searched_for_the_known_file(tmp_path, capsys):
    """``--data DIR`` means the command's known file in DIR (here MovieLens's u.data), the same as naming it."""
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "u.data").write_text("this is not\tmovielens\n")
    assert main(["mf", "--data", str(tmp_path / "ml"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "MovieLens" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["nnm", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    assert "data: directory" in capsys.readouterr().err


def test_demo_runs_several_seeds_and_checks_the_ordering(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--size", "12", "--rank", "1", "--num-observations", "70", "--max-steps", "200",
                 "--seeds", "0,1", "--threads", "1", "--no-progress", "--out", str(out)])
    result = json.loads((out / "demo.json").read_text())
    assert code == (0 if result["ordering_holds"] else 1)  # demo exits 1 when the paper's ordering does not hold
    assert [(r["method"], r.get("seed")) for r in result["rows"]] == [
        ("depth 1", 0), ("depth 1", 1), ("depth 2", 0), ("depth 2", 1), ("depth 3", 0), ("depth 3", 1),
        ("nuclear norm", None)]
    assert {p.name for p in out.iterdir()} >= {"depth3-seed0", "depth3-seed1", "nuclear_norm", "demo.png"}
    assert "paper's ordering" in capsys.readouterr().out


def test_threads_flag_sets_this_process_threads(tmp_path, monkeypatch):
    import torch

    from implicitrank.threads import THREAD_VARIABLES

    for name in THREAD_VARIABLES:  # restored after the test, as torch's count is below
        monkeypatch.setenv(name, "1")
    try:
        assert main(["nnm", "--shape", "8", "8", "--rank", "1", "--num-observations", "40", "--threads", "2",
                     "--out", str(tmp_path / "n")]) == 0
        assert torch.get_num_threads() == 2
        assert all(os.environ[name] == "2" for name in THREAD_VARIABLES)
    finally:
        torch.set_num_threads(1)


def test_locality_resumes_only_with_resume(tmp_path, capsys):
    """``--resume`` means what it means in mf and reproduce: an --out holding earlier runs is refused without it;
    with it, finished runs are kept and only the new seed trains."""
    args = ["locality", "is-same-class", "--scale", "test", "--reg-weights", "0", "--distances", "0",
            "--n-train", "64", "--n-test", "32", "--epochs", "1", "--no-progress", "--threads", "1",
            "--out", str(tmp_path)]
    assert main([*args, "--seeds", "0"]) in (0, 1)  # 1: a claim of the figure fails at this size
    first = sorted(tmp_path.rglob("summary.json"))
    assert len(first) == 1
    written = first[0].stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--seeds", "0,1"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--seeds", "0,1", "--resume"]) in (0, 1)
    assert len(list(tmp_path.rglob("summary.json"))) == 2 and first[0].stat().st_mtime_ns == written


@pytest.mark.parametrize(("argv", "network"), [
    (["is-same-class"], ("resnet18", 0.125)),  # the quick scale's network
    (["is-same-class", "--width-multiplier", "0.25"], ("resnet18", 0.25)),
    (["is-same-class", "--model", "plain"], ("plain", 16)),
    (["pathfinder"], ("plain", 16)),
    (["pathfinder", "--base-channels", "8"], ("plain", 8)),
    (["pathfinder", "--model", "resnet34"], ("resnet34", 1.0)),
    (["pathfinder", "--model", "resnet34", "--width-multiplier", "0.5"], ("resnet34", 0.5))])
def test_locality_width_flags_each_set_one_network(argv, network, tmp_path, monkeypatch):
    """``--width-multiplier`` sizes a ResNet and ``--base-channels`` the plain CNN (one ``--width`` meant both);
    a ``--model`` of the other kind than the scale's starts from that network's default width."""
    seen = []

    class Trained(Exception):
        """Raised where the runs would train."""

    def run_sweep(setup, out, seeds, progress):
        seen.append((setup.model, setup.width))
        raise Trained

    monkeypatch.setattr("implicitrank.experiments.locality.run_sweep", run_sweep)
    with pytest.raises(Trained):
        main(["locality", *argv, "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert seen == [network]


def test_mf_gradient_flow_takes_the_integrator_by_name(tmp_path):
    # rkc and dopri5 integrate one flow: at a tight tolerance their end points (so their errors) agree.
    errors = {}
    for method in ("dopri5", "rkc"):
        out = tmp_path / method
        assert main(["mf", *TINY, "--optimizer", "gradient-flow", "--flow-method", method, "--rtol", "1e-7",
                     "--dtype", "float64", "--init-scale", "1e-2", "--max-steps", "20000", "--out", str(out)]) == 0
        run = next(out.iterdir())
        assert json.loads((run / "config.json").read_text())["flow_method"] == method
        summary = json.loads((run / "summary.json").read_text())
        assert summary["converged"], summary
        assert summary["gradient_evaluations"] >= 2 * summary["steps"]  # rkc: s >= 2 stages a step; dopri5: 6
        errors[method] = summary["reconstruction_error"]
    assert errors["rkc"] == pytest.approx(errors["dopri5"], rel=0.02)


@pytest.mark.parametrize("name", ["mf", "nnm"])
def test_matrix_commands_help_gives_the_shape_of_a_movielens_file(name, tmp_path):
    """--shape's help said "with --data: the file's", but a MovieLens u.data is read as ML-100K's full 943 × 1682 (so
    that a split, u1.base, keeps it) however few of its ids the file holds: the help says so."""
    from implicitrank.cli import build_parser
    from implicitrank.tasks.files import MOVIELENS_100K_SHAPE, data_shape

    parser = dict(subcommands(build_parser()))[name]
    text = " ".join(parser.format_help().split())
    assert "with a MovieLens u.data: 943 1682, all of ML-100K's users and items, for a split such as u1.base" in text
    (tmp_path / "u1.base").write_text("1\t1\t5\t874965758\n2\t3\t4\t876893171\n")
    assert data_shape(tmp_path / "u1.base") == MOVIELENS_100K_SHAPE == (943, 1682)


@pytest.mark.parametrize("name", ["tf", "htf"])
def test_tensor_commands_help_does_not_offer_data_files_they_refuse(name, tmp_path, capsys):
    """tf and htf refuse every data file (they hold matrix completion problems), so their --help does not describe
    --data as a completion problem nor --shape and --num-observations as read from one (it did: a user following it
    got the refusal); the refusal itself names mf and nnm."""
    from implicitrank.cli import build_parser

    parser = dict(subcommands(build_parser()))[name]
    text = " ".join(parser.format_help().split())
    assert "with --data" not in text and "a completion problem" not in text
    assert "not for tf/htf" in text and "mf and nnm" in text
    import numpy as np

    np.savez(tmp_path / "x.npz", matrix=np.ones((4, 3)), mask=np.eye(4, 3) > 0)
    capsys.readouterr()
    assert main([name, "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "matrix completion" in capsys.readouterr().err and not (tmp_path / "o").exists()
