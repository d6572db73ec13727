"""Scores from statistics, top-k% selection, set algebra, overlap figures, thirds, random sets, set files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rmtension.errors import RmtensionError
from rmtension.neurons.scores import SCORE_METHODS, compute_scores
from rmtension.neurons.sets import (
    NeuronSet,
    a_only,
    b_only,
    combine,
    location,
    n_selected,
    overlap,
    random_like,
    retention,
    select_top,
    shared,
    thirds,
    union,
)
from rmtension.neurons.setfile import from_json, load_set, save_set, to_json
from rmtension.neurons.stats import Moments, NeuronStats


def _stats_from(acts: dict[str, np.ndarray], diff: dict[str, np.ndarray] | None = None) -> NeuronStats:
    """Statistics of explicit token activations {group: (tokens, L, N)}."""
    groups = list(acts)
    L, N = next(iter(acts.values())).shape[1:]

    def moments(src):
        m = Moments.zeros(groups, L, N)
        for gi, g in enumerate(groups):
            a = src[g]
            m.count[gi] = a.shape[0]
            m.sum[gi], m.abs_sum[gi], m.sq_sum[gi] = a.sum(0), np.abs(a).sum(0), (a**2).sum(0)
            m.pos_count[gi] = (a > 0).sum(0)
        return m

    return NeuronStats("act", L, N, moments(acts), np.ones(len(groups)), moments(diff) if diff else None)


def test_score_methods_match_definitions():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(50, 3, 8)), rng.normal(size=(30, 3, 8)) - 0.5
    dc, dr = rng.normal(size=(50, 3, 8)), rng.normal(size=(30, 3, 8))
    stats = _stats_from({"chosen": c, "rejected": r}, {"chosen": dc, "rejected": dr})
    allt = np.concatenate([c, r])
    np.testing.assert_allclose(compute_scores(stats, "magnitude", "all"), allt.mean(0))
    np.testing.assert_allclose(compute_scores(stats, "mean-abs", "all"), np.abs(allt).mean(0))
    np.testing.assert_allclose(compute_scores(stats, "rms", "all"), np.sqrt((allt**2).mean(0)))
    np.testing.assert_allclose(compute_scores(stats, "prob", "all"), (allt > 0).mean(0))
    np.testing.assert_allclose(compute_scores(stats, "change", "all"), np.sqrt((np.concatenate([dc, dr]) ** 2).mean(0)))
    # the default, group-mean: each side over its own tokens, then (chosen + rejected) / 2 (the paper)
    np.testing.assert_allclose(compute_scores(stats, "magnitude"), (c.mean(0) + r.mean(0)) / 2)
    np.testing.assert_allclose(compute_scores(stats, "change"),
                               (np.sqrt((dc**2).mean(0)) + np.sqrt((dr**2).mean(0))) / 2)
    assert not np.allclose(compute_scores(stats, "magnitude"), allt.mean(0))  # 50 vs 30 tokens: they differ
    np.testing.assert_allclose(compute_scores(stats, "magnitude", pool="chosen"), c.mean(0))
    np.testing.assert_allclose(compute_scores(stats, "rms", pool="rejected"), np.sqrt((r**2).mean(0)))
    rand = compute_scores(stats, "random", seed=3)
    np.testing.assert_array_equal(rand, compute_scores(stats, "random", seed=3))
    assert not np.array_equal(rand, compute_scores(stats, "random", seed=4))
    assert set(SCORE_METHODS.names()) == {"magnitude", "mean-abs", "rms", "prob", "change", "random", "attribution",
                                          "attribution-abs"}  # the attribution methods: tests/test_attribution.py


def test_change_needs_base_statistics_and_signed_mean_differs_from_magnitude():
    a = np.array([[[-5.0, 1.0]], [[-5.0, 1.0]]])  # neuron 0 strongly negative, neuron 1 mildly positive
    stats = _stats_from({"chosen": a, "rejected": a})
    with pytest.raises(RmtensionError, match="change score needs statistics recorded with the base model"):
        compute_scores(stats, "change")
    with pytest.raises(RmtensionError, match="unknown pool"):
        compute_scores(stats, "magnitude", pool="both")
    # the paper's signed mean ranks the strongly active negative neuron last; mean |a| first
    assert select_top(compute_scores(stats, "magnitude"), 50).by_layer() == {0: [1]}
    assert select_top(compute_scores(stats, "mean-abs"), 50).by_layer() == {0: [0]}


def test_select_global_counts_ties_and_per_layer():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [0.5, 0.2, 0.95, 0.0], [0.5, 0.3, 0.3, 0.3]])
    s = select_top(scores, 25)  # 3 of 12
    # 0.95, 0.9, then the first 0.5 in (layer, neuron) order: layer 0 neuron 2
    assert s.by_layer() == {0: [1, 2], 1: [2], 2: []}
    assert s.meta["selection"] == "global" and s.meta["k"] == 25
    p = select_top(scores, 50, per_layer=True)
    assert p.by_layer() == {0: [1, 2], 1: [0, 2], 2: [0, 1]}
    assert p.per_layer() == [2, 2, 2]
    assert n_selected(30 * 1536, 10) == 4608 and n_selected(100, 29) == 29 and n_selected(7, 10) == 0
    assert len(select_top(np.zeros((2, 5)), 100)) == 10 and len(select_top(np.zeros((2, 5)), 0)) == 0
    with pytest.raises(RmtensionError):
        select_top(scores, 120)
    with pytest.raises(RmtensionError, match="NaN"):
        select_top(np.array([[np.nan, 1.0]]), 50)


def test_shared_is_per_neuron_not_the_papers_per_layer_fallback():
    """The paper's code kept a whole layer of A when B had no neurons there. Here: nothing."""
    a = NeuronSet.from_indices(3, 6, {0: [1, 2], 1: [0, 3, 5], 2: [4]})
    b = NeuronSet.from_indices(3, 6, {0: [2, 3], 2: [4, 5]})  # layer 1: none
    sh = shared(a, b)
    assert sh.by_layer() == {0: [2], 1: [], 2: [4]}
    assert len(sh) == 2
    assert a_only(a, b).by_layer() == {0: [1], 1: [0, 3, 5], 2: []}
    assert b_only(a, b).by_layer() == {0: [3], 1: [], 2: [5]}
    assert union(a, b).by_layer() == {0: [1, 2, 3], 1: [0, 3, 5], 2: [4, 5]}
    assert len(shared(a, b)) + len(a_only(a, b)) == len(a)
    assert combine(a, b, "shared").meta["op"] == "shared"
    with pytest.raises(RmtensionError, match="unknown set operation"):
        combine(a, b, "xor")
    with pytest.raises(RmtensionError, match="different models"):
        shared(a, NeuronSet.empty(2, 6))


