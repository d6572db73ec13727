"""Score analysis: where a single-objective RM and the mixed RM are both right, how sure is each?

The study (brief, stage 3) reports that on items both RMs get right the mixed RM's reward margins
are weaker and its scores sit nearer zero — it is right with less conviction. This module puts
numbers on that: for the items both RMs get right, each RM's margin distribution (n, mean, median,
std), the share of items where the mixed RM's margin is smaller than the single RM's on the same
item, each RM's mean |score| (distance from zero), and histogram counts on bins shared by both RMs,
ready for the report's figure.

Margin of an item: chosen score − rejected score. For items with several responses the default
``"min-max"`` margin is min(chosen) − max(rejected): the gap by which the item clears the strict rule
(positive iff the item is strictly right); ``"mean"`` uses mean(chosen) − mean(rejected). For a
one-against-one pair both are the plain difference.

Standard deviations are sample std (ddof=1), NaN with fewer than two items, as in
:func:`rmtension.evaluation.aggregate.mean_std`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

from rmtension.analysis.retention import DEFAULT_THRESHOLD, correct_mask
from rmtension.errors import RmtensionError
from rmtension.evaluation.metrics import Scores, as_scores
from rmtension.files import jsonable

ItemScores = Mapping[str, tuple[Scores, Scores]]  # item id → (chosen scores, rejected scores)
MARGIN_RULES = ("min-max", "mean")


def item_margin(chosen_scores: Scores, rejected_scores: Scores, *, rule: str = "min-max",
                item: str | None = None) -> float:
    """One item's reward margin (see the module docstring for the rules). NaN scores are an error."""
    c = as_scores(chosen_scores, "chosen", item)
    r = as_scores(rejected_scores, "rejected", item)
    if rule == "min-max":
        return float(c.min() - r.max())
    if rule == "mean":
        return float(c.mean() - r.mean())
    raise RmtensionError(f"margin rule must be one of {', '.join(MARGIN_RULES)}, got {rule!r}")


@dataclass
class DistSummary:
    """n, mean, median, sample std and mean |x| of a set of numbers (NaN where undefined)."""

    n: int
    mean: float
    median: float
    std: float
    mean_abs: float

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dict(self.__dict__))


def summarize(values: Sequence[float] | np.ndarray) -> DistSummary:
    """:class:`DistSummary` of ``values``."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        nan = float("nan")
        return DistSummary(0, nan, nan, nan, nan)
    return DistSummary(int(x.size), float(x.mean()), float(np.median(x)),
                       float(x.std(ddof=1)) if x.size > 1 else float("nan"), float(np.abs(x).mean()))


@dataclass
class Histogram:
    """Counts of two RMs' values on the same bin edges (``len(edges) == len(counts) + 1``)."""

    edges: list[float]
    single: list[int]
    mixed: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges, "single": self.single, "mixed": self.mixed}


def shared_histogram(single: Sequence[float] | np.ndarray, mixed: Sequence[float] | np.ndarray,
                     bins: int | Sequence[float] = 20) -> Histogram:
    """Histogram both value sets on one set of edges (from their pooled range when ``bins`` is a count)."""
    s = np.asarray(single, dtype=float).ravel()
    m = np.asarray(mixed, dtype=float).ravel()
    edges = np.histogram_bin_edges(np.concatenate([s, m]), bins=bins) if np.ndim(bins) == 0 \
        else np.asarray(bins, dtype=float)
    return Histogram(edges.tolist(), np.histogram(s, edges)[0].astype(int).tolist(),
                     np.histogram(m, edges)[0].astype(int).tolist())


@dataclass
class CalibrationResult:
    """The single-vs-mixed comparison on the items both RMs get right."""

    n: int
    ids: list[str]
    margin_rule: str
    single_margin: DistSummary
    mixed_margin: DistSummary
    single_score: DistSummary  # all chosen and rejected scores of those items
    mixed_score: DistSummary
    share_mixed_smaller: float  # share of items where mixed margin < single margin (strictly)
    mean_margin_difference: float  # mean over items of (mixed margin − single margin)
    margin_hist: Histogram
    score_hist: Histogram

    def to_dict(self, include_ids: bool = False) -> dict[str, Any]:
        out = {
            "n": self.n,
            "margin_rule": self.margin_rule,
            "single_margin": self.single_margin.to_dict(),
            "mixed_margin": self.mixed_margin.to_dict(),
            "single_score": self.single_score.to_dict(),
            "mixed_score": self.mixed_score.to_dict(),
            "share_mixed_smaller": self.share_mixed_smaller,
            "mean_margin_difference": self.mean_margin_difference,
            "margin_hist": self.margin_hist.to_dict(),
            "score_hist": self.score_hist.to_dict(),
        }
        if include_ids:
            out["ids"] = list(self.ids)
        return jsonable(out)


