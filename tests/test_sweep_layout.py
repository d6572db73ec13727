"""One sweep layout (issue 16): the study's ablation and curve steps write what ``rmtension ablate`` writes
(``ablation.report.write_sweep``), and the study's gather reads the deltas the sweep stored instead of
computing them again. Study steps written in the layout before (each set in ``<step>/<name>/`` beside
``baseline/``, no sweep files) must still be read, with the same summary numbers: a cached study is resumed
by newer code. The old layout here is written by a small fixture (``_write_old_layout``), not by old code.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rmtension.ablation.report import deltas, set_dir, write_sweep
from rmtension.ablation.sweep import SetResult, SweepResult, SweepStats
from rmtension.bench.loaders import load_benchmark, subsample
from rmtension.errors import InputError
from rmtension.evaluation.evaluate import EvalResult, summarise_benchmarks, write_eval
from rmtension.study import gather
from rmtension.study.config import config_from_dict
from rmtension.study.pipeline import Plan
from rmtension.study.steps import Step

CELL = ("tiny", "helpful", 0)  # backbone, objective, seed of the fixture steps


@pytest.fixture(scope="module")
def benches(data_dir):
    """Real items: held-out HH-RLHF (helpful and harmless subsets) and one LLMBar subset, a few each."""
    return [subsample(load_benchmark("hh-heldout", str(data_dir)), 6),
            subsample(load_benchmark("llmbar:llmbar-natural", str(data_dir)), 6)]


def _scored(benches, seed: int) -> EvalResult:
    """An evaluation of ``benches`` with seeded random rewards (the eval contract, as the sweep builds it)."""
    rng = np.random.default_rng(seed)
    scores = [[([float(x) for x in rng.normal(size=len(it.chosen))], [float(x) for x in rng.normal(size=len(it.rejected))])
               for it in b.items] for b in benches]
    results, items = summarise_benchmarks(benches, scores, "paper")
    results["scoring"] = {"fixture": True}
    return EvalResult(results, items)


def _sweep_result(benches, names: list[str]) -> SweepResult:
    """A sweep's result as ``ablation.sweep.sweep`` returns it: per set its metadata and stored deltas."""
    baseline = _scored(benches, 0)
    baseline.results["ablation"] = None
    sets = []
    for i, name in enumerate(names, start=1):
        res = _scored(benches, i)
        res.results["ablation"] = {"count": 10 * i, "per_layer": [5 * i, 5 * i], "site": "act", "mode": "zero",
                                   "factor": None, "set": {"method": "magnitude"}, "start_layer": 0}
        res.results["delta_vs_baseline"] = deltas(res, baseline)
        sets.append(SetResult(SimpleNamespace(name=name, count=10 * i), res))
    return SweepResult(baseline, sets, SweepStats(sets=len(names)))


def _write_old_layout(folder: Path, result: SweepResult) -> None:
    """The layout of the study's ablation steps before issue 16: baseline/ and <name>/ side by side."""
    write_eval(folder / "baseline", result.baseline)
    for sr in result.sets:
        write_eval(folder / sr.ablation.name, sr.result)


def _step(root: Path, kind: str, result: SweepResult, layout: str) -> Step:
    """A finished study step of ``kind`` holding ``result`` in the ``old`` or the current layout."""
    def action(step: Step) -> dict:
        if layout == "old":
            _write_old_layout(step.folder, result)
        else:
            write_sweep(step.folder, result)
        return {"sets": {sr.ablation.name: {"size": sr.ablation.count} for sr in result.sets}, "work_ratio": 1.0}

    step = Step(kind, "tiny/helpful-s0", {"fixture": True}, action)
    step.root = root / layout
    step.run()
    return step


