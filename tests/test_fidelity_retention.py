"""Behavioural retention pinned to the paper's code (issue 10, items 4 and 5).

Source for every definition below: EshaanT/RM-alignment_tension at commit
96efa92ee8bb12bd63baeb6aba407c203b6b2751 —

- ``RM_interpretation/benchmarking/dataset.py::get_rm_bench``: for each RM-Bench row, ``for idx, (c, r)
  in enumerate(zip(data['chosen'], data['rejected']))`` appends one unit ``id + "_" + str(idx)`` with
  one chosen and one rejected response: the same-style (diagonal) pairs, three units per item.
  ``get_reward_bench2``: one unit per row, with all its chosen and all its rejected responses.
- ``RM_interpretation/benchmarking/evaluation.py::rm_acc`` (line 235): a unit is right iff
  ``min(cho_index_dic[idx]) > max(rej_index_dic[idx])`` (strict).
- ``notebooks/plotsNresults.ipynb``, the retention cell (``cells[20]``, 0-based over all cells, lines
  1600-1630 of the .ipynb file; ``cells[19]`` is the same main retention alone): per task, ``inter_union`` counts ``hh == 1 and (he == 1 or ha == 1)``,
  ``union_union`` counts ``he == 1 or ha == 1`` (the mixed RM is not in the denominator),
  ``transferability = inter_union / union_union``; ``pairwise_he = inter_he / union_he`` with
  ``inter_he`` counting ``hh == 1 and he == 1`` and ``union_he`` counting ``hh == 1 or he == 1`` —
  a Jaccard index — and likewise ``pairwise_ha``.

The reference functions here restate those counts over sets; the constructed cases are chosen so
that every plausible wrong definition (a union that includes M, |C_M ∩ C_H| / |C_H| instead of the
Jaccard, all-nine RM-Bench items instead of diagonal pairs) gives a different number.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from rmtension.analysis.retention import paper_units, retention, unit_correctness
from rmtension.cli.main import main
from rmtension.evaluation.metrics import best_of_n_correct, rm_bench_correct, rm_bench_matrix, strict_correct
from rmtension.report.aggregate import RetentionRow
from rmtension.report.stats import Stat
from rmtension.report.tables import retention_table


def notebook_retention(m: set, h: set, a: set) -> float:
    """The notebook's ``transferability``: |M ∩ (H ∪ A)| / |H ∪ A| (0.0 on an empty union there)."""
    union = h | a
    return len(m & union) / len(union)


def notebook_pairwise(m: set, x: set) -> float:
    """The notebook's ``pairwise_he`` / ``pairwise_ha``: |M ∩ X| / |M ∪ X|."""
    return len(m & x) / len(m | x)


# units 0..9: H = {0,1,2,3}, A = {3,4,5}, M = {0,1,4,6,7}
#   retention |{0,1,4}| / |{0..5}| = 3/6           (a union with M: 3/8)
#   Jaccard M–H |{0,1}| / |{0,1,2,3,4,6,7}| = 2/7  (kept of H: 2/4)
#   Jaccard M–A |{4}| / |{0,1,3,4,5,6,7}| = 1/7    (kept of A: 1/3)
H, A, M = {0, 1, 2, 3}, {3, 4, 5}, {0, 1, 4, 6, 7}


def _flags(s: set, n: int = 10) -> dict[str, bool]:
    return {str(k): k in s for k in range(n)}


def test_main_and_pairwise_retention_are_the_notebooks():
    r = retention(_flags(M), _flags(H), _flags(A))
    assert r.retention == pytest.approx(notebook_retention(M, H, A)) == pytest.approx(3 / 6)
    assert r.retention != pytest.approx(len(M & (H | A)) / len(M | H | A))  # M is not in the denominator
    assert r.jaccard_helpful == pytest.approx(notebook_pairwise(M, H)) == pytest.approx(2 / 7)
    assert r.jaccard_harmless == pytest.approx(notebook_pairwise(M, A)) == pytest.approx(1 / 7)
    # ours, under its own name: share of the single RM's correct set that the mixed RM keeps
    assert (r.kept_helpful, r.kept_harmless) == pytest.approx((2 / 4, 1 / 3))
    assert (r.n_union, r.n_mixed_or_helpful, r.n_mixed_or_harmless) == (6, 7, 7)


def test_paper_units_follow_rm_acc_and_get_rm_bench():
    # RM-Bench: one unit per style, chosen[s] vs rejected[s] only (the other six cells are never compared)
    assert paper_units("x", [1.0, 2.0, 3.0], [0.0, 1.0, 2.0], "rm-bench") == {"x#0": True, "x#1": True, "x#2": True}
    assert paper_units("x", [1.0, 2.0, 3.0], [1.0, 1.0, 5.0], "rm-bench") == {"x#0": False, "x#1": True, "x#2": False}
    # RewardBench 2 best-of-4 row: right iff the chosen beats all three rejected, strictly
    assert paper_units("q", [2.0], [1.0, 0.0, 1.5], "best-of-n") == {"q": True}
    assert paper_units("q", [1.0], [1.0, 0.0, 0.0], "best-of-n") == {"q": False}  # a tie at the top is a miss
    # several chosen (RewardBench 2 Ties rows): min(chosen) > max(rejected)
    assert paper_units("t", [3.0, 2.0], [2.5], "ties") == {"t": False}
    assert paper_units("t", [3.0, 2.6], [2.5], "ties") == {"t": True}
    assert paper_units("p", [0.5], [0.5], "pairwise") == {"p": False}


