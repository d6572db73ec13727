"""Assemble the report :class:`Document` from a parsed summary: one builder per section.

Why one builder per section: each section depends on one list of ``summary.json`` and must be
able to say "not run in this study" on its own when that list is empty, without the others
noticing. Builders create tables and (in-memory) figures; nothing here writes files.
"""

from __future__ import annotations

import json
import platform
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import numpy
import yaml  # type: ignore[import-untyped]

import rmtension
from rmtension.analysis.findings import equal_length_lines, findings
from rmtension.report import aggregate as agg
from rmtension.report import figures as figs
from rmtension.report import tables as tabs
from rmtension.report.load import Entry, Summary
from rmtension.report.model import Block, Bullets, Code, Document, FigureBlock, Heading, Paragraph, Section, TableBlock
from rmtension.report.stats import CHANCE_MARK, fmt_k
from rmtension.report.style import OBJECTIVES, ordered, seed_sort_key, slug
from rmtension.report.tradeoff import dial_section

NUMBERS_NOTE = ("Accuracies, retentions and shares are percentages with one decimal; Δ are percentage points; "
                "margins are raw reward units. Cells are mean ± sample std over seeds, accuracies followed by their 95% "
                "interval in brackets († where it includes 50%); a cell resting on fewer "
                "seeds than the rest of its table says (n=…); missing numbers are “—”.")


def _not_run(section_id: str, title: str, key: str) -> Section:
    return Section(section_id, title, [], not_run=f"Not run in this study (summary.json has no `{key}` entries).")


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.extend(_flatten(v, key + "."))
        elif isinstance(v, list):
            out.append((key, ", ".join(json.dumps(x) if isinstance(x, (dict, list)) else str(x) for x in v) or "[]"))
        else:
            out.append((key, "null" if v is None else str(v)))
    return out


