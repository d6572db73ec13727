"""The report's tables, as pure functions from reduced data (:mod:`.aggregate`) to :class:`Table`.

Why pure: a table is fully determined by the summary, so it can be tested without files, and the
same object feeds the Markdown, the HTML and the CSV. Accuracies, retentions and shares are
fractions in the cells (shown as percentages); deltas are differences of fractions (shown as
percentage points); margins are raw reward units.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rmtension.analysis.findings import Finding
from rmtension.report.aggregate import (AblationGrid, AblationKey, AccuracyBlock, CalibrationRow, CurvePanel,
                                        LengthRow, NeuronLayout, OverlapRow, RetentionRow)
from rmtension.report.load import Entry
from rmtension.report.model import Column, Table
from rmtension.report.stats import CHANCE_MARK, Stat, fmt_k, stat, with_ci
from rmtension.report.style import OBJECTIVES, THIRDS, ordered, seed_sort_key, slug


def runs_table(runs: Sequence[Entry]) -> Table:
    """One row per trained RM: how much data and how long it trained, and its held-out accuracy."""
    cols = [Column("Backbone"), Column("RM"), Column("Seed"), Column("Pairs used", "count"), Column("Steps", "count"),
            Column("Train loss", "num"), Column("Held-out accuracy (%)", "pct"), Column("Wall time (s)", "secs")]
    obj_rank = {o: i for i, o in enumerate(OBJECTIVES)}
    bbs = list(dict.fromkeys(str(r["backbone"]) for r in runs))
    ordered_runs = sorted(runs, key=lambda r: (bbs.index(str(r["backbone"])), obj_rank.get(str(r["objective"]), 9),
                                               str(r["objective"]), seed_sort_key(r["seed"])))
    rows: list[list[Any]] = []
    for r in ordered_runs:
        t: Mapping[str, Any] = r["train"] if isinstance(r.get("train"), Mapping) else {}
        rows.append([str(r["backbone"]), str(r["objective"]), str(r["seed"]), t.get("pairs_used"), t.get("steps"),
                     t.get("train_loss"), t.get("heldout_accuracy"), t.get("wall_time_s")])
    return Table("runs", "Trained reward models", cols, rows)


def accuracy_table(block: AccuracyBlock) -> Table:
    """Figure 2 / appendix tables: per task, each RM objective's accuracy, mean ± std over seeds."""
    cols = [Column("Task"), Column("Group"), Column("Items", "count")]
    cols += [Column(f"{o} RM (%)", "pct") for o in block.objectives]
    rows = [[r.task, r.group, r.n_items] + [r.by_objective[o] for o in block.objectives] for r in block.rows]
    seeds = ", ".join(f"{o} {n}" for o, n in block.seeds.items())
    return Table(f"accuracy_{slug(block.backbone)}_{slug(block.bench)}",
                 f"Accuracy on {block.bench} — {block.backbone}", cols, rows,
                 note=f"Mean ± std over seeds (seeds trained: {seeds}), then the 95% interval in brackets: "
                      "the two-way (items × seeds) bootstrap interval for several seeds, the eval's items "
                      f"bootstrap for one; no brackets where neither is recorded. {CHANCE_MARK}: the interval "
                      "includes 50% (chance; an accuracy indistinguishable from a coin flip at this n). Group "
                      "means are the benchmark's helpfulness- and harmlessness-oriented subset means, over the "
                      "subsets the study's grouping counts (a subset marked 'not in group mean' is left out).")


