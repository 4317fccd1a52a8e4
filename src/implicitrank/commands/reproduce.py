"""``implicitrank reproduce``: rerun the papers' figures and check them against the published numbers.

``reproduce all`` at the test and quick scales runs one experiment per core at a time (each on one torch thread,
as ``experiments.reproduce`` runs it), longest first; each worker's output goes to ``<out>/<name>/log.txt`` and the
console gets the order up front and each experiment's claims and time when it ends. ``reproduce all`` also writes
``<out>/claims.md`` and ``<out>/claims.json``: every experiment's counts and its failed claims, failures first.
The exit status is 0 only when no claim failed, 1 otherwise ("not run" claims are reported, not failed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..allocator import keep_freed_memory
from ..errors import OutputExistsError, UsageError
from ..interrupts import import_torch
from ..threads import available_cores, pin_threads
from ._common import (
    add_data,
    add_out,
    add_parser,
    add_progress,
    add_tensorboard,
    add_threads,
    add_workers,
    resolve_data,
    resumable_out,
    seed_list,
)
from ._defaults import SCALES

if TYPE_CHECKING:
    from ..experiments.claims import Claim


def register(subparsers) -> None:
    p = add_parser(
        subparsers, "reproduce", help="rerun a paper figure and check its claims (reproduce --list)",
        description="Rerun one experiment (or 'all') at a scale; each writes its figure(s) as PNG, the table behind "
                    "them as CSV, and claims.json + claims.md (the paper's value, ours, tolerance, pass/fail).")
    p.add_argument("name", nargs="?", help="experiment name (see --list) or 'all'")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--scale", choices=SCALES, default="quick",
                   help="test: seconds; quick: minutes on 2 CPU cores; paper: the published sizes")
    add_out(p, "reproduce")
    p.add_argument("--seeds", type=seed_list, default=None,
                   help="the repetitions' seeds, e.g. 0..2 for three (default: the scale's own)")
    add_data(p, "data the experiment can use: MovieLens u.data, MNIST/Fashion-MNIST IDX directory, CIFAR-10 batches")
    add_workers(p, "experiment", "reproduce all", "one per core at test and quick scale, 1 at paper scale, whose "
                "runs use every core", deprecated_jobs=True)
    p.add_argument("--resume", action="store_true",
                   help="--out holds an earlier reproduce: run only the experiments it has not finished (claims.json)")
    add_threads(p)
    add_tensorboard(p, "of the runs trained through run directories (the matrix experiments) to "
                       "OUT/NAME/tensorboard/<run_id>")
    add_progress(p)
    p.set_defaults(func=run_reproduce)


def unfinished(names: list[str], out: Path, resume: bool) -> list[str]:
    """The experiments of ``names`` to run into ``out``: all of them into a fresh ``out``; with ``resume``, those
    without ``claims.json`` (written last). Earlier results without ``resume`` are refused, never overwritten."""
    earlier = [n for n in names if (out / n).is_dir() and any((out / n).iterdir())]
    if earlier and not resume:
        raise OutputExistsError(f"out: {out} already holds results of {', '.join(earlier)}; choose another --out, "
                                "or pass --resume to run only the experiments not finished there")
    finished = [n for n in names if (out / n / "claims.json").is_file()]
    for name in finished:
        print(f"== {name}: finished earlier, kept (claims in {out / name / 'claims.md'})", flush=True)
    return [n for n in names if n not in finished]


def earlier_failures(out: Path, kept: list[str]) -> int:
    """How many claims failed in the experiments of ``kept``, finished earlier in ``out`` (their claims.json): a
    ``--resume`` that runs nothing reports them and exits 1 as the run that wrote them did (it said 0 and exited 0)."""
    from .. import results

    return sum(c.get("status") == "fail" for name in kept
               for c in results.read_json(out / name / "claims.json").get("claims", []))


def refuse_other_output(out: Path) -> None:
    """Refuse an ``out`` that holds another command's output (a sweep, a run, runs one level down, or the
    report.html of runs further down): reproduce writes its report.html there, which replaced theirs (and
    ``report`` then saw a reproduction only). Runs further down with no report.html there are left alone, and so
    is ``out``: ``runs/``, where every command writes ``runs/COMMAND-TIME`` by default, is a fine place for it."""
    from ..reports import reproduction, runs, sweep

    if not out.is_dir() or reproduction.is_reproduction(out):
        return
    kind = ("a sweep" if sweep.is_sweep(out) else "runs" if runs.is_run(out) or runs.run_dirs(out, depth=1)
            else "the report of runs" if (out / "report.html").exists() else None)
    if kind is not None:
        raise OutputExistsError(f"out: {out} holds another command's output ({kind}), whose report.html reproduce "
                                "would replace with its own; choose another --out")


def seed_tuple(seeds: list[int] | None) -> tuple[int, ...] | None:
    """``--seeds`` for the experiments: the seeds themselves, as in every command (``3`` is seed 3, not a count
    of three, which it was before; a one-line note says so)."""
    if seeds is None:
        return None
    from ..experiments.claims import seed_list

    chosen = seed_list(tuple(seeds), 1)  # refused here, before the first experiment starts (repeated, negative)
    if len(seeds) == 1 and seeds[0] > 0:
        print(f"implicitrank reproduce: note: --seeds is a list of seeds: {seeds[0]} runs seed {seeds[0]} only "
              f"(for {seeds[0]} repetitions: --seeds 0..{seeds[0] - 1})", file=sys.stderr)
    return chosen


def run_reproduce(args: argparse.Namespace) -> int:
    keep_freed_memory()  # grids train batches of runs: glibc's heap keeps their buffers (``allocator``)
    if args.threads is not None:
        pin_threads(args.threads)
    import_torch()  # Ctrl-C while torch loads is acted on once it has loaded, not lost
    from ..experiments import MODULES, experiment

    if args.list and args.name is not None:
        raise UsageError(f"--list lists the experiments and runs none; leave out {args.name!r} to list them, or "
                         f"leave out --list to run {args.name}")
    if args.list or args.name is None:
        for name in MODULES:
            print(f"{name:32s} {experiment(name).TITLE}")
        return 0
    if args.workers is not None and args.name != "all":  # one experiment runs in this process
        raise UsageError(f"--workers applies to 'reproduce all' (experiments in parallel); leave it out for "
                         f"{args.name}")
    if args.tensorboard:
        from ..tensorboard import require

        require()
    names = list(MODULES) if args.name == "all" else [args.name]
    for name in names:  # every name and value is checked before anything runs
        experiment(name)
    args.seeds, args.data = seed_tuple(args.seeds), data_for(args.name, names, args.data)
    out = resumable_out(args, "reproduce")
    refuse_other_output(out)
    to_run = unfinished(names, out, args.resume)
    workers = args.workers or (1 if args.scale == "paper" else available_cores())
    workers = max(1, min(workers, len(to_run)))
    from .. import provenance

    started = provenance.now()
    with _environment(**({"TQDM_DISABLE": "1"} if args.no_progress else {})):
        if workers == 1:
            done = _run_serial(to_run, args, out)
        else:
            done = _run_parallel(to_run, args, out, workers)
    if args.name == "all":  # every experiment, those finished earlier (--resume) too
        failed = write_summary(out, args.scale, list(MODULES), started)
    else:  # this one, or its claims kept by --resume
        failed = sum(c.status == "fail" for claims in done.values() for c in claims)
        failed += earlier_failures(out, [n for n in names if n not in to_run])
    from ..experiments.claims import SCALE_NOTES
    from ..reports import write_report

    print(f"results in {out}; {failed} claim(s) failed")
    if args.scale in SCALE_NOTES:
        print(SCALE_NOTES[args.scale])
    print(f"report: {write_report(out)}")
    return 1 if failed else 0


def data_for(name: str, names: list[str], data: str | None) -> dict[str, str | None]:
    """Each experiment's ``--data``, checked before anything runs: arora2019-dynamics takes a directory holding
    u.data too. For one experiment, data it cannot read is refused. ``all`` hands the data to each experiment that
    can read it, says which, and refuses data that none can read."""
    from ..experiments.registry import USES_DATA, check_data

    def checked(reader: str) -> str:
        resolved = resolve_data(data, ("u.data",) if reader == "arora2019-dynamics" else ())
        check_data(reader, resolved)
        return resolved

    if data is None:
        return dict.fromkeys(names)
    resolve_data(data)  # a path that does not exist is refused as such, not once per experiment
    if name != "all":
        return {name: checked(name)}
    readers, refusals = {}, {}
    for reader in USES_DATA:
        try:
            readers[reader] = checked(reader)
        except UsageError as err:
            refusals[reader] = str(err)
    if not readers:
        raise UsageError(f"--data: none of the experiments that read data can read {data}: "
                         + "; ".join(f"{reader}: {why}" for reader, why in refusals.items()))
    print(f"--data {data}: read by {', '.join(readers)}" + (f"; not by {', '.join(refusals)}, whose data claims "
          "are not run (one --data per reproduce; run those alone with their own --data)" if refusals else ""),
          flush=True)
    return {n: readers.get(n) for n in names}


def _run_serial(names: list[str], args: argparse.Namespace, out: Path) -> dict[str, list[Claim]]:
    from ..experiments import reproduce

    done = {}
    for name in names:
        print(f"== {name} ({args.scale}) ...", flush=True)
        started = time.perf_counter()
        with _tensorboard(out / name, args.tensorboard):
            done[name] = reproduce(name, args.scale, out / name, seeds=args.seeds, data=args.data[name],
                                   threads=args.threads)
        _report(name, done[name], time.perf_counter() - started, out)
    return done


def _report(name: str, claims: list[Claim], seconds: float, out: Path) -> int:
    """Print an experiment's claims and time; return how many failed."""
    from ..experiments.claims import ours_text

    for c in claims:
        note = f" — {c.note}" if c.note else ""
        ours = f": ours {ours_text(c)} ({c.tolerance})" if c.per_seed else ""
        print(f"  [{c.status:7s}] {c.claim}{ours}{note}")
    print(f"  {seconds:.0f} s; claims in {out / name / 'claims.md'}", flush=True)
    return sum(c.status == "fail" for c in claims)


