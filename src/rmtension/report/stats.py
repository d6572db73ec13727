"""Numbers as the report shows them: mean ± std over seeds, and one formatting rule per kind.

Why one module: every table and caption must format the same kind of number the same way
(accuracies as percentages with one decimal, deltas as signed percentage points, missing numbers
as "—"), and a reader must be able to see when a mean rests on fewer seeds than the others.

Mean ± std over seeds skips missing (``null``/NaN) values and counts only the present ones in
``n``; the tables then mark a cell whose ``n`` is below the table's largest ``n``, so a missing
seed stays visible instead of silently shrinking the sample. The std is the sample std (ddof=1),
as in :func:`rmtension.evaluation.aggregate.mean_std`; it is undefined (shown as nothing) for n = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from rmtension.evaluation.aggregate import mean_std

DASH = "—"


def as_float(value: Any) -> float:
    """``value`` as a float, NaN for ``None``, NaN, booleans and anything that is not a number."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def present(value: Any) -> bool:
    """Whether ``value`` is a real, finite number."""
    return math.isfinite(as_float(value))


@dataclass(frozen=True)
class Stat:
    """Mean and sample std of one number over seeds; ``n`` = seeds that had the number.

    The frozen, display-side form of :class:`rmtension.evaluation.aggregate.MeanStd`: :func:`stat`
    computes it with :func:`~rmtension.evaluation.aggregate.mean_std`, so the package has one rule for
    missing values (skipped, ``n`` counts the present ones) and `compare`, summary.json and these
    tables agree about the same seeds."""

    mean: float
    std: float
    n: int

    @property
    def missing(self) -> bool:
        return self.n == 0 or not math.isfinite(self.mean)


CHANCE = 0.5
CHANCE_MARK = "†"


@dataclass(frozen=True)
class StatCI(Stat):
    """A :class:`Stat` of an accuracy with its 95% interval (``low``/``high``; NaN: none available).

    The interval is the eval's bootstrap over items for one seed, or the two-way (items × seeds)
    interval of :mod:`rmtension.analysis.pooled` for several; an accuracy whose interval includes
    :data:`CHANCE` is marked :data:`CHANCE_MARK` where it is printed.
    """

    low: float = math.nan
    high: float = math.nan
    chance: float = CHANCE   # the task's chance level; NaN where it is not 50% (best-of-N) and no mark is made

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def at_chance(self) -> bool:
        """Whether the interval includes the chance level (False without an interval or a chance level)."""
        return self.has_ci and math.isfinite(self.chance) and self.low <= self.chance <= self.high


def with_ci(s: Stat, ci: Any, chance: float = CHANCE) -> Stat:
    """``s`` with the interval ``ci`` (``{"low", "high"}`` or ``[low, high]``) when it has finite bounds;
    ``chance``: the task's chance level (NaN: unknown, never marked)."""
    if isinstance(ci, dict):
        lo, hi = as_float(ci.get("low")), as_float(ci.get("high"))
    elif isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = as_float(ci[0]), as_float(ci[1])
    else:
        return s
    if not (math.isfinite(lo) and math.isfinite(hi)) or s.missing:
        return s
    return StatCI(s.mean, s.std, s.n, lo, hi, chance)


def stat(values: Iterable[Any]) -> Stat:
    """:class:`Stat` of the present values among ``values`` (``None``/NaN are skipped; the rule of ``mean_std``)."""
    ms = mean_std(values)
    return Stat(ms.mean, ms.std, ms.n)


# --------------------------------------------------------------------------- formatting

# Formatting kinds: how a raw number in a column becomes text.
#   pct   a fraction in [0, 1] shown as a percentage with one decimal (62.3)
#   delta a difference of fractions shown as signed percentage points (+1.2, −3.4)
#   num   a plain real number with three decimals (margins, Jaccard indices)
#   count a count; integers as such, means of counts with one decimal
#   secs  a duration in seconds with one decimal
#   text  anything, as str
KINDS = ("pct", "delta", "num", "count", "secs", "text")


def fmt_value(value: Any, kind: str) -> str:
    """One number (or text) as the report prints it; missing numbers are "—"."""
    if kind == "text":
        return DASH if value is None else str(value)
    x = as_float(value)
    if not math.isfinite(x):
        return DASH
    if kind == "pct":
        return f"{100 * x:.1f}"
    if kind == "delta":
        s = f"{100 * x:+.1f}"
        return s.replace("-", "−")
    if kind == "num":
        return f"{x:.3f}".replace("-", "−")
    if kind == "count":
        return f"{int(round(x))}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"
    if kind == "secs":
        return f"{x:.1f}"
    raise ValueError(f"unknown format kind {kind!r}")


def fmt_spread(value: float, kind: str) -> str:
    """The ± part of a :class:`Stat`: unsigned, on the same scale as its mean."""
    if kind in ("delta", "pct"):
        return f"{100 * value:.1f}"
    if kind in ("count", "secs"):
        return f"{value:.1f}"
    return f"{value:.3f}"


def fmt_stat(s: Stat, kind: str, full_n: int | None = None) -> str:
    """``mean ± std`` (no ± for one seed), with ``(n=…)`` when fewer seeds than ``full_n`` had it."""
    if s.missing:
        return DASH
    text = fmt_value(s.mean, kind)
    if s.n > 1 and math.isfinite(s.std):
        text += f" ± {fmt_spread(s.std, kind)}"
    if full_n is not None and s.n < full_n:
        text += f" (n={s.n})"
    return text


def fmt_interval(low: float, high: float, kind: str) -> str:
    """``[low, high]`` on the scale of ``kind`` (percentages for pct, signed points for delta)."""
    return f"[{fmt_value(low, kind)}, {fmt_value(high, kind)}]"


def fmt_cell(value: Any, kind: str, full_n: int | None = None) -> str:
    """Any table cell: a :class:`Stat` (with its interval and chance mark when it has one) or a single value."""
    if isinstance(value, StatCI) and value.has_ci and not value.missing:
        text = f"{fmt_stat(value, kind, full_n)} {fmt_interval(value.low, value.high, kind)}"
        return text + f" {CHANCE_MARK}" if value.at_chance and kind == "pct" else text
    if isinstance(value, Stat):
        return fmt_stat(value, kind, full_n)
    return fmt_value(value, kind)


def fmt_k(k: Any) -> str:
    """A top-k percentage as short text (10, 2.5), for labels and file names."""
    x = as_float(k)
    if not math.isfinite(x):
        return DASH
    return f"{x:g}"
