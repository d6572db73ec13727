"""Retention and calibration across the mixed, helpful and harmless RMs of one backbone and seed.

Input: eval folders (``results.json`` + ``items.jsonl``) grouped into :class:`RunTriple` s by
:mod:`rmtension.analysis.eval_runs`. For each triple and each task (benchmark subset) scored by all
three RMs:

- **retention** (:func:`rmtension.analysis.retention.retention`): |C_M ∩ (C_H ∪ C_A)| / |C_H ∪ C_A|;
  the paper's pairwise retention, the Jaccard indices |C_M ∩ C_H| / |C_M ∪ C_H| ("jaccard_helpful")
  and |C_M ∩ C_A| / |C_M ∪ C_A| ("jaccard_harmless"); and ours, |C_M ∩ C_H| / |C_H| ("kept_helpful")
  and |C_M ∩ C_A| / |C_A| ("kept_harmless"). The sets are of *units* (``unit``): by default the
  paper's (an RM-Bench item is three same-style pairs, anything else one unit right iff
  min(chosen) > max(rejected)), or ``"item"``: whole items, right when their correctness in
  items.jsonl reaches ``threshold`` (an RM-Bench item then needs all nine cells);
- **calibration** (:func:`rmtension.analysis.calibration.compare_calibration`): on the items that
  a single-objective RM and the mixed RM both get right, their margins and scores side by side —
  per task, and pooled over the helpful-oriented tasks, the harmless-oriented tasks and all tasks
  (the pooled entries carry the histograms for the report's figure).

Then, per backbone, every number as mean ± std over the seeds given
(:func:`rmtension.evaluation.aggregate.mean_std`).

The JSON (:meth:`CompareResult.to_dict`) uses the field names of the study's ``summary.json``
(docs/STUDY_FORMAT.md: ``retention`` entries with ``unit`` and ``tasks``; ``calibration`` entries with ``single``,
``group``, ``single_margin``, ``mixed_margin``, ``share_mixed_smaller``, ``hist``), so a study can
copy :meth:`CompareResult.summary_entries` into its summary unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rmtension.analysis.calibration import MARGIN_RULES, CalibrationResult, compare_calibration
from rmtension.analysis.eval_runs import RunTriple, TaskRows
from rmtension.analysis.length import task_controls
from rmtension.analysis.retention import DEFAULT_THRESHOLD, DEFAULT_UNIT, check_unit, retention, unit_correctness
from rmtension.bench.groups import DEFAULT_GROUPING, get_grouping
from rmtension.bench.types import GROUPS
from rmtension.errors import RmtensionError
from rmtension.evaluation.aggregate import mean_std
from rmtension.files import jsonable

SINGLES = ("helpful", "harmless")
POOLS = (*GROUPS, "all")
SEED_FIELDS = ("retention", "jaccard_helpful", "jaccard_harmless", "kept_helpful", "kept_harmless")
CALIBRATION_SEED_FIELDS = ("n", "share_mixed_smaller", "mean_margin_difference", "single_margin.mean",
                           "mixed_margin.mean", "single_score.mean_abs", "mixed_score.mean_abs")


@dataclass(frozen=True)
class CompareOptions:
    """unit: what retention counts, "paper" (the paper's code's units, default) or "item" (whole
    items at ``threshold``), see :mod:`rmtension.analysis.retention`;
    threshold: per-item correctness that counts as right (1.0 = fully right), for ``unit="item"``
    retention and for calibration (which always works on whole items);
    margin: "min-max" or "mean" (see calibration); bins: histogram bins of the pooled entries;
    intersect: use the items common to the three RMs when their item sets differ (else an error);
    grouping: which tasks enter the helpful/harmless group means and which subsets form one task
    (:data:`rmtension.bench.groups.GROUPINGS`; ``paper`` by default, as for eval's group means)."""

    unit: str = DEFAULT_UNIT
    threshold: float = DEFAULT_THRESHOLD
    margin: str = "min-max"
    bins: int = 20
    intersect: bool = False
    grouping: str = DEFAULT_GROUPING

    def check(self) -> None:
        check_unit(self.unit)
        get_grouping(self.grouping)
        if not 0.0 < self.threshold <= 1.0:
            raise RmtensionError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.margin not in MARGIN_RULES:
            raise RmtensionError(f"margin must be one of {', '.join(MARGIN_RULES)}, got {self.margin!r}")
        if self.bins < 1:
            raise RmtensionError(f"bins must be at least 1, got {self.bins}")


@dataclass
class Comparison:
    """One backbone × seed: per-task retention/calibration and the pooled calibration entries."""

    backbone: str | None
    seed: int | None
    retention_unit: str
    grouping: str
    runs: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    calibration: list[dict[str, Any]]
    skipped_tasks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"backbone": self.backbone, "seed": self.seed, "retention_unit": self.retention_unit,
                         "grouping": self.grouping, "runs": self.runs, "tasks": self.tasks,
                         "groups": self.groups, "calibration": self.calibration,
                         "skipped_tasks": self.skipped_tasks, "notes": self.notes})


