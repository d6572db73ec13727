"""The report's figures, as pure functions from reduced data (:mod:`.aggregate`) to matplotlib figures.

Why ``matplotlib.figure.Figure`` and not ``pyplot``: pyplot keeps global state and picks a GUI
backend; a bare ``Figure`` needs no backend (saving uses Agg for PNG and the SVG writer), so the
report works on headless machines and never touches other code's figures. Each function only
builds a figure; :mod:`.build` writes it. Colours come from :mod:`.style` (one per RM objective).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence, TypeVar

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rmtension.report.aggregate import AblationGrid, AccuracyBlock, CalibrationRow, CurvePanel, Hist, NeuronLayout, OverlapRow
from rmtension.report.stats import CHANCE, Stat, StatCI, fmt_k
from rmtension.report.style import (BEFORE_COLOR, GROUP_COLORS, METHOD_COLORS, OBJECTIVE_COLORS, SET_COLORS, THIRDS,
                                    color_for)

RC: Any = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
      "legend.fontsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
      "grid.alpha": 0.3, "grid.linewidth": 0.6, "svg.fonttype": "path", "svg.hashsalt": "rmtension"}

F = TypeVar("F", bound=Callable[..., Figure])
CHANCE_COLOR = "#333333"


def styled(fn: F) -> F:
    """Build the figure under the report's rc settings (fonts are fixed when text is created)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _grid(n: int, ncols: int, w: float, h: float) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(max(n, 1))]
    return fig, axes


def _mean(s: Stat) -> float:
    return s.mean if not s.missing else math.nan


def _err(s: Stat) -> float:
    return s.std if s.n > 1 and math.isfinite(s.std) else 0.0


def _empty(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------- Figure 2

@styled
def accuracy_figure(blocks: Sequence[AccuracyBlock]) -> Figure:
    """Grouped bars: each task's accuracy per RM objective (mean over seeds) with its 95% interval as
    error bars, one panel per benchmark; a dotted line at chance (50%) and, per task, markers for what
    a length-only rule scores (longer wins ▲, shorter wins ▼), so a bar can be read against both.

    Tick labels take the colour of the task's group, and the group means sit after a divider, so
    the helpful/harmless split the paper's Figure 2 is about is visible at a glance.
    """
    bars = [len([r for r in b.rows if r.kind != "aggregate"]) * max(1, len(b.objectives)) for b in blocks]
    w = max(6.0, min(18.0, 2.0 + 0.22 * max(bars + [1])))
    fig = Figure(figsize=(w, 3.4 * max(1, len(blocks))), layout="constrained")
    for i, block in enumerate(blocks):
        ax = fig.add_subplot(max(1, len(blocks)), 1, i + 1)
        rows = [r for r in block.rows if r.kind != "aggregate"]
        if not rows:
            _empty(ax)
            continue
        n_obj = max(1, len(block.objectives))
        width = 0.8 / n_obj
        for j, o in enumerate(block.objectives):
            xs = [x + (j - (n_obj - 1) / 2) * width for x in range(len(rows))]
            ax.bar(xs, [100 * _mean(r.by_objective[o]) for r in rows], width,
                   yerr=interval_errors([r.by_objective[o] for r in rows]), capsize=2, error_kw={"elinewidth": 0.8},
                   color=OBJECTIVE_COLORS.get(o, color_for(o, OBJECTIVE_COLORS, block.objectives)), label=f"{o} RM")
        ax.axhline(100 * CHANCE, color=CHANCE_COLOR, linewidth=1.0, linestyle=":", label="chance (50%)", zorder=1)
        for attr, marker, color, label in (("longer", "^", "#111111", "longer wins (length only)"),
                                           ("shorter", "v", "#8c8c8c", "shorter wins (length only)")):
            pts = [(x, 100 * getattr(r, attr).mean) for x, r in enumerate(rows) if not getattr(r, attr).missing]
            if pts:
                ax.scatter([x for x, _ in pts], [y for _, y in pts], marker=marker, s=30, color=color, zorder=4,
                           edgecolors="white", linewidths=0.5, label=label)
        n_sub = sum(r.kind == "subset" for r in rows)
        if 0 < n_sub < len(rows):
            ax.axvline(n_sub - 0.5, color="#555555", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r.task.replace(" (group mean)", " mean") for r in rows], rotation=35, ha="right")
        for lab, r in zip(ax.get_xticklabels(), rows):
            lab.set_color(GROUP_COLORS.get(str(r.group), "#333333"))
            if r.kind == "group":
                lab.set_fontweight("bold")
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{block.backbone} — {block.bench}")
    _figure_legend(fig, max_cols=3)
    return fig


