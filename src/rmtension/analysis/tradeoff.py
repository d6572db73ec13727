"""Does a dial factor move the mixed RM beyond the segment between the two single-objective RMs?

The tension dial (``rmtension.ablation.dial``) scales a neuron set of the mixed RM by factors and
measures helpful-group and harmless-group accuracy per factor. Read in the plane (helpful
accuracy, harmless accuracy), the helpful RM H and the harmless RM A span a segment: the
trade-offs one gets by weighing the two objectives differently between the two specialists. The
question the dial answers is whether some factor puts the mixed RM *beyond* that segment — a
better trade-off than either specialist — or leaves it on the near side (the paper's tension).

Definitions (pure arithmetic on the groups and their 95% intervals; tests/test_dial.py):

* w = (w_help, w_harm) ∝ the normal of the line through H and A, oriented so w_help + w_harm > 0 and
  normalised to w_help + w_harm = 1. When H and A trade off (each better on one group), w ≥ 0 is the
  weighting of the two objectives under which they tie: w·H = w·A.
* δ(f) = w·M(f) − w·H: how far the mixed RM at factor f lies beyond (δ > 0) or short of (δ < 0) the
  line, in accuracy points of the w-weighted score. t(f) = (M − H)·(A − H)/|A − H|² says where along
  the segment it sits (0 = H, 1 = A).
* Interval of δ: normal approximation, each accuracy's standard error read off its 95% bootstrap
  interval as (high − low) / (2 · 1.96), the line's offset taken as the mean of w·H and w·A, and all
  estimates treated as independent. The three RMs are scored on the same items, whose correctness
  is positively correlated across RMs, so independence *over*-states the variance of the
  difference: the interval is conservative. The uncertainty of w itself is ignored. The intervals
  of all factors are simultaneous: Bonferroni over the factors (z at 1 − 0.05 / (2 · #factors)).
* Verdict per factor: ``beyond`` (the whole interval > 0), ``short`` (the whole interval < 0: a worse
  trade-off than the specialists' segment), ``undetermined`` (the interval contains 0).
  Overall: ``beyond`` if any factor is; ``short`` if every factor is; else ``undetermined``;
  ``no-tradeoff`` when H and A do not trade off (one is at least as good on both groups: there is no
  segment of trade-offs to beat; δ is still reported); ``no-interval`` when an interval is missing.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Mapping, Sequence

from rmtension.errors import RmtensionError

ALPHA = 0.05
GROUP_PAIR = ("helpful", "harmless")
Z95 = NormalDist().inv_cdf(0.975)


def _xy(point: Mapping[str, Any], what: str) -> tuple[float, float]:
    groups = point.get("groups") or {}
    try:
        x, y = (float(groups[g]) for g in GROUP_PAIR)
    except (KeyError, TypeError, ValueError):
        raise RmtensionError(f"{what} has no helpful and harmless group accuracy") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RmtensionError(f"{what}: helpful/harmless group accuracy is not a number ({x}, {y})")
    return x, y


def _se(point: Mapping[str, Any]) -> tuple[float, float] | None:
    """Standard errors of the two group accuracies from their 95% intervals; None when one is missing."""
    ci = point.get("groups_ci95") or {}
    out = []
    for g in GROUP_PAIR:
        iv = ci.get(g) or {}
        low, high = iv.get("low"), iv.get("high")
        if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
            return None
        out.append((float(high) - float(low)) / (2 * Z95))
    return out[0], out[1]


def tradeoff_verdict(helpful_rm: Mapping[str, Any], harmless_rm: Mapping[str, Any],
                     points: Sequence[Mapping[str, Any]], alpha: float = ALPHA) -> dict[str, Any]:
    """The verdict of the module docstring for dial ``points`` (each with ``factor``, ``groups``,
    ``groups_ci95``) against the two single-objective RMs (``groups``, ``groups_ci95`` each)."""
    if not points:
        raise RmtensionError("no dial points to judge")
    h, a = _xy(helpful_rm, "the helpful RM"), _xy(harmless_rm, "the harmless RM")
    dx, dy = a[0] - h[0], a[1] - h[1]
    if dx == 0 and dy == 0:
        return {"verdict": "degenerate", "reason": "the helpful and harmless RMs have the same accuracies: no segment",
                "points": []}
    nx, ny = dy, -dx
    if nx + ny < 0:
        nx, ny = -nx, -ny
    norm = nx + ny
    if norm == 0:  # the line runs along (1, 1): w would be undefined; use the unit normal
        length = math.hypot(nx, ny)
        w = (nx / length, ny / length)
    else:
        w = (nx / norm, ny / norm)
    tradeoff = w[0] >= 0 and w[1] >= 0 and norm > 0
    m = len(points)
    z = NormalDist().inv_cdf(1 - alpha / (2 * m))
    se_h, se_a = _se(helpful_rm), _se(harmless_rm)
    offset = (w[0] * (h[0] + a[0]) + w[1] * (h[1] + a[1])) / 2
    seg2 = dx * dx + dy * dy
    rows = []
    for i, p in enumerate(points):
        x, y = _xy(p, f"dial point {i}")
        delta = w[0] * x + w[1] * y - offset
        row: dict[str, Any] = {"factor": p.get("factor"), "delta": delta,
                               "t": ((x - h[0]) * dx + (y - h[1]) * dy) / seg2}
        se_m = _se(p)
        if se_m is None or se_h is None or se_a is None:
            row.update({"low": None, "high": None, "verdict": "no-interval"})
        else:
            var = (w[0] ** 2 * se_m[0] ** 2 + w[1] ** 2 * se_m[1] ** 2
                   + (w[0] ** 2 * (se_h[0] ** 2 + se_a[0] ** 2) + w[1] ** 2 * (se_h[1] ** 2 + se_a[1] ** 2)) / 4)
            half = z * math.sqrt(var)
            low, high = delta - half, delta + half
            row.update({"low": low, "high": high,
                        "verdict": "beyond" if low > 0 else "short" if high < 0 else "undetermined"})
        rows.append(row)
    verdicts = [r["verdict"] for r in rows]
    if not tradeoff:
        overall = "no-tradeoff"
        reason = ("the single-objective RMs do not trade off (one is at least as good on both groups), so there is "
                  "no segment of trade-offs to move beyond")
    elif "no-interval" in verdicts:
        overall, reason = "no-interval", "an accuracy lacks its 95% interval (e.g. a group with a Ties subset)"
    elif "beyond" in verdicts:
        beyond = [r["factor"] for r in rows if r["verdict"] == "beyond"]
        overall, reason = "beyond", f"factor(s) {', '.join(f'{f:g}' for f in beyond)} move the mixed RM beyond the segment"
    elif all(v == "short" for v in verdicts):
        overall, reason = "short", "every factor leaves the mixed RM short of the segment between the single-objective RMs"
    else:
        overall, reason = "undetermined", "no factor is beyond the segment with confidence, and not every factor is short of it"
    return {"verdict": overall, "reason": reason, "weights": {"helpful": w[0], "harmless": w[1]},
            "helpful_rm": list(h), "harmless_rm": list(a), "alpha": alpha, "z": z,
            "interval": "normal approximation from the 95% bootstrap intervals, independent estimates (conservative "
                        "for items shared by the RMs), Bonferroni over the factors",
            "points": rows}


def with_references(dial: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``dial`` (``rmtension.ablation.dial``) with the helpful and harmless RMs' points (from their
    ``results.json`` dicts on the same benchmarks) and the trade-off verdict under ``tradeoff``.

    A verdict that cannot be computed (e.g. benchmarks without a harmless group) is recorded as
    ``unavailable`` with its reason: the curve is still worth having.
    """
    from rmtension.ablation.dial import point_of

    missing = {"helpful", "harmless"} - set(references)
    if missing:
        raise RmtensionError(f"the trade-off needs both reference RMs; missing: {', '.join(sorted(missing))}")
    out = dict(dial)
    out["references"] = {k: point_of(dict(v)) for k, v in references.items()}
    try:
        out["tradeoff"] = tradeoff_verdict(out["references"]["helpful"], out["references"]["harmless"], dial["points"])
    except RmtensionError as exc:
        out["tradeoff"] = {"verdict": "unavailable", "reason": str(exc), "points": []}
    return out
