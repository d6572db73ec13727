"""The study's optional ``dial`` steps (config section ``dial``, off by default; issue 14).

Per backbone × seed with all three objectives: the mixed RM with each configured set (shared /
helpful-only / harmless-only of the helpful and harmless RMs' top-k sets, the sets the mixed
ablation uses) scaled by each factor, and the helpful and harmless RMs evaluated on the same items
as reference points. One ``dial`` step per backbone × seed writes, in its folder::

    references/{helpful,harmless}/   results.json + items.jsonl of the reference RMs
    <set>/dial.json                  rmtension.ablation.dial's file, with the trade-off verdict
    <set>/baseline, <set>/sets/x<f>  the sweep's evaluations (as `rmtension ablate` writes them)

Why a separate module: the dial only adds steps (``add_dial_steps``) and summary rows
(``dial_rows``); with the section off it adds nothing, so every existing step keeps its key. The
pipeline's helpers (benchmark loading, scorer settings, step paths) come in as ``PipelineParts``:
the pipeline imports this module, so importing it back would be an import loop (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rmtension.files import jsonable, write_json_atomic
from rmtension.study.steps import Step

if TYPE_CHECKING:  # pragma: no cover
    from rmtension.study.pipeline import Plan

DIAL_KIND = "dial"


@dataclass(frozen=True)
class PipelineParts:
    """The pipeline's own helpers the dial step uses (see the module docstring)."""

    load_benches: Callable[..., list]  # (names, max_items, data_dir, rm_dir) → benchmarks, hh-heldout by the RM's split
    scorer_config: Callable[[Any], Any]  # study config → ScorerConfig
    rm_dir: Callable[[Step], Path]  # train step → its RM folder
    set_path: Callable[[Step, str], Path]  # neuron step, method → its set file
    safe: Callable[[str], str]  # backbone → a step-name-safe string


def _dial_params(cfg) -> dict[str, Any]:
    d = cfg.dial
    return {"sets": list(d.sets), "method": d.method or cfg.ablation.method, "factors": [float(f) for f in d.factors],
            "benchmarks": list(d.benchmarks), "max_items": d.max_items if d.max_items is not None else cfg.evaluation.max_items,
            "batch_size": cfg.evaluation.batch_size, "max_length": cfg.evaluation.max_length,
            "dtype": cfg.evaluation.dtype, "grouping": cfg.evaluation.grouping, "hh_heldout_split": "rm"}


def _do_dial(cfg, trains: dict[str, Step], neurons: dict[str, Step], data_dir: str | None,
             parts_of: PipelineParts) -> Callable[[Step], dict]:
    def action(step: Step) -> dict:
        from rmtension.ablation.dial import DIAL_FILE, run_dial
        from rmtension.ablation.report import write_sweep
        from rmtension.analysis.tradeoff import with_references
        from rmtension.evaluation.evaluate import evaluate, write_eval
        from rmtension.models.reward_model import load_reward_model
        from rmtension.neurons.setfile import load_set
        from rmtension.neurons.sets import a_only, b_only, shared

        _load_benches, _scorer_config = parts_of.load_benches, parts_of.scorer_config
        _rm_dir, _set_path = parts_of.rm_dir, parts_of.set_path

        p = _dial_params(cfg)
        nh = load_set(_set_path(neurons["helpful"], p["method"]))
        na = load_set(_set_path(neurons["harmless"], p["method"]))
        parts = {"shared": shared(nh, na), "helpful-only": a_only(nh, na), "harmless-only": b_only(nh, na)}
        mixed_dir = _rm_dir(trains["mixed"])
        benches = _load_benches(p["benchmarks"], p["max_items"], data_dir, mixed_dir)  # the mixed RM's held-out items
        refs = {}
        for objective in ("helpful", "harmless"):
            model, tok, info = load_reward_model(_rm_dir(trains[objective]))
            res = evaluate(model, tok, benches, template=info.get("template", "hh"), scorer_config=_scorer_config(cfg),
                           grouping=cfg.evaluation.grouping)
            res.results["rm"] = {"path": str(_rm_dir(trains[objective])),
                                 **{k: info.get(k) for k in ("backbone", "objective", "seed", "template")}}
            write_eval(step.folder / "references" / objective, res)
            refs[objective] = res.results
        model, tok, info = load_reward_model(mixed_dir)
        out: dict[str, Any] = {}
        for name in p["sets"]:
            s = parts[name].with_meta(method=p["method"], objective="mixed")
            run = run_dial(model, tok, benches, s, p["factors"], template=info.get("template", "hh"),
                           scorer_config=_scorer_config(cfg), grouping=cfg.evaluation.grouping, name=name)
            dial = with_references(run.dial, refs)
            folder = step.folder / name
            write_sweep(folder, run.sweep, {"mode": "scale", "factors": p["factors"], "set": name})
            write_json_atomic(folder / DIAL_FILE, jsonable({**dial, "rm": {"path": str(mixed_dir)}}))
            out[name] = {"count": len(s), "verdict": dial["tradeoff"].get("verdict"),
                         "factor_one_exact": dial["factor_one_exact"]}
        return out
    return action


def add_dial_steps(plan: "Plan", data_dir: str | None, parts_of: PipelineParts) -> None:
    """One ``dial`` step per backbone × seed that has all three objectives, when ``dial.enabled``."""
    cfg = plan.cfg
    if not cfg.dial.enabled or not {"helpful", "harmless", "mixed"} <= set(cfg.objectives):
        return
    _safe = parts_of.safe
    for b in cfg.backbones:
        for s in cfg.seeds:
            trains = {o: plan.train[(b, o, s)] for o in ("helpful", "harmless", "mixed")}
            neurons = {o: plan.neurons[(b, o, s)] for o in ("helpful", "harmless")}
            deps = [trains["mixed"], trains["helpful"], trains["harmless"], neurons["helpful"], neurons["harmless"]]
            plan.dial[(b, s)] = plan.add(Step(DIAL_KIND, f"{_safe(b)}/s{s}", _dial_params(cfg),
                                              _do_dial(cfg, trains, neurons, data_dir, parts_of), deps=deps))


def dial_rows(plan: "Plan") -> list[dict[str, Any]]:
    """``summary.json`` ``dial``: one entry per finished dial step and set, carrying its ``dial.json``."""
    from rmtension.ablation.dial import DIAL_FILE
    from rmtension.data.io import read_json

    rows = []
    for (b, s), st in getattr(plan, "dial", {}).items():
        if not st.done():
            continue
        for name in st.outcome():
            path = Path(st.folder) / name / DIAL_FILE
            if path.is_file():
                rows.append({"backbone": b, "seed": s, "set": name, "method": st.params["method"],
                             "dial": read_json(path)})
    return rows