def write_summary(out: Path, scale: str, names: list[str], started: str) -> int:
    """``out/claims.json`` and ``out/claims.md`` from each experiment's ``out/NAME/claims.json``: per experiment
    its counts, experiments with failures first, then every failed claim. Returns how many claims failed."""
    from .. import provenance, results
    from ..experiments.claims import SCALE_NOTES, STATUSES

    written = {name: results.read_json(out / name / "claims.json") for name in names}
    rows = {name: {s: sum(c["status"] == s for c in data["claims"]) for s in STATUSES}
            for name, data in written.items()}
    order = sorted(names, key=lambda n: -rows[n]["fail"])
    failures = [{"experiment": name, **c} for name in order for c in written[name]["claims"] if c["status"] == "fail"]
    seeds = sorted({s for data in written.values() for c in data["claims"] for s in c.get("seeds") or []})
    results.write_json(out / "claims.json", {"scale": scale, "failed": failures,
                                             "experiments": [{"experiment": n, **rows[n]} for n in order],
                                             "provenance": provenance.collect(seeds=seeds, started=started)})
    total = {s: sum(r[s] for r in rows.values()) for s in STATUSES}
    lines = [f"# All experiments ({scale} scale)", "",
             f"{total['pass']} passed, {total['fail']} failed, {total['not run']} not run", "",
             *([SCALE_NOTES[scale], ""] if scale in SCALE_NOTES else []),
             "| experiment | pass | fail | not run |", "|---|---|---|---|"]
    lines += [f"| [{name}]({name}/claims.md) | {rows[name]['pass']} | {rows[name]['fail']} | {rows[name]['not run']} |"
              for name in order]
    if failures:
        lines += ["", "## Failed claims", "", "| experiment | claim | ours | test as applied | note |",
                  "|---|---|---|---|---|"]
        for f in failures:
            cells = [f["experiment"], f["claim"], _ours(f), f.get("tolerance") or "—", f.get("note") or ""]
            lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    (out / "claims.md").write_text("\n".join(lines) + "\n")
    return total["fail"]


