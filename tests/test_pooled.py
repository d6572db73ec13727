"""Pooled intervals across seeds (rmtension.analysis.pooled) and the summary keys gather writes from them.

Items are built by hand: pairwise items whose response lengths come from real HH-RLHF test pairs
(../shared/data) where the file is there, and RMs whose scores are known functions of correctness
or of length, so the expected accuracies, pairings and length-matched numbers are exact.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rmtension.analysis.findings import INCONCLUSIVE_LENGTH, SUPPORTED, finding_a
from rmtension.analysis.pooled import N_RESAMPLES, pooled_entries, subset_data, two_way
from rmtension.data.hh import parse_hh_pair
from rmtension.study.gather import pooled_intervals

DATA = (Path(__file__).resolve().parent.parent.parent / "shared" / "data").resolve()  # as conftest.SHARED_DATA


def hh_lengths(n: int, part: str = "helpful-base") -> list[tuple[int, int]]:
    """(chosen, rejected) response lengths in characters of the first n HH-RLHF test pairs of ``part``
    (the final assistant turns, as rmtension.data.hh splits them); synthetic when the data is absent."""
    path = DATA / "hh-rlhf" / part / "test.jsonl.gz"
    if path.is_file():
        out = []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                parsed = parse_hh_pair(row["chosen"], row["rejected"])
                if not isinstance(parsed, str):
                    out.append((len(parsed[1]), len(parsed[2])))
                if len(out) == n:
                    return out
    rng = random.Random(3)
    return [(rng.randint(50, 400), rng.randint(50, 400)) for _ in range(n)]


def rows_for(scorer, lengths: list[tuple[int, int]], bench: str = "hh-heldout", subset: str = "helpful-base",
             group: str = "helpful", seed: int = 0) -> list[dict[str, Any]]:
    """items.jsonl rows of one RM: ``scorer(i, chosen_len, rejected_len, seed)`` gives (chosen, rejected) scores."""
    out = []
    for i, (c, r) in enumerate(lengths):
        cs, rs = scorer(i, c, r, seed)
        out.append({"benchmark": bench, "subset": subset, "id": f"{subset}-{i}", "group": group, "metric": "pairwise",
                    "chosen_scores": [cs], "rejected_scores": [rs], "correct": float(cs > rs),
                    "chosen_tokens": [c], "rejected_tokens": [r], "chosen_chars": [c], "rejected_chars": [r]})
    return out


def run(objective: str, seed: int, path: str, subsets: dict[str, str]) -> dict[str, Any]:
    return {"backbone": "bb", "objective": objective, "seed": seed, "items_file": path,
            "eval": {"hh-heldout": {"subsets": {s: {"metric": "pairwise", "group": g, "in_group_mean": True}
                                                for s, g in subsets.items()}}}}


def by_length(sign: int):
    return lambda i, c, r, seed: (sign * c, sign * r)


def correct_with(p: float, salt: int = 0):
    """Right on a fixed share p of items (deterministic per item and seed)."""
    def score(i, c, r, seed):
        ok = random.Random(1000 * seed + i + 7919 * salt).random() < p
        return (1.0, 0.0) if ok else (0.0, 1.0)
    return score


def test_point_estimate_is_mean_over_seeds_and_seed_spread_widens_the_interval():
    lengths = hh_lengths(300)
    per_seed = [rows_for(correct_with(p), lengths, seed=s) for s, p in enumerate((0.55, 0.7, 0.85))]
    d = subset_data(per_seed)
    rep = two_way([[d]], n_resamples=N_RESAMPLES)
    accs = [np.mean([r["correct"] for r in rows]) for rows in per_seed]
    assert rep.raw[0] == pytest.approx(np.mean(accs))
    # the same accuracy on every seed: only item sampling is left, and the interval narrows
    same = subset_data([rows_for(correct_with(0.7), lengths, seed=0)] * 3)
    rep_same = two_way([[same]], n_resamples=N_RESAMPLES)
    width = np.subtract(*np.percentile(rep.raw_boot[:, 0], [97.5, 2.5]))
    width_same = np.subtract(*np.percentile(rep_same.raw_boot[:, 0], [97.5, 2.5]))
    assert width > 1.5 * width_same
    # one seed: the items bootstrap, centred on the subset accuracy
    one = two_way([[subset_data(per_seed[:1])]])
    lo, hi = np.percentile(one.raw_boot[:, 0], [2.5, 97.5])
    assert lo < accs[0] < hi and hi - lo < 0.15


def test_length_only_rm_is_at_chance_on_length_matched_pairs_and_findings_say_length():
    """An RM scoring by length alone: raw accuracy = the longer-wins rate, ≈ 0.5 on length-matched pairs;
    a 'helpful' RM preferring long and a 'harmless' RM preferring short responses then show a raw
    contrast that finding (a) must report as inconclusive (length)."""
    rng = random.Random(0)
    n = 400
    # a quarter of pairs within 10% of each other's length, in random order (no length signal there); of
    # the rest, the chosen response is the longer one in 90% of helpful and 10% of harmless items
    def pair(p_longer: float) -> tuple[int, int]:
        base = rng.randint(100, 300)
        if rng.random() < 0.25:
            other, longer_first = base + rng.randint(1, 8), rng.random() < 0.5
        else:
            other, longer_first = base + rng.randint(60, 200), rng.random() < p_longer
        return (other, base) if longer_first else (base, other)
    help_len = [pair(0.9) for _ in range(n)]
    harm_len = [pair(0.1) for _ in range(n)]
    tmp_rows: dict[str, list[dict]] = {}
    runs = []
    for obj, sign in (("helpful", +1), ("harmless", -1)):
        for seed in (0, 1):
            path = f"{obj}-{seed}"
            tmp_rows[path] = (rows_for(by_length(sign), help_len, subset="helpful-base", group="helpful", seed=seed)
                              + rows_for(by_length(sign), harm_len, subset="harmless-base", group="harmless", seed=seed))
            runs.append(run(obj, seed, path, {"helpful-base": "helpful", "harmless-base": "harmless"}))
    pooled, contrasts = pooled_entries(runs, tmp_rows, n_resamples=500)
    hp = next(e for e in pooled if e["objective"] == "helpful" and e["task"] == "hh-heldout/helpful-base")
    longer_wins = np.mean([c > r for c, r in help_len])
    assert hp["mean"] == pytest.approx(longer_wins) and hp["mean"] > 0.7
    assert hp["seeds"] == [0, 1] and hp["n_items"] == n
    lm = hp["length_matched"]
    assert lm["n_items"] == sum(abs(c - r) <= 0.1 * max(c, r) for c, r in help_len)
    assert abs(lm["mean"] - 0.5) < 0.15 and lm["ci95"]["low"] < 0.5 < lm["ci95"]["high"]
    groups = [c for c in contrasts if c["name"] == "helpful-vs-harmless" and c["kind"] == "group"]
    assert {c["group"] for c in groups} == {"helpful", "harmless"}
    h = next(c for c in groups if c["group"] == "helpful")
    assert h["ci95"]["low"] > 0.3  # raw: the long-preferring RM wins big on helpful pairs
    assert h["diff"] == pytest.approx(h["a_mean"] - h["b_mean"])
    lo, hi = h["length_matched"]["ci95"]["low"], h["length_matched"]["ci95"]["high"]
    assert lo < 0 < hi  # on length-matched pairs the difference is gone
    adj = h["length_adjusted"]["ci95"]
    assert adj["low"] < 0 < adj["high"]  # and at equal length in the logistic adjustment too
    f = finding_a(contrasts)
    assert f.verdict == INCONCLUSIVE_LENGTH


def test_pairing_and_a_real_difference_is_supported(tmp_path: Path):
    """RMs paired on items: the harmless RM is the helpful one with every tenth item turned wrong on
    helpful pairs (and vice versa on harmless ones); the paired difference is exactly the share of those
    items the other RM had right, its interval excludes 0; gather reads the items files from disk."""
    lengths = hh_lengths(300)
    subsets = {"helpful-base": "helpful", "harmless-base": "harmless"}
    runs = []
    for obj in ("helpful", "harmless", "mixed"):
        for seed in (0, 1, 2):
            def score(i, c, r, s, obj=obj, group="helpful"):
                good = random.Random(31 + i).random() < 0.8
                if obj != "helpful" and i % 10 == 0:
                    good = False
                return (1.0, 0.0) if good else (0.0, 1.0)

            def score_harm(i, c, r, s, obj=obj):
                good = random.Random(17 + i + 5).random() < 0.8
                if obj != "harmless" and i % 10 == 0:
                    good = False
                return (1.0, 0.0) if good else (0.0, 1.0)
            rows = rows_for(score, lengths, subset="helpful-base", group="helpful", seed=seed) + \
                rows_for(score_harm, lengths, subset="harmless-base", group="harmless", seed=seed)
            path = tmp_path / f"{obj}-{seed}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            runs.append(run(obj, seed, str(path), subsets))
    runs.append(run("mixed", 9, str(tmp_path / "gone.jsonl"), subsets))  # a missing items file is skipped
    pooled, contrasts = pooled_intervals(runs)
    assert all(9 not in e["seeds"] for e in pooled)
    assert {(e["objective"], e["kind"]) for e in pooled} >= {("helpful", "subset"), ("mixed", "group")}
    hh = next(c for c in contrasts if c["name"] == "helpful-vs-harmless" and c["task"] == "hh-heldout/helpful (group mean)")
    # the harmless RM loses exactly the i % 10 == 0 items the helpful RM had right: the paired difference is that share
    expected = np.mean([random.Random(31 + i).random() < 0.8 and i % 10 == 0 for i in range(300)])
    assert hh["diff"] == pytest.approx(expected)
    assert 0 < hh["ci95"]["low"] < expected < hh["ci95"]["high"] < 0.2
    # these RMs ignore length: the length-adjusted difference agrees with the raw one
    assert hh["length_adjusted"]["diff"] == pytest.approx(expected, abs=0.03)
    mh = next(c for c in contrasts if c["name"] == "mixed-vs-harmless" and c["task"] == "hh-heldout/harmless (group mean)")
    assert mh["ci95"]["high"] < 0  # the mixed RM trails the harmless RM on harmless items
    assert finding_a(contrasts).verdict in (SUPPORTED, INCONCLUSIVE_LENGTH)
    with pytest.raises(Exception, match="gone.jsonl"):
        from rmtension.data.io import read_jsonl  # the reader the study's gather uses for items files
        read_jsonl(tmp_path / "gone.jsonl")


def test_length_adjusted_accuracy_removes_a_length_rule_and_keeps_a_real_effect():
    """The logistic length adjustment (analysis.length.logistic_at_zero through pooled): an RM that scores by
    length alone sits at ≈ 0.5 at equal length although its raw accuracy is far from it; an RM whose margin
    mixes length with a real preference keeps the real part; on real HH lengths, where matched pairs are too
    few for the matched check, finding (a) is decided by the adjusted difference."""
    lengths = hh_lengths(400, "harmless-base")
    rows = {"len": rows_for(by_length(-1), lengths, subset="harmless-base", group="harmless"),
            "flat": rows_for(correct_with(0.7), lengths, subset="harmless-base", group="harmless")}
    runs = [run("harmless", 0, "len", {"harmless-base": "harmless"})]
    pooled, _ = pooled_entries(runs, rows, n_resamples=300)
    e = next(p for p in pooled if p["kind"] == "subset")
    shorter_wins = np.mean([c < r for c, r in lengths])
    assert e["mean"] == pytest.approx(shorter_wins)
    assert abs(e["length_adjusted"]["mean"] - 0.5) < 0.08 and e["length_adjusted"]["ci95"]["low"] < 0.5
    pooled, _ = pooled_entries([run("harmless", 0, "flat", {"harmless-base": "harmless"})], rows, n_resamples=300)
    e = next(p for p in pooled if p["kind"] == "subset")
    assert e["length_adjusted"]["mean"] == pytest.approx(e["mean"], abs=0.04)

    # two RMs: both prefer shorter responses equally; the 'harmless' one also knows the answer on 30% more
    # items. Raw and adjusted differences both show it; matched pairs are too few on these real lengths.
    def mixed_rm(extra: float):
        def score(i, c, r, seed):
            knows = random.Random(500 + i).random() < extra
            return (-c + (1e6 if knows else 0.0), -r)
        return score
    rows = {"harm": rows_for(mixed_rm(0.35), lengths, subset="harmless-base", group="harmless"),
            "help": rows_for(mixed_rm(0.05), lengths, subset="harmless-base", group="harmless")}
    runs = [run("harmless", 0, "harm", {"harmless-base": "harmless"}), run("helpful", 0, "help", {"harmless-base": "harmless"})]
    _, contrasts = pooled_entries(runs, rows, n_resamples=300)
    c = next(x for x in contrasts if x["name"] == "helpful-vs-harmless" and x["kind"] == "group")
    assert c["ci95"]["high"] < 0 and c["length_adjusted"]["ci95"]["high"] < 0
    assert (c["length_matched"] or {}).get("min_subset_items", 0) < 40
    from rmtension.analysis.findings import contrast_evidence
    ev = contrast_evidence(dict(c, length_matched=dict(c["length_matched"] or {}, min_subset_items=3)), -1, "x")
    assert ev.verdict == SUPPORTED and "length-adjusted" in ev.note
    # matched pairs that contradict the adjustment (enough of them, interval on the other side) win
    ev = contrast_evidence(dict(c, length_matched={"diff": 0.3, "ci95": {"low": 0.1, "high": 0.5}, "n_cells": 40,
                                                   "n_items": 40, "min_subset_items": 40}), -1, "x")
    assert ev.verdict == INCONCLUSIVE_LENGTH and "length-matched" in ev.note
    ev = contrast_evidence(dict(c, length_adjusted={"diff": 0.0, "ci95": {"low": -0.1, "high": 0.1}},
                                length_matched=None), -1, "x")
    assert ev.verdict == INCONCLUSIVE_LENGTH
