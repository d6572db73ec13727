"""Neuron definitions pinned to the paper's own code (issue 10, items 6, 8, 9, 10, 11).

Source of every reference below: EshaanT/RM-alignment_tension at commit
96efa92ee8bb12bd63baeb6aba407c203b6b2751 —
``RM_interpretation/neural_score/scoring.py`` (``ChangeAnalyzer.compute_mlp_activation``),
``neuron_scoring.py`` (right padding), ``RM_interpretation/neural_score/dataset.py``
(``padding="max_length"``), ``RM_interpretation/neural_abalation/abalate.py``
(``get_neuron_score``, ``get_top_indices``, ``both_intersection``) and
``notebooks/plotsNresults.ipynb`` (cells 6, 38, 39, 43, 46, 51). Each reference function is a
short restatement of the cited lines, written on numpy / python sets, run on constructed data
where the paper's definition and an easy alternative disagree, so the test would fail if ours
drifted to the alternative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmtension.evaluation.scorer import RewardScorer, ScorerConfig, _pad_id
from rmtension.models.encoding import encode
from rmtension.models.reward_model import build_reward_model
from rmtension.neurons.recorder import collect_stats
from rmtension.neurons.scores import compute_scores, seed_mean_scores
from rmtension.neurons.sets import NeuronSet, layer_third, location, retention, select_top, shared, thirds
from rmtension.neurons.sites import model_sites
from rmtension.neurons.stats import Moments, NeuronStats, rmsd_of_dataset_means

# --------------------------------------------------------------------------- the paper's code, restated


def paper_region(layer: int, max_layer: int) -> str:
    """Notebook cell 43, ``assign_layer_region``: ``third = max_layer / 3``; ``<`` third, ``<`` 2·third."""
    third = max_layer / 3
    if layer < third:
        return "early"
    elif layer < 2 * third:
        return "middle"
    return "late"


def paper_custom_jaccard(helpful: set, harmless: set, both: set) -> float:
    """Notebook cell 51: ``len((helpful | harmless) & both) / len(helpful | harmless | both)``."""
    den = helpful | harmless | both
    return len((helpful | harmless) & both) / len(den) if den else 0.0


def paper_seed_average(chosen_by_seed: list[np.ndarray], rejected_by_seed: list[np.ndarray]) -> np.ndarray:
    """Notebook cell 38: ``np.maximum(np.mean(seeds, axis=0), 0)`` per side, then ``np.abs((c + r) / 2)``."""
    c = np.maximum(np.mean(chosen_by_seed, axis=0), 0)
    r = np.maximum(np.mean(rejected_by_seed, axis=0), 0)
    return np.abs(np.array((c + r) / 2))


def paper_top_indices(score: np.ndarray, p: float) -> set[tuple[int, int]]:
    """Notebook cell 6 / abalate.py ``get_top_indices``: ``score >= np.percentile(score, 100 - p)``."""
    threshold = np.percentile(score, 100 - p)
    return {(int(a), int(b)) for a, b in np.argwhere(score >= threshold)}


def paper_rmsd(chosen_by_seed: list[np.ndarray], rejected_by_seed: list[np.ndarray]) -> float:
    """Notebook cell 39: seed means, ``diff``, ``sqrt(mean(diff ** 2, axis=0))``, then ``np.mean``."""
    diff = np.mean(chosen_by_seed, axis=0) - np.mean(rejected_by_seed, axis=0)
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=0))))


def paper_masked_mean(model, tok, texts: list[str], max_length: int) -> np.ndarray:
    """scoring.py ``compute_mlp_activation`` with dataset.py's inputs: every text right-padded to
    ``max_length``, ``model(input_ids=input_ids)`` with no attention mask, all layers' activations
    kept, then ``act * mask`` summed over (batch, seq) and divided by the real-token count."""
    ids = encode(tok, texts)
    pad = _pad_id(model, tok)
    x = torch.full((len(ids), max_length), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), max_length))
    for r, row in enumerate(ids):
        x[r, :len(row)] = torch.tensor(row)
        mask[r, :len(row)] = 1
    ms = model_sites(model)
    store: dict[int, torch.Tensor] = {}
    handles = [ms.hook_module(i, "act")[0].register_forward_hook(
        lambda _m, _a, out, i=i: store.__setitem__(i, out.detach())) for i in range(ms.n_layers)]
    try:
        with torch.no_grad():
            model(input_ids=x)
    finally:
        for h in handles:
            h.remove()
    m = mask.unsqueeze(-1)
    return np.stack([(store[i].double() * m).sum(dim=(0, 1)).numpy() for i in range(ms.n_layers)]) / float(mask.sum())


def _stats(chosen: np.ndarray, rejected: np.ndarray) -> NeuronStats:
    """Statistics of explicit token activations, (tokens, L, N) per side."""
    L, N = chosen.shape[1:]
    m = Moments.zeros(["chosen", "rejected"], L, N)
    for gi, a in enumerate((chosen, rejected)):
        m.count[gi] = a.shape[0]
        m.sum[gi], m.abs_sum[gi] = a.sum(0), np.abs(a).sum(0)
        m.sq_sum[gi], m.pos_count[gi] = (a**2).sum(0), (a > 0).sum(0)
    return NeuronStats("act", L, N, m, np.ones(2))


def _mask(layers: int, width: int, flat: set[int]) -> NeuronSet:
    mask = np.zeros(layers * width, dtype=bool)
    mask[list(flat)] = True
    return NeuronSet(mask.reshape(layers, width))


# --------------------------------------------------------------------------- item 9: thirds


def test_thirds_follow_the_papers_layer_rule():
    """Notebook cell 43 (commit 96efa92): early iff layer < L/3, middle iff layer < 2L/3."""
    for n_layers in range(1, 100):
        for name, lo, hi in thirds(n_layers):
            for layer in range(lo, hi):
                assert paper_region(layer, n_layers) == name == layer_third(layer, n_layers), (n_layers, layer)
    def region(n_layers: int) -> dict[int, str]:
        return {i: name for name, lo, hi in thirds(n_layers) for i in range(lo, hi)}

    assert region(30)[9] == "early" and region(30)[10] == "middle" and region(30)[20] == "late"
    assert region(4) == {0: "early", 1: "early", 2: "middle", 3: "late"}  # rounding gave 1 / 2 / 1
    assert region(5) == {0: "early", 1: "early", 2: "middle", 3: "middle", 4: "late"}  # rounding: 2 / 1 / 2
    assert region(32)[21] == "middle" and region(31)[10] == "early"  # rounding made these late / middle
    s = NeuronSet.from_indices(4, 2, {1: [0, 1], 2: [0], 3: [1]})
    assert {t: v["count"] for t, v in location(s).items()} == {"early": 2, "middle": 1, "late": 1}


# --------------------------------------------------------------------------- item 6: neuron retention


def test_neuron_retention_divides_by_the_union_of_all_three():
    """Notebook cell 51 "custom_jaccard" (commit 96efa92): |(H ∪ A) ∩ M| / |H ∪ A ∪ M|."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        h, a, m = (set(rng.choice(60, size=int(rng.integers(1, 20)), replace=False).tolist()) for _ in range(3))
        r = retention(_mask(3, 20, m), _mask(3, 20, h), _mask(3, 20, a))
        assert r["retention"] == pytest.approx(paper_custom_jaccard(h, a, m))
        assert r["retention_of_single"] == pytest.approx(len((h | a) & m) / len(h | a))
    # M has neurons of its own: the two definitions differ (2/5 vs 2/3)
    r = retention(_mask(1, 10, {0, 1, 8, 9}), _mask(1, 10, {0, 1}), _mask(1, 10, {2}))
    assert (r["retention"], r["retention_of_single"]) == (pytest.approx(2 / 5), pytest.approx(2 / 3))