def _yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML, the format users write it in (lists of plain values on one line)."""
    return yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False,
                          default_flow_style=None, allow_unicode=True, width=100).rstrip()


def _study_facts(s: Summary) -> tuple[list[str], list[str], list[Any], list[Entry]]:
    runs = s["runs"]
    backbones = list(dict.fromkeys(str(r["backbone"]) for r in runs))
    objectives = ordered((str(r["objective"]) for r in runs), OBJECTIVES)
    seeds = sorted({r["seed"] for r in runs}, key=seed_sort_key)
    return backbones, objectives, seeds, runs


VERDICT_NOTE = ("Each verdict is computed from this report's numbers by fixed rules (`rmtension.analysis.findings`), "
                "never written by hand: *supported* when the 95% interval excludes no-effect in the paper's direction "
                "(for (a)/(b) also at equal length: the length-adjusted difference on pairwise benchmarks, not contradicted by "
                "the length-matched pairs, else the length-matched pairs; for (c)/(d) after Holm's correction), *not supported* when "
                "it excludes it in the other direction, *inconclusive* otherwise or below 10 items per task; "
                "*inconclusive (length)*: the raw result does not hold on pairs of equal length; *inconclusive "
                "(backbone)*: the untrained backbone's neurons sit as late; *not run*: the study lacks the numbers.")


def findings_section(s: Summary) -> Section:
    """The report's opening: the paper's findings (a)–(e), each with its computed verdict and reason."""
    backbones, objectives, seeds, runs = _study_facts(s)
    found = findings(s.lists)
    lead = (f"Study {s.name}: {', '.join(objectives) or 'no'} RMs on {', '.join(backbones) or 'no backbone'}, "
            f"seeds {', '.join(map(str, seeds)) or '—'} ({len(runs)} trained RMs). The paper's findings, as this "
            "study's numbers judge them:")
    bullets = [f"**({f.key}) {f.claim[0].upper() + f.claim[1:]}: {f.verdict}.** {f.reason}" for f in found]
    blocks: list[Block] = [Paragraph(lead), Bullets(bullets)]
    contrasts = s.lists.get("contrasts")
    plain = equal_length_lines(contrasts if isinstance(contrasts, list) else [])
    if plain:
        blocks += [Paragraph("**What pairs of equal length say about (a) at this size:**"), Bullets(plain)]
    blocks.append(Paragraph(VERDICT_NOTE))
    table = tabs.findings_table(found)
    if table.rows:
        blocks.append(TableBlock(table))
    # How to read every table below; what was done is in the Method section at the end (issue 13: findings
    # first, then the tables with n and intervals, then method and configuration).
    blocks.append(Paragraph(NUMBERS_NOTE + " How the numbers were made: Method, at the end."))
    return Section("findings", "Findings", blocks, label="Findings")


def method_section(s: Summary) -> Section:
    """A short account of what was done and how the numbers are to be read (details: docs/STUDY_FORMAT.md)."""
    _, _, seeds, _ = _study_facts(s)
    text = ("Reward models (a scalar head on the backbone, Bradley–Terry loss) were trained on helpful, harmless and "
            f"mixed preference data with {len(seeds)} seed(s) each and scored on the benchmarks below; a task's accuracy "
            "is the benchmark's own metric. Every accuracy comes with a 95% interval: with several seeds a two-way "
            "bootstrap that resamples items and seeds together (`rmtension.analysis.pooled`), with one seed the eval's "
            "bootstrap over items. Chance is 50% on pairwise tasks. Length controls put beside each accuracy what a "
            "length-only rule scores on the same items (longer wins, shorter wins), the accuracy on pairs whose two "
            "responses are about equally long, and how strongly the RM's margins follow length. Neurons are MLP units "
            "ranked by a score over the training pairs (top k%); ablation zeroes them in the trained RM and compares "
            "the accuracy change with that of a size-matched random set of neurons, paired over items, with Holm's "
            "correction over the tasks of a table.")
    return Section("method", "Method", [Paragraph(text)], label="Method")


def appendix_section(s: Summary) -> Section:
    """Appendix: study facts, software versions and the configuration, in short and in full."""
    study = s.study
    backbones, objectives, seeds, runs = _study_facts(s)
    facts = [f"Study: {s.name}",
             f"Created: {study.get('created') or '—'}",
             f"Backbones: {', '.join(backbones) or '—'}",
             f"RM objectives: {', '.join(objectives) or '—'}; seeds: {', '.join(map(str, seeds)) or '—'} "
             f"({len(runs)} trained RMs)",
             f"Made with rmtension {study.get('rmtension_version') or '—'}; report built with rmtension "
             f"{rmtension.__version__}, Python {platform.python_version()}, numpy {numpy.__version__}, "
             f"matplotlib {matplotlib.__version__}"]
    blocks: list[Block] = [Bullets(facts)]
    config = study.get("config")
    if isinstance(config, Mapping) and config:
        flat = _flatten(config)
        short = [f"`{k}`: {v if len(v) <= 90 else v[:87] + '…'}" for k, v in flat[:40]]
        if len(flat) > 40:
            short.append(f"… {len(flat) - 40} more settings in the full config below")
        blocks += [Heading("Configuration"), Bullets(short),
                   Code(_yaml(config), summary="Full resolved config", lang="yaml")]
    return Section("appendix", "Appendix: study and configuration", blocks, label="Appendix: study and configuration")


def runs_section(s: Summary) -> Section:
    if not s["runs"]:
        return _not_run("runs", "Trained reward models", "runs")
    return Section("runs", "Trained reward models", [TableBlock(tabs.runs_table(s["runs"]))])


def accuracy_section(s: Summary) -> Section:
    title = "Accuracy by RM type (Figure 2, appendix tables)"
    blocks_data = agg.accuracy_blocks(s["runs"], s["pooled"])
    if not blocks_data:
        return _not_run("accuracy", title, "runs[].eval")
    blocks: list[Block] = [Paragraph(
        "Each task's accuracy for the helpful, harmless and mixed RMs, mean over seeds with its 95% interval "
        f"(error bars; {CHANCE_MARK} in the tables: the interval includes chance), with the benchmark's "
        "helpfulness- and harmlessness-oriented group means. The dotted line is chance (50%); ▲ and ▼ mark what "
        "a length-only rule scores on the task (longer wins, shorter wins). Tick labels are coloured by the "
        "task's group (blue: helpful, orange: harmless)."), Paragraph(_grouping_text(s))]
    for bb in agg.backbones_of(s["runs"]):
        mine = [b for b in blocks_data if b.backbone == bb]
        if not mine:
            continue
        blocks.append(Heading(bb))
        blocks.append(FigureBlock(f"fig2_accuracy_{slug(bb)}", f"Figure 2 — per-task accuracy by RM type, {bb}.",
                                  figs.accuracy_figure(mine), alt=f"accuracy bar chart for {bb}"))
        blocks += [TableBlock(tabs.accuracy_table(b)) for b in mine]
    length = agg.length_rows(s["runs"], s["pooled"])
    blocks.append(Heading("Length controls"))
    if length:
        blocks.append(TableBlock(tabs.length_table(length)))
    else:
        blocks.append(Paragraph("Length controls: not run (the evals of this study record no response lengths)."))
    return Section("accuracy", title, blocks)


def _grouping_text(s: Summary) -> str:
    """Which subsets the group means take: the study's ``evaluation.grouping``, named and described."""
    from rmtension.bench.groups import GROUPINGS

    name = agg.study_grouping(s.study)
    if name is None:
        return ("Group means: the study config records no grouping (it predates the option), so every "
                "subset entered its group mean (grouping `all`).")
    described = GROUPINGS[name].description if name in GROUPINGS else "unknown to this version"
    return (f"Group means use the `{name}` grouping: {described}. Subsets marked {agg.EXCLUDED_MARK} are "
            "scored and shown but left out of the group means.")


