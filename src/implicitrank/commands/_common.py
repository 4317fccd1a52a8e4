"""Pieces shared by the subcommands: the flags every command spells alike, value parsing, output directories, tables.

Each shared flag is defined once here and means the same in every command that takes it:

``--seeds``        a list of seeds (``0..4``, ``0,2,5`` or ``3``), one run each;
``--data``         a file, or a directory holding the command's known file names (see ``resolve_data``);
``--threads``      threads of this process's torch/BLAS pools (default: the package's thread policy);
``--workers``      worker processes running in parallel (``sweep --executor local``, ``reproduce all``);
``--device``       ``auto`` (CUDA when present) | ``cpu`` | ``cuda[:N]``;
``--dtype``        ``float32`` | ``float64``;
``--resume``       continue unfinished runs found in ``--out``;
``--no-progress``  no progress bars;
``--out``          the output directory (default ``runs/COMMAND-TIME``; nothing in it is overwritten).

This module imports nothing heavy: building the parsers must not load torch (``implicitrank --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingInputError, OutputExistsError, UsageError
from ._defaults import DTYPES


class HelpFormatter(argparse.HelpFormatter):
    """Every argument's default shown once, as ``(default: X)``; descriptions wrapped by paragraph.

    A positional argument, an argument whose help already names its default (says "default"), or whose
    default is None or False (an optional value, a switch) gets nothing appended. A description keeps its
    paragraphs (blank lines) and any paragraph with an indented line (a usage example) as written.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = textwrap.dedent(text).strip().split("\n\n")
        return "\n\n".join(
            textwrap.indent(p, indent) if any(line[:1].isspace() for line in p.splitlines())
            else textwrap.fill(" ".join(p.split()), width, initial_indent=indent, subsequent_indent=indent)
            for p in paragraphs)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text or default is None or default is False
                or default is argparse.SUPPRESS):
            return text
        shown = str(default)
        if isinstance(default, (list, tuple)):  # as it is typed: one comma list (--seeds 0,1), or values (--lr 1 2)
            shown = ("," if action.nargs is None else " ").join(map(str, default))
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def add_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser with the shared help formatter."""
    return subparsers.add_parser(name, formatter_class=HelpFormatter, **kwargs)


MAX_RANGE = 100_000  # values an 'A..B' range may hold (sweeps.spec.MAX_RANGE): each is a run, or more


def int_list(text: str) -> list[int]:
    """``3``, ``0,1,2`` or ``0..4`` (inclusive, at most ``MAX_RANGE`` values) as a list of ints."""
    try:
        if ".." in text:
            lo, hi = text.split("..")
            if int(hi) - int(lo) >= MAX_RANGE:  # 0..100000000 was expanded, then ran silently for ever
                raise argparse.ArgumentTypeError(f"the range {text!r} holds more than {MAX_RANGE:,} values")
            values = list(range(int(lo), int(hi) + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected N, N,M,... or A..B, got {text!r}") from err
    if not values:
        raise argparse.ArgumentTypeError(f"empty range {text!r}")
    return values


def float_list(text: str) -> list[float]:
    """``0,1`` or ``0.5`` as a list of floats."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def word_list(text: str) -> list[str]:
    """``mlp,cnn`` as a list of words (blanks around the commas and empty items left out)."""
    return [w.strip() for w in text.split(",") if w.strip()]


MAX_SEED = 2**63 - 1  # the largest seed a torch generator takes (run.MAX_SEED)


def refuse_repeats(flag: str, values: Sequence[float] | None) -> None:
    """Refuse a value of the list flag ``flag`` given twice: each value is one run, and one run directory would hold
    two. Floats count as equal to the 6 significant digits that name their directories (``lr0.001``); integers
    (seeds) are named in full, so 1000000 and 1000001 are two."""
    shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in values or ()]
    repeated = next((v for i, v in enumerate(shown) if v in shown[:i]), None)
    if repeated is not None:
        digits = ", named by its 6 significant digits" if any(isinstance(v, float) for v in values) else ""
        raise UsageError(f"{flag}: {repeated} is given twice (each value is one run{digits}); give each value once")


def seed_list(text: str) -> list[int]:
    """``int_list`` of seeds: each in [0, 2**63 - 1], what a torch generator takes."""
    values = int_list(text)
    if not all(0 <= v <= MAX_SEED for v in values):
        raise argparse.ArgumentTypeError(f"seeds must be in [0, 2**63 - 1], got {text!r}")
    return values


