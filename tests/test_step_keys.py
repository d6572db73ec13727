"""Step keys of the built-in studies must not drift.

A study folder is reused step by step through these keys (study/steps.py): a refactor that changes what a
step's key hashes, even to an equal-meaning value, silently throws away hours of cached training (the
evidence run of issue 13 runs in several sittings across code changes). tests/data/step_keys.json holds the
keys of every step of the built-in configs as computed at commit a477a0c; a deliberate key change updates it
and says so in the commit message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmtension.study.config import load_study_config
from rmtension.study.pipeline import build_plan
from rmtension.study.presets import resolve_config

RECORDED = json.loads((Path(__file__).parent / "data" / "step_keys.json").read_text())


@pytest.mark.parametrize("name", sorted(k for k in RECORDED if not k.startswith("_")))
def test_builtin_step_keys_unchanged(name: str, tmp_path: Path) -> None:
    cfg = load_study_config(resolve_config(name))
    keys = {s.label: s.key for s in build_plan(cfg, tmp_path, data_dir=str(tmp_path / "data")).steps}
    assert keys == RECORDED[name]
