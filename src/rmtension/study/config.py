"""The study config: a YAML file validated into dataclasses with messages that name the key.

A short file is enough: every section has defaults. Unknown keys, wrong types and missing files are
errors that say which key and why (``ablation.sets[2]: unknown set 'both'; known: own, shared, ...``),
because a typo in a config that runs for hours must fail in the first second.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rmtension.errors import RmtensionError
from rmtension.names import ABLATION_SETS, DTYPES, PAPER_SCORE_METHODS, SCORE_METHODS, SITES
from rmtension.training.config import OBJECTIVES, PRESETS, TrainConfig
from rmtension.validate import STUDY_FIELDS, TRAIN_FIELDS, check_value

NEURON_METHODS = SCORE_METHODS


@dataclass
class TrainingSection:
    """How every RM of the grid is trained."""

    preset: str = "cpu"
    """A training preset (paper, cpu)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields set on top of the preset (max_pairs, lr, max_length, ...)."""
    data: dict[str, str] = field(default_factory=dict)
    """Training source per objective, e.g. {helpful: hh-rlhf:helpful-base}; default hh-rlhf:<objective>."""
    report_to: str = "none"
    """none | tensorboard: log each RM's training to TensorBoard (``steps/train/<run>/rm.tensorboard``).
    Not part of the training step's key: logging does not change the RM."""


@dataclass
class EvaluationSection:
    """Benchmarks every RM is evaluated on."""

    benchmarks: list[str] = field(default_factory=lambda: ["rm-bench", "llmbar", "hh-heldout"])
    max_items: int | dict[str, int] | None = None
    """At most this many items per subset (a seeded, stable sample); None: all. A mapping
    {benchmark: N, default: N} sets it per benchmark."""
    batch_size: int = 16
    max_length: int | None = None
    dtype: str = "float32"
    grouping: str = "paper"
    """Which subsets enter the helpful/harmless group means (rmtension.bench.groups): "paper" (the
    paper's task table) or "all" (every subset); used by evaluation, ablation and the report."""
    formats: list[str] = field(default_factory=list)
    """Community formats written beside each RM's results.json (rmtension.evaluation.formats):
    rewardbench (rewardbench.json). Empty by default; the evaluation step's key changes only when set."""


@dataclass
class NeuronsSection:
    """How objective-oriented neurons are found."""

    data: str = "objective"
    """'objective': each RM's own training source (its training split); or any preference source."""
    max_pairs: int = 64
    methods: list[str] = field(default_factory=lambda: list(PAPER_SCORE_METHODS))
    site: str = "act"
    k: float = 10.0
    """Top k percent of all layers × neurons at once (the paper)."""
    per_layer: bool = False
    batch_size: int = 8
    max_length: int | None = 512
    seed: int = 0
    """Seed of the `random` method, mixed with each RM's name: every RM draws its own random set."""
    backbone_baseline: bool = True
    """Also score the untrained backbone (fresh seeded head) like an RM, per backbone × seed, on the mixed
    objective's data: its top-k% set is the row every RM's set is compared with (overlap ``backbone_baseline``)."""
    length_correlation: bool = True
    """Per selected set: Spearman correlation of the set's mean activation per text with the response length."""


# Keys of ``neurons`` that add steps of their own (controls, issue 11). They are left out of the neuron
# steps' parameters, so switching them on or off never changes the cache keys of the existing steps.
NEURON_CONTROL_KEYS = ("backbone_baseline", "length_correlation")


@dataclass
class CurvesSection:
    """Ablation curves over k (Figure 5)."""

    enabled: bool = True
    k: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 20.0, 30.0])
    methods: list[str] = field(default_factory=lambda: list(PAPER_SCORE_METHODS))
    benchmarks: list[str] = field(default_factory=lambda: ["hh-heldout"])
    max_items: int | None = 50


@dataclass
class AblationSection:
    """Which neuron sets are ablated, and on what."""

    enabled: bool = True
    sets: list[str] = field(default_factory=lambda: list(ABLATION_SETS))
    method: str = "magnitude"
    """Scoring method whose top-k sets are ablated in the tables."""
    benchmarks: list[str] | None = None
    """None: the evaluation benchmarks."""
    max_items: int | dict[str, int] | None = None
    """None: the evaluation's max_items (an int or a {benchmark: N, default: N} mapping)."""
    random_seed: int = 0
    random_per_set: bool = False
    """With the ``random`` set: also a size-matched random set for helpful-only and harmless-only in the
    mixed RM (beside the one for shared), so every ablated set has its own control in ``ablation_stats``.
    Off by default: switching it on re-runs the mixed ablations (it is then part of their parameters)."""
    curves: CurvesSection = field(default_factory=CurvesSection)