def test_old_and_new_layout_give_the_same_ablation_rows(tmp_path, benches):
    result = _sweep_result(benches, ["own", "random-own"])
    old, new = (_step(tmp_path, "ablate-own", result, layout) for layout in ("old", "new"))
    assert (old.folder / "own" / "results.json").is_file() and not (old.folder / "sweep.json").exists()
    assert (new.folder / "sets" / "own" / "results.json").is_file() and not (new.folder / "own").exists()
    rows = {layout: gather._ablation_rows(st, "tiny", 0, "helpful", "magnitude", 10.0)
            for layout, st in (("old", old), ("new", new))}
    assert rows["old"] == rows["new"]
    assert [r["set"] for r in rows["new"]] == ["own", "random"] and rows["new"][1]["random_of"] == "own"
    # the numbers are the sweep's: score and baseline as evaluated, delta = score − baseline as stored
    own = rows["new"][0]
    assert own["size"] == 10
    for bench in ("hh-heldout", "llmbar:llmbar-natural"):
        entry, base = result.sets[0].result.results["benchmarks"][bench], result.baseline.results["benchmarks"][bench]
        for sub, v in own["benchmarks"][bench]["subsets"].items():
            assert (v["score"], v["baseline"]) == (entry["subsets"][sub]["score"], base["subsets"][sub]["score"])
            assert v["delta"] == pytest.approx(v["score"] - v["baseline"])
        for g, v in own["benchmarks"][bench]["groups"].items():
            assert (v["score"], v["baseline"]) == (entry["groups"].get(g), base["groups"].get(g))
            assert v["delta"] == (None if v["score"] is None else pytest.approx(v["score"] - v["baseline"]))
    assert own["benchmarks"]["hh-heldout"]["groups"]["harmless"]["delta"] is not None
    # the paired statistics of the set against its random control read both layouts alike
    cfg = config_from_dict({"backbones": ["tiny"], "objectives": ["helpful"]})
    stats = {}
    for layout, st in (("old", old), ("new", new)):
        plan = Plan(cfg, st.root)
        plan.own_ablation[CELL] = st
        stats[layout] = gather.ablation_stats_rows(plan)
    assert stats["old"] == stats["new"] and stats["new"]


def test_old_and_new_layout_give_the_same_curves(tmp_path, benches):
    result = _sweep_result(benches, ["magnitude-k5", "magnitude-k10", "random-k5", "random-k10"])
    old, new = (_step(tmp_path, "curves", result, layout) for layout in ("old", "new"))
    curves = {layout: gather._curve_rows(st, "tiny", 0, "helpful", ["magnitude", "random"], [0, 5, 10])
              for layout, st in (("old", old), ("new", new))}
    assert curves["old"] == curves["new"]
    row = next(r for r in curves["new"] if (r["method"], r["bench"], r["group"]) == ("random", "hh-heldout", "harmless"))
    bench = lambda res: res.results["benchmarks"]["hh-heldout"]["groups"]["harmless"]  # noqa: E731
    assert [p["score"] for p in row["points"]] == [bench(result.baseline), bench(result.sets[2].result),
                                                   bench(result.sets[3].result)]


def test_write_sweep_records_set_folders_relative_and_set_dir_finds_them(tmp_path, benches):
    result = _sweep_result(benches, ["a b/c", "own"])
    write_sweep(tmp_path / "sw", result)
    info = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [s["dir"] for s in info["sets"]] == ["sets/a_b_c", "sets/own"]  # a moved folder stays readable
    assert set_dir(tmp_path / "sw", "a b/c") == tmp_path / "sw" / "sets" / "a_b_c"
    # a sweep.json set's delta is the stored one
    assert info["sets"][1]["delta"] == json.loads(json.dumps(result.sets[1].result.results["delta_vs_baseline"]))


def test_a_set_without_stored_deltas_is_refused_in_one_line(tmp_path, benches):
    result = _sweep_result(benches, ["own"])
    del result.sets[0].result.results["delta_vs_baseline"]
    st = _step(tmp_path, "ablate-own", result, "old")
    with pytest.raises(InputError, match=r"own/results.json: no delta_vs_baseline"):
        gather._ablation_rows(st, "tiny", 0, "helpful", "magnitude", 10.0)
