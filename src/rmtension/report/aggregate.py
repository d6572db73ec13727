"""Pure reductions of summary entries over seeds, shared by the tables and the figures.

Why separate: a table and its figure must show the same means, so both are drawn from the one
reduction here. Every function takes plain lists of summary entries (dicts as in
docs/STUDY_FORMAT.md) and returns plain data; nothing here reads files or draws.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rmtension.analysis.compare import group_means
from rmtension.report.load import Entry
from rmtension.report.stats import Stat, as_float, present, stat, with_ci
from rmtension.report.style import GROUPS, OBJECTIVES, ABLATION_SETS, METHODS, THIRDS, ordered, seed_sort_key


def backbones_of(*lists: Sequence[Entry]) -> list[str]:
    """Backbones in order of first appearance across the given lists."""
    return list(dict.fromkeys(str(e["backbone"]) for lst in lists for e in lst))


def seeds_of(entries: Iterable[Entry]) -> list[Any]:
    return sorted({e["seed"] for e in entries}, key=seed_sort_key)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --------------------------------------------------------------------------- accuracy (Figure 2)

@dataclass
class AccRow:
    """One task row of the accuracy table: per RM objective, mean ± std of its score over seeds."""

    task: str
    kind: str              # "subset", "group" (helpful/harmless group mean) or "aggregate" (benchmark's own)
    group: str | None
    n_items: int | None
    by_objective: dict[str, Stat]   # a StatCI where a 95% interval is known (see accuracy_blocks)
    longer: Stat = field(default_factory=lambda: stat([]))   # length-only baselines (results.json
    shorter: Stat = field(default_factory=lambda: stat([]))  # length_baseline), mean over runs
    key: str = ""          # "<bench>/<subset>" or "<bench>/<group> (group mean)": the key of pooled entries
    source: str = ""       # the subset's name, or the aggregate's path ("sections/Chat") in results.json
    chance: float = 0.5    # NaN where some subset behind the row is best-of-N (chance 1/N, not 50%)


@dataclass
class AccuracyBlock:
    backbone: str
    bench: str
    objectives: list[str]
    seeds: dict[str, int]  # objective → seeds trained
    rows: list[AccRow]


_AGG_SKIP = {"items", "n"}
# Metrics whose chance level is 50% (a coin flip per pair or per RM-Bench cell); best-of-N and the
# strict rule have 1/N or less, and Ties a composite, so their accuracies get no chance mark.
METRIC_PAIRWISE = "pairwise"
HALF_CHANCE_METRICS = ("pairwise", "rm-bench")
EXCLUDED_MARK = "(not in group mean)"


def study_grouping(study: Mapping[str, Any]) -> str | None:
    """The grouping the study's group means were computed under (``evaluation.grouping`` of its
    config), or None for a study whose config does not record one (made before the option existed,
    when every subset entered the group means)."""
    g = _dict(_dict(_dict(study).get("config")).get("evaluation")).get("grouping")
    return str(g) if g is not None else None


def _aggregate_leaves(agg: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Score-like leaves of a benchmark's ``aggregate`` (overall, sections/…), not counts or deep detail."""
    out: dict[str, Any] = {}
    for k, v in agg.items():
        if k in _AGG_SKIP:
            continue
        if isinstance(v, Mapping):
            if depth < 1:
                out.update(_aggregate_leaves(v, f"{prefix}{k}/", depth + 1))
        elif v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            out[prefix + k] = v
    return out


def accuracy_blocks(runs: Sequence[Entry], pooled: Sequence[Entry] = ()) -> list[AccuracyBlock]:
    """Per backbone × benchmark: every subset, the two group means and the benchmark's aggregates.

    Each accuracy carries its 95% interval where one is known: the summary's ``pooled`` entry (two-way
    items × seeds bootstrap) when there is one, else — for an RM type trained with one seed — that
    run's own eval interval (subset ``ci95``, ``groups_ci95``, ``aggregate_ci95``). Several seeds and
    no pooled entry (an older summary): no interval.
    """
    blocks: list[AccuracyBlock] = []
    for bb in backbones_of(runs):
        bb_runs = [r for r in runs if str(r["backbone"]) == bb]
        objectives = ordered((str(r["objective"]) for r in bb_runs), OBJECTIVES)
        seeds = {o: len({r["seed"] for r in bb_runs if str(r["objective"]) == o}) for o in objectives}
        benches = list(dict.fromkeys(b for r in bb_runs for b in _dict(r.get("eval"))))
        intervals = {(str(e.get("objective")), str(e.get("task"))): e.get("ci95") for e in pooled
                     if str(e.get("backbone")) == bb}
        for bench in benches:
            evals = [(str(r["objective"]), _dict(_dict(r.get("eval")).get(bench))) for r in bb_runs]
            evals = [(o, ev) for o, ev in evals if ev]
            rows = _accuracy_rows(evals, objectives, bench)
            for row in rows:
                for o in objectives:
                    ci = intervals.get((o, row.key)) if row.key else None
                    mine = [ev for oo, ev in evals if oo == o]
                    if ci is None and len(mine) == 1:
                        ci = _eval_interval(mine[0], row)
                    row.by_objective[o] = with_ci(row.by_objective[o], ci, row.chance)
            blocks.append(AccuracyBlock(bb, bench, objectives, seeds, rows))
    return blocks