def test_strict_rule_is_rm_acc_and_what_it_means_per_metric():
    """strict_correct is rm_acc's rule. On one chosen vs N rejected it equals "best-of-N fully right"
    (so the item unit at threshold 1 agrees with the paper on RewardBench 2); on a 3×3 RM-Bench item it
    equals "all nine cells right", which is not the paper's diagonal."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        c, r = rng.integers(0, 4, size=1).astype(float), rng.integers(0, 4, size=3).astype(float)
        assert strict_correct(c, r) == float(best_of_n_correct(c, r) == 1.0) == float(paper_units("i", c, r, None)["i"])
        c3, r3 = rng.integers(0, 4, size=3).astype(float), rng.integers(0, 4, size=3).astype(float)
        assert strict_correct(c3, r3) == float(rm_bench_matrix(c3, r3).min() == 1.0)
    # the diagonal can be all right while an off-diagonal cell is wrong: paper right 3/3, all-nine wrong
    c3, r3 = [1.0, 2.0, 3.0], [0.0, 1.0, 2.0]
    assert all(paper_units("x", c3, r3, "rm-bench").values())
    assert strict_correct(c3, r3) == 0.0 and rm_bench_correct(c3, r3) == pytest.approx(6 / 9)


# One RM-Bench task, items x and y (chosen styles vs rejected styles), for the three RMs:
#   mixed    x: [1,2,3] vs [0,1,2]  diagonal all right, not all nine (6/9)   y: [5,5,5] vs [0,0,0] all nine
#   helpful  x: [5,5,5] vs [0,0,0]  all nine                                  y: [0,0,0] vs [1,1,1] nothing
#   harmless x: [0,0,0] vs [1,1,1]  nothing                                   y: [1,0,0] vs [0,1,1] diagonal y#0 only
# paper units: M = {x0,x1,x2,y0,y1,y2}, H = {x0,x1,x2}, A = {y0} → retention 4/4 = 1,
#   Jaccard M–H 3/6, M–A 1/6, kept H 3/3, kept A 1/1
# whole items (all nine): M = {y}, H = {x}, A = {} → retention 0/1 = 0, Jaccard M–H 0/2, M–A 0/1, kept H 0, kept A NaN
RM_BENCH = {
    "mixed": {"x": ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]), "y": ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0])},
    "helpful": {"x": ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0]), "y": ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])},
    "harmless": {"x": ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), "y": ([1.0, 0.0, 0.0], [0.0, 1.0, 1.0])},
}


def _rows(role: str) -> dict[str, dict]:
    return {i: {"chosen_scores": c, "rejected_scores": r, "correct": rm_bench_correct(c, r)}
            for i, (c, r) in RM_BENCH[role].items()}


def test_rm_bench_diagonal_units_differ_from_all_nine():
    units = {role: unit_correctness(_rows(role), "rm-bench", unit="paper") for role in RM_BENCH}
    sets = {role: {k for k, ok in u.items() if ok} for role, u in units.items()}
    assert sets == {"mixed": {"x#0", "x#1", "x#2", "y#0", "y#1", "y#2"}, "helpful": {"x#0", "x#1", "x#2"},
                    "harmless": {"y#0"}}
    paper = retention(units["mixed"], units["helpful"], units["harmless"])
    assert paper.retention == pytest.approx(notebook_retention(sets["mixed"], sets["helpful"], sets["harmless"]))
    assert (paper.retention, paper.jaccard_helpful, paper.jaccard_harmless) == pytest.approx((1.0, 3 / 6, 1 / 6))
    assert paper.n_units == 6

    items = {role: unit_correctness(_rows(role), "rm-bench", unit="item") for role in RM_BENCH}
    nine = retention(items["mixed"], items["helpful"], items["harmless"])
    assert (nine.retention, nine.jaccard_helpful, nine.jaccard_harmless, nine.kept_helpful) == (0.0, 0.0, 0.0, 0.0)
    assert nine.n_units == 2 and np.isnan(nine.kept_harmless)


def _eval_dir(path: Path, role: str) -> Path:
    rows = [{"benchmark": "rm-bench", "subset": "chat", "id": i, "group": "helpful", "metric": "rm-bench",
             "chosen_scores": c, "rejected_scores": r, "correct": rm_bench_correct(c, r)}
            for i, (c, r) in RM_BENCH[role].items()]
    score = float(np.mean([r["correct"] for r in rows]))
    results = {"benchmarks": {"rm-bench": {"subsets": {"chat": {"metric": "rm-bench", "score": score, "n": 2,
                                                                 "group": "helpful"}}}},
               "rm": {"objective": role, "backbone": "tb", "seed": 0}}
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_compare_cli_unit_option(tmp_path, capsys):
    dirs = [str(_eval_dir(tmp_path / role, role)) for role in RM_BENCH]
    assert main(["compare", *dirs, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    task = data["comparisons"][0]["tasks"]["rm-bench/chat"]
    assert data["retention_unit"] == data["comparisons"][0]["retention_unit"] == "paper"
    assert (task["retention"], task["jaccard_helpful"], task["kept_helpful"]) == pytest.approx((1.0, 0.5, 1.0))
    assert (task["n"], task["n_units"], task["n_union"]) == (2, 6, 4)
    assert main(["compare", *dirs, "--retention-unit", "item", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    task = data["comparisons"][0]["tasks"]["rm-bench/chat"]
    assert data["retention_unit"] == "item" and task["retention"] == 0.0 and task["n_units"] == 2
    assert main(["compare", *dirs]) == 0  # the readable tables name the unit and the definitions
    printed = capsys.readouterr().out
    assert "same-style pairs" in printed and "|C_M∩C_X|/|C_M∪C_X|" in printed and "J(M,H)" in printed


def test_report_table_names_both_pairwise_measures_and_the_unit():
    s = Stat(0.5, 0.0, 2)
    rows = [RetentionRow("rm-bench/chat", "helpful", 2, s, s, s, s, s, Stat(4.0, 0.0, 2))]
    table = retention_table("tb", rows, ["paper"])
    names = [c.name for c in table.columns]
    assert {"Retention (%)", "Jaccard M–H (%)", "Jaccard M–A (%)", "Kept of H (%)", "Kept of A (%)"} <= set(names)
    assert "pairwise retention" in table.note and "same-style pairs" in table.note
    assert "not the paper's units" in retention_table("tb", rows, ["item"]).note
    assert "different units" in retention_table("tb", rows, ["paper", "item"]).note


def test_retention_equals_notebook_counts_on_every_small_case():
    """Exhaustive over 3 units: retention and Jaccard equal the notebook's counts whenever defined."""
    universe = range(3)
    subsets = [set(c) for k in range(4) for c in itertools.combinations(universe, k)]
    for m, h, a in itertools.product(subsets, repeat=3):
        flags = [{str(k): float(k in s) for k in universe} for s in (m, h, a)]
        r = retention(*flags)
        if h | a:
            assert r.retention == pytest.approx(notebook_retention(m, h, a))
        if m | h:
            assert r.jaccard_helpful == pytest.approx(notebook_pairwise(m, h))