# --------------------------------------------------------------------------- item 10: seeds


def test_seed_mean_scores_average_then_clip_as_the_notebook():
    """Notebook cell 38 (commit 96efa92): per side mean over seeds, clipped at 0 after, then (c + r) / 2."""
    rng = np.random.default_rng(0)
    seeds = []
    for s in range(3):
        c = rng.normal(0.1 * s, 1.0, size=(40 + 7 * s, 4, 6))
        r = rng.normal(-0.2, 1.0, size=(25 + 3 * s, 4, 6))
        seeds.append(_stats(c, r))
    chosen = [st.group_means()["chosen"] for st in seeds]
    rejected = [st.group_means()["rejected"] for st in seeds]
    np.testing.assert_allclose(seed_mean_scores(seeds, "magnitude"), paper_seed_average(chosen, rejected))
    # clipping each seed before averaging would be a different number on these data
    clipped_first = (np.mean(np.maximum(chosen, 0), 0) + np.mean(np.maximum(rejected, 0), 0)) / 2
    assert not np.allclose(seed_mean_scores(seeds, "magnitude"), clipped_first)
    # the per-seed score is the paper's unclipped (chosen + rejected) / 2 (abalate.py get_neuron_score)
    np.testing.assert_allclose(compute_scores(seeds[0], "magnitude"), (chosen[0] + rejected[0]) / 2)