def length_table(rows: Sequence[LengthRow]) -> Table:
    """Length controls per RM type × task: what a length-only rule scores on the same items, the
    accuracy on length-matched pairs and how strongly the RM's margins follow length."""
    cols = [Column("Backbone"), Column("Benchmark"), Column("Task"), Column("Group"), Column("RM"),
            Column("Accuracy (%)", "pct"), Column("Longer wins (%)", "pct"), Column("Shorter wins (%)", "pct"),
            Column("Length-matched (%)", "pct"), Column("Matched pairs", "count"),
            Column("Length-adjusted (%)", "pct"), Column("Margin–length ρ", "num")]
    body = [[r.backbone, r.bench, r.task, r.group, r.objective, r.accuracy, _mean_only(r.longer),
             _mean_only(r.shorter), r.matched, _mean_only(r.matched_n), r.adjusted, r.spearman] for r in rows]
    return Table("length_controls", "Length controls: accuracy beside what response length alone explains", cols,
                 body, note="Longer / shorter wins: the subset's own metric applied to response length (ties ½), "
                 "i.e. an RM that scores by length only; an accuracy near one of them may be length. Length-matched: "
                 "accuracy on the chosen × rejected pairs whose lengths differ by ≤ 10% of the longer (pairs counted "
                 "in 'Matched pairs'; per seed, mean over seeds; with its two-way interval where the summary has "
                 "pooled intervals). Length-adjusted: a logistic fit of per-item correctness on the relative length "
                 "difference over every pair, read at equal length (pairwise benchmarks; two-way interval). ρ: Spearman correlation of the reward margin with the length difference "
                 "(> 0: the RM prefers the longer response), mean over seeds. Group rows average their subsets. "
                 f"{CHANCE_MARK}: interval includes 50%.")


def _mean_only(s: Stat) -> float:
    """A number that is the same for every seed (a property of the items): shown without ± or n."""
    return s.mean


def findings_table(found: Sequence[Finding]) -> Table:
    """Every comparison behind the findings: estimate, interval, n and its own verdict."""
    cols = [Column("Finding"), Column("Comparison"), Column("Estimate"), Column("95% interval"), Column("n", "count"),
            Column("Verdict"), Column("Why")]
    body = []
    for f in found:
        for e in f.evidence:
            body.append([f"({f.key})", e.label, _fmt_evidence(e.estimate, e.kind),
                         "—" if e.low is None or e.high is None else
                         f"[{_fmt_evidence(e.low, e.kind)}, {_fmt_evidence(e.high, e.kind)}]",
                         e.n, e.verdict, e.note])
    return Table("findings_evidence", "The comparisons behind each finding", cols, body,
                 note="(a), (b): paired RM − RM differences of a benchmark's group mean in percentage points "
                      "(two-way items × seeds bootstrap), checked at equal length (length-adjusted difference, not contradicted by length-matched pairs); (c), (d): ablated set − "
                      "size-matched random set, change in accuracy in percentage points (paired; Holm within each "
                      "ablation table); (e): share of the selected neurons in the late third of the layers, mean "
                      "over seeds with a t interval, n = seeds. Rules: rmtension.analysis.findings.")


def _fmt_evidence(x: float | None, kind: str) -> str:
    if x is None:
        return "—"
    return (f"{100 * x:.1f}%" if kind == "share" else f"{100 * x:+.1f} pp").replace("-", "−")


RETENTION_UNIT_NOTES = {
    "paper": "Sets count the paper's units (its code: RM-Bench items as their three same-style pairs, every other "
             "item as one unit right iff min(chosen) > max(rejected)), so an RM-Bench task has 3 units per item.",
    "item": "Sets count whole items right under the benchmark's own metric (an RM-Bench item needs all nine cells "
            "of its 3×3 matrix) — not the paper's units.",
}