COMMA_LISTS = (int_list, seed_list, float_list, word_list)  # the types of the options that take one A,B,... list


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """The ``--threads`` type: a positive integer no larger than this machine's CPU count (more threads than CPUs
    never speed up a product, and 100,000 of them crashed the process and starved the machine of processes)."""
    value = positive_int(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"expected at most {cpus} (this machine's CPUs), got {text!r}")
    return value


class _Deprecated(argparse.Action):
    """An old spelling of a flag: warns on one line, naming the new spelling, and stores into the new one's dest."""

    def __init__(self, option_strings, dest, new: str, wrap=None, **kwargs) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new, self.wrap = new, wrap

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values if self.wrap is None else self.wrap(values))


def add_deprecated(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    """Accept ``old`` as a deprecated spelling of ``new`` (``wrap``: turn its value into the new one's)."""
    p.add_argument(old, dest=dest, action=_Deprecated, new=new, **kwargs)


def add_seeds(p: argparse.ArgumentParser, default: Sequence[int] = (0,), what: str = "init seeds",
              deprecated_seed: bool = False) -> None:
    """``--seeds``: a list of seeds, one run each (``deprecated_seed``: also accept the old ``--seed N``)."""
    p.add_argument("--seeds", type=seed_list, default=list(default),
                   help=f"{what}, one run each: 0..4, 0,2,5 or 3")
    if deprecated_seed:
        add_deprecated(p, "--seed", "--seeds (a list: 0..4, 0,2,5)", "seeds", type=int, wrap=lambda seed: [seed])


def add_data(p: argparse.ArgumentParser, what: str) -> None:
    """``--data PATH``: a file or a directory holding one (checked when the command runs, see ``resolve_data``)."""
    p.add_argument("--data", default=None, metavar="PATH", help=f"{what} (a file, or a directory holding it)")


def resolve_data(path: str | None, names: Sequence[str] = ()) -> str | None:
    """The data path of ``--data``: a file as given; a directory as given, or the first of ``names`` in it
    when ``names`` are given. Raises ``MissingInputError`` / ``UsageError`` naming ``data`` when nothing is there."""
    if path is None:
        return None
    found = Path(path)
    if not found.exists():
        raise MissingInputError(f"data: no such file or directory: {path}")
    if found.is_dir() and names:
        for name in names:
            if (found / name).is_file():
                return str(found / name)
        raise UsageError(f"data: directory {path} holds none of {list(names)}; give the file or its directory")
    return str(found)


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=thread_count, default=None,
                   help="torch/BLAS threads of this process (default: the package's policy: one per run on "
                        "small problems, never more than the free cores)")


def add_workers(p: argparse.ArgumentParser, unit: str, when: str, default: str, deprecated_jobs: bool = False) -> None:
    """Add ``--workers N``: the worker processes a command runs in parallel, each running one ``unit`` at a time.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The command's parser.
    unit : str
        What one worker runs at a time ("experiment", "job").
    when : str
        In which mode the command has workers ("reproduce all", "--executor local").
    default : str
        The default, as the help shows it (the value itself is None: the command decides).
    deprecated_jobs : bool, optional
        Also accept the old ``--jobs N``, warning on one line that it is deprecated. Default False.
    """
    p.add_argument("--workers", type=positive_int, default=None,
                   help=f"worker processes running in parallel ({when}), each running one {unit} at a time "
                        f"(default: {default})")
    if deprecated_jobs:
        add_deprecated(p, "--jobs", "--workers", "workers", type=positive_int)


def apply_threads(threads: int | None, work: float = 0.0) -> None:
    """Apply ``--threads`` to this process before the command loads torch (None: the package's policy for a
    problem of ``work`` multiply-adds per step, ``threads.policy_threads``), then load torch with Ctrl-C held
    until it is loaded (``interrupts.import_torch``: an interrupt inside torch's import can be lost). More threads
    than this process's cores are set as asked, with a one-line warning."""
    from ..interrupts import import_torch
    from ..threads import available_cores, pin_threads, use_policy

    if threads is not None:
        cores = available_cores()
        if threads > cores:
            print(f"warning: --threads {threads} is more than the {cores} cores this process may use", file=sys.stderr)
        pin_threads(threads)
    else:
        use_policy(work)
    import_torch()


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", default=default, help="auto (CUDA when present) | cpu | cuda[:N]")