def retention_section(s: Summary) -> Section:
    title = "Behavioural retention (Table 1)"
    rows = agg.retention_rows(s["retention"])
    if not rows:
        return _not_run("retention", title, "retention")
    blocks: list[Block] = [Paragraph(
        "Of what the helpful or the harmless RM gets right, the share the mixed RM also gets right "
        "(per backbone and seed with all three objectives trained), with the paper's pairwise Jaccard indices "
        "and the share of each single RM's correct set the mixed RM keeps.")]
    for bb, rs in rows.items():
        units = agg.retention_units([e for e in s["retention"] if str(e["backbone"]) == bb])
        blocks.append(TableBlock(tabs.retention_table(bb, rs, units)))
    return Section("retention", title, blocks)


def margins_section(s: Summary) -> Section:
    title = "Score distributions where single and mixed RMs are both right (Figure 3)"
    rows = agg.calibration_rows(s["calibration"])
    if not rows:
        return _not_run("margins", title, "calibration")
    blocks: list[Block] = [Paragraph(
        "On items that both a single-objective RM and the mixed RM get right, the reward margin of each. "
        "A mixed RM that is right with less conviction has margins nearer zero.")]
    for bb in agg.backbones_of(s["calibration"]):
        mine = [r for r in rows if r.backbone == bb]
        blocks.append(FigureBlock(f"fig3_margins_{slug(bb)}", f"Figure 3 — margin distributions, {bb} "
                                  "(filled: single RM; line: mixed RM; dotted: means; counts summed over seeds).",
                                  figs.margins_figure(mine), alt=f"margin histograms for {bb}"))
    blocks.append(TableBlock(tabs.calibration_table(rows)))
    return Section("margins", title, blocks)


def layers_section(s: Summary) -> Section:
    title = "Where the oriented neurons sit (Figure 4)"
    layouts = agg.neuron_layouts(s["neurons"]) + agg.neuron_layouts(s["neurons_seed_mean"], agg.SEED_MEAN)
    if not layouts:
        return _not_run("layers", title, "neurons")
    blocks: list[Block] = [Paragraph(
        "Per layer, how many of each RM's top-k neurons it holds; dashed lines split the layers into early "
        "(layer < L/3), middle (< 2L/3) and late thirds, the paper's rule. Panels marked 'per seed' average the "
        "counts of each seed's own set; panels marked 'seed-mean scores (paper)' show one set per RM type, the "
        "top k of the scores averaged over seeds and clipped at 0 — how the paper's notebook draws its figure.")]
    for bb in agg.backbones_of([*s["neurons"], *s["neurons_seed_mean"]]):
        mine = [lay for lay in layouts if lay.backbone == bb]
        blocks.append(FigureBlock(f"fig4_layers_{slug(bb)}", f"Figure 4 — layer location of oriented neurons, {bb}.",
                                  figs.layers_figure(mine), alt=f"per-layer neuron counts for {bb}"))
    blocks += [TableBlock(tabs.neuron_thirds_table(layouts)), TableBlock(tabs.neuron_layers_table(layouts))]
    if any(isinstance(e.get("rmsd"), dict) for e in s["neurons"]):
        blocks.append(TableBlock(tabs.rmsd_table(s["neurons"], s["neurons_seed_mean"])))
    if any(str(e["objective"]) == "backbone" for e in s["neurons"]):
        blocks.append(Paragraph("Rows and bars of RM 'backbone' are the backbone baseline: the untrained backbone "
                                "with a fresh head, scored like an RM on the same pairs."))
    if s["neuron_length"]:
        blocks.append(TableBlock(tabs.neuron_length_table(s["neuron_length"])))
    else:
        blocks.append(Paragraph("Neuron–length correlation: not run (summary.json has no `neuron_length`)."))
    return Section("layers", title, blocks)


