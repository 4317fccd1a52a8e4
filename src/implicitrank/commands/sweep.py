"""``implicitrank sweep SPEC.toml``: run a grid of runs (resumable, on every core or on Slurm);
``implicitrank sweep status DIR``: what is done, running, failed or pending;
``implicitrank collect DIR``: one tidy table of the finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ._common import add_parser, add_progress, add_tensorboard, add_workers, output_dir, positive_int, thread_count
from ._defaults import EXECUTORS, SLURM, SLURM_MIN_TIME

SWEEP_HELP = """\
Run every run of a sweep spec that is not done yet. Runs that differ only in per-run values (seed, init
scale, learning rate, observation-set seed) train together as one batched job. Finished runs are never
rerun, interrupted runs resume from their checkpoints, failed runs record error.json and are rerun only
with --retry-failed: after any failure, run the same command again.

  implicitrank sweep SPEC.toml [--executor serial|local|slurm] [--out DIR]
  implicitrank sweep DIR              rerun the sweep stored in DIR (its sweep.json)
  implicitrank sweep status DIR       done / running / failed / pending

A spec is TOML: [base] (any run config field its optimizer and model use), [axes] (Cartesian: depth = [2, 3],
seed = "0..4"), [[zip]] (axes moving together, equal lengths) and [slurm] (defaults of the slurm options below);
see examples/sweeps/arora2019-small.toml."""


def register(subparsers) -> None:
    p = add_parser(subparsers, "sweep", help="run a resumable grid of runs (serial, local cores or Slurm)",
                   description=SWEEP_HELP)
    p.add_argument("target", nargs="+", metavar="TARGET",
                   help="SPEC.toml (run it), a sweep DIR (rerun it), or: status DIR")
    p.add_argument("--executor", choices=EXECUTORS, default="serial", help="where the jobs run")
    p.add_argument("--out", type=output_dir, default=None,
                   help="sweep directory (default: runs/<spec name>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, jobs, grouping); run nothing")
    p.add_argument("--retry-failed", action="store_true", help="also rerun the runs that failed before")
    p.add_argument("--no-batch", action="store_true", help="one job per run (no batched training)")
    p.add_argument("--max-batch", type=positive_int, default=None, help="at most this many runs per batched job")
    add_workers(p, "job", "--executor local", "one per core")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="threads per worker (default: the package's policy; local: cores // workers)")
    add_tensorboard(p, "beside each run's metrics.jsonl (or tensorboard = true in the spec); "
                       "tensorboard --logdir DIR compares the runs")
    p.add_argument("--plots", action="store_true", help="draw each run's plots (slow; `implicitrank plot` later)")
    add_progress(p)
    p.add_argument("--all", action="store_true", help="status: list every run, not only the unfinished")
    s = p.add_argument_group("slurm executor (override the spec's [slurm] table)")
    d = SLURM
    s.add_argument("--partition", default=None, help="partition (default: the cluster's)")
    s.add_argument("--time", type=int, default=None,
                   help=f"time limit per job in minutes, at least {SLURM_MIN_TIME} (default {d['time']}); a job "
                   "reaching it is requeued and resumes from its checkpoints")
    s.add_argument("--cpus", type=int, default=None, help=f"CPUs per job (default {d['cpus']})")
    s.add_argument("--gpus", type=int, default=None, help=f"GPUs per job (default {d['gpus']})")
    s.add_argument("--mem-gb", type=float, default=None, help="memory per job in GB (default: the partition's)")
    s.add_argument("--array-parallelism", type=int, default=None,
                   help=f"at most this many jobs of the array at once (default {d['array_parallelism']})")
    p.set_defaults(func=sweep_command)

    c = add_parser(subparsers, "collect", help="write one table (CSV, Parquet with pyarrow) of a sweep's runs",
                   description="Write DIR/results.csv (and DIR/results.parquet when pyarrow is "
                               "installed): one row per finished run, config fields + summary numbers.")
    c.add_argument("dir", type=Path, help="a sweep directory")
    c.set_defaults(func=collect_command)


def sweep_command(args: argparse.Namespace) -> int:
    from ..interrupts import import_torch

    import_torch()  # Ctrl-C while torch loads is acted on once it has loaded, not lost
    from ..sweeps.collect import write_table
    from ..sweeps.executors import SlurmOptions, make_executor
    from ..sweeps.plan import format_plan
    from ..sweeps.runner import default_out, run_sweep
    from ..sweeps.spec import load_spec, parse_spec
    from ..sweeps.state import count, read_sweep

    target = args.target
    if target[0] == "status":
        if len(target) != 2:
            raise UsageError("usage: implicitrank sweep status DIR")
        return status_command(Path(target[1]), args.all)
    if len(target) != 1:
        raise UsageError(f"expected one spec or sweep directory, got {target}; for the status: sweep status DIR")
    _refuse_unused(args)
    path = Path(target[0])
    if path.is_dir():
        spec, out = parse_spec(read_sweep(path)["spec"]), args.out or path
    else:
        spec, out = load_spec(path), args.out
    flags = {"partition": args.partition, "time": args.time, "cpus": args.cpus, "gpus": args.gpus,
             "mem_gb": args.mem_gb, "array_parallelism": args.array_parallelism}
    slurm = SlurmOptions.from_dict({**spec.slurm, **{k: v for k, v in flags.items() if v is not None}})
    executor = make_executor(args.executor, workers=args.workers, threads=args.threads, slurm=slurm)
    # what Ctrl-C's message advises: a sweep continues where it stopped when run again on its directory
    args.after_interrupt = ("what was written so far is kept; to continue, run: implicitrank sweep "
                            f"{out or default_out(spec)}")
    report = run_sweep(spec, out, executor, retry_failed=args.retry_failed, batch=not args.no_batch,
                       max_batch=args.max_batch, plots=args.plots, progress=not args.no_progress,
                       dry_run=args.dry_run, tensorboard=args.tensorboard)
    if args.dry_run:
        print(format_plan(report.plan, report.jobs, count(report.before)))
        return 0
    print(report.summary())
    print("table: " + ", ".join(map(str, write_table(report.plan.out))))
    from ..reports import write_report

    print(f"report: {write_report(report.plan.out)}")
    return 0 if report.complete else 1


def _refuse_unused(args: argparse.Namespace) -> None:
    """Options the chosen run does not use, refused (they changed nothing, silently): ``--all`` outside ``status``,
    ``--workers`` outside the local executor, the Slurm options outside Slurm, ``--max-batch`` with ``--no-batch``."""
    given = [("--all", args.all, "it applies to: sweep status DIR")]
    if args.executor != "local":
        given.append(("--workers", args.workers is not None, "it applies to --executor local"))
    if args.executor != "slurm":
        given += [(f"--{name.replace('_', '-')}", getattr(args, name) is not None, "it applies to --executor slurm")
                  for name in ("partition", "time", "cpus", "gpus", "mem_gb", "array_parallelism")]
    if args.no_batch:
        given.append(("--max-batch", args.max_batch is not None, "--no-batch runs one run per job"))
    for flag, present, why in given:
        if present:
            raise UsageError(f"{flag} is not used here ({why}); leave it out")


def status_command(out: Path, show_all: bool) -> int:
    from ..sweeps.state import count, read_sweep, sweep_status

    sweep = read_sweep(out)
    states = sweep_status(out)
    fields = [*sweep["spec"]["axes"], *(k for group in sweep["spec"]["zip"] for k in group)]
    counts = count(states)
    print(f"sweep {sweep['spec']['name']!r} in {out}: {len(states)} runs: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for state in states:
        if show_all or state.status != "done" or state.detail:  # a done run with a detail diverged
            config = sweep["configs"][state.run_id]
            values = " ".join(f"{k}={config[k]}" for k in fields)
            print(f"  {state.status:<8} {state.run_id} {values}" + (f": {state.detail}" if state.detail else ""))
    return 0


def collect_command(args: argparse.Namespace) -> int:
    from ..sweeps.collect import collect_rows, write_table
    from ..sweeps.state import read_sweep

    rows = collect_rows(args.dir)
    total = len(read_sweep(args.dir)["run_ids"])
    paths = write_table(args.dir, rows)
    print(f"{len(rows)} of {total} runs finished; wrote " + ", ".join(map(str, paths)))
    return 0