def add_dtype(p: argparse.ArgumentParser, default: str = "float32") -> None:
    p.add_argument("--dtype", choices=DTYPES, default=default, help="floating-point precision")


def add_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue unfinished runs found in --out")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_tensorboard(p: argparse.ArgumentParser, where: str = "beside each run's metrics.jsonl") -> None:
    p.add_argument("--tensorboard", action="store_true",
                   help=f"also write the runs' metrics as TensorBoard events {where} "
                        "(pip install 'implicitrank[tensorboard]')")


def add_out(p: argparse.ArgumentParser, command: str, extra: str = "") -> None:
    p.add_argument("--out", type=output_dir, default=None,
                   help=f"output directory (default: runs/{command}-TIME){extra}")


def output_dir(text: str) -> Path:
    """The ``--out`` type: a directory that exists or can be made, refused before any work when a file stands in
    its way or no directory can be made in the nearest existing one (a read-only disk, a file system such as
    ``/sys``), or when it is empty (which would be the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path would write into the current directory; name a directory "
                                         "(e.g. --out .)")
    path = Path(text)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {existing} is a file, not a directory")
    refusal = _directory_refused(existing)
    if refusal is not None:
        raise argparse.ArgumentTypeError(f"{text}: {existing} cannot be written here ({refusal})")
    return path


def _directory_refused(parent: Path) -> str | None:
    """Why no directory can be made in ``parent`` (None when one can), found by making one and removing it at once:
    ``os.access`` says yes to root where the file system itself refuses (``/sys``). Only the making decides: a
    directory that takes new entries but lets none go (``chattr +a``) is usable, and its probe stays behind."""
    try:
        probe = tempfile.mkdtemp(prefix=".implicitrank-check-", dir=parent)
    except OSError as err:
        return err.strerror or str(err)
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def refuse_used_out(out: Path, finished: str, what: str) -> None:
    """Refuse an ``out`` that exists and is not an empty directory, before any work: a command that cannot resume
    (``demo``, ``layers demo``) never writes into earlier output. ``finished`` is the file such a command writes
    last, which tells a finished ``what`` (e.g. "demo") from an unfinished one or another command's files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if (out / finished).is_file():
            raise OutputExistsError(f"out: {out} holds a finished {what} ({finished}); choose another --out")
        raise OutputExistsError(f"out: {out} is not empty (an unfinished {what}, or another command's files); "
                                "delete it or choose another --out")


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def resumable_out(args: argparse.Namespace, command: str) -> Path:
    """``--out``, or a new ``runs/COMMAND-TIME``, also set as ``args.out`` (so that Ctrl-C's message names it);
    ``--resume`` needs an ``--out`` that exists (a new directory holds nothing to continue, so everything would
    silently start over)."""
    if args.resume and args.out is None:
        raise UsageError(f"--resume needs --out DIR, the output to continue (without --out every run starts over in a "
                         f"new runs/{command}-TIME)")
    if args.resume and not args.out.is_dir():  # a mistyped --out: everything would silently start over there
        raise UsageError(f"--resume: {args.out} does not exist, so there is nothing to continue; check --out, or "
                         "leave out --resume to start there")
    args.out = args.out or default_out(command)
    return args.out


def exit_status(diverged: Sequence[bool], unit: str) -> int:
    """0, or 1 said on one line when every run diverged (``diverged``): a script must not read its output as a
    result. ``unit`` is what the runs' divergence warnings name (``steps``, ``epochs``)."""
    if all(diverged):
        print(f"every run diverged, so there is no result (exit status 1); the warnings above name their {unit}")
        return 1
    return 0


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table; floats in 3 significant digits; None as ``n/a`` (not applicable, e.g. the error on
    unobserved entries when every entry is observed); every number of a diverged run (``status`` "diverged") as
    ``none``: it has no result, as its summary.json's nulls say."""

    def cell(v, diverged: bool) -> str:
        if diverged and (v is None or isinstance(v, float)):
            return "none"
        if v is None:
            return "n/a"
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    cells = [[cell(r.get(c), r.get("status") == "diverged" and c != "seconds") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
