"""Controls of issue 11, items 3 and 4: Holm, the paired ablation test, the neuron–length correlation,
the backbone baseline, and that the new study keys leave existing steps' cache keys alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmtension.analysis.ablation_stats import Stratum, ablation_stats, holm, paired_effect, task_strata
from rmtension.errors import RmtensionError
from rmtension.neurons.length import set_length_spearman, set_mean_activation, text_set_activations

# ----------------------------------------------------------------------------- Holm


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005 (×4 = 0.02), 0.01 (×3 = 0.03), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 → monotone: 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN stays NaN and does not count in m (m = 3 here): 0.02 × 3 = 0.06, 0.5 × 2 = 1.0 (capped),
    # 0.6 × 1 = 0.6 → monotone: 1.0
    out = holm([0.6, float("nan"), 0.02, 0.5])
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx(0.06) and out[3] == 1.0
    assert holm([]) == []


def test_holm_agrees_with_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(3).uniform(0, 0.2, size=17)
    expected = multitest.multipletests(p, method="holm")[1]
    assert holm(p.tolist()) == pytest.approx(expected.tolist())


# ----------------------------------------------------------------------------- the paired test


def _stratum(rng, n, p_set, p_random, p_base=0.9):
    return Stratum((rng.random(n) < p_set).astype(float), (rng.random(n) < p_random).astype(float),
                   (rng.random(n) < p_base).astype(float))


def test_a_set_that_hurts_more_than_random_gets_a_small_p_and_an_interval_below_zero():
    rng = np.random.default_rng(0)
    seeds = [[_stratum(rng, 120, 0.35, 0.85)] for _ in range(3)]
    eff = paired_effect(seeds, n_resamples=2000)
    assert eff["diff"] == pytest.approx(eff["set_delta"] - eff["random_delta"])
    assert -0.6 < eff["diff"] < -0.4
    assert eff["ci95"]["high"] < 0 and eff["ci95"]["low"] < eff["diff"] < eff["ci95"]["high"]
    assert eff["p"] == pytest.approx(1 / 2001)  # no sign flip comes near: the smallest p of 2000 flips
    assert eff["n_items"] == 360


def test_an_identical_set_gets_p_one_and_a_zero_interval():
    rng = np.random.default_rng(1)
    same = [[Stratum(s.set_correct, s.set_correct, s.base_correct) for s in [_stratum(rng, 80, 0.5, 0.5)]]
            for _ in range(2)]
    eff = paired_effect(same, n_resamples=500)
    assert eff["diff"] == 0.0 and eff["p"] == 1.0 and eff["ci95"] == {"low": 0.0, "high": 0.0}


def test_the_test_holds_its_level_when_set_and_random_are_exchangeable():
    """Under the null (set and random ablations alike) p < 0.05 must happen about 5% of the time."""
    rng = np.random.default_rng(2)
    ps = [paired_effect([[_stratum(rng, 40, 0.6, 0.6)], [_stratum(rng, 40, 0.6, 0.6)]], n_resamples=400, seed=k)["p"]
          for k in range(300)]
    rate = float(np.mean(np.asarray(ps) < 0.05))
    assert 0.01 <= rate <= 0.10, rate


def test_a_group_task_weights_its_subsets_equally_and_seeds_are_averaged():
    one = Stratum(np.zeros(10), np.ones(10), np.ones(10))       # diff −1 on 10 items
    other = Stratum(np.ones(90), np.ones(90), np.ones(90))      # diff 0 on 90 items
    eff = paired_effect([[one, other]], n_resamples=200)
    assert eff["diff"] == pytest.approx(-0.5)                   # not −10/100 (items pooled)
    eff2 = paired_effect([[one], [other]], n_resamples=200)
    assert eff2["diff"] == pytest.approx(-0.5) and eff2["set_delta"] == pytest.approx(-0.5)


def _rows(bench, subset, group, correct, ids=None, metric="pairwise"):
    ids = ids or [f"{subset}-{i}" for i in range(len(correct))]
    return [{"benchmark": bench, "subset": subset, "id": i, "group": group, "metric": metric, "correct": float(c)}
            for i, c in zip(ids, correct)]


def test_strata_pair_items_by_id_and_build_group_tasks():
    base = _rows("b", "s1", "helpful", [1, 1, 1, 0]) + _rows("b", "s2", "helpful", [1, 1]) \
        + _rows("b", "t", "harmless", [1], metric="ties")
    ablated = _rows("b", "s1", "helpful", [0, 0, 1, 0]) + _rows("b", "s2", "helpful", [1, 0])
    random = list(reversed(_rows("b", "s1", "helpful", [1, 1, 1, 1]) + _rows("b", "s2", "helpful", [1, 1])))
    strata = task_strata(base, ablated, random, {("b", "helpful"): ["s1", "s2"]})
    assert set(strata) == {("b", "s1"), ("b", "s2"), ("b", "helpful (group mean)")}  # Ties left out
    np.testing.assert_array_equal(strata[("b", "s1")][0].diff, [-1, -1, 0, -1])  # paired by id, not position
    with pytest.raises(RmtensionError, match="missing"):
        task_strata(base, ablated[:-1], random, {})
    rows = ablation_stats({0: strata, 1: strata}, {"backbone": "bb", "rm_objective": "helpful", "set": "own",
                                                   "method": "magnitude", "k": 10.0},
                          {("b", "s1"): "helpful", ("b", "s2"): "helpful", ("b", "helpful (group mean)"): "helpful"},
                          n_resamples=300)
    by_task = {r["task"]: r for r in rows}
    assert set(by_task) == {"b/s1", "b/s2", "b/helpful (group mean)"}
    assert by_task["b/s1"]["diff"] == pytest.approx(-0.75) and by_task["b/s2"]["diff"] == pytest.approx(-0.5)
    assert by_task["b/helpful (group mean)"]["diff"] == pytest.approx(-0.625)
    assert all(r["family"] == "bb/helpful/own" and r["seeds"] == [0, 1] for r in rows)
    assert holm([r["p"] for r in rows]) == [r["p_holm"] for r in rows]
    assert all(r["survives"] == (r["p_holm"] < 0.05) for r in rows)


# ----------------------------------------------------------------------------- neuron–length correlation


def test_a_set_whose_activation_is_the_length_correlates_one():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 400, size=60).astype(float)
    means = rng.normal(size=(60, 2, 8))
    mask = np.zeros((2, 8), dtype=bool)
    mask[1, [2, 5]] = True
    means[:, 1, 2] = 2 * lengths + 1     # the set's neurons: activation = a rising function of length
    means[:, 1, 5] = lengths / 10
    act = set_mean_activation(means, mask)
    pair_of = np.repeat(np.arange(30), 2)
    rho = set_length_spearman(act, lengths, pair_of, n_resamples=500)
    assert rho["value"] == pytest.approx(1.0) and rho["n_texts"] == 60
    assert rho["ci95"]["low"] == pytest.approx(1.0) and rho["ci95"]["high"] == pytest.approx(1.0)
    assert set_length_spearman(-act, lengths, pair_of, n_resamples=100)["value"] == pytest.approx(-1.0)
    # unrelated neurons: near 0, interval around it
    other = ~mask
    other[0] = False
    r0 = set_length_spearman(set_mean_activation(means, other), lengths, pair_of, n_resamples=500)
    assert abs(r0["value"]) < 0.4 and r0["ci95"]["low"] < r0["value"] < r0["ci95"]["high"]
    assert np.isnan(set_mean_activation(means, np.zeros((2, 8), dtype=bool))).all()


def test_set_activations_equal_a_text_by_text_computation():
    """The recorder-based pass (batched, padded, shared prompts) gives each text's set mean exactly as
    running the model on that text alone and averaging the set's neurons over its tokens."""
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
    from rmtension.models.encoding import encode
    from rmtension.models.reward_model import build_reward_model
    from rmtension.neurons.sites import hook_sites

    model, tok = build_reward_model("tiny-llama", seed=0)
    long_ = "The quick brown fox jumps over the lazy dog; " * 3
    texts = ["Human: hi\n\nAssistant: " + long_, "Human: hi\n\nAssistant: ok.", "Human: a\n\nAssistant: b",
             "Human: hi\n\nAssistant: ok.", "Human: why?\n\nAssistant: because " + long_[:50]]
    rng = np.random.default_rng(4)
    masks = {"a": rng.random((2, 192)) < 0.1, "b": rng.random((2, 192)) < 0.3}
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, progress=False, device="cpu"))
    got = text_set_activations(scorer, texts, masks, chunk=3)
    for i, text in enumerate(texts):
        ids = encode(tok, [text])[0]
        acts = {}
        with torch.no_grad(), hook_sites(model, "act", lambda L, a: acts.__setitem__(L, a[0].double().numpy().copy())):
            model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        means = np.stack([acts[L].mean(axis=0) for L in sorted(acts)])  # (L, N)
        for name, m in masks.items():
            assert got[name][i] == pytest.approx(float(means[m].mean()), rel=1e-5, abs=1e-7), (name, i)
    assert got["a"][1] == pytest.approx(got["a"][3], rel=1e-6)  # the duplicate text (two chunks: float noise)


