"""Errors raised at optiq's boundaries.

Every error names the file (when there is one), the place in it and what was expected, so that the CLI can print
one line: ``optiq: error: <message>`` and exit with code 2.
"""

from __future__ import annotations

import os


class OptiqError(Exception):
    """Base class for every error optiq reports to a user.

    ``path`` is the file concerned, ``where`` the place in it (``"line 12"``, ``"frame 40"``, ``"node Hips"``).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, where: str | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.where:
            parts.append(self.where)
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ParseError(OptiqError):
    """A motion or label file does not follow its format."""


class SkeletonMismatchError(OptiqError):
    """Clips with different skeletons were put into one dataset, or a file does not fit a skeleton."""


class PluginError(OptiqError):
    """A registered name is unknown, ambiguous (a clash) or its target cannot be imported."""


class DatasetError(OptiqError):
    """A dataset file is missing, of an unknown version, or asked for something it does not hold."""


class DiskFullError(OptiqError):
    """The disk (or a quota, or a file size limit) was full while writing an output; the old output is intact."""


class Terminated(BaseException):
    """The process received SIGTERM (what ``timeout``, schedulers and containers send). Like KeyboardInterrupt,
    it is not an ``Exception``, so it unwinds through every clean-up (``finally``, atomic writes) to the CLI."""


class OptiqWarning(UserWarning):
    """Something a user should know that did not stop the work (a guessed unit, a skipped file). The message
    names the file, says what was assumed and how to override it; the CLI prints it as one line
    ``optiq: warning: ...``."""
