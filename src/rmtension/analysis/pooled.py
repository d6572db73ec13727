"""Intervals across seeds: a two-way (items × seeds) bootstrap of accuracies and of differences between RMs.

Why two-way: with several seeds, an accuracy in the report is the mean over seeds of the same items
scored by differently trained RMs. Its uncertainty has two sources — which items the benchmark
happens to hold and which training runs the seeds happen to give — and the ± std over seeds shows
only the second (zero-width with one seed) while each eval's own interval shows only the first. Each
resample here draws the items with replacement (one draw per subset, shared by every seed and every
RM scored on them, so RMs stay paired on items) and, independently, the seeds of each RM with
replacement (the seeds of two RMs are different training runs, not pairs), then recomputes the
statistic. With one seed this is the items bootstrap of ``rmtension eval``.

Statistics (all on the per-item rows of ``items.jsonl``):

- **raw**: a subset's accuracy = mean over the RM's seeds of the mean item ``correct`` (the benchmark's
  own per-item correctness, whose mean is the subset score for pairwise, best-of-N and RM-Bench subsets);
  Ties subsets (a composite, not a mean of items) are left out.
- **length-matched**: per seed, the share of length-matched cells (|len(chosen) − len(rejected)| ≤
  10% of the longer; :func:`rmtension.analysis.length.matched_mask`) on which the chosen response
  scores strictly higher, as a ratio over the resampled items (:mod:`rmtension.analysis.length`'s
  definition), then the mean over seeds.
- **length-adjusted** (pairwise subsets only): the accuracy at zero length difference of a logistic fit of
  per-item correctness on the relative length difference, over every (item, seed) with the resample's
  weights (:func:`rmtension.analysis.length.logistic_at_zero`); resamples where it is undefined are dropped.
- **group mean**: the unweighted mean over the group's counted subsets (``in_group_mean``), as
  ``rmtension eval`` computes a benchmark's group score; each subset is resampled on its own.
- **contrast** of RM a vs RM b: the statistic of a minus that of b on the items both scored, under the
  same item draws.

Percentile intervals (95%, :data:`N_RESAMPLES` resamples from ``numpy.random.default_rng(SEED)``);
resamples where a ratio is undefined (no matched cell drawn) are dropped, as in
:mod:`rmtension.analysis.length`. Everything is numpy, with no side effects (the study's gather reads the items files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from rmtension.analysis.length import (ADJUST_MODEL, _percentile_ci, cells, draw_counts, logistic_at_zero, matched_mask,
                                       single_cell_diff)
from rmtension.bench.types import METRIC_TIES  # a composite score: no per-item mean

N_RESAMPLES = 2000
SEED = 0
GROUPS = ("helpful", "harmless")
# Contrasts gathered into summary.json: (a, b, name); the difference is a − b.
CONTRASTS: tuple[tuple[str, str], ...] = (("helpful", "harmless"), ("mixed", "helpful"), ("mixed", "harmless"))
METHOD = f"two-way percentile bootstrap (items × seeds), {N_RESAMPLES} resamples, seed {SEED}"


# ----------------------------------------------------------------------------- per-item data


@dataclass
class SubsetData:
    """One RM's items of one subset over its seeds, aligned on ``ids``.

    ``raw`` (items × seeds): per-item correctness. ``hits``/``cells`` (items × seeds): per item, the
    length-matched cells the chosen response wins and the length-matched cells it has.
    """

    ids: list[str]
    raw: np.ndarray
    hits: np.ndarray
    cells: np.ndarray
    rel_diff: np.ndarray | None = None  # per item (pairwise items only): the length-adjusted fit's covariate

    def take(self, ids: Sequence[str]) -> "SubsetData":
        pos = {i: k for k, i in enumerate(self.ids)}
        idx = np.array([pos[i] for i in ids], dtype=int)
        rel = None if self.rel_diff is None else self.rel_diff[idx]
        return SubsetData(list(ids), self.raw[idx], self.hits[idx], self.cells[idx], rel)


def _lengths(row: Mapping[str, Any]) -> tuple[Any, Any]:
    for unit in ("tokens", "chars"):
        if f"chosen_{unit}" in row and f"rejected_{unit}" in row:
            return row[f"chosen_{unit}"], row[f"rejected_{unit}"]
    return None, None


def matched_counts(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Per item: (length-matched cells won by the chosen response, length-matched cells); zeros when
    the rows carry no lengths (items.jsonl written before lengths were recorded)."""
    n = len(rows)
    if n == 0 or any(_lengths(r)[0] is None for r in rows):
        return np.zeros(n), np.zeros(n)
    c = cells([r["chosen_scores"] for r in rows], [r["rejected_scores"] for r in rows],
              [_lengths(r)[0] for r in rows], [_lengths(r)[1] for r in rows])
    use = matched_mask(c)
    hits = np.bincount(c.item, weights=(use & (c.margin > 0)).astype(float), minlength=n)
    return hits, np.bincount(c.item, weights=use.astype(float), minlength=n)