def _eval_interval(ev: Mapping[str, Any], row: "AccRow") -> Any:
    """One run's own 95% interval of a row (None where results.json has none)."""
    if row.kind == "subset":
        return _dict(_dict(ev.get("subsets")).get(row.source)).get("ci95")
    if row.kind == "group":
        return _dict(ev.get("groups_ci95")).get(str(row.group))
    node: Any = ev.get("aggregate_ci95")
    for part in row.source.split("/"):
        node = _dict(node).get(part)
    return node


def _accuracy_rows(evals: list[tuple[str, Mapping[str, Any]]], objectives: list[str], bench: str) -> list[AccRow]:
    subsets: dict[str, dict[str, Any]] = {}
    for _, ev in evals:
        for name, sub in _dict(ev.get("subsets")).items():
            info = subsets.setdefault(name, {"group": None, "n": None, "excluded": False})
            sub = _dict(sub)
            info["group"] = info["group"] or sub.get("group")
            info["half"] = info.get("half", True) and sub.get("metric", METRIC_PAIRWISE) in HALF_CHANCE_METRICS
            # left out of the group means by the study's grouping (results.json ``in_group_mean``)
            info["excluded"] = info["excluded"] or sub.get("in_group_mean") is False
            if isinstance(sub.get("n"), int):
                info["n"] = max(info["n"] or 0, sub["n"])
    group_rank = {g: i for i, g in enumerate(GROUPS)}
    names = sorted(subsets, key=lambda s: group_rank.get(str(subsets[s]["group"]), len(GROUPS)))

    def by_obj(get) -> dict[str, Stat]:
        return {o: stat(get(ev) for oo, ev in evals if oo == o) for o in objectives}

    def baseline(get) -> tuple[Stat, Stat]:
        """The length-only baselines of a row (the same items for every RM): mean over all runs."""
        lbs = [_dict(get(ev)) for _, ev in evals]
        return stat(lb.get("longer") for lb in lbs), stat(lb.get("shorter") for lb in lbs)

    rows = [AccRow(f"{s} {EXCLUDED_MARK}" if subsets[s]["excluded"] else s, "subset", subsets[s]["group"],
                   subsets[s]["n"], by_obj(lambda ev, s=s: _dict(_dict(ev.get("subsets")).get(s)).get("score")),
                   *baseline(lambda ev, s=s: _dict(_dict(ev.get("subsets")).get(s)).get("length_baseline")),
                   key=f"{bench}/{s}", source=s, chance=0.5 if subsets[s]["half"] else math.nan)
            for s in names]

    def group_chance(g: str) -> float:
        members = [v for v in subsets.values() if v["group"] == g and not v["excluded"]]
        return 0.5 if all(v["half"] for v in members) else math.nan
    for g in GROUPS:
        if any(g in _dict(ev.get("groups")) for _, ev in evals):
            rows.append(AccRow(f"{g} tasks (group mean)", "group", g, None,
                               by_obj(lambda ev, g=g: _dict(ev.get("groups")).get(g)),
                               *baseline(lambda ev, g=g: _dict(_dict(ev.get("groups_length")).get(g)).get("length_baseline")),
                               key=f"{bench}/{g} (group mean)", source=g, chance=group_chance(g)))
    leaves = [_aggregate_leaves(_dict(ev.get("aggregate"))) for _, ev in evals]
    keys = list(dict.fromkeys(k for lv in leaves for k in lv))
    for key in keys:
        vals = [lv.get(key) for lv in leaves]
        if all(v is None or 0.0 <= as_float(v) <= 1.0 for v in vals):  # scores only, never counts
            rows.append(AccRow(f"{key} (benchmark aggregate)", "aggregate", None, None,
                               by_obj(lambda ev, key=key: _aggregate_leaves(_dict(ev.get("aggregate"))).get(key)),
                               source=key,
                               chance=0.5 if all(v["half"] for v in subsets.values()) else math.nan))
    return rows


