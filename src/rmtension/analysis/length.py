"""Length controls: how much of an RM's accuracy a response-length rule alone would give.

Why: preference data is confounded with length. On HH-RLHF test pairs the chosen response is
more often the longer one in helpful-base and the shorter one in harmless-base (refusals are
short), so an RM can look "helpful" or "harmless" by learning length. Every accuracy therefore
needs, beside it, what a length-only rule scores on the same items, how strongly the RM's margins
track length, and its accuracy on pairs whose two responses are about equally long.

Pure numpy functions over per-item scores and lengths (no model, no torch). Conventions:

- An item has lists of chosen and rejected scores and the matching lists of lengths (tokens, as
  ``items.jsonl`` stores them in ``chosen_tokens``/``rejected_tokens``; any unit works).
- A *cell* is one (chosen response, rejected response) pair of an item: a pairwise item has one,
  a best-of-4 item 3, an RM-Bench item 9. Cell-level quantities (margin–length correlation,
  length-matched accuracy, bins) use every cell; bootstrap intervals resample *items*, carrying
  all their cells, because cells of one item share a prompt and are not independent.

Definitions (documented in docs/STUDY_FORMAT.md):

- **length baseline** (:func:`length_baseline`): the subset's own metric applied to lengths as
  scores — score = length ("longer") or −length ("shorter") — i.e. exactly an RM that scores by
  length, with exact ties broken uniformly at random and counted at their expected value: ½ for a
  tied pairwise comparison and for a tied RM-Bench cell, 1/k for the chosen response tied with
  k − 1 others at the top of a best-of-N item (RewardBench 2's own tie rule gives the same), and for
  the strict rule (min chosen > max rejected) the probability 1/C(a+b, a) that the a chosen and b
  rejected responses tied at the boundary fall in the right order. A Ties subset (RewardBench 2,
  a composite score) gets the strict rule, comparable with its items' ``correct`` flags.
- **margin–length Spearman** (:func:`margin_length_spearman`): rank correlation, over all cells,
  of the margin score(chosen) − score(rejected) with the length difference len(chosen) −
  len(rejected); ties get average ranks. Positive: the RM prefers the longer response.
- **length-matched accuracy** (:func:`length_matched`): over the cells with
  |len(chosen) − len(rejected)| ≤ tolerance · max(len(chosen), len(rejected)) (tolerance 0.1:
  within 10% of the longer one; two empty responses match), the share where the chosen response
  scores strictly higher — the benchmarks' pairwise rule, a tie being a miss. Reported with the
  number of such cells and, for comparison on the same scale, the same accuracy over all cells.
- **length-adjusted accuracy** (:func:`logistic_at_zero`, pairwise items only): the accuracy at zero length
  difference of a logistic fit of per-item correctness on the signed relative length difference; it uses
  every pair where length-matched accuracy uses the few equal-length ones, at the price of a model (a
  smooth, monotone dependence on length). Intervals come from the callers' bootstraps (analysis.pooled).
- **length bins** (:func:`length_bins`): the same cell accuracy within quantile bins (default
  quintiles) of the signed relative length difference (len(chosen) − len(rejected)) /
  max(len(chosen), len(rejected)), with n per bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rmtension.errors import RmtensionError

# Metric names as in rmtension.bench.types (imported by value to keep this module free of the
# bench package; tests check they agree).
METRIC_PAIRWISE = "pairwise"
METRIC_BEST_OF_N = "best-of-n"
METRIC_RM_BENCH = "rm-bench"
METRIC_TIES = "ties"
METRIC_STRICT = "strict-best-of-n"

DEFAULT_TOLERANCE = 0.1
DEFAULT_BINS = 5
DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95

Numbers = Sequence[float] | np.ndarray


def _arr(values: Any, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or a.size == 0:
        raise RmtensionError(f"{what}: expected a non-empty flat list of numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise RmtensionError(f"{what}: contains NaN/inf")
    return a


# ----------------------------------------------------------------------------- length baseline


def _strict_expected(chosen: np.ndarray, rejected: np.ndarray) -> float:
    """P(min chosen > max rejected) with exact ties broken uniformly at random.

    Only responses tied at the boundary value matter: with a chosen and b rejected ones there, the
    a chosen must all come first among those a + b, probability a!·b!/(a+b)! = 1/C(a+b, a).
    """
    lo, hi = chosen.min(), rejected.max()
    if lo > hi:
        return 1.0
    if lo < hi:
        return 0.0
    a, b = int(np.sum(chosen == lo)), int(np.sum(rejected == hi))
    return 1.0 / math.comb(a + b, a)


def baseline_correct(metric: str, chosen_lengths: Numbers, rejected_lengths: Numbers) -> float:
    """One item's expected correctness under ``metric`` for an RM whose scores are the given numbers
    (lengths, or negated lengths), exact ties broken uniformly at random (see the module docstring)."""
    c = _arr(chosen_lengths, "chosen lengths")
    r = _arr(rejected_lengths, "rejected lengths")
    if metric == METRIC_RM_BENCH:
        if c.size != r.size:
            raise RmtensionError(f"metric {metric!r} needs as many chosen as rejected responses, got {c.size} and {r.size}")
        cells = (c[:, None] > r[None, :]) + 0.5 * (c[:, None] == r[None, :])
        return float(cells.mean())
    if metric == METRIC_BEST_OF_N:
        if c.size != 1:
            raise RmtensionError(f"metric {metric!r} takes one chosen response, got {c.size}")
        everything = np.concatenate([c, r])
        top = everything.max()
        return 0.0 if c[0] != top else 1.0 / float(np.sum(everything == top))
    if metric in (METRIC_PAIRWISE, METRIC_STRICT, METRIC_TIES):
        # pairwise with reduce="all" is "chosen above every rejected": the strict rule with one chosen
        return _strict_expected(c, r)
    raise RmtensionError(f"no length baseline for metric {metric!r}")


def length_baseline(metric: str, chosen_lengths: Sequence[Numbers], rejected_lengths: Sequence[Numbers]
                    ) -> dict[str, float]:
    """Accuracy of the longer-wins (score = length) and shorter-wins (score = −length) rules on a
    subset, under the subset's metric; NaN for an empty subset."""
    if len(chosen_lengths) != len(rejected_lengths):
        raise RmtensionError(f"{len(chosen_lengths)} chosen but {len(rejected_lengths)} rejected length lists")
    if not chosen_lengths:
        return {"longer": float("nan"), "shorter": float("nan")}
    longer = [baseline_correct(metric, c, r) for c, r in zip(chosen_lengths, rejected_lengths)]
    shorter = [baseline_correct(metric, -_arr(c, "chosen lengths"), -_arr(r, "rejected lengths"))
               for c, r in zip(chosen_lengths, rejected_lengths)]
    return {"longer": float(np.mean(longer)), "shorter": float(np.mean(shorter))}