@dataclass
class CompareResult:
    """All comparisons, and per backbone the mean ± std over their seeds."""

    options: CompareOptions
    comparisons: list[Comparison]
    over_seeds: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"retention_unit": self.options.unit, "grouping": self.options.grouping,
                         "threshold": self.options.threshold,
                         "margin_rule": self.options.margin,
                         "bins": self.options.bins, "intersect": self.options.intersect,
                         "comparisons": [c.to_dict() for c in self.comparisons], "over_seeds": self.over_seeds})

    def summary_entries(self) -> dict[str, list[dict[str, Any]]]:
        """The ``retention`` and ``calibration`` lists of a study's summary.json."""
        retention_entries = [jsonable({"backbone": c.backbone, "seed": c.seed, "unit": c.retention_unit,
                                       "grouping": c.grouping, "tasks": c.tasks})
                             for c in self.comparisons]
        calibration_entries = [jsonable({"backbone": c.backbone, "seed": c.seed, **e})
                               for c in self.comparisons for e in c.calibration]
        return {"retention": retention_entries, "calibration": calibration_entries}


# ----------------------------------------------------------------------------- one triple


def _align_task(key: str, tasks: dict[str, TaskRows], intersect: bool) -> tuple[list[str], int]:
    """Item ids the three RMs share (sorted), and how many were dropped; an error on mismatch unless intersecting."""
    ids = {role: set(t.rows) for role, t in tasks.items()}
    common = set.intersection(*ids.values())
    union = set.union(*ids.values())
    if common != union and not intersect:
        detail = ", ".join(f"{role} {len(s)}" for role, s in ids.items())
        raise RmtensionError(f"task {key}: the RMs were scored on different items ({detail}; {len(common)} in common) "
                             "— evaluate them with the same --max-items/--sample-seed, or pass --intersect")
    return sorted(common), len(union) - len(common)


def _calibration_dict(res: CalibrationResult, with_hist: bool) -> dict[str, Any]:
    out = res.to_dict()
    hist = out.pop("margin_hist")
    score_hist = out.pop("score_hist")
    if with_hist:
        out["hist"] = {"bins": hist["edges"], "single": hist["single"], "mixed": hist["mixed"]}
        out["score_hist"] = {"bins": score_hist["edges"], "single": score_hist["single"], "mixed": score_hist["mixed"]}
    return out


def _scores(row: dict[str, Any]) -> tuple[list[float], list[float]]:
    return row["chosen_scores"], row["rejected_scores"]


