"""Behavioural retention: how much of what the single-objective RMs get right the mixed RM keeps.

For one task (benchmark subset), with C_M, C_H and C_A the sets of items that the mixed, helpful
and harmless RMs get right (study brief, stage 3):

    retention          = |C_M ∩ (C_H ∪ C_A)| / |C_H ∪ C_A|
    helpful retention  = |C_M ∩ C_H| / |C_H|
    harmless retention = |C_M ∩ C_A| / |C_A|

Why a rule for "right": best-of-N items score 1/k on ties and RM-Bench items in ninths, so set
membership needs a threshold. The default ``threshold=1.0`` counts an item as right only when its
correctness is 1 — fully right, which on every metric coincides with the paper's strict rule
(every chosen response above every rejected one: no tie at the top for best-of-N, all nine cells
for RM-Bench). Pass ``threshold=0.5`` for a majority rule. Boolean inputs are unaffected.
An empty denominator gives NaN, not an error: a task that no single RM gets right has nothing to retain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.evaluation.metrics import jsonable

Correctness = Union[Mapping[str, Union[bool, float]], Sequence[Union[bool, float]], np.ndarray]

DEFAULT_THRESHOLD = 1.0
_TOL = 1e-9  # 3 × (1/3) and 9 × (1/9) are not exactly 1.0 in floating point


def correct_mask(correct: Sequence[Union[bool, float]] | np.ndarray, *,
                 threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Booleans "right" from per-item correctness: ``correct >= threshold`` (up to 1e-9).

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
    """Retention of one task, with the set sizes behind each ratio."""

    retention: float
    helpful_retention: float
    harmless_retention: float
    n_items: int
    n_mixed: int
    n_helpful: int
    n_harmless: int
    n_union: int
    n_mixed_and_union: int
    n_mixed_and_helpful: int
    n_mixed_and_harmless: int
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
    """Retention of one task from the three RMs' per-item correctness.

    Inputs are either three mappings item id → correctness (bool, or a float in [0, 1]) or three
    arrays aligned item by item. With mappings the id sets must match (``on_mismatch="error"``), or
    only the ids common to all three are used (``"intersect"``). See the module docstring for the
    formulas and for ``threshold``.
    """
    m, h, a = (correct_mask(x, threshold=threshold) for x in _align(mixed, helpful, harmless, on_mismatch))
    union = h | a
    return RetentionResult(
        retention=_ratio(int(np.sum(m & union)), int(np.sum(union))),
        helpful_retention=_ratio(int(np.sum(m & h)), int(np.sum(h))),
        harmless_retention=_ratio(int(np.sum(m & a)), int(np.sum(a))),
        n_items=int(m.size),
        n_mixed=int(m.sum()),
        n_helpful=int(h.sum()),
        n_harmless=int(a.sum()),
        n_union=int(union.sum()),
        n_mixed_and_union=int(np.sum(m & union)),
        n_mixed_and_helpful=int(np.sum(m & h)),
        n_mixed_and_harmless=int(np.sum(m & a)),
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