def test_overlap_and_retention_figures():
    a = NeuronSet.from_indices(2, 10, {0: [0, 1, 2, 3], 1: [0, 1]})  # 6
    b = NeuronSet.from_indices(2, 10, {0: [2, 3, 4], 1: [1]})  # 4, shared 3
    o = overlap(a, b)
    assert (o["a"], o["b"], o["shared"], o["a_only"], o["b_only"], o["union"]) == (6, 4, 3, 3, 1, 7)
    assert o["jaccard"] == pytest.approx(3 / 7) and o["overlap_share"] == pytest.approx(3 / 4)
    e = NeuronSet.empty(2, 10)
    assert overlap(e, e)["jaccard"] == 1.0 and overlap(e, a)["overlap_share"] is None
    mixed = NeuronSet.from_indices(2, 10, {0: [0, 4, 9], 1: [1, 5]})
    r = retention(mixed, a, b)  # H ∪ A = {0:0,1,2,3,4; 1:0,1} (7); M keeps 0:0, 0:4, 1:1 → 3
    # H ∪ A ∪ M adds 0:9 and 1:5 → 9: the paper's retention is 3/9, the share of H ∪ A kept 3/7
    assert (r["retained"], r["single_union"], r["all_union"]) == (3, 7, 9)
    assert r["retention"] == pytest.approx(3 / 9) and r["retention_of_single"] == pytest.approx(3 / 7)
    assert r["retention_helpful"] == pytest.approx(2 / 6) and r["retention_harmless"] == pytest.approx(2 / 4)