# --------------------------------------------------------------------------- length controls


@dataclass
class LengthRow:
    """One RM type × task of the length-controls table (results.json "Length controls", over seeds)."""

    backbone: str
    bench: str
    task: str
    group: str | None
    objective: str
    accuracy: Stat
    longer: Stat
    shorter: Stat
    matched: Stat          # length-matched accuracy: the pooled interval's estimate where there is one
    matched_n: Stat        # length-matched pairs (cells)
    spearman: Stat         # margin–length Spearman, mean over seeds (with its interval for one seed)
    adjusted: Stat         # length-adjusted accuracy (logistic fit at equal length), the pooled estimate


def length_rows(runs: Sequence[Entry], pooled: Sequence[Entry] = ()) -> list[LengthRow]:
    """Per backbone × benchmark × subset/group × RM type: accuracy, the length-only baselines, the
    length-matched accuracy and the margin–length correlation. Empty when no run has length controls."""
    lm_pooled = {(str(e.get("backbone")), str(e.get("objective")), str(e.get("task"))): _dict(e.get("length_matched"))
                 for e in pooled}
    la_pooled = {(str(e.get("backbone")), str(e.get("objective")), str(e.get("task"))): _dict(e.get("length_adjusted"))
                 for e in pooled}
    out: list[LengthRow] = []
    for block in accuracy_blocks(runs, pooled):
        bb_runs = [r for r in runs if str(r["backbone"]) == block.backbone]
        for row in block.rows:
            if row.kind == "aggregate":
                continue
            for o in block.objectives:
                evs = [_dict(_dict(r.get("eval")).get(block.bench)) for r in bb_runs if str(r["objective"]) == o]
                if row.kind == "subset":
                    subs = [_dict(_dict(ev.get("subsets")).get(row.source)) for ev in evs]
                    lms = [_dict(sub.get("length_matched")) for sub in subs]
                    matched = stat(lm.get("score") for lm in lms)
                    matched_n = stat(lm.get("n") for lm in lms)
                    rhos = [_dict(sub.get("margin_length_spearman")) for sub in subs]
                    rho = stat(r.get("value") for r in rhos)
                    if len(rhos) == 1:
                        rho = with_ci(rho, rhos[0].get("ci95"))
                    if len(lms) == 1:
                        matched = with_ci(matched, lms[0].get("ci95"))
                else:
                    matched = stat(_dict(_dict(ev.get("groups_length")).get(str(row.group))).get("length_matched")
                                   for ev in evs)
                    matched_n, rho = stat([]), stat([])
                pooled_lm = lm_pooled.get((block.backbone, o, row.key), {})
                if pooled_lm and present(pooled_lm.get("mean")):
                    matched = with_ci(Stat(float(pooled_lm["mean"]), matched.std, matched.n or 1), pooled_lm.get("ci95"))
                    if present(pooled_lm.get("n_cells")):
                        matched_n = Stat(float(pooled_lm["n_cells"]), math.nan, 1)
                if row.longer.missing and matched.missing and rho.missing:
                    continue
                la = la_pooled.get((block.backbone, o, row.key), {})
                adjusted = (with_ci(Stat(float(la["mean"]), math.nan, 1), la.get("ci95")) if present(la.get("mean"))
                            else stat([]))
                out.append(LengthRow(block.backbone, block.bench, row.task, row.group, o, row.by_objective[o],
                                     row.longer, row.shorter, matched, matched_n, rho, adjusted))
    return out


# --------------------------------------------------------------------------- retention (Table 1)

RETENTION_FIELDS = ("retention", "jaccard_helpful", "jaccard_harmless", "kept_helpful", "kept_harmless")


@dataclass
class RetentionRow:
    """One task (or group mean) of the retention table; definitions in :mod:`rmtension.analysis.retention`.

    ``jaccard_*`` is the paper's pairwise retention |C_M ∩ C_X| / |C_M ∪ C_X|; ``kept_*`` is ours,
    |C_M ∩ C_X| / |C_X|.
    """

    task: str
    group: str | None
    n_items: int | None
    retention: Stat
    jaccard_helpful: Stat
    jaccard_harmless: Stat
    kept_helpful: Stat
    kept_harmless: Stat
    n_union: Stat


