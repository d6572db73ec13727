"""Streaming neuron statistics against a brute-force computation, padding, duplicates, files.

The brute force runs the model on one text at a time (no padding at all), keeps every token's
activations and computes every statistic with numpy. The recorder runs through the real
scorer with length-sorted, right-padded batches of texts whose lengths differ by 10×, so any
padding that leaked into a sum would show.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.models.encoding import encode
from rmtension.models.reward_model import build_reward_model
from rmtension.neurons.recorder import NeuronStatsRecorder, collect_stats
from rmtension.neurons.sites import hook_sites
from rmtension.neurons.stats import load_stats, save_stats

BACKBONES = ["tiny-gpt2", "tiny-llama", "tiny-gemma", "tiny-bert"]


def _pairs() -> list[tuple[str, str]]:
    short, long_ = "ok.", "The quick brown fox jumps over the lazy dog; " * 3
    pairs = [
        ("Human: hi\n\nAssistant: " + long_, "Human: hi\n\nAssistant: " + short),
        ("Human: why?\n\nAssistant: because " + short, "Human: why?\n\nAssistant: no idea at all, " + long_[:60]),
        ("Human: a\n\nAssistant: b", "Human: a\n\nAssistant: c" + long_),
        ("Human: x\n\nAssistant: yes", "Human: x\n\nAssistant: no"),
    ]
    # duplicates: an identical pair, and a text that is chosen here and rejected there
    pairs.append(pairs[3])
    pairs.append(("Human: q\n\nAssistant: " + long_ * 2, "ok"))
    pairs.append((pairs[0][1], "Human: hi\n\nAssistant: " + long_[:30]))
    return pairs


def _perturbed(model: torch.nn.Module, seed: int = 7) -> torch.nn.Module:
    """Stand-in for training: move every weight a little, so RM − base differs from zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return model


