"""Length controls (issue 11): length-only baselines, margin–length correlation, length-matched accuracy.

Constructed data where every number is computable by hand, the per-metric tie rules, response token
counting as the scorer sees the text (truncation included), an end-to-end eval whose new fields
recompute from items.jsonl, and the real HH-RLHF test splits, where the length confound is known to
point in opposite directions for helpful and harmless pairs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from rmtension.analysis import length as L
from rmtension.bench import types as bench_types
from rmtension.bench.types import BenchItem
from rmtension.data.types import user_prompt
from rmtension.errors import RmtensionError
from rmtension.evaluation.evaluate import BOOTSTRAP_RESAMPLES, read_items, read_results
from rmtension.evaluation.lengths import count_response_tokens, item_lengths
from rmtension.models.formatting import format_for_rm


def test_metric_names_match_bench_types():
    """length.py names the metrics by value (to stay free of the bench package); they must agree."""
    for name in ("PAIRWISE", "BEST_OF_N", "RM_BENCH", "TIES", "STRICT"):
        assert getattr(L, f"METRIC_{name}") == getattr(bench_types, f"METRIC_{name}")


# ----------------------------------------------------------------------------- constructed data


def _matched_design() -> tuple[list[list[float]], list[list[float]]]:
    """40 pairs: 20 length-matched (lengths 100 vs 95, the chosen one longer in 10, shorter in 10)
    and 20 unmatched (chosen 200 tokens, rejected 50: the chosen one always much longer)."""
    chosen, rejected = [], []
    for k in range(10):
        chosen.append([100.0 + k]), rejected.append([95.0 + k])  # chosen longer, within 10%
        chosen.append([95.0 + k]), rejected.append([100.0 + k])  # chosen shorter, within 10%
    for k in range(20):
        chosen.append([200.0 + k]), rejected.append([50.0 + k])
    return chosen, rejected


def test_length_only_rm_is_at_chance_on_matched_pairs_and_correlates_perfectly():
    cl, rl = _matched_design()
    # an RM that scores by length alone: score = length
    res = L.length_controls("pairwise", cl, rl, cl, rl, n_resamples=200)
    lm = res["length_matched"]
    assert lm["n"] == 20 and lm["items"] == 20 and lm["tolerance"] == 0.1
    assert lm["score"] == 0.5  # 10 of the 20 matched pairs have the longer response chosen
    assert lm["all_pairs"] == {"score": 0.75, "n": 40}  # 10 + 20 of 40 overall: length looks like skill
    assert res["margin_length_spearman"]["value"] == pytest.approx(1.0)
    lo, hi = res["margin_length_spearman"]["ci95"]
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    assert res["length_baseline"] == {"longer": 0.75, "shorter": 0.25}
    # the shorter-wins RM: score = −length
    neg = L.length_controls("pairwise", [[-x for x in c] for c in cl], [[-x for x in r] for r in rl], cl, rl,
                            n_resamples=200)
    assert neg["margin_length_spearman"]["value"] == pytest.approx(-1.0)
    assert neg["length_matched"]["score"] == 0.5


def test_rm_that_ignores_length_keeps_its_accuracy_on_matched_pairs():
    cl, rl = _matched_design()
    # right on 4 of every 5 pairs, whatever the lengths: 16/20 matched, 16/20 unmatched
    right = [k % 5 != 4 for k in range(40)]
    cs = [[1.0] if ok else [0.0] for ok in right]
    rs = [[0.0] if ok else [1.0] for ok in right]
    res = L.length_controls("pairwise", cs, rs, cl, rl, n_resamples=200)
    assert res["length_matched"]["score"] == 0.8 == res["length_matched"]["all_pairs"]["score"]
    lo, hi = res["length_matched"]["ci95"]
    assert lo <= 0.8 <= hi
    # and its margins track length far less than the length RM's
    assert abs(res["margin_length_spearman"]["value"]) < 0.5


def test_baselines_on_a_hand_computed_table():
    # pairwise, ties ½: chosen longer, shorter, tied
    assert L.length_baseline("pairwise", [[10], [3], [5]], [[4], [8], [5]]) == {"longer": 0.5, "shorter": 0.5}
    assert L.length_baseline("pairwise", [[10], [12]], [[4], [8]]) == {"longer": 1.0, "shorter": 0.0}
    # best-of-4: the chosen one the longest (1), tied with one other at the top (1/2), neither (0)
    bo = L.length_baseline("best-of-n", [[9], [7], [5]], [[1, 2, 3], [7, 1, 2], [9, 1, 2]])
    assert bo["longer"] == pytest.approx((1 + 0.5 + 0) / 3)
    # shorter: item 1 (9 vs 1,2,3): 0; item 2 (7 vs 7,1,2): 0; item 3 (5 vs 9,1,2): 0
    assert bo["shorter"] == 0.0
    # RM-Bench 3×3: chosen (1, 5, 9) vs rejected (5, 5, 5): cells > : 0,0,0 | tie ½ ×3 | 1,1,1 → 4.5/9
    rb = L.length_baseline("rm-bench", [[1, 5, 9]], [[5, 5, 5]])
    assert rb == {"longer": 0.5, "shorter": 0.5}
    rb2 = L.length_baseline("rm-bench", [[10, 20, 30]], [[1, 2, 3]])
    assert rb2 == {"longer": 1.0, "shorter": 0.0}
    # strict (min chosen > max rejected), random tie-breaking: 2 chosen and 1 rejected tied at 5 →
    # the two chosen must both come first among three: 1/C(3, 2) = 1/3
    assert L.baseline_correct("strict-best-of-n", [5, 5], [5, 1]) == pytest.approx(1 / 3)
    assert L.baseline_correct("strict-best-of-n", [6, 5], [4, 1]) == 1.0
    assert L.baseline_correct("ties", [6, 3], [4, 1]) == 0.0
    # pairwise with several rejected, tied with 2 of them at the top: 1/3
    assert L.baseline_correct("pairwise", [5], [5, 5, 1]) == pytest.approx(1 / 3)
    with pytest.raises(RmtensionError):
        L.baseline_correct("rm-bench", [1, 2], [1, 2, 3])
    assert math.isnan(L.length_baseline("pairwise", [], [])["longer"])


def test_spearman_agrees_with_scipy_including_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=200).astype(float)  # many ties
    y = x + rng.normal(0, 2, size=200)
    assert L.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(L.spearman([1, 1, 1], [1, 2, 3]))


def test_multi_response_items_use_every_cell_and_resample_whole_items():
    c = L.cells([[3.0, 1.0]], [[0.0, 2.0, 5.0]], [[10, 20]], [[1, 2, 3]])
    assert c.margin.tolist() == [3.0, 1.0, -2.0, 1.0, -1.0, -4.0]
    assert c.length_diff.tolist() == [9, 8, 7, 19, 18, 17]
    many = L.cells([[1.0, 2.0]] * 3 + [[1.0]], [[0.0]] * 4, [[1, 1]] * 3 + [[1]], [[1]] * 4)
    idx = many.resample_index(np.random.default_rng(0))
    # every drawn item brings all its cells: cell counts per item in the resample are 0 mod its size
    counts = np.bincount(many.item[idx], minlength=4)
    assert all(counts[k] % many.counts[k] == 0 for k in range(4))
    assert counts.sum() == idx.size


def test_interval_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(1)
    n = 120
    cl = rng.integers(10, 200, size=n).astype(float)
    rl = rng.integers(10, 200, size=n).astype(float)
    cs = 0.01 * (cl - rl) + rng.normal(0, 1, size=n)
    args = ([[v] for v in cs], [[0.0]] * n, [[v] for v in cl], [[v] for v in rl])
    a = L.length_controls("pairwise", *args, n_resamples=300, seed=4)
    b = L.length_controls("pairwise", *args, n_resamples=300, seed=4)
    assert a == b
    rho = a["margin_length_spearman"]
    assert rho["ci95"][0] < rho["value"] < rho["ci95"][1] and rho["value"] > 0.2


def test_bins_partition_the_cells_and_show_the_length_rule():
    cl, rl = _matched_design()
    bins = L.length_bins(L.cells(cl, rl, cl, rl), 4)
    assert sum(b["n"] for b in bins) == 40
    assert [b["low"] for b in bins] == sorted(b["low"] for b in bins)
    # a length RM is right exactly when the chosen response is longer: 0 in the lowest bin, 1 in the highest
    assert bins[0]["score"] == 0.0 and bins[-1]["score"] == 1.0


def test_matched_rule_is_relative_to_the_longer_response():
    c = L.cells([[0.0]] * 4, [[0.0]] * 4, [[100], [100], [0], [10]], [[90], [89], [0], [0]])
    assert L.matched_mask(c, 0.1).tolist() == [True, False, True, False]
    with pytest.raises(RmtensionError):
        L.matched_mask(c, 1.5)


# ----------------------------------------------------------------------------- token counting


def test_response_tokens_are_the_response_alone_and_truncation_aware(tmp_path):
    from rmtension.models.reward_model import build_reward_model

    _, tok = build_reward_model("tiny-gpt2", seed=1)  # a byte-level tokenizer: one token per ASCII char
    prompt = user_prompt("Say something long, please.")
    short, long = "Fine.", "x" * 100
    texts = [format_for_rm(prompt, r, tok, "hh") for r in (short, long)]
    assert count_response_tokens(texts, [short, long], tok, max_length=1024) == [5, 100]
    # cut from the left to 16 tokens: the appended EOS survives, so 15 response tokens remain
    assert count_response_tokens(texts, [short, long], tok, max_length=16) == [5, 15]
    item = BenchItem("i", "s", "helpful", prompt, (short,), (long, "ok"))
    assert item_lengths([item], tok, "hh", 1024) == [([5], [100, 2])]


# ----------------------------------------------------------------------------- end to end


def test_eval_writes_length_fields_that_recompute_from_items(tmp_path):
    from rmtension.cli.main import main
    from rmtension.models.reward_model import build_reward_model, save_reward_model

    model, tok = build_reward_model("tiny-gpt2", seed=5)
    rm = tmp_path / "rm"
    save_reward_model(model, tok, rm, {"backbone": "tiny-gpt2", "template": "hh", "objective": "mixed", "seed": 5})
    rows = [{"id": f"p{k}", "subset": "pairs", "group": "helpful", "prompt": f"What is {k} plus {k}?",
             "chosen": f"It is {2 * k}." + " Indeed." * k, "rejected": f"It is {2 * k + 1}, I think."} for k in range(6)]
    rows += [{"id": f"m{k}", "subset": "styles", "group": "helpful", "prompt": f"Colour {k}?",
              "chosen": ["Blue.", "Blue is a colour.", "**Blue** is a colour."],
              "rejected": ["Loud.", "Loud is a colour.", f"**Loud** is a colour {k}."]} for k in range(3)]
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", "--rm", str(rm), "--bench", str(bench), "--out", str(out), "--no-progress"]) == 0
    results, items = read_results(out), read_items(out)
    entry = results["benchmarks"]["b"]
    assert entry["length_unit"] == "tokens"
    for row in items:
        # byte-level tokenizer, ASCII text: a response's tokens are its characters
        assert row["chosen_tokens"] == row["chosen_chars"] and row["rejected_tokens"] == row["rejected_chars"]
        src = next(r for r in rows if r["id"] == row["id"])
        chosen = [src["chosen"]] if isinstance(src["chosen"], str) else src["chosen"]
        assert row["chosen_chars"] == [len(x) for x in chosen]
    for subset, s in entry["subsets"].items():
        mine = [r for r in items if r["subset"] == subset]
        again = json.loads(json.dumps(L.controls_from_rows(mine, n_resamples=BOOTSTRAP_RESAMPLES)))
        for key in ("length_baseline", "margin_length_spearman", "length_matched", "length_bins"):
            assert s[key] == again[key], f"{subset}: {key}"
        assert s["length_matched"]["tolerance"] == 0.1
    assert entry["groups_length"]["helpful"]["length_baseline"]["longer"] == pytest.approx(
        np.mean([s["length_baseline"]["longer"] for s in entry["subsets"].values()]))


# ----------------------------------------------------------------------------- real data


def test_hh_longer_wins_helpful_but_loses_harmless(data_dir):
    """The confound on the real HH-RLHF test splits (all pairs, character lengths): the chosen
    response is more often the longer one in helpful-base (0.597 measured) and the shorter one in
    harmless-base (0.446 measured), so a length rule alone already "has" the tension."""
    from rmtension.data.sources import load_preferences

    base = {}
    for subset in ("helpful-base", "harmless-base"):
        pairs = load_preferences(f"hh-rlhf:{subset}", data_dir).pairs
        assert len(pairs) > 2000
        base[subset] = L.length_baseline("pairwise", [[len(p.chosen)] for p in pairs], [[len(p.rejected)] for p in pairs])
        assert base[subset]["longer"] + base[subset]["shorter"] == pytest.approx(1.0)  # ties split ½/½
    assert base["helpful-base"]["longer"] > 0.55
    assert base["harmless-base"]["longer"] < 0.47


def test_ties_composite_gets_a_prompt_bootstrap_interval():
    """Ties' score is a composite over ref/tied prompt pairs, so its interval resamples prompts."""
    from rmtension.evaluation.evaluate import _ties_ci95
    from rmtension.evaluation.metrics import ties_score

    rng = np.random.default_rng(2)
    ids, chosen, rejected = [], [], []
    for p in range(30):
        good = p % 3 != 0
        ids += [f"ref:{p}", f"tied:{p}"]
        chosen += [[2.0 if good else 0.0], [2.0 + rng.random(), 2.1 if good else -1.0]]
        rejected += [[1.0, 0.5], [1.0, 0.0]]
    score = ties_score(ids, chosen, rejected).score
    ci = _ties_ci95(ids, chosen, rejected)
    assert ci == _ties_ci95(ids, chosen, rejected)  # seeded
    assert ci["low"] < score < ci["high"] and ci["high"] - ci["low"] > 0.05


