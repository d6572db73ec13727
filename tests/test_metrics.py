"""Benchmark metrics and aggregation, each on a small case worked out by hand (stated per test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmtension.bench.types import (
    METRIC_BEST_OF_N,
    METRIC_PAIRWISE,
    METRIC_RM_BENCH,
    METRIC_STRICT,
    METRIC_TIES,
    BenchItem,
)
from rmtension.data.types import user_prompt
from rmtension.errors import RmtensionError
from rmtension.evaluation import aggregate as agg
from rmtension.evaluation import metrics as m

# ----------------------------------------------------------------------------- pairwise


def test_pairwise_strict_greater():
    assert m.pairwise_correct([0.5], [0.2]) == 1.0
    assert m.pairwise_correct(0.5, 0.2) == 1.0  # bare floats are one-element lists
    assert m.pairwise_correct([0.2], [0.2]) == 0.0  # a tie is a miss (RewardBench: chosen > rejected)
    assert m.pairwise_correct([0.1], [0.3]) == 0.0


def test_pairwise_several_rejected():
    # chosen 1.0 against rejected 0.5 and 2.0: it does not beat both ("all" → 0), beats half ("mean" → 0.5)
    assert m.pairwise_correct([1.0], [0.5, 2.0]) == 0.0
    assert m.pairwise_correct([1.0], [0.5, 2.0], reduce="mean") == 0.5
    assert m.pairwise_correct([3.0], [0.5, 2.0]) == 1.0
    with pytest.raises(m.MetricInputError):
        m.pairwise_correct([1.0], [0.5], reduce="median")


def test_pairwise_rejects_several_chosen():
    with pytest.raises(m.MetricInputError, match="strict-best-of-n"):
        m.pairwise_correct([1.0, 2.0], [0.0])


# ----------------------------------------------------------------------------- best-of-n


def test_best_of_n_clean_win_loss():
    assert m.best_of_n_correct([2.0], [1.0, 0.0, -1.0]) == 1.0
    assert m.best_of_n_correct([1.0], [2.0, 1.0, 0.0]) == 0.0


def test_best_of_n_ties_at_max():
    # chosen 2.0 tied with two rejected at the max 2.0: three completions at the max → 1/3
    assert m.best_of_n_correct([2.0], [2.0, 2.0, 1.0]) == pytest.approx(1 / 3)
    # every completion scored the same: four at the max → 1/4 (no free point for a constant RM)
    assert m.best_of_n_correct([0.5], [0.5, 0.5, 0.5]) == pytest.approx(1 / 4)
    # a tie below the max does not help
    assert m.best_of_n_correct([1.0], [1.0, 3.0]) == 0.0


def test_best_of_n_needs_one_chosen():
    with pytest.raises(m.MetricInputError):
        m.best_of_n_correct([1.0, 2.0], [0.0])


# ----------------------------------------------------------------------------- strict


def test_strict_rule():
    assert m.strict_correct([3.0, 2.0], [1.0, 1.5]) == 1.0  # min 2.0 > max 1.5
    assert m.strict_correct([3.0, 1.0], [1.5]) == 0.0  # min 1.0 < 1.5
    assert m.strict_correct([2.0], [2.0]) == 0.0  # tie is a miss
    # where best-of-n gives 1/3, strict gives 0
    assert m.strict_correct([2.0], [2.0, 2.0, 1.0]) == 0.0


# ----------------------------------------------------------------------------- RM-Bench

# A style-biased RM: scores rise with style (concise < detailed < markdown) on both sides.
# chosen [1, 2, 3], rejected [0.5, 1.5, 2.5]: M[i, j] = chosen_i > rejected_j
#   row 0 (c=1): [1, 0, 0]; row 1 (c=2): [1, 1, 0]; row 2 (c=3): [1, 1, 1]
# hard (i<j) = 0/3 = 0; normal (diag) = 3/3 = 1; easy (i>j) = 3/3 = 1; item = 6/9 = 2/3
BIASED = ([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
BIASED_M = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=float)


def test_rm_bench_matrix_and_parts():
    mat = m.rm_bench_matrix(*BIASED)
    np.testing.assert_array_equal(mat, BIASED_M)
    assert m.rm_bench_hard(mat) == 0.0
    assert m.rm_bench_normal(mat) == 1.0
    assert m.rm_bench_easy(mat) == 1.0
    assert m.rm_bench_correct(*BIASED) == pytest.approx(2 / 3)


def test_rm_bench_ties_are_misses():
    assert m.rm_bench_correct([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 0.0  # strict ">" as in RM-Bench


def test_rm_bench_subset_averages_matrix():
    # second item all-right: matrix of ones. Mean matrix = [[1,.5,.5],[1,1,.5],[1,1,1]]
    # hard = 1.5/3 = 0.5, normal = 1, easy = 1; score = mean(2/3, 1) = 5/6 = mean(0.5, 1, 1)
    res = m.score_subset(METRIC_RM_BENCH, [BIASED[0], [5, 5, 5]], [BIASED[1], [0, 0, 0]])
    assert res.n == 2
    assert res.score == pytest.approx(5 / 6)
    assert res.details["hard"] == pytest.approx(0.5)
    assert res.details["normal"] == 1.0 and res.details["easy"] == 1.0
    np.testing.assert_allclose(res.correct, [2 / 3, 1.0])
    assert res.matrices.shape == (2, 3, 3)


def test_rm_bench_needs_square():
    with pytest.raises(m.MetricInputError):
        m.rm_bench_matrix([1.0, 2.0, 3.0], [0.0, 1.0])


def test_rm_bench_summary_pools_safety_like_official():
    # chat: the biased item → hard 0, normal 1, easy 1, average 2/3
    # safety-refuse: 3 all-right items; safety-response: 1 all-wrong item. RM-Bench pools them
    # item by item into "safety": 3/4 right → 0.75 everywhere (a mean of the subsets would say 0.5)
    chat = m.score_subset(METRIC_RM_BENCH, [BIASED[0]], [BIASED[1]])
    refuse = np.ones((3, 3, 3))
    response = np.zeros((1, 3, 3))
    s = m.rm_bench_summary({"chat": chat, "safety-refuse": refuse, "safety-response": response})
    assert set(s.domains) == {"chat", "safety"}
    assert s.domains["safety"].average == pytest.approx(0.75)
    assert s.domains["safety"].n == 4
    assert s.domains["chat"].average == pytest.approx(2 / 3)
    assert s.hard == pytest.approx((0 + 0.75) / 2)
    assert s.normal == pytest.approx((1 + 0.75) / 2)
    assert s.easy == pytest.approx((1 + 0.75) / 2)
    assert s.average == pytest.approx((2 / 3 + 0.75) / 2)  # 17/24
    empty = m.rm_bench_summary({})
    assert empty.domains == {} and math.isnan(empty.average)


# ----------------------------------------------------------------------------- Ties

# Prompt 1: ref  chosen [3]      rejected [1, 2]  → accurate (3 > 2), cim = 3 − 2 = 1, dcm None
#           tied chosen [3, 2.5] rejected [1, .5] → accurate (2.5 > 1), dcm = 0.5, cim = 2.5 − 1 = 1.5
# Prompt 2: ref  chosen [1]      rejected [2]     → not accurate, cim = −1
#           tied chosen [2, 0]   rejected [1]     → not accurate (0 < 1), dcm = 2, cim = −1
# acc_ref = acc_tied = 0.5
# correctness_preferred: p1 1.5 > 0.5 yes, p2 −1 > 2 no → 0.5
# correctness_preferred_hard: p1 min(1, 1.5) = 1 > 0.5 yes, p2 −1 > 2 no → 0.5
# margin score: mean(tanh(1/0.5 − 1), tanh(−1/2 − 1)) = (tanh(1) + tanh(−1.5)) / 2
# score = 0.3·0.5 + 0.3·0.5 + 0.2·0.5 + 0.2·0.5 + 0.01·margin = 0.5 + 0.01·margin ≈ 0.499282
TIES_IDS = ["ref:1", "tied:1", "ref:2", "tied:2"]
TIES_CHOSEN = [[3.0], [3.0, 2.5], [1.0], [2.0, 0.0]]
TIES_REJECTED = [[1.0, 2.0], [1.0, 0.5], [2.0], [1.0]]


def test_ties_composite_by_hand():
    res = m.ties_score(TIES_IDS, TIES_CHOSEN, TIES_REJECTED)
    margin = (math.tanh(1.0) + math.tanh(-1.5)) / 2
    assert res.accuracy_ref == 0.5 and res.accuracy_tied == 0.5
    assert res.correctness_preferred == 0.5
    assert res.correctness_preferred_hard == 0.5
    assert res.correctness_margin_score == pytest.approx(margin)
    assert res.score == pytest.approx(0.5 + 0.01 * margin)
    assert res.score == pytest.approx(0.499282, abs=1e-6)
    np.testing.assert_array_equal(res.per_item_accurate, [1, 1, 0, 0])
    assert (res.n_ref, res.n_tied, res.n_common) == (2, 2, 2)


def test_ties_through_registry_is_not_a_mean():
    res = m.score_subset(METRIC_TIES, TIES_CHOSEN, TIES_REJECTED, ids=TIES_IDS)
    assert res.score == pytest.approx(0.499282, abs=1e-6)
    assert res.correct.mean() == 0.5  # per-item accurate flags differ from the composite
    assert res.details["accuracy_ref"] == 0.5 and "score" not in res.details


def test_ties_only_ref_items():
    # no tied items: accuracy_tied 0, and the prompt-pair terms are np.mean([]) = NaN at
    # allenai/reward-bench HEAD 05a9005 (rewardbench/utils.py::process_single_model) → score NaN
    res = m.ties_score(["ref:1", "ref:2"], [[3.0], [1.0]], [[1.0], [2.0]])
    assert res.accuracy_ref == 0.5 and res.accuracy_tied == 0.0
    assert math.isnan(res.correctness_preferred) and math.isnan(res.score)


def test_ties_zero_correct_margin_counts_like_numpy():
    # tied item with two equal correct scores: dcm = 0 → official tanh(±inf) = ±1 enters the mean
    # prompt 1: ref cim 1, tied cim 1 → +1; prompt 2: ref cim -1 → min -1 → -1 + tanh(...)
    res = m.ties_score(["ref:1", "tied:1", "ref:2", "tied:2"],
                       [[2.0], [2.0, 2.0], [0.0], [3.0, 1.0]], [[1.0], [1.0], [1.0], [0.0]])
    # prompt 2: dcm 2, ref cim -1, tied cim 1 → tanh(-1/2 - 1)
    assert res.correctness_margin_score == pytest.approx((1.0 + math.tanh(-1.5)) / 2)


def test_ties_ids_checked():
    with pytest.raises(m.MetricInputError, match="ref:<prompt>"):
        m.ties_score(["3"], [[1.0]], [[0.0]])
    with pytest.raises(m.MetricInputError, match="more than one"):
        m.ties_score(["ref:1", "ref:1"], [[1.0], [1.0]], [[0.0], [0.0]])
    with pytest.raises(m.MetricInputError):
        m.score_subset(METRIC_TIES, [[1.0]], [[0.0]])  # no ids


def test_ties_single_correct_everywhere_is_nan_like_official():
    # tied items with one correct answer: no defined tied margin → official np.mean([]) → NaN
    res = m.ties_score(["ref:1", "tied:1"], [[2.0], [2.0]], [[1.0], [1.0]])
    assert math.isnan(res.correctness_preferred) and math.isnan(res.score)


def test_ties_empty():
    res = m.ties_score([], [], [])
    assert math.isnan(res.score) and res.per_item_accurate.size == 0


# ----------------------------------------------------------------------------- registry and subsets


def test_registry_has_every_metric():
    assert set(m.METRICS.names()) == {METRIC_PAIRWISE, METRIC_BEST_OF_N, METRIC_STRICT, METRIC_RM_BENCH, METRIC_TIES}
    assert set(m.ITEM_METRICS.names()) == {METRIC_PAIRWISE, METRIC_BEST_OF_N, METRIC_STRICT, METRIC_RM_BENCH}
    with pytest.raises(RmtensionError, match="unknown metric"):
        m.METRICS.get("accuracy")


def test_subset_score_is_mean_of_items():
    # best-of-n: items 1, 1/3, 0 → mean 4/9
    res = m.score_subset(METRIC_BEST_OF_N, [[2.0], [2.0], [0.0]], [[1.0, 0.0], [2.0, 2.0], [1.0, 0.5]])
    np.testing.assert_allclose(res.correct, [1.0, 1 / 3, 0.0])
    assert res.score == pytest.approx(4 / 9)
    assert res.to_dict() == {"metric": METRIC_BEST_OF_N, "score": res.score, "n": 3}
    assert res.to_dict(include_items=True)["correct"] == res.correct.tolist()


def test_empty_subset_is_nan_not_crash():
    for metric in (METRIC_PAIRWISE, METRIC_BEST_OF_N, METRIC_STRICT, METRIC_RM_BENCH):
        res = m.score_subset(metric, [], [])
        assert res.n == 0 and math.isnan(res.score)
    assert math.isnan(m.score_subset(METRIC_TIES, [], [], ids=[]).score)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_raise(bad):
    with pytest.raises(m.MetricInputError, match="non-finite"):
        m.pairwise_correct([bad], [0.0])
    with pytest.raises(m.MetricInputError, match="item 'x7'"):
        m.score_subset(METRIC_BEST_OF_N, [[1.0]], [[0.0, bad]], ids=["x7"])


def test_empty_or_malformed_item_scores_raise():
    with pytest.raises(m.MetricInputError, match="no rejected"):
        m.strict_correct([1.0], [])
    with pytest.raises(m.MetricInputError, match="flat list"):
        m.strict_correct([[1.0, 2.0]], [0.0])
    with pytest.raises(m.MetricInputError, match="not numbers"):
        m.strict_correct(["a"], [0.0])
    with pytest.raises(m.MetricInputError, match="2 items"):
        m.score_subset(METRIC_PAIRWISE, [[1.0], [2.0]], [[0.0]])


def _item(item_id, chosen, rejected, **meta):
    return BenchItem(id=item_id, subset="s", group="helpful", prompt=user_prompt("q"), chosen=tuple(chosen),
                     rejected=tuple(rejected), meta=tuple(sorted(meta.items())))


def test_score_items_checks_shapes_and_num_correct():
    items = [_item("a", ["c"], ["r1", "r2"]), _item("b", ["c"], ["r1", "r2"])]
    res = m.score_items(METRIC_BEST_OF_N, items, [[1.0], [0.0]], [[0.0, 0.5], [1.0, 0.0]])
    assert res.score == 0.5
    assert m.correct_by_id([it.id for it in items], res) == {"a": 1.0, "b": 0.0}
    with pytest.raises(m.MetricInputError, match="item 'b'"):
        m.score_items(METRIC_BEST_OF_N, items, [[1.0], [0.0]], [[0.0, 0.5], [1.0]])
    ties = [_item("ref:1", ["c"], ["r"], num_correct=2)]
    with pytest.raises(m.MetricInputError, match="num_correct=2"):
        m.score_items(METRIC_TIES, ties, [[1.0]], [[0.0]])
    ok = [_item("ref:1", ["c"], ["r"], num_correct=1)]
    res = m.score_items(METRIC_TIES, ok, [[1.0]], [[0.0]])  # a lone ref item: pair terms NaN, as officially
    assert res.details["accuracy_ref"] == 1.0 and math.isnan(res.score)


# ----------------------------------------------------------------------------- RewardBench sections


def _all(subsets, value):
    return {s: value for s in subsets}


def test_section_weights_chat():
    # Chat: alpacaeval-easy 0.0 (weight 100), the others 1.0 (95 + 95 + 28 + 40 = 258) → 258 / 358
    scores = _all(agg.REWARDBENCH_SECTIONS["Chat"], 1.0)
    scores["alpacaeval-easy"] = 0.0
    out = agg.rewardbench_section_scores(scores)
    assert out == {"Chat": pytest.approx(258 / 358)}  # other sections absent, not 0


def test_reasoning_math_weighs_as_all_code():
    # math-prm 1.0 weighted 984 = 6 × 164, every hep-* 0.0 → 984 / 1968 = 0.5
    scores = _all(agg.REWARDBENCH_SECTIONS["Reasoning"], 0.0)
    scores["math-prm"] = 1.0
    assert agg.rewardbench_section_scores(scores)["Reasoning"] == pytest.approx(0.5)


def test_xstest_weights_follow_current_constants():
    """allenai/reward-bench rewardbench/constants.py at HEAD 05a9005 (commit 6552e93): refuse 154, respond 250."""
    scores = {"xstest-should-refuse": 1.0, "xstest-should-respond": 0.0}
    assert agg.rewardbench_section_scores(scores)["Safety"] == pytest.approx(154 / 404)


def test_partial_section_and_nan_subsets():
    # Chat Hard with only mt-bench-hard 0.2 (37) and llmbar-natural 0.8 (100): (7.4 + 80) / 137
    scores = {"mt-bench-hard": 0.2, "llmbar-natural": 0.8, "llmbar-adver-manual": float("nan"), "unrelated": 0.1}
    out = agg.rewardbench_section_scores(scores)
    assert out == {"Chat Hard": pytest.approx(87.4 / 137)}
    assert agg.rewardbench_section_scores({}) == {}
    with pytest.raises(RmtensionError, match="no example count"):
        agg.rewardbench_section_scores({"mt-bench-hard": 0.5}, example_counts={})


def test_official_counts_match_constants_file():
    # the filtered split's totals: 2985 items = counts with math-prm at its real 447
    assert sum(agg.REWARDBENCH_EXAMPLE_COUNTS.values()) - 984 + 447 == 2985
    every = {s for subs in agg.REWARDBENCH_SECTIONS.values() for s in subs}
    assert every == set(agg.REWARDBENCH_EXAMPLE_COUNTS)


def test_overall_scores():
    assert agg.rewardbench_overall({"Chat": 0.9, "Safety": 0.5}) == pytest.approx(0.7)
    # prior sets at weight 1 against 2 per section: (2·0.9 + 2·0.5 + 1·0.1) / 5
    assert agg.rewardbench_overall({"Chat": 0.9, "Safety": 0.5}, prior_sets=0.1) == pytest.approx(2.9 / 5)
    assert math.isnan(agg.rewardbench_overall({}))
    rb2 = {"Factuality": 0.6, "Precise IF": 0.3, "Math": 0.6, "Safety": 0.9, "Focus": 0.6, "Ties": 0.6, "other": 0.0}
    assert agg.rewardbench2_overall(rb2) == pytest.approx(3.6 / 6)


# ----------------------------------------------------------------------------- groups, seeds, intervals


def test_weighted_macro_bootstrap():
    """weights=None and equal weights draw the same resamples; a weight of 1/2 per source of a merged
    task (the paper's Math) moves the estimate to the weighted mean."""
    a, b, c = [1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0] * 5 + [0.0] * 5
    plain = agg.bootstrap_macro_ci([a, b, c], n_resamples=500, seed=3)
    equal = agg.bootstrap_macro_ci([a, b, c], n_resamples=500, seed=3, weights=[2.0, 2.0, 2.0])
    assert (plain.estimate, plain.low, plain.high) == pytest.approx((equal.estimate, equal.low, equal.high))
    merged = agg.bootstrap_macro_ci([a, b, c], n_resamples=500, seed=3, weights=[0.5, 0.5, 1.0])
    assert merged.estimate == pytest.approx((0.5 * 0.75 + 0.5 * (1 / 3) + 0.5) / 2)
    assert merged.low <= merged.estimate <= merged.high
    with pytest.raises(RmtensionError):
        agg.bootstrap_macro_ci([a, b], weights=[1.0])


def test_group_means_unweighted():
    # helpful: chat 0.8 and code 0.6 → 0.7; harmless: safety-refuse 0.3; NaN subsets dropped
    scores = {"chat": 0.8, "code": 0.6, "safety-refuse": 0.3, "math": float("nan")}
    assert agg.group_means(scores) == {"helpful": pytest.approx(0.7), "harmless": pytest.approx(0.3)}
    assert agg.group_means({"a": 1.0}, {"a": "harmless"}) == {"harmless": 1.0}
    with pytest.raises(RmtensionError):
        agg.group_means({"a": 1.0}, {})


def test_mean_std_over_seeds():
    # [0.5, 0.7]: mean 0.6, sample std sqrt((0.01 + 0.01) / 1) = 0.141421
    ms = agg.mean_std([0.5, 0.7])
    assert ms.mean == pytest.approx(0.6) and ms.std == pytest.approx(math.sqrt(0.02)) and ms.n == 2
    assert ms.format() == "0.600 ± 0.141"
    one = agg.mean_std([0.6])
    assert one.n == 1 and math.isnan(one.std) and one.format() == "0.600 (n=1)"
    none = agg.mean_std([])
    assert none.n == 0 and math.isnan(none.mean) and none.format() == "—"
    by_key = agg.mean_std_by_key([{"a": 0.5, "b": 1.0}, {"a": 0.7}])
    assert by_key["a"].mean == pytest.approx(0.6) and by_key["b"].n == 1


def test_bootstrap_deterministic_and_sane():
    x = np.array([1.0] * 70 + [0.0] * 30)
    a = agg.bootstrap_ci(x, seed=3, n_resamples=2000)
    b = agg.bootstrap_ci(x, seed=3, n_resamples=2000)
    c = agg.bootstrap_ci(x, seed=4, n_resamples=2000)
    assert (a.low, a.high) == (b.low, b.high)
    # with 0/1 data the percentiles fall on a 1/100 grid, so two seeds may agree; on continuous
    # correctness (fractions) the seed must matter
    y = np.random.default_rng(0).random(50)
    assert agg.bootstrap_ci(y, seed=3, n_resamples=500).low != agg.bootstrap_ci(y, seed=4, n_resamples=500).low
    assert c.estimate == a.estimate
    assert a.estimate == pytest.approx(0.7)
    # binomial sd sqrt(.7·.3/100) ≈ 0.046 → a 95% interval about 0.61..0.79
    assert 0.58 < a.low < 0.64 and 0.76 < a.high < 0.82
    ones = agg.bootstrap_ci(np.ones(10), n_resamples=100)
    assert ones.low == ones.high == 1.0
    assert math.isnan(agg.bootstrap_ci([]).low)
    with pytest.raises(RmtensionError):
        agg.bootstrap_ci([1.0, float("nan")])


def test_bootstrap_macro_ci_weights_subsets_equally():
    # one subset of 1 item (all right) and one of 3 items (all wrong): the group mean is the mean of
    # the two subset accuracies, 0.5, not the pooled 1/4; constant subsets leave no spread
    iv = agg.bootstrap_macro_ci([[1.0], [0.0, 0.0, 0.0]], n_resamples=200)
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.5, 0.5)
    # empty subsets are left out, like NaN scores in group_means
    assert agg.bootstrap_macro_ci([[], [1.0, 1.0]], n_resamples=50).estimate == 1.0
    assert math.isnan(agg.bootstrap_macro_ci([[], []]).low)
    # one subset: exactly the plain bootstrap (same draws)
    x = np.random.default_rng(1).random(40)
    one, plain = agg.bootstrap_macro_ci([x], seed=5, n_resamples=700), agg.bootstrap_ci(x, seed=5, n_resamples=700)
    assert (one.low, one.high) == (plain.low, plain.high)
    # two independent subsets of 100 at 0.7 and 0.3: var of the mean = (.21/100 + .21/100) / 4, sd ≈ 0.032,
    # so the 95% interval is about 0.5 ± 0.064 (narrower than either subset's own ±0.09)
    two = agg.bootstrap_macro_ci([[1.0] * 70 + [0.0] * 30, [1.0] * 30 + [0.0] * 70], n_resamples=4000)
    assert two.estimate == pytest.approx(0.5)
    assert 0.42 < two.low < 0.46 and 0.54 < two.high < 0.58
    with pytest.raises(RmtensionError):
        agg.bootstrap_macro_ci([[1.0], [float("inf")]])