def retention_units(entries: Sequence[Entry]) -> list[str | None]:
    """The distinct retention units of the summary's retention entries (None: not recorded)."""
    return list(dict.fromkeys(e.get("unit") if isinstance(e.get("unit"), str) else None for e in entries))


def retention_rows(entries: Sequence[Entry]) -> dict[str, list[RetentionRow]]:
    """Per backbone: every task's retention over seeds, then per-group means of the task retentions."""
    out: dict[str, list[RetentionRow]] = {}
    for bb in backbones_of(entries):
        es = [e for e in entries if str(e["backbone"]) == bb]
        tasks: dict[str, dict[str, Any]] = {}
        for e in es:
            for t, v in _dict(e.get("tasks")).items():
                info = tasks.setdefault(t, {"group": None, "n": None})
                info["group"] = info["group"] or _dict(v).get("group")
                n = _dict(v).get("n")
                if isinstance(n, int):
                    info["n"] = max(info["n"] or 0, n)
        rank = {g: i for i, g in enumerate(GROUPS)}
        names = sorted(tasks, key=lambda t: rank.get(str(tasks[t]["group"]), len(GROUPS)))

        def field_stat(t: str, key: str) -> Stat:
            return stat(_dict(_dict(e.get("tasks")).get(t)).get(key) for e in es)

        rows = [RetentionRow(t, tasks[t]["group"], tasks[t]["n"], *(field_stat(t, f) for f in RETENTION_FIELDS),
                             field_stat(t, "n_union"))
                for t in names]
        for g in GROUPS:  # the group means compare writes, per seed, then over seeds
            per_seed = [group_means(_dict(e.get("tasks"))).get(g) for e in es]
            if not any(per_seed):
                continue
            rows.append(RetentionRow(f"{g} tasks (mean)", g, None,
                                     *(stat((m or {}).get(f) for m in per_seed) for f in RETENTION_FIELDS),
                                     Stat(float("nan"), float("nan"), 0)))
        out[bb] = rows
    return out


# --------------------------------------------------------------------------- histograms

@dataclass
class Hist:
    """Counts of several series on shared bin edges, summed over the seeds that used these edges."""

    edges: list[float]
    counts: dict[str, list[float]]
    seeds: int = 1


def merge_hists(hists: Iterable[Any], series: Sequence[str]) -> list[Hist]:
    """Sum histograms (summary ``hist``/``score_hist`` objects) that share bin edges.

    Seeds normally share edges (the pipeline picks them per comparison), giving one :class:`Hist`;
    differing edges cannot be summed honestly, so each distinct set of edges becomes its own entry.
    ``bins`` may be the edges (one more than the counts) or the bin centres (as many as the counts).
    """
    merged: dict[tuple[float, ...], Hist] = {}
    for h in hists:
        h = _dict(h)
        bins = h.get("bins", h.get("edges"))
        if not isinstance(bins, list) or not bins:
            continue
        counts = {s: h.get(s) for s in series}
        if any(not isinstance(c, list) for c in counts.values()):
            continue
        n = len(next(iter(counts.values())))
        if any(len(c) != n for c in counts.values()) or n == 0:
            continue
        edges = [as_float(b) for b in bins]
        if len(edges) == n:  # centres → edges
            step = (edges[-1] - edges[0]) / (n - 1) if n > 1 else 1.0
            edges = [c - step / 2 for c in edges] + [edges[-1] + step / 2]
        elif len(edges) != n + 1:
            continue
        key = tuple(round(e, 12) for e in edges)
        if key in merged:
            m = merged[key]
            for s in series:
                m.counts[s] = [a + as_float(b) for a, b in zip(m.counts[s], counts[s])]
            m.seeds += 1
        else:
            merged[key] = Hist(edges, {s: [as_float(x) for x in counts[s]] for s in series})
    return list(merged.values())


# --------------------------------------------------------------------------- calibration (Figure 3)

@dataclass
class CalibrationRow:
    backbone: str
    single: str
    group: str
    n: Stat
    single_mean: Stat
    single_median: Stat
    mixed_mean: Stat
    mixed_median: Stat
    share_mixed_smaller: Stat
    hists: list[Hist] = field(default_factory=list)


