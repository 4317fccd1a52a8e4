"""Bad input and faults, table-driven: each case is an input (command line and files set up first), the
exit status it must end with, and words its message must hold (issue 14). Our own input errors end in a
one-line message and exit 2; a run that diverges stops as ``diverged`` while the rest of its batch goes on;
nothing finished is ever overwritten. Cases run in-process through ``implicitrank.cli.main`` except where
a real process is needed (kill -9, a closed pipe), which live below the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from implicitrank.cli import main

TINY = ("--shape", "12", "10", "--rank", "2", "--num-observations", "70", "--max-steps", "30", "--no-progress")


@dataclass(frozen=True)
class Case:
    """``argv`` ({tmp} stands for a fresh directory), after ``setup(tmp)``; ``check(tmp)`` runs afterwards."""

    name: str
    argv: tuple[str, ...]
    code: int
    words: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path], None] | None = None


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _lr1_lives_lr100_diverges(tmp: Path) -> None:
    healthy, diverged = _summary(tmp / "o" / "depth3-init0.1-lr1-seed0-data0"), \
        _summary(tmp / "o" / "depth3-init0.1-lr100-seed0-data0")
    assert healthy["status"] == "max_steps" and healthy["reconstruction_error"] is not None
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] == diverged["steps"] > 0
    for run in (tmp / "o").iterdir():
        assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json", "factors.pt"}
    rows = [json.loads(line) for line in
            (tmp / "o" / "depth3-init0.1-lr100-seed0-data0" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] <= diverged["diverged_at_step"]


CASES = [
    # divergence in a batch (item 2)
    Case("one diverging lr keeps the healthy run",
         ("mf", "--shape", "20", "20", "--num-observations", "100", "--optimizer", "gd", "--lr", "1", "100",
          "--init-scale", "0.1", "--max-steps", "60", "--no-progress", "--out", "{tmp}/o"),
         0, ("diverged", "at step"), check=_lr1_lives_lr100_diverges),
    Case("lr inf", ("mf", *TINY, "--lr", "inf", "--out", "{tmp}/o"), 2, ("lr must be positive", "> 0")),
    Case("lr nan", ("mf", *TINY, "--lr", "nan", "--out", "{tmp}/o"), 2, ("lr must be positive",)),
    Case("init scale inf", ("mf", *TINY, "--init-scale", "inf", "--out", "{tmp}/o"), 2, ("init_scale", "> 0")),
    Case("init scale negative", ("mf", *TINY, "--init-scale", "-1e-3", "--out", "{tmp}/o"), 2,
         ("init_scale", "must be", "> 0")),
    Case("tf init scale inf", ("tf", "--shape", "3", "3", "3", "--num-observations", "10", "--max-steps", "5",
                               "--init-scale", "inf", "--no-progress", "--out", "{tmp}/o"), 2, ("init_scale",)),
    # options that do not exist must not half-work (item 8)
    Case("abbreviated option", ("locality", "is-same-class", "--cifar", "{tmp}/c", "--out", "{tmp}/o"), 2,
         ("unrecognized arguments", "--cifar")),
    Case("abbreviated mf option", ("mf", *TINY, "--init-sc", "0.1", "--out", "{tmp}/o"), 2, ("--init-sc",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == case.code, text
    for word in case.words:
        assert word in text, text
    if case.code == 2:  # one line (after argparse's usage, for its own refusals), no traceback
        lines = captured.err.strip().splitlines()
        assert "Traceback" not in text and "error:" in lines[-1], captured.err
        assert len(lines) == 1 or lines[0].startswith("usage:"), captured.err
    if case.check is not None:
        case.check(tmp_path)


@pytest.mark.parametrize("error", [json.JSONDecodeError("Expecting value", "", 0), RuntimeError("bug"),
                                   ValueError("bug")])
def test_unexpected_errors_keep_their_traceback(error: Exception, monkeypatch) -> None:
    """Only our own input errors (``UsageError``) become exit 2; anything else is a bug and propagates."""
    from implicitrank.commands import factorize

    def fail(args):
        raise error

    monkeypatch.setattr(factorize, "run_command", fail)
    with pytest.raises(type(error)):
        main(["mf", *TINY])
