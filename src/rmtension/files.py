"""Atomic file and folder writers shared by every stage that leaves results on disk.

Why atomic: studies are resumed after crashes and a file's presence marks a finished piece of work
(``results.json``, a step's marker). Writing through a temporary sibling and renaming means a reader
sees either the old file or the whole new one, never half of it.

The temporary file is created private (``mkstemp`` uses mode 0600); before it is renamed into place
it gets the mode any other file of the user gets (0666 minus the umask), so neuron sets, statistics
and results in a shared study folder are as readable as the rest of it.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import numpy as np

from rmtension.errors import RmtensionError, raise_disk_error


def jsonable(value: Any) -> Any:
    """``value`` with every NaN float (also inside lists/tuples/dicts/arrays) replaced by None.

    Why: results files must be strict JSON, and NaN (an empty subset, an undefined std) is not;
    ``null`` is what a reader's JSON parser understands as "no number".
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


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


# ----------------------------------------------------------------------------- folders
# A model folder or a report is only usable when every file in it is complete, so it is never written
# in place: it is built in a temporary sibling (same file system, so the final rename is atomic) and
# moved to its name with one ``os.replace``. An interrupted build leaves at most a hidden
# ``.<name>.tmp-*`` sibling, never a half-written folder under the real name, and a reader either sees
# the old folder or the new one.

# Temporary siblings older than this are leftovers of killed builds and may be removed; younger
# ones may belong to a build running in another process right now.
STALE_AFTER_S = 6 * 3600


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def remove_stale_temps(target: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete leftover temporary siblings of ``target`` from builds that died long ago."""
    removed: list[Path] = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    now = time.time()
    for p in parent.glob(_tmp_prefix(target) + "*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        except OSError:
            pass
    return removed


def _apply_umask(folder: Path) -> None:
    """Give the finished folder ordinary permissions.

    ``mkdtemp`` creates it private (0700) and some writers create private files; a published model
    folder should be as readable as any file the user creates (e.g. a shared cache).
    """
    if not folder.exists():
        return
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for p in folder.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


@contextmanager
def temp_sibling(target: Path) -> Iterator[Path]:
    """A fresh empty folder next to ``target``; removed on exit unless it was moved away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), dir=target.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_new(tmp: Path, target: Path) -> bool:
    """Move the finished folder ``tmp`` to ``target`` unless ``target`` already exists.

    Returns True when ours was published. When another process published first (the rename onto
    a non-empty folder fails), ours is discarded and False is returned: both builds are
    equivalent, and the one already visible may be in use.
    """
    _apply_umask(tmp)
    try:
        os.replace(tmp, target)
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR) or target.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise


def publish_replacing(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``, replacing an existing folder there.

    A directory cannot be renamed over a non-empty one, so the old folder is first renamed to a
    temporary sibling (atomic), the new one renamed into place (atomic), and only then is the old
    one deleted. A crash in between leaves either the old or the new folder under its name plus a
    temporary sibling, never a mixture.
    """
    _apply_umask(tmp)
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), dir=target.parent))
        old.rmdir()
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def build_atomically(target: Path, build: Callable[[Path], None], *, replace: bool = False) -> bool:
    """Run ``build(tmp)`` in a temporary sibling and publish the result as ``target``.

    With ``replace=False`` an existing ``target`` wins (see ``publish_new``); returns whether our
    build was published.
    """
    with temp_sibling(target) as tmp:
        build(tmp)
        if replace:
            publish_replacing(tmp, target)
            return True
        return publish_new(tmp, target)


# ----------------------------------------------------------------------------- output paths
# Checked before any work, so that a run of hours never ends in "cannot write there" (issue 18).


def _check_ancestors(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder we may write into."""
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        if anc.is_symlink():  # a dangling link: nothing can be created under it
            break
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise RmtensionError(f"{option} {path}: {anc} is a file, so nothing can be written under it")
    if not anc.exists():
        raise RmtensionError(f"{option} {path}: {anc} does not exist and cannot be created")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise RmtensionError(f"{option} {path}: the folder {anc} is not writable")


def check_out_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` can be (or become) an output folder: not a file, not under a file, in a writable place."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise RmtensionError(f"{option} {p} is a file, but an output folder is wanted; choose another path")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise RmtensionError(f"{option} {p}: the folder is not writable")
        return p
    _check_ancestors(p, option)
    return p


def check_out_file(path: str | Path, option: str = "--out", replace: bool = True) -> Path:
    """``path`` can be written as a file: not an existing folder, not under a file, in a writable place.

    ``replace=False`` also refuses an existing file (commands with ``--force`` pass ``replace=args.force``):
    OUT may be anything (a config, a result of hours), and a typo must not destroy it."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise RmtensionError(f"{option} {p} is a folder, but an output file is wanted; give a file name")
    if p.exists() and not replace:
        raise RmtensionError(f"{option} {p} already exists; pass --force to replace it")
    _check_ancestors(p, option)
    return p
