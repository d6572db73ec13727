"""Cached, resumable steps: each step's output lives in its own folder keyed by what produced it.

A step is (kind, name, params, dependencies, action). Its key is a hash of its kind, params and
its dependencies' keys, so changing a setting (or anything upstream of it) gives a new folder,
while an unchanged step is found complete and skipped. ``step.json`` is written last, atomically:
a folder without it is an interrupted step and is run again (training resumes from its own
checkpoints; other steps start over, they are short).

A cached step is not trusted blindly: ``step.json`` records the size and SHA-256 of every file the
step wrote (``outputs``) and a digest of each dependency's outputs as it was when this step read
them (``inputs``). Before reuse, ``changes`` compares sizes always, hashes of files under
``HASH_LIMIT`` always and of every file with ``full=True`` (``rmtension run --verify``), and the
input digests; a step that does not match is run again from an empty folder. Step folders written
before checksums were recorded have no ``outputs`` and are trusted as before (a study may hold
weeks of training).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rmtension.files import write_json_atomic

MARKER = "step.json"
HASH_LIMIT = 16 * 2**20  # files below this are hashed on every reuse; larger ones only with --verify
_CHUNK = 2**20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def output_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"size", "sha256"}}`` of every file under ``folder`` but the marker."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel == MARKER or not path.is_file():
            continue
        out[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return out


def manifest_digest(manifest: dict[str, Any]) -> str:
    """One hash for a whole manifest: what a dependent step records about its inputs."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _file_change(folder: Path, rel: str, want: dict[str, Any], full: bool) -> str | None:
    path = folder / rel
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size != want.get("size"):
        return f"size {size} bytes, recorded {want.get('size')}"
    if full or size < HASH_LIMIT:
        try:
            if file_sha256(path) != want.get("sha256"):
                return "content differs from the recorded SHA-256"
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"
    return None


@dataclass
class Step:
    kind: str
    name: str
    params: dict[str, Any]
    action: Callable[["Step"], dict[str, Any] | None]
    deps: list["Step"] = field(default_factory=list)
    cell: str | None = None  # the grid cell (backbone/objective/seed) a per-RM step belongs to
    keep_partial: bool = False  # training keeps an interrupted folder to resume from it
    root: Path = Path(".")

    @property
    def key(self) -> str:
        blob = json.dumps({"kind": self.kind, "params": self.params, "deps": [d.key for d in self.deps]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        safe = self.name.replace("/", "__").replace(" ", "_")
        return self.root / "steps" / self.kind / f"{safe}-{self.key}"

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    def _marker(self) -> dict[str, Any] | None:
        """The parsed ``step.json``, or None when absent or unreadable."""
        try:
            record = json.loads((self.folder / MARKER).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return None
        return record if isinstance(record, dict) else None

    def done(self) -> bool:
        """``step.json`` is there and belongs to this step's key (outputs are checked by ``changes``)."""
        record = self._marker()
        return record is not None and record.get("key") == self.key

    def outputs_digest(self) -> str | None:
        """The digest of the outputs this (finished) step recorded; None for a legacy or unfinished step."""
        record = self._marker()
        outputs = record.get("outputs") if record else None
        return manifest_digest(outputs) if isinstance(outputs, dict) else None

    def changes(self, full: bool = False) -> str | None:
        """Why the finished step's outputs cannot be reused ("file: reason"), or None when they can.

        Checks each recorded file's size, its SHA-256 when it is small (or ``full``), and that every
        dependency still holds the outputs this step was computed from.
        """
        record = self._marker()
        if record is None or record.get("key") != self.key:
            return f"{MARKER}: missing or unreadable"
        outputs = record.get("outputs")
        if outputs is None:
            return None  # written before checksums were recorded: nothing to compare with
        if not isinstance(outputs, dict):
            return f"{MARKER}: outputs record is malformed"
        for rel, want in sorted(outputs.items()):
            problem = _file_change(self.folder, rel, want if isinstance(want, dict) else {}, full)
            if problem:
                return f"{rel}: {problem}"
        inputs = record.get("inputs") or {}
        for dep in self.deps:
            recorded = inputs.get(dep.folder.name)
            if recorded is not None and recorded != dep.outputs_digest():
                return f"input {dep.label}: its outputs changed since this step read them"
        return None

    def outcome(self) -> dict[str, Any]:
        """What the finished step recorded about itself."""
        record = self._marker()
        if record is None:
            from rmtension.errors import RmtensionError

            raise RmtensionError(f"{self.folder / MARKER} is missing or not valid JSON; run the study again")
        return record.get("outcome") or {}

    def run(self, fresh: bool = False) -> dict[str, Any]:
        """Run the action in the step's folder and record what it wrote.

        An interrupted folder is emptied first unless the step resumes from it (``keep_partial``);
        ``fresh`` empties it in any case (outputs that failed verification are never resumed from).
        """
        if self.folder.exists() and (fresh or not self.keep_partial):
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MARKER).unlink(missing_ok=True)
        t0 = time.time()
        outcome = self.action(self) or {}
        write_json_atomic(self.folder / MARKER, {
            "key": self.key, "kind": self.kind, "name": self.name, "params": self.params,
            "deps": [d.folder.name for d in self.deps], "seconds": round(time.time() - t0, 2), "outcome": outcome,
            "outputs": output_manifest(self.folder),
            "inputs": {d.folder.name: d.outputs_digest() for d in self.deps},
        })
        return outcome
