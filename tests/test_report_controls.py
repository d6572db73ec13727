"""The report's controls (issue 11): findings first with computed verdicts, intervals and chance marks in
the accuracy tables, the length-controls table, figures with a chance line, interval error bars and
length-baseline markers, and the configuration in an appendix after the results.

Summaries are the synthetic one of fixtures_study.py with the controls' keys added by hand, as
docs/STUDY_FORMAT.md and the shared schema of the `controls` helper define them; and without them
(an older summary), where the report must say "not run" instead of guessing.
"""

from __future__ import annotations

import copy
import csv
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

from fixtures_study import BENCHES, OBJECTIVES, make_summary, write_summary
from rmtension.analysis.findings import VERDICTS, findings
from rmtension.report import build_report, parse_summary
from rmtension.report.aggregate import accuracy_blocks
from rmtension.report.figures import accuracy_figure, curves_figure
from rmtension.report.aggregate import curve_panels
from rmtension.report.stats import CHANCE_MARK, StatCI
from rmtension.report.tables import accuracy_table

HALF_WIDTH = 0.08  # of the hand-made pooled intervals


def _ci(mean: float, half: float = HALF_WIDTH) -> dict[str, float]:
    return {"low": mean - half, "high": mean + half}


def with_controls(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with every controls key filled: per-subset length fields, pooled, contrasts,
    ablation_stats, neuron_length, backbone-baseline neuron rows and overlaps."""
    s = copy.deepcopy(summary)
    for r in s["runs"]:
        for bench, ev in r["eval"].items():
            for i, (name, sub) in enumerate(ev["subsets"].items()):
                sub["length_baseline"] = {"longer": 0.3 + 0.1 * i, "shorter": 0.7 - 0.1 * i}
                sub["length_matched"] = {"score": 0.55, "n": 12 + i, "items": 12 + i, "tolerance": 0.1,
                                         "ci95": [0.4, 0.7]}
                sub["margin_length_spearman"] = {"value": 0.4 if r["objective"] == "helpful" else -0.3,
                                                 "ci95": [0.2, 0.6], "n_pairs": sub["n"]}
            ev["groups_length"] = {g: {"length_baseline": {"longer": 0.45, "shorter": 0.55}, "length_matched": 0.52}
                                   for g in ("helpful", "harmless")}
    pooled, contrasts = [], []
    for bb in dict.fromkeys(r["backbone"] for r in s["runs"]):
        runs = [r for r in s["runs"] if r["backbone"] == bb]
        for bench, subsets in BENCHES.items():
            tasks = [(f"{bench}/{sub}", lambda ev, sub=sub: ev["subsets"][sub]["score"], g, "subset")
                     for sub, g in subsets.items()]
            tasks += [(f"{bench}/{g} (group mean)", lambda ev, g=g: ev["groups"][g], g, "group")
                      for g in ("helpful", "harmless")]
            for task, get, g, kind in tasks:
                means = {o: statistics.mean(get(r["eval"][bench]) for r in runs if r["objective"] == o)
                         for o in OBJECTIVES}
                for o in OBJECTIVES:
                    pooled.append({"backbone": bb, "objective": o, "task": task, "bench": bench, "group": g,
                                   "kind": kind, "seeds": [0, 1], "n_items": 100, "subsets": {task: 100},
                                   "mean": means[o], "ci95": _ci(means[o]),
                                   "length_matched": {"mean": 0.5, "ci95": _ci(0.5), "n_cells": 30, "n_items": 30,
                                                      "min_subset_items": 30},
                                   "length_adjusted": {"mean": 0.61, "ci95": _ci(0.61), "model": "logistic"}})
                for a, b in (("helpful", "harmless"), ("mixed", "helpful"), ("mixed", "harmless")):
                    d = means[a] - means[b]
                    contrasts.append({"backbone": bb, "task": task, "bench": bench, "group": g, "kind": kind,
                                      "a": a, "b": b, "name": f"{a}-vs-{b}", "n_items": 100,
                                      "subsets": {task: 100}, "diff": d, "a_mean": means[a], "b_mean": means[b],
                                      "ci95": _ci(d, 0.05), "length_matched": {
                                          "diff": d / 4, "ci95": _ci(d / 4, 0.05), "n_cells": 30, "n_items": 30,
                                          "min_subset_items": 30}})
        s["ablation_stats"] = s.get("ablation_stats", []) + [
            {"backbone": bb, "rm_objective": rm, "set": st, "method": "magnitude", "k": 10.0,
             "task": f"rewardbench/{g} (group mean)", "group": g, "seeds": [0, 1], "n_items": 300,
             "set_delta": d, "random_delta": -0.01, "diff": d + 0.01, "ci95": _ci(d + 0.01, 0.03), "p": 0.001,
             "test": "paired sign-flip over items within seeds", "family": f"{bb}/{rm}/{st}", "p_holm": 0.004,
             "survives": True}
            for rm, st, d in (("helpful", "own", -0.12), ("harmless", "own", -0.1), ("mixed", "shared", -0.15),
                              ("mixed", "helpful-only", -0.06), ("mixed", "harmless-only", -0.05))
            for g in ("helpful", "harmless")]
    s["pooled"], s["contrasts"] = pooled, contrasts
    base_rows = [dict(e, objective="backbone") for e in s["neurons"] if e["objective"] == "helpful"]
    s["neurons"] += base_rows
    s["neuron_length"] = [{"backbone": e["backbone"], "objective": e["objective"], "seed": e["seed"],
                           "method": e["method"], "site": e["site"], "k": e["k"], "n_texts": 128,
                           "spearman": {"value": 0.2, "ci95": {"low": 0.05, "high": 0.35}}}
                          for e in s["neurons"] if e["method"] == "magnitude"]
    for e in s["overlap"]:
        e["backbone_baseline"] = {o: {"jaccard": 0.6, "shared": 30, "a": 38, "b": 38} for o in OBJECTIVES}
    return s


def headings(md: str) -> list[str]:
    return [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    study = tmp_path_factory.mktemp("controls")
    summary = with_controls(make_summary(backbones=("tiny-gpt2",), seeds=(0, 1)))
    write_summary(study, summary)
    html = build_report(study)
    return {"summary": summary, "md": (html.parent / "report.md").read_text(encoding="utf-8"),
            "html": html.read_text(encoding="utf-8"), "report": html.parent}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_report_opens_with_computed_findings_and_ends_with_the_config(built):
    md, summary = built["md"], built["summary"]
    hs = headings(md)
    assert hs[0] == "Findings" and hs[1] == "1. Trained reward models"
    assert hs[-2:] == ["Method", "Appendix: study and configuration"]
    numbered = [h for h in hs if re.match(r"\d+\. ", h)]
    assert hs[1:-2] == numbered  # every result section between the findings and the method
    # the findings' lines carry the verdicts findings() computes from the same summary, in order
    expected = findings(summary)
    lines = [ln for ln in md.splitlines() if ln.startswith("- **(")]
    assert [ln[5] for ln in lines] == list("abcde")
    for ln, f in zip(lines, expected):
        assert f": {f.verdict}.**" in ln
        assert any(v in ln for v in ("supported", "inconclusive", "not run"))
    assert expected[0].verdict in VERDICTS and expected[0].evidence
    # the configuration only after every result table and figure
    appendix = md.index("## Appendix")
    assert md.index("backbones: [tiny-gpt2]") > appendix
    assert md.rfind("(figures/") < appendix and md.rfind("tables/") < appendix
    assert "backbones:" not in md[:appendix]
    # HTML: the same headings, bold verdicts rendered, nothing marked not-run for the controls
    assert "<h2>Findings</h2>" in built["html"] and "<strong>(a)" in built["html"]


def test_findings_of_this_summary(built):
    """With the hand-made numbers: (a) raw differences hold but a quarter of them on length-matched pairs
    with ±5 pp intervals — the verdicts follow from the rules, and each names its comparisons."""
    found = {f.key: f for f in findings(built["summary"])}
    assert found["c"].verdict == "supported"  # own sets hurt more than random, all surviving Holm
    assert found["d"].verdict == "supported"  # shared is the most harmful set on both groups
    assert found["e"].verdict in VERDICTS and found["e"].evidence
    rows = read_csv(built["report"] / "tables" / "findings_evidence.csv")
    assert {r["Finding"] for r in rows} == {"(a)", "(b)", "(c)", "(d)", "(e)"}
    assert all(r["Verdict"] in VERDICTS for r in rows)


def test_accuracy_cells_show_pooled_intervals_and_mark_chance(built):
    summary, rep = built["summary"], built["report"]
    rows = read_csv(rep / "tables" / "accuracy_tiny-gpt2_rewardbench.csv")
    row = next(r for r in rows if r["Task"] == "refusals-dangerous")
    mean = float(row["helpful RM (fraction) mean"])
    assert float(row["helpful RM (fraction) ci95 low"]) == pytest.approx(mean - HALF_WIDTH)
    assert float(row["helpful RM (fraction) ci95 high"]) == pytest.approx(mean + HALF_WIDTH)
    md = built["md"]
    line = next(ln for ln in md.splitlines() if ln.startswith("| refusals-dangerous |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    for cell, o in zip(cells[3:], OBJECTIVES):
        m = re.fullmatch(r"(\d+\.\d) ± \d+\.\d \[(\d+\.\d), (\d+\.\d)\]( †)?", cell)
        assert m, cell
        lo, hi = float(m[2]), float(m[3])
        assert (lo <= 50.0 <= hi) == bool(m[4])
    assert CHANCE_MARK in md and "includes 50%" in md  # the harmless RM is near chance on helpful tasks


def test_length_controls_table(built):
    rows = read_csv(built["report"] / "tables" / "length_controls.csv")
    r = next(x for x in rows if (x["Task"], x["RM"]) == ("alpacaeval-easy", "helpful"))
    assert float(r["Longer wins (fraction)"]) == pytest.approx(0.3)
    assert float(r["Shorter wins (fraction)"]) == pytest.approx(0.7)
    assert float(r["Length-matched (fraction) mean"]) == pytest.approx(0.5)  # the pooled estimate
    assert float(r["Matched pairs"]) == 30
    assert float(r["Length-adjusted (fraction) mean"]) == pytest.approx(0.61)  # the pooled logistic adjustment
    assert float(r["Length-adjusted (fraction) ci95 low"]) == pytest.approx(0.61 - HALF_WIDTH)
    assert float(r["Margin–length ρ mean"]) == pytest.approx(0.4)
    assert {x["RM"] for x in rows} == set(OBJECTIVES)


def test_controls_tables_appear(built):
    tables = built["report"] / "tables"
    stats = read_csv(tables / "ablation_stats.csv")
    assert {r["Survives"] for r in stats} == {"yes"} and len(stats) == 10
    base = read_csv(tables / "overlap_backbone.csv")
    assert {r["RM"] for r in base} == set(OBJECTIVES)
    assert float(base[0]["Jaccard with backbone mean"]) == pytest.approx(0.6)
    assert read_csv(tables / "neuron_length.csv")
    thirds = read_csv(tables / "neuron_thirds.csv")
    assert "backbone" in {r["RM"] for r in thirds}


def test_accuracy_figure_has_chance_line_interval_error_bars_and_length_markers(built):
    summary = built["summary"]
    blocks = accuracy_blocks(summary["runs"], summary["pooled"])
    block = next(b for b in blocks if b.bench == "rewardbench")
    fig = accuracy_figure([block])
    ax = fig.axes[0]
    rows = [r for r in block.rows if r.kind != "aggregate"]
    chance = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [50.0, 50.0]]
    assert len(chance) == 1 and chance[0].get_label() == "chance (50%)"
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == len(block.objectives)
    for container, o in zip(bars, block.objectives):
        segs = container.errorbar.lines[2][0].get_segments()
        assert len(segs) == len(rows)
        for seg, r in zip(segs, rows):
            s = r.by_objective[o]
            assert isinstance(s, StatCI)
            assert seg[0][1] == pytest.approx(100 * s.low) and seg[1][1] == pytest.approx(100 * s.high)
    markers = {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}
    longer = markers["longer wins (length only)"].get_offsets()
    assert [y for _, y in longer] == pytest.approx([100 * r.longer.mean for r in rows])
    assert "shorter wins (length only)" in markers
    # the ablation curves (accuracy over k) carry the chance line too
    cfig = curves_figure(curve_panels(summary["curves"]))
    assert all(any(list(ln.get_ydata()) == [50.0, 50.0] for ln in a.get_lines()) for a in cfig.axes[:1])


def test_one_seed_uses_the_evals_own_interval(tmp_path):
    summary = make_summary(seeds=(0,))
    for r in summary["runs"]:
        for ev in r["eval"].values():
            for sub in ev["subsets"].values():
                sub["ci95"] = {"low": sub["score"] - 0.1, "high": sub["score"] + 0.1}
            ev["groups_ci95"] = {g: {"low": v - 0.05, "high": v + 0.05} for g, v in ev["groups"].items()}
    block = next(b for b in accuracy_blocks(summary["runs"]) if b.bench == "rewardbench")
    table = accuracy_table(block)
    shown = dict(zip([r[0] for r in table.display_rows()], table.display_rows()))
    run = next(r for r in summary["runs"] if r["objective"] == "helpful")
    score = run["eval"]["rewardbench"]["subsets"]["alpacaeval-easy"]["score"]
    cell = shown["alpacaeval-easy"][3]
    assert cell.startswith(f"{100 * score:.1f} [{100 * (score - 0.1):.1f}, {100 * (score + 0.1):.1f}]")
    assert cell.endswith("†") == (score - 0.1 <= 0.5 <= score + 0.1)
    g = run["eval"]["rewardbench"]["groups"]["helpful"]
    assert f"[{100 * (g - 0.05):.1f}, {100 * (g + 0.05):.1f}]" in shown["helpful tasks (group mean)"][3]


def test_old_summary_says_not_run(tmp_path):
    """No pooled / contrasts / ablation_stats / neuron_length: verdicts (a)–(d) 'not run', no intervals
    invented for several seeds, and the controls' tables replaced by a line saying so."""
    summary = make_summary(seeds=(0, 1))
    write_summary(tmp_path, summary)
    md = build_report(tmp_path).with_suffix(".md").read_text(encoding="utf-8")
    lines = [ln for ln in md.splitlines() if ln.startswith("- **(")]
    assert all(": not run.**" in ln for ln in lines[:4])
    assert "summary.json has no `contrasts`" in lines[0]
    assert "(no `ablation_stats`)" in md and "Length controls: not run" in md
    assert "Backbone baseline (each RM's set vs the untrained backbone's): not run" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| refusals-dangerous |"))
    assert "[" not in line and CHANCE_MARK not in line
    assert parse_summary({"study": {}, "pooled": []}, tmp_path / "summary.json")["pooled"] == []