def calibration_rows(entries: Sequence[Entry]) -> list[CalibrationRow]:
    """Per backbone × single RM × item group: the margin summaries over seeds and the summed histograms."""
    keys = list(dict.fromkeys((str(e["backbone"]), str(e["single"]), str(e["group"])) for e in entries))
    order = {g: i for i, g in enumerate(GROUPS + ("all",))}
    keys.sort(key=lambda k: (backbones_of(entries).index(k[0]), order.get(k[1], 9), k[1], order.get(k[2], 9), k[2]))
    rows = []
    for bb, single, group in keys:
        es = [e for e in entries if (str(e["backbone"]), str(e["single"]), str(e["group"])) == (bb, single, group)]
        rows.append(CalibrationRow(
            bb, single, group, stat(e.get("n") for e in es),
            stat(_dict(e.get("single_margin")).get("mean") for e in es),
            stat(_dict(e.get("single_margin")).get("median") for e in es),
            stat(_dict(e.get("mixed_margin")).get("mean") for e in es),
            stat(_dict(e.get("mixed_margin")).get("median") for e in es),
            stat(e.get("share_mixed_smaller") for e in es),
            merge_hists((e.get("hist") for e in es), ("single", "mixed"))))
    return rows


# --------------------------------------------------------------------------- neurons (Figure 4)
# Labels of the two kinds of neuron sets in the report: one set per seed (numbers then averaged over
# seeds) or one set per RM type from the seed-mean scores (the paper's notebook, cell 38).
PER_SEED = "per seed"
SEED_MEAN = "seed-mean scores (paper)"


@dataclass
class NeuronLayout:
    """Oriented neurons of each RM objective for one backbone × method × site × k, over seeds."""

    backbone: str
    method: str
    site: str
    k: float
    n_layers: int
    total: int | None                    # neurons at the site (the same for every RM of a backbone)
    selected: dict[str, Stat]
    per_layer: dict[str, list[Stat]]     # objective → one Stat per layer
    thirds: dict[str, dict[str, Stat]]   # objective → early/middle/late
    sets: str = PER_SEED                 # PER_SEED or SEED_MEAN: which sets the numbers describe



def neuron_layouts(entries: Sequence[Entry], sets: str = PER_SEED) -> list[NeuronLayout]:
    keys = list(dict.fromkeys((str(e["backbone"]), str(e["method"]), str(e.get("site", "")), as_float(e.get("k")))
                              for e in entries))
    out = []
    for bb, method, site, k in keys:
        es = [e for e in entries if (str(e["backbone"]), str(e["method"]), str(e.get("site", ""))) == (bb, method, site)
              and (as_float(e.get("k")) == k or (not present(k) and not present(e.get("k"))))]
        objectives = ordered((str(e["objective"]) for e in es), OBJECTIVES)
        n_layers = max([int(as_float(e.get("n_layers"))) for e in es if present(e.get("n_layers"))]
                       + [int(x) + 1 for e in es for x in _dict(e.get("per_layer")) if str(x).isdigit()] + [0])
        per_layer: dict[str, list[Stat]] = {}
        thirds: dict[str, dict[str, Stat]] = {}
        selected: dict[str, Stat] = {}
        for o in objectives:
            eo = [e for e in es if str(e["objective"]) == o]
            per_layer[o] = [stat(_dict(e.get("per_layer")).get(str(i), 0) for e in eo) for i in range(n_layers)]
            thirds[o] = {t: stat(_count(_dict(e.get("thirds")).get(t)) for e in eo) for t in THIRDS}
            selected[o] = stat(e.get("selected") for e in eo)
        totals = [int(as_float(e.get("total"))) for e in es if present(e.get("total"))]
        out.append(NeuronLayout(bb, method, site, k, n_layers, max(totals) if totals else None, selected,
                                per_layer, thirds, sets))
    out.sort(key=lambda n: (backbones_of(entries).index(n.backbone), _method_rank(n.method), n.site, n.k))
    return out


def _count(v: Any) -> Any:
    """A third's count: a plain number, or the ``count`` of a ``{"count", "share", "layers"}`` object."""
    return v.get("count") if isinstance(v, Mapping) else v


def _method_rank(m: str) -> tuple[int, str]:
    return (METHODS.index(m), "") if m in METHODS else (len(METHODS), m)


# --------------------------------------------------------------------------- overlap

