"""The study as a graph of cached steps over backbones × objectives × seeds.

Per grid cell (one RM):   train → eval, train → neurons → own-ablation, curves, neuron-length
Per backbone × seed:       neurons(helpful, harmless) → mixed-ablation (shared / helpful-only /
                           harmless-only / random in the mixed RM); eval ×3 → compare (retention,
                           calibration); neurons-backbone (the untrained backbone scored like an RM)
                           → neuron-length; neurons ×3 (+ neurons-backbone) → overlap
At the end:                summary.json (gathered from the finished steps) → report

``--cell`` runs one cell's steps, so independent cells can run as separate jobs (``rmtension plan
--jobs``); a later plain ``run`` finds them complete and only gathers.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rmtension.errors import RmtensionError
from rmtension.files import write_json_atomic
from rmtension.study.config import StudyConfig
from rmtension.study.gather import STUDY_RETENTION_UNIT
from rmtension.study.steps import Step

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
# Neuron scores of the study: chosen and rejected texts scored apart, then averaged — the paper's
# (chosen + rejected) / 2 (rmtension.neurons.scores). Part of the neuron steps' key, so folders
# scored under the earlier pooled definition are not reused.
POOL = "group-mean"


def cell_id(backbone: str, objective: str, seed: int) -> str:
    return f"{backbone}/{objective}/{seed}"


def _safe(backbone: str) -> str:
    return backbone.replace("/", "_").replace(":", "_")


@dataclass
class Plan:
    """All steps of a study in dependency order, with lookups by role."""

    cfg: StudyConfig
    root: Path
    steps: list[Step] = field(default_factory=list)
    train: dict[tuple[str, str, int], Step] = field(default_factory=dict)
    eval: dict[tuple[str, str, int], Step] = field(default_factory=dict)
    neurons: dict[tuple[str, str, int], Step] = field(default_factory=dict)
    own_ablation: dict[tuple[str, str, int], Step] = field(default_factory=dict)
    curves: dict[tuple[str, str, int], Step] = field(default_factory=dict)
    mixed_ablation: dict[tuple[str, int], Step] = field(default_factory=dict)
    compare: dict[tuple[str, int], Step] = field(default_factory=dict)
    overlap: dict[tuple[str, int], Step] = field(default_factory=dict)
    backbone: dict[tuple[str, int], Step] = field(default_factory=dict)  # neurons-backbone (issue 11)
    neuron_length: dict[tuple[str, str, int], Step] = field(default_factory=dict)  # objective "backbone" included
    dial: dict[tuple[str, int], Step] = field(default_factory=dict)  # optional tension dial (study/dial_steps.py)

    def add(self, step: Step) -> Step:
        step.root = self.root
        self.steps.append(step)
        return step

    def cells(self) -> list[str]:
        return [cell_id(b, o, s) for (b, o, s) in self.train]


# ----------------------------------------------------------------------------- helpers


def _rm_dir(train_step: Step) -> Path:
    return train_step.folder / "rm"


def _limit(max_items: int | dict[str, int] | None, name: str) -> int | dict[str | None, int | None] | None:
    """Items per subset for one benchmark: an int for all, or {benchmark: N, benchmark/subset: N, default: N}.

    A ``benchmark/subset`` key caps one subset (e.g. more harmless-base items of hh-heldout, whose harmless
    group has one subset against the helpful group's three, so both groups get intervals of equal width).
    The result is what :func:`rmtension.bench.loaders.subsample` takes: an int, or {subset: N, None: N}.
    """
    if not isinstance(max_items, dict):
        return max_items
    whole = max_items.get(name, max_items.get("default"))
    per_subset = {key.split("/", 1)[1]: n for key, n in max_items.items() if key.startswith(f"{name}/")}
    return {**per_subset, None: whole} if per_subset else whole


def _load_benches(names: list[str], max_items: int | dict[str, int] | None, data_dir: str | None, rm_dir: Path):
    """The benchmarks for one RM; hh-heldout is carved with that RM's recorded training split."""
    from rmtension.bench.loaders import load_benchmark, rm_heldout_split, subsample

    split = rm_heldout_split(str(rm_dir), names)
    return [subsample(load_benchmark(n, data_dir, split), _limit(max_items, n)) for n in names]


def _scorer_config(ev: dict[str, Any]):
    """The scorer settings of an eval step's params (ablation and curve steps carry those params as ``eval``)."""
    from rmtension.evaluation.scorer import ScorerConfig

    return ScorerConfig(batch_size=ev["batch_size"], max_length=ev["max_length"], dtype=ev["dtype"], progress=False)


def _train_config(cfg: StudyConfig, backbone: str, objective: str, seed: int, data_dir: str | None):
    from rmtension.training.config import make_config

    overrides = dict(cfg.training.overrides)
    overrides.update(backbone=backbone, objective=objective, seed=seed, data_dir=data_dir,
                     report_to=cfg.training.report_to)
    if objective in cfg.training.data:
        overrides["train_data"] = cfg.training.data[objective]
    return make_config(cfg.training.preset, **overrides)


def _neuron_source(cfg: StudyConfig, objective: str) -> str:
    from rmtension.data.sources import OBJECTIVE_SOURCES

    if cfg.neurons.data != "objective":
        return cfg.neurons.data
    return cfg.training.data.get(objective, OBJECTIVE_SOURCES[objective])


def _set_path(neuron_step: Step, method: str) -> Path:
    return neuron_step.folder / "sets" / f"{method}.json"


def _neuron_params(cfg: StudyConfig) -> dict[str, Any]:
    """The neuron section as step parameters, without the keys that only switch extra steps on
    (``NEURON_CONTROL_KEYS``): a study that adds them keeps every cached neuron step."""
    from rmtension.study.config import NEURON_CONTROL_KEYS

    return {k: v for k, v in dataclasses.asdict(cfg.neurons).items() if k not in NEURON_CONTROL_KEYS}


def _ablation_params(cfg: StudyConfig, sets: list[str], ev_params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of an ablate-own or ablate-mixed step: its sets, what they are evaluated on, and the
    eval step's scorer settings (``eval``)."""
    ab = cfg.ablation
    return {"sets": sets, "method": ab.method, "benchmarks": ab.benchmarks or cfg.evaluation.benchmarks,
            "max_items": ab.max_items if ab.max_items is not None else cfg.evaluation.max_items,
            "random_seed": ab.random_seed, "eval": ev_params}


# Parameters of a neuron-length step (its pairs and sets come from its neuron step, a dependency).
LENGTH_PARAMS: dict[str, Any] = {"activation": "set-mean-per-text", "length": "response-tokens",
                                 "interval": "bootstrap-pairs-2000"}


# ----------------------------------------------------------------------------- actions
#
# An action reads what its step computes from its step's ``params`` (and from its dependencies' params and
# outputs), never from the study config: a step's key hashes its params and its dependencies' keys, so
# whatever an action reads is in its key by construction. The only values passed in from outside are where
# things lie (``data_dir``) and where logs go (``report_to``), which do not change a result.


def _rm_record(train_step: Step, info: dict[str, Any]) -> dict[str, Any]:
    """The ``"rm"`` block of an eval or ablation result: which trained RM it scored."""
    return {"path": str(_rm_dir(train_step)), **{k: info.get(k) for k in ("backbone", "objective", "seed", "template")}}


def train_outcome(rec: dict) -> dict:
    """What a train step records about itself, from the RM's training record."""
    m = rec.get("metrics", {})
    return {"heldout_accuracy": m.get("heldout_accuracy"), "pairs_used": rec.get("pairs", {}).get("used"),
            "steps": rec.get("trainer", {}).get("global_steps"), "train_loss": rec.get("trainer", {}).get("train_loss"),
            "wall_time_s": rec.get("wall_time_s")}


@dataclass(frozen=True)
class TrainAction:
    """A train step's action: train into the step's ``rm`` folder, resuming from its own checkpoints.

    A class rather than a closure so that an executor can read the training config (the Ray executor
    runs it on several processes under accelerate, ``study.launch``)."""

    tcfg: Any

    def __call__(self, step: Step) -> dict:
        from rmtension.training.trainer import train

        return train_outcome(train(self.tcfg, _rm_dir(step), resume=True))


def _do_train(params: dict[str, Any], data_dir: str | None, report_to: str) -> TrainAction:
    """The action of a train step whose params are TrainConfig fields: its config is built from those params
    alone, plus ``data_dir`` and ``report_to`` (left out of them: where the data lies and where logs go do not
    change the RM)."""
    from rmtension.training.config import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"data_dir", "report_to"}
    return TrainAction(TrainConfig(**{k: v for k, v in params.items() if k in known}, data_dir=data_dir,
                                   report_to=report_to).validate())


def _do_eval(train_step: Step, data_dir: str | None) -> Callable[[Step], dict]:
    def action(step: Step) -> dict:
        from rmtension.evaluation.evaluate import evaluate, write_eval
        from rmtension.models.reward_model import load_reward_model

        p = step.params
        benches = _load_benches(p["benchmarks"], p["max_items"], data_dir, _rm_dir(train_step))
        model, tok, info = load_reward_model(_rm_dir(train_step))
        res = evaluate(model, tok, benches, template=info.get("template", "hh"), scorer_config=_scorer_config(p),
                       grouping=p["grouping"])
        res.results["rm"] = _rm_record(train_step, info)
        write_eval(step.folder, res)
        if p.get("formats"):
            from rmtension.evaluation.formats import model_name, rewardbench_chat_template, write_formats

            write_formats(step.folder, p["formats"], res.results,
                          {"model": model_name(train_step.folder), "chat_template": rewardbench_chat_template(tok, info.get("template", "hh"))})
        return {b: e["groups"] for b, e in res.results["benchmarks"].items()}
    return action


def _rm_score_seed(seed: int, train_step: Step) -> int:
    """The seed of one RM's ``random`` neuron scores: the study's seed mixed with the RM's name.

    Why: with one seed for every RM, the helpful and harmless RMs' random "top-k" sets were the same
    set, and their overlap (Jaccard 1) said nothing. Independent draws per RM make the random row of
    the overlap table the chance level that the real methods are read against (Jaccard ≈ k/(2−k)).
    """
    digest = hashlib.sha256(f"{int(seed)}/{train_step.name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _neuron_request(params: dict[str, Any], train_step: Step, data_dir: str | None):
    """The ``neurons score`` request of one RM's neuron step, from that step's params (shared with its
    neuron-length step: same pairs)."""
    from rmtension.neurons.pipeline import ScoreRequest

    p = params
    return ScoreRequest(rm=str(_rm_dir(train_step)), data=p["source"], method=p["methods"][0], site=p["site"],
                        data_dir=data_dir, max_pairs=p["max_pairs"], split="train", batch_size=p["batch_size"],
                        max_length=p["max_length"], seed=p["seed"], with_change="change" in p["methods"],
                        with_attribution=_wants_attribution(p["methods"]))


def _wants_attribution(methods: list[str]) -> bool:
    """Whether a neuron step runs the attribution gradient pass (an ``attribution*`` method is listed)."""
    from rmtension.neurons.scores import needs_attribution

    return any(needs_attribution(m) for m in methods)


def _backbone_methods(cfg: StudyConfig) -> list[str]:
    """The neuron methods of the backbone baseline: all but ``change`` (the backbone is its own base)."""
    return [m for m in cfg.neurons.methods if m != "change"]


def _backbone_request(params: dict[str, Any], data_dir: str | None):
    """The backbone baseline's request, from its step's params: the untrained backbone, a head seeded with the
    study seed, the train side of the split the RMs are trained with, the RMs' template; the same pair sample
    as an RM's."""
    from rmtension.data.split import DEFAULT_SALT, HeldoutSplit
    from rmtension.neurons.pipeline import ScoreRequest

    p = params
    return ScoreRequest(rm=None, data=p["source"], method=p["methods"][0], site=p["site"], data_dir=data_dir,
                        max_pairs=p["max_pairs"], split="train", batch_size=p["batch_size"], max_length=p["max_length"],
                        seed=p["seed"], base=p["backbone"], backbone_baseline=True, head_seed=p["head_seed"],
                        with_attribution=_wants_attribution(p["methods"]),
                        heldout=HeldoutSplit(p["heldout_fraction"], DEFAULT_SALT), template=p["template"])


def _score_and_select(step: Step, req, seed_step: Step) -> dict:
    """One statistics pass of ``req``, then the top-k% set of every method of the step's params (a neuron or
    neurons-backbone step)."""
    from rmtension.neurons.pipeline import score_rm
    from rmtension.neurons.scores import compute_scores
    from rmtension.neurons.setfile import save_set
    from rmtension.neurons.sets import location, select_top
    from rmtension.neurons.stats import save_stats

    p = step.params
    stats, _ = score_rm(req)
    save_stats(step.folder / "stats.npz", stats)
    rm_name = stats.meta.get("rm") if req.backbone_baseline else req.rm
    out = {}
    for method in p["methods"]:
        scores = compute_scores(stats, method, p["pool"], _rm_score_seed(p["seed"], seed_step))
        s = select_top(scores, p["k"], per_layer=p["per_layer"],
                       meta={"rm": rm_name, "data": p["source"], "method": method, "pool": p["pool"],
                             "site": p["site"], "k": p["k"], "seed": p["seed"],
                             "selection": "per-layer" if p["per_layer"] else "global"})
        if req.backbone_baseline:
            s = s.with_meta(objective="backbone", backbone=req.base, head_seed=req.head_seed)
        save_set(_set_path(step, method), s)
        out[method] = {"selected": len(s), "total": s.total, "per_layer": s.per_layer(),
                       "thirds": {k: v["count"] for k, v in location(s).items()}}
    return out


def _do_neurons(train_step: Step, data_dir: str | None) -> Callable[[Step], dict]:
    def action(step: Step) -> dict:
        return _score_and_select(step, _neuron_request(step.params, train_step, data_dir), train_step)
    return action


def _do_backbone_neurons(data_dir: str | None) -> Callable[[Step], dict]:
    def action(step: Step) -> dict:
        return _score_and_select(step, _backbone_request(step.params, data_dir), step)
    return action


def _do_neuron_length(neuron_step: Step, make_request: Callable[[], Any]) -> Callable[[Step], dict]:
    """Per set of ``neuron_step``: Spearman of the set's mean activation per text with the response length.
    The pairs, site and scorer settings are the neuron step's (a dependency, so its params are in this key)."""
    def action(step: Step) -> dict:
        import numpy as np

        from rmtension.evaluation.lengths import count_response_tokens
        from rmtension.files import jsonable
        from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
        from rmtension.neurons.length import set_length_spearman, text_set_activations
        from rmtension.neurons.pipeline import prepare
        from rmtension.neurons.setfile import load_set

        nc = neuron_step.params
        prep = prepare(make_request())
        scorer = RewardScorer(prep.model, prep.tokenizer, ScorerConfig(batch_size=nc["batch_size"],
                                                                       max_length=nc["max_length"], progress=False))
        texts = [t for pair in prep.texts for t in pair]
        responses = [r for p in prep.pairs for r in (p.chosen, p.rejected)]
        pair_of = np.repeat(np.arange(len(prep.pairs)), 2)
        sets = {m: load_set(_set_path(neuron_step, m)) for m in neuron_step.outcome()}
        acts = text_set_activations(scorer, texts, {m: s.mask for m, s in sets.items()}, site=nc["site"])
        lengths = count_response_tokens(texts, responses, prep.tokenizer, scorer.max_length)
        methods = {m: {"site": nc["site"], "k": nc["k"], "set_size": len(sets[m]),
                       "spearman": {k: v for k, v in set_length_spearman(acts[m], lengths, pair_of).items()
                                    if k != "n_texts"},
                       "n_texts": len(texts)} for m in sets}
        write_json_atomic(step.folder / "neuron_length.json", jsonable(
            {"length_unit": "tokens", "activation": "mean over the set's neurons of each neuron's mean activation "
             "over the text's real tokens", "pairs": len(prep.pairs), "mean_length": float(np.mean(lengths)),
             "methods": methods}))
        return jsonable({m: v["spearman"]["value"] for m, v in methods.items()})  # NaN (a constant side) → null
    return action


def _sweep_and_write(step: Step, train_step: Step, named_sets: list[tuple[str, Any]], data_dir: str | None) -> dict:
    """Evaluate the unablated RM and each named set (sharing work) on the step's ``benchmarks`` /
    ``max_items`` with its ``eval`` settings, and write the layout of ``rmtension ablate``
    (:mod:`rmtension.ablation.report`: ``baseline/``, ``sets/<name>/``, ``sweep.json``, ``sweep.csv``)."""
    from rmtension.ablation.ablate import prepare
    from rmtension.ablation.report import write_sweep
    from rmtension.ablation.sweep import sweep
    from rmtension.models.reward_model import load_reward_model

    p = step.params
    rm_dir = _rm_dir(train_step)
    benches = _load_benches(p["benchmarks"], p["max_items"], data_dir, rm_dir)
    model, tok, info = load_reward_model(rm_dir)
    ablations = [prepare(model, s, "zero", name=name) for name, s in named_sets]
    res = sweep(model, tok, benches, ablations, template=info.get("template", "hh"),
                scorer_config=_scorer_config(p["eval"]), grouping=p["eval"]["grouping"])
    rm = _rm_record(train_step, info)
    for r in [res.baseline, *(sr.result for sr in res.sets)]:
        r.results["rm"] = rm
    write_sweep(step.folder, res, {"rm": rm, "mode": "zero", "benchmarks": [b.name for b in benches]})
    return {"sets": {sr.ablation.name: {"size": sr.ablation.count} for sr in res.sets},
            "work_ratio": res.stats.work_ratio}


def _do_own_ablation(train_step: Step, neuron_step: Step, data_dir: str | None):
    def action(step: Step) -> dict:
        from rmtension.neurons.setfile import load_set
        from rmtension.neurons.sets import random_like

        p = step.params
        own = load_set(_set_path(neuron_step, p["method"]))
        named = []
        if "own" in p["sets"]:
            named.append(("own", own))
        if "random" in p["sets"]:
            r = random_like(own, p["random_seed"])
            r.meta["random_of"] = "own"
            named.append(("random-own", r))
        return _sweep_and_write(step, train_step, named, data_dir)
    return action


def _do_mixed_ablation(mixed_train: Step, helpful_neurons: Step, harmless_neurons: Step, data_dir: str | None):
    def action(step: Step) -> dict:
        from rmtension.neurons.setfile import load_set
        from rmtension.neurons.sets import a_only, b_only, random_like, shared

        p = step.params
        nh = load_set(_set_path(helpful_neurons, p["method"]))
        na = load_set(_set_path(harmless_neurons, p["method"]))
        named = []
        sh = shared(nh, na)
        if "shared" in p["sets"]:
            named.append(("shared", sh))
        if "helpful-only" in p["sets"]:
            named.append(("helpful-only", a_only(nh, na)))
        if "harmless-only" in p["sets"]:
            named.append(("harmless-only", b_only(nh, na)))
        if "random" in p["sets"]:
            r = random_like(sh, p["random_seed"])
            r.meta["random_of"] = "shared"
            named.append(("random-shared", r))
            if p.get("random_per_set"):  # a control of its own size for each single-objective part (seeds apart)
                for offset, (kind, part) in enumerate((("helpful-only", a_only(nh, na)),
                                                       ("harmless-only", b_only(nh, na))), start=1):
                    if kind in p["sets"]:
                        r = random_like(part, p["random_seed"] + offset)
                        r.meta["random_of"] = kind
                        named.append((f"random-{kind}", r))
        if not named:
            return {"sets": {}}
        return _sweep_and_write(step, mixed_train, named, data_dir)
    return action


def _do_curves(train_step: Step, neuron_step: Step, data_dir: str | None):
    """Top-k% sets of the neuron step's statistics for every method and k of the step's params (the score pool
    and random seed are the neuron step's), swept like an ablation."""
    def action(step: Step) -> dict:
        from rmtension.neurons.scores import compute_scores
        from rmtension.neurons.sets import select_top
        from rmtension.neurons.stats import load_stats

        p, nc = step.params, neuron_step.params
        stats, _ = load_stats(neuron_step.folder / "stats.npz")
        named = []
        for method in p["methods"]:
            scores = compute_scores(stats, method, nc["pool"], _rm_score_seed(nc["seed"], train_step))
            for k in p["k"]:
                if k > 0:
                    named.append((f"{method}-k{k:g}", select_top(scores, k, meta={"method": method, "k": k})))
        return _sweep_and_write(step, train_step, named, data_dir)
    return action


def _do_compare(evals: dict[str, Step]):
    def action(step: Step) -> dict:
        from rmtension.study.gather import compare_evals

        out = compare_evals({o: s.folder for o, s in evals.items()}, unit=step.params["retention_unit"],
                            grouping=step.params["grouping"])
        write_json_atomic(step.folder / "compare.json", out)
        return {"tasks": len(out.get("tasks", {}))}
    return action


def _do_overlap(neurons: dict[str, Step], backbone: Step | None = None):
    def action(step: Step) -> dict:
        from rmtension.neurons.setfile import load_set
        from rmtension.neurons.sets import overlap, retention

        out = {}
        for method in step.params["methods"]:
            sets = {o: load_set(_set_path(s, method)) for o, s in neurons.items()}
            entry: dict[str, Any] = {}
            if "helpful" in sets and "harmless" in sets:
                entry["helpful_harmless"] = overlap(sets["helpful"], sets["harmless"])
            if len(sets) == 3:
                entry["mixed_retention"] = retention(sets["mixed"], sets["helpful"], sets["harmless"])
            if backbone is not None and _set_path(backbone, method).is_file():
                # each RM's set against the untrained backbone's set of the same method (issue 11)
                base = load_set(_set_path(backbone, method))
                entry["backbone_baseline"] = {o: {k: v for k, v in overlap(s, base).items()
                                                  if k in ("jaccard", "shared", "a", "b")}
                                              for o, s in sets.items()}
            out[method] = entry
        write_json_atomic(step.folder / "overlap.json", out)
        return {}
    return action


# ----------------------------------------------------------------------------- the plan


def build_plan(cfg: StudyConfig, root: str | Path, data_dir: str | None = None) -> Plan:
    """Every step of the study, in an order that respects dependencies."""
    from rmtension.data.sources import resolve_data_dir

    root = Path(root)
    dd = cfg.data_dir or data_dir
    resolved = resolve_data_dir(dd)
    dd = str(resolved.resolve()) if resolved is not None else None
    plan = Plan(cfg, root)
    ab = cfg.ablation
    for b in cfg.backbones:
        for s in cfg.seeds:
            for o in cfg.objectives:
                key = (b, o, s)
                cell = cell_id(b, o, s)
                tcfg = _train_config(cfg, b, o, s, dd)
                tparams = {k: v for k, v in tcfg.to_dict().items() if k not in ("data_dir", "report_to")}
                tr = plan.add(Step("train", f"{_safe(b)}/{o}-s{s}", tparams,
                                   _do_train(tparams, dd, cfg.training.report_to), cell=cell, keep_partial=True))
                plan.train[key] = tr
                ev_params = {"benchmarks": cfg.evaluation.benchmarks, "max_items": cfg.evaluation.max_items,
                             "batch_size": cfg.evaluation.batch_size, "max_length": cfg.evaluation.max_length,
                             "dtype": cfg.evaluation.dtype, "grouping": cfg.evaluation.grouping}
                if cfg.evaluation.formats:  # only when asked: older eval steps keep their keys
                    ev_params["formats"] = list(cfg.evaluation.formats)
                if any(n.partition(":")[0] == "hh-heldout" for n in
                       [*cfg.evaluation.benchmarks, *(ab.benchmarks or []), *ab.curves.benchmarks]):
                    # hh-heldout is carved with the RM's own split since this marker was added (before:
                    # always 20%); the marker keeps results cached under the old rule from being reused.
                    ev_params["hh_heldout_split"] = "rm"
                plan.eval[key] = plan.add(Step("eval", f"{_safe(b)}/{o}-s{s}", ev_params, _do_eval(tr, dd),
                                               deps=[tr], cell=cell))
                src = _neuron_source(cfg, o)
                n_params = {**_neuron_params(cfg), "source": src, "pool": POOL}
                nr = plan.add(Step("neurons", f"{_safe(b)}/{o}-s{s}", n_params, _do_neurons(tr, dd),
                                   deps=[tr], cell=cell))
                plan.neurons[key] = nr
                if cfg.neurons.length_correlation:
                    plan.neuron_length[key] = plan.add(Step(
                        "neuron-length", f"{_safe(b)}/{o}-s{s}", LENGTH_PARAMS,
                        _do_neuron_length(nr, lambda tr=tr, nr=nr: _neuron_request(nr.params, tr, dd)),
                        deps=[tr, nr], cell=cell))
                if ab.enabled and ({"own", "random"} & set(ab.sets)):
                    a_params = _ablation_params(cfg, [x for x in ab.sets if x in ("own", "random")], ev_params)
                    plan.own_ablation[key] = plan.add(Step("ablate-own", f"{_safe(b)}/{o}-s{s}", a_params,
                                                           _do_own_ablation(tr, nr, dd), deps=[tr, nr], cell=cell))
                if ab.enabled and ab.curves.enabled:
                    c_params = {**dataclasses.asdict(ab.curves), "eval": ev_params}
                    plan.curves[key] = plan.add(Step("curves", f"{_safe(b)}/{o}-s{s}", c_params,
                                                     _do_curves(tr, nr, dd), deps=[tr, nr], cell=cell))
            objs = set(cfg.objectives)
            if {"helpful", "harmless", "mixed"} <= objs:
                ev = {o: plan.eval[(b, o, s)] for o in ("helpful", "harmless", "mixed")}
                plan.compare[(b, s)] = plan.add(Step("compare", f"{_safe(b)}/s{s}",
                                                     {"retention_unit": STUDY_RETENTION_UNIT,
                                                      "grouping": cfg.evaluation.grouping},
                                                     _do_compare(ev), deps=list(ev.values())))
                mixed_sets = [x for x in ab.sets if x in ("shared", "helpful-only", "harmless-only", "random")]
                if ab.enabled and mixed_sets:
                    m_params = _ablation_params(cfg, mixed_sets, ev_params)
                    if ab.random_per_set and "random" in mixed_sets:  # only when on: keys of earlier studies kept
                        m_params["random_per_set"] = True
                    deps = [plan.train[(b, "mixed", s)], plan.neurons[(b, "helpful", s)], plan.neurons[(b, "harmless", s)]]
                    plan.mixed_ablation[(b, s)] = plan.add(Step("ablate-mixed", f"{_safe(b)}/s{s}", m_params,
                                                                _do_mixed_ablation(*deps, dd), deps=deps))
            bk = None
            if cfg.neurons.backbone_baseline and _backbone_methods(cfg):
                # the untrained backbone on the mixed objective's data (helpful and harmless pairs alike)
                src = _neuron_source(cfg, "mixed")
                tcfg = _train_config(cfg, b, "mixed", s, dd)
                bk_params = {**_neuron_params(cfg), "methods": _backbone_methods(cfg), "source": src, "pool": POOL,
                             "backbone": b, "head_seed": s, "heldout_fraction": tcfg.heldout_fraction,
                             "template": tcfg.template}
                bk = plan.add(Step("neurons-backbone", f"{_safe(b)}/backbone-s{s}", bk_params,
                                   _do_backbone_neurons(dd)))
                plan.backbone[(b, s)] = bk
                if cfg.neurons.length_correlation:
                    plan.neuron_length[(b, "backbone", s)] = plan.add(Step(
                        "neuron-length", f"{_safe(b)}/backbone-s{s}", LENGTH_PARAMS,
                        _do_neuron_length(bk, lambda bk=bk: _backbone_request(bk.params, dd)),
                        deps=[bk]))
            nsteps = {o: plan.neurons[(b, o, s)] for o in cfg.objectives}
            if len(nsteps) >= 2:
                plan.overlap[(b, s)] = plan.add(Step("overlap", f"{_safe(b)}/s{s}", {"methods": cfg.neurons.methods},
                                                     _do_overlap(nsteps, bk),
                                                     deps=list(nsteps.values()) + ([bk] if bk is not None else [])))
    from rmtension.study.dial_steps import PipelineParts, add_dial_steps

    # the optional tension dial (off by default: adds nothing); it gets this module's helpers, not an import of it
    add_dial_steps(plan, dd, PipelineParts(_load_benches, _scorer_config, _rm_dir, _set_path, _safe))
    return plan


# ----------------------------------------------------------------------------- running


def describe(plan: Plan, cell: str | None = None) -> list[dict[str, Any]]:
    """Each step's status: cached (complete, outputs match their record by size and small-file hash) or to run."""
    rows = []
    for st in plan.steps:
        if cell is not None and st.cell != cell:
            continue
        cached = st.done() and st.changes() is None
        rows.append({"step": st.label, "status": "cached" if cached else "to run", "folder": str(st.folder),
                     "cell": st.cell})
    return rows


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def select_steps(plan: Plan, cell: str | None = None, labels: list[str] | None = None) -> list[Step]:
    """The steps a run works on, in plan order: all, one cell's (``cell``) or the named ones (``labels``,
    ``kind:name`` as ``rmtension plan`` prints them). Shared by the serial and the Ray executor."""
    if cell is not None and cell not in plan.cells():
        raise RmtensionError(f"unknown cell {cell!r}; cells: {', '.join(plan.cells())}")
    if labels:
        known = {st.label for st in plan.steps}
        unknown = [x for x in labels if x not in known]
        if unknown:
            raise RmtensionError(f"unknown step {unknown[0]!r}; `rmtension plan CONFIG` lists the steps")
    return [st for st in plan.steps if (cell is None or st.cell == cell) and (not labels or st.label in labels)]


def reuse_state(st: Step, verify: bool = False, warn: Callable[[str], None] = _stderr) -> tuple[bool, bool]:
    """(cached, fresh): whether a step's finished outputs can be reused, and whether a rerun must start
    from an empty folder (its outputs changed: never resumed from). ``warn`` says why a step reruns."""
    if st.done():
        problem = st.changes(full=verify)
        if problem is None:
            return True, False
        warn(f"step {st.label}: outputs changed ({problem}); re-running")
        return False, True
    if (st.folder / "step.json").exists():
        warn(f"step {st.label}: outputs changed (step.json: unreadable or not this step's); re-running")
        return False, True
    return False, False


def execute(plan: Plan, cell: str | None = None, echo: Callable[[str], None] = print, verify: bool = False,
            warn: Callable[[str], None] = _stderr, labels: list[str] | None = None) -> dict[str, int]:
    """Run every step not already complete (only one cell's with ``cell``, only ``labels``); return counts.

    A complete step is reused only when its outputs still match what it recorded (``Step.changes``;
    every hash with ``verify``); otherwise ``warn`` says why and it is run again from scratch.
    ``echo`` gets a line before each step and one after it with its time and the ETA of the rest
    (``rmtension.study.progress``).
    """
    import time

    from rmtension.study.progress import StepClock, step_done_line

    counts = {"cached": 0, "ran": 0}
    clock = StepClock()
    todo = select_steps(plan, cell, labels)
    for i, st in enumerate(todo, 1):
        cached, fresh = reuse_state(st, verify, warn)
        if cached:
            counts["cached"] += 1
            continue
        missing = [d.label for d in st.deps if not d.done()]
        if missing:
            raise RmtensionError(f"step {st.label} needs {', '.join(missing)} first (run those cells, or run without --cell)")
        echo(f"[{i}/{len(todo)}] {st.label} …")
        t0 = time.monotonic()
        st.run(fresh=fresh)
        seconds = time.monotonic() - t0
        clock.record(st.kind, seconds)
        counts["ran"] += 1
        left = [s for s in todo[i:] if not s.done()]
        echo(step_done_line(i, len(todo), st.label, seconds, clock.eta(s.kind for s in left), [s.label for s in left]))
    return counts


def gather_summary(plan: Plan) -> dict[str, Any]:
    """summary.json from the finished steps (see docs/STUDY_FORMAT.md); absent steps are left out."""
    from rmtension.study.gather import summarise

    return summarise(plan)


def write_summary(plan: Plan) -> Path:
    import rmtension

    summary = gather_summary(plan)
    summary["study"] = {"name": plan.cfg.name, "config": plan.cfg.to_dict(),
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "rmtension_version": rmtension.__version__}
    path = plan.root / SUMMARY
    from rmtension.files import jsonable

    write_json_atomic(path, jsonable(summary))
    from rmtension.study.export import export_summary

    export_summary(jsonable(summary), plan.root)  # summary.csv (+ .parquet): every run × task × metric
    return path


