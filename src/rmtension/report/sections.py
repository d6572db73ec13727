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
from rmtension.report import aggregate as agg
from rmtension.report import figures as figs
from rmtension.report import tables as tabs
from rmtension.report.load import Summary
from rmtension.report.model import Block, Bullets, Code, Document, FigureBlock, Heading, Paragraph, Section, TableBlock
from rmtension.report.stats import fmt_k
from rmtension.report.style import OBJECTIVES, ordered, seed_sort_key, slug

NUMBERS_NOTE = ("Accuracies, retentions and shares are percentages with one decimal; Δ are percentage points; "
                "margins are raw reward units. Cells are mean ± sample std over seeds; a cell resting on fewer "
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


def study_section(s: Summary) -> Section:
    """Header: study name, what was trained, the config in short and in full, and software versions."""
    study = s.study
    runs = s["runs"]
    backbones = list(dict.fromkeys(str(r["backbone"]) for r in runs))
    objectives = ordered((str(r["objective"]) for r in runs), OBJECTIVES)
    seeds = sorted({r["seed"] for r in runs}, key=seed_sort_key)
    facts = [f"Study: {s.name}",
             f"Created: {study.get('created') or '—'}",
             f"Backbones: {', '.join(backbones) or '—'}",
             f"RM objectives: {', '.join(objectives) or '—'}; seeds: {', '.join(map(str, seeds)) or '—'} "
             f"({len(runs)} trained RMs)",
             f"Made with rmtension {study.get('rmtension_version') or '—'}; report built with rmtension "
             f"{rmtension.__version__}, Python {platform.python_version()}, numpy {numpy.__version__}, "
             f"matplotlib {matplotlib.__version__}"]
    blocks: list[Block] = [Bullets(facts), Paragraph(NUMBERS_NOTE)]
    config = study.get("config")
    if isinstance(config, Mapping) and config:
        flat = _flatten(config)
        short = [f"`{k}`: {v if len(v) <= 90 else v[:87] + '…'}" for k, v in flat[:40]]
        if len(flat) > 40:
            short.append(f"… {len(flat) - 40} more settings in the full config below")
        blocks += [Heading("Configuration"), Bullets(short),
                   Code(_yaml(config), summary="Full resolved config", lang="yaml")]
    return Section("study", s.name, blocks)


def runs_section(s: Summary) -> Section:
    if not s["runs"]:
        return _not_run("runs", "Trained reward models", "runs")
    return Section("runs", "Trained reward models", [TableBlock(tabs.runs_table(s["runs"]))])


def accuracy_section(s: Summary) -> Section:
    title = "Accuracy by RM type (Figure 2, appendix tables)"
    blocks_data = agg.accuracy_blocks(s["runs"])
    if not blocks_data:
        return _not_run("accuracy", title, "runs[].eval")
    blocks: list[Block] = [Paragraph(
        "Each task's accuracy for the helpful, harmless and mixed RMs, mean ± std over seeds, with the "
        "benchmark's helpfulness- and harmlessness-oriented group means. Tick labels are coloured by the "
        "task's group (blue: helpful, orange: harmless)."), Paragraph(_grouping_text(s))]
    for bb in agg.backbones_of(s["runs"]):
        mine = [b for b in blocks_data if b.backbone == bb]
        if not mine:
            continue
        blocks.append(Heading(bb))
        blocks.append(FigureBlock(f"fig2_accuracy_{slug(bb)}", f"Figure 2 — per-task accuracy by RM type, {bb}.",
                                  figs.accuracy_figure(mine), alt=f"accuracy bar chart for {bb}"))
        blocks += [TableBlock(tabs.accuracy_table(b)) for b in mine]
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
    study_section, runs_section, accuracy_section, retention_section, margins_section, layers_section,
    overlap_section, ablation_section, curves_section, ablation_scores_section)


def build_document(s: Summary) -> Document:
    """The whole report for ``s``, sections in the paper's order."""
    return Document(f"rmtension report — {s.name}", [b(s) for b in BUILDERS])
