"""One study folder, one writer: an advisory lock held for as long as ``rmtension run`` works in it.

Why: two runs on the same ``--out`` delete each other's in-progress step folders (a step that is
not complete is started over from an empty folder), so one of them crashes or both redo the work.
The second run must stop at once and say who holds the folder.

How: ``fcntl.flock`` on ``STUDY/.lock``. The kernel releases a flock when its holder exits, however
it exits (``kill -9`` included), so a lock left by a dead process never blocks anyone: no stale-lock
clean-up and no pid guessing is needed. The holder writes its pid, host and start time into the
file only so that the refusal can name it.

Cells (``run --cell``, from ``rmtension plan --jobs``) are meant to run side by side: each takes the
study lock *shared* and its own cell lock ``STUDY/.lock-cell-<cell>`` exclusively, while a whole-study
run takes the study lock exclusively. So cells run in parallel, the same cell cannot run twice,
and a whole-study run excludes (and is excluded by) every cell job.

flock is advisory and per host on some network file systems; where several machines share one
study folder, the scheduler must not start the same cell twice.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rmtension.errors import RmtensionError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
CELL_LOCK_PREFIX = ".lock-cell-"


class StudyLockedError(RmtensionError):
    """Another process works in this study folder (or on this cell) right now."""


def cell_lock_path(root: Path, cell: str) -> Path:
    return root / (CELL_LOCK_PREFIX + cell.replace("/", "__").replace(os.sep, "__"))


def holder_record(command: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _read_holder(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and "pid" in value else None


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "another rmtension process"
    what = f" ({holder['command']})" if holder.get("command") else ""
    return f"pid {holder.get('pid')} on {holder.get('host', '?')}{what}, started {holder.get('started', '?')}"


def _refuse(root: Path, lock: Path, holder: dict | None) -> StudyLockedError:
    return StudyLockedError(
        f"study folder {root} is in use by {_describe(holder)}; lock: {lock} (wait for that run to finish or stop "
        "it; the lock goes away by itself when its process exits)"
    )


def _try_lock(fd: int, exclusive: bool, path: Path) -> bool:
    """Take the flock without waiting: False when another process holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:  # e.g. ENOLCK on a file system without locks
        raise RmtensionError(f"cannot lock {path}: {exc.strerror or exc} (the study folder needs a file system "
                             "with flock)") from None


def _write_holder(fd: int, record: dict | None) -> None:
    os.ftruncate(fd, 0)
    if record is not None:
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _held_cell(root: Path) -> tuple[Path, dict | None] | None:
    """A cell lock some process holds now (probed by trying to take it), with its holder record."""
    for path in sorted(root.glob(CELL_LOCK_PREFIX + "*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if not _try_lock(fd, exclusive=False, path=path):
                return path, _read_holder(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return None


@contextmanager
def study_lock(root: str | Path, cell: str | None = None, command: str = "rmtension run") -> Iterator[Path]:
    """Hold the study folder ``root`` (for one ``cell`` only, if given) until the block ends.

    Raises ``StudyLockedError`` at once, naming the lock file and the holder's pid, when another
    process holds it; never waits.
    """
    root = Path(root)
    lock = root / LOCK_NAME
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError as exc:
        raise RmtensionError(f"cannot use {root} as a study folder: {exc.strerror or exc} ({lock})") from None
    if fcntl is None:  # pragma: no cover - no flock on this platform: run unlocked, as before
        yield lock
        return
    fds: list[int] = []
    recorded: int | None = None  # the descriptor whose file holds our record, cleared on the way out
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        fds.append(fd)
        if not _try_lock(fd, exclusive=cell is None, path=lock):
            holder = _read_holder(lock)
            if holder is None and cell is None:  # held shared: by cell jobs, which record themselves
                held = _held_cell(root)
                if held is not None:
                    raise _refuse(root, held[0], held[1])
            raise _refuse(root, lock, holder)
        if cell is None:
            _write_holder(fd, holder_record(command))
            recorded = fd
            yield lock
            return
        # A shared holder clears a record left by a whole-study run that was killed, so that the
        # study lock's record only ever names an exclusive holder that is alive.
        _write_holder(fd, None)
        cell_lock = cell_lock_path(root, cell)
        cfd = os.open(cell_lock, os.O_RDWR | os.O_CREAT, 0o666)
        fds.append(cfd)
        if not _try_lock(cfd, exclusive=True, path=cell_lock):
            raise _refuse(root, cell_lock, _read_holder(cell_lock))
        _write_holder(cfd, holder_record(f"{command} --cell {cell}"))
        recorded = cfd
        yield cell_lock
    finally:
        if recorded is not None:
            try:
                _write_holder(recorded, None)
            except OSError:
                pass
        for fd in reversed(fds):
            os.close(fd)  # closing the descriptor releases its flock
