"""Shared-prompt scoring: packed rows give the plain path's scores, neuron statistics and sweeps.

Texts are real: HH-RLHF pairs (chosen and rejected share the whole dialogue up to the last
assistant turn) and RM-Bench items (six responses to one prompt). The plain path
(``shared_prompt=False``) is the reference, itself checked against one-text-at-a-time forwards in
tests/test_scorer.py. Every test also asserts that packing really happened, so a scorer that
silently fell back to the plain path could not pass.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from rmtension.evaluation import scorer as scorer_mod
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig, read_position, share_groups
from rmtension.models.formatting import format_for_rm
from rmtension.models.reward_model import build_reward_model

DECODERS = ["tiny-gpt2", "tiny-llama", "tiny-gemma"]


def _cfg(shared: bool, **kw) -> ScorerConfig:
    return ScorerConfig(batch_size=kw.pop("batch_size", 4), progress=False, device="cpu", shared_prompt=shared, **kw)


def _hh(data_dir: Path, n: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) from HH-RLHF helpful-base test, split at the last assistant turn."""
    out = []
    with gzip.open(data_dir / "hh-rlhf" / "helpful-base" / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for _, line in zip(range(n), fh):
            rec = json.loads(line)
            head, _, chosen = rec["chosen"].rpartition("\n\nAssistant: ")
            head2, _, rejected = rec["rejected"].rpartition("\n\nAssistant: ")
            if head == head2:
                out.append((head.removeprefix("\n\nHuman: "), chosen, rejected))
    return out


def _texts(tok, data_dir: Path, n_hh: int = 10, n_rmb: int = 2) -> list[str]:
    texts = []
    for prompt, c, r in _hh(data_dir, n_hh):
        texts += [format_for_rm(prompt, c, tok, "hh"), format_for_rm(prompt, r, tok, "hh")]
    rb = json.loads((data_dir / "rm-bench" / "chat_filtered.json").read_text(encoding="utf-8"))
    for item in rb[:n_rmb]:
        texts += [format_for_rm(item["prompt"], x, tok, "hh") for x in item["chosen"] + item["rejected"]]
    return texts


@pytest.fixture
def pack_everything(monkeypatch):
    """Make attention look free to the cost model, so RM-Bench's six responses pack too (tiny models
    would otherwise, correctly, keep long responses with a short prompt apart)."""
    monkeypatch.setattr(scorer_mod, "ATTENTION_PER_HIDDEN", 1e9)


@pytest.mark.parametrize("family", DECODERS)
def test_shared_scores_equal_plain(family, data_dir, pack_everything):
    model, tok = build_reward_model(family, seed=4)
    texts = _texts(tok, data_dir)
    plain = RewardScorer(model, tok, _cfg(False))
    shared = RewardScorer(model, tok, _cfg(True))
    want = plain.score(texts)
    got = shared.score(texts)
    rep, prep = shared.last_report, plain.last_report
    assert rep.shared_prompt and rep.shared_texts >= len(texts) - rep.truncated - 2 and rep.shared_rows >= 10
    assert not prep.shared_prompt and prep.shared_texts == 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert rep.tokens == prep.tokens, "real tokens: each text's own length, on both paths"
    assert rep.padded_tokens < 0.8 * prep.padded_tokens, "the prompts were computed once"
    batches, _, _ = shared.make_batches(texts)
    assert all(len(b.text_index) <= 4 for b in batches), "a row (and a batch) never holds more than batch_size texts"
    if family == "tiny-gemma":  # the sliding-window layers (window 128) must see texts longer than the window
        assert max(len(tok(t)["input_ids"]) for t in texts) > 3 * model.config.sliding_window


def test_cost_model_keeps_short_prompts_with_long_responses_apart(data_dir):
    """With the measured cost model a tiny model (hidden 64) still packs HH pairs, whose dialogue
    dominates, and computes fewer positions than the plain path; scores stay equal."""
    model, tok = build_reward_model("tiny-llama", seed=4)
    texts = _texts(tok, data_dir, n_hh=8, n_rmb=1)
    plain = RewardScorer(model, tok, _cfg(False))
    shared = RewardScorer(model, tok, _cfg(True))
    np.testing.assert_allclose(shared.score(texts), plain.score(texts), rtol=1e-5, atol=1e-5)
    assert shared.last_report.shared_rows >= 4
    assert shared.last_report.padded_tokens < plain.last_report.padded_tokens


def test_prefix_is_the_exact_common_token_prefix(data_dir, pack_everything):
    """A response boundary that BPE merges differently ("Help" vs "Hello" after the same prompt)
    must not be shared: every packed text's prefix + rest is exactly its own tokenisation."""
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    prompt, c, _ = _hh(data_dir, 3)[0]
    texts = [format_for_rm(prompt, r, tok, "hh") for r in ("Help is on the way.", "Hello there.", "Hel", "Helpful!")]
    ids = [tok(t)["input_ids"] for t in texts]
    scorer = RewardScorer(model, tok, _cfg(True))
    batches, _owner, rep = scorer.make_batches(texts)
    assert rep.shared_texts == 4
    for b in batches:
        for t, spans in zip(b.text_index, b.text_spans):
            got = [int(x) for r, s, e in spans for x in b.input_ids[r, s:e]]
            assert got == ids[t]
        for t, (r, c) in zip(b.text_index, b.read_pos):
            assert int(b.input_ids[r, c]) == ids[t][read_position(ids[t], scorer.head_pad_id)]
    # the shared prefix is the longest exact common prefix of the ids (not of the strings)
    reads = [read_position(x, scorer.head_pad_id) for x in ids]
    (prefix, members), = share_groups(ids, reads, range(4), 1e12)
    lcp = min(next((i for i, (a, b) in enumerate(zip(ids[0], x)) if a != b), min(len(ids[0]), len(x))) for x in ids)
    assert prefix == min(lcp, *reads) and sorted(members) == [0, 1, 2, 3]
    # a row holds at most max_members texts (the scorer passes its batch size)
    assert [len(m) for _, m in share_groups(ids, reads, range(4), 1e12, max_members=3)] == [3]
    np.testing.assert_allclose(scorer.score(texts), RewardScorer(model, tok, _cfg(False)).score(texts),
                               rtol=1e-5, atol=1e-5)


def test_truncated_texts_are_never_packed(data_dir, pack_everything):
    model, tok = build_reward_model("tiny-llama", seed=2)
    texts = _texts(tok, data_dir, n_hh=6, n_rmb=0)
    lengths = sorted(len(tok(t)["input_ids"]) for t in texts)
    limit = lengths[len(lengths) // 2]
    shared = RewardScorer(model, tok, _cfg(True, max_length=limit))
    got = shared.score(texts)
    rep = shared.last_report
    assert rep.truncated >= len(texts) // 2 - 1 and rep.shared_texts > 0
    batches, _, _ = shared.make_batches(texts)
    cut = {i for i, t in enumerate(texts) if len(tok(t)["input_ids"]) > limit}
    for b in batches:
        for t, spans in zip(b.text_index, b.text_spans):
            assert len(spans) == 1 or t not in cut
    np.testing.assert_allclose(got, RewardScorer(model, tok, _cfg(False, max_length=limit)).score(texts),
                               rtol=1e-5, atol=1e-5)


def test_encoders_fall_back_with_one_line(data_dir, caplog):
    model, tok = build_reward_model("tiny-bert", seed=0)
    texts = _texts(tok, data_dir, n_hh=3, n_rmb=0)
    with caplog.at_level(logging.WARNING, logger="rmtension.evaluation.scorer"):
        shared = RewardScorer(model, tok, _cfg(True))
    assert not shared.shares
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "bert" in msgs[0] and "\n" not in msgs[0]
    assert np.array_equal(shared.score(texts), RewardScorer(model, tok, _cfg(False)).score(texts))
    assert shared.last_report.shared_texts == 0


@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gemma"])
def test_neuron_statistics_equal_plain(family, data_dir, pack_everything):
    """Moments, token counts, change score (base model run in the same packed layout) and pair RMSD."""
    from rmtension.neurons.recorder import collect_stats

    model, tok = build_reward_model(family, seed=5)
    base, _ = build_reward_model(family, seed=6)
    pairs = []
    for prompt, c, r in _hh(data_dir, 8):
        pairs.append((format_for_rm(prompt, c, tok, "hh"), format_for_rm(prompt, r, tok, "hh")))
    pairs.append(pairs[0])  # a repeated pair: weights, not recomputation
    out = {}
    for shared in (False, True):
        scorer = RewardScorer(model, tok, _cfg(shared))
        out[shared] = collect_stats(scorer, pairs, site="act", base_model=base, chunk_pairs=5)
        if shared:
            assert scorer.last_report.shared_texts > 0
    (sp, scp), (ss, scs) = out[False], out[True]
    np.testing.assert_allclose(scs, scp, rtol=1e-5, atol=1e-5)
    assert ss.tokens == sp.tokens and np.array_equal(ss.texts, sp.texts)
    for block in ("act", "diff"):
        a, b = getattr(sp, block), getattr(ss, block)
        for m in ("sum", "abs_sum", "sq_sum"):
            x, y = getattr(a, m), getattr(b, m)
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-5 * np.abs(x).max(), err_msg=f"{block}.{m}")
        np.testing.assert_allclose(b.pos_count, a.pos_count, atol=0.5 + 1e-4 * a.pos_count.max())
    assert ss.rmsd_pairs == sp.rmsd_pairs == len(pairs)
    np.testing.assert_allclose(ss.rmsd_sum, sp.rmsd_sum, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", ["tiny-gpt2", "tiny-gemma"])
def test_ablation_sweep_with_shared_prompts_equals_plain(family, data_dir, pack_everything):
    """The layer replay of a sweep works on packed batches: every set's scores equal plain-path
    scores under ``apply_ablation``, and sets starting above layer 0 are resumed, not re-run."""
    from rmtension.ablation import apply_ablation, prepare, score_sweep
    from rmtension.neurons.sets import NeuronSet
    from rmtension.neurons.sites import model_sites

    model, tok = build_reward_model(family, seed=7)
    texts = _texts(tok, data_dir, n_hh=5, n_rmb=1)
    ms = model_sites(model)
    L, N = ms.n_layers, ms.n_neurons
    sets = [prepare(ms, NeuronSet.from_indices(L, N, {s: list(range(0, N, 3))}, {"site": "act"}), name=f"zero-{s}")
            for s in range(L)]
    sets.append(prepare(ms, NeuronSet.from_indices(L, N, {L - 1: [1, 2]}, {"site": "act"}), "scale", factor=1.7,
                        name="scale-top"))
    shared = RewardScorer(model, tok, _cfg(True))
    base, per_set, stats = score_sweep(shared, texts, sets)
    assert shared.last_report.shared_texts > 0 and stats.fallbacks == {}
    assert stats.starts["zero-1"] == 1
    plain = RewardScorer(model, tok, _cfg(False))
    np.testing.assert_allclose(base, plain.score(texts), rtol=1e-5, atol=1e-5)
    for ab, got in zip(sets, per_set):
        with apply_ablation(model, ab):
            want = plain.score(texts)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=ab.name)


def test_eval_and_neurons_cli_with_and_without_shared_prompt(data_dir, tmp_path, capsys):
    """``eval`` gives the same items with and without ``--no-shared-prompt``; both results.json
    ``scoring`` blocks report positions and real tokens (equal real tokens, fewer positions shared);
    ``neurons score`` takes the flag too and its statistics agree."""
    from rmtension.cli.main import main
    from rmtension.evaluation.evaluate import read_items, read_results
    from rmtension.models.reward_model import save_reward_model
    from rmtension.neurons.stats import load_stats

    model, tok = build_reward_model("tiny-llama", seed=5)
    rm = tmp_path / "rm"
    save_reward_model(model, tok, rm, {"backbone": "tiny-llama", "template": "hh", "objective": "mixed", "seed": 5})
    rows = [{"id": f"h{k}", "subset": "hh", "group": "helpful", "prompt": p, "chosen": c, "rejected": r}
            for k, (p, c, r) in enumerate(_hh(data_dir, 6))]
    bench = tmp_path / "hh.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = {}
    for flag in ([], ["--no-shared-prompt"]):
        d = tmp_path / ("plain" if flag else "shared")
        assert main(["eval", "--rm", str(rm), "--bench", str(bench), "--out", str(d), "--no-progress",
                     "--batch-size", "4", *flag]) == 0
        out[bool(flag)] = (read_results(d), read_items(d))
    (rs, items_s), (rp, items_p) = out[False], out[True]
    ss, sp = rs["scoring"], rp["scoring"]
    assert ss["shared_prompt"] and not sp["shared_prompt"] and ss["shared_texts"] > 0 == sp["shared_texts"]
    assert ss["real_tokens"] == sp["real_tokens"] and ss["positions"] < sp["positions"]
    for a, b in zip(items_s, items_p):
        assert a["id"] == b["id"] and a["correct"] == b["correct"]
        np.testing.assert_allclose(a["chosen_scores"] + a["rejected_scores"], b["chosen_scores"] + b["rejected_scores"],
                                   rtol=1e-5, atol=1e-5)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in _hh(data_dir, 6)), encoding="utf-8")
    stats = {}
    for flag in ([], ["--no-shared-prompt"]):
        f = tmp_path / ("plain.npz" if flag else "shared.npz")
        assert main(["neurons", "score", "--rm", str(rm), "--data", str(data), "--batch-size", "4", "--out", str(f),
                     *flag]) == 0
        stats[bool(flag)] = load_stats(f)[0]
    capsys.readouterr()
    a, b = stats[True], stats[False]
    assert b.meta["shared_prompt"] and not a.meta["shared_prompt"] and b.meta["positions"] < a.meta["positions"]
    assert a.meta["real_tokens"] == b.meta["real_tokens"] == sum(a.tokens.values())
    np.testing.assert_allclose(b.act.sum, a.act.sum, rtol=1e-5, atol=1e-5 * np.abs(a.act.sum).max())