def test_bootstrap_rho_equals_the_spearman_of_the_resample_itself():
    """The interval's resamples are computed as weighted ranks (no re-sorting); each must equal the
    plain Spearman ρ of the explicitly resampled cells, ties and multi-cell items included."""
    rng = np.random.default_rng(7)
    n = 40
    cl = [list(rng.integers(1, 20, size=3).astype(float)) for _ in range(n)]
    rl = [list(rng.integers(1, 20, size=3).astype(float)) for _ in range(n)]
    cs = [list(rng.normal(size=3).round(1)) for _ in range(n)]
    rs = [list(rng.normal(size=3).round(1)) for _ in range(n)]
    c = L.cells(cs, rs, cl, rl)
    rx, ry = L._WeightedRanks(c.margin), L._WeightedRanks(c.length_diff)
    for _ in range(5):
        pick = rng.integers(0, n, size=n)
        w = np.bincount(pick, minlength=n).astype(float)[c.item][None, :]
        fast = L._weighted_pearson(rx.ranks(w), ry.ranks(w), w)[0]
        idx = np.concatenate([np.flatnonzero(c.item == i) for i in pick])
        assert fast == pytest.approx(spearmanr(c.margin[idx], c.length_diff[idx]).statistic, abs=1e-12)


def test_compare_recomputes_controls_on_the_compared_items():
    """When an eval's stored numbers cover other items (--intersect), compare recomputes them."""
    rows = {f"i{k}": {"chosen_scores": [float(k)], "rejected_scores": [0.0], "correct": float(k > 0),
                      "chosen_tokens": [10 + k], "rejected_tokens": [10]} for k in range(12)}
    ids = sorted(rows)[:10]
    out = L.task_controls({"mixed": rows, "helpful": rows}, ids, "pairwise",
                          {"mixed": {"n": 12, "margin_length_spearman": "stale"}, "helpful": None}, n_resamples=100)
    assert out["unit"] == "tokens"
    assert out["margin_length_spearman"]["mixed"] == out["margin_length_spearman"]["helpful"]
    assert out["margin_length_spearman"]["mixed"]["value"] == pytest.approx(1.0)  # margin = k = length difference
    assert out["length_baseline"] == {"longer": 0.95, "shorter": 0.05}  # i0 ties: ½ each
    assert out["length_matched"]["mixed"]["n"] == 2  # i0, i1 within 10% (lengths 10/10, 11/10)
    assert L.task_controls({"m": {"a": {"chosen_scores": [1], "rejected_scores": [0], "correct": 1.0}}},
                           ["a"], "pairwise") == {}