def compare_margins(single_margins: Sequence[float] | np.ndarray, mixed_margins: Sequence[float] | np.ndarray, *,
                    single_scores: Sequence[float] | np.ndarray | None = None,
                    mixed_scores: Sequence[float] | np.ndarray | None = None,
                    bins: int | Sequence[float] = 20, ids: Sequence[str] | None = None,
                    margin_rule: str = "min-max") -> CalibrationResult:
    """The comparison from margins already aligned item by item (both RMs right on every item).

    ``single_scores``/``mixed_scores`` are the raw scores behind the margins (any length), for the
    distance-from-zero numbers and the score histogram; without them those parts are empty.
    """
    s = np.asarray(single_margins, dtype=float).ravel()
    m = np.asarray(mixed_margins, dtype=float).ravel()
    if s.size != m.size:
        raise RmtensionError(f"compare_margins: {s.size} single margins but {m.size} mixed margins")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(m))):
        raise RmtensionError("compare_margins: margins contain NaN/inf")
    ss = np.zeros(0) if single_scores is None else np.asarray(single_scores, dtype=float).ravel()
    ms = np.zeros(0) if mixed_scores is None else np.asarray(mixed_scores, dtype=float).ravel()
    n = int(s.size)
    return CalibrationResult(
        n=n,
        ids=list(ids) if ids is not None else [str(k) for k in range(n)],
        margin_rule=margin_rule,
        single_margin=summarize(s),
        mixed_margin=summarize(m),
        single_score=summarize(ss),
        mixed_score=summarize(ms),
        share_mixed_smaller=float(np.mean(m < s)) if n else float("nan"),
        mean_margin_difference=float(np.mean(m - s)) if n else float("nan"),
        margin_hist=shared_histogram(s, m, bins),
        score_hist=shared_histogram(ss, ms, bins),
    )


def compare_calibration(single: ItemScores, mixed: ItemScores,
                        single_correct: Mapping[str, Union[bool, float]] | None = None,
                        mixed_correct: Mapping[str, Union[bool, float]] | None = None, *,
                        threshold: float = DEFAULT_THRESHOLD, margin: str = "min-max",
                        bins: int | Sequence[float] = 20) -> CalibrationResult:
    """Compare a single-objective RM with the mixed RM on the items both get right.

    ``single``/``mixed`` map item id → (chosen scores, rejected scores) of each RM. An item is
    "right" for an RM when its correctness (``*_correct``, id → bool or [0, 1], as the benchmark's
    metric gave it) reaches ``threshold`` (same rule as retention); without a correctness mapping,
    an item is right when its min-max margin is positive (the strict rule). Items are those scored
    by both RMs; an id with correctness but no scores is an error. Ids are processed sorted.
    """
    common = sorted(set(single) & set(mixed))
    for name, corr, scores in (("single", single_correct, single), ("mixed", mixed_correct, mixed)):
        if corr is not None:
            missing = [i for i in corr if i not in scores]
            if missing:
                raise RmtensionError(f"{name} RM: {len(missing)} items have correctness but no scores "
                                     f"(e.g. {missing[0]!r})")

    def right(corr: Mapping[str, Union[bool, float]] | None, scores: ItemScores) -> np.ndarray:
        if corr is None:
            return np.array([item_margin(*scores[i], rule="min-max", item=i) > 0 for i in common], dtype=bool)
        return correct_mask([float(corr.get(i, 0.0)) for i in common], threshold=threshold)

    both = right(single_correct, single) & right(mixed_correct, mixed) if common else np.zeros(0, dtype=bool)
    ids = [i for i, ok in zip(common, both) if ok]
    s_m = [item_margin(*single[i], rule=margin, item=i) for i in ids]
    m_m = [item_margin(*mixed[i], rule=margin, item=i) for i in ids]
    s_scores = [float(v) for i in ids for part in single[i] for v in np.atleast_1d(part)]
    m_scores = [float(v) for i in ids for part in mixed[i] for v in np.atleast_1d(part)]
    return compare_margins(s_m, m_m, single_scores=s_scores, mixed_scores=m_scores, bins=bins, ids=ids,
                           margin_rule=margin)