def _brute_force(model, tokenizer, pairs, site, base=None):
    """Per-text forward passes; every statistic from the full list of token activations."""
    def acts(m, ids):
        got = {}
        with torch.no_grad(), hook_sites(m, site, lambda i, a: got.__setitem__(i, a[0].double().numpy().copy())):
            m(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        return np.stack([got[i] for i in sorted(got)])  # (L, T, N)

    out = {g: {"tokens": [], "diff": []} for g in ("chosen", "rejected")}
    rmsd = []
    for c, r in pairs:
        means = []
        for text, g in ((c, "chosen"), (r, "rejected")):
            ids = encode(tokenizer, [text])[0]
            a = acts(model, ids)
            out[g]["tokens"].append(a)
            if base is not None:
                out[g]["diff"].append(a - acts(base, ids))
            means.append(a.mean(axis=1))  # (L, N)
        d2 = (means[0] - means[1]) ** 2
        rmsd.append(np.append(np.sqrt(d2.mean(axis=1)), np.sqrt(d2.mean())))
    res = {}
    for g, v in out.items():
        a = np.concatenate(v["tokens"], axis=1)  # (L, tokens, N)
        res[g] = {"n": a.shape[1], "sum": a.sum(1), "abs_sum": np.abs(a).sum(1), "sq_sum": (a**2).sum(1),
                  "pos_count": (a > 0).sum(1).astype(float)}
        if base is not None:
            d = np.concatenate(v["diff"], axis=1)
            res[g]["diff"] = {"sum": d.sum(1), "abs_sum": np.abs(d).sum(1), "sq_sum": (d**2).sum(1),
                              "pos_count": (d > 0).sum(1).astype(float)}
    res["rmsd"] = np.array(rmsd)
    return res


def _check(stats, ref, diff: bool):
    for gi, g in enumerate(("chosen", "rejected")):
        assert stats.act.count[gi] == ref[g]["n"]
        act_scale = float(np.abs(ref[g]["abs_sum"]).max())  # float32 per-batch reduction, see below
        for m in ("sum", "abs_sum", "sq_sum"):
            np.testing.assert_allclose(getattr(stats.act, m)[gi], ref[g][m], rtol=1e-5,
                                       atol=max(1e-6, 1e-6 * act_scale), err_msg=f"{g} {m}")
        # a > 0 is a hard threshold: a value within float noise of 0 may flip between batched and single runs
        assert np.abs(stats.act.pos_count[gi] - ref[g]["pos_count"]).max() <= 1
        if diff:
            # Each batch is reduced in float32 (float64 running totals), so a sum whose terms nearly
            # cancel is exact only up to float32 rounding of the terms: the absolute tolerance scales
            # with the sum of their magnitudes.
            scale = float(np.abs(ref[g]["diff"]["abs_sum"]).max())
            for m in ("sum", "abs_sum", "sq_sum"):
                np.testing.assert_allclose(getattr(stats.diff, m)[gi], ref[g]["diff"][m], rtol=1e-4,
                                           atol=max(1e-6, 1e-6 * scale), err_msg=f"diff {g} {m}")
    assert stats.rmsd_pairs == len(ref["rmsd"])
    np.testing.assert_allclose(stats.rmsd_sum, ref["rmsd"].sum(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats.rmsd_sq_sum, (ref["rmsd"] ** 2).sum(0), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("backbone,site", [(b, "act") for b in BACKBONES] + [("tiny-llama", "down_in")])
def test_streaming_equals_brute_force_with_change(backbone, site):
    model, tok = build_reward_model(backbone, seed=0)
    _perturbed(model)
    base, _ = build_reward_model(backbone, seed=0)
    pairs = _pairs()
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=3, progress=False, device="cpu"))
    stats, scores = collect_stats(scorer, pairs, site=site, base_model=base, chunk_pairs=4)
    ref = _brute_force(model, tok, pairs, site, base)
    _check(stats, ref, diff=True)
    assert stats.diff is not None and np.abs(stats.diff.sq_sum).sum() > 0
    assert stats.texts.tolist() == [len(pairs), len(pairs)]
    # the scores come from the same pass and equal a plain scoring call
    plain = scorer.score([t for p in pairs for t in p]).reshape(-1, 2)
    np.testing.assert_allclose(scores, plain, rtol=1e-5, atol=1e-6)


def test_padding_does_not_leak():
    """Batch size must not matter: 1 text per batch (no padding) vs. all texts in one batch."""
    model, tok = build_reward_model("tiny-llama", seed=0)
    pairs = _pairs()
    out = []
    for bs in (1, 64):
        scorer = RewardScorer(model, tok, ScorerConfig(batch_size=bs, progress=False, device="cpu"))
        stats, _ = collect_stats(scorer, pairs, chunk_pairs=100)
        out.append(stats)
    lengths = [len(i) for i in encode(tok, [t for p in pairs for t in p])]
    assert max(lengths) > 8 * min(lengths)
    np.testing.assert_array_equal(out[0].act.count, out[1].act.count)
    # Batches are reduced in float32: near-cancelling sums agree up to float32 rounding of their
    # terms (~1e-7 of the summed magnitudes); one leaked padding token would be ~1e-2 of them.
    scale = float(np.abs(out[1].act.abs_sum).max())
    for m in ("sum", "abs_sum", "sq_sum"):
        np.testing.assert_allclose(getattr(out[0].act, m), getattr(out[1].act, m), rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(out[0].rmsd_sum, out[1].rmsd_sum, rtol=1e-5)


def test_span_sums_equal_float64_and_reuse_one_buffer():
    """``_row_sums`` (the hooks' reduction) against float64 numpy on every span shape the scorer makes:
    a packed row's prefix and rests, a plain row, an empty span, exact zeros (GELU/SiLU underflow),
    bf16 autocast activations and activations that carry a gradient; the scratch buffer is reused
    across calls of other lengths and widths without leaking values between them."""
    from rmtension.neurons.recorder import _row_sums, _Scratch

    g = torch.Generator().manual_seed(0)
    scratch = _Scratch()
    for rows, width, n in ((3, 40, 24), (2, 31, 24), (4, 50, 7)):
        a = torch.randn((rows, width, n), generator=g) * 3
        a[a.abs() < 0.3] = 0.0  # exact zeros are not positive
        spans = [(0, 0, 11), (0, 11, 30), (0, 30, width), (1, 0, width - 2), (rows - 1, 5, 5)]
        for x, tol in ((a, 1e-6), (a.to(torch.bfloat16), 1e-6), (a.clone().requires_grad_(True), 1e-6)):
            got = _row_sums(x, spans, scratch).double().numpy()
            v = x.detach().double().numpy()
            for k, (r, s, e) in enumerate(spans):
                t = v[r, s:e]
                want = np.stack([t.sum(0), np.abs(t).sum(0), (t ** 2).sum(0), (t > 0).sum(0)])
                np.testing.assert_allclose(got[k], want, rtol=tol, atol=tol * max(1.0, np.abs(t).sum()),
                                           err_msg=f"span {(r, s, e)} of {x.dtype}")
    assert len(scratch._bufs) == 2  # one float32 work buffer, one for converting bf16 spans


def test_recorder_as_plain_observer_uses_tags():
    """Without plan(): one count per batch row, in the group its tag names; no RMSD."""
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, progress=False, device="cpu"))
    texts = ["a b c", "a much longer text than the first one", "mid length"]
    rec = NeuronStatsRecorder(model)
    with rec:
        scorer.score(texts, observers=[rec], tags=["chosen", "rejected", "chosen"])
    stats = rec.result()
    lengths = [len(i) for i in encode(tok, texts)]
    assert stats.act.count.tolist() == [lengths[0] + lengths[2], lengths[1]]
    assert stats.rmsd_pairs == 0
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed on exit


