"""The ``implicitrank`` command line: a thin layer over the public API.

Each subcommand lives in a module of ``implicitrank.commands`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "implicitrank.commands.factorize",
    "implicitrank.commands.baseline",
    "implicitrank.commands.demo",
    "implicitrank.commands.reproduce",
    "implicitrank.commands.sweep",
    "implicitrank.commands.layers",
    "implicitrank.commands.locality",
    "implicitrank.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="implicitrank",
        description="Implicit rank regularization in deep matrix, tensor and hierarchical tensor factorizations.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The command line only writes figures to files: the file-only backend, chosen before matplotlib is imported
    # (the library itself leaves the backend to its user).
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"implicitrank {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
