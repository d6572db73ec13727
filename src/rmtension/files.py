"""Atomic file writers shared by every stage that leaves results on disk.

Why atomic: studies are resumed after crashes and a file's presence marks a finished piece of work
(``results.json``, a step's marker). Writing through a temporary sibling and renaming means a reader
sees either the old file or the whole new one, never half of it.

The temporary file is created private (``mkstemp`` uses mode 0600); before it is renamed into place
it gets the mode any other file of the user gets (0666 minus the umask), so neuron sets, statistics
and results in a shared study folder are as readable as the rest of it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from rmtension.errors import raise_disk_error
from rmtension.evaluation.metrics import jsonable


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only for an instant)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> Path:
    """Call ``write`` on a temporary sibling of ``path`` (UTF-8 text, or bytes), then rename it into place.

    A failure removes the temporary file and leaves any old ``path`` untouched.
    A full disk or a read-only/forbidden folder becomes a one-line :class:`RmtensionError`
    ("no space left on DIR"), with nothing left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise_disk_error(exc, path)
        raise
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_disk_error(exc, path)
        raise
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (NaN becomes null; paths and other objects become strings), indented."""
    def write(fh: Any) -> None:
        json.dump(jsonable(obj), fh, indent=2, allow_nan=False, default=str)
        fh.write("\n")
    write_atomic(path, write)


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    """One strict-JSON object per line."""
    def write(fh: Any) -> None:
        for row in rows:
            fh.write(json.dumps(jsonable(row), allow_nan=False, default=str) + "\n")
    write_atomic(path, write)