def compare_triple(triple: RunTriple, options: CompareOptions = CompareOptions()) -> Comparison:
    """Retention and calibration of one backbone × seed over every task all three RMs scored."""
    options.check()
    grouping = get_grouping(options.grouping)
    runs = triple.runs()
    keys = [set(r.tasks) for r in runs.values()]
    common = sorted(set.intersection(*keys))
    skipped = [{"task": k, "missing_in": [role for role, r in runs.items() if k not in r.tasks]}
               for k in sorted(set.union(*keys) - set(common))]
    if not common:
        raise RmtensionError(f"{triple.backbone} seed {triple.seed}: the three eval folders share no task "
                             f"({', '.join(r.path for r in runs.values())}); evaluate them on the same benchmarks")
    notes = list(triple.notes)
    tasks: dict[str, dict[str, Any]] = {}
    # pool → role → "<task>#<id>" → ((chosen, rejected) scores, correctness), for pooled calibration
    pool_rows: dict[str, dict[str, dict[str, tuple[tuple[list[float], list[float]], float]]]] = {
        g: {r: {} for r in runs} for g in POOLS}
    for key in common:
        by_role = {role: run.tasks[key] for role, run in runs.items()}
        ids, dropped = _align_task(key, by_role, options.intersect)
        if dropped:
            notes.append(f"task {key}: {dropped} items not scored by all three RMs were left out")
        metrics = {t.metric for t in by_role.values()}
        if len(metrics) > 1:
            raise RmtensionError(f"task {key} was scored with different metrics ({', '.join(map(str, metrics))})")
        group = by_role["mixed"].group or by_role["helpful"].group
        metric = by_role["mixed"].metric
        correct = {role: {i: float(t.rows[i]["correct"]) for i in ids} for role, t in by_role.items()}
        units = {role: unit_correctness({i: t.rows[i] for i in ids}, metric, unit=options.unit)
                 for role, t in by_role.items()}
        ret = retention(units["mixed"], units["helpful"], units["harmless"], threshold=options.threshold)
        r = ret.to_dict()
        bench, subset = by_role["mixed"].benchmark, by_role["mixed"].subset
        entry: dict[str, Any] = {
            "benchmark": bench, "subset": subset, "group": group,
            "task": grouping.task_of(bench, subset), "in_group_mean": grouping.includes(bench, subset),
            "metric": metric, "n": len(ids), "n_units": r["n_units"], "retention": r["retention"],
            "jaccard_helpful": r["jaccard_helpful"], "jaccard_harmless": r["jaccard_harmless"],
            "kept_helpful": r["kept_helpful"], "kept_harmless": r["kept_harmless"], "n_union": r["n_union"],
            "n_helpful": r["n_helpful"], "n_harmless": r["n_harmless"], "n_mixed": r["n_mixed"],
            "n_mixed_and_union": r["n_mixed_and_union"], "n_mixed_and_helpful": r["n_mixed_and_helpful"],
            "n_mixed_and_harmless": r["n_mixed_and_harmless"], "n_mixed_or_helpful": r["n_mixed_or_helpful"],
            "n_mixed_or_harmless": r["n_mixed_or_harmless"], "n_mixed_only": r["n_mixed_only"],
            "accuracy": {role: float(np.mean(list(c.values()))) if c else float("nan") for role, c in correct.items()},
            "calibration": {},
        }
        scores = {role: {i: _scores(t.rows[i]) for i in ids} for role, t in by_role.items()}
        for single in SINGLES:
            res = compare_calibration(scores[single], scores["mixed"], correct[single], correct["mixed"],
                                      threshold=options.threshold, margin=options.margin, bins=options.bins)
            entry["calibration"][single] = _calibration_dict(res, with_hist=False)
        # length controls (issue 11): length-only baselines, margin–length ρ and length-matched accuracy per RM
        entry["length"] = task_controls({role: t.rows for role, t in by_role.items()}, ids, entry["metric"],
                                        {role: _stored_subset(runs[role], t) for role, t in by_role.items()})
        tasks[key] = entry
        for pool in POOLS:
            if pool == "all" or pool == group:
                for role in runs:
                    pool_rows[pool][role].update({f"{key}#{i}": (scores[role][i], correct[role][i]) for i in ids})
    calibration = []
    for single in SINGLES:
        for pool in POOLS:
            rows_s, rows_m = pool_rows[pool][single], pool_rows[pool]["mixed"]
            if not rows_m:
                continue
            res = compare_calibration({k: v[0] for k, v in rows_s.items()}, {k: v[0] for k, v in rows_m.items()},
                                      {k: v[1] for k, v in rows_s.items()}, {k: v[1] for k, v in rows_m.items()},
                                      threshold=options.threshold, margin=options.margin, bins=options.bins)
            calibration.append({"single": single, "group": pool, **_calibration_dict(res, with_hist=True)})
    return Comparison(
        backbone=triple.backbone, seed=triple.seed, retention_unit=options.unit,
        grouping=options.grouping, runs={role: {"path": run.path, "objective": run.objective, "ablation": run.ablation}
              for role, run in runs.items()},
        tasks=tasks, groups=group_means(tasks), calibration=calibration, skipped_tasks=skipped, notes=notes)


