"""Retention and calibration analyses on small cases worked out by hand (stated per test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmtension.analysis.calibration import compare_calibration, compare_margins, item_margin, shared_histogram
from rmtension.analysis.compare import CompareOptions
from rmtension.analysis.retention import correct_mask, retention, retention_by_task, unit_correctness
from rmtension.errors import RmtensionError

# item:     a  b  c  d  e  f
# helpful:  1  1  0  0  1  0   C_H = {a, b, e}
# harmless: 0  1  1  0  0  0   C_A = {b, c}          C_H ∪ C_A = {a, b, c, e} (4)
# mixed:    1  0  1  1  0  0   C_M = {a, c, d}
# retention = |{a, c}| / 4 = 0.5; helpful = |{a}| / 3; harmless = |{c}| / 2; mixed-only = {d}
IDS = list("abcdef")
H = [1, 1, 0, 0, 1, 0]
A = [0, 1, 1, 0, 0, 0]
M = [1, 0, 1, 1, 0, 0]


def _by_id(values):
    return {i: bool(v) for i, v in zip(IDS, values)}


def test_retention_by_hand_mappings():
    r = retention(_by_id(M), _by_id(H), _by_id(A))
    assert r.retention == 0.5
    assert r.kept_helpful == pytest.approx(1 / 3)
    assert r.kept_harmless == 0.5
    assert (r.n_units, r.n_union, r.n_mixed_and_union, r.n_mixed_only) == (6, 4, 2, 1)
    assert (r.n_mixed, r.n_helpful, r.n_harmless) == (3, 3, 2)


def test_retention_aligned_arrays_same_answer():
    r = retention(np.array(M, dtype=bool), H, np.array(A, dtype=float))
    assert r.retention == 0.5 and r.kept_helpful == pytest.approx(1 / 3)


def test_fractional_correctness_threshold():
    # best-of-n tie 1/3 and RM-Bench 8/9: not "right" at the default threshold 1.0, right at 0.5
    mixed = [1 / 3, 8 / 9, 1.0]
    helpful = [1.0, 1.0, 1.0]
    harmless = [0.0, 0.0, 0.0]
    strict = retention(mixed, helpful, harmless)
    assert strict.retention == pytest.approx(1 / 3)  # only the third item
    majority = retention(mixed, helpful, harmless, threshold=0.5)
    assert majority.retention == pytest.approx(2 / 3)  # 8/9 counts, 1/3 does not
    # floating error on a full score (e.g. 9 × 1/9) still counts as 1
    assert correct_mask([sum([1 / 9] * 9), 1 - 1e-12, 0.999]).tolist() == [True, True, False]
    with pytest.raises(RmtensionError):
        correct_mask([1.0], threshold=0.0)
    with pytest.raises(RmtensionError):
        correct_mask([float("nan")])


def test_empty_denominators_are_nan():
    # neither single RM gets anything right: nothing to retain → NaN, not a crash
    r = retention([1, 1], [0, 0], [0, 0])
    assert math.isnan(r.retention) and math.isnan(r.kept_helpful) and math.isnan(r.kept_harmless)
    assert r.n_mixed_only == 2
    assert r.to_dict()["retention"] is None  # JSON-ready
    empty = retention({}, {}, {})
    assert empty.n_units == 0 and math.isnan(empty.retention)
    # only the helpful RM is right somewhere: harmless retention NaN, the others defined
    r = retention([1, 0], [1, 1], [0, 0])
    assert r.retention == 0.5 and r.kept_helpful == 0.5 and math.isnan(r.kept_harmless)


def test_mismatched_items():
    mixed = _by_id(M)
    helpful = _by_id(H)
    harmless = {k: v for k, v in _by_id(A).items() if k != "f"}
    with pytest.raises(RmtensionError, match="same items"):
        retention(mixed, helpful, harmless)
    # intersect: f drops out; f is wrong everywhere, so the ratios are unchanged
    r = retention(mixed, helpful, harmless, on_mismatch="intersect")
    assert r.n_units == 5 and r.retention == 0.5
    with pytest.raises(RmtensionError, match="length"):
        retention([1, 0], [1], [0, 0])
    with pytest.raises(RmtensionError, match="all three"):
        retention(mixed, H, A)


def test_retention_by_task():
    out = retention_by_task({"chat": M, "safety": [1, 1]}, {"chat": H, "safety": [1, 0]},
                            {"chat": A, "safety": [0, 1]})
    assert list(out) == ["chat", "safety"]
    assert out["chat"].retention == 0.5 and out["safety"].retention == 1.0
    with pytest.raises(RmtensionError, match="safety"):
        retention_by_task({"chat": M, "safety": [1]}, {"chat": H}, {"chat": A})


# ----------------------------------------------------------------------------- calibration


def test_item_margin_rules():
    assert item_margin([2.0], [0.5]) == 1.5
    # chosen [3, 2], rejected [1, 1.5]: min-max = 2 − 1.5 = 0.5; mean = 2.5 − 1.25 = 1.25
    assert item_margin([3.0, 2.0], [1.0, 1.5]) == 0.5
    assert item_margin([3.0, 2.0], [1.0, 1.5], rule="mean") == 1.25
    with pytest.raises(RmtensionError):
        item_margin([1.0], [0.0], rule="median")
    with pytest.raises(RmtensionError, match="non-finite"):
        item_margin([float("nan")], [0.0])


# single RM: x margin 2 (right), y margin 0.5 (right), z margin −1 (wrong)
# mixed RM:  x margin 0.5,      y margin 1,           z margin 1 (right)
# both right (strict rule, no correctness given): {x, y}
# single margins [2, .5]: mean 1.25, median 1.25, std sqrt(2 · .75² / 1) = 1.06066
# mixed margins [.5, 1]: mean .75; mixed smaller on x only → share 0.5; mean(mixed − single) = −0.5
# scores of x, y: single [2, 0, 1, .5] → mean |s| .875; mixed [.5, 0, 1, 0] → .375
# margin histogram, 3 bins over the pooled range [.5, 2]: edges .5, 1, 1.5, 2
#   single (.5, 2) → [1, 0, 1]; mixed (.5, 1) → [1, 1, 0]
SINGLE = {"x": ([2.0], [0.0]), "y": ([1.0], [0.5]), "z": ([0.0], [1.0])}
MIXED = {"x": ([0.5], [0.0]), "y": ([1.0], [0.0]), "z": ([1.0], [0.0])}


def test_calibration_by_hand():
    res = compare_calibration(SINGLE, MIXED, bins=3)
    assert res.ids == ["x", "y"] and res.n == 2
    assert res.single_margin.mean == pytest.approx(1.25)
    assert res.single_margin.median == pytest.approx(1.25)
    assert res.single_margin.std == pytest.approx(1.0606601)
    assert res.mixed_margin.mean == pytest.approx(0.75)
    assert res.share_mixed_smaller == 0.5
    assert res.mean_margin_difference == pytest.approx(-0.5)
    assert res.single_score.mean_abs == pytest.approx(0.875)
    assert res.mixed_score.mean_abs == pytest.approx(0.375)
    assert res.margin_hist.edges == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert res.margin_hist.single == [1, 0, 1]
    assert res.margin_hist.mixed == [1, 1, 0]
    assert sum(res.score_hist.single) == 4 and sum(res.score_hist.mixed) == 4
    d = res.to_dict()
    assert d["n"] == 2 and "ids" not in d and res.to_dict(include_ids=True)["ids"] == ["x", "y"]


def test_calibration_with_correctness_and_threshold():
    # the metric says y is only 1/3 right for the mixed RM: at threshold 1.0 only x is shared
    single_c = {"x": 1.0, "y": 1.0, "z": 0.0}
    mixed_c = {"x": 1.0, "y": 1 / 3, "z": 1.0}
    res = compare_calibration(SINGLE, MIXED, single_c, mixed_c)
    assert res.ids == ["x"]
    assert res.single_margin.n == 1 and math.isnan(res.single_margin.std)
    res = compare_calibration(SINGLE, MIXED, single_c, mixed_c, threshold=0.3)
    assert res.ids == ["x", "y"]
    with pytest.raises(RmtensionError, match="no scores"):
        compare_calibration(SINGLE, MIXED, {"q": 1.0}, mixed_c)


def test_calibration_empty_and_checks():
    res = compare_calibration({}, {})
    assert res.n == 0 and math.isnan(res.share_mixed_smaller) and math.isnan(res.single_margin.mean)
    assert res.to_dict()["share_mixed_smaller"] is None
    with pytest.raises(RmtensionError):
        compare_margins([1.0, 2.0], [1.0])
    with pytest.raises(RmtensionError):
        compare_margins([float("nan")], [1.0])
    h = shared_histogram([0.0, 1.0], [0.5], bins=[0.0, 0.5, 1.0])
    assert h.single == [1, 1] and h.mixed == [0, 1]


def test_unit_correctness_units_and_bad_unit():
    rows = {"x": {"chosen_scores": [2.0, 1.0, 0.5], "rejected_scores": [1.0, 1.5, 0.0], "correct": 4 / 9},
            "y": {"chosen_scores": [1.0], "rejected_scores": [0.0], "correct": 1.0}}
    # the paper's units: an RM-Bench item is its three same-style pairs (2>1, 1>1.5 no, 0.5>0)
    assert unit_correctness({"x": rows["x"]}, "rm-bench") == {"x#0": True, "x#1": False, "x#2": True}
    assert unit_correctness({"y": rows["y"]}, "pairwise") == {"y": True}
    # whole items: the benchmark's own correctness, thresholded later by retention()
    assert unit_correctness(rows, "rm-bench", unit="item") == {"x": 4 / 9, "y": 1.0}
    with pytest.raises(RmtensionError, match="retention unit"):
        unit_correctness(rows, "rm-bench", unit="diagonal")
    with pytest.raises(RmtensionError, match="same-style"):
        unit_correctness({"z": {"chosen_scores": [1.0, 2.0], "rejected_scores": [0.0]}}, "rm-bench")
    with pytest.raises(RmtensionError, match="retention unit"):
        CompareOptions(unit="all-nine").check()