def retention_table(backbone: str, rows: Sequence[RetentionRow], units: Sequence[str | None] = ("paper",)) -> Table:
    """Table 1 (and the paper's appendix pairwise tables): what the mixed RM keeps of the single RMs' correct sets."""
    cols = [Column("Task"), Column("Group"), Column("Items", "count"), Column("Retention (%)", "pct"),
            Column("Jaccard M–H (%)", "pct"), Column("Jaccard M–A (%)", "pct"),
            Column("Kept of H (%)", "pct"), Column("Kept of A (%)", "pct"), Column("|C_H ∪ C_A|", "count")]
    body = [[r.task, r.group, r.n_items, r.retention, r.jaccard_helpful, r.jaccard_harmless, r.kept_helpful,
             r.kept_harmless, r.n_union] for r in rows]
    unit_notes = [RETENTION_UNIT_NOTES.get(u, f"Sets count units {u!r}.") if u is not None else
                  "Some seeds do not record their unit (an older compare step; re-run the study)." for u in units]
    if len(units) > 1:
        unit_notes.insert(0, "Seeds were compared with different units; do not read their means as one number.")
    return Table(f"retention_{slug(backbone)}", f"Behavioural retention — {backbone}", cols, body,
                 note="Retention = |C_M ∩ (C_H ∪ C_A)| / |C_H ∪ C_A| (the paper's). Jaccard M–X = |C_M ∩ C_X| / "
                      "|C_M ∪ C_X|, the paper's pairwise retention (appendix). Kept of X = |C_M ∩ C_X| / |C_X| "
                      "(ours: the share of the X RM's correct set the mixed RM also gets right). "
                      + " ".join(unit_notes) + " |C_H ∪ C_A| counts units. "
                      "Group rows average the task retentions of each seed, then over seeds.")


def calibration_table(rows: Sequence[CalibrationRow]) -> Table:
    """Figure 3's numbers: margins of the single and the mixed RM on items both get right."""
    cols = [Column("Backbone"), Column("Single RM"), Column("Items"), Column("Both right", "count"),
            Column("Single mean margin", "num"), Column("Single median", "num"),
            Column("Mixed mean margin", "num"), Column("Mixed median", "num"),
            Column("Mixed margin smaller (%)", "pct")]
    body = [[r.backbone, r.single, r.group, r.n, r.single_mean, r.single_median, r.mixed_mean, r.mixed_median,
             r.share_mixed_smaller] for r in rows]
    return Table("margins", "Reward margins where the single and the mixed RM are both right", cols, body,
                 note="Margin = chosen score − rejected score (min chosen − max rejected for several responses); "
                      "'Mixed margin smaller' = share of those items where the mixed RM's margin is below the single RM's.")


def neuron_thirds_table(layouts: Sequence[NeuronLayout]) -> Table:
    """Figure 4's summary: how many oriented neurons sit in the early, middle and late third of the layers."""
    cols = [Column("Backbone"), Column("Method"), Column("Site"), Column("k (%)"), Column("Sets"), Column("RM"),
            Column("Selected", "count"), Column("Of", "count")]
    cols += [Column(t.capitalize(), "count") for t in THIRDS]
    body = []
    for lay in layouts:
        for o in lay.selected:
            body.append([lay.backbone, lay.method, lay.site, fmt_k(lay.k), lay.sets, o, lay.selected[o], lay.total]
                        + [lay.thirds[o][t] for t in THIRDS])
    return Table("neuron_thirds", "Where the oriented neurons sit (thirds of the layers)", cols, body,
                 note="Counts of selected neurons (top k% of the score over all layers × neurons). 'per seed': one "
                      "set per seed, mean ± std over seeds; 'seed-mean scores (paper)': one set per RM type from the "
                      "scores averaged over seeds and clipped at 0, as the paper's notebook does. Layer ℓ of L is "
                      "early if ℓ < L/3, middle if ℓ < 2L/3, else late (the paper's rule).")


def neuron_layers_table(layouts: Sequence[NeuronLayout]) -> Table:
    """Every layer's count of oriented neurons (the data behind Figure 4), for the CSV."""
    cols = [Column("Backbone"), Column("Method"), Column("Site"), Column("k (%)"), Column("Sets"), Column("RM"),
            Column("Layer"), Column("Selected", "count")]
    body = [[lay.backbone, lay.method, lay.site, fmt_k(lay.k), lay.sets, o, str(i), s]
            for lay in layouts for o, per in lay.per_layer.items() for i, s in enumerate(per)]
    return Table("neuron_layers", "Oriented neurons per layer", cols, body, inline=False)