# ----------------------------------------------------------------------------- cells


@dataclass
class Cells:
    """Every (chosen, rejected) cell of a subset, flat, with the item each came from.

    ``starts``/``counts``: where each item's cells sit in the flat arrays (for resampling items).
    """

    margin: np.ndarray
    length_diff: np.ndarray
    longer: np.ndarray  # max(len chosen, len rejected) of the cell
    item: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.counts.size)

    def relative_diff(self) -> np.ndarray:
        """(len chosen − len rejected) / max of the two; 0 when both are 0."""
        out = np.zeros_like(self.length_diff)
        nz = self.longer > 0
        out[nz] = self.length_diff[nz] / self.longer[nz]
        return out

    def resample_index(self, rng: np.random.Generator) -> np.ndarray:
        """Cell indices of one bootstrap resample of the items (all cells of each drawn item)."""
        pick = rng.integers(0, self.n_items, size=self.n_items)
        counts = self.counts[pick]
        total = int(counts.sum())
        # position of each output cell within its drawn item, then shift to the item's start
        first = np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(self.starts[pick], counts) + (np.arange(total) - first)


def cells(chosen_scores: Sequence[Numbers], rejected_scores: Sequence[Numbers],
          chosen_lengths: Sequence[Numbers], rejected_lengths: Sequence[Numbers]) -> Cells:
    """Flatten a subset's items into chosen × rejected cells (margins and length differences)."""
    n = len(chosen_scores)
    if not (len(rejected_scores) == len(chosen_lengths) == len(rejected_lengths) == n):
        raise RmtensionError(f"length controls: {n} chosen score lists but {len(rejected_scores)} rejected, "
                             f"{len(chosen_lengths)} chosen length and {len(rejected_lengths)} rejected length lists")
    margins, diffs, longers, items, counts = [], [], [], [], []
    for k in range(n):
        cs, rs = _arr(chosen_scores[k], "chosen scores"), _arr(rejected_scores[k], "rejected scores")
        cl, rl = _arr(chosen_lengths[k], "chosen lengths"), _arr(rejected_lengths[k], "rejected lengths")
        if cs.size != cl.size or rs.size != rl.size:
            raise RmtensionError(f"item {k}: {cs.size}/{rs.size} chosen/rejected scores but {cl.size}/{rl.size} lengths")
        margins.append((cs[:, None] - rs[None, :]).ravel())
        diffs.append((cl[:, None] - rl[None, :]).ravel())
        longers.append(np.maximum(cl[:, None], rl[None, :]).ravel())
        items.append(np.full(cs.size * rs.size, k))
        counts.append(cs.size * rs.size)
    cnt = np.asarray(counts, dtype=int)

    def cat(parts: list[np.ndarray], dtype: Any = float) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return Cells(cat(margins), cat(diffs), cat(longers), cat(items, int), np.cumsum(cnt) - cnt, cnt)