def _stored_subset(run: Any, t: TaskRows) -> dict[str, Any] | None:
    """The task's subset entry in the run's results.json (with the benchmark's length unit)."""
    bench = run.results.get("benchmarks", {}).get(t.benchmark, {})
    entry = bench.get("subsets", {}).get(t.subset)
    return {**entry, "length_unit": bench.get("length_unit", "tokens")} if isinstance(entry, dict) else None


def group_means(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task group: the unweighted mean over its tasks of each retention measure.

    Only entries with ``in_group_mean`` count (the grouping's excluded subsets, e.g. the paper's code
    subsets, are reported per subset but left out, as in eval's group means); entries sharing a
    ``task`` name (the paper's merged "Math") are averaged into one task first, as the paper's
    notebook averages rows per task name before averaging the tasks (EshaanT/RM-alignment_tension,
    notebooks/plotsNresults.ipynb at 96efa92, cells 11–12). Undefined (NaN) values are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for g in GROUPS:
        by_task: dict[str, list[dict[str, Any]]] = {}
        for key, t in tasks.items():
            if t.get("group") == g and t.get("in_group_mean", True) is not False:
                by_task.setdefault(t.get("task") or key, []).append(t)
        if not by_task:
            continue
        entry: dict[str, Any] = {"tasks": len(by_task)}
        for f in SEED_FIELDS:
            per_task = [_nanmean([_num(t.get(f)) for t in rows]) for rows in by_task.values()]
            vals = [v for v in per_task if not math.isnan(v)]
            entry[f] = float(np.mean(vals)) if vals else float("nan")
        out[g] = entry
    return out


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


# ----------------------------------------------------------------------------- over seeds


def _num(value: Any) -> float:
    """A JSON number back to float (null → NaN: mean_std skips it, and its n shows the hole)."""
    return float("nan") if value is None else float(value)


def _get(d: dict[str, Any], dotted: str) -> float:
    value: Any = d
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return _num(value)


def over_seeds(comparisons: Sequence[Comparison]) -> dict[str, dict[str, Any]]:
    """Per backbone: every task's retention numbers, group means and pooled calibration numbers as
    mean ± std over the comparisons (seeds) of that backbone. A task a seed lacks is averaged
    over the seeds that have it (its ``n`` says how many)."""
    by_backbone: dict[str, list[Comparison]] = {}
    for c in comparisons:
        by_backbone.setdefault(str(c.backbone) if c.backbone is not None else "unknown", []).append(c)
    out: dict[str, dict[str, Any]] = {}
    for backbone, cs in by_backbone.items():
        task_names = list(dict.fromkeys(k for c in cs for k in c.tasks))
        tasks = {}
        for k in task_names:
            have = [c.tasks[k] for c in cs if k in c.tasks]
            tasks[k] = {"group": have[0]["group"],
                        **{f: mean_std([_num(t[f]) for t in have]).to_dict() for f in SEED_FIELDS}}
        groups = {}
        for g in GROUPS:
            have = [c.groups[g] for c in cs if g in c.groups]
            if have:
                groups[g] = {f: mean_std([_num(e[f]) for e in have]).to_dict() for f in SEED_FIELDS}
        calibration = []
        for single in SINGLES:
            for pool in POOLS:
                have = [e for c in cs for e in c.calibration if e["single"] == single and e["group"] == pool]
                if have:
                    calibration.append({"single": single, "group": pool,
                                        **{f: mean_std([_get(e, f) for e in have]).to_dict()
                                           for f in CALIBRATION_SEED_FIELDS}})
        out[backbone] = {"seeds": [c.seed for c in cs], "tasks": tasks, "groups": groups, "calibration": calibration}
    return out


def compare(triples: Sequence[RunTriple], options: CompareOptions = CompareOptions()) -> CompareResult:
    """Compare every triple, then summarise over seeds per backbone."""
    if not triples:
        raise RmtensionError("nothing to compare: give eval folders of a mixed, a helpful and a harmless RM")
    comparisons = [compare_triple(t, options) for t in triples]
    return CompareResult(options, comparisons, jsonable(over_seeds(comparisons)))