def overlap_table(rows: Sequence[OverlapRow]) -> Table:
    """Overlap of helpful and harmless neurons, and how much of them the mixed RM keeps."""
    cols = [Column("Backbone"), Column("Method"), Column("k (%)"), Column("Sets"), Column("Helpful", "count"),
            Column("Harmless", "count"), Column("Shared", "count"), Column("Helpful only", "count"),
            Column("Harmless only", "count"), Column("Jaccard", "num"), Column("Overlap share (%)", "pct"),
            Column("Mixed RM retention (%)", "pct"), Column("Mixed keeps of H ∪ A (%)", "pct")]
    body = [[r.backbone, r.method, fmt_k(r.k), r.sets, r.helpful, r.harmless, r.shared, r.helpful_only,
             r.harmless_only, r.jaccard, r.overlap_share, r.mixed_retention, r.mixed_retention_of_single]
            for r in rows]
    return Table("overlap", "Helpful vs harmless neurons and the mixed RM's retention of them", cols, body,
                 note="Mixed RM retention = |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A ∪ N_M| (the paper's); mixed keeps of "
                      "H ∪ A = |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A|. 'per seed': the sets of each seed, mean ± std over "
                      "seeds; 'seed-mean scores (paper)': one set per RM type from the scores averaged over seeds "
                      "and clipped at 0, as the paper's notebook does.")


def rmsd_table(entries: Sequence[Entry], seed_mean: Sequence[Entry]) -> Table:
    """Chosen-vs-rejected RMSD of each RM: the paper's (dataset means) and ours (per pair)."""
    cols = [Column("Backbone"), Column("RM"), Column("Seeds", "count"), Column("RMSD of dataset means", "num"),
            Column("RMSD of dataset means, seed-mean (paper)", "num"), Column("Per-pair RMSD", "num")]
    rows: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        if isinstance(e.get("rmsd"), Mapping):
            rows.setdefault((str(e["backbone"]), str(e["objective"])), [])
            if all(x.get("seed") != e.get("seed") for x in rows[(str(e["backbone"]), str(e["objective"]))]):
                rows[(str(e["backbone"]), str(e["objective"]))].append(e)
    pooled = {(str(e["backbone"]), str(e["objective"])): e.get("rmsd_dataset_means") for e in seed_mean}
    body = [[bb, o, len(es), stat(e["rmsd"].get("dataset_means") for e in es), pooled.get((bb, o)),
             stat(e["rmsd"].get("per_pair") for e in es)] for (bb, o), es in rows.items()]
    return Table("neuron_rmsd", "Chosen vs rejected activations: RMSD", cols, body,
                 note="RMSD of dataset means (the paper's): the chosen and the rejected texts' mean activation "
                      "(layers × neurons), root mean square of the difference over the layers for each neuron, "
                      "then the mean over neurons; per seed (mean ± std) and with the means first averaged over "
                      "seeds (the paper). Per-pair RMSD: each pair's chosen-vs-rejected RMSD over all layers × "
                      "neurons, mean over pairs.")



# --------------------------------------------------------------------------- ablation tables

def _ablation_base(grid: AblationGrid) -> tuple[list[Column], list[list[Any]]]:
    return [Column("Benchmark"), Column("Task"), Column("Group")], [[b, t, g] for b, t, g in grid.tasks]


def _grid_suffix(grid: AblationGrid) -> str:
    return f"{slug(grid.backbone)}_{slug(grid.method)}_k{slug(fmt_k(grid.k))}"


def _sizes_note(grid: AblationGrid, keys: Sequence[AblationKey]) -> str:
    parts = []
    for key in keys:
        s = grid.size[key]
        if not s.missing:
            parts.append(f"{key.label()}: {s.mean:.0f}")
    return ("Neurons ablated (mean over seeds): " + "; ".join(parts) + ".") if parts else ""