DIAL_SETS = ("shared", "helpful-only", "harmless-only")


@dataclass
class DialSection:
    """The tension dial (``rmtension dial``; issue 14): the mixed RM with a set of its neurons scaled by each
    factor, against the helpful and harmless RMs. Off by default: when off it adds no step and changes no key."""

    enabled: bool = False
    sets: list[str] = field(default_factory=lambda: ["shared"])
    """Which of the mixed RM's sets to scale: shared, helpful-only, harmless-only (as ``ablation.sets``)."""
    method: str | None = None
    """Scoring method of the sets; None: ``ablation.method``."""
    factors: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    benchmarks: list[str] = field(default_factory=lambda: ["hh-heldout"])
    max_items: int | dict[str, int] | None = None
    """None: the evaluation's max_items."""


@dataclass
class ReportSection:
    enabled: bool = True


@dataclass
class StudyConfig:
    """A grid of backbones × objectives × seeds, and what to do with each RM."""

    name: str = "study"
    backbones: list[str] = field(default_factory=lambda: ["smollm2-135m-instruct"])
    objectives: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    seeds: list[int] = field(default_factory=lambda: [0])
    data_dir: str | None = None
    """Local data directory; the CLI's --data-dir and $RMTENSION_DATA_DIR take over when unset."""
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    neurons: NeuronsSection = field(default_factory=NeuronsSection)
    ablation: AblationSection = field(default_factory=AblationSection)
    report: ReportSection = field(default_factory=ReportSection)
    dial: DialSection = field(default_factory=DialSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except RmtensionError as exc:
                errors.append(str(exc))
        raise RmtensionError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise RmtensionError(f"{where}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}, "
                                 f"got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
        if not isinstance(value, list):
            raise RmtensionError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RmtensionError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise RmtensionError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RmtensionError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RmtensionError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RmtensionError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise RmtensionError(f"{where}: unsupported type {_type_name(tp)}")


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise RmtensionError(f"{path}: unknown key; known keys{' of ' + where if where else ''}: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], path)
        if path in STUDY_FIELDS:  # ranges of numbers: one rule table shared with the CLI (rmtension.validate)
            check_value(STUDY_FIELDS[path], kwargs[key], path)
    return cls(**kwargs)


def _check_choice(where: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise RmtensionError(f"{where}: unknown value {value!r}; known: {', '.join(choices)}")


def validate(cfg: StudyConfig, base_dir: Path | None = None) -> StudyConfig:
    """Semantic checks the types can't express; file paths are resolved against ``base_dir``."""
    if not cfg.backbones:
        raise RmtensionError("backbones: give at least one backbone")
    if not cfg.seeds:
        raise RmtensionError("seeds: give at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise RmtensionError("seeds: repeated seed")
    for i, o in enumerate(cfg.objectives):
        _check_choice(f"objectives[{i}]", o, OBJECTIVES)
    _check_choice("training.preset", cfg.training.preset, list(PRESETS))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"backbone", "objective", "seed", "data_dir",
                                                                         "train_data", "preset", "report_to"}
    train_types = typing.get_type_hints(TrainConfig)
    for key, value in cfg.training.overrides.items():
        if key not in train_fields:
            raise RmtensionError(f"training.overrides.{key}: unknown training field; known: {', '.join(sorted(train_fields))}")
        cfg.training.overrides[key] = _coerce(value, train_types[key], f"training.overrides.{key}")
        if key in TRAIN_FIELDS:
            check_value(TRAIN_FIELDS[key], cfg.training.overrides[key], f"training.overrides.{key}")
    for key in cfg.training.data:
        _check_choice(f"training.data.{key}", key, OBJECTIVES)
    for i, m in enumerate(cfg.neurons.methods):
        _check_choice(f"neurons.methods[{i}]", m, NEURON_METHODS)
    _check_choice("neurons.site", cfg.neurons.site, SITES)
    for i, s in enumerate(cfg.ablation.sets):
        _check_choice(f"ablation.sets[{i}]", s, ABLATION_SETS)
    _check_choice("ablation.method", cfg.ablation.method, cfg.neurons.methods)
    if cfg.ablation.curves.enabled:  # switched-off curves keep their defaults whatever the neuron methods are
        for i, m in enumerate(cfg.ablation.curves.methods):
            _check_choice(f"ablation.curves.methods[{i}]", m, cfg.neurons.methods)
    for i, s in enumerate(cfg.dial.sets):
        _check_choice(f"dial.sets[{i}]", s, DIAL_SETS)
    if cfg.dial.method is not None:
        _check_choice("dial.method", cfg.dial.method, cfg.neurons.methods)
    if cfg.dial.enabled and not cfg.dial.factors:
        raise RmtensionError("dial.factors: give at least one factor")
    if len(set(cfg.dial.factors)) != len(cfg.dial.factors) or not all(math.isfinite(f) for f in cfg.dial.factors):
        raise RmtensionError(f"dial.factors: expected distinct finite numbers, got {cfg.dial.factors}")
    _check_choice("evaluation.dtype", cfg.evaluation.dtype, DTYPES)
    from rmtension.evaluation.formats import FORMATS, check_formats
    from rmtension.training.config import REPORT_TO

    _check_choice("training.report_to", cfg.training.report_to, REPORT_TO)
    for i, f in enumerate(cfg.evaluation.formats):
        _check_choice(f"evaluation.formats[{i}]", f, FORMATS.names())
    try:
        check_formats(cfg.evaluation.formats, cfg.evaluation.benchmarks)
    except RmtensionError as exc:
        raise RmtensionError(f"evaluation.formats: {str(exc).replace('--format ', '')}") from None
    from rmtension.bench.groups import GROUPINGS

    _check_choice("evaluation.grouping", cfg.evaluation.grouping, tuple(GROUPINGS))
    for where, value in (("evaluation.max_items", cfg.evaluation.max_items), ("ablation.max_items", cfg.ablation.max_items),
                         ("dial.max_items", cfg.dial.max_items)):
        if isinstance(value, dict):
            for key, n in value.items():
                if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    raise RmtensionError(f"{where}.{key}: expected a positive integer, got {n!r}")
    for where, names in (("evaluation.benchmarks", cfg.evaluation.benchmarks),
                         ("ablation.benchmarks", cfg.ablation.benchmarks or []),
                         ("ablation.curves.benchmarks", cfg.ablation.curves.benchmarks),
                         ("dial.benchmarks", cfg.dial.benchmarks)):
        for i, b in enumerate(names):
            names[i] = _check_benchmark(f"{where}[{i}]", b, base_dir)
    if cfg.data_dir is not None:
        p = _resolve(cfg.data_dir, base_dir)
        if not p.is_dir():
            raise RmtensionError(f"data_dir: {p} is not a folder")
        cfg.data_dir = str(p)
    return cfg


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else (base_dir / p)


def _check_benchmark(where: str, name: str, base_dir: Path | None) -> str:
    """A registered name stays as it is; a file becomes an absolute path."""
    from rmtension.bench.loaders import BENCHMARKS

    if name.split(":")[0] in BENCHMARKS:
        if ":" in name and not name.partition(":")[2].strip(" ,"):
            raise RmtensionError(f"{where}: {name!r} names no subset after ':'")
        return name
    p = _resolve(name, base_dir)
    if not p.is_file():
        raise RmtensionError(f"{where}: {name!r} is neither a registered benchmark ({', '.join(BENCHMARKS.names())}) "
                             f"nor an existing file")
    return str(p.resolve())


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise RmtensionError(f"{p}: study config not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RmtensionError(f"{p}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RmtensionError(f"{p}: cannot read study config: {exc}") from None
    except RecursionError:
        raise RmtensionError(f"{p}: nested too deeply to read") from None
    if raw is None:  # an empty file would silently run the default study for hours
        raise RmtensionError(f"{p}: the study config is empty; see configs/ for examples (at least `backbones:`)")
    return config_from_dict(raw, p.parent, source=str(p))


def config_from_dict(raw: Any, base_dir: Path | None = None, source: str = "config") -> StudyConfig:
    if not isinstance(raw, dict):
        raise RmtensionError(f"{source}: expected a mapping at the top level")
    try:
        cfg = _build(StudyConfig, raw, "")
        return validate(cfg, base_dir)
    except RmtensionError as exc:
        raise RmtensionError(f"{source}: {exc}") from None