def test_seed_mean_set_is_not_the_per_seed_sets():
    """One neuron high in one seed only is in that seed's top set but not in the seed-mean set."""
    base = np.linspace(0.0, 1.0, 20).reshape(2, 10)  # neuron (1, 9) is the top neuron of every seed
    per_seed = []
    for s in range(3):
        x = base.copy()
        if s == 0:
            x[0, 0] = 5.0  # a spike in seed 0 only: its mean over seeds is 5/3 > 1, so still the top
            x[0, 1] = 1.2  # a smaller spike: top-2 of seed 0, but 0.43 after averaging
        per_seed.append(_stats(x[None], x[None]))
    top = {s: select_top(compute_scores(st, "magnitude"), 10).by_layer() for s, st in enumerate(per_seed)}
    agg = select_top(seed_mean_scores(per_seed, "magnitude"), 10).by_layer()
    assert top[0] == {0: [0, 1], 1: []} and top[1] == {0: [], 1: [8, 9]}
    assert agg == {0: [0], 1: [9]}


def test_percentile_rule_is_the_papers_top_indices():
    """abalate.py / notebook cell 6 ``get_top_indices`` (commit 96efa92): ties kept, one more at some sizes."""
    rng = np.random.default_rng(1)
    x = rng.random((12, 3072))  # GPT-2 small: 36,864 neurons
    paper = paper_top_indices(x, 10)
    got = select_top(x, 10, rule="percentile")
    assert {(i, j) for i, js in got.by_layer().items() for j in js} == paper
    assert len(got) == 3687 and len(select_top(x, 10)) == 3686  # floor(0.1 n + 0.9) vs floor(0.1 n)
    clipped = np.maximum(rng.normal(-1.0, 0.5, size=(4, 50)), 0)  # > 90% zeros after the clip
    assert len(select_top(clipped, 10, rule="percentile")) == clipped.size  # every tie at 0 is "top"
    assert len(select_top(clipped, 10)) == 20


# --------------------------------------------------------------------------- item 8: RMSD