def _with_baselines(grid: AblationGrid, keys: Sequence[AblationKey], title: str, name: str, lead: str,
                    extra: dict[AblationKey, AblationKey] | None = None) -> Table:
    cols, rows = _ablation_base(grid)
    rms = ordered((k.rm_objective for k in keys), OBJECTIVES)
    for rm in rms:
        first = next(k for k in keys if k.rm_objective == rm)
        cols.append(Column(f"{rm} RM baseline (%)", "pct"))
        for row, (b, t, _) in zip(rows, grid.tasks):
            row.append(grid.effects[first][(b, t)].baseline)
    for key in keys:
        cols.append(Column(f"Δ {key.label()} (pp)", "delta"))
        for row, (b, t, _) in zip(rows, grid.tasks):
            row.append(grid.effects[key][(b, t)].delta)
        if extra and key in extra:
            other = extra[key]
            cols.append(Column(f"Δ {other.label()} (pp)", "delta"))
            for row, (b, t, _) in zip(rows, grid.tasks):
                row.append(grid.effects[other][(b, t)].delta)
    note = f"{lead} Δ = ablated − baseline in percentage points, mean ± std over seeds. " + _sizes_note(grid, keys)
    return Table(f"{name}_{_grid_suffix(grid)}",
                 f"{title} — {grid.backbone}, {grid.method} scores, k = {fmt_k(grid.k)}%", cols, rows, note=note.strip())


def ablation_tables(grid: AblationGrid) -> dict[str, Table | None]:
    """Tables 2–4 for one backbone × method × k: own neurons, the mixed RM's neuron subsets, random sets.

    A table whose sets were not ablated in this study is ``None``.
    """
    own = [k for k in grid.keys if k.set == "own"]
    subsets = [k for k in grid.keys if k.set not in ("own", "random")]
    rand = [k for k in grid.keys if k.set == "random"]
    matched: dict[AblationKey, AblationKey] = {}
    for r in rand:
        for k in grid.keys:
            if k.set != "random" and r.random_of and k.set == r.random_of and k.rm_objective == r.rm_objective:
                matched[r] = k
    return {
        "own": _with_baselines(grid, own, "Table 2: ablating each RM's own oriented neurons", "ablation_own",
                               "Each RM with its own top-k neurons zeroed.") if own else None,
        "subsets": _with_baselines(grid, subsets, "Table 3: ablating shared, helpful-only and harmless-only neurons",
                                   "ablation_sets", "Shared = helpful ∩ harmless neurons; "
                                   "helpful-only / harmless-only = the rest of each set.") if subsets else None,
        "random": _with_baselines(grid, rand, "Table 4: size-matched random neurons", "ablation_random",
                                  "Random sets of the same size as the named set, beside that set's own effect.",
                                  extra=matched) if rand else None,
    }


def curves_table(panels: Sequence[CurvePanel]) -> Table:
    """Every point of Figure 5 (long; CSV only)."""
    cols = [Column("Backbone"), Column("RM"), Column("Benchmark"), Column("Group"), Column("Method"), Column("k (%)"),
            Column("Score (%)", "pct")]
    body: list[list[Any]] = []
    for p in panels:
        for c in p.curves:
            for k, s in zip(c.ks, c.scores):
                body.append([p.backbone, p.rm_objective, p.bench, p.group, c.method, fmt_k(k), s])
    return Table("ablation_curves", "Ablation curves over k", cols, body, inline=False)


# --------------------------------------------------------------------------- controls (issue 11)

