"""The ``implicitrank`` command line: a thin layer over the public API.

Each subcommand lives in a module of ``implicitrank.commands`` exposing ``register(subparsers)``. Building
the parsers imports nothing heavy (torch, matplotlib, scipy, scikit-learn, submitit load only inside the
command that runs), so ``implicitrank --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from . import __version__
from .errors import UsageError

__all__ = ["build_parser", "main"]


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
    """The ``implicitrank`` parser with every subcommand of ``COMMAND_MODULES`` registered.

    Each module's ``register(subparsers)`` adds its subcommand; prefix matching of long options is turned off in
    every parser (an unknown ``--cifar`` is refused, not taken for ``--cifar-path``) and ``-1e-3`` is read as a
    negative value.

    Returns
    -------
    argparse.ArgumentParser
        The top-level parser (``prog="implicitrank"``, with ``--version``); a parsed command carries its handler
        as ``args.func``.
    """
    parser = _OneLineErrors(
        prog="implicitrank",
        description="Implicit rank regularization in deep matrix, tensor and hierarchical tensor factorizations.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"implicitrank {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _strict(parser)
    return parser


class _OneLineErrors(argparse.ArgumentParser):
    """argparse's refusals in one line, as the package's own: the usage block they printed first (up to 20 lines)
    buried the line that names the argument. Subcommands' parsers are of this class too (``add_subparsers``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        given = sys.argv[1:] if args is None else list(args)
        parsed, extras = self.parse_known_args(given, namespace)
        command = _command(self, given)
        if extras:
            command.error(_comma_list_hint(command, given, extras) or f"unrecognized arguments: {' '.join(extras)}")
        repeated = _repeated_list(command, given)
        if repeated:
            command.error(repeated)
        return parsed


def _command(parser: argparse.ArgumentParser, given: list[str]) -> argparse.ArgumentParser:
    """The parser of the command ``given`` names, down the subcommands named first ("layers demo ...")."""
    command = parser
    for token in given:
        choices = [a.choices for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if not choices or token not in choices[0]:
            break
        command = choices[0][token]
    return command


def _repeated_list(command: argparse.ArgumentParser, given: list[str]) -> str | None:
    """The refusal of an option of ``command`` that takes a list given twice in ``given`` (``--depths 1 --depths
    2``, ``--lr 1 --lr 2``): argparse keeps the last list and drops the others without a word. None when there is
    none."""
    from .commands import COMMA_LISTS

    forms = {a.dest: "A,B,..." if a.type in COMMA_LISTS else "A B ..." for a in command._actions
             if a.option_strings and (a.nargs in ("+", "*") or a.type in COMMA_LISTS)}
    seen: set[str] = set()
    for token in given:
        option = token.split("=", 1)[0]
        action = command._option_string_actions.get(option)
        if action is None or action.dest not in forms:
            continue
        if action.dest in seen:
            return (f"argument {option}: given twice, and only the last would count; give all its values once: "
                    f"{option} {forms[action.dest]}")
        seen.add(action.dest)
    return None


def _comma_list_hint(command: argparse.ArgumentParser, given: list[str], extras: list[str]) -> str | None:
    """When the arguments argparse did not recognize are values after one of ``command``'s options that takes one
    comma-separated list (``--seeds 0 1``), how to write them."""
    for at in range(2, len(given)):
        option, first = given[at - 2], given[at - 1]
        if given[at] != extras[0]:
            continue
        values = [first]
        for token in given[at:]:  # the unrecognized values that follow, up to the next option
            if token not in extras or token.startswith("--"):
                break
            values.append(token)
        if len(values) == 1:  # an unknown option after the value (``--max-steps 5 --bogus``): argparse's own message
            continue
        for action in command._actions:
            if option in action.option_strings and action.nargs is None and callable(action.type):
                try:
                    action.type(",".join(values))
                except (argparse.ArgumentTypeError, ValueError, TypeError):
                    continue
                return (f"argument {option}: takes one comma-separated list: {option} {','.join(values)}, "
                        f"not {option} {' '.join(values)}")
    return None


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command below ``parser`` as (name as typed, e.g. ``"layers demo"``, its parser), depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, nested in subcommands(sub):
                    yield f"{name} {inner}", nested


NEGATIVE_NUMBER = re.compile(r"^-((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity)$", re.IGNORECASE)


def _strict(parser: argparse.ArgumentParser) -> None:
    """In ``parser`` and every subparser below it, turn off prefix matching of long options (an option that
    does not exist, ``--cifar``, must be refused, not taken as the ``--cifar-path`` it abbreviates), and read
    ``-1e-3`` and ``-inf`` as (negative) values, as ``-0.001`` is, so that their checks name them."""
    parser.allow_abbrev = False
    parser._negative_number_matcher = NEGATIVE_NUMBER
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _strict(sub)


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv``.

    Sets ``MPLBACKEND=Agg`` unless the environment names a backend, parses ``argv`` and runs the chosen command;
    without a command it prints the help. A ``UsageError`` is printed as one line
    ``implicitrank COMMAND: error: ...`` on stderr.

    Parameters
    ----------
    argv : list of str or None, optional
        The arguments after the program name. Default None: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: the command's own (0 when it returns None), 0 after printing the help, 2 for bad input
        (a ``UsageError``), 130 after Ctrl-C (one line, no traceback), 141 when stdout's reader went away (a
        broken pipe).
    """
    # The command line only writes figures to files: the file-only backend, chosen before matplotlib is imported
    # (the library itself leaves the backend to its user).
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    # the command as typed, its subcommand included ("layers demo"), as argparse's own refusals name it
    command = " ".join(filter(None, (args.command, getattr(args, "layers_command", None))))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught below, not at the interpreter's exit
        return code
    except UsageError as err:
        print(f"implicitrank {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: not an error, no traceback; what was written stays (checkpoints, records)
        # a command may say itself what is left and how to go on (``after_interrupt``: sweep, layers demo)
        after = getattr(args, "after_interrupt", None) or "what was written so far is kept"
        if hasattr(args, "resume"):  # the commands that continue an output: name it (--resume alone is refused)
            after += f"; to continue, rerun the same command with --out {getattr(args, 'out', None) or 'DIR'} --resume"
        print(f"\nimplicitrank {command}: interrupted; {after}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``implicitrank sweep status DIR | head -3``): stop quietly, as ``cat`` does.
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