def overlap_section(s: Summary) -> Section:
    title = "Overlap of helpful and harmless neurons"
    rows = agg.overlap_rows(s["overlap"]) + agg.overlap_rows(s["overlap_seed_mean"], agg.SEED_MEAN)
    if not rows:
        return _not_run("overlap", title, "overlap")
    blocks: list[Block] = [Paragraph(
        "How many neurons the helpful and the harmless RM share among their top-k, and how many of the "
        "single-objective neurons the mixed RM keeps among its own: the paper's retention "
        "|N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A ∪ N_M|, and the share of N_H ∪ N_A the mixed RM keeps. Rows marked "
        "'seed-mean scores (paper)' compare one set per RM type from the seed-averaged, clipped scores, as the "
        "paper's notebook does.")]
    for bb in agg.backbones_of([*s["overlap"], *s["overlap_seed_mean"]]):
        mine = [r for r in rows if r.backbone == bb]
        blocks.append(FigureBlock(f"overlap_{slug(bb)}", f"Helpful-only, shared and harmless-only neurons, {bb}.",
                                  figs.overlap_figure(mine), alt=f"neuron overlap for {bb}"))
    blocks.append(TableBlock(tabs.overlap_table(rows)))
    base = tabs.backbone_overlap_table(s["overlap"])
    blocks.append(TableBlock(base) if base else Paragraph(
        "Backbone baseline (each RM's set vs the untrained backbone's): not run in this summary."))
    return Section("overlap", title, blocks)


def ablation_section(s: Summary) -> Section:
    title = "Ablation effects (Tables 2–4)"
    grids = agg.ablation_grids(s["ablation"])
    if not grids:
        return _not_run("ablation", title, "ablation")
    blocks: list[Block] = [Paragraph(
        "Accuracy change per task when the selected neurons are zeroed in the trained RM (no retraining). "
        "A drop on one group and not the other means the neurons carry that objective.")]
    for g in grids:
        blocks.append(Heading(f"{g.backbone} — {g.method} scores, k = {fmt_k(g.k)}%"))
        made = tabs.ablation_tables(g)
        for kind, label in (("own", "own neurons"), ("subsets", "shared / helpful-only / harmless-only neurons"),
                            ("random", "random neurons")):
            t = made[kind]
            blocks.append(TableBlock(t) if t else Paragraph(f"Ablation of {label}: not run in this study."))
    blocks.append(Heading("Each set against its size-matched random set"))
    if s["ablation_stats"]:
        blocks.append(TableBlock(tabs.ablation_stats_table(s["ablation_stats"])))
    else:
        blocks.append(Paragraph("Paired set-vs-random statistics (with Holm's correction): not run in this summary "
                                "(no `ablation_stats`); the tables above show mean ± std over seeds only."))
    return Section("ablation", title, blocks)


def curves_section(s: Summary) -> Section:
    title = "Ablation curves over k (Figure 5)"
    panels = agg.curve_panels(s["curves"])
    if not panels:
        return _not_run("curves", title, "curves")
    blocks: list[Block] = [Paragraph(
        "Accuracy as the top k% of neurons by each scoring method are ablated (k = 0 is the unablated RM); "
        "a scoring method that finds the neurons that matter falls faster than the random baseline.")]
    for bb in agg.backbones_of(s["curves"]):
        mine = [p for p in panels if p.backbone == bb]
        blocks.append(FigureBlock(f"fig5_curves_{slug(bb)}", f"Figure 5 — ablation curves, {bb} "
                                  "(shaded: ± std over seeds).", figs.curves_figure(mine),
                                  alt=f"ablation curves for {bb}"))
    blocks.append(TableBlock(tabs.curves_table(panels)))
    return Section("curves", title, blocks)


def ablation_scores_section(s: Summary) -> Section:
    title = "Score distributions before and after ablation (Figure 7)"
    grids = [g for g in agg.ablation_grids(s["ablation"]) if any(g.score_hists.values())]
    if not grids:
        return _not_run("ablation-scores", title, "ablation[].score_hist")
    blocks: list[Block] = [Paragraph("All item scores of the RM before (grey) and after (coloured line) each ablation, "
                                     "counts summed over seeds.")]
    for g in grids:
        blocks.append(FigureBlock(f"fig7_ablation_scores_{slug(g.backbone)}_{slug(g.method)}_k{slug(fmt_k(g.k))}",
                                  f"Figure 7 — scores before and after ablation, {g.backbone}, {g.method} scores, "
                                  f"k = {fmt_k(g.k)}%.", figs.ablation_scores_figure(g),
                                  alt=f"score histograms before and after ablation for {g.backbone}"))
    return Section("ablation-scores", title, blocks)


BUILDERS: Sequence[Callable[[Summary], Section]] = (
    findings_section, runs_section, accuracy_section, retention_section, margins_section,
    layers_section, overlap_section, ablation_section, curves_section, ablation_scores_section, dial_section,
    method_section, appendix_section)


def build_document(s: Summary) -> Document:
    """The whole report for ``s``: findings first, then the results in the paper's order (tables with n and
    intervals), then the method and the configuration, so a reader meets the verdicts and their numbers before
    the procedure."""
    return Document(f"rmtension report — {s.name}", [x for x in (b(s) for b in BUILDERS) if x is not None])
