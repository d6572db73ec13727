"""Errors that a user can act on.

Every failure that comes from the user's input (a file, a name, a flag) is raised as an
``RmtensionError``; the command line prints it as one line and exits non-zero, without a
traceback unless ``--debug`` is given. Errors from bugs stay ordinary exceptions so that they
do show a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RmtensionError(Exception):
    """A problem the user can fix; its message is complete on its own."""


class InputError(RmtensionError):
    """Bad content in an input file, located by file and line (or record index)."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, record: int | None = None):
        self.path = str(path)
        self.line = line
        self.record = record
        where = self.path
        if line is not None:
            where += f":{line}"
        elif record is not None:
            where += f" [record {record}]"
        super().__init__(f"{where}: {message}")


class SourceNotFoundError(RmtensionError):
    """A named data source, benchmark or model could not be found anywhere we looked."""