def subset_data(per_seed_rows: Sequence[Sequence[Mapping[str, Any]]]) -> SubsetData | None:
    """Align one subset's rows of several seeds on the item ids all of them scored (None if none)."""
    by_seed = [{str(r["id"]): r for r in rows} for rows in per_seed_rows]
    if not by_seed:
        return None
    ids = [i for i in by_seed[0] if all(i in s for s in by_seed[1:])]
    if not ids:
        return None
    raw = np.array([[float(s[i]["correct"]) for s in by_seed] for i in ids], dtype=float)
    hits, cnt = zip(*(matched_counts([s[i] for i in ids]) for s in by_seed))
    return SubsetData(ids, raw, np.stack(hits, axis=1), np.stack(cnt, axis=1), relative_diffs([by_seed[0][i] for i in ids]))


def relative_diffs(rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """Per item, the relative length difference of its one chosen × rejected cell; None when any row has
    no lengths or more than one cell. Lengths depend on the items and the backbone's tokenizer only, so
    one seed's rows give them for all."""
    if not rows or any(_lengths(r)[0] is None for r in rows):
        return None
    return single_cell_diff(cells([r["chosen_scores"] for r in rows], [r["rejected_scores"] for r in rows],
                                  [_lengths(r)[0] for r in rows], [_lengths(r)[1] for r in rows]))


def _adjusted(d: SubsetData, item_w: np.ndarray, seed_w: np.ndarray) -> np.ndarray:
    """Length-adjusted accuracy (:func:`logistic_at_zero`) of one RM's stratum per row of weights:
    every (item, seed) observation weighted by its item's and its seed's multiplicity."""
    if d.rel_diff is None:
        return np.full(item_w.shape[0], np.nan)
    n, s = d.raw.shape
    w = (item_w[:, :, None] * seed_w[:, None, :]).reshape(item_w.shape[0], n * s)
    return logistic_at_zero(d.raw.reshape(-1), np.repeat(d.rel_diff, s), w)


# ----------------------------------------------------------------------------- the bootstrap


def _stat(num: np.ndarray, den: np.ndarray, seed_w: np.ndarray) -> np.ndarray:
    """Per resample (row): the seed-weighted sum of the per-seed ratios num/den. A drawn seed whose
    ratio is undefined (den 0: no length-matched cell drawn) makes that resample NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.sum(np.where(seed_w > 0, ratio, 0.0) * seed_w, axis=1)


@dataclass
class Replicates:
    """Point estimates (one per RM) and bootstrap replicates (resamples × RMs), raw and length-matched."""

    raw: np.ndarray
    raw_boot: np.ndarray
    matched: np.ndarray
    matched_boot: np.ndarray
    adjusted: np.ndarray
    adjusted_boot: np.ndarray


def two_way(strata: Sequence[Sequence[SubsetData]], *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Replicates:
    """The unweighted mean over strata (subsets) of each RM's statistic, raw and length-matched, on
    the full data and on ``n_resamples`` two-way resamples. Every stratum lists the RMs in the same
    order, aligned on the same items; one resample draws each RM's seeds once (for all strata) and
    each stratum's items once (for all RMs), so RMs are paired on items and raw and length-matched
    numbers share their draws.
    """
    n_rms = len(strata[0])
    rng = np.random.default_rng(seed)
    n_seeds = [strata[0][k].raw.shape[1] for k in range(n_rms)]
    seed_w = [draw_counts(rng, s, n_resamples) / s for s in n_seeds]
    full = [np.full((1, s), 1.0 / s) for s in n_seeds]
    out = Replicates(*(np.zeros(shape) for shape in [n_rms, (n_resamples, n_rms)] * 3))
    for stratum in strata:
        w = draw_counts(rng, len(stratum[0].ids), n_resamples)
        for k, d in enumerate(stratum):
            ones = np.ones_like(d.raw)
            out.raw[k] += _stat(d.raw.sum(axis=0, keepdims=True), ones.sum(axis=0, keepdims=True), full[k])[0]
            out.raw_boot[:, k] += _stat(w @ d.raw, w @ ones, seed_w[k])
            out.matched[k] += _stat(d.hits.sum(axis=0, keepdims=True), d.cells.sum(axis=0, keepdims=True), full[k])[0]
            out.matched_boot[:, k] += _stat(w @ d.hits, w @ d.cells, seed_w[k])
            out.adjusted[k] += _adjusted(d, np.ones((1, len(d.ids))), full[k])[0]
            out.adjusted_boot[:, k] += _adjusted(d, w, seed_w[k])
    for arr in (out.raw, out.raw_boot, out.matched, out.matched_boot, out.adjusted, out.adjusted_boot):
        arr /= len(strata)
    return out


def _interval(values: np.ndarray) -> dict[str, float] | None:
    lo, hi = _percentile_ci(values)
    return None if math.isnan(lo) else {"low": lo, "high": hi}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


# ----------------------------------------------------------------------------- summary entries


def _tasks(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """(bench, subset, group, in_group_mean) of every non-Ties subset any run evaluated, in order."""
    out: dict[tuple[str, str], tuple[str, str, str, bool]] = {}
    for r in runs:
        for bench, ev in (r.get("eval") or {}).items():
            for sub, s in (ev.get("subsets") or {}).items():
                if s.get("metric") == METRIC_TIES or (bench, sub) in out:
                    continue
                out[(bench, sub)] = (bench, sub, str(s.get("group")), s.get("in_group_mean", True) is not False)
    return list(out.values())


def _units(tasks: Sequence[tuple[str, str, str, bool]]) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(task name, bench, group, [(bench, subset), ...]): every subset, then every benchmark's group means."""
    units = [(f"{b}/{s}", b, g, [(b, s)]) for b, s, g, _ in tasks]
    for bench in dict.fromkeys(b for b, *_ in tasks):
        for g in GROUPS:
            members = [(b, s) for b, s, gg, counted in tasks if b == bench and gg == g and counted]
            if members:
                units.append((f"{bench}/{g} (group mean)", bench, g, members))
    return units


def pooled_entries(runs: Sequence[Mapping[str, Any]], items: Mapping[str, Sequence[Mapping[str, Any]]], *,
                   n_resamples: int = N_RESAMPLES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """summary.json's ``pooled`` and ``contrasts`` (docs/STUDY_FORMAT.md) from the runs and their items.

    ``items`` maps a run's ``items_file`` to its rows. Per backbone × objective × task/group: the mean
    and its two-way interval, raw and length-matched; per backbone × task/group × :data:`CONTRASTS`:
    the paired difference a − b with its interval, raw and length-matched.
    """
    pooled: list[dict[str, Any]] = []
    contrasts: list[dict[str, Any]] = []
    for bb in dict.fromkeys(str(r["backbone"]) for r in runs):
        bb_runs = [r for r in runs if str(r["backbone"]) == bb and r.get("items_file") in items]
        by_obj: dict[str, list[Mapping[str, Any]]] = {}
        for r in bb_runs:
            by_obj.setdefault(str(r["objective"]), []).append(r)
        rows: dict[tuple[str, str, str], list[list[Mapping[str, Any]]]] = {}
        for obj, rs in by_obj.items():
            for r in rs:
                per: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
                for row in items[r["items_file"]]:
                    per.setdefault((str(row["benchmark"]), str(row["subset"])), []).append(row)
                for (b, s), lst in per.items():
                    rows.setdefault((obj, b, s), []).append(lst)
        data: dict[tuple[str, str, str], SubsetData] = {}
        for (obj, b, s), per_seed in rows.items():
            if len(per_seed) == len(by_obj[obj]):  # every seed of this RM scored the subset
                d = subset_data(per_seed)
                if d is not None:
                    data[(obj, b, s)] = d
        for name, bench, group, members in _units(_tasks(bb_runs)):
            kind = "group" if name.endswith("(group mean)") else "subset"
            for obj, rs in by_obj.items():
                if not all((obj, b, s) in data for b, s in members):
                    continue
                strata = [[data[(obj, b, s)]] for b, s in members]
                pooled.append({"backbone": bb, "objective": obj, "task": name, "bench": bench, "group": group,
                               "kind": kind, "seeds": [r["seed"] for r in rs],
                               **_summary(strata, members, n_resamples)})
            for a, b_ in CONTRASTS:
                if not all((o, b, s) in data for o in (a, b_) for b, s in members):
                    continue
                strata = []
                for b, s in members:
                    da, db = data[(a, b, s)], data[(b_, b, s)]
                    in_b = set(db.ids)
                    common = [i for i in da.ids if i in in_b]
                    if not common:
                        break
                    strata.append([da.take(common), db.take(common)])
                else:
                    contrasts.append({"backbone": bb, "task": name, "bench": bench, "group": group, "kind": kind,
                                      "a": a, "b": b_, "name": f"{a}-vs-{b_}",
                                      "seeds": {"a": [r["seed"] for r in by_obj[a]], "b": [r["seed"] for r in by_obj[b_]]},
                                      **_summary(strata, members, n_resamples, contrast=True)})
    return pooled, contrasts


def _summary(strata: list[list[SubsetData]], members: list[tuple[str, str]], n_resamples: int,
             contrast: bool = False) -> dict[str, Any]:
    """Raw and length-matched estimate + interval of one task/group: of one RM's mean (one RM per
    stratum) or, with ``contrast``, of the difference between the two RMs of each stratum."""
    key = "diff" if contrast else "mean"

    def reduce(point: np.ndarray, boot: np.ndarray) -> tuple[float, np.ndarray]:
        return (point[0] - point[1], boot[:, 0] - boot[:, 1]) if contrast else (point[0], boot[:, 0])

    n_items = {f"{b}/{s}": len(st[0].ids) for (b, s), st in zip(members, strata)}
    rep = two_way(strata, n_resamples=n_resamples)
    est, reps = reduce(rep.raw, rep.raw_boot)
    out: dict[str, Any] = {"n_items": sum(n_items.values()), "subsets": n_items, key: _num(est),
                           "ci95": _interval(reps), "method": METHOD}
    if contrast:
        out["a_mean"], out["b_mean"] = _num(rep.raw[0]), _num(rep.raw[1])
    # matched cells depend only on the items' lengths: the same for every seed and RM of a backbone
    matched_items = [int((st[0].cells[:, 0] > 0).sum()) for st in strata]
    out["length_matched"] = None
    if all(m > 0 for m in matched_items):
        lest, lreps = reduce(rep.matched, rep.matched_boot)
        out["length_matched"] = {key: _num(lest), "ci95": _interval(lreps),
                                 "n_cells": int(sum(float(st[0].cells[:, 0].sum()) for st in strata)),
                                 "n_items": sum(matched_items), "min_subset_items": min(matched_items)}
    aest, areps = reduce(rep.adjusted, rep.adjusted_boot)
    out["length_adjusted"] = None if math.isnan(aest) else {key: _num(aest), "ci95": _interval(areps[~np.isnan(areps)]),
                                                           "model": ADJUST_MODEL}
    return out
