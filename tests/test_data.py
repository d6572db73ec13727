"""Preference data: HH parsing on real records, named sources, bundles, generic files, the split."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rmtension.data.hh import parse_hh_pair, parse_turns, split_transcript
from rmtension.data.sources import load_preferences
from rmtension.data.split import heldout_bucket, prompt_key, split_pairs
from rmtension.data.types import SKIP_EMPTY, SKIP_IDENTICAL, SKIP_PROMPT_MISMATCH, Turn
from rmtension.errors import SourceNotFoundError

HH_TOTALS = {"helpful-base": 2354, "helpful-online": 1137, "helpful-rejection-sampled": 2749, "harmless-base": 2312}


def _raw_hh(data_dir: Path, subset: str) -> list[dict]:
    with gzip.open(data_dir / "hh-rlhf" / subset / "test.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _independent_skip_counts(records: list[dict]) -> dict[str, int]:
    """Recount the odd records with plain string operations, independently of the parser."""
    mark = "\n\nAssistant:"
    counts = {SKIP_IDENTICAL: 0, SKIP_PROMPT_MISMATCH: 0, SKIP_EMPTY: 0}
    for r in records:
        c, j = r["chosen"], r["rejected"]
        if c == j:
            counts[SKIP_IDENTICAL] += 1
        elif c[: c.rindex(mark)] != j[: j.rindex(mark)]:
            counts[SKIP_PROMPT_MISMATCH] += 1
        elif not c[c.rindex(mark) + len(mark):].strip() or not j[j.rindex(mark) + len(mark):].strip():
            counts[SKIP_EMPTY] += 1
    return {k: v for k, v in counts.items() if v}


def test_multi_turn_record_keeps_every_turn(data_dir):
    records = _raw_hh(data_dir, "harmless-base")
    rec = next(r for r in records if r["chosen"].count("\n\nHuman:") >= 3)
    parsed = parse_hh_pair(rec["chosen"], rec["rejected"])
    assert not isinstance(parsed, str)
    prompt, chosen, rejected = parsed
    assert [t.role for t in prompt] == ["user", "assistant"] * (len(prompt) // 2) + ["user"] * (len(prompt) % 2)
    assert prompt[-1].role == "user"
    assert len([t for t in prompt if t.role == "user"]) == rec["chosen"].count("\n\nHuman:")
    # The final responses are exactly what follows the last assistant marker.
    assert rec["chosen"].endswith(chosen) and rec["rejected"].endswith(rejected)
    assert chosen != rejected
    # Every turn's text is in the transcript, in order.
    pos = 0
    for turn in prompt:
        pos = rec["chosen"].index(turn.content, pos)


def test_parse_turns_simple_and_odd_head():
    assert parse_turns("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye") == (
        Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "bye"))
    # Text before the first marker is kept, not dropped.
    assert parse_turns("preamble\n\nHuman: q")[0] == Turn("user", "preamble")
    assert split_transcript("no markers here") is None


def test_parse_reasons():
    t = "\n\nHuman: q\n\nAssistant: "
    assert parse_hh_pair(t + "a", t + "a") == SKIP_IDENTICAL
    assert parse_hh_pair(t + "a", t) == SKIP_EMPTY
    assert parse_hh_pair(t + "a", "\n\nHuman: other\n\nAssistant: b") == SKIP_PROMPT_MISMATCH


@pytest.mark.parametrize("subset", sorted(HH_TOTALS))
def test_each_hh_subset_counts_match_the_file(data_dir, subset):
    data = load_preferences(f"hh-rlhf:{subset}", data_dir)
    rep = data.report
    assert rep.total == HH_TOTALS[subset]
    assert rep.usable == len(data.pairs)
    assert rep.usable + sum(rep.skipped.values()) == rep.total
    assert dict(rep.skipped) == _independent_skip_counts(_raw_hh(data_dir, subset))
    assert all(p.subset == subset and p.chosen and p.rejected and p.chosen != p.rejected for p in data.pairs)
    assert len({p.id for p in data.pairs}) == len(data.pairs)


def test_bundles_are_unions_of_their_subsets(data_dir):
    helpful = load_preferences("hh-rlhf:helpful", data_dir)
    harmless = load_preferences("hh-rlhf:harmless", data_dir)
    mixed = load_preferences("hh-rlhf:mixed", data_dir)
    assert set(helpful.subsets) == {"helpful-base", "helpful-online", "helpful-rejection-sampled"}
    assert set(harmless.subsets) == {"harmless-base"}
    assert mixed.report.total == sum(HH_TOTALS.values())
    assert len(mixed.pairs) == len(helpful.pairs) + len(harmless.pairs)
    summary = mixed.to_summary()
    assert set(summary) >= {"total", "usable", "skipped", "subsets"}
    assert summary["subsets"]["harmless-base"]["total"] == 2312


def test_split_suffix_and_env_var(data_dir, monkeypatch):
    monkeypatch.setenv("RMTENSION_DATA_DIR", str(data_dir))
    assert load_preferences("hh-rlhf:helpful-online@test").report.total == 1137
    with pytest.raises(SourceNotFoundError, match="train"):
        load_preferences("hh-rlhf:helpful-online@train")


def test_missing_source_says_where_it_looked(tmp_path):
    with pytest.raises(SourceNotFoundError) as err:
        load_preferences("hh-rlhf:harmless-base", tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "harmless-base" in msg and "offline" in msg
    with pytest.raises(SourceNotFoundError, match="no local data directory"):
        load_preferences("hh-rlhf:harmless-base")


def test_split_is_deterministic_disjoint_and_near_fraction(data_dir):
    pairs = load_preferences("hh-rlhf:mixed", data_dir).pairs
    train, held = split_pairs(pairs, 0.2)
    train2, held2 = split_pairs(list(reversed(pairs)), 0.2)
    assert {p.id for p in held} == {p.id for p in held2}
    assert len(train) + len(held) == len(pairs)
    assert not {prompt_key(p.prompt) for p in train} & {prompt_key(p.prompt) for p in held}
    assert 0.17 < len(held) / len(pairs) < 0.23
    # Growing the fraction only moves pairs from train to held-out.
    _, held3 = split_pairs(pairs, 0.3)
    assert {p.id for p in held} <= {p.id for p in held3}
    assert heldout_bucket(pairs[0].prompt) == heldout_bucket(pairs[0].prompt)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GENERIC_ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Paris"},
    {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "name?"}], "chosen": "Bob", "rejected": ""},
    {"chosen": "\n\nHuman: q\n\nAssistant: good", "rejected": "\n\nHuman: q\n\nAssistant: bad"},
]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "json", "parquet"])
def test_generic_formats_load_the_same(tmp_path, fmt):
    path = tmp_path / f"mine.{fmt}"
    if fmt == "jsonl":
        _write_jsonl(path, GENERIC_ROWS)
    elif fmt == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in GENERIC_ROWS)
    elif fmt == "json":
        path.write_text(json.dumps(GENERIC_ROWS), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [r for r in GENERIC_ROWS if isinstance(r.get("prompt", ""), str)]
        rows = [{"prompt": r.get("prompt"), "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
        pq.write_table(pa.Table.from_pylist(rows), path)
    data = load_preferences(str(path))
    rep = data.report
    assert rep.skipped[SKIP_IDENTICAL] == 1
    if fmt != "parquet":
        assert rep.total == 4 and rep.usable == 2 and rep.skipped[SKIP_EMPTY] == 1
        assert data.pairs[1].prompt == (Turn("user", "q"),) and data.pairs[1].chosen == "good"
    assert data.pairs[0].prompt == (Turn("user", "What is 2+2?"),)
    assert (data.pairs[0].chosen, data.pairs[0].rejected) == ("4", "5")
