"""The tension dial: scale one neuron set of an RM by several factors and follow its helpful and
harmless accuracy.

Why: ablation (factor 0) asks whether a set matters; the dial asks *how* the RM's two objectives
move as the set is turned down (factor < 1) or up (factor > 1). Scaling the mixed RM's shared,
helpful-only or harmless-only neurons traces a curve in the (helpful accuracy, harmless accuracy)
plane, which ``rmtension.analysis.tradeoff`` compares with the segment between the helpful and the
harmless RM: does any factor give a better trade-off than either specialist?

Nothing new is computed here: each factor is the ablation code's ``scale`` mode
(``ablation.ablate.prepare(..., "scale", factor=f)``: a ← f·a on the set's neurons), and all factors
are one shared-work sweep (``ablation.sweep``: one tokenisation, one unablated baseline pass, and
every factor re-runs only the layers from the set's lowest layer on). Factor 1 runs through the same
hook as the others (a × 1.0 is a bit for bit), so its scores are the unablated scores exactly — a
check of the whole path, recorded in ``dial.json`` as ``factor_one_exact``.

``dial.json`` (the shape of issue 14, plus provenance)::

    {"factors": [f, ...],
     "points": [{"factor": f, "groups": {"helpful": acc, "harmless": acc},
                 "groups_ci95": {"helpful": {"low", "high"}, "harmless": {...}},
                 "benchmarks": {name: {"groups", "groups_ci95"}}}, ...],
     "baseline": {"groups", "groups_ci95"}, "set": {...}, "rm": {...},
     "references": {"helpful": {...}, "harmless": {...}}, "tradeoff": {...}}   # analysis.tradeoff.with_references

``groups`` is the run's task-table group mean (``results.json`` top level: the unweighted mean of
the helpful / harmless tasks over all the benchmarks), ``groups_ci95`` its 95% stratified bootstrap
interval, as ``rmtension eval`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rmtension.errors import RmtensionError

DIAL_FILE = "dial.json"
DIAL_FORMAT = "rmtension.dial/1"


def factor_name(factor: float) -> str:
    """The sweep name of one factor's set (also its folder under ``sets/``)."""
    return f"x{factor:g}"


def check_factors(factors: Sequence[float]) -> list[float]:
    out = [float(f) for f in factors]
    if not out:
        raise RmtensionError("the dial needs at least one factor")
    if any(not np.isfinite(f) for f in out):
        raise RmtensionError(f"dial factors must be finite numbers, got {out}")
    if len(set(out)) != len(out):
        raise RmtensionError(f"dial factors repeat: {out}")
    return out


def _groups(results: dict[str, Any]) -> dict[str, Any]:
    return {"groups": results.get("groups", {}), "groups_ci95": results.get("groups_ci95", {})}


def point_of(results: dict[str, Any], factor: float | None = None) -> dict[str, Any]:
    """One dial point (or a reference RM's point) from an evaluation's ``results.json`` dict."""
    out: dict[str, Any] = {} if factor is None else {"factor": factor}
    out.update(_groups(results))
    out["benchmarks"] = {b: {"groups": e.get("groups", {}), "groups_ci95": e.get("groups_ci95", {})}
                         for b, e in results.get("benchmarks", {}).items()}
    return out


@dataclass
class DialRun:
    """A dial's sweep (baseline + one scaled set per factor) and its ``dial.json`` content."""

    sweep: Any  # rmtension.ablation.sweep.SweepResult
    dial: dict[str, Any]


def run_dial(model: Any, tokenizer: Any, benchmarks: Sequence[Any], neuron_set: Any, factors: Sequence[float], *,
             template: str = "hh", scorer_config: Any = None, grouping: str | None = None, share: bool = True,
             name: str | None = None) -> DialRun:
    """Evaluate ``benchmarks`` with ``neuron_set`` scaled by each factor (one shared-work sweep).

    The reference RMs and the trade-off verdict are added by ``rmtension.analysis.tradeoff.with_references``
    (a layer above this one).
    """
    from rmtension.ablation.ablate import prepare
    from rmtension.ablation.sweep import sweep
    from rmtension.bench.groups import DEFAULT_GROUPING
    from rmtension.neurons.sites import model_sites

    fs = check_factors(factors)
    ms = model_sites(model)
    ablations = [prepare(ms, neuron_set, "scale", factor=f, name=factor_name(f)) for f in fs]
    result = sweep(model, tokenizer, benchmarks, ablations, template=template, scorer_config=scorer_config,
                   share=share, grouping=grouping or DEFAULT_GROUPING)
    points = [point_of(sr.result.results, f) for f, sr in zip(fs, result.sets)]
    base_items = result.baseline.items
    exact = None
    if 1.0 in fs:
        one = result.sets[fs.index(1.0)].result.items
        exact = all(a.get("chosen_scores") == b.get("chosen_scores") and a.get("rejected_scores") == b.get("rejected_scores")
                    for a, b in zip(base_items, one)) and len(one) == len(base_items)
    s = neuron_set
    dial: dict[str, Any] = {
        "format": DIAL_FORMAT,
        "factors": fs,
        "points": points,
        "baseline": point_of(result.baseline.results),
        "factor_one_exact": exact,
        "set": {"name": name or s.meta.get("file"), "count": len(s), "total": s.total, "per_layer": s.per_layer(),
                "site": ablations[0].site, **{k: s.meta[k] for k in ("method", "k", "op", "objective", "rm", "file")
                                             if k in s.meta}},
        "mode": "scale",
        "benchmarks": [b.name for b in benchmarks],
        "grouping": result.baseline.results.get("grouping"),
        "sharing": result.stats.to_dict(),
    }
    return DialRun(result, dial)
