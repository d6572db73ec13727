"""The shared reward scorer: batched scores equal unbatched ones, dedup, padding, truncation, hooks.

Texts are real HH-RLHF transcripts and RM-Bench responses, whose lengths differ by more than 10×,
so a batch that leaked padding into a score, or a row that moved to another text's score, shows.
The reference is the model run on one text at a time with no padding and no scorer code at all.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rmtension.errors import RmtensionError
from rmtension.evaluation import scorer as scorer_mod
from rmtension.evaluation.scorer import Batch, NonFiniteScoreError, RewardScorer, ScorerConfig
from rmtension.models.formatting import format_for_rm
from rmtension.models.reward_model import build_reward_model

FAMILIES = ["tiny-gpt2", "tiny-llama", "tiny-gemma", "tiny-bert"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster than
    two threads fighting other processes for the cores (and the result does not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _real_pairs(data_dir: Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs: short and long HH dialogues, concise and detailed RM-Bench answers."""
    with gzip.open(data_dir / "hh-rlhf" / "helpful-base" / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        hh = [json.loads(line) for _, line in zip(range(40), fh)]
    pairs = []
    for rec in hh:
        head, _, tail = rec["chosen"].rpartition("\n\nAssistant: ")
        pairs.append((head.removeprefix("\n\nHuman: "), tail))
    rb = json.loads((data_dir / "rm-bench" / "chat_filtered.json").read_text(encoding="utf-8"))
    for item in rb[:4]:
        pairs += [(item["prompt"], r) for r in item["chosen"][:2] + item["rejected"][:1]]
    return pairs


def _texts(tok, pairs, limit: int, n: int) -> list[str]:
    """``n`` formatted texts from the shortest to the longest that needs no truncation
    (evenly spread over the length range), shuffled."""
    texts = [format_for_rm(p, r, tok, "hh") for p, r in pairs]
    texts = sorted((t for t in texts if len(tok(t)["input_ids"]) <= limit), key=lambda t: len(tok(t)["input_ids"]))
    picked = [texts[round(k * (len(texts) - 1) / (n - 1))] for k in range(n)]
    random.Random(0).shuffle(picked)
    return picked


def _reference(model, tok, texts: list[str]) -> np.ndarray:
    """One text per forward pass, no padding, no scorer."""
    out = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok(t)["input_ids"]])
            out.append(float(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, 0]))
    return np.array(out)