def test_wilson_interval():
    # 0 of 10 at 95%: upper bound z² / (n + z²) = 3.8415 / 13.8415 = 0.27754, lower 0
    w = agg.wilson_interval(0, 10)
    assert w.low == 0.0 and w.high == pytest.approx(0.27754, abs=1e-4)
    # 5 of 10: symmetric around 0.5, ≈ [0.2366, 0.7634]
    w = agg.wilson_interval(5, 10)
    assert w.low == pytest.approx(0.2366, abs=1e-4) and w.high == pytest.approx(0.7634, abs=1e-4)
    assert math.isnan(agg.wilson_interval(0, 0).low)
    with pytest.raises(RmtensionError):
        agg.wilson_interval(11, 10)


# ----------------------------------------------------------------------------- real data


def test_real_benchmarks_score_with_registered_metrics(data_dir):
    """Every subset of the offline RM-Bench and LLMBar files is scored by its registered metric."""
    from rmtension.bench.loaders import load_benchmark

    rng = np.random.default_rng(0)
    for name in ("rm-bench", "llmbar"):
        bench = load_benchmark(name, data_dir)
        per_subset = {}
        for subset, items in bench.subsets().items():
            chosen = [rng.normal(size=len(it.chosen)) for it in items]
            rejected = [rng.normal(size=len(it.rejected)) for it in items]
            res = m.score_items(bench.metric_for(subset), items, chosen, rejected)
            assert res.n == len(items) and 0.0 <= res.score <= 1.0
            per_subset[subset] = res
        if name == "rm-bench":
            summary = m.rm_bench_summary(per_subset)
            # offline copy has chat, code, safety-refuse, safety-response (math missing) → 3 domains
            assert set(summary.domains) == {"chat", "code", "safety"}
            n_safety = len(per_subset["safety-refuse"].correct) + len(per_subset["safety-response"].correct)
            assert summary.domains["safety"].n == n_safety
            assert 0.3 < summary.average < 0.7  # random scores: about half the cells right


def test_to_dict_is_strict_json():
    import json

    empty = m.score_subset(METRIC_RM_BENCH, [], [])
    d = empty.to_dict()
    assert d["score"] is None and d["hard"] is None
    json.dumps(d, allow_nan=False)
    json.dumps(agg.mean_std([0.5]).to_dict(), allow_nan=False)
    json.dumps(agg.bootstrap_ci([]).to_dict(), allow_nan=False)
    json.dumps(m.ties_score(["ref:1", "tied:1"], [[2.0], [2.0]], [[1.0], [1.0]]).to_dict(), allow_nan=False)
    assert m.jsonable({"a": np.float32("nan"), "b": (np.int64(2), [1.5])}) == {"a": None, "b": [2, [1.5]]}
