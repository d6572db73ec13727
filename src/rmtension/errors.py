"""Errors that a user can act on.

Every failure that comes from the user's input (a file, a name, a flag) is raised as an
``RmtensionError``; the command line prints it as one line and exits non-zero, without a
traceback unless ``--debug`` is given. Errors from bugs stay ordinary exceptions so that they
do show a traceback.
"""

from __future__ import annotations

import errno
import re
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


# ----------------------------------------------------------------------------- the file system

# errno → what the user is told; each is fixable by the user (free space, pick another folder).
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on {dir}",
    errno.EDQUOT: "disk quota exceeded on {dir}",
    errno.EROFS: "cannot write {path}: read-only file system",
    errno.EACCES: "permission denied: {path}",
    errno.EPERM: "operation not permitted: {path}",
}
# Rust's io::Error as safetensors and tokenizers print it: `Os { code: 28, kind: StorageFull, ... }`.
_RUST_OS_ERROR = re.compile(r"Os \{ code: (\d+)")


def _errno_of(exc: BaseException) -> tuple[int | None, str | None]:
    """The errno (and file name) of ``exc`` or of an exception in its cause/context chain.

    Libraries often wrap a failed write (torch's "file write failed", safetensors' Rust
    ``SafetensorError``), so the OSError is looked for down the chain and in Rust's error text.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _DISK_ERRNOS:
            return cur.errno, cur.filename if isinstance(cur.filename, str) else None
        m = _RUST_OS_ERROR.search(str(cur))
        if m and int(m.group(1)) in _DISK_ERRNOS:
            return int(m.group(1)), None
        cur = cur.__cause__ or cur.__context__
    return None, None


def disk_error_message(exc: BaseException, path: str | Path | None = None) -> str | None:
    """One line for a full disk, a read-only or forbidden folder; None for any other error.

    ``path`` is the file being written when the caller knows it better than the exception does.
    """
    code, filename = _errno_of(exc)
    if code is None:
        return None
    target = Path(filename or path) if (filename or path) else None
    folder = target.parent if target is not None and not target.is_dir() else target
    return _DISK_ERRNOS[code].format(dir=folder or "the output folder", path=target or "the output folder")


def raise_disk_error(exc: BaseException, path: str | Path | None = None) -> None:
    """Raise ``exc`` as a one-line :class:`RmtensionError` when it is a disk error; else return
    (the caller re-raises the original)."""
    msg = disk_error_message(exc, path)
    if msg is not None:
        raise RmtensionError(msg) from exc
