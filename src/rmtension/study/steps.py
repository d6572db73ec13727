"""Cached, resumable steps: each step's output lives in its own folder keyed by what produced it.

A step is (kind, name, params, dependencies, action). Its key is a hash of its kind, params and
its dependencies' keys, so changing a setting (or anything upstream of it) gives a new folder,
while an unchanged step is found complete and skipped. ``step.json`` is written last, atomically:
a folder without it is an interrupted step and is run again (training resumes from its own
checkpoints; other steps start over, they are short).
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

    def done(self) -> bool:
        marker = self.folder / MARKER
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("key") == self.key
        except (OSError, json.JSONDecodeError):
            return False

    def outcome(self) -> dict[str, Any]:
        """What the finished step recorded about itself."""
        return json.loads((self.folder / MARKER).read_text()).get("outcome") or {}

    def run(self) -> dict[str, Any]:
        if self.folder.exists() and not self.keep_partial:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        outcome = self.action(self) or {}
        write_json_atomic(self.folder / MARKER, {"key": self.key, "kind": self.kind, "name": self.name,
                                                 "params": self.params, "deps": [d.folder.name for d in self.deps],
                                                 "seconds": round(time.time() - t0, 2), "outcome": outcome})
        return outcome
