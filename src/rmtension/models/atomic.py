"""Atomic creation and replacement of model folders.

A model folder is only usable when every file in it is complete, so it is never written in
place: it is built in a temporary sibling (same file system, so the final rename is atomic) and
moved to its name with one ``os.replace``. An interrupted build leaves at most a hidden
``.<name>.tmp-*`` sibling, never a half-written folder under the real name, and a reader either
sees the old folder or the new one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rmtension.files import current_umask

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