class RowCounter:
    """Observer that records every batch it sees."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.scores: list[torch.Tensor] = []

    def before_batch(self, batch: Batch) -> None:
        self.batches.append(batch)

    def after_batch(self, batch: Batch, scores: torch.Tensor) -> None:
        assert batch is self.batches[-1]
        self.scores.append(scores)

    @property
    def rows(self) -> int:
        return sum(len(b.text_index) for b in self.batches)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_scores_equal_unbatched(family, data_dir):
    model, tok = build_reward_model(family, seed=3)
    texts = _texts(tok, _real_pairs(data_dir), limit=480, n=10)
    lengths = [len(tok(t)["input_ids"]) for t in texts]
    assert max(lengths) > 5 * min(lengths), "the test needs texts of very different lengths"
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=5, progress=False, device="cpu"))
    got = scorer.score(texts)
    np.testing.assert_allclose(got, _reference(model, tok, texts), rtol=1e-4, atol=1e-5)
    assert scorer.last_report.truncated == 0 and scorer.last_report.tokens == sum(lengths)


def test_duplicates_are_computed_once(data_dir):
    model, tok = build_reward_model("tiny-llama", seed=0)
    base = _texts(tok, _real_pairs(data_dir), limit=300, n=7)
    texts = base + [base[2], base[0], base[2]] + base[:3]
    counter = RowCounter()
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=3, progress=False, device="cpu"))
    got = scorer.score(texts, observers=[counter])
    assert counter.rows == len(set(texts)) == scorer.last_report.unique_texts == 7
    assert scorer.last_report.texts == len(texts)
    indexed = [i for b in counter.batches for i in b.text_index]
    assert sorted(indexed) == list(range(7)), "each unique text appears once, named by its first position"
    for k, t in enumerate(texts):
        assert got[k] == got[texts.index(t)]
    np.testing.assert_allclose(got[:7], _reference(model, tok, base), rtol=1e-4, atol=1e-5)


def test_batches_pad_only_to_their_own_longest_text(data_dir):
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    texts = _texts(tok, _real_pairs(data_dir), limit=420, n=16)
    lengths = [len(tok(t)["input_ids"]) for t in texts]
    bs = 4
    counter = RowCounter()
    # the plain path's layout (shared prompts pack rows: tests/test_shared_prompt_scoring.py)
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=bs, progress=False, device="cpu", shared_prompt=False))
    scorer.score(texts, observers=[counter])
    rep = scorer.last_report
    for b in counter.batches:
        real = b.attention_mask.sum(1)
        assert b.input_ids.shape[1] == int(real.max()), "a batch is exactly as wide as its longest text"
    assert rep.padded_tokens == sum(b.input_ids.numel() for b in counter.batches)
    assert rep.tokens == sum(lengths)
    # What batching in input order (a plain pipeline) would compute, and the optimum for sorted chunks.
    unsorted = sum(max(lengths[i:i + bs]) * len(lengths[i:i + bs]) for i in range(0, len(lengths), bs))
    desc = sorted(lengths, reverse=True)
    optimum = sum(desc[i] * len(desc[i:i + bs]) for i in range(0, len(desc), bs))
    assert rep.padded_tokens == optimum < unsorted
    assert rep.padding_ratio < unsorted / rep.tokens


def test_observers_see_the_real_token_mask(data_dir):
    model, tok = build_reward_model("tiny-gemma", seed=0)
    texts = _texts(tok, _real_pairs(data_dir), limit=320, n=9)
    tags = ["chosen" if k % 2 == 0 else "rejected" for k in range(len(texts))]
    counter = RowCounter()
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=4, progress=False, device="cpu", shared_prompt=False))
    got = scorer.score(texts, observers=[counter], tags=tags)
    for b, s in zip(counter.batches, counter.scores):
        assert b.tags == [tags[i] for i in b.text_index]
        np.testing.assert_array_equal(s.double().numpy(), got[b.text_index])
        for row, i in enumerate(b.text_index):
            ids = tok(texts[i])["input_ids"]
            n = int(b.attention_mask[row].sum())
            assert n == len(ids)
            assert b.attention_mask[row, :n].all() and not b.attention_mask[row, n:].any(), "right padding"
            assert b.input_ids[row, :n].tolist() == ids
            assert (b.input_ids[row, n:] == scorer.pad_id).all()


@pytest.mark.parametrize("family", ["tiny-gpt2", "tiny-gemma", "tiny-bert"])
def test_left_truncation_keeps_the_end(family, data_dir):
    model, tok = build_reward_model(family, seed=1)
    long_text = format_for_rm(*_real_pairs(data_dir)[0][:1], "word " * 40 + "THE END.", tok, "hh")
    short_text = format_for_rm("hi", "hello", tok, "hh")
    ids = tok(long_text)["input_ids"]
    limit = 48
    first_special = ids[0] in set(tok.all_special_ids)
    kept = ids[:1] + ids[-(limit - 1):] if first_special else ids[-limit:]
    assert len(kept) == limit and kept[-len(tok("END.")["input_ids"]) + 2:] == ids[-len(tok("END.")["input_ids"]) + 2:]
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, max_length=limit, progress=False, device="cpu"))
    got = scorer.score([short_text, long_text])
    with torch.no_grad():
        t = torch.tensor([kept])
        want = float(model(input_ids=t, attention_mask=torch.ones_like(t)).logits[0, 0])
    assert got[1] == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert scorer.last_report.truncated == 1 and scorer.max_length == limit


def test_nan_scores_are_a_clear_error():
    model, tok = build_reward_model("tiny-llama", seed=0)
    with torch.no_grad():
        model.score.weight.fill_(float("nan"))
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, progress=False, device="cpu"))
    with pytest.raises(NonFiniteScoreError, match=r"3 non-finite scores .* out of 3, first at text 0") as err:
        scorer.score(["a b", "c", "d e f"])
    assert isinstance(err.value, RmtensionError) and "\n" not in str(err.value)
    assert scorer.last_report.unique_texts == 3, "the report still describes the failed pass"


def test_bf16_autocast_path_runs(data_dir):
    model, tok = build_reward_model("tiny-llama", seed=2)
    texts = _texts(tok, _real_pairs(data_dir), limit=300, n=6)
    f32 = RewardScorer(model, tok, ScorerConfig(batch_size=3, progress=False, device="cpu")).score(texts)
    bf16 = RewardScorer(model, tok, ScorerConfig(batch_size=3, dtype="bfloat16", progress=False, device="cpu")).score(texts)
    assert bf16.dtype == np.float64 and np.isfinite(bf16).all()
    assert next(model.parameters()).dtype == torch.float32, "autocast leaves the weights in float32"
    np.testing.assert_allclose(bf16, f32, atol=0.05 * np.abs(f32).max() + 1e-3)


def test_repeated_calls_reuse_tokenisation(monkeypatch):
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    calls = []
    real = scorer_mod.encode
    monkeypatch.setattr(scorer_mod, "encode", lambda tk, texts: calls.append(len(texts)) or real(tk, texts))
    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=2, progress=False, device="cpu"))
    texts = ["one", "two two", "one"]
    a = scorer.score(texts)
    b = scorer.score(list(texts))
    assert calls == [2] and np.array_equal(a, b)
    scorer.score(["three"])
    assert calls == [2, 1]


def test_bad_inputs():
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    scorer = RewardScorer(model, tok, ScorerConfig(progress=False, device="cpu"))
    assert scorer.score([]).shape == (0,)
    with pytest.raises(RmtensionError, match="text 1 is empty"):
        scorer.score(["x", ""])
    with pytest.raises(RmtensionError, match="batch size"):
        RewardScorer(model, tok, ScorerConfig(batch_size=0))
    model.config.num_labels = 2
    with pytest.raises(RmtensionError, match="2 labels"):
        RewardScorer(model, tok)