def interval_errors(stats: Sequence[Stat]) -> list[list[float]]:
    """Asymmetric error bars (below, above) in percent from each accuracy's 95% interval; 0 without one.

    Intervals, not the std over seeds: the std is zero-width with one seed and ignores item sampling.
    """
    below, above = [], []
    for s in stats:
        ok = isinstance(s, StatCI) and s.has_ci and not s.missing
        below.append(max(0.0, 100 * (s.mean - s.low)) if ok else 0.0)  # type: ignore[union-attr]
        above.append(max(0.0, 100 * (s.high - s.mean)) if ok else 0.0)  # type: ignore[union-attr]
    return [below, above]


def _figure_legend(fig: Figure, max_cols: int = 6) -> None:
    """One legend below all panels (panels share their series), so it never covers data or the title."""
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), max_cols), frameon=False)


# --------------------------------------------------------------------------- Figure 3

def _step(ax: Axes, h: Hist, series: str, color: str, label: str, fill: bool) -> None:
    counts = h.counts[series]
    if fill:
        ax.stairs(counts, h.edges, color=color, alpha=0.35, fill=True, label=label)
    else:
        ax.stairs(counts, h.edges, color=color, linewidth=1.6, label=label)


@styled
def margins_figure(rows: Sequence[CalibrationRow]) -> Figure:
    """Margin histograms of the single RM (filled) and the mixed RM (line) on items both get right."""
    fig, axes = _grid(len(rows), 3, 3.6, 2.7)
    for ax, r in zip(axes, rows):
        if not r.hists:
            _empty(ax)
        for h in r.hists:
            _step(ax, h, "single", OBJECTIVE_COLORS.get(r.single, "#444444"), f"{r.single} RM", True)
            _step(ax, h, "mixed", OBJECTIVE_COLORS["mixed"], "mixed RM", False)
        ax.axvline(0, color="#333333", linewidth=0.7)
        for s, color in ((r.single_mean, OBJECTIVE_COLORS.get(r.single, "#444444")), (r.mixed_mean, OBJECTIVE_COLORS["mixed"])):
            if not s.missing:
                ax.axvline(s.mean, color=color, linewidth=1.0, linestyle=":")
        n = "" if r.n.missing else f", n≈{r.n.mean:.0f}"
        ax.set_title(f"{r.single} vs mixed — {r.group} items{n}")
        ax.set_xlabel("reward margin (chosen − rejected)")
        ax.set_ylabel("items")
    _figure_legend(fig)
    if rows:
        fig.suptitle(f"Margins where both RMs are right — {rows[0].backbone}")
    return fig


# --------------------------------------------------------------------------- Figure 4

@styled
def layers_figure(layouts: Sequence[NeuronLayout]) -> Figure:
    """Per-layer counts of each RM's oriented neurons (mean over seeds), with the thirds marked."""
    fig, axes = _grid(len(layouts), 2, 5.2, 2.9)
    for ax, lay in zip(axes, layouts):
        objs = list(lay.per_layer)
        if lay.n_layers == 0 or not objs:
            _empty(ax)
            continue
        width = 0.8 / len(objs)
        for j, o in enumerate(objs):
            xs = [i + (j - (len(objs) - 1) / 2) * width for i in range(lay.n_layers)]
            ax.bar(xs, [_mean(s) if not s.missing else 0.0 for s in lay.per_layer[o]], width,
                   color=OBJECTIVE_COLORS.get(o, color_for(o, OBJECTIVE_COLORS, objs)), label=f"{o} RM")
        bounds = third_bounds(lay.n_layers)
        for b in bounds[1:-1]:
            ax.axvline(b - 0.5, color="#555555", linewidth=0.8, linestyle="--")
        top = ax.get_ylim()[1] * 1.12
        ax.set_ylim(0, top)
        for t, lo, hi in zip(THIRDS, bounds[:-1], bounds[1:]):
            if hi > lo:
                ax.text((lo + hi - 1) / 2, top * 0.98, t, ha="center", va="top", color="#555555", fontsize=8)
        ax.set_xlabel("layer")
        ax.set_ylabel("oriented neurons")
        site = f", {lay.site}" if lay.site else ""
        ax.set_title(f"{lay.backbone} — {lay.method}{site}, top {fmt_k(lay.k)}%, {lay.sets}")
    _figure_legend(fig)
    return fig