# ----------------------------------------------------------------------------- correlation


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(x: Numbers, y: Numbers) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN with < 2 values or a constant side."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise RmtensionError(f"spearman: shapes {a.shape} and {b.shape} differ")
    if a.size < 2:
        return float("nan")
    ra, rb = average_ranks(a) - (a.size + 1) / 2.0, average_ranks(b) - (b.size + 1) / 2.0
    denom = math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb)))
    return float(np.dot(ra, rb) / denom) if denom > 0 else float("nan")


def _percentile_ci(values: np.ndarray) -> list[float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return [float("nan"), float("nan")]
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.percentile(v, [100 * alpha, 100 * (1 - alpha)])
    return [float(lo), float(hi)]


class _WeightedRanks:
    """Average ranks of a fixed array under many multiplicity weightings at once.

    A bootstrap resample that draws cell i w_i times ranks it, with average ranks for ties, at
    (total weight of smaller values) + (weight of its equal values + 1) / 2 — computable from the
    cumulative weights along the array sorted once, without re-sorting each resample.
    """

    def __init__(self, x: np.ndarray):
        self.order = np.argsort(x, kind="stable")
        xs = x[self.order]
        new_group = np.concatenate([[True], xs[1:] != xs[:-1]]) if xs.size else np.zeros(0, dtype=bool)
        self.group = np.cumsum(new_group) - 1  # group of each sorted position
        self.ends = np.concatenate([np.flatnonzero(new_group[1:]), [xs.size - 1]]) if xs.size else np.zeros(0, int)

    def ranks(self, w: np.ndarray) -> np.ndarray:
        """Ranks (B × n) for weights ``w`` (B × n, in the original order)."""
        cum = np.cumsum(w[:, self.order], axis=1)[:, self.ends]
        gw = np.diff(cum, axis=1, prepend=0.0)
        avg = cum - (gw - 1.0) / 2.0
        out = np.empty_like(w, dtype=float)
        out[:, self.order] = avg[:, self.group]
        return out


def draw_counts(rng: np.random.Generator, n_items: int, n_resamples: int) -> np.ndarray:
    """(resamples × items) multiplicities: row b counts how often each item was drawn when resample b
    draws ``n_items`` items with replacement (one ``rng.integers`` call for all rows). Shared by the
    bootstrap here and the two-way one of :mod:`rmtension.analysis.pooled`."""
    pick = rng.integers(0, n_items, size=(n_resamples, n_items))
    flat = (np.arange(n_resamples)[:, None] * n_items + pick).ravel()
    return np.bincount(flat, minlength=n_resamples * n_items).reshape(n_resamples, n_items).astype(float)


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    tot = w.sum(axis=1, keepdims=True)
    am = a - (w * a).sum(axis=1, keepdims=True) / tot
    bm = b - (w * b).sum(axis=1, keepdims=True) / tot
    cov = (w * am * bm).sum(axis=1)
    var = (w * am * am).sum(axis=1) * (w * bm * bm).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def margin_length_spearman(c: Cells, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Spearman correlation of margin with length difference over all cells, with a seeded 95%
    percentile-bootstrap interval over items (resamples where it is undefined are dropped).

    Each resample draws ``n_items`` items with replacement (``numpy.random.default_rng(seed)``) and
    takes all their cells; it is computed as the weighted correlation of weighted average ranks
    (weights = how often each cell was drawn), which is the Spearman ρ of the resample itself."""
    value = spearman(c.margin, c.length_diff)
    if math.isnan(value) or n_resamples < 1:
        return {"value": value, "ci95": [float("nan"), float("nan")], "n_pairs": int(c.margin.size)}
    rng = np.random.default_rng(seed)
    rx, ry = _WeightedRanks(c.margin), _WeightedRanks(c.length_diff)
    boot = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, 2_000_000 // max(1, c.margin.size)))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        w = draw_counts(rng, c.n_items, stop - start)[:, c.item]
        boot[start:stop] = _weighted_pearson(rx.ranks(w), ry.ranks(w), w)
    return {"value": value, "ci95": _percentile_ci(boot), "n_pairs": int(c.margin.size)}


# ----------------------------------------------------------------------------- matched pairs and bins


def matched_mask(c: Cells, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """Cells whose two lengths differ by at most ``tolerance`` × the longer one."""
    if not 0.0 <= tolerance < 1.0:
        raise RmtensionError(f"length tolerance must be in [0, 1), got {tolerance}")
    return np.abs(c.length_diff) <= tolerance * c.longer


def _ratio_ci(hit: np.ndarray, use: np.ndarray, c: Cells, n_resamples: int, seed: int) -> list[float]:
    """Bootstrap (items resampled) interval of sum(hit[use]) / sum(use)."""
    if n_resamples < 1 or not use.any():
        return [float("nan"), float("nan")]
    per_hit = np.bincount(c.item, weights=(hit & use).astype(float), minlength=c.n_items)
    per_use = np.bincount(c.item, weights=use.astype(float), minlength=c.n_items)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, c.n_items, size=(n_resamples, c.n_items))
    num, den = per_hit[pick].sum(axis=1), per_use[pick].sum(axis=1)
    ok = den > 0
    return _percentile_ci(num[ok] / den[ok])


def length_matched(c: Cells, tolerance: float = DEFAULT_TOLERANCE, *, n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0) -> dict[str, Any]:
    """Cell accuracy (chosen strictly above rejected) on length-matched cells and on all cells."""
    use = matched_mask(c, tolerance)
    hit = c.margin > 0
    n = int(use.sum())
    return {
        "score": float(hit[use].mean()) if n else float("nan"),
        "n": n,
        "items": int(np.unique(c.item[use]).size),
        "tolerance": float(tolerance),
        "ci95": _ratio_ci(hit, use, c, n_resamples, seed),
        "all_pairs": {"score": float(hit.mean()) if hit.size else float("nan"), "n": int(hit.size)},
    }


def length_bins(c: Cells, bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Cell accuracy within quantile bins of the signed relative length difference.

    Edges are the 0, 1/bins, ..., 1 quantiles of the cells' relative differences; a cell goes to
    the bin whose [low, high) holds it (the last bin includes its high edge). Repeated edges (many
    equal differences) leave empty bins, which are dropped, so there may be fewer than ``bins``.
    """
    if bins < 1:
        raise RmtensionError(f"length bins must be at least 1, got {bins}")
    if c.margin.size == 0:
        return []
    d = c.relative_diff()
    edges = np.quantile(d, np.linspace(0.0, 1.0, bins + 1))
    which = np.clip(np.searchsorted(edges[1:-1], d, side="right"), 0, bins - 1)
    hit = c.margin > 0
    out = []
    for k in range(bins):
        m = which == k
        if m.any():
            out.append({"low": float(edges[k]), "high": float(edges[k + 1]), "n": int(m.sum()),
                        "score": float(hit[m].mean())})
    return out


# ----------------------------------------------------------------------------- length-adjusted accuracy


ADJUST_ITERATIONS = 30
ADJUST_RIDGE = 1e-3
ADJUST_MODEL = ("logistic regression of per-item correctness on the signed relative length difference "
                "d = (len chosen - len rejected) / max; accuracy at d = 0")


def logistic_at_zero(y: np.ndarray, x: np.ndarray, w: np.ndarray, *, iterations: int = ADJUST_ITERATIONS,
                     ridge: float = ADJUST_RIDGE) -> np.ndarray:
    """Accuracy at equal lengths, sigmoid(a), of the weighted logistic fit P(correct) = sigmoid(a + b·x).

    Why a model: length-matched pairs are few on HH-RLHF (6–18% of pairs are within 10% in length, 28
    of the 429 held-out harmless-base pairs), too few to decide anything; the fit uses every pair and
    reads the accuracy off at zero length difference. An RM that scores by length alone is right
    exactly when d > 0 (or < 0): the fit's slope grows while its intercept stays near 0, so its
    adjusted accuracy is about 0.5; an RM that ignores length keeps its accuracy. ``y`` (n,) may hold
    ½ for ties (a fractional outcome, as quasi-likelihood allows); ``w`` is (rows × n) weights, one fit
    per row (bootstrap multiplicities), solved together by Newton's method with a small ridge (scaled
    by each row's total weight) that keeps a separable fit finite. Returns (rows,); NaN where a row
    has no weight.
    """
    w = np.atleast_2d(np.asarray(w, dtype=float))
    y = np.asarray(y, dtype=float)[None, :]
    x = np.asarray(x, dtype=float)[None, :]
    tot = w.sum(axis=1)
    ok = tot > 0
    wn = w / np.where(ok, tot, 1.0)[:, None]
    a = np.zeros(w.shape[0])
    b = np.zeros(w.shape[0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a[:, None] + b[:, None] * x)))
        r = wn * (y - p)
        v = wn * p * (1.0 - p)
        ga, gb = r.sum(axis=1) - ridge * a, (r * x).sum(axis=1) - ridge * b
        haa, hab, hbb = v.sum(axis=1) + ridge, (v * x).sum(axis=1), (v * x * x).sum(axis=1) + ridge
        det = haa * hbb - hab * hab
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a += np.clip(da, -5.0, 5.0)
        b += np.clip(db, -5.0, 5.0)
    return np.where(ok, 1.0 / (1.0 + np.exp(-a)), np.nan)


def single_cell_diff(c: Cells) -> np.ndarray | None:
    """Per item, the relative length difference of its one cell; None unless every item is pairwise
    (one chosen, one rejected: HH, LLMBar). Multi-cell items (RM-Bench's 3×3, best-of-N) have no
    single difference; RM-Bench's own hard/normal/easy split is its length-and-style control."""
    if c.n_items == 0 or not np.all(c.counts == 1):
        return None
    return c.relative_diff()


# ----------------------------------------------------------------------------- everything for one subset


def length_controls(metric: str, chosen_scores: Sequence[Numbers], rejected_scores: Sequence[Numbers],
                    chosen_lengths: Sequence[Numbers], rejected_lengths: Sequence[Numbers], *,
                    tolerance: float = DEFAULT_TOLERANCE, bins: int = DEFAULT_BINS,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The length-control fields of one subset's results.json entry (see the module docstring)."""
    c = cells(chosen_scores, rejected_scores, chosen_lengths, rejected_lengths)
    rho = margin_length_spearman(c, n_resamples=n_resamples, seed=seed)
    return {
        "length_baseline": length_baseline(metric, chosen_lengths, rejected_lengths),
        "margin_length_spearman": rho,
        "length_matched": length_matched(c, tolerance, n_resamples=n_resamples, seed=seed),
        "length_bins": length_bins(c, bins),
    }


def controls_from_rows(rows: Sequence[dict[str, Any]], metric: str | None = None, unit: str = "tokens",
                       **kwargs: Any) -> dict[str, Any]:
    """:func:`length_controls` from ``items.jsonl`` rows of one subset (``unit``: "tokens" or "chars")."""
    if not rows:
        raise RmtensionError("length controls of an empty subset")
    metric = metric or rows[0]["metric"]
    return length_controls(metric, [r["chosen_scores"] for r in rows], [r["rejected_scores"] for r in rows],
                           [r[f"chosen_{unit}"] for r in rows], [r[f"rejected_{unit}"] for r in rows], **kwargs)


def mean_controls(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Group/task level: unweighted means over subsets (as group scores are) of the length-only
    baselines and the length-matched accuracy (subsets without matched cells left out)."""
    def mean(vals: list[Any]) -> float:
        v = [float(x) for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
        return float(np.mean(v)) if v else float("nan")

    have = [e for e in entries if e.get("length_baseline")]
    return {
        "length_baseline": {k: mean([e["length_baseline"].get(k) for e in have]) for k in ("longer", "shorter")},
        "length_matched": mean([(e.get("length_matched") or {}).get("score") for e in have]),
    }


# ----------------------------------------------------------------------------- across RMs (compare)


def _ids_lengths(rows: dict[str, dict[str, Any]], ids: Sequence[str]) -> tuple[str, list[Any], list[Any]] | None:
    """Lengths of the given items from items.jsonl rows: tokens when every row has them, else characters."""
    for unit in ("tokens", "chars"):
        if all(f"chosen_{unit}" in rows[i] and f"rejected_{unit}" in rows[i] for i in ids):
            return unit, [rows[i][f"chosen_{unit}"] for i in ids], [rows[i][f"rejected_{unit}"] for i in ids]
    return None


def task_controls(rows_by_role: dict[str, dict[str, dict[str, Any]]], ids: Sequence[str], metric: str,
                  stored_by_role: dict[str, dict[str, Any] | None] | None = None, *,
                  n_resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """Length controls of one task for several RMs scored on the same items (``rmtension compare``).

    ``rows_by_role``: role → item id → items.jsonl row; ``ids``: the items compared. The length
    baselines depend only on the items, so they are given once; the margin–length correlation,
    the length-matched accuracy and the accuracy's 95% interval are per RM. When an RM's stored
    results.json entry (``stored_by_role``) covers exactly these items, its numbers are taken as
    they are (the same functions wrote them); otherwise they are recomputed on ``ids``.
    Empty when the rows carry no lengths (eval folders written before lengths were recorded).
    """
    from rmtension.evaluation.aggregate import bootstrap_ci

    stored_by_role = stored_by_role or {}
    first = next(iter(rows_by_role.values()))
    found = _ids_lengths(first, ids) if ids else None
    if found is None:
        return {}
    unit, cl, rl = found
    out: dict[str, Any] = {"unit": unit, "length_baseline": length_baseline(metric, cl, rl),
                           "margin_length_spearman": {}, "length_matched": {}, "accuracy_ci95": {}}
    for role, rows in rows_by_role.items():
        stored = stored_by_role.get(role) or {}
        reuse = (stored.get("n") == len(ids) and "margin_length_spearman" in stored
                 and stored.get("length_unit", unit) == unit and unit == "tokens")
        if reuse:
            out["margin_length_spearman"][role] = stored["margin_length_spearman"]
            out["length_matched"][role] = stored["length_matched"]
        else:
            c = cells([rows[i]["chosen_scores"] for i in ids], [rows[i]["rejected_scores"] for i in ids], cl, rl)
            out["margin_length_spearman"][role] = margin_length_spearman(c, n_resamples=n_resamples)
            out["length_matched"][role] = length_matched(c, n_resamples=n_resamples)
        correct = [float(rows[i]["correct"]) for i in ids]
        ci = stored.get("ci95") if stored.get("n") == len(ids) and metric != METRIC_TIES else None
        if ci is None and metric != METRIC_TIES:
            iv = bootstrap_ci(correct, n_resamples=n_resamples, seed=0)
            ci = {"low": iv.low, "high": iv.high}
        out["accuracy_ci95"][role] = ci
    return out
