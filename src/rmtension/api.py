"""The Python API: the stages a researcher calls from a notebook, one function each.

    train → load_rm → evaluate → neuron_stats → select_neurons → ablate (a ``with`` block) → run_study

These are thin, documented entry points over the library's modules (the CLI calls the same
modules); they take plain values (paths, names, numbers), return small objects with short reprs,
and import torch and transformers only when called, so ``import rmtension`` stays light.
``docs/API.md`` walks through them; ``examples/notebook_walkthrough.py`` runs them end to end on a
tiny model.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:  # only for annotations: importing them would pull in torch
    from rmtension.ablation.ablate import Ablation
    from rmtension.evaluation.evaluate import EvalResult
    from rmtension.neurons.sets import NeuronSet
    from rmtension.neurons.stats import NeuronStats


def _interval_text(ci: Any) -> str:
    if isinstance(ci, dict) and ci.get("low") is not None:
        return f" [{ci['low']:.3f}, {ci['high']:.3f}]"
    return ""


# ----------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainResult:
    """A trained RM folder and its record (``rmtension.json``)."""

    path: Path
    record: dict[str, Any] = field(repr=False)

    @property
    def heldout_accuracy(self) -> float | None:
        return (self.record.get("metrics") or {}).get("heldout_accuracy")

    def load(self, dtype: str = "float32") -> "RewardModel":
        """The trained RM, loaded (see :func:`load_rm`)."""
        return load_rm(self.path, dtype=dtype)

    def __repr__(self) -> str:
        m = self.record.get("metrics") or {}
        acc = m.get("heldout_accuracy")
        acc_text = "n/a" if acc is None else f"{acc:.3f}{_interval_text(m.get('heldout_accuracy_ci95'))}"
        steps = (self.record.get("trainer") or {}).get("global_steps")
        return (f"TrainResult(path='{self.path}', backbone={self.record.get('backbone')!r}, "
                f"objective={self.record.get('objective')!r}, seed={self.record.get('seed')}, steps={steps}, "
                f"heldout_accuracy={acc_text})")


def train(out: str | Path, backbone: str = "smollm2-135m-instruct", objective: str = "helpful", *,
          preset: str = "cpu", resume: bool = False, **overrides: Any) -> TrainResult:
    """Train one Bradley-Terry RM into the new folder ``out`` (TRL ``RewardTrainer``).

    ``preset`` (``cpu`` or ``paper``) sets every training field; ``overrides`` are
    :class:`~rmtension.training.config.TrainConfig` fields on top (``max_pairs``, ``lr``, ``max_length``,
    ``seed``, ``data_dir``, ``report_to="tensorboard"``, ...). The folder is a portable RM folder: plain
    transformers loads it, its chat template renders the training text, ``README.md`` is its card.

    Example::

        >>> import rmtension
        >>> run = rmtension.train("rms/helpful", "tiny-llama", "helpful", max_pairs=32,
        ...                       data_dir="../shared/data")                       # doctest: +SKIP
        >>> run                                                                    # doctest: +SKIP
        TrainResult(path='rms/helpful', backbone='tiny-llama', objective='helpful', seed=0, steps=4, ...)
    """
    from rmtension.training.config import make_config
    from rmtension.training.trainer import train as train_rm

    fields = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}  # the record is JSON
    cfg = make_config(preset, backbone=backbone, objective=objective, **fields)
    record = train_rm(cfg, out, resume=resume)
    return TrainResult(Path(out), record)


# ----------------------------------------------------------------------------- load


@dataclass(frozen=True, eq=False)
class RewardModel:
    """A loaded RM: the transformers ``model`` and ``tokenizer``, and its ``record`` (``rmtension.json``,
    {} for a folder from elsewhere). ``template`` and ``max_length`` are what it is scored with."""

    path: Path
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    record: dict[str, Any] = field(repr=False)
    template: str = "hh"
    max_length: int | None = None

    def score(self, prompt: str, responses: str | Sequence[str], batch_size: int = 16) -> float | list[float]:
        """The RM's score of each response to ``prompt`` (a float for one response).

        Example::

            >>> rm.score("How do I boil an egg?", ["Boil it for 8 minutes.", "No."])   # doctest: +SKIP
            [0.41, -0.12]
        """
        from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
        from rmtension.models.formatting import format_for_rm

        single = isinstance(responses, str)
        items = [responses] if single else list(responses)
        texts = [format_for_rm(prompt, r, self.tokenizer, self.template) for r in items]
        scorer = RewardScorer(self.model, self.tokenizer, ScorerConfig(batch_size=batch_size,
                                                                       max_length=self.max_length, progress=False))
        scores = [float(s) for s in scorer.score(texts)]
        return scores[0] if single else scores

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        size = f"{params / 1e6:.1f}M" if params >= 1e5 else str(params)
        return (f"RewardModel(path='{self.path}', backbone={self.record.get('backbone')!r}, "
                f"objective={self.record.get('objective')!r}, template={self.template!r}, "
                f"max_length={self.max_length}, parameters={size})")


def load_rm(path: str | Path, dtype: str = "float32", template: str | None = None,
            max_length: int | None = None) -> RewardModel:
    """Load the RM folder ``path`` (from :func:`train`, or any sequence-classification model with one output).

    ``template`` and ``max_length`` default to the RM's own (its record): the text template it was
    trained on and its training max length. A folder without a record gets template ``hh`` and a
    logged note (``template="chat"`` uses the tokenizer's own chat template).

    Example::

        >>> rm = rmtension.load_rm("rms/helpful")                                   # doctest: +SKIP
        >>> rm                                                                      # doctest: +SKIP
        RewardModel(path='rms/helpful', backbone='tiny-llama', objective='helpful', template='hh', ...)
        >>> rm.model, rm.tokenizer, rm.record["seed"]                               # doctest: +SKIP
    """
    import logging

    from rmtension.models.portable import scoring_defaults
    from rmtension.models.reward_model import load_reward_model

    model, tokenizer, info = load_reward_model(path, dtype=dtype)
    model.eval()
    chosen = scoring_defaults(path, info, tokenizer, template, max_length)
    for note in chosen.notes:  # a foreign folder's template is a guess: say so where a notebook shows it
        logging.getLogger("rmtension").log(logging.WARNING if chosen.foreign else logging.INFO, note)
    record = {k: v for k, v in info.items() if k != "path"}
    return RewardModel(Path(path), model, tokenizer, record, chosen.template, chosen.max_length)


def _as_rm(rm: "RewardModel | str | Path") -> RewardModel:
    return rm if isinstance(rm, RewardModel) else load_rm(rm)


# ----------------------------------------------------------------------------- evaluate


def evaluate(rm: "RewardModel | str | Path", benchmarks: str | Sequence[str], *, out: str | Path | None = None,
             max_items: int | dict[str, int] | None = None, sample_seed: int = 0, data_dir: str | Path | None = None,
             batch_size: int = 16, dtype: str = "float32", device: str = "auto", grouping: str = "paper",
             formats: Sequence[str] = ()) -> "EvalResult":
    """Score ``rm`` (a :class:`RewardModel` or a folder) on benchmarks, as ``rmtension eval`` does.

    ``benchmarks``: registered names (``rm-bench``, ``llmbar``, ``rewardbench``, ``hh-heldout``, optionally
    ``name:subset,subset``) or generic benchmark files. The RM is scored with its template and max
    length (see :func:`load_rm`), under any ablation active on its model. With ``out``, writes
    ``results.json`` and ``items.jsonl`` there (and ``formats``, e.g. ``("rewardbench",)``).

    Example::

        >>> res = rmtension.evaluate(rm, ["llmbar"], max_items=20, data_dir="../shared/data")  # doctest: +SKIP
        >>> res                                                                              # doctest: +SKIP
        EvalResult(benchmarks=['llmbar'], items=100, groups={'helpful': 0.52, 'harmless': None})
        >>> res.results["benchmarks"]["llmbar"]["subsets"]["llmbar-natural"]["score"]       # doctest: +SKIP
    """
    from rmtension.bench.loaders import load_benchmark, rm_heldout_split, subsample
    from rmtension.files import check_out_dir
    from rmtension.evaluation.evaluate import evaluate as evaluate_rm
    from rmtension.evaluation.evaluate import write_eval
    from rmtension.evaluation.formats import check_formats, model_name, rewardbench_chat_template, write_formats
    from rmtension.evaluation.scorer import ScorerConfig

    names = [benchmarks] if isinstance(benchmarks, str) else list(benchmarks)
    check_formats(list(formats), names)
    if out is not None:
        check_out_dir(out)
    loaded = _as_rm(rm)
    split = rm_heldout_split(loaded.path, names)
    benches = [subsample(load_benchmark(n, data_dir, split), max_items, sample_seed) for n in names]
    config = ScorerConfig(batch_size=batch_size, max_length=loaded.max_length, dtype=dtype, device=device,
                          progress=False)
    result = evaluate_rm(loaded.model, loaded.tokenizer, benches, template=loaded.template, scorer_config=config,
                         grouping=grouping)
    result.results["rm"] = {"path": str(loaded.path.resolve()), "template": loaded.template,
                            **{k: loaded.record.get(k) for k in ("backbone", "objective", "seed") if k in loaded.record}}
    if out is not None:
        write_eval(out, result)
        write_formats(out, list(formats), result.results,
                      {"model": model_name(loaded.path),
                       "chat_template": rewardbench_chat_template(loaded.tokenizer, loaded.template)})
    return result


# ----------------------------------------------------------------------------- neurons


def neuron_stats(rm: "RewardModel | str | Path", data: str, *, max_pairs: int | None = 64, split: str = "all",
                 site: str = "act", with_change: bool = False, data_dir: str | Path | None = None,
                 batch_size: int = 8, max_length: int | None = None, dtype: str = "float32",
                 sample_seed: int = 0, with_attribution: bool = False, attr_tokens: str = "response",
                 ig_steps: int = 0) -> "NeuronStats":
    """Per-neuron activation statistics of the RM's MLPs over the pairs of a preference source.

    ``data``: a preference source (``hh-rlhf:helpful``, ``hh-rlhf:harmless-base``, a file); ``split``:
    ``all``, ``train`` or ``heldout`` (the RM's own prompt-hash split); ``with_change`` also records the
    untrained base model (for the ``change`` score); ``with_attribution`` also runs the gradient pass of
    the ``attribution`` / ``attribution-abs`` scores (``attr_tokens``: response or all; ``ig_steps``:
    integrated-gradient steps, 0 = plain activation × gradient; see :mod:`rmtension.neurons.attribution`).
    The RM is read from its folder. Scores and selection come from :func:`select_neurons`.

    Example::

        >>> stats = rmtension.neuron_stats("rms/helpful", "hh-rlhf:helpful", max_pairs=16,
        ...                                data_dir="../shared/data")               # doctest: +SKIP
        >>> stats                                                                   # doctest: +SKIP
        NeuronStats(site='act', 2 layers × 64 neurons, groups=['chosen', 'rejected'], pairs=16, ...)
    """
    from rmtension.neurons.pipeline import ScoreRequest, score_rm

    path = rm.path if isinstance(rm, RewardModel) else Path(rm)
    req = ScoreRequest(rm=str(path), data=data, method="magnitude", site=site,
                       data_dir=None if data_dir is None else str(data_dir), max_pairs=max_pairs, split=split,
                       sample_seed=sample_seed, batch_size=batch_size, max_length=max_length, dtype=dtype,
                       with_change=with_change, with_attribution=with_attribution, attr_tokens=attr_tokens,
                       ig_steps=ig_steps)
    stats, _scores = score_rm(req)
    return stats


def select_neurons(stats: "NeuronStats | Any", k: float = 10.0, *, method: str = "magnitude",
                   per_layer: bool = False, pool: str = "group-mean", seed: int = 0,
                   rule: str = "count") -> "NeuronSet":
    """The top ``k`` percent of neurons by ``method`` (``magnitude``, ``mean-abs``, ``rms``, ``prob``,
    ``change``, ``random``, ``attribution``, ``attribution-abs``), over all layers at once (the paper) or
    ``per_layer``.

    ``stats``: a :class:`~rmtension.neurons.stats.NeuronStats` from :func:`neuron_stats`, or a
    (layers, neurons) array of scores. Returns a :class:`~rmtension.neurons.sets.NeuronSet` (save it
    with ``rmtension.neurons.setfile.save_set``; ``rmtension eval --ablate`` reads that file).

    Example::

        >>> neurons = rmtension.select_neurons(stats, k=10)                         # doctest: +SKIP
        >>> neurons                                                                 # doctest: +SKIP
        NeuronSet(12 of 128 neurons in 2 layers × 64, method='magnitude', site='act', k=10.0)
    """
    import numpy as np

    from rmtension.neurons.scores import compute_scores
    from rmtension.neurons.sets import select_top
    from rmtension.neurons.stats import NeuronStats

    if isinstance(stats, NeuronStats):
        scores = compute_scores(stats, method, pool, seed)
        meta = {key: stats.meta.get(key) for key in ("rm", "data", "backbone", "objective")}
        meta.update({"method": method, "pool": pool, "site": stats.site, "seed": seed if method == "random" else None})
    else:
        scores, meta = np.asarray(stats, dtype=np.float64), {"method": method}
    return select_top(scores, k, per_layer=per_layer, rule=rule, meta=meta)


@contextmanager
def ablate(rm: "RewardModel | Any", neurons: "NeuronSet | str | Path", mode: str = "zero", *,
           factor: float | None = None, means: Any = None) -> Iterator["Ablation"]:
    """Ablate ``neurons`` in every forward pass of the RM inside the ``with`` block; the model is
    restored on exit (also after an error).

    ``rm``: a :class:`RewardModel` or a bare transformers model; ``neurons``: a NeuronSet or a set
    file; ``mode``: ``zero`` (the paper), ``mean`` (``means``: a statistics file or an array) or
    ``scale`` (``factor``).

    Example::

        >>> with rmtension.ablate(rm, neurons) as ab:                               # doctest: +SKIP
        ...     ablated = rmtension.evaluate(rm, ["llmbar"], max_items=20, data_dir="../shared/data")
        >>> ab                                                                      # doctest: +SKIP
        Ablation(name='neuron-set', 12 neurons in 2 layers, mode='zero', site='act')
    """
    from rmtension.ablation.ablate import ablate as ablate_model
    from rmtension.neurons.setfile import load_set

    model = rm.model if isinstance(rm, RewardModel) else rm
    chosen = load_set(neurons) if isinstance(neurons, (str, Path)) else neurons
    with ablate_model(model, chosen, mode, factor=factor, means=means) as applied:
        yield applied


# ----------------------------------------------------------------------------- study


@dataclass(frozen=True)
class StudyResult:
    """A finished study folder: ``summary.json``, its flat ``summary.csv``, the report (when built)."""

    out: Path
    ran: int
    cached: int
    report: Path | None = None

    @property
    def summary_path(self) -> Path:
        return self.out / "summary.json"

    def summary(self) -> dict[str, Any]:
        """The parsed ``summary.json`` (docs/STUDY_FORMAT.md)."""
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    def table(self) -> Any:
        """Every run × task × metric as a pandas DataFrame (``summary.csv``; needs pandas)."""
        import pandas as pd

        return pd.read_csv(self.out / "summary.csv")

    def __repr__(self) -> str:
        report = f", report='{self.report}'" if self.report else ""
        return f"StudyResult(out='{self.out}', steps_run={self.ran}, steps_cached={self.cached}{report})"


def run_study(config: str | Path | dict[str, Any], out: str | Path, *, data_dir: str | Path | None = None,
              report: bool | None = None, verbose: bool = True) -> StudyResult:
    """Run (or resume) a whole study: a YAML config file, the name of a built-in one (``"tiny"``, ``"paper"``,
    ...: ``rmtension.study.presets``) or the same as a dict (docs/STUDY_FORMAT.md, configs/). Finished steps are reused; ``summary.json``, ``summary.csv`` and the report are written
    to ``out``. ``report`` defaults to the config's ``report.enabled``.

    Example::

        >>> study = rmtension.run_study({"backbones": ["tiny-llama"], "objectives": ["helpful"],
        ...                              "training": {"overrides": {"max_pairs": 16}},
        ...                              "evaluation": {"benchmarks": ["llmbar"], "max_items": 10}},
        ...                             "study-out", data_dir="../shared/data")     # doctest: +SKIP
        >>> study.table().query("metric == 'score'")                                # doctest: +SKIP
    """
    import yaml

    from rmtension.files import check_out_dir, write_atomic
    from rmtension.study.config import config_from_dict, load_study_config
    from rmtension.study.presets import resolve_config
    from rmtension.study.lock import study_lock
    from rmtension.study.pipeline import build_plan, execute, write_summary

    if isinstance(config, dict):
        cfg = config_from_dict(config, source="config")
        text = yaml.safe_dump(config, sort_keys=False).encode()
    else:
        path = resolve_config(str(config))
        cfg = load_study_config(path)
        text = path.read_bytes()
    root = check_out_dir(out)
    plan = build_plan(cfg, root, None if data_dir is None else str(data_dir))
    build = cfg.report.enabled if report is None else report
    with study_lock(root, None, command="rmtension.run_study"):
        write_atomic(root / "config.yaml", lambda fh: fh.write(text), binary=True)
        counts = execute(plan, None, echo=print if verbose else (lambda s: None))
        write_summary(plan)
        report_path = None
        if build:
            from rmtension.report import build_report

            report_path = build_report(root)
    return StudyResult(Path(root), counts["ran"], counts["cached"], report_path)


__all__ = ["RewardModel", "StudyResult", "TrainResult", "ablate", "evaluate", "load_rm", "neuron_stats",
           "run_study", "select_neurons", "train"]
