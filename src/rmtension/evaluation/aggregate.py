"""From subset scores to the numbers a report prints: official section scores, group means,
mean ± std over seeds, and confidence intervals.

Why separate from :mod:`rmtension.evaluation.metrics`: those functions decide whether an item is
right; these decide how subset numbers are combined, and each combination is a convention a reader
must be able to look up (weighted or not, what happens to missing subsets, which std).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.files import jsonable

# ----------------------------------------------------------------------------- RewardBench sections

# Verbatim from allenai/reward-bench ``rewardbench/constants.py`` (EXAMPLE_COUNTS) at HEAD
# 05a9005efb607249822c193590c8ecab87c77052; the XSTest weights are those of commit 6552e93 ("Mirror
# change from leaderboard", 2024-09-10), which swapped them to xstest-should-refuse 154 /
# should-respond 250 (before it: 250 / 154). One weight differs from the data on purpose:
# math-prm counts 984 although it has 447 items ("upweighting to be equal to code": 6 × 164), so that
# in Reasoning the math subset weighs as much as the six hep-* subsets together.
REWARDBENCH_EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,  # actual length 447, upweighted to equal the six hep-* subsets together
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154,
    "xstest-should-respond": 250,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}

# Verbatim from ``rewardbench/constants.py`` (SUBSET_MAPPING), same commit.
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}


def _present(score: float | None) -> bool:
    return score is not None and not (isinstance(score, float) and math.isnan(score))


def rewardbench_section_scores(subset_scores: Mapping[str, float], *,
                               example_counts: Mapping[str, int] | None = None,
                               sections: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """RewardBench's section scores (Chat, Chat Hard, Safety, Reasoning) from subset accuracies.

    Each section is the average of its subsets' accuracies weighted by ``example_counts`` (default:
    the official EXAMPLE_COUNTS, with math-prm counted as 984 so that in Reasoning the math subset
    weighs as much as the six code subsets together). Source: allenai/reward-bench
    ``rewardbench/utils.py::calculate_scores_per_section`` (HEAD 05a9005) with
    ``rewardbench/constants.py`` EXAMPLE_COUNTS and SUBSET_MAPPING, as called from ``scripts/run_rm.py``;
    ``analysis/get_benchmark_results.py::get_average_over_rewardbench`` computes the same weighted mean
    (``np.average(..., weights=EXAMPLE_COUNTS)``) for the leaderboard. tests/test_fidelity.py pins
    this function to a re-implementation of the official one.

    Scores stay fractions in [0, 1] (the official helper returns fractions; some scripts multiply by
    100). Differences from the official helper, both about missing data: a section none of whose
    subsets is present is *absent* from the result (the official code writes 0, which reads as a
    score); a partially present section is the weighted mean of the subsets present (as the official
    code does). A subset whose score is NaN (an empty subset) counts as absent. Subsets not in any
    section are ignored; a present subset without a weight is an error.
    """
    counts = REWARDBENCH_EXAMPLE_COUNTS if example_counts is None else example_counts
    mapping = REWARDBENCH_SECTIONS if sections is None else sections
    out: dict[str, float] = {}
    for section, subsets in mapping.items():
        total, weight = 0.0, 0.0
        for subset in subsets:
            score = subset_scores.get(subset)
            if score is None or not _present(score):
                continue
            if subset not in counts:
                raise RmtensionError(f"RewardBench subset {subset!r} has no example count to weight it by")
            total += float(score) * counts[subset]
            weight += counts[subset]
        if weight > 0:
            out[section] = total / weight
    return out


def rewardbench_overall(section_scores: Mapping[str, float], prior_sets: float | None = None) -> float:
    """RewardBench's overall score: the mean of the section scores present (NaN if none).

    Source: allenai/reward-bench ``analysis/get_benchmark_results.py::get_average_over_rewardbench``
    (HEAD 05a9005), which builds the leaderboard's "Score": a masked weighted average of the four
    sections (weight 2 each) and "Prior Sets (0.5 weight)" (weight 1, the mean of anthropic_helpful,
    anthropic_hhh, shp and summarize), a missing (NaN) column being masked out. Without prior sets
    (``prior_sets=None``, the default: this toolkit does not evaluate them) that is the plain mean
    of the sections present; with ``prior_sets`` given the official 2:2:2:2:1 weighting applies.
    """
    values = [(float(v), 2.0) for v in section_scores.values() if _present(v)]
    if prior_sets is not None and _present(prior_sets):
        values.append((float(prior_sets), 1.0))
    if not values:
        return float("nan")
    return float(sum(v * w for v, w in values) / sum(w for _, w in values))


REWARDBENCH2_SUBSETS: tuple[str, ...] = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")


def rewardbench2_overall(subset_scores: Mapping[str, float]) -> float:
    """RewardBench 2's overall score: the unweighted mean of its six subset scores present.

    Source: the RewardBench 2 paper (Malik et al., arXiv 2506.01937) and leaderboard, which average
    Factuality, Precise IF, Math, Safety, Focus and Ties (Ties being its composite score). Subsets
    outside those six are ignored; NaN if none is present.
    """
    values = [float(subset_scores[s]) for s in REWARDBENCH2_SUBSETS if _present(subset_scores.get(s))]
    return float(np.mean(values)) if values else float("nan")


# ----------------------------------------------------------------------------- helpful / harmless groups


def group_means(subset_scores: Mapping[str, float], groups: Mapping[str, str] | None = None) -> dict[str, float]:
    """The mean task score of each group (helpful, harmless), as the paper reports them.

    Unweighted: every subset (task) counts once whatever its size, so a large subset does not drown
    the others — the paper's group columns average task scores. ``groups`` maps subset → group; by
    default :func:`rmtension.bench.groups.group_of` decides (overrides, table, keyword rules).
    Subsets with a NaN score are left out; a group with no subset is absent.
    """
    if groups is None:
        from rmtension.bench.groups import group_of

        groups = {s: group_of(s) for s in subset_scores}
    members: dict[str, list[float]] = {}
    for subset, score in subset_scores.items():
        if not _present(score):
            continue
        if subset not in groups:
            raise RmtensionError(f"subset {subset!r} has no group in the mapping given")
        members.setdefault(groups[subset], []).append(float(score))
    return {g: float(np.mean(v)) for g, v in members.items()}


# ----------------------------------------------------------------------------- across seeds


@dataclass
class MeanStd:
    """Mean and sample standard deviation (ddof=1) of one number over seeds: the package's one mean ± std
    type (``compare``, ``summary.json`` and the report's tables all use it, so they cannot disagree).

    The NaN rule: a missing number (``None`` or NaN: a seed where a subset was empty or a step did not
    run) is skipped, and ``n`` counts only the present values. The hole stays visible as a smaller
    ``n`` (the report marks cells whose ``n`` is below their table's largest), while the seeds that
    have the number still give a mean. ``values`` keeps every seed's value, holes included, in order.
    With a single present value the sample std is undefined and is NaN (not 0, which would claim a
    seed-free result); :meth:`format` then prints ``0.613 (n=1)``. With none, both are NaN.
    """

    mean: float
    std: float
    n: int
    values: list[float] = field(default_factory=list, compare=False)  # detail: equal stats compare equal

    @property
    def missing(self) -> bool:
        return self.n == 0 or not math.isfinite(self.mean)

    def format(self, digits: int = 3, scale: float = 1.0) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        m = f"{self.mean * scale:.{digits}f}"
        if self.n == 1 or math.isnan(self.std):
            return f"{m} (n={self.n})"
        return f"{m} ± {self.std * scale:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)})


def _as_number(value: Any) -> float:
    """A seed's value as a float; None, booleans and anything that is not a number become NaN (a hole)."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def mean_std(values: Iterable[Any], *, ddof: int = 1) -> MeanStd:
    """Mean ± sample std (``ddof=1`` by default) of a number over seeds, skipping holes; see :class:`MeanStd`."""
    every = [_as_number(v) for v in values]
    arr = np.asarray([x for x in every if math.isfinite(x)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return MeanStd(float("nan"), float("nan"), 0, every)
    mean = float(arr.mean())
    std = float(arr.std(ddof=ddof)) if n > ddof else float("nan")
    return MeanStd(mean, std, n, every)


def mean_std_by_key(runs: Sequence[Mapping[str, float]], *, ddof: int = 1) -> dict[str, MeanStd]:
    """Per key (subset, section or group) mean ± std over runs (one mapping per seed).

    A key missing from some runs is aggregated over the runs that have it (its ``n`` says how many).
    """
    keys: list[str] = []
    for run in runs:
        keys.extend(k for k in run if k not in keys)
    return {k: mean_std([run[k] for run in runs if k in run], ddof=ddof) for k in keys}


# ----------------------------------------------------------------------------- intervals


@dataclass
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"estimate": self.estimate, "low": self.low, "high": self.high,
                         "confidence": self.confidence, "method": self.method})


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise RmtensionError(f"confidence must be between 0 and 1, got {confidence}")


def bootstrap_ci(correct: Sequence[float] | np.ndarray, *, n_resamples: int = 10_000, confidence: float = 0.95,
                 seed: int = 0) -> Interval:
    """Percentile bootstrap interval for an accuracy (the mean of per-item correctness).

    Items are resampled with replacement ``n_resamples`` times from ``numpy.random.default_rng(seed)``
    (so the same seed, data and ``n_resamples`` give the same interval); the bounds are the
    ``(1 − confidence)/2`` and ``(1 + confidence)/2`` percentiles of the resampled means (numpy's
    default linear interpolation). Fractional correctness (1/k, ninths) is resampled as is. Empty
    input gives NaN bounds; a NaN in ``correct`` is an error.
    """
    return bootstrap_macro_ci([correct], n_resamples=n_resamples, confidence=confidence, seed=seed)


def bootstrap_macro_ci(strata: Sequence[Sequence[float] | np.ndarray], *, n_resamples: int = 10_000,
                       confidence: float = 0.95, seed: int = 0,
                       weights: Sequence[float] | None = None) -> Interval:
    """Percentile bootstrap interval for a mean of subset accuracies (a helpful/harmless group mean).

    Why stratified: the paper's group score is the unweighted mean of its subsets' accuracies, so a
    small subset counts as much as a large one. Pooling the items and resampling them would estimate a
    different (item-weighted) number; instead every subset is resampled on its own, with its own size,
    and each resample's subset means are averaged. With one subset this is ``bootstrap_ci``. Empty
    subsets are left out (as ``group_means`` leaves out NaN scores); none left gives NaN bounds.
    ``weights`` (one per stratum, default all equal) makes the average a weighted one: a task made of
    two subsets (the paper's Math) gives each of them half a task's weight.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise RmtensionError(f"n_resamples must be at least 1, got {n_resamples}")
    if weights is not None and len(weights) != len(strata):
        raise RmtensionError(f"bootstrap_macro_ci: {len(strata)} strata but {len(weights)} weights")
    ws_all = [1.0] * len(strata) if weights is None else [float(w) for w in weights]
    pairs = [(np.asarray(c, dtype=float).ravel(), w) for c, w in zip(strata, ws_all)]
    pairs = [(x, w) for x, w in pairs if x.size]
    if not pairs:
        nan = float("nan")
        return Interval(nan, nan, nan, confidence, "percentile-bootstrap")
    xs = [x for x, _ in pairs]
    ws = np.array([w for _, w in pairs], dtype=float)
    if not all(np.all(np.isfinite(x)) for x in xs):
        raise RmtensionError("bootstrap_ci: per-item correctness contains NaN/inf")
    if not np.all(ws > 0):
        raise RmtensionError("bootstrap_macro_ci: weights must be positive")
    rng = np.random.default_rng(seed)
    means = np.zeros(n_resamples, dtype=float)
    chunk = max(1, min(n_resamples, 4_000_000 // max(x.size for x in xs)))  # bound memory at ~32 MB of indices
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        for x, w in zip(xs, ws):
            idx = rng.integers(0, x.size, size=(stop - start, x.size))
            sample = x[idx].mean(axis=1)
            means[start:stop] += sample if weights is None else w * sample
    means /= len(xs) if weights is None else ws.sum()
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    if weights is None:
        estimate = float(np.mean([x.mean() for x in xs]))
    else:
        estimate = float(np.dot(ws, [x.mean() for x in xs]) / ws.sum())
    return Interval(estimate, float(low), float(high), confidence, "percentile-bootstrap")


def wilson_interval(successes: float, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion ``successes / n`` (NaN bounds when n == 0).

    Preferred to the normal approximation near 0 and 1 and for small n, where p ± z·sqrt(p(1−p)/n)
    leaves [0, 1] or collapses to a point. ``successes`` may be fractional (a sum of best-of-N or
    RM-Bench correctness); the formula is then an approximation.
    """
    _check_confidence(confidence)
    if n < 0 or successes < 0 or successes > n:
        raise RmtensionError(f"wilson_interval needs 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, confidence, "wilson")
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends, no rounding residue
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(float(p), low, high, confidence, "wilson")