def third_bounds(n_layers: int) -> list[int]:
    """[0, b1, b2, L]: the thirds' boundaries as :func:`rmtension.neurons.sets.thirds` draws them.

    The paper's rule (layer < L/3 early, < 2L/3 middle): b1 = ceil(L/3), b2 = ceil(2L/3), so the
    dashed lines fall where the summary's early/middle/late counts split.
    """
    return [0, -(-n_layers // 3), -(-2 * n_layers // 3), n_layers]


# --------------------------------------------------------------------------- overlap

@styled
def overlap_figure(rows: Sequence[OverlapRow]) -> Figure:
    """Stacked bars: helpful-only, shared and harmless-only neurons, with the mixed RM's retention."""
    fig = Figure(figsize=(7.0, 0.6 * max(1, len(rows)) + 1.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{r.method}, k={fmt_k(r.k)}%, {r.sets}" for r in rows]
    left = [0.0] * len(rows)
    for name, key, color in (("helpful only", "helpful_only", SET_COLORS["helpful-only"]),
                             ("shared", "shared", SET_COLORS["shared"]),
                             ("harmless only", "harmless_only", SET_COLORS["harmless-only"])):
        vals = [0.0 if getattr(r, key).missing else getattr(r, key).mean for r in rows]
        ax.barh(range(len(rows)), vals, left=left, color=color, label=name)
        left = [a + b for a, b in zip(left, vals)]
    for i, r in enumerate(rows):
        if not r.mixed_retention.missing:
            ax.text(left[i], i, f"  mixed RM retention {100 * r.mixed_retention.mean:.1f}%", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    ax.set_xlabel("neurons (per-seed sets: mean over seeds)")
    ax.set_xlim(0, max(left + [1.0]) * 1.35)
    ax.legend(frameon=False, loc="lower right", ncols=3)
    if rows:
        ax.set_title(f"Helpful vs harmless neurons — {rows[0].backbone}")
    return fig


# --------------------------------------------------------------------------- Figure 5

@styled
def curves_figure(panels: Sequence[CurvePanel]) -> Figure:
    """Accuracy vs k (k = 0: unablated) for each scoring method, mean ± std over seeds (shaded)."""
    fig, axes = _grid(len(panels), 3, 3.6, 2.7)
    methods = list(dict.fromkeys(c.method for p in panels for c in p.curves))
    for ax, p in zip(axes, panels):
        if not any(c.ks for c in p.curves):
            _empty(ax)
        for c in p.curves:
            color = color_for(c.method, METHOD_COLORS, methods)
            ys = [100 * _mean(s) for s in c.scores]
            err = [100 * _err(s) for s in c.scores]
            ax.plot(c.ks, ys, marker="o", markersize=3, color=color, label=c.method)
            ax.fill_between(c.ks, [y - e for y, e in zip(ys, err)], [y + e for y, e in zip(ys, err)],
                            color=color, alpha=0.18, linewidth=0)
        ax.axhline(100 * CHANCE, color=CHANCE_COLOR, linewidth=1.0, linestyle=":", label="chance (50%)", zorder=1)
        ax.set_title(f"{p.rm_objective} RM — {p.bench} ({p.group})")
        ax.set_xlabel("neurons ablated: top k (%)")
        ax.set_ylabel("accuracy (%)")
    _figure_legend(fig)
    if panels:
        fig.suptitle(f"Ablation curves — {panels[0].backbone}")
    return fig


# --------------------------------------------------------------------------- Figure 7

@styled
def ablation_scores_figure(grid: AblationGrid) -> Figure:
    """Distribution of all item scores before (grey) and after ablation (the RM's colour), per ablated set."""
    fig, axes = _grid(len(grid.keys), 3, 3.6, 2.6)
    for ax, key in zip(axes, grid.keys):
        hists = grid.score_hists.get(key) or []
        if not hists:
            _empty(ax)
        for h in hists:
            _step(ax, h, "before", BEFORE_COLOR, "before", True)
            _step(ax, h, "after", OBJECTIVE_COLORS.get(key.rm_objective, SET_COLORS.get(key.set, "#444444")),
                  f"after ({key.rm_objective} RM)", False)
        ax.set_title(key.label())
        ax.set_xlabel("reward score")
        ax.set_ylabel("responses")
    _figure_legend(fig)
    fig.suptitle(f"Scores before and after ablation — {grid.backbone}, {grid.method}, k = {fmt_k(grid.k)}%")
    return fig
