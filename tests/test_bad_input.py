"""Bad input and faults, table-driven: each case is an input (command line and files set up first), the
exit status it must end with, and words its message must hold (issue 14). Our own input errors end in a
one-line message and exit 2; a run that diverges stops as ``diverged`` while the rest of its batch goes on;
nothing finished is ever overwritten. Cases run in-process through ``implicitrank.cli.main`` except where
a real process is needed (kill -9, a closed pipe), which live below the table.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import ctrl_c_group, group_alive, wait_for

from implicitrank.cli import main
from implicitrank.run import RunConfig

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
    absent: tuple[str, ...] = ()  # words the message must not hold


def _npz(tmp: Path, rows: int = 6, cols: int = 5, observed: float = 0.6, name: str = "x.npz",
         scale: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    matrix = np.outer(rng.standard_normal(rows), rng.standard_normal(cols))
    np.savez(tmp / name, matrix=scale * matrix, mask=rng.random((rows, cols)) < observed)


def _npz_of_scale(scale: float) -> Callable[[Path], None]:
    return lambda tmp: _npz(tmp, scale=scale)


def _npz_zero_where_unobserved(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((6, 5)) < 0.6
    matrix = np.outer(rng.standard_normal(6), rng.standard_normal(5))
    np.savez(tmp / "x.npz", matrix=np.where(mask, matrix, 0.0), mask=mask)


def _not_finite_not_converged(tmp: Path) -> None:
    (run,) = (tmp / "o").iterdir()
    summary = _summary(run)
    assert summary["status"] == "metrics_not_finite" and summary["unobserved_error"] is None, summary
    assert "unobserved_error is NaN/inf" in summary["message"] and summary["reconstruction_error"] is not None


def _udata(tmp: Path, lines: list[str] | None = None) -> None:
    rng = np.random.default_rng(0)
    rows = [f"{rng.integers(1, 944)}\t{rng.integers(1, 1683)}\t{rng.integers(1, 6)}\t88125{k}" for k in range(2100)]
    (tmp / "u.data").write_text("\n".join(rows if lines is None else lines) + "\n")


def _cifar_batches(tmp: Path, labels: tuple = (0, 1, 0, 1)) -> None:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(labels)}
        (tmp / name).write_bytes(pickle.dumps(batch))


def _only_runs(out: Path, names: list[str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == names  # a refused batch left a stray config.json before


def _shape_is(shape: tuple[int, ...]) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        out = tmp / "o"
        runs = [out] if (out / "config.json").exists() else list(out.iterdir())
        assert runs and all(tuple(json.loads((r / "config.json").read_text())["shape"]) == shape for r in runs)
        assert all((r / "summary.json").exists() for r in runs)
        if (tmp / "x.npz").exists():  # the file's observations are recorded, not the default 2000
            observed = int(np.load(tmp / "x.npz")["mask"].sum())
            assert all(json.loads((r / "config.json").read_text())["num_observations"] == observed for r in runs)
    return check


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "o").exists() or not any((tmp / "o").rglob("*")), sorted((tmp / "o").rglob("*"))


def _unfinished_nnm(tmp: Path) -> None:
    """What an nnm killed before its summary leaves: the directory with its config.json."""
    from implicitrank.commands.baseline import PROBLEM_FIELDS

    config = {k: v for k, v in RunConfig(shape=(6, 5), rank=1, num_observations=20, dtype="float64").to_dict().items()
              if k in PROBLEM_FIELDS}
    (tmp / "o").mkdir()
    (tmp / "o" / "config.json").write_text(json.dumps({"baseline": "nuclear_norm_min", "eps_constraint": 0.0,
                                                       "method": "admm", "tol": 1e-7, "max_iter": 20000, **config}))


def _modes_follow_umask(tmp: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    files = [f for f in (tmp / "o").rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"config.json", "metrics.jsonl", "summary.json", "factors.pt"}
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: oct(0o666 & ~mask) for f in files}


LAYERS_TINY = ("--architectures", "mlp", "--depths", "1", "--epochs", "1", "--hidden", "8", "--kept-ranks", "1",
               "--latent", "4", "--autoencoder-depths", "1", "--autoencoder-epochs", "1", "--no-progress")
EARLIER = '{"earlier": true}\n'


def _finished_demo(tmp: Path) -> None:
    (tmp / "o").mkdir()
    (tmp / "o" / "results.json").write_text(EARLIER)


def _unfinished_demo(tmp: Path) -> None:
    (tmp / "o").mkdir()
    (tmp / "o" / "config.json").write_text(EARLIER)


def _finished_matrix_demo(tmp: Path) -> None:
    (tmp / "o").mkdir()
    (tmp / "o" / "demo.json").write_text(EARLIER)


def _unfinished_matrix_demo(tmp: Path) -> None:
    """What a demo stopped during its first batch leaves: depth1 with its config.json."""
    (tmp / "o" / "depth1").mkdir(parents=True)
    (tmp / "o" / "depth1" / "config.json").write_text(EARLIER)


def _demo_runs(tmp: Path) -> None:
    """A demo's output as plot sees it: runs of metrics one level down, and the nuclear norm solution's, of none."""
    for name in ("depth1", "depth2"):
        (tmp / "o" / name).mkdir(parents=True)
        (tmp / "o" / name / "metrics.jsonl").write_text('{"step": 0, "train_loss": 1.0}\n')
    (tmp / "o" / "nuclear_norm").mkdir()
    (tmp / "o" / "nuclear_norm" / "config.json").write_text('{"baseline": "nuclear_norm_min"}\n')


def _finished_reproduce(tmp: Path) -> None:
    (tmp / "o" / "arora2019-dynamics").mkdir(parents=True)
    (tmp / "o" / "arora2019-dynamics" / "claims.json").write_text(EARLIER)


def _demo_output(tmp: Path) -> None:
    """What a demo leaves: run directories (config.json) and its report.html."""
    (tmp / "o" / "depth1").mkdir(parents=True)
    (tmp / "o" / "depth1" / "config.json").write_text(EARLIER)
    (tmp / "o" / "report.html").write_text(EARLIER)


def _kept(name: str) -> Callable[[Path], None]:
    """The earlier file ``o/name`` is still there, unchanged."""
    def check(tmp: Path) -> None:
        assert (tmp / "o" / name).read_text() == EARLIER
    return check


SPEC = ('name = "damaged"\n[base]\nshape = [8, 8]\nrank = 1\nnum_observations = 30\nmax_steps = 40\n'
        'checkpoint_every = 10\n[axes]\nseed = "0..1"\n')


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _unfinished_mf(tmp: Path) -> None:
    """An mf run killed after a checkpoint whose checkpoint.pt was then cut in half."""
    assert main(["mf", *TINY, "--out", str(tmp / "o")]) == 0
    run = next((tmp / "o").iterdir())
    from implicitrank import results

    results.save_torch(run / "checkpoint.pt", {"step": 10, "params": [1.0] * 1000})
    _truncate(run / "checkpoint.pt")
    (run / "summary.json").unlink()


def _unfinished_mf_with_garbage_checkpoint(tmp: Path) -> None:
    """An mf run killed after a checkpoint whose checkpoint.pt was then overwritten with bytes torch cannot read."""
    _unfinished_mf(tmp)
    (next((tmp / "o").iterdir()) / "checkpoint.pt").write_bytes(b"garbage" * 10)


def _unfinished_mf_with_a_list_checkpoint(tmp: Path) -> None:
    """An mf run killed after a checkpoint, whose checkpoint.pt was then replaced by a torch file of a list."""
    assert main(["mf", *TINY, "--out", str(tmp / "o")]) == 0
    run = next((tmp / "o").iterdir())
    torch.save([1, 2, 3], run / "checkpoint.pt")
    (run / "summary.json").unlink()


def _damaged_sweep(tmp: Path) -> None:
    """A finished two-run sweep; then run 0's summary.json is cut in half and run 1 is 'killed' with a
    checkpoint that is cut in half."""
    (tmp / "spec.toml").write_text(SPEC)
    assert main(["sweep", str(tmp / "spec.toml"), "--out", str(tmp / "o"), "--no-progress"]) == 0
    first, second = (tmp / "o" / "runs" / r for r in json.loads((tmp / "o" / "sweep.json").read_text())["run_ids"])
    _truncate(first / "summary.json")
    from implicitrank import results

    results.save_torch(second / "checkpoint.pt", {"step": 10, "params": [1.0] * 1000})
    _truncate(second / "checkpoint.pt")
    (second / "summary.json").unlink()


def _damaged_sweep_rerun(tmp: Path) -> None:
    _damaged_sweep(tmp)
    assert main(["sweep", str(tmp / "spec.toml"), "--out", str(tmp / "o"), "--no-progress"]) == 1


def _sweep_done_again(tmp: Path) -> None:
    runs = list((tmp / "o" / "runs").iterdir())
    assert all(json.loads((r / "summary.json").read_text())["steps"] == 40 for r in runs)
    assert {f.name for r in runs for f in r.iterdir()} >= {"summary.corrupt.json", "checkpoint.corrupt.pt"}
    assert len((tmp / "o" / "results.csv").read_text().splitlines()) == 3


def _sweep_json_truncated(tmp: Path) -> None:
    (tmp / "spec.toml").write_text(SPEC)
    assert main(["sweep", str(tmp / "spec.toml"), "--out", str(tmp / "o"), "--no-progress"]) == 0
    _truncate(tmp / "o" / "sweep.json")


def _metrics_truncated(tmp: Path) -> None:
    assert main(["mf", *TINY, "--out", str(tmp / "o")]) == 0
    (run,) = (tmp / "o").iterdir()
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text()[:-20])


def _metrics_with_a_text_step(tmp: Path) -> None:
    assert main(["mf", *TINY, "--out", str(tmp / "o")]) == 0
    (run,) = (tmp / "o").iterdir()
    (run / "metrics.jsonl").write_text('{"step": "a", "train_loss": 1.0}\n')


def _no_unobserved_error(tmp: Path) -> None:
    (run,) = (tmp / "o").iterdir()
    assert _summary(run)["unobserved_error"] is None
    assert all("unobserved_error" not in json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())


DIVERGING_SPEC = ('name = "lr"\n[base]\nshape = [20, 20]\nnum_observations = 100\noptimizer = "gd"\n'
                  'init_scale = 0.1\nmax_steps = 60\n[axes]\nlr = [1.0, 100.0]\n')


def _sweep_lr100_diverged(tmp: Path) -> None:
    rows = {row["lr"]: row for row in csv.DictReader((tmp / "o" / "results.csv").read_text().splitlines())}
    assert rows["1.0"]["status"] == "max_steps" and rows["100.0"]["status"] == "diverged", rows
    assert float(rows["1.0"]["reconstruction_error"]) < 1.5
    assert rows["100.0"]["reconstruction_error"] in ("", "nan", "None"), rows  # no result, not its last record


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _lr1_lives_lr100_diverges(tmp: Path) -> None:
    healthy, diverged = _summary(tmp / "o" / "depth3-init0.1-lr1-seed0-data0"), \
        _summary(tmp / "o" / "depth3-init0.1-lr100-seed0-data0")
    assert healthy["status"] == "max_steps" and healthy["reconstruction_error"] is not None
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] == diverged["steps"] > 0
    for key in ("reconstruction_error", "effective_rank", "nuclear_norm", "frobenius_norm"):  # not its last record
        assert diverged[key] is None, (key, diverged)
    for run in (tmp / "o").iterdir():
        assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json", "factors.pt"}
    rows = [json.loads(line) for line in
            (tmp / "o" / "depth3-init0.1-lr100-seed0-data0" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] <= diverged["diverged_at_step"]
    # the message's last finite record is finite (it named the NaN record of the divergence step itself)
    named = int(re.search(r"last finite record: step (\d+)", diverged["message"]).group(1))
    finite = [r["step"] for r in rows if r["train_loss"] is not None]
    assert finite and named == finite[-1] < diverged["diverged_at_step"], (named, finite, diverged)


def _absent(path: Path) -> None:
    assert not path.exists(), path


def _nothing_in(directory: Path) -> None:
    assert not any(directory.iterdir()), sorted(directory.iterdir())


def _no_numbers_after_a_divergence_between_records(tmp: Path) -> None:
    diverged = _summary(tmp / "o" / "depth3-init0.01-lr2.2-seed0-data0")
    rows = [json.loads(line) for line in
            (tmp / "o" / "depth3-init0.01-lr2.2-seed0-data0" / "metrics.jsonl").read_text().splitlines()]
    assert diverged["status"] == "diverged" and rows[-1]["step"] < diverged["diverged_at_step"]  # between records
    assert rows[-1]["reconstruction_error"] is not None  # kept in the records ...
    assert diverged["reconstruction_error"] is None and diverged["effective_rank"] is None  # ... not a result


CASES = [
    # divergence in a batch (item 2)
    Case("a divergence between two records leaves no numbers",
         ("mf", "--shape", "6", "6", "--rank", "1", "--num-observations", "20", "--optimizer", "gd", "--lr", "0.5",
          "2.2", "--init-scale", "0.01", "--max-steps", "300", "--no-progress", "--out", "{tmp}/o"),
         0, ("diverged", "last finite record: step"), check=_no_numbers_after_a_divergence_between_records),
    Case("one diverging lr keeps the healthy run",
         ("mf", "--shape", "20", "20", "--num-observations", "100", "--optimizer", "gd", "--lr", "1", "100",
          "--init-scale", "0.1", "--max-steps", "60", "--no-progress", "--out", "{tmp}/o"),
         0, ("diverged", "at step"), check=_lr1_lives_lr100_diverges),
    Case("every run diverges", ("mf", "--shape", "20", "20", "--num-observations", "100", "--optimizer", "gd",
                                "--lr", "100", "--init-scale", "0.1", "--seeds", "0,1", "--max-steps", "60",
                                "--no-progress", "--out", "{tmp}/o"), 1,
         ("diverged", "every run diverged, so there is no result", "diverged  4      none        none"),
         absent=(" nan ", " n/a ")),  # exit 0 read as a result by scripts; the table showed nan and n/a
    Case("one diverging lr in a batched sweep", ("sweep", "{tmp}/lr.toml", "--out", "{tmp}/o", "--no-progress"), 0,
         ("2 done (1 of them diverged)", "1 jobs", "diverged at step"),
         lambda tmp: (tmp / "lr.toml").write_text(DIVERGING_SPEC), _sweep_lr100_diverged),
    # a value given twice: one run directory for two runs, or one run counted twice in a mean
    Case("mf seeds repeated", ("mf", *TINY, "--seeds", "0,1,0", "--out", "{tmp}/o"), 2,
         ("--seeds: 0 is given twice",), check=_nothing_written),
    Case("mf seeds that differ past 6 digits", ("mf", *TINY[:-3], "--max-steps", "2", "--seeds", "1000000,1000001",
                                                "--no-progress", "--out", "{tmp}/o"), 0, ("seed1000001",)),
    # (two runs: integers name their directories in full; they were refused as '1e+06 is given twice')
    Case("mf init scales equal to 6 digits", ("mf", *TINY, "--init-scale", "1e-3", "0.0010000001", "--out", "{tmp}/o"),
         2, ("--init-scale: 0.001 is given twice",), check=_nothing_written),
    Case("tf lr repeated", ("tf", "--lr", "0.01", "0.01", "--out", "{tmp}/o"), 2, ("--lr: 0.01 is given twice",),
         check=_nothing_written),
    Case("locality seeds repeated", ("locality", "is-same-class", "--scale", "test", "--seeds", "0,0", "--out",
                                     "{tmp}/o"), 2, ("--seeds", "must be distinct", "[0, 0]"), check=_nothing_written),
    Case("locality distances repeated", ("locality", "is-same-class", "--scale", "test", "--distances", "0,0",
                                         "--out", "{tmp}/o"), 2, ("--distances", "must be distinct"),
         check=_nothing_written),
    Case("locality reg weights repeated", ("locality", "pathfinder", "--scale", "test", "--reg-weights", "0,1,0",
                                           "--out", "{tmp}/o"), 2, ("--reg-weights", "must be distinct"),
         check=_nothing_written),
    Case("locality on a CUDA device this machine lacks", ("locality", "pathfinder", "--scale", "test", "--device",
                                                          "cuda:99", "--out", "{tmp}/o"), 2, ("device: 'cuda:99'",),
         check=_nothing_written),
    Case("layers depths repeated", ("layers", "demo", "--depths", "2,2", "--out", "{tmp}/o"), 2,
         ("implicitrank layers demo: error: depths must be distinct",), check=_nothing_written),
    # an init scale outside the run's dtype (it was made float32 whatever the dtype: 0 or inf, a traceback)
    Case("mf init scale beyond float32", ("mf", *TINY, "--init-scale", "1e300", "--out", "{tmp}/o"), 2,
         ("init_scale 1e+300 is outside the range of float32", "float64"), check=_nothing_written),
    Case("demo init scale below float32", ("demo", "--init-scale", "1e-50", "--out", "{tmp}/o"), 2,
         ("init_scale 1e-50 is outside the range of float32",), check=_nothing_written),
    Case("layers init scale beyond float32", ("layers", "demo", "--init-scale", "1e300", "--out", "{tmp}/o"), 2,
         ("init_scale 1e+300 is outside the range of float32",), check=_nothing_written),
    Case("mf lr below float32", ("mf", *TINY, "--lr", "1e-50", "--out", "{tmp}/o"), 2,
         ("lr 1e-50 is outside the range of float32",), check=_nothing_written),  # was written, then refused as 0
    Case("mf eps beyond float32", ("mf", *TINY, "--eps", "1e39", "--out", "{tmp}/o"), 2,
         ("eps 1e+39 is outside the range of float32",), check=_nothing_written),  # was inf: a run that did nothing
    Case("tf target norm beyond float32", ("tf", "--target-norm", "1e300", "--out", "{tmp}/o"), 2,
         ("target_norm 1e+300 is outside the range of float32",), check=_nothing_written),  # was a traceback
    Case("htf init mean whose square overflows", ("htf", "--init-mean", "1e300", "--out", "{tmp}/o"), 2,
         ("init_mean must be finite, at most",), check=_nothing_written),  # was an OverflowError traceback
    Case("tf init mean blamed on the init std", ("tf", "--init-mean", "1e200", "--out", "{tmp}/o"), 2,
         ("init_mean must be finite, at most",), check=_nothing_written, absent=("math domain error",)),
    Case("htf init std with a large init mean", ("htf", "--init-mean", "1e5", "--out", "{tmp}/o"), 2,
         ("--init-std 0.01 with --init-mean 100000",), check=_nothing_written),
    Case("locality length whose snakes cannot fit", ("locality", "pathfinder", "--scale", "test", "--lengths", "2,30",
                                                     "--threads", "1", "--device", "cpu", "--out", "{tmp}/o"), 2,
         ("lengths (--lengths): length L=30 does not fit a 32x32 image",),
         check=_nothing_written),  # generating L = 30 retried forever, after L = 2 had trained
    Case("locality patch size 0", ("locality", "pathfinder", "--scale", "test", "--patch-size", "0", "--out",
                                   "{tmp}/o"), 2, ("patch_size (--patch-size): patch size must be >= 1",),
         check=_nothing_written),  # was a traceback once training had begun, its directory written
    Case("locality cache dir that is a file", ("locality", "pathfinder", "--scale", "test", "--cache-dir",
                                              "{tmp}/file", "--out", "{tmp}/o"), 2, ("is a file, not a directory",),
         lambda tmp: (tmp / "file").write_text("x"), _nothing_written),  # was FileExistsError
    Case("sweep max batch 0", ("sweep", "{tmp}/lr.toml", "--max-batch", "0", "--out", "{tmp}/o"), 2,
         ("--max-batch: expected a positive integer",), lambda tmp: (tmp / "lr.toml").write_text(DIVERGING_SPEC),
         _nothing_written),  # the sweep directory was made before the refusal
    Case("balanced init with narrow factors", ("mf", *TINY, "--init", "balanced", "--width", "2", "--out", "{tmp}/o"),
         2, ("width 2 is below min(rows, cols) = 10", "init 'balanced'"), check=_nothing_written),
    Case("negative max steps", ("mf", *TINY, "--max-steps", "-1", "--out", "{tmp}/o"), 2,
         ("max_steps must be >= 0, got -1",), check=_nothing_written, absent=("top",)),
    # --resume without --out: a new timestamped directory, where every run silently starts over
    # the second audit of the command line (twelfth session)
    Case("an unknown option after a typed value", ("mf", "--max-steps", "5", "--bogus"), 2,
         ("unrecognized arguments: --bogus",), absent=("comma-separated",)),
    Case("lr -inf is a value", ("mf", *TINY, "--lr", "-inf", "--out", "{tmp}/o"), 2, ("lr must be positive",),
         check=_nothing_written, absent=("expected at least one argument",)),
    Case("an empty --out", ("mf", *TINY, "--out", ""), 2, ("--out: an empty path",),
         check=lambda tmp: _nothing_in(tmp)),
    Case("--resume with an --out that does not exist", ("mf", *TINY, "--out", "{tmp}/typo", "--resume"), 2,
         ("--resume: ", "typo does not exist"), check=lambda tmp: _absent(tmp / "typo")),
    Case("a sweep name that leaves runs/", ("sweep", "{tmp}/up.toml", "--dry-run"), 2,
         ("name must be a plain name",), lambda tmp: (tmp / "up.toml").write_text(
             'name = "../../up"\n[base]\nshape = [6, 6]\n[axes]\nseed = [0, 1]\n')),
    Case("demo whose runs diverge", ("demo", "--size", "10", "--rank", "2", "--num-observations", "30", "--max-steps",
                                     "5", "--init-scale", "1e30", "--no-progress", "--out", "{tmp}/o"), 1,
         ("does NOT hold (depth 1, depth 2, depth 3: no result, a run diverged)",)),  # was a TypeError traceback
    Case("demo refuses a bad rank before it trains", ("demo", "--size", "10", "--rank", "0", "--out", "{tmp}/o"), 2,
         ("rank must be in [1, 10]",), check=_nothing_written, absent=("training depth",)),
    Case("tf --rank above the most a CP rank can be", ("tf", "--shape", "4", "4", "4", "--rank", "17", "--out",
                                                       "{tmp}/o"), 2,
         ("rank must be in [1, 16] for shape (4, 4, 4) (64 entries / the largest mode 4",), check=_nothing_written),
    Case("htf --rank above the bound of its node ranks", ("htf", "--shape", "2", "2", "2", "2", "--rank", "9", "--out",
                                                          "{tmp}/o"), 2, ("rank must be in [1, 8]",),
         check=_nothing_written),
    Case("tf whose default CP components are too many", ("tf", "--shape", "1000", "1000", "1000", "1000", "--out",
                                                         "{tmp}/o"), 2, ("components must be given",),
         check=_nothing_written),  # was a ValueError traceback
    # sizes no machine holds ended in an allocation error's C++ traceback, after the run directory was written
    *(Case(f"{argv[0]} {' '.join(argv[1:])} needs more memory than the machine has", (*argv, "--out", "{tmp}/o"), 2,
           ("this batch needs at least", "GiB of memory; use a smaller --shape, --width, --components or --rank"),
           check=_nothing_written)
      for argv in (("mf", "--shape", "100000000", "100000000"), ("mf", "--width", "1000000000"),
                   ("tf", "--components", "1000000000000"), ("htf", "--shape", "100", "100", "100", "100", "--rank",
                                                             "1000000"))),
    # ... and so did sensing's measurement matrices, nnm, demo and a locality canvas, which were not checked
    *(Case(f"{argv[0]} {' '.join(argv[1:])} needs more memory than the machine has", (*argv, "--out", "{tmp}/o"), 2,
           words, check=_nothing_written)
      for argv, words in (
          (("mf", "--task", "sensing", "--num-observations", "1000000000"),
           ("this batch needs at least", "1,000,000,000 Gaussian measurements", "or --num-observations")),
          (("nnm", "--shape", "10000000", "10000000"), ("this batch needs at least", "use a smaller --shape")),
          (("nnm", "--task", "sensing", "--num-observations", "1000000000"),
           ("this batch needs at least", "use a smaller --shape or --num-observations")),
          (("demo", "--size", "10000000"), ("this batch needs at least", "use a smaller --size")),
          (("locality", "is-same-class", "--scale", "test", "--canvas", "1000000,1000000"),
           ("a training batch needs at least", "canvases of 1×1000000×1000000", "(--canvas)")))),
    Case("mf --width at --depth 1 (ignored)", ("mf", *TINY, "--depth", "1", "--width", "3", "--out", "{tmp}/o"), 2,
         ("--width applies to --depth >= 2 only",), check=_nothing_written),
    Case("mf --resume without --out", ("mf", *TINY, "--resume"), 2, ("--resume needs --out DIR",)),
    Case("locality --resume without --out", ("locality", "pathfinder", "--scale", "test", "--resume"), 2,
         ("--resume needs --out DIR",)),
    Case("reproduce into a demo's output", ("reproduce", "razin2020-norms", "--scale", "test", "--no-progress",
                                            "--out", "{tmp}/o"), 2,  # its report.html was replaced
         ("out:", "holds another command's output (runs)", "choose another --out"), _demo_output,
         lambda tmp: [_kept("report.html")(tmp), _absent(tmp / "o" / "razin2020-norms")]),
    Case("reproduce --resume without --out", ("reproduce", "all", "--resume"), 2, ("--resume needs --out DIR",)),
    Case("locality --data with digits", ("locality", "is-same-class", "--scale", "test", "--source", "digits",
                                         "--data", "{tmp}", "--out", "{tmp}/o"), 2,
         ("--data applies to --source cifar10 only",), check=_nothing_written),
    Case("lr inf", ("mf", *TINY, "--lr", "inf", "--out", "{tmp}/o"), 2, ("lr must be positive", "> 0")),
    Case("lr nan", ("mf", *TINY, "--lr", "nan", "--out", "{tmp}/o"), 2, ("lr must be positive",)),
    Case("init scale inf", ("mf", *TINY, "--init-scale", "inf", "--out", "{tmp}/o"), 2, ("init_scale", "> 0")),
    Case("init scale negative", ("mf", *TINY, "--init-scale", "-1e-3", "--out", "{tmp}/o"), 2,
         ("init_scale", "must be", "> 0")),
    Case("tf init scale inf", ("tf", "--shape", "3", "3", "3", "--num-observations", "10", "--max-steps", "5",
                               "--init-scale", "inf", "--no-progress", "--out", "{tmp}/o"), 2, ("init_scale",)),
    Case("both --init-scale and --init-std", ("tf", "--init-scale", "1e-3", "--init-std", "1e-3", "--out", "{tmp}/o"),
         2, ("--init-std", "not allowed with", "--init-scale"), check=_nothing_written),
    Case("init std 0", ("tf", "--init-std", "0", "--out", "{tmp}/o"), 2, ("--init-std must be positive",),
         check=_nothing_written),
    Case("init std whose init scale is outside float64", ("htf", "--init-std", "1e-100", "--out", "{tmp}/o"), 2,
         ("--init-std 1e-100", "outside float64"), check=_nothing_written),
    # a data file's size decides the problem's size (item 1)
    Case("mf npz takes the file's shape", ("mf", "--data", "{tmp}/x.npz", "--max-steps", "5", "--no-progress",
                                            "--out", "{tmp}/o"), 0, ("max_steps",), _npz, _shape_is((6, 5))),
    Case("a batch with one finished run writes none of the others",
         ("mf", *TINY, "--lr", "0.07", "0.05", "--out", "{tmp}/o"), 2, ("holds a finished run",),
         lambda tmp: main(["mf", *TINY, "--lr", "0.05", "--out", str(tmp / "o")]),
         lambda tmp: _only_runs(tmp / "o", ["depth3-init0.001-lr0.05-seed0-data0"])),
    Case("--out through a file", ("mf", *TINY, "--out", "{tmp}/f/o"), 2, ("--out", "is a file, not a directory"),
         lambda tmp: (tmp / "f").write_text("")),
    Case("sweep --out a file", ("sweep", "{tmp}/lr.toml", "--out", "{tmp}/f"), 2, ("--out", "is a file"),
         lambda tmp: [(tmp / "lr.toml").write_text(DIVERGING_SPEC), (tmp / "f").write_text("")]),
    Case("mf npz with another --num-observations", ("mf", "--data", "{tmp}/x.npz", "--num-observations", "7",
                                                    "--no-progress", "--out", "{tmp}/o"), 2,
         ("--num-observations 7 does not match", "observes"), _npz, _nothing_written),
    Case("mf npz with another --shape", ("mf", "--data", "{tmp}/x.npz", "--shape", "40", "40", "--no-progress",
                                          "--out", "{tmp}/o"), 2, ("--shape 40 40", "6×5"), _npz, _nothing_written),
    Case("mf npz with its own --shape", ("mf", "--data", "{tmp}/x.npz", "--shape", "6", "5", "--max-steps", "5",
                                          "--no-progress", "--out", "{tmp}/o"), 0, (), _npz, _shape_is((6, 5))),
    Case("mf u.data with no other flag", ("mf", "--data", "{tmp}/u.data", "--depth", "1", "--max-steps", "1",
                                           "--no-progress", "--out", "{tmp}/o"), 0, ("test",), _udata,
         _shape_is((943, 1682))),
    Case("mf u.data with several --data-seeds", ("mf", "--data", "{tmp}/u.data", "--depth", "1", "--data-seeds", "0,1",
                                                 "--out", "{tmp}/o"), 2,  # named no argument
         ("--data-seeds: the runs of one command train on the same ratings", "run once per data seed"), _udata,
         _nothing_written),
    Case("mf u.data with another --shape", ("mf", "--data", "{tmp}/u.data", "--shape", "20", "20", "--out",
                                             "{tmp}/o"), 2, ("943×1682",), _udata, _nothing_written),
    Case("tf given a matrix file", ("tf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2,
         ("matrix completion", "mf"), _npz, _nothing_written),
    Case("htf given a matrix file", ("htf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2,
         ("matrix completion", "mf"), _npz, _nothing_written),
    Case("nnm npz takes the file's shape", ("nnm", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 0, (), _npz,
         _shape_is((6, 5))),
    Case("nnm npz with another --shape", ("nnm", "--data", "{tmp}/x.npz", "--shape", "7", "5", "--out", "{tmp}/o"),
         2, ("--shape 7 5", "6×5"), _npz, _nothing_written),
    Case("nnm several data seeds", ("nnm", "--shape", "6", "5", "--rank", "1", "--num-observations", "20",
                                    "--data-seeds", "0..3", "--out", "{tmp}/o"), 2, ("--data-seeds", "once per seed"),
         None, _nothing_written),
    # no stub directories (item 9)
    Case("too many observations of a u.data", ("mf", "--data", "{tmp}/u.data", "--num-observations", "99999",
                                                "--out", "{tmp}/o"), 2, ("num_observations",), _udata,
         _nothing_written),
    Case("nnm too many observations of a u.data", ("nnm", "--data", "{tmp}/u.data", "--num-observations",
                                                    "99999", "--out", "{tmp}/o"), 2, ("num_observations",), _udata,
         _nothing_written),
    Case("nnm into an unfinished nnm directory", ("nnm", "--shape", "6", "5", "--rank", "1", "--num-observations",
                                                  "20", "--out", "{tmp}/o"), 2, ("delete it",),
         _unfinished_nnm, absent=("--resume",)),
    # input messages (item 7)
    Case("empty u.data", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("no ratings",),
         lambda tmp: (tmp / "u.data").write_text(""), _nothing_written),
    Case("malformed u.data line", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 3",),
         lambda tmp: _udata(tmp, ["1\t2\t3\t4", "2\t3\t4\t5", "3\tx\t4\t5"]), _nothing_written),
    Case("short u.data line", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 2", "4 columns"),
         lambda tmp: _udata(tmp, ["1\t2\t3\t4", "2\t3\t4", "3\t1\t4\t5"]), _nothing_written),
    Case("u.data id 0", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 1", ">= 1"),
         lambda tmp: _udata(tmp, ["0\t2\t3\t4"]), _nothing_written),
    Case("u.data rating outside 1..5", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 2", "1..5"),
         lambda tmp: _udata(tmp, ["1\t2\t3\t4", "2\t3\t99\t5"]), _nothing_written),
    Case("u.data pair rated twice", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 3", "line 1"),
         lambda tmp: _udata(tmp, ["1\t2\t3\t4", "2\t3\t4\t5", "1\t2\t5\t6"]), _nothing_written),
    Case("u.data id too large for a dense matrix", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2,
         ("100000000×1682", "renumber"), lambda tmp: _udata(tmp, ["100000000\t2\t3\t4"]), _nothing_written),
    Case("u.data id with an underscore", ("mf", "--data", "{tmp}/u.data", "--out", "{tmp}/o"), 2, ("line 1",),
         lambda tmp: _udata(tmp, ["1_0\t2\t3\t4"]), _nothing_written),
    Case("npz mask of 0.5 and 1", ("mf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("'mask'", "0/1", "0.5"),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.ones((4, 3)), mask=np.where(np.eye(4, 3) > 0, 1.0, 0.5)),
         _nothing_written),
    Case("npz mask of text", ("nnm", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("'mask'", "boolean"),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.ones((4, 3)), mask=np.full((4, 3), "yes")),
         _nothing_written),
    Case("npz complex matrix", ("mf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("'matrix'", "complex"),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.ones((4, 3)) + 1j, mask=np.eye(4, 3) > 0),
         _nothing_written),
    Case("npz object matrix", ("mf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("pickle",),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.array([[1, "a"]], dtype=object), mask=np.ones((1, 2), bool)),
         _nothing_written),
    Case("npz values beyond float32", ("mf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("overflow float32",),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.full((4, 3), 1e200), mask=np.eye(4, 3) > 0), _nothing_written),
    Case("npz all observed values 0", ("mf", "--data", "{tmp}/x.npz", "--out", "{tmp}/o"), 2, ("0", "undefined"),
         lambda tmp: np.savez(tmp / "x.npz", matrix=np.zeros((4, 3)), mask=np.eye(4, 3) > 0), _nothing_written),
    Case("npy as data", ("mf", "--data", "{tmp}/x.npy", "--out", "{tmp}/o"), 2, (".npy", ".npz", "u.data"),
         lambda tmp: np.save(tmp / "x.npy", np.ones((3, 3))), _nothing_written),
    Case("binary file as u.data", ("mf", "--data", "{tmp}/x.bin", "--out", "{tmp}/o"), 2, ("accepted",),
         lambda tmp: (tmp / "x.bin").write_bytes(bytes(range(256))), _nothing_written),
    Case("missing data file", ("mf", "--data", "{tmp}/none.npz", "--out", "{tmp}/o"), 2, ("no such file",),
         None, _nothing_written),
    # never overwrite results (item 3)
    Case("layers demo whose every run diverges", ("layers", "demo", *LAYERS_TINY, "--lr", "1e30",
                                                  "--autoencoder-init-scale", "1e30", "--out", "{tmp}/o"), 1,
         ("every run diverged, so there is no result (exit status 1)",)),  # exited 0
    Case("layers demo into a finished demo", ("layers", "demo", "--out", "{tmp}/o", *LAYERS_TINY), 2,
         ("finished layers demo", "another --out"), _finished_demo, _kept("results.json")),
    Case("layers demo into a non-empty directory", ("layers", "demo", "--out", "{tmp}/o", *LAYERS_TINY), 2,
         ("not empty",), _unfinished_demo, _kept("config.json"), absent=("--resume",)),
    Case("demo into a finished demo", ("demo", "--out", "{tmp}/o", "--size", "10", "--rank", "1", "--num-observations",
                                       "40", "--max-steps", "5", "--no-progress"), 2,
         ("finished demo (demo.json)", "another --out"), _finished_matrix_demo, _kept("demo.json"),
         absent=("training depth",)),  # it printed "training depth 1 ..." before refusing
    Case("demo into a non-empty directory", ("demo", "--out", "{tmp}/o", "--size", "10", "--rank", "1",
                                             "--num-observations", "40", "--max-steps", "5", "--no-progress"), 2,
         ("not empty",), _unfinished_matrix_demo, _kept("depth1/config.json"),
         absent=("training depth", "--resume")),  # it trained, then named a --resume demo does not have
    Case("reproduce into a finished experiment", ("reproduce", "arora2019-dynamics", "--scale", "test", "--out",
                                                  "{tmp}/o"), 2, ("arora2019-dynamics", "--resume"),
         _finished_reproduce, _kept("arora2019-dynamics/claims.json")),
    Case("reproduce --resume keeps the finished experiment", ("reproduce", "arora2019-dynamics", "--scale", "test",
                                                              "--out", "{tmp}/o", "--resume"), 0,
         ("finished earlier",), _finished_reproduce, _kept("arora2019-dynamics/claims.json")),
    # corrupt and malformed files (item 6)
    Case("resume from a truncated checkpoint", ("mf", *TINY, "--out", "{tmp}/o", "--resume"), 2,
         ("checkpoint.pt", "truncated or corrupt", "delete it"), _unfinished_mf),
    Case("resume from a checkpoint of garbage", ("mf", *TINY, "--out", "{tmp}/o", "--resume"), 2,
         ("checkpoint.pt", "truncated or corrupt", "delete it"), _unfinished_mf_with_garbage_checkpoint,
         absent=("weights_only",)),  # torch's advice to load it unsafely
    Case("mf loss threshold inf", ("mf", *TINY, "--loss-threshold", "inf", "--out", "{tmp}/o"), 2,
         ("loss_threshold must be finite",), check=_nothing_written),
    Case("resume from a checkpoint of something else", ("mf", *TINY, "--out", "{tmp}/o", "--resume"), 2,
         ("checkpoint.pt", "not a checkpoint", "step"), _unfinished_mf_with_a_list_checkpoint),
    Case("sweep status with a truncated summary", ("sweep", "status", "{tmp}/o"), 0,
         ("0 done", "1 failed", "1 pending", "summary.json is truncated", "--retry-failed"), _damaged_sweep),
    Case("collect with a truncated summary", ("collect", "{tmp}/o"), 0,
         ("left out", "summary.json", "--retry-failed", "0 of 2 runs"), _damaged_sweep),
    Case("sweep rerun fails the corrupt checkpoint's run", ("sweep", "status", "{tmp}/o"), 0,
         ("2 failed", "checkpoint.pt", "--retry-failed"), _damaged_sweep_rerun),
    Case("sweep --retry-failed restarts both damaged runs", ("sweep", "{tmp}/spec.toml", "--out", "{tmp}/o",
                                                              "--retry-failed", "--no-progress"), 0,
         ("2 done",), _damaged_sweep_rerun, _sweep_done_again),
    Case("sweep status with a truncated sweep.json", ("sweep", "status", "{tmp}/o"), 2,
         ("sweep.json", "truncated or corrupt", "rerun the sweep's spec"), _sweep_json_truncated),
    Case("sweep rerun writes a truncated sweep.json again", ("sweep", "{tmp}/spec.toml", "--out", "{tmp}/o",
                                                              "--no-progress"), 0, ("2 done",),
         _sweep_json_truncated, lambda tmp: json.loads((tmp / "o" / "sweep.json").read_text())),
    Case("plot with a truncated metrics.jsonl", ("plot", "{tmp}/o/depth3-init0.001-lr0.01-seed0-data0"), 2,
         ("metrics.jsonl line", "truncated or corrupt"), _metrics_truncated),
    Case("plot with a metrics.jsonl record whose step is not a number",
         ("plot", "{tmp}/o/depth3-init0.001-lr0.01-seed0-data0"), 2, ("metrics.jsonl line 1 is not a record",),
         _metrics_with_a_text_step),  # was a ValueError traceback (int('a')), in plot and in report
    Case("mf --rank with a data file", ("mf", "--data", "{tmp}/x.npz", "--rank", "50", "--max-steps", "2", "--out",
                                        "{tmp}/o"), 2, ("--rank describes a generated ground truth",), _npz,
         _nothing_written),  # ignored silently (50 not even checked against the file's 6×5)
    Case("nnm --truth-seed with a data file", ("nnm", "--data", "{tmp}/x.npz", "--truth-seed", "7", "--out",
                                               "{tmp}/o"), 2, ("--truth-seed describes a generated ground truth",),
         _npz, _nothing_written),
    Case("resume with another step cap", ("mf", *TINY[:-3], "--max-steps", "31", "--no-progress", "--out", "{tmp}/o",
                                          "--resume"), 2,
         ("holds a run of another configuration: max_steps 30 (now 31)", "rerun with the settings"), _unfinished_mf),
    Case("reproduce with a repeated seed", ("reproduce", "razin2020-norms", "--scale", "test", "--seeds", "0,0",
                                            "--out", "{tmp}/o"), 2, ("seeds must be distinct",),
         check=_nothing_written, absent=("== razin2020-norms",)),  # was refused after the experiment's header
    Case("layers lr inf", ("layers", "demo", "--lr", "inf", "--out", "{tmp}/o"), 2,
         ("lr inf is outside the range of float32",), check=_nothing_written),  # trained to NaN
    Case("a sweep spec with an unknown tree", ("sweep", "{tmp}/tree.toml", "--out", "{tmp}/o"), 2,
         ("tree must be one of",), lambda tmp: (tmp / "tree.toml").write_text(
             'name = "tree"\n[base]\nmodel = "ht"\nshape = [2, 2, 2, 2]\nnum_observations = 8\ntree = "foo"\n'
             '[axes]\nseed = [0, 1]\n'),
         _nothing_written),  # each run failed at run time, its error.json written
    Case("mf seeds range of 1e8 values", ("mf", *TINY, "--seeds", "0..100000000", "--out", "{tmp}/o"), 2,
         ("holds more than 100,000 values",), check=_nothing_written),  # expanded, then ran silently for ever
    Case("sweep seed range of 1e7 values", ("sweep", "{tmp}/big.toml", "--dry-run"), 2,
         ("holds more than 100,000 values",), lambda tmp: (tmp / "big.toml").write_text(
             'name = "big"\n[base]\nshape = [6, 6]\n[axes]\nseed = "0..10000000"\n')),
    Case("nnm relative tol of 1.5", ("nnm", "--tol", "1.5", "--out", "{tmp}/o"), 2, ("--tol is relative",),
         check=_nothing_written),  # 'converged' after one iteration
    Case("mf flow rtol of 2", ("mf", *TINY, "--optimizer", "gradient-flow", "--rtol", "2", "--out", "{tmp}/o"), 2,
         ("rtol is relative and must be in (0, 1)",), check=_nothing_written),
    Case("nnm max iter 0", ("nnm", "--max-iter", "0", "--out", "{tmp}/o"), 2, ("--max-iter must be >= 1, got 0",),
         check=_nothing_written, absent=("--tol",)),  # the message blamed both options
    Case("sweep --workers with the serial executor", ("sweep", "{tmp}/lr.toml", "--workers", "4", "--out", "{tmp}/o"),
         2, ("--workers is not used here (it applies to --executor local)",),
         lambda tmp: (tmp / "lr.toml").write_text(DIVERGING_SPEC), _nothing_written),  # silently ignored
    Case("sweep --partition with the local executor", ("sweep", "{tmp}/lr.toml", "--executor", "local",
                                                       "--partition", "gpu", "--out", "{tmp}/o"), 2,
         ("--partition is not used here (it applies to --executor slurm)",),
         lambda tmp: (tmp / "lr.toml").write_text(DIVERGING_SPEC), _nothing_written),
    Case("sweep --all without status", ("sweep", "{tmp}/lr.toml", "--all", "--out", "{tmp}/o"), 2,
         ("--all is not used here",), lambda tmp: (tmp / "lr.toml").write_text(DIVERGING_SPEC), _nothing_written),
    Case("reproduce one experiment with --workers", ("reproduce", "razin2020-norms", "--scale", "test", "--workers",
                                                     "4", "--out", "{tmp}/o"), 2,
         ("--workers applies to 'reproduce all'",), check=_nothing_written),  # silently ignored
    Case("reproduce --list with a name", ("reproduce", "--list", "razin2020-norms"), 2,
         ("--list lists the experiments",)),  # listed and exited 0
    Case("mf npz with several data seeds", ("mf", "--data", "{tmp}/x.npz", "--data-seeds", "0..3", "--out",
                                            "{tmp}/o"), 2, ("--data-seeds: the mask of", "fixes the observed"),
         _npz, _nothing_written),  # was 'configs of one batch may differ only in seed, init_scale, lr'
    Case("demo seeds repeated", ("demo", "--seeds", "1,1", "--out", "{tmp}/o"), 2, ("--seeds: 1 is given twice",),
         check=_nothing_written, absent=("training depth",)),  # dropped silently, where mf refuses it
    Case("layers demo seeds repeated", ("layers", "demo", "--seeds", "0,0", "--out", "{tmp}/o"), 2,
         ("--seeds: 0 is given twice",), check=_nothing_written),
    Case("locality whose every run diverges", ("locality", "is-same-class", "--scale", "test", "--seeds", "0",
                                               "--lr", "1e30", "--no-progress", "--out", "{tmp}/o"), 1,
         ("without a number: their runs diverged",)),  # counted as failed claims, no word on why
    # results readable by others (item 4)
    Case("files follow the umask", ("mf", *TINY, "--out", "{tmp}/o"), 0, (), check=_modes_follow_umask),
    Case("all entries observed", ("mf", "--shape", "4", "4", "--rank", "1", "--num-observations", "16", "--max-steps",
                                  "5", "--no-progress", "--out", "{tmp}/o"), 0, ("n/a",), check=_no_unobserved_error),
    Case("seed overflow", ("mf", *TINY, "--seeds", "99999999999999999999", "--out", "{tmp}/o"), 2,
         ("--seeds", "must be in [0, 2**63 - 1]"), check=_nothing_written),
    Case("layers demo seed overflow", ("layers", "demo", "--seeds", "99999999999999999999", "--out", "{tmp}/o",
                                       *LAYERS_TINY), 2, ("--seeds", "2**63 - 1"), check=_nothing_written),
    Case("locality seed overflow", ("locality", "is-same-class", "--seeds", "0,99999999999999999999", "--scale",
                                    "test", "--out", "{tmp}/o"), 2, ("--seeds", "2**63 - 1"), check=_nothing_written),
    Case("reproduce seed overflow", ("reproduce", "arora2019-dynamics", "--seeds", "99999999999999999999", "--scale",
                                     "test", "--out", "{tmp}/o"), 2, ("--seeds",), check=_nothing_written),
    Case("negative truth seed", ("mf", *TINY, "--truth-seed", "-1", "--out", "{tmp}/o"), 2, ("truth_seed",),
         check=_nothing_written),
    Case("sweep spec not UTF-8", ("sweep", "{tmp}/e.toml", "--dry-run"), 2, ("spec:", "not valid TOML"),
         lambda tmp: (tmp / "e.toml").write_bytes(b"\xff\xfe"), _nothing_written),
    Case("plot with a config.json that is a list", ("plot", "{tmp}/r"), 2, ("config.json", "not an object"),
         lambda tmp: [(tmp / "r").mkdir(), (tmp / "r" / "config.json").write_text("[1]"),
                      (tmp / "r" / "metrics.jsonl").write_text('{"step": 0, "train_loss": 1.0}\n')]),
    Case("plot of a locality run", ("plot", "{tmp}/r"), 2,  # describe_setup's TypeError on its config, no init scale
         ("is not a run directory of mf, tf or htf", "no optimizer steps"),
         lambda tmp: [(tmp / "r").mkdir(), (tmp / "r" / "config.json").write_text('{"lr": 0.01, "reg_weight": 0.0}'),
                      (tmp / "r" / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.7, "test_acc": 0.5}\n')],
         lambda tmp: _absent(tmp / "r" / "errors.png")),
    Case("empty sweep spec", ("sweep", "{tmp}/e.toml", "--out", "{tmp}/o"), 2, ("names no field",),
         lambda tmp: (tmp / "e.toml").write_text('name = "e"\n'), _nothing_written),
    Case("sweep spec with only empty tables", ("sweep", "{tmp}/e.toml", "--out", "{tmp}/o"), 2, ("names no field",),
         lambda tmp: (tmp / "e.toml").write_text('name = "e"\n[base]\n[axes]\n'), _nothing_written),
    Case("reproduce an experiment that reads no data", ("reproduce", "razin2020-norms", "--data", "{tmp}/u.data",
                                                        "--scale", "test", "--out", "{tmp}/o"), 2,
         ("--data", "razin2020-norms uses no data"), _udata, _nothing_written),
    Case("reproduce dynamics reads u.data from a directory", ("reproduce", "arora2019-dynamics", "--data", "{tmp}",
                                                             "--scale", "test", "--out", "{tmp}/o"), 2,
         ("u.data line 1", "4 columns"), lambda tmp: _udata(tmp, ["1 2 3"])),
    Case("reproduce natural with a directory without IDX files", ("reproduce", "razin2021-natural", "--data",
                                                                  "{tmp}/idx", "--scale", "test", "--out", "{tmp}/o"),
         2, ("no IDX files",), lambda tmp: (tmp / "idx").mkdir(), _nothing_written),
    Case("reproduce dynamics with a malformed u.data", ("reproduce", "arora2019-dynamics", "--data", "{tmp}/u.data",
                                                        "--scale", "test", "--out", "{tmp}/o"), 2, ("line 1",),
         lambda tmp: _udata(tmp, ["1 2 3"]), _nothing_written),
    Case("reproduce dynamics with too few ratings for its split", ("reproduce", "arora2019-dynamics", "--data",
                                                                   "{tmp}/u.data", "--scale", "test", "--out",
                                                                   "{tmp}/o"), 2,
         ("--data", "2,100 ratings", "more than 10,000"), _udata, _nothing_written),
    Case("reproduce all with data no experiment reads", ("reproduce", "all", "--data", "{tmp}/u.data", "--scale",
                                                         "test", "--out", "{tmp}/o"), 2,
         ("--data: none of the experiments that read data can read", "arora2019-dynamics: --data: ",
          "more than 10,000", "razin2021-natural: "), _udata, _nothing_written),  # was refused only mid-run
    Case("reproduce dynamics given an .npz", ("reproduce", "arora2019-dynamics", "--data", "{tmp}/m.npz", "--scale",
                                              "test", "--out", "{tmp}/o"), 2, ("reads a MovieLens u.data",),
         lambda tmp: np.savez(tmp / "m.npz", matrix=np.ones((3, 3)), mask=np.ones((3, 3), bool)), _nothing_written),
    Case("locality cifar10 without a path", ("locality", "is-same-class", "--source", "cifar10", "--scale", "test",
                                             "--out", "{tmp}/o"), 2, ("--data is required with --source cifar10",),
         check=_nothing_written),
    Case("locality distance beyond the canvas", ("locality", "is-same-class", "--distances", "0,1000", "--scale",
                                                 "test", "--out", "{tmp}/o"), 2,
         ("(--distances): distance 1000 does not fit", "allowed distances are 0..40"), check=_nothing_written,
         absent=("canvas_hw",)),  # it named canvas_hw, a field of the library's, for the --distances given
    Case("locality cifar10 on a small canvas", ("locality", "is-same-class", "--source", "cifar10", "--data", "{tmp}",
                                                "--canvas", "32,40", "--scale", "test", "--out", "{tmp}/o"),
         2, ("canvas_hw", "width >= 64", "allowed distances are none"), _cifar_batches, _nothing_written),
    Case("locality cifar10 given one batch file", ("locality", "is-same-class", "--source", "cifar10", "--data",
                                                   "{tmp}/data_batch_1", "--scale", "test", "--no-progress",
                                                   "--out", "{tmp}/o"),
         2, ("data_batch_3",), lambda tmp: [_cifar_batches(tmp), (tmp / "data_batch_3").unlink()],
         absent=("directory",)),
    *(Case(f"locality cifar10 batches with {what}", ("locality", "is-same-class", "--source", "cifar10", "--data",
                                                     "{tmp}", "--scale", "test", "--no-progress", "--out", "{tmp}/o"),
           2, words, lambda tmp, labels=labels: _cifar_batches(tmp, labels), _nothing_written)
      for what, labels, words in (  # a TypeError formatting the text labels' range; ImageSource's ValueError
          ("text labels", ("cat", "dog", "cat", "dog"), ("data_batch_1: labels must be integers in 0..9", "'cat'")),
          ("labels of one class", (3, 3, 3, 3), ("the CIFAR-10 train batches", "at least two classes")))),
    # one meaning per flag (issue 16): locality's --width meant a ResNet multiplier or plain CNN channels
    Case("locality old --width", ("locality", "pathfinder", "--width", "8", "--scale", "test", "--out", "{tmp}/o"), 2,
         ("--width is gone", "--width-multiplier", "--base-channels"), check=_nothing_written),
    Case("locality --base-channels for a ResNet", ("locality", "is-same-class", "--base-channels", "8", "--out",
                                                   "{tmp}/o"), 2, ("--base-channels does not apply", "resnet18",
                                                                   "--width-multiplier"), check=_nothing_written),
    Case("locality --width-multiplier for the plain CNN", ("locality", "pathfinder", "--width-multiplier", "0.5",
                                                           "--out", "{tmp}/o"), 2,
         ("--width-multiplier does not apply", "plain", "--base-channels"), check=_nothing_written),
    Case("locality --width-multiplier 0", ("locality", "is-same-class", "--width-multiplier", "0", "--out",
                                           "{tmp}/o"), 2, ("--width-multiplier must be positive",),
         check=_nothing_written),
    Case("locality --base-channels 0", ("locality", "pathfinder", "--base-channels", "0", "--out", "{tmp}/o"), 2,
         ("--base-channels", "positive integer"), check=_nothing_written),
    # neighbours: values that reached the library unchecked (tracebacks before)
    Case("mf width 0", ("mf", *TINY, "--width", "0", "--out", "{tmp}/o"), 2, ("width must be >= 1",),
         check=_nothing_written),
    Case("target norm inf", ("mf", *TINY, "--target-norm", "inf", "--out", "{tmp}/o"), 2, ("target_norm",),
         check=_nothing_written),
    # runs that could learn nothing: each reported a result, exit 0 (most of them "converged")
    Case("mf target whose squares underflow float32", ("mf", *TINY, "--target-norm", "1e-30", "--out", "{tmp}/o"), 2,
         ("target_norm 1e-30 is too small", "underflow float32", "use target_norm >= 0.1",
          "a mean square well above loss_threshold 1e-06"),
         check=_nothing_written),  # converged at step 0 with NaN error, effective rank and nuclear norm
    Case("mf npz of values near 1e-30", ("mf", "--data", "{tmp}/x.npz", "--no-progress", "--out", "{tmp}/o"), 2,
         ("data: the observed values of", "too small for float32", "rescale the data"), _npz_of_scale(1e-30),
         _nothing_written),
    Case("mf npz of values near 1e-300 in float64", ("mf", "--data", "{tmp}/x.npz", "--dtype", "float64",
                                                     "--no-progress", "--out", "{tmp}/o"), 2,
         ("data: the observed values of", "underflow float64", "rescale the data"), _npz_of_scale(1e-300),
         _nothing_written, absent=("use dtype float64",)),
    Case("mf target under the loss threshold at init", ("mf", *TINY, "--target-norm", "1e-3", "--out", "{tmp}/o"), 2,
         ("loss_threshold 1e-06 is not below the train loss of run 0 at init", "converged at step 0",
          "larger target_norm"), check=_nothing_written),  # converged at step 0 with error 1.73
    Case("mf npz under the loss threshold at init", ("mf", "--data", "{tmp}/x.npz", "--no-progress", "--out",
                                                     "{tmp}/o"), 2,
         ("loss_threshold 1e-06 is not below", "rescale the data"), _npz_of_scale(1e-5), _nothing_written),
    Case("mf gaussian init that underflows at depth 5000", ("mf", "--shape", "10", "10", "--rank", "2",
                                                            "--num-observations", "50", "--depth", "5000",
                                                            "--max-steps", "2", "--no-progress", "--out", "{tmp}/o"), 2,
         ("depth 5000: the gaussian init's end-to-end W(0)", "underflows float32", "zero tensor"),
         check=_nothing_written),  # trained W(0) = 0 while its summary said init_scale 0.001
    Case("mf npz whose unobserved entries are 0", ("mf", "--data", "{tmp}/x.npz", "--max-steps", "30",
                                                   "--no-progress", "--out", "{tmp}/o"), 0,
         ("metrics_not_finite", "warning:", "unobserved_error is NaN/inf"), _npz_zero_where_unobserved,
         _not_finite_not_converged),  # max_steps, with unobserved_error null and no word
    Case("htf init mean inf", ("htf", "--shape", "3", "3", "3", "3", "--num-observations", "10", "--init-mean", "inf",
                               "--no-progress", "--out", "{tmp}/o"), 2, ("init_mean must be finite",),
         check=_nothing_written),
    Case("nnm tol 0", ("nnm", "--shape", "6", "5", "--rank", "1", "--num-observations", "20", "--tol", "0", "--out",
                       "{tmp}/o"), 2, ("--tol",), check=_nothing_written),
    Case("nnm max-iter 0", ("nnm", "--shape", "6", "5", "--rank", "1", "--num-observations", "20", "--max-iter", "0",
                            "--out", "{tmp}/o"), 2, ("--max-iter",), check=_nothing_written),
    Case("is-same-class negative distance", ("locality", "is-same-class", "--distances", "-5", "--scale", "test",
                                             "--out", "{tmp}/o"), 2, ("distances d must be >= 0",),
         check=_nothing_written),
    Case("nnm eps-constraint nan", ("nnm", "--shape", "6", "5", "--rank", "1", "--num-observations", "20",
                                    "--eps-constraint", "nan", "--out", "{tmp}/o"), 2, ("eps_constraint",),
         check=_nothing_written),
    Case("mf max-steps -1", ("mf", *TINY, "--max-steps", "-1", "--out", "{tmp}/o"), 2, ("max_steps must be >= 0",),
         check=_nothing_written),
    Case("mf loss threshold nan", ("mf", *TINY, "--loss-threshold", "nan", "--out", "{tmp}/o"), 2,
         ("loss_threshold",), check=_nothing_written),
    Case("htf tree with a mode out of range", ("htf", "--shape", "3", "3", "3", "3", "--num-observations", "10",
                                               "--tree", "((0,1),(2,9))", "--out", "{tmp}/o"), 2,
         ("tree must partition the modes",), check=_nothing_written),
    Case("htf unknown tree", ("htf", "--shape", "3", "3", "3", "3", "--num-observations", "10", "--tree", "blah",
                              "--out", "{tmp}/o"), 2,
         ("tree must be one of balanced, opposite, windows, windows:HxW[:K] or a nested tuple",),
         check=_nothing_written),  # left windows:HxW[:K] out, and printed the words as a Python tuple
    Case("htf windows tree of an order that is not a square", ("htf", "--shape", "8", "8", "8", "--num-observations",
                                                                "10", "--tree", "windows", "--out", "{tmp}/o"), 2,
         ("3 is not a square number", "e.g. windows:1x3"), check=_nothing_written,
         absent=("must have the tensor order",)),  # "the grid 2x2 must have the tensor order 3 pixels"
    Case("htf windows grid of other than one pixel per mode", ("htf", "--shape", "8", "8", "8", "--num-observations",
                                                               "10", "--tree", "windows:3x3", "--out", "{tmp}/o"), 2,
         ("the 3x3 grid has 9 pixels, the tensor 3 modes", "e.g. windows:1x3"), check=_nothing_written),
    Case("plot of a directory without metrics", ("plot", "{tmp}"), 2, ("no metrics.jsonl",)),
    Case("plot of a demo's output", ("plot", "{tmp}/o"), 2,
         ("holds 2 runs below it", "plot one of them, e.g. ", "/o/depth1"), _demo_runs),  # "no metrics.jsonl in …"
    Case("plot of an nnm solution", ("plot", "{tmp}/o/nuclear_norm"), 2,
         ("minimum nuclear norm solution (nnm), which records no metrics.jsonl",), _demo_runs),
    Case("sweep status of a non-sweep directory", ("sweep", "status", "{tmp}"), 2, ("not a sweep directory",)),
    Case("reproduce an unknown experiment", ("reproduce", "nope", "--out", "{tmp}/o"), 2, ("experiment must be one",),
         check=_nothing_written),
    # options that do not exist must not half-work (item 8)
    Case("abbreviated option", ("locality", "is-same-class", "--cifar", "{tmp}/c", "--out", "{tmp}/o"), 2,
         ("unrecognized arguments", "--cifar")),
    Case("abbreviated mf option", ("mf", *TINY, "--init-sc", "0.1", "--out", "{tmp}/o"), 2, ("--init-sc",)),
    # a comma list typed as separate values was "implicitrank: error: unrecognized arguments: 1"
    Case("seeds as separate values", ("mf", *TINY, "--seeds", "0", "1", "--out", "{tmp}/o"), 2,
         ("implicitrank mf: error: argument --seeds: takes one comma-separated list: --seeds 0,1",),
         check=_nothing_written),
    Case("reg weights as separate values", ("locality", "pathfinder", "--reg-weights", "0", "3", "--scale", "test",
                                            "--out", "{tmp}/o"), 2,
         ("implicitrank locality pathfinder: error: argument --reg-weights: takes one comma-separated list: "
          "--reg-weights 0,3, not --reg-weights 0 3",), check=_nothing_written),
    Case("an extra value after a one-value option", ("mf", *TINY, "--rank", "1", "2", "--out", "{tmp}/o"), 2,
         ("implicitrank mf: error: unrecognized arguments: 2",), absent=("comma",), check=_nothing_written),
    # a list option given twice kept the last list and dropped the first without a word
    *(Case(f"{argv[0]} {option} given twice", (*argv, "--out", "{tmp}/o"), 2,
           (f"argument {option}: given twice, and only the last would count", f"give all its values once: {option} "
            f"{form}"), check=_nothing_written)
      for argv, option, form in (
          (("mf", *TINY, "--lr", "0.01", "--lr", "0.02"), "--lr", "A B ..."),
          (("mf", *TINY, "--seeds", "0", "--seeds=1"), "--seeds", "A,B,..."),
          (("demo", "--seed", "0", "--seeds", "1", "--size", "6", "--rank", "1", "--num-observations", "10",
            "--max-steps", "2", "--no-progress"), "--seeds", "A,B,..."),  # the deprecated spelling of the same list
          (("layers", "demo", *LAYERS_TINY, "--depths", "2"), "--depths", "A,B,..."),
          (("layers", "demo", *LAYERS_TINY, "--architectures", "cnn"), "--architectures", "A,B,..."),
          (("locality", "pathfinder", "--scale", "test", "--reg-weights", "0", "--reg-weights", "1", "--no-progress"),
           "--reg-weights", "A,B,..."))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys, monkeypatch) -> None:
    # from inside tmp_path: a refusal that regresses writes there, never into the repository (b81eb07 committed the
    # run directory that "an empty --out" wrote into the working directory before its fix)
    monkeypatch.chdir(tmp_path)
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
    for word in case.absent:
        assert word not in text, text
    if case.code == 2:  # one line (argparse's own refusals too: its usage block buried it), no traceback
        lines = captured.err.strip().splitlines()
        assert "Traceback" not in text and "error:" in lines[-1], captured.err
        assert len([line for line in lines if not re.match(r"(implicitrank[\w ]*: )?warning:", line)]) == 1, (
            captured.err)
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


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys, where no directory can be made")
def test_out_where_the_file_system_refuses_a_directory_is_refused_in_one_line(monkeypatch, capsys) -> None:
    """``os.access`` says yes to root (here made to say it to anyone) where the file system itself refuses: mkdir
    then raised PermissionError with its traceback, after the work."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)
    with pytest.raises(SystemExit) as stop:
        main(["mf", *TINY, "--out", "/sys/implicitrank-out"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "argument --out: /sys/implicitrank-out: /sys cannot be written here" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_the_target_norm_a_refusal_asks_for_is_one_that_trains(tmp_path, capsys) -> None:
    """--target-norm 1e-25 asked for target_norm >= 8.2e-19, where the squares no longer underflow, but with it the
    loss at init was still under loss_threshold, refused next with advice float32 cannot meet."""
    assert main(["mf", *TINY, "--target-norm", "1e-25", "--out", str(tmp_path / "a")]) == 2
    asked = re.search(r"use target_norm >= ([0-9.e+-]+)", capsys.readouterr().err)
    assert asked
    assert main(["mf", *TINY, "--target-norm", asked.group(1), "--out", str(tmp_path / "b")]) in (0, 1)
    summary = json.loads((next((tmp_path / "b").iterdir()) / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["status"] in ("converged", "max_steps")


def test_out_in_a_directory_that_takes_entries_but_lets_none_go_is_used(monkeypatch, tmp_path) -> None:
    """The --out probe made a directory and removed it in one try: in an append-only directory (``chattr +a``:
    entries can be made, not removed) the failed removal refused an --out the run could write, and left a probe
    behind at every call. Only the making decides now."""
    monkeypatch.setattr(os, "rmdir", lambda path: (_ for _ in ()).throw(PermissionError(1, "Operation not permitted")))
    out = tmp_path / "d" / "run"
    out.parent.mkdir()
    assert main(["mf", *TINY, "--out", str(out)]) == 0
    assert (out / next(p.name for p in out.iterdir() if p.is_dir()) / "summary.json").is_file()


def test_reproduce_leaves_alone_an_out_whose_other_outputs_lie_further_down(tmp_path, capsys) -> None:
    """reproduce refused an --out holding runs two levels down (``runs/``, where mf writes ``runs/mf-TIME/<run>`` by
    default) as if it would replace their report.html, which is not there; it refuses runs one level down, a sweep,
    or a report.html it would replace."""
    from implicitrank.commands.reproduce import refuse_other_output
    from implicitrank.errors import OutputExistsError

    assert main(["mf", *TINY, "--out", str(tmp_path / "p" / "mf-1")]) == 0
    refuse_other_output(tmp_path / "p")  # the runs are two levels down: nothing of theirs is replaced
    with pytest.raises(OutputExistsError, match="holds another command's output \\(runs\\)"):
        refuse_other_output(tmp_path / "p" / "mf-1")
    assert main(["report", str(tmp_path / "p")]) == 0  # now p holds their report.html
    with pytest.raises(OutputExistsError, match="the report of runs"):
        refuse_other_output(tmp_path / "p")


# --- cases that need a real process ----------------------------------------------------------------------

def test_local_sweep_workers_exit_when_their_parent_is_killed(tmp_path: Path, capsys) -> None:
    """kill -9 of a ``sweep --executor local`` parent (item 5): its workers go too, and a rerun's status does not
    count their runs as running."""
    spec = tmp_path / "orphans.toml"
    spec.write_text('name = "orphans"\n[base]\nshape = [12, 12]\nrank = 1\nnum_observations = 60\n'
                    'max_steps = 1000000\nloss_threshold = 0.0\ncheckpoint_every = 20\n[axes]\nseed = "0..1"\n')
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "implicitrank.cli", "sweep", str(spec), "--out", str(out), "--executor", "local",
               "--workers", "2", "--no-batch", "--no-progress"]
    log = tmp_path / "sweep.log"
    with log.open("w") as stream:
        parent = subprocess.Popen(command, start_new_session=True, stdout=stream, stderr=stream)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.glob("runs/*/checkpoint.pt"))) < 2:
            assert parent.poll() is None, log.read_text()
            time.sleep(0.1)
        assert len(list(out.glob("runs/*/checkpoint.pt"))) == 2, log.read_text()
        os.kill(parent.pid, signal.SIGKILL)  # the parent only: its workers are left to themselves
        parent.wait()
        deadline = time.monotonic() + 30
        while group_alive(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(parent.pid), "the workers outlived their parent"
    finally:
        if group_alive(parent.pid):
            os.killpg(parent.pid, signal.SIGKILL)
    assert main(["sweep", "status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "0 running" in status and "2 pending" in status, status


def test_ctrl_c_ends_a_batch_in_one_line_with_its_checkpoints_at_one_step_and_resume_finishes_it(
        tmp_path: Path) -> None:
    """Ctrl-C printed a KeyboardInterrupt traceback and, landing between two runs' checkpoint writes, left a batch
    its own --resume refused ("checkpointed at different steps")."""
    command = [sys.executable, "-m", "implicitrank.cli", "mf", "--shape", "6", "6", "--rank", "1",
               "--num-observations", "20", "--optimizer", "gd", "--lr", "0.01", "0.02", "--max-steps", "1000",
               "--loss-threshold", "0", "--checkpoint-every", "25", "--threads", "1", "--no-progress", "--out",
               str(tmp_path / "o")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((tmp_path / "o").glob("*/checkpoint.pt"))) < 2:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # in the middle of training (a checkpoint set every 25 steps)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    assert f"rerun the same command with --out {tmp_path / 'o'} --resume" in err, err
    steps = {torch.load(path, weights_only=False)["step"] for path in (tmp_path / "o").glob("*/checkpoint.pt")}
    assert len(steps) == 1, steps
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert all(json.loads(path.read_text())["steps"] == 1000 for path in (tmp_path / "o").glob("*/summary.json"))


def test_ctrl_c_saves_the_step_reached_and_resume_matches_a_run_never_interrupted(tmp_path: Path) -> None:
    """Ctrl-C kept only the last scheduled checkpoint: with none yet (here: no schedule at all) the run directories
    held config.json alone and --resume started from step 0, and a run that had diverged in the batch kept a
    metrics.jsonl of NaN rows for steps it never trained. Now the loop stops between two steps after saving them."""
    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "implicitrank.cli", "mf", "--shape", "6", "6", "--rank", "1",
                "--num-observations", "20", "--optimizer", "gd", "--lr", "0.01", "20", "--max-steps", "30000",
                "--loss-threshold", "0", "--checkpoint-every", "0", "--threads", "1", "--no-progress", "--out",
                str(tmp_path / out)]

    process = subprocess.Popen(command("o"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((tmp_path / "o").glob("*/config.json"))) < 2:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        time.sleep(1.5)  # training (config.json is written just before the first step)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130 and "Traceback" not in err, err
    healthy, diverged = tmp_path / "o" / "depth3-init0.001-lr0.01-seed0-data0", \
        tmp_path / "o" / "depth3-init0.001-lr20-seed0-data0"
    checkpoints = [torch.load(run / "checkpoint.pt", weights_only=False) for run in (healthy, diverged)]
    reached = checkpoints[0]["step"]
    assert 0 < reached < 30000 and checkpoints[1]["step"] == reached, "not interrupted while training"
    rows = [json.loads(line) for line in (healthy / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] < reached and rows[-1]["train_loss"] is not None
    stopped = int(checkpoints[1]["status"]["stopped_at"][0])
    assert 0 < stopped < reached  # lr 20 diverged within the batch: its records end there, not in NaN rows after
    assert [json.loads(line)["step"] for line in (diverged / "metrics.jsonl").read_text().splitlines()][-1] <= stopped
    resumed = subprocess.run(command("o") + ["--resume"], capture_output=True, text=True, timeout=300)
    whole = subprocess.run(command("whole"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == whole.returncode == 0, resumed.stderr + whole.stderr
    for run in (healthy, diverged):
        twin = tmp_path / "whole" / run.name
        assert (run / "metrics.jsonl").read_text() == (twin / "metrics.jsonl").read_text()
        for ours, theirs in zip(torch.load(run / "factors.pt"), torch.load(twin / "factors.pt")):
            assert torch.equal(ours.nan_to_num(), theirs.nan_to_num())
    assert json.loads((diverged / "summary.json").read_text())["status"] == "diverged"


def test_ctrl_c_stops_reproduce_all_and_its_workers_start_nothing_more(tmp_path: Path) -> None:
    """Ctrl-C at a terminal (the whole process group) during ``reproduce all`` interrupted the experiments running,
    and then each worker took the next one queued: the pool's exit waited for every experiment, so the command
    ran to its end (42 s more at test scale, hours at paper scale) and exited 0."""
    command = [sys.executable, "-m", "implicitrank.cli", "reproduce", "all", "--scale", "test", "--workers", "2",
               "--out", str(tmp_path / "o")]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    for line in process.stdout:  # the first experiment done: the others running or queued
        if line.startswith("== "):
            break
    err = ctrl_c_group(process)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert len(list((tmp_path / "o").glob("*/claims.json"))) < 8


def test_ctrl_c_in_layers_demo_says_that_nothing_can_be_resumed(tmp_path: Path) -> None:
    """The demo keeps nothing of an unfinished run and has no --resume: "what was written so far is kept" sent the
    user to rerun into the same --out, which is refused as not empty."""
    out = tmp_path / "o"
    process = subprocess.Popen([sys.executable, "-m", "implicitrank.cli", "layers", "demo", "--architectures", "mlp",
                                "--depths", "1,3", "--epochs", "500", "--threads", "1", "--no-progress", "--out",
                                str(out)], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for((out / "config.json").is_file, process)
    time.sleep(0.5)
    err = ctrl_c_group(process)
    assert process.returncode == 130 and len(err.strip().splitlines()) == 1, err
    assert f"the demo cannot be resumed and {out} holds only its config.json" in err, err


def test_a_pool_worker_starts_no_task_after_ctrl_c(monkeypatch) -> None:
    from implicitrank import interrupts, workers

    monkeypatch.setattr(interrupts, "_SEEN", [])
    calls: list[int] = []
    workers.run_task(calls.append, 1)
    interrupts.note_ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        workers.run_task(calls.append, 2)
    assert calls == [1]


def test_ctrl_c_names_the_default_output_to_continue(tmp_path: Path) -> None:
    """Without --out the run goes to a new runs/mf-TIME; Ctrl-C's advice to rerun "with --resume" was refused
    (--resume needs --out), and the message did not say which directory to continue."""
    command = [sys.executable, "-m", "implicitrank.cli", "mf", "--shape", "6", "6", "--rank", "1",
               "--num-observations", "20", "--max-steps", "1000000", "--loss-threshold", "0", "--checkpoint-every",
               "25", "--threads", "1", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob("runs/mf-*/*/checkpoint.pt")):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # in the middle of training, as the test above
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()  # never left running into the next tests
        process.communicate()
    (out,) = tmp_path.glob("runs/mf-*")
    assert process.returncode == 130 and len(err.strip().splitlines()) == 1, err
    assert f"rerun the same command with --out {out.relative_to(tmp_path)} --resume" in err, err


_IMPORT_UNDER_CTRL_C = """
import os, signal, sys


class Trip:  # sends SIGINT the moment torch's import first asks for numpy: inside the import, every time
    fired = False

    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not Trip.fired:
            Trip.fired = True
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, Trip())
from implicitrank.interrupts import import_torch
try:
    import_torch()
except KeyboardInterrupt:
    print("interrupted", Trip.fired, "torch" in sys.modules)
    sys.exit(130)
print("continued", Trip.fired)
"""


def test_ctrl_c_while_torch_loads_is_raised_once_it_has_loaded() -> None:
    """A SIGINT that arrives while torch's import loads numpy is dropped by a plain ``import torch``: the import
    finishes and the program goes on (so a Ctrl-C in the first second of ``implicitrank mf`` trained on). Through
    ``import_torch``, which the commands load torch with, the import finishes and then KeyboardInterrupt is raised."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_UNDER_CTRL_C], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.split()) == (130, ["interrupted", "True", "True"]), done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_interrupts_deferred_holds_ctrl_c_until_the_block_is_done() -> None:
    from implicitrank.interrupts import interrupts_deferred

    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished.append(True)
    assert finished == [True]


def test_interrupts_between_steps_holds_the_first_ctrl_c_and_raises_the_second() -> None:
    from implicitrank.interrupts import interrupts_between_steps

    with interrupts_between_steps() as interrupted:
        assert not interrupted()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert interrupted()  # held for the loop to act on
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second one: at once (a step that hangs can still be left)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sweep_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``implicitrank sweep status DIR | head -3`` (item 10): no BrokenPipeError traceback when head has gone."""
    run_ids = [f"{i:012x}" for i in range(3000)]  # a long status: more than a pipe holds
    (tmp_path / "sweep.json").write_text(json.dumps({
        "spec": {"name": "big", "axes": {"seed": list(range(3000))}, "zip": []}, "run_ids": run_ids,
        "configs": {run_id: {"seed": i} for i, run_id in enumerate(run_ids)}}))
    done = subprocess.run(f"{sys.executable} -m implicitrank.cli sweep status {tmp_path} | head -3", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 3 and "3000 pending" in done.stdout
    assert done.stderr == "", done.stderr


def test_seconds_after_a_resume_count_the_whole_run_and_config_records_the_device(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """summary.json's ``seconds`` adds the sessions up; config.json says which device ``auto`` became."""
    import implicitrank.run as run_module
    from implicitrank.run import run_batch

    configs = [RunConfig(shape=(8, 8), rank=1, num_observations=30, max_steps=40, checkpoint_every=10)]
    save = run_module._save_checkpoints

    def slow_then_killed(state, dirs, *seconds):
        save(state, dirs, *seconds)
        if state.step == 20:
            raise KeyboardInterrupt
        time.sleep(2.0)  # the first session takes at least this long

    monkeypatch.setattr(run_module, "_save_checkpoints", slow_then_killed)
    with pytest.raises(KeyboardInterrupt):
        run_batch(configs, [tmp_path / "r"], progress=False, plots=False)
    monkeypatch.setattr(run_module, "_save_checkpoints", save)
    started = time.perf_counter()
    (summary,) = run_batch(configs, [tmp_path / "r"], resume=True, progress=False, plots=False).summaries
    assert summary["seconds"] >= 2.0 > time.perf_counter() - started
    assert json.loads((tmp_path / "r" / "config.json").read_text())["device_used"] == "cpu"


def test_the_readme_names_only_flags_its_commands_have() -> None:
    """Item 8: with abbreviations off, a flag the README's command table shows (``--cifar`` for ``--cifar-path``)
    must be one its command has."""
    import re

    from implicitrank.cli import build_parser, subcommands

    commands = dict(subcommands(build_parser()))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    checked = 0
    for row in (line for line in readme.splitlines() if line.startswith("| `implicitrank ")):
        cell = row.split(" | ")[0]  # `implicitrank tf` / `htf`: the commands the row is about
        names = {" ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
                 for words in (m.split() for m in re.findall(r"`(?:implicitrank )?([a-z][a-z -]*)", cell))}
        options = {o for name in names & set(commands) for action in commands[name]._actions
                   for o in action.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", row):
            assert flag in options, f"README: `implicitrank {' / '.join(sorted(names))}` has no {flag}: {row}"
            checked += 1
    assert checked >= 8
