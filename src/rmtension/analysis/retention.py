"""Behavioural retention: how much of what the single-objective RMs get right the mixed RM keeps.

For one task (benchmark subset), with C_M, C_H and C_A the sets of *units* that the mixed, helpful
and harmless RMs get right:

    retention        = |C_M ∩ (C_H ∪ C_A)| / |C_H ∪ C_A|      (the paper's main retention)
    jaccard_helpful  = |C_M ∩ C_H| / |C_M ∪ C_H|              (the paper's pairwise retention, appendix)
    jaccard_harmless = |C_M ∩ C_A| / |C_M ∪ C_A|
    kept_helpful     = |C_M ∩ C_H| / |C_H|                    (ours: share of C_H the mixed RM keeps)
    kept_harmless    = |C_M ∩ C_A| / |C_A|

Source of the paper's definitions: EshaanT/RM-alignment_tension ``notebooks/plotsNresults.ipynb`` at
commit 96efa92ee8bb12bd63baeb6aba407c203b6b2751, the retention cells (``cells[19]`` and ``cells[20]``,
0-based over all cells; the latter's counts are at lines 1600-1630 of the .ipynb file): per task
``inter_union`` counts units with ``hh == 1 and (he == 1 or ha == 1)`` and ``union_union`` units with
``he == 1 or ha == 1`` (the mixed RM is *not* in the denominator), ``transferability =
inter_union / union_union``; the pairwise numbers are ``pairwise_he = inter_he / union_he`` with
``inter_he`` counting ``hh == 1 and he == 1`` and ``union_he`` counting ``hh == 1 or he == 1`` — a
Jaccard index (likewise for harmless). ``kept_*`` is not in the paper; it answers "how much of the
helpful RM's correct set survives", which the Jaccard mixes with what the mixed RM adds.

**The unit** (``unit=``) decides what one element of C_X is:

- ``"paper"`` (default) — what the paper's code scored. Its loaders
  (``RM_interpretation/benchmarking/dataset.py`` at the commit above) make one unit per RewardBench
  pair, one per RewardBench 2 row (all its chosen and rejected responses), and for RM-Bench one unit
  per *same-style* pair: ``get_rm_bench`` zips ``data['chosen']`` with ``data['rejected']`` and
  appends ``id + "_" + str(idx)`` for each of the three styles, so only the diagonal of RM-Bench's
  3×3 matrix is ever compared. Each unit is right iff ``min(chosen scores) > max(rejected scores)``
  (``RM_interpretation/benchmarking/evaluation.py::rm_acc``, line 235, strict ``>``: a tie is a
  miss). On a single pair that is chosen > rejected; on a RewardBench 2 best-of-4 row it asks the
  chosen response to beat all three rejected ones. Here an RM-Bench item (metric ``rm-bench``)
  becomes units ``"<id>#0"``, ``"<id>#1"``, ``"<id>#2"``; every other item is one unit.
- ``"item"`` — one unit per benchmark item, right when its correctness under the benchmark's own
  metric (``correct`` in items.jsonl) reaches ``threshold`` (default 1.0: fully right). For an
  RM-Bench item that means all nine cells of its 3×3 matrix (equivalently min over the three
  chosen > max over the three rejected), which the paper did not compute; for RewardBench 2
  best-of-N, 1.0 means a clean win, the paper's rule again. ``threshold=0.5`` gives a majority rule.

An empty denominator gives NaN, not an error: a task that no single RM gets right has nothing to
retain. (The paper's notebook writes 0.0 there — ``... if union_union > 0 else 0.0`` — and averages
that 0 into its seed means; we keep the hole visible instead. Real benchmark tasks never hit it.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

from rmtension.bench.types import METRIC_RM_BENCH
from rmtension.errors import RmtensionError
from rmtension.evaluation.metrics import MetricInputError, as_scores
from rmtension.files import jsonable

Correctness = Union[Mapping[str, Union[bool, float]], Sequence[Union[bool, float]], np.ndarray]

UNIT_PAPER = "paper"
UNIT_ITEM = "item"
RETENTION_UNITS = (UNIT_PAPER, UNIT_ITEM)
DEFAULT_UNIT = UNIT_PAPER
DEFAULT_THRESHOLD = 1.0
_TOL = 1e-9  # 3 × (1/3) and 9 × (1/9) are not exactly 1.0 in floating point


def check_unit(unit: str) -> None:
    if unit not in RETENTION_UNITS:
        raise RmtensionError(f"retention unit must be one of {', '.join(RETENTION_UNITS)}, got {unit!r}")


def paper_units(item_id: str, chosen_scores: Any, rejected_scores: Any, metric: str | None) -> dict[str, bool]:
    """The paper's scoring units of one item and whether each is right (see the module docstring).

    RM-Bench items (``metric == "rm-bench"``): one unit per style s, ``"<id>#<s>"``, right iff
    chosen[s] > rejected[s] — the same-style pairs the paper's ``get_rm_bench`` builds. Any other
    item: one unit ``item_id``, right iff min(chosen) > max(rejected) — ``rm_acc``'s rule.
    """
    chosen = as_scores(chosen_scores, "chosen", item_id)
    rejected = as_scores(rejected_scores, "rejected", item_id)
    if metric == METRIC_RM_BENCH:
        if chosen.size != rejected.size:
            raise MetricInputError(f"RM-Bench item {item_id!r} has {chosen.size} chosen and {rejected.size} "
                                   "rejected scores; same-style pairs need as many of each")
        return {f"{item_id}#{s}": bool(chosen[s] > rejected[s]) for s in range(chosen.size)}
    return {item_id: bool(chosen.min() > rejected.max())}


def unit_correctness(rows: Mapping[str, Mapping[str, Any]], metric: str | None, *, unit: str = DEFAULT_UNIT
                     ) -> dict[str, Union[bool, float]]:
    """Unit id → correctness for one RM on one task, from its items.jsonl rows (item id → row).

    ``unit="paper"``: :func:`paper_units` of every row (booleans, from the rows' scores).
    ``unit="item"``: each row's ``correct`` as written by ``rmtension eval`` (a float in [0, 1];
    :func:`retention`'s ``threshold`` then decides what counts as right).
    """
    check_unit(unit)
    out: dict[str, Union[bool, float]] = {}
    for item_id, row in rows.items():
        if unit == UNIT_ITEM:
            out[item_id] = float(row["correct"])
        else:
            out.update(paper_units(item_id, row["chosen_scores"], row["rejected_scores"], metric))
    return out


def correct_mask(correct: Sequence[Union[bool, float]] | np.ndarray, *,
                 threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Booleans "right" from per-unit correctness: ``correct >= threshold`` (up to 1e-9).

    ``threshold`` must be in (0, 1]. NaN correctness is an error.
    """
    if not 0.0 < threshold <= 1.0:
        raise RmtensionError(f"retention threshold must be in (0, 1], got {threshold}")
    arr = np.asarray(correct, dtype=float).ravel()
    if arr.size and not np.all(np.isfinite(arr)):
        raise RmtensionError("per-item correctness contains NaN/inf")
    return arr >= threshold - _TOL


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


@dataclass
class RetentionResult:
    """Retention of one task, with the set sizes behind each ratio (sizes count units)."""

    retention: float
    jaccard_helpful: float
    jaccard_harmless: float
    kept_helpful: float
    kept_harmless: float
    n_units: int
    n_mixed: int
    n_helpful: int
    n_harmless: int
    n_union: int  # |C_H ∪ C_A|
    n_mixed_and_union: int
    n_mixed_and_helpful: int
    n_mixed_and_harmless: int
    n_mixed_or_helpful: int  # |C_M ∪ C_H|, the helpful Jaccard's denominator
    n_mixed_or_harmless: int
    n_mixed_only: int  # right for the mixed RM, wrong for both single RMs
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def _align(mixed: Correctness, helpful: Correctness, harmless: Correctness,
           on_mismatch: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kinds = [isinstance(x, Mapping) for x in (mixed, helpful, harmless)]
    if all(kinds):
        keys = [set(x) for x in (mixed, helpful, harmless)]  # type: ignore[arg-type]
        common = keys[0] & keys[1] & keys[2]
        if on_mismatch == "error":
            if not (keys[0] == keys[1] == keys[2]):
                names = ("mixed", "helpful", "harmless")
                detail = ", ".join(f"{n}: {len(k - common)} not in all" for n, k in zip(names, keys) if k - common)
                raise RmtensionError(f"retention needs the three RMs scored on the same items ({detail}); "
                                     "pass on_mismatch='intersect' to use the common items")
        elif on_mismatch != "intersect":
            raise RmtensionError(f"on_mismatch must be 'error' or 'intersect', got {on_mismatch!r}")
        ids = sorted(common)
        m, h, a = (np.array([x[i] for i in ids], dtype=float)  # type: ignore[index]
                   for x in (mixed, helpful, harmless))
        return m, h, a
    if any(kinds):
        raise RmtensionError("retention: give all three correctness inputs as id mappings or all as aligned arrays")
    arrays = [np.asarray(x, dtype=float).ravel() for x in (mixed, helpful, harmless)]
    if not (arrays[0].size == arrays[1].size == arrays[2].size):
        raise RmtensionError(f"retention: aligned arrays differ in length ({', '.join(str(a.size) for a in arrays)})")
    return arrays[0], arrays[1], arrays[2]


def retention(mixed: Correctness, helpful: Correctness, harmless: Correctness, *,
              threshold: float = DEFAULT_THRESHOLD, on_mismatch: str = "error") -> RetentionResult:
    """Retention of one task from the three RMs' per-unit correctness.

    Inputs are either three mappings unit id → correctness (bool, or a float in [0, 1]) or three
    arrays aligned unit by unit (build them with :func:`unit_correctness`; what a unit is, is the
    caller's choice). With mappings the id sets must match (``on_mismatch="error"``), or only the ids
    common to all three are used (``"intersect"``). See the module docstring for the formulas;
    ``threshold`` only matters for fractional correctness (booleans are unaffected).
    """
    m, h, a = (correct_mask(x, threshold=threshold) for x in _align(mixed, helpful, harmless, on_mismatch))
    union = h | a
    m_or_h, m_or_a = m | h, m | a
    return RetentionResult(
        retention=_ratio(int(np.sum(m & union)), int(np.sum(union))),
        jaccard_helpful=_ratio(int(np.sum(m & h)), int(np.sum(m_or_h))),
        jaccard_harmless=_ratio(int(np.sum(m & a)), int(np.sum(m_or_a))),
        kept_helpful=_ratio(int(np.sum(m & h)), int(np.sum(h))),
        kept_harmless=_ratio(int(np.sum(m & a)), int(np.sum(a))),
        n_units=int(m.size),
        n_mixed=int(m.sum()),
        n_helpful=int(h.sum()),
        n_harmless=int(a.sum()),
        n_union=int(union.sum()),
        n_mixed_and_union=int(np.sum(m & union)),
        n_mixed_and_helpful=int(np.sum(m & h)),
        n_mixed_and_harmless=int(np.sum(m & a)),
        n_mixed_or_helpful=int(m_or_h.sum()),
        n_mixed_or_harmless=int(m_or_a.sum()),
        n_mixed_only=int(np.sum(m & ~union)),
        threshold=threshold,
    )


def retention_by_task(mixed: Mapping[str, Correctness], helpful: Mapping[str, Correctness],
                      harmless: Mapping[str, Correctness], *, threshold: float = DEFAULT_THRESHOLD,
                      on_mismatch: str = "error") -> dict[str, RetentionResult]:
    """:func:`retention` for every task: each argument maps task (subset) → that RM's correctness.

    The three must cover the same tasks (a task scored by only some RMs is an error naming it).
    """
    tasks = [set(x) for x in (mixed, helpful, harmless)]
    if not (tasks[0] == tasks[1] == tasks[2]):
        missing = sorted((tasks[0] | tasks[1] | tasks[2]) - (tasks[0] & tasks[1] & tasks[2]))
        raise RmtensionError(f"retention: tasks not scored by all three RMs: {', '.join(missing)}")
    return {t: retention(mixed[t], helpful[t], harmless[t], threshold=threshold, on_mismatch=on_mismatch)
            for t in sorted(tasks[0])}
