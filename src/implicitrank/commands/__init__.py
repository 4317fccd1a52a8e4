"""The subcommands of the ``implicitrank`` command line, one module each, exposing ``register(subparsers)``.

Each module imports what its command needs only when the command runs, so ``implicitrank --help`` stays fast.

Examples
--------
>>> from implicitrank.cli import COMMAND_MODULES
>>> "implicitrank.commands.factorize" in COMMAND_MODULES
True
"""

from ._common import COMMA_LISTS

__all__ = ["COMMA_LISTS"]