def _ours(claim: dict) -> str:
    """Our value of a claim of claims.json: the value (one seed) or the per-seed values."""
    values = claim.get("per_seed") or []
    return "—" if not values else str(values[0] if len(values) == 1 else values)


def _run_parallel(names: list[str], args: argparse.Namespace, out: Path, workers: int) -> dict[str, list[Claim]]:
    """Run ``names`` on ``workers`` worker processes (one torch thread each, or ``--threads``), longest first."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from ..experiments.registry import QUICK_SECONDS
    from ..workers import run_task, start_worker

    threads = args.threads or 1
    order = sorted(names, key=lambda n: QUICK_SECONDS.get(n, 0), reverse=True)
    print(f"running {len(order)} experiments, {workers} at a time, longest first ({', '.join(order)}); "
          f"each one's output goes to {out}/<name>/log.txt", flush=True)
    finished: dict[str, list[Claim]] = {}
    # Workers log to files: their progress bars would interleave on the console.
    with _environment(TQDM_DISABLE="1"), ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
            initargs=(threads, os.getpid())) as pool:
        pending: dict[Future, str] = {
            pool.submit(run_task, _reproduce_logged, name, args.scale, out / name, args.seeds, args.data[name], threads,
                        args.tensorboard): name
            for name in order}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name = pending.pop(future)
                    claims, seconds = future.result()
                    print(f"== {name} ({args.scale})", flush=True)
                    _report(name, claims, seconds, out)
                    finished[name] = claims
        except BaseException:  # Ctrl-C: cancel the experiments not started (the pool's exit waits for the rest,
            pool.shutdown(wait=False, cancel_futures=True)  # which the same Ctrl-C stops: ``workers.run_task``)
            raise
    return finished


def _reproduce_logged(name: str, scale: str, out_dir: Path, seeds: tuple[int, ...] | None, data: str | None,
                      threads: int, tensorboard: bool = False) -> tuple[list[Claim], float]:
    """``reproduce`` in a worker process, its stdout and stderr going to ``out_dir/log.txt``; (claims, seconds)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(out_dir / "log.txt", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            _tensorboard(out_dir, tensorboard):
        from ..experiments import reproduce

        claims = reproduce(name, scale, out_dir, seeds=seeds, data=data, threads=threads)
    return claims, time.perf_counter() - started


def _tensorboard(out_dir: Path, enabled: bool):
    """Within the block, runs trained through run directories write TensorBoard events to out_dir/tensorboard."""
    if not enabled:
        return contextlib.nullcontext()
    from ..tensorboard import logging_to

    return logging_to(out_dir / "tensorboard")


@contextlib.contextmanager
def _environment(**variables: str):
    """Set environment variables (inherited by child processes started meanwhile), restoring them afterwards."""
    previous = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
