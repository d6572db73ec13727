"""A study step's key covers what its action reads, by construction (issue 16).

A step's key hashes its params and its dependencies' keys (study/steps.py). When an action read the whole
study config, a setting it used but its params lacked would change a result without changing the key, and
a cached step computed under the old setting would be reused. So an action reads only its step's params
(and its dependencies' params and outputs): these tests check that no action holds the config at all, and
that training runs exactly the config its params describe.
"""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Iterator

import pytest

from rmtension.study import config as study_config
from rmtension.study.config import load_study_config
from rmtension.study.pipeline import _train_config, build_plan
from rmtension.study.presets import resolve_config
from rmtension.study.steps import Step
from rmtension.training.config import TrainConfig

BUILTIN = sorted(k for k in json.loads((Path(__file__).parent / "data" / "step_keys.json").read_text())
                 if not k.startswith("_"))
CONFIG_TYPES = tuple(t for t in vars(study_config).values()
                     if isinstance(t, type) and dataclasses.is_dataclass(t) and t.__module__ == study_config.__name__)


def _held(fn: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every value an action holds: a function's closure and default arguments (following nested functions),
    or a dataclass action's fields (not other steps: each step's action is checked on its own)."""
    seen = set() if seen is None else seen
    if id(fn) in seen:
        return
    seen.add(id(fn))
    if dataclasses.is_dataclass(fn):
        values = [getattr(fn, f.name) for f in dataclasses.fields(fn)]
    else:
        values = [c.cell_contents for c in (fn.__closure__ or ())] + list(fn.__defaults__ or ())
    for value in values:
        yield value
        if isinstance(value, types.FunctionType):
            yield from _held(value, seen)


def _fields(tcfg: TrainConfig) -> dict[str, Any]:
    """A TrainConfig as a train step's params: all but where the data lies and where logs go."""
    return {k: v for k, v in tcfg.to_dict().items() if k not in ("data_dir", "report_to")}


def test_config_types_are_found():
    assert {"StudyConfig", "EvaluationSection", "NeuronsSection", "AblationSection"} <= {t.__name__ for t in CONFIG_TYPES}


@pytest.mark.parametrize("name", BUILTIN)
def test_no_action_holds_the_study_config(name: str, tmp_path: Path) -> None:
    cfg = load_study_config(resolve_config(name))
    for st in build_plan(cfg, tmp_path, data_dir=str(tmp_path / "data")).steps:
        for value in _held(st.action):
            assert not isinstance(value, CONFIG_TYPES), (st.label, type(value).__name__)
            if isinstance(value, TrainConfig):  # a train step's config (Ray reads it), built from its params alone
                assert st.kind == "train" and _fields(value) == st.params, st.label
            assert not isinstance(value, Step) or any(value is d for d in st.deps), (st.label, value.label)


def test_optional_dial_steps_do_not_hold_the_config_either(tmp_path: Path) -> None:
    from rmtension.study.config import config_from_dict

    plan = build_plan(config_from_dict({"backbones": ["tiny-gpt2"], "dial": {"enabled": True}}), tmp_path)
    assert plan.dial
    for st in plan.dial.values():
        assert not any(isinstance(v, CONFIG_TYPES) for v in _held(st.action)), st.label


def test_training_runs_the_config_its_params_describe(tmp_path: Path, monkeypatch) -> None:
    import rmtension.training.trainer as trainer

    ran: list[TrainConfig] = []
    monkeypatch.setattr(trainer, "train", lambda tcfg, out, resume: ran.append(tcfg) or {})
    cfg = load_study_config(resolve_config("tiny"))
    cfg.training.report_to = "tensorboard"  # not part of the key, handed to the action as it is
    data = tmp_path / "data"
    data.mkdir()
    plan = build_plan(cfg, tmp_path, data_dir=str(data))
    for (b, o, s), st in plan.train.items():
        st.action(st)
        assert ran[-1] == _train_config(cfg, b, o, s, str(data.resolve()))
    assert ran and ran[-1].report_to == "tensorboard" and ran[-1].data_dir == str(data.resolve())