@dataclass
class OverlapRow:
    backbone: str
    method: str
    k: float
    helpful: Stat
    harmless: Stat
    shared: Stat
    helpful_only: Stat
    harmless_only: Stat
    jaccard: Stat
    overlap_share: Stat
    mixed_retention: Stat                # the paper's |M ∩ (H ∪ A)| / |H ∪ A ∪ M|
    mixed_retention_of_single: Stat      # |M ∩ (H ∪ A)| / |H ∪ A|
    sets: str = PER_SEED


def _retentions(e: Entry) -> tuple[Any, Any]:
    """(the paper's neuron retention, the share of H ∪ A kept) of one overlap entry.

    Summaries written before both were reported hold only ``mixed_retention`` = |M ∩ (H ∪ A)| / |H ∪ A|;
    their detail has no ``all_union``. Such a value is shown as the share of H ∪ A, never as the paper's.
    """
    detail = e.get("mixed_retention_detail")
    if "mixed_retention_of_single" not in e and isinstance(detail, Mapping) and "all_union" not in detail:
        return None, e.get("mixed_retention")
    return e.get("mixed_retention"), e.get("mixed_retention_of_single")


def overlap_rows(entries: Sequence[Entry], sets: str = PER_SEED) -> list[OverlapRow]:
    keys = list(dict.fromkeys((str(e["backbone"]), str(e["method"]), as_float(e.get("k"))) for e in entries))
    rows = []
    for bb, method, k in keys:
        es = [e for e in entries if (str(e["backbone"]), str(e["method"])) == (bb, method)
              and (as_float(e.get("k")) == k or not present(k) and not present(e.get("k")))]

        def hh(key: str) -> Stat:
            return stat(_dict(e.get("helpful_harmless")).get(key) for e in es)

        rows.append(OverlapRow(bb, method, k, hh("a"), hh("b"), hh("shared"), hh("a_only"), hh("b_only"),
                               hh("jaccard"), hh("overlap_share"), stat(_retentions(e)[0] for e in es),
                               stat(_retentions(e)[1] for e in es), sets))
    rows.sort(key=lambda r: (backbones_of(entries).index(r.backbone), _method_rank(r.method), r.k))
    return rows


# --------------------------------------------------------------------------- ablation (Tables 2–4, Figure 7)

@dataclass(frozen=True)
class AblationKey:
    """One ablated neuron set in one RM: what was ablated, in which RM, and for random sets what it matches."""

    rm_objective: str
    set: str
    random_of: str | None

    def label(self) -> str:
        base = f"{self.set} in {self.rm_objective} RM"
        return f"{base} (size of {self.random_of})" if self.set == "random" and self.random_of else base


@dataclass
class AblationEffect:
    """Baseline, ablated score and delta of one task, over seeds."""

    baseline: Stat
    score: Stat
    delta: Stat


@dataclass
class AblationGrid:
    """All ablations of one backbone × method × k: per set, its size and per-task effects."""

    backbone: str
    method: str
    k: float
    keys: list[AblationKey]
    size: dict[AblationKey, Stat]
    tasks: list[tuple[str, str, str | None]]              # (bench, task, group); task "helpful tasks" etc. for groups
    effects: dict[AblationKey, dict[tuple[str, str], AblationEffect]]
    score_hists: dict[AblationKey, list[Hist]]


def _delta_of(entry: Mapping[str, Any]) -> Any:
    d = entry.get("delta")
    if present(d):
        return d
    s, b = entry.get("score"), entry.get("baseline")
    return as_float(s) - as_float(b) if present(s) and present(b) else None


