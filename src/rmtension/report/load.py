"""Read and check ``summary.json`` (docs/STUDY_FORMAT.md), the report's only input.

Why check up front: the report is the last step of a long study, and a truncated or hand-edited
summary should give one clear line naming the file and the bad entry, not a ``KeyError`` from
deep inside a figure function. Only the keys the report needs are required; unknown keys are
ignored so the summary can grow without breaking old reports. A missing list is treated as empty
(the section then says it was not run), a list of the wrong type is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rmtension.errors import InputError, RmtensionError

Entry = Mapping[str, Any]

SUMMARY_FILE = "summary.json"

# Keys every entry of a list must have for the report to use it.
REQUIRED: dict[str, tuple[str, ...]] = {
    "runs": ("backbone", "objective", "seed"),
    "retention": ("backbone", "seed", "tasks"),
    "calibration": ("backbone", "seed", "single", "group"),
    "neurons": ("backbone", "objective", "seed", "method"),
    "overlap": ("backbone", "seed", "method"),
    "neurons_seed_mean": ("backbone", "objective", "method"),
    "overlap_seed_mean": ("backbone", "method"),
    "ablation": ("backbone", "seed", "rm_objective", "set", "method", "benchmarks"),
    "curves": ("backbone", "seed", "rm_objective", "method", "bench", "points"),
    # issue 11 (controls): intervals over items × seeds, RM-vs-RM contrasts, neuron–length, ablation statistics
    "pooled": ("backbone", "objective", "task"),
    "contrasts": ("backbone", "task", "a", "b"),
    "neuron_length": ("backbone", "objective"),
    "ablation_stats": ("backbone", "rm_objective", "set", "task"),
    "dial": ("backbone", "seed", "set", "dial"),  # issue 14: the tension dial (optional study section)
}
SECTIONS = tuple(REQUIRED)


@dataclass
class Summary:
    """The parsed summary: the ``study`` header and one list of entries per section."""

    path: Path
    study: dict[str, Any]
    lists: dict[str, list[Entry]]

    def __getitem__(self, key: str) -> list[Entry]:
        return self.lists[key]

    @property
    def name(self) -> str:
        return str(self.study.get("name") or self.path.parent.name)


def summary_path(study_dir: str | Path) -> Path:
    return Path(study_dir) / SUMMARY_FILE


def load_summary(study_dir: str | Path) -> Summary:
    """Parse ``<study_dir>/summary.json``; raise a one-line :class:`RmtensionError` if it is unusable."""
    d = Path(study_dir)
    if not d.is_dir():
        raise RmtensionError(f"{d}: no such study folder")
    path = summary_path(d)
    if not path.is_file():
        raise RmtensionError(
            f"{path}: not found; a study writes it at the end of `rmtension run CONFIG.yaml --out {d}`")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise InputError(path, "not valid JSON: nested too deeply") from None
    return parse_summary(data, path)


def parse_summary(data: Any, path: Path) -> Summary:
    """Check the structure of an already-parsed summary (see the module docstring)."""
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object at the top, got {type(data).__name__}")
    study = data.get("study", {})
    if not isinstance(study, dict):
        raise InputError(path, f"'study' must be an object, got {type(study).__name__}")
    if not any(k in data for k in ("study",) + SECTIONS):
        raise InputError(path, "not a study summary: none of the keys 'study', " + ", ".join(repr(s) for s in SECTIONS))
    lists: dict[str, list[Entry]] = {}
    for key, required in REQUIRED.items():
        value = data.get(key)
        if value is None:
            lists[key] = []
            continue
        if not isinstance(value, list):
            raise InputError(path, f"'{key}' must be a list, got {type(value).__name__}")
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise InputError(path, f"{key}[{i}] must be an object, got {type(entry).__name__}")
            missing = [k for k in required if k not in entry]
            if missing:
                raise InputError(path, f"{key}[{i}] lacks {', '.join(repr(m) for m in missing)}")
        lists[key] = value
    return Summary(path=path, study=study, lists=lists)