# ----------------------------------------------------------------------------- backbone baseline


def test_backbone_baseline_is_scored_like_an_rm_and_does_not_depend_on_the_head(tmp_path):
    from rmtension.data.split import HeldoutSplit
    from rmtension.neurons.pipeline import ScoreRequest, score_rm
    from rmtension.neurons.sets import select_top

    rows = [{"prompt": f"Question {i}?", "chosen": "A helpful answer " * (1 + i % 4), "rejected": "No."}
            for i in range(12)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    req = dict(rm=None, data=str(data), base="tiny-llama", backbone_baseline=True, batch_size=4,
               split="train", heldout=HeldoutSplit(0.2), template="hh")
    stats0, scores0 = score_rm(ScoreRequest(**req, head_seed=0))
    stats1, _ = score_rm(ScoreRequest(**req, head_seed=1))
    assert stats0.meta["objective"] == "backbone" and stats0.meta["backbone_baseline"] is True
    assert stats0.meta["rm"] == "backbone:tiny-llama" and stats0.meta["split"] == "train"
    assert 0 < stats0.meta["pairs"] < 12  # the train side of the split only
    assert (stats0.layers, stats0.neurons) == (2, 192)
    np.testing.assert_allclose(stats0.act.sum, stats1.act.sum)  # the head comes after the MLPs
    s = select_top(scores0, 10.0)
    assert s.mask.shape == (2, 192) and len(s) == 38  # the shape and size of an RM's set
    with pytest.raises(RmtensionError, match="change score is undefined"):
        score_rm(ScoreRequest(**req, method="change"))


# ----------------------------------------------------------------------------- study keys


def test_control_keys_do_not_change_existing_step_keys(tmp_path):
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import build_plan

    raw = {"backbones": ["tiny-gpt2"], "neurons": {"max_pairs": 6}}
    plain = build_plan(config_from_dict(raw), tmp_path)
    keys = {}
    for flags in ({"backbone_baseline": False, "length_correlation": False},
                  {"backbone_baseline": True, "length_correlation": True},
                  {"backbone_baseline": False, "length_correlation": True}):
        plan = build_plan(config_from_dict({**raw, "neurons": {**raw["neurons"], **flags}}), tmp_path)
        keys[tuple(flags.values())] = plan
        old = {s.label: s.key for s in plain.steps if s.kind not in ("overlap",)}
        new = {s.label: s.key for s in plan.steps if s.label in old}
        for kind in ("train", "eval", "neurons", "ablate-own", "ablate-mixed", "curves", "compare"):
            labels = [lbl for lbl in old if lbl.startswith(kind + ":")]
            assert labels and all(new[lbl] == old[lbl] for lbl in labels), kind
    per_set = build_plan(config_from_dict({**raw, "ablation": {"random_per_set": True}}), tmp_path)
    unset = build_plan(config_from_dict({**raw, "ablation": {"random_per_set": False}}), tmp_path)
    k_plain, k_per_set, k_unset = (next(s.key for s in p.steps if s.kind == "ablate-mixed")
                                   for p in (plain, per_set, unset))
    assert k_unset == k_plain != k_per_set
    off = keys[(False, False)]
    assert not off.backbone and not off.neuron_length
    assert {s.kind for s in plain.steps} >= {"neurons-backbone", "neuron-length"}
    assert len(plain.neuron_length) == 4 and len(plain.backbone) == 1  # 3 RMs + the backbone; one backbone × seed
    bk = plain.backbone[("tiny-gpt2", 0)]
    assert "change" not in bk.params["methods"] and bk in plain.overlap[("tiny-gpt2", 0)].deps


def test_cli_backbone_baseline_equals_scoring_the_untrained_rm_and_compare_uses_it(capsys, tmp_path):
    """An RM folder that *is* the untrained backbone with head seed 0 must score exactly like the backbone
    baseline with --seed 0 (same pairs, template, statistics); compare --backbone reports each set's Jaccard."""
    from rmtension.cli.main import main
    from rmtension.models.reward_model import build_reward_model, save_reward_model
    from rmtension.neurons.setfile import load_set
    from rmtension.neurons.stats import load_stats

    model, tok = build_reward_model("tiny-llama", seed=0)
    rm = tmp_path / "untrained-rm"
    save_reward_model(model, tok, rm, {"backbone": "tiny-llama", "seed": 0, "objective": "helpful", "template": "hh"})
    rows = [{"prompt": f"How do I do task {i}?", "chosen": "Carefully, step by step. " * (1 + i % 3),
             "rejected": "No." if i % 2 else "I will not help with that at all, sorry."} for i in range(8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(*argv):
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return out

    common = ("--data", data, "--batch-size", "3", "--json")
    rm_out = json.loads(run("neurons", "score", "--rm", rm, *common, "--out", tmp_path / "rm.npz"))
    bk_out = json.loads(run("neurons", "score", "--rm", rm, "--backbone-baseline", *common, "--out", tmp_path / "bk.npz"))
    assert bk_out["pairs"] == rm_out["pairs"] == 8 and bk_out["accuracy"] == rm_out["accuracy"]
    rm_stats, bk_stats = load_stats(tmp_path / "rm.npz")[0], load_stats(tmp_path / "bk.npz")[0]
    np.testing.assert_allclose(bk_stats.act.sum, rm_stats.act.sum, rtol=1e-6, atol=1e-8)
    assert bk_stats.meta["objective"] == "backbone" and bk_stats.meta["baseline_of"] == str(rm.resolve())
    for name in ("rm", "bk"):
        run("neurons", "select", "--scores", tmp_path / f"{name}.npz", "--out", tmp_path / f"{name}.json", "--json")
    run("neurons", "select", "--scores", tmp_path / "rm.npz", "--method", "rms", "--out", tmp_path / "rms.json", "--json")
    cmp_ = json.loads(run("neurons", "compare", tmp_path / "rm.json", tmp_path / "rms.json", "--backbone",
                          tmp_path / "bk.json", "--json"))
    assert cmp_["backbone_baseline"]["a"] == {"jaccard": 1.0, "shared": 38, "a": 38, "b": 38}  # identical model
    rms, bk = load_set(tmp_path / "rms.json"), load_set(tmp_path / "bk.json")
    assert cmp_["backbone_baseline"]["b"]["shared"] == int((rms.mask & bk.mask).sum())
    text = run("neurons", "compare", tmp_path / "rm.json", tmp_path / "rms.json", "--backbone", tmp_path / "bk.json")
    assert "vs the untrained backbone's set: a Jaccard 1.000" in text
    rc = main(["neurons", "score", "--rm", str(rm), "--backbone-baseline", "--method", "change", "--data", str(data),
               "--out", str(tmp_path / "x.npz")])
    assert rc == 2 and "change score is undefined" in capsys.readouterr().err