def test_retentiongroup_means_follow_the_grouping():
    """Retention's group means use the same task table as eval's (EshaanT/RM-alignment_tension,
    notebooks/plotsNresults.ipynb at 96efa92ee8bb12bd63baeb6aba407c203b6b2751, cell 3: code subsets
    left out via SUB_TASK_2_AVOIDE; RM-Bench math and RewardBench 2 Math one task "Math", whose rows
    are averaged before the group mean). Constructed so that each mistake gives another number."""
    from rmtension.analysis.compare import group_means
    from rmtension.bench.groups import get_grouping
    from rmtension.report.aggregate import retention_rows

    raw = {("rm-bench", "chat", "helpful"): 0.2, ("rm-bench", "code", "helpful"): 1.0,
           ("rm-bench", "math", "helpful"): 0.4, ("rewardbench2", "Math", "helpful"): 0.8,
           ("rm-bench", "safety-refuse", "harmless"): 0.5}

    def tasks_under(name: str) -> dict:
        g = get_grouping(name)
        out = {}
        for (bench, subset, group), value in raw.items():
            out[f"{bench}/{subset}"] = {"benchmark": bench, "subset": subset, "group": group, "n": 3,
                                        "task": g.task_of(bench, subset), "in_group_mean": g.includes(bench, subset),
                                        **{f: value for f in ("retention", "jaccard_helpful", "jaccard_harmless",
                                                              "kept_helpful", "kept_harmless")}, "n_union": 3}
        return out

    paper = group_means(tasks_under("paper"))
    # chat 0.2 and Math = mean(0.4, 0.8) = 0.6 → 0.4; code (1.0) left out
    assert paper["helpful"]["retention"] == pytest.approx(0.4)
    assert paper["helpful"]["tasks"] == 2
    assert paper["harmless"]["retention"] == pytest.approx(0.5)
    every = group_means(tasks_under("all"))
    assert every["helpful"]["retention"] == pytest.approx((0.2 + 1.0 + 0.4 + 0.8) / 4)
    # The report's retention table computes the same group mean from the summary entries.
    rows = retention_rows([{"backbone": "b", "seed": 0, "tasks": tasks_under("paper")}])["b"]
    helpful_row = [r for r in rows if r.task == "helpful tasks (mean)"][0]
    assert helpful_row.retention.mean == pytest.approx(0.4)
