"""The project's own error types: bad input from the user, as opposed to bugs.

The command line turns these (and only these) into a one-line message and exit status 2; any other
exception is unexpected and keeps its traceback. ``UsageError`` subclasses ``ValueError`` (and the two
file errors their built-in counterparts), so library callers catching the built-in types still do.
"""

from __future__ import annotations

__all__ = ["CorruptFileError", "MissingInputError", "OutputExistsError", "UsageError"]


class UsageError(ValueError):
    """An argument, option, configuration or input file the user gave is not acceptable.

    The message names the argument and what is allowed.
    """


class MissingInputError(UsageError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class OutputExistsError(UsageError, FileExistsError):
    """An output directory already holds results that would be overwritten."""


class CorruptFileError(UsageError):
    """A file written earlier (checkpoint, summary, metrics, sweep table) cannot be read back.

    The message names the file and what to do about it.
    """