def ablation_stats_table(entries: Sequence[Entry]) -> Table:
    """Own / shared / one-sided sets vs their size-matched random sets, paired, Holm-corrected per table."""
    cols = [Column("Backbone"), Column("RM"), Column("Set"), Column("Method"), Column("k (%)"), Column("Task"),
            Column("Group"), Column("Items", "count"), Column("Seeds"), Column("Δ set (pp)", "delta"),
            Column("Δ random (pp)", "delta"), Column("Set − random (pp)", "delta"), Column("95% interval"),
            Column("p", "num"), Column("p (Holm)", "num"), Column("Survives")]
    body = []
    for e in entries:
        ci = e.get("ci95") if isinstance(e.get("ci95"), Mapping) else {}
        lo, hi = ci.get("low"), ci.get("high")
        interval = "—" if lo is None or hi is None else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]".replace("-", "−")
        seeds = e.get("seeds")
        body.append([e.get("backbone"), e.get("rm_objective"), e.get("set"), e.get("method"), fmt_k(e.get("k")),
                     e.get("task"), e.get("group"), e.get("n_items"),
                     ", ".join(map(str, seeds)) if isinstance(seeds, list) else "—", e.get("set_delta"),
                     e.get("random_delta"), e.get("diff"), interval, e.get("p"), e.get("p_holm"),
                     "yes" if e.get("survives") else "no"])
    tests = sorted({str(e.get("test")) for e in entries if e.get("test")})
    return Table("ablation_stats", "Ablated set vs size-matched random set, paired over items, all seeds", cols, body,
                 note="Δ = ablated − unablated accuracy, mean over seeds; set − random < 0: the set hurts more than "
                      "random neurons of the same size. Interval: paired bootstrap over items within seeds. "
                      "Holm's correction runs over the tasks of one backbone × RM × set; 'Survives': p (Holm) < 0.05. "
                      + (f"Test: {'; '.join(tests)}." if tests else ""))


def backbone_overlap_table(entries: Sequence[Entry]) -> Table | None:
    """Each RM's neuron set vs the untrained backbone's (overlap[].backbone_baseline); None when absent."""
    cells: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for e in entries:
        base = e.get("backbone_baseline")
        if not isinstance(base, Mapping):
            continue
        for o, v in base.items():
            if isinstance(v, Mapping):
                cells.setdefault((str(e["backbone"]), str(e["method"]), fmt_k(e.get("k")), str(o)), []).append(v)
    if not cells:
        return None
    cols = [Column("Backbone"), Column("Method"), Column("k (%)"), Column("RM"), Column("RM set", "count"),
            Column("Backbone set", "count"), Column("Shared", "count"), Column("Jaccard with backbone", "num")]
    rank = {o: i for i, o in enumerate(OBJECTIVES)}
    body = [[bb, m, k, o, stat(v.get("a") for v in vs), stat(v.get("b") for v in vs), stat(v.get("shared") for v in vs),
             stat(v.get("jaccard") for v in vs)]
            for (bb, m, k, o), vs in sorted(cells.items(), key=lambda kv: (kv[0][:3], rank.get(kv[0][3], 9)))]
    return Table("overlap_backbone", "Each RM's neurons vs the untrained backbone's (backbone baseline)", cols, body,
                 note="The backbone baseline scores the untrained backbone (fresh head) like an RM on the same pairs. "
                      "A Jaccard near the helpful–harmless Jaccard means the selection mostly reflects the backbone, "
                      "not the objective. Mean ± std over seeds.")


def neuron_length_table(entries: Sequence[Entry]) -> Table:
    """How strongly each selected set's mean activation per text tracks the text's length."""
    cols = [Column("Backbone"), Column("RM"), Column("Method"), Column("Site"), Column("k (%)"), Column("Seeds", "count"),
            Column("Texts", "count"), Column("Spearman ρ", "num")]
    keys = list(dict.fromkeys((str(e["backbone"]), str(e["objective"]), str(e.get("method")), str(e.get("site")),
                               fmt_k(e.get("k"))) for e in entries))
    body = []
    for key in keys:
        es = [e for e in entries if (str(e["backbone"]), str(e["objective"]), str(e.get("method")), str(e.get("site")),
                                     fmt_k(e.get("k"))) == key]
        rhos = [e.get("spearman") if isinstance(e.get("spearman"), Mapping) else {} for e in es]
        rho = stat(r.get("value") for r in rhos)
        if len(rhos) == 1:
            rho = with_ci(rho, rhos[0].get("ci95"))
        body.append([*key, len(es), stat(e.get("n_texts") for e in es), rho])
    return Table("neuron_length", "Does a neuron set's mean activation track text length?", cols, body,
                 note="Spearman ρ over texts of the set's mean activation per text with the text's length; mean ± std "
                      "over seeds (one seed: its bootstrap interval). |ρ| near 1: the set may be a length detector.")
