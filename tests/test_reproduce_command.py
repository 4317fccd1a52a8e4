"""``implicitrank reproduce`` on the command line: one experiment per core for 'all', logs per experiment."""

import json

import pytest

from implicitrank.cli import main
from implicitrank.experiments import MODULES, evaluate, not_run, write_claims


def test_experiments_run_on_two_workers_each_with_its_log_and_claims(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("implicitrank.experiments.MODULES", {
        "arora2019-dynamics": "arora2019_dynamics", "razin2021-natural": "razin2021_natural"})
    out = tmp_path / "all"
    code = main(["reproduce", "all", "--scale", "test", "--workers", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "2 at a time" in printed
    failed = 0
    for name in ("arora2019-dynamics", "razin2021-natural"):
        claims = json.loads((out / name / "claims.json").read_text())["claims"]
        assert claims and (out / name / "log.txt").is_file()
        assert f"claims in {out / name / 'claims.md'}" in printed
        failed += sum(c["status"] == "fail" for c in claims)
    assert f"{failed} claim(s) failed" in printed and code == (1 if failed else 0)
    summary = json.loads((out / "claims.json").read_text())
    assert {e["experiment"] for e in summary["experiments"]} == {"arora2019-dynamics", "razin2021-natural"}
    assert len(summary["failed"]) == failed and summary["provenance"]["command"]
    assert "| experiment | pass | fail | not run |" in (out / "claims.md").read_text()


def _fake(claims_by_name):
    def reproduce(name, scale, out_dir, seeds=None, data=None, threads=None):
        out_dir.mkdir(parents=True, exist_ok=True)
        write_claims(out_dir, name, scale, claims_by_name[name], seeds=[0, 1, 2])
        return claims_by_name[name]
    return reproduce


def test_exit_status_is_one_when_a_claim_fails_and_the_summary_lists_failures_first(tmp_path, monkeypatch, capsys):
    """Today reproduce exits 0 with failing claims and 'reproduce all' writes no summary."""
    good = [evaluate("holds", "at_most", 1.0, [0.5, 0.6, 0.7], seeds=[0, 1, 2]),
            not_run("needs data", None, "needs --data")]
    bad = [evaluate("breaks", "at_least", 5.0, [1.0, 7.0, 8.0], seeds=[0, 1, 2])]
    monkeypatch.setattr("implicitrank.experiments.MODULES", {"a-good": "x", "b-bad": "y"})
    monkeypatch.setattr("implicitrank.experiments.experiment", lambda name: None)
    monkeypatch.setattr("implicitrank.experiments.reproduce", _fake({"a-good": good, "b-bad": bad}))
    # "not run" is reported, not failed
    assert main(["reproduce", "a-good", "--scale", "test", "--out", str(tmp_path / "one")]) == 0
    assert main(["reproduce", "b-bad", "--scale", "test", "--out", str(tmp_path / "two")]) == 1
    out = tmp_path / "all"
    assert main(["reproduce", "all", "--scale", "test", "--workers", "1", "--out", str(out)]) == 1
    assert "1 claim(s) failed" in capsys.readouterr().out
    summary = json.loads((out / "claims.json").read_text())
    assert summary["experiments"] == [{"experiment": "b-bad", "pass": 0, "fail": 1, "not run": 0},  # failures first
                                      {"experiment": "a-good", "pass": 1, "fail": 0, "not run": 1}]
    assert [f["claim"] for f in summary["failed"]] == ["breaks"] and summary["failed"][0]["experiment"] == "b-bad"
    md = (out / "claims.md").read_text()
    assert md.index("b-bad") < md.index("a-good") and "## Failed claims" in md and "| breaks |" in md


def test_a_small_scale_says_it_is_not_the_reproduction_wherever_its_verdicts_are_shown(tmp_path, monkeypatch, capsys):
    """Test scale failed 14 claims with nothing saying its problems are far smaller than the papers'."""
    from implicitrank.experiments.claims import SCALE_NOTES
    from implicitrank.reports import write_report

    bad = [evaluate("breaks", "at_least", 5.0, [1.0, 7.0, 8.0], seeds=[0, 1, 2])]
    monkeypatch.setattr("implicitrank.experiments.MODULES", {"b-bad": "y"})
    monkeypatch.setattr("implicitrank.experiments.experiment", lambda name: None)
    monkeypatch.setattr("implicitrank.experiments.reproduce", _fake({"b-bad": bad}))
    for scale in ("test", "quick", "paper"):
        out = tmp_path / scale
        assert main(["reproduce", "all", "--scale", scale, "--workers", "1", "--out", str(out)]) == 1
        printed = capsys.readouterr().out
        pages = {"printed": printed, "summary": (out / "claims.md").read_text(),
                 "experiment": (out / "b-bad" / "claims.md").read_text(), "report": write_report(out).read_text()}
        for where, text in pages.items():
            if scale == "paper":
                assert not any(note in text for note in SCALE_NOTES.values()), where
            else:
                assert SCALE_NOTES[scale] in text.replace("&#39;", "'"), (scale, where)
    assert "far smaller than the papers'" in SCALE_NOTES["test"] and "--scale paper" in SCALE_NOTES["quick"]


def test_resume_of_a_finished_experiment_reports_its_failed_claims(tmp_path, monkeypatch, capsys):
    """``reproduce NAME --resume`` on an --out where NAME finished with a failed claim runs nothing, and says so as
    the first run did: 1 claim failed, exit 1 (it said '0 claim(s) failed' and exited 0)."""
    bad = [evaluate("breaks", "at_least", 5.0, [1.0, 7.0, 8.0], seeds=[0, 1, 2]),
           evaluate("holds", "at_most", 1.0, [0.5, 0.6, 0.7], seeds=[0, 1, 2])]
    ran = []

    def reproduce(name, scale, out_dir, seeds=None, data=None, threads=None):
        ran.append(name)
        return _fake({"b-bad": bad})(name, scale, out_dir)
    monkeypatch.setattr("implicitrank.experiments.MODULES", {"b-bad": "y"})
    monkeypatch.setattr("implicitrank.experiments.experiment", lambda name: None)
    monkeypatch.setattr("implicitrank.experiments.reproduce", reproduce)
    args = ["reproduce", "b-bad", "--scale", "test", "--out", str(tmp_path / "o")]
    assert main(args) == 1
    assert "1 claim(s) failed" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 1
    printed = capsys.readouterr().out
    assert "finished earlier, kept" in printed and "1 claim(s) failed" in printed and ran == ["b-bad"]


def test_seeds_reach_the_experiment(tmp_path, monkeypatch):
    seen = []

    def reproduce(name, scale, out_dir, seeds=None, data=None, threads=None):
        seen.append(seeds)
        return _fake({name: []})(name, scale, out_dir)
    monkeypatch.setattr("implicitrank.experiments.reproduce", reproduce)
    for text in ("0", "0,1", "0..2"):
        assert main(["reproduce", "arora2019-dynamics", "--seeds", text, "--out", str(tmp_path / text)]) == 0
    assert seen == [(0,), (0, 1), (0, 1, 2)]  # --seeds lists the seeds themselves (``claims.seed_list``)


@pytest.mark.parametrize("flag", ["--workers", "--jobs"])
def test_workers_below_one_is_refused(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "all", "--scale", "test", flag, "0", "--out", str(tmp_path / "o")])
    assert stop.value.code == 2
    assert f"argument {flag}: expected a positive integer, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_demo_exits_one_when_the_papers_ordering_does_not_hold(tmp_path, capsys):
    """Five steps from small init learn nothing: depth 3 is not far below depth 2, so the ordering fails."""
    out = tmp_path / "demo"
    code = main(["demo", "--size", "12", "--rank", "1", "--num-observations", "40", "--max-steps", "5",
                 "--no-progress", "--out", str(out)])
    assert "does NOT hold" in capsys.readouterr().out
    record = json.loads((out / "demo.json").read_text())
    assert code == 1 and record["ordering_holds"] is False and record["provenance"]["seeds"] == [0]


def test_locality_exits_one_when_a_claim_of_the_figure_fails(tmp_path, capsys):
    """At test scale (two epochs) nothing is learned: accuracy does not fall with the path length."""
    code = main(["locality", "pathfinder", "--scale", "test", "--seeds", "0", "--threads", "1", "--no-progress",
                 "--out", str(tmp_path / "loc")])
    assert code == 1 and "claim(s) failed" in capsys.readouterr().out


def test_reproduce_all_hands_data_to_the_experiments_that_can_read_it_and_says_which(tmp_path, capsys):
    """A directory holding u.data: arora2019-dynamics reads u.data in it (it was given the directory itself and
    refused it, mid-run); razin2021-natural, which needs IDX files, gets no data and is named."""
    from implicitrank.commands.reproduce import data_for

    ratings = [f"{1 + k % 900}\t{1 + k // 900}\t{1 + k % 5}\t881250949" for k in range(10_500)]
    (tmp_path / "u.data").write_text("\n".join(ratings) + "\n")
    given = data_for("all", list(MODULES), str(tmp_path))
    assert given["arora2019-dynamics"] == str(tmp_path / "u.data")
    assert given["razin2021-natural"] is None and given["razin2020-norms"] is None
    said = capsys.readouterr().out
    assert f"--data {tmp_path}: read by arora2019-dynamics" in said and "not by razin2021-natural" in said, said


def test_reproduce_hands_data_to_an_experiment_that_ignores_it_as_all_does(tmp_path, monkeypatch):
    """``reproduce all --data u.data`` gives the file to every experiment: one that reads no data must not refuse it
    (only the command line refuses --data for a single experiment that reads none)."""
    from implicitrank.experiments import registry

    seen = []
    module = registry.experiment("razin2020-norms")
    monkeypatch.setattr(module, "run", lambda scale, out_dir, seeds, data: seen.append(data) or [])
    registry.reproduce("razin2020-norms", "test", tmp_path, data=str(tmp_path / "u.data"))
    assert seen == [str(tmp_path / "u.data")]


def test_depth_invariance_draws_its_figure_for_seeds_without_seed_0(tmp_path):
    """Its figure took the rows of seed 0: with --seeds 1 it raised IndexError after every run had trained."""
    from implicitrank.experiments import reproduce

    claims = reproduce("arora2019-depth-invariance", "test", tmp_path, seeds=(1,))
    assert claims and (tmp_path / "nuclear_norm_by_depth.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_experiment_runs_from_seeds_that_leave_out_seed_0(name, tmp_path):
    """Seeds 1 and 2 in place of the scale's own: nothing may assume seed 0 is among them."""
    from implicitrank.experiments import reproduce

    claims = reproduce(name, "test", tmp_path, seeds=(1, 2))
    assert claims and list(tmp_path.rglob("*.png"))