def test_thirds_split_and_location():
    def sizes(n):
        return [hi - lo for _, lo, hi in thirds(n)]

    assert thirds(30) == [("early", 0, 10), ("middle", 10, 20), ("late", 20, 30)]
    assert sizes(31) == [11, 10, 10] and sizes(32) == [11, 11, 10] and sizes(12) == [4, 4, 4]
    assert sizes(2) == [1, 1, 0] and sizes(1) == [1, 0, 0] and sizes(4) == [2, 1, 1] and sizes(5) == [2, 2, 1]
    for n in range(1, 80):
        assert sum(sizes(n)) == n
    s = NeuronSet.from_indices(30, 4, {0: [0, 1], 9: [3], 10: [0], 29: [0, 1, 2, 3]})
    loc = location(s)
    assert loc["early"] == {"layers": [0, 9], "count": 3, "share": 3 / 8}
    assert loc["middle"]["count"] == 1 and loc["late"]["count"] == 4


def test_random_like_is_seeded_and_size_matched():
    s = select_top(np.random.default_rng(1).random((6, 50)), 10)
    r1, r2, r3 = random_like(s, 5), random_like(s, 5), random_like(s, 6)
    assert r1.per_layer() == s.per_layer()
    np.testing.assert_array_equal(r1.mask, r2.mask)
    assert not np.array_equal(r1.mask, r3.mask)
    t = random_like(s, 5, match="total")
    assert len(t) == len(s) and t.meta["selection"] == "random-like:total"
    d = random_like(s, 5, disjoint=True)
    assert len(shared(d, s)) == 0 and d.per_layer() == s.per_layer()
    full = NeuronSet(np.ones((2, 3), dtype=bool))
    with pytest.raises(RmtensionError, match="cannot draw"):
        random_like(full, 0, disjoint=True)


def test_set_file_roundtrip_and_validation(tmp_path):
    s = select_top(np.random.default_rng(2).random((4, 20)), 10,
                   meta={"rm": "/rm", "data": "d", "method": "magnitude", "site": "act"})
    path = save_set(tmp_path / "n.json", s)
    obj = json.loads(path.read_text())
    assert obj["format"] == "rmtension.neuron-set/1" and obj["count"] == 8 == len(s)
    assert obj["layers"] == 4 and obj["neurons_per_layer"] == 20
    assert obj["meta"]["method"] == "magnitude" and obj["meta"]["k"] == 10 and "seed" in obj["meta"]
    assert sum(obj["per_layer"].values()) == 8
    back = load_set(path)
    np.testing.assert_array_equal(back.mask, s.mask)
    # a hand-written minimal file is accepted
    assert len(from_json({"layers": 2, "neurons_per_layer": 3, "neurons": {"1": [0, 2]}})) == 2
    bad = [
        ({"layers": 2, "neurons": {}}, "missing field 'neurons_per_layer'"),
        ({"layers": 2, "neurons_per_layer": 3, "neurons": {"2": [0]}}, "layer 2 out of range"),
        ({"layers": 2, "neurons_per_layer": 3, "neurons": {"0": [3]}}, "neuron index 3 out of range"),
        ({"layers": 2, "neurons_per_layer": 3, "neurons": {"0": [1, 1]}}, "repeated"),
        ({"layers": 2, "neurons_per_layer": 3, "neurons": {"0": ["a"]}}, "must be an integer"),
        ({"layers": 2, "neurons_per_layer": 3, "neurons": {"0": [1]}, "count": 2}, "'count' is 2"),
        ({"format": "other/9", "layers": 1, "neurons_per_layer": 1, "neurons": {}}, "unsupported format"),
    ]
    for obj, msg in bad:
        with pytest.raises(RmtensionError, match=msg):
            from_json(obj, tmp_path / "x.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RmtensionError, match="broken.json:1: malformed JSON"):
        load_set(tmp_path / "broken.json")
    assert to_json(s)["neurons"] == {str(k): v for k, v in s.by_layer().items()}
