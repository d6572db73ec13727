"""Options and output helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rmtension.errors import RmtensionError


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="local data directory laid out like ../shared/data (default: $RMTENSION_DATA_DIR); "
        "named sources are looked up there first, then on the Hugging Face hub",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a readable summary")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


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