def ablation_grids(entries: Sequence[Entry]) -> list[AblationGrid]:
    combos = list(dict.fromkeys((str(e["backbone"]), str(e["method"]), as_float(e.get("k"))) for e in entries))
    grids = []
    for bb, method, k in combos:
        es = [e for e in entries if (str(e["backbone"]), str(e["method"])) == (bb, method)
              and (as_float(e.get("k")) == k or not present(k) and not present(e.get("k")))]
        keyset = list(dict.fromkeys(AblationKey(str(e["rm_objective"]), str(e["set"]),
                                                None if e.get("random_of") is None else str(e["random_of"]))
                                    for e in es))
        set_rank = {s: i for i, s in enumerate(ABLATION_SETS)}
        obj_rank = {o: i for i, o in enumerate(OBJECTIVES)}
        keyset.sort(key=lambda a: (set_rank.get(a.set, 99), a.set, obj_rank.get(a.rm_objective, 99), a.rm_objective,
                                   set_rank.get(a.random_of or "", 99), a.random_of or ""))
        tasks: list[tuple[str, str, str | None]] = []
        for e in es:
            for bench, b in _dict(e.get("benchmarks")).items():
                for sub, v in _dict(_dict(b).get("subsets")).items():
                    t = (bench, sub, _dict(v).get("group"))
                    if (bench, sub) not in [(x[0], x[1]) for x in tasks]:
                        tasks.append(t)
        rank = {g: i for i, g in enumerate(GROUPS)}
        benches = list(dict.fromkeys(t[0] for t in tasks))
        tasks.sort(key=lambda t: (benches.index(t[0]), rank.get(str(t[2]), 9)))
        for bench in list(dict.fromkeys(bench for e in es for bench in _dict(e.get("benchmarks")))):
            if bench not in benches:
                benches.append(bench)
            for g in GROUPS:
                if any(g in _dict(_dict(_dict(e.get("benchmarks")).get(bench)).get("groups")) for e in es):
                    tasks.append((bench, f"{g} tasks (group mean)", g))
        tasks.sort(key=lambda t: benches.index(t[0]))  # stable: subsets first, then group rows, per benchmark

        def cell(e: Entry, bench: str, task: str, group: str | None) -> Mapping[str, Any]:
            b = _dict(_dict(e.get("benchmarks")).get(bench))
            if task.endswith("(group mean)"):
                return _dict(_dict(b.get("groups")).get(str(group)))
            return _dict(_dict(b.get("subsets")).get(task))

        effects: dict[AblationKey, dict[tuple[str, str], AblationEffect]] = {}
        size: dict[AblationKey, Stat] = {}
        hists: dict[AblationKey, list[Hist]] = {}
        for key in keyset:
            ek = [e for e in es if AblationKey(str(e["rm_objective"]), str(e["set"]),
                                               None if e.get("random_of") is None else str(e["random_of"])) == key]
            size[key] = stat(e.get("size") for e in ek)
            effects[key] = {(bench, task): AblationEffect(stat(cell(e, bench, task, g).get("baseline") for e in ek),
                                                          stat(cell(e, bench, task, g).get("score") for e in ek),
                                                          stat(_delta_of(cell(e, bench, task, g)) for e in ek))
                            for bench, task, g in tasks}
            hists[key] = merge_hists((e.get("score_hist") for e in ek), ("before", "after"))
        grids.append(AblationGrid(bb, method, k, keyset, size, tasks, effects, hists))
    return grids


# --------------------------------------------------------------------------- curves (Figure 5)

@dataclass
class Curve:
    method: str
    ks: list[float]
    scores: list[Stat]


@dataclass
class CurvePanel:
    """One panel of Figure 5: an RM, a benchmark and an item group; one curve per scoring method."""

    backbone: str
    rm_objective: str
    bench: str
    group: str
    curves: list[Curve]


def curve_panels(entries: Sequence[Entry]) -> list[CurvePanel]:
    keys = list(dict.fromkeys((str(e["backbone"]), str(e["rm_objective"]), str(e["bench"]), str(e.get("group", "all")))
                              for e in entries))
    obj_rank = {o: i for i, o in enumerate(OBJECTIVES)}
    grp_rank = {g: i for i, g in enumerate(GROUPS + ("all",))}
    bbs = backbones_of(entries)
    keys.sort(key=lambda t: (bbs.index(t[0]), obj_rank.get(t[1], 9), t[1], t[2], grp_rank.get(t[3], 9)))
    panels = []
    for key in keys:
        es = [e for e in entries
              if (str(e["backbone"]), str(e["rm_objective"]), str(e["bench"]), str(e.get("group", "all"))) == key]
        curves = []
        for m in sorted({str(e["method"]) for e in es}, key=_method_rank):
            by_k: dict[float, list[Any]] = defaultdict(list)
            for e in es:
                if str(e["method"]) != m:
                    continue
                for p in e.get("points") or []:
                    k = as_float(_dict(p).get("k"))
                    if present(k):
                        by_k[k].append(_dict(p).get("score"))
            ks = sorted(by_k)
            curves.append(Curve(m, ks, [stat(by_k[k]) for k in ks]))
        panels.append(CurvePanel(*key, curves))
    return panels