def test_rmsd_of_dataset_means_is_the_notebooks():
    """Notebook cell 39 (commit 96efa92): RMS over layers of (chosen mean − rejected mean), mean over neurons."""
    rng = np.random.default_rng(2)
    seeds = [_stats(rng.normal(0.3, 1, size=(30, 5, 7)), rng.normal(0.0, 1, size=(20, 5, 7))) for _ in range(3)]
    chosen = [st.group_means()["chosen"] for st in seeds]
    rejected = [st.group_means()["rejected"] for st in seeds]
    assert rmsd_of_dataset_means(seeds)["value"] == pytest.approx(paper_rmsd(chosen, rejected))
    assert seeds[0].rmsd_of_means()["value"] == pytest.approx(paper_rmsd(chosen[:1], rejected[:1]))
    # averaging each seed's RMSD is not the same number
    assert rmsd_of_dataset_means(seeds)["value"] != pytest.approx(
        np.mean([paper_rmsd([c], [r]) for c, r in zip(chosen, rejected)]))


def test_rmsd_of_means_is_not_the_per_pair_rmsd():
    """Two pairs whose differences cancel in the dataset means but not pair by pair."""
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu"))
    a, b = "Human: hi\n\nAssistant: yes", "Human: hi\n\nAssistant: no way"
    stats, _ = collect_stats(scorer, [(a, b), (b, a)])
    assert stats.rmsd_of_means()["value"] == pytest.approx(0.0, abs=1e-6)  # the same texts on both sides
    assert stats.rmsd()["all_layers"] > 1e-3
    assert stats.summary()["rmsd_dataset_means"] == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- item 11: the paper's reduction


@pytest.mark.parametrize("backbone", ["tiny-gpt2", "tiny-llama"])
def test_papers_masked_mean_over_right_padding_equals_our_magnitude(backbone):
    """scoring.py ``compute_mlp_activation`` (commit 96efa92) masks the pads out: with right padding and no
    attention mask a causal model's real tokens are unchanged, so its per-side mean equals ours."""
    model, tok = build_reward_model(backbone, seed=0)
    model.eval()
    pairs = [("Human: hi\n\nAssistant: " + "the quick brown fox " * 4, "Human: hi\n\nAssistant: ok"),
             ("Human: why?\n\nAssistant: because", "Human: why?\n\nAssistant: no idea at all, sorry")]
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, progress=False, device="cpu"))
    stats, _ = collect_stats(scorer, pairs)
    max_length = max(len(i) for i in encode(tok, [t for p in pairs for t in p])) + 9  # 9+ pads on every text
    for gi, side in enumerate(("chosen", "rejected")):
        paper = paper_masked_mean(model, tok, [p[gi] for p in pairs], max_length)
        np.testing.assert_allclose(compute_scores(stats, "magnitude", side), paper, rtol=1e-5, atol=1e-6)
    both = (paper_masked_mean(model, tok, [p[0] for p in pairs], max_length)
            + paper_masked_mean(model, tok, [p[1] for p in pairs], max_length)) / 2
    np.testing.assert_allclose(compute_scores(stats, "magnitude"), both, rtol=1e-5, atol=1e-6)  # get_neuron_score


# --------------------------------------------------------------------------- the brief's note on "shared"


def test_papers_both_intersection_keeps_whole_layers_ours_does_not():
    """abalate.py ``both_intersection`` (commit 96efa92): in a layer where only one set has neurons,
    all of that set's neurons there are kept; our ``shared`` is the intersection per neuron."""
    harmless = {0: {1, 2}, 1: {3}}
    helpful = {0: {2, 5}, 2: {4}}
    paper: dict[int, list[int]] = {}
    for layer, neurons in harmless.items():
        paper[layer] = [x for x in neurons if x in helpful[layer]] if layer in helpful else list(neurons)
    for layer, neurons in helpful.items():
        if layer not in paper:
            paper[layer] = list(neurons)
    assert paper == {0: [2], 1: [3], 2: [4]}  # layer 1 is harmless-only, layer 2 helpful-only
    ours = shared(NeuronSet.from_indices(3, 6, {k: sorted(v) for k, v in helpful.items()}),
                  NeuronSet.from_indices(3, 6, {k: sorted(v) for k, v in harmless.items()}))
    assert ours.by_layer() == {0: [2], 1: [], 2: []}
