"""``implicitrank reproduce`` on the command line: one experiment per core for 'all', logs per experiment."""

import json

from implicitrank.cli import main


def test_experiments_run_on_two_workers_each_with_its_log_and_claims(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("implicitrank.experiments.MODULES", {
        "arora2019-dynamics": "arora2019_dynamics", "razin2021-natural": "razin2021_natural"})
    out = tmp_path / "all"
    assert main(["reproduce", "all", "--scale", "test", "--jobs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 at a time" in printed
    failed = 0
    for name in ("arora2019-dynamics", "razin2021-natural"):
        claims = json.loads((out / name / "claims.json").read_text())["claims"]
        assert claims and (out / name / "log.txt").is_file()
        assert f"claims in {out / name / 'claims.md'}" in printed
        failed += sum(c["status"] == "fail" for c in claims)
    assert f"{failed} claim(s) failed" in printed


def test_jobs_below_one_is_refused(tmp_path, capsys):
    assert main(["reproduce", "all", "--scale", "test", "--jobs", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