def test_memory_does_not_grow_with_examples():
    """Nothing per text survives a call; the pending per-text means are bounded by one chunk."""
    model, tok = build_reward_model("tiny-llama", seed=0)
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu"))
    rec = NeuronStatsRecorder(model)
    pending = []
    orig = rec.after_batch

    def spy(batch, scores):
        orig(batch, scores)
        pending.append(len(rec._declared._means))

    rec.after_batch = spy  # type: ignore[method-assign]
    pairs = [(f"chosen text {i} " * (1 + i % 5), f"rejected {i}") for i in range(24)]
    with rec:
        for start in range(0, 24, 6):
            chunk = pairs[start:start + 6]
            texts = [t for p in chunk for t in p]
            rec.declare(texts, ["chosen", "rejected"] * len(chunk), [(2 * k, 2 * k + 1) for k in range(len(chunk))])
            scorer.score(texts, observers=[rec], tags=["chosen", "rejected"] * len(chunk))
            assert not rec._declared._means  # every pair completed and freed
            rec.finish_call()
    assert max(pending) <= 6 and rec._batch is None
    assert rec.result().rmsd_pairs == 24


def test_save_load_roundtrip_and_merge(tmp_path):
    model, tok = build_reward_model("tiny-bert", seed=0)
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu"))
    pairs = _pairs()
    a, _ = collect_stats(scorer, pairs[:3], meta={"rm": "x", "data": "y"})
    b, _ = collect_stats(scorer, pairs[3:])
    whole, _ = collect_stats(scorer, pairs)
    merged = a.merge(b)
    # different batches → float32 per-batch rounding differs by ~1e-7 of the summed magnitudes
    scale = float(np.abs(whole.act.abs_sum).max())
    np.testing.assert_allclose(merged.act.sum, whole.act.sum, rtol=1e-6, atol=1e-6 * scale)
    assert merged.rmsd_pairs == whole.rmsd_pairs == len(pairs)
    scores = np.arange(a.layers * a.neurons, dtype=float).reshape(a.layers, a.neurons)
    path = save_stats(tmp_path / "s.npz", a, scores, {"method": "magnitude", "pool": "all", "seed": 0})
    back, back_scores = load_stats(path)
    assert back.meta["rm"] == "x" and back.meta["scores"]["method"] == "magnitude"
    assert back.groups == ["chosen", "rejected"] and back.diff is None
    np.testing.assert_array_equal(back.act.sq_sum, a.act.sq_sum)
    np.testing.assert_array_equal(back_scores, scores)
    assert back.rmsd() == a.rmsd()
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_stats_file_is_one_line_error(tmp_path):
    from rmtension.errors import RmtensionError

    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(RmtensionError, match="bad.npz: not a neuron statistics file"):
        load_stats(bad)
    with pytest.raises(RmtensionError, match="does not exist"):
        load_stats(tmp_path / "missing.npz")


def test_bf16_autocast_runs_rm_and_base_alike_and_truncation_is_counted():
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    base, _ = build_reward_model("tiny-gpt2", seed=0)
    pairs = _pairs()[:3]
    ref, _ = collect_stats(RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu")), pairs,
                           base_model=base)
    low, _ = collect_stats(RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu",
                                                                 dtype="bfloat16")), pairs, base_model=base)
    # identical weights → the change is exactly zero when both models run under the same autocast
    assert np.abs(low.diff.sum).max() == 0 and np.abs(ref.diff.sum).max() == 0
    np.testing.assert_allclose(low.act.sum, ref.act.sum, rtol=0.05, atol=0.05 * np.abs(ref.act.sum).max())
    assert ref.meta["truncated_texts"] == 0
    cut, _ = collect_stats(RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu",
                                                                 max_length=40)), pairs)
    assert cut.meta["truncated_texts"] > 0 and cut.act.count.max() <= 40 * len(pairs)
    with pytest.raises(ValueError, match="separate model"):
        NeuronStatsRecorder(model, base_model=model)
