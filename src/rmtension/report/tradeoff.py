"""The tension dial's trade-off plot: helpful-group accuracy against harmless-group accuracy.

One panel per dial (``dial.json``, ``rmtension.ablation.dial``): the scaled RM's points joined in
factor order and labelled with their factor (95% intervals as error bars), the helpful and the
harmless RM as reference points with the segment between them (dashed: the trade-offs of the two
specialists), and the unscaled RM (factor 1, or the baseline) ringed. A point beyond the dashed
segment (up and to the right of it) is a better trade-off than either specialist; whether that is
beyond noise is the verdict of ``rmtension.analysis.tradeoff``, written in the panel title.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure

from rmtension.report.figures import _empty, _grid, styled
from rmtension.report.style import OBJECTIVE_COLORS

GROUPS = ("helpful", "harmless")


def _xy(point: Mapping[str, Any]) -> tuple[float, float] | None:
    g = point.get("groups") or {}
    try:
        x, y = float(g["helpful"]), float(g["harmless"])
    except (KeyError, TypeError, ValueError):
        return None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def _errs(point: Mapping[str, Any], x: float, y: float) -> tuple[list[list[float]], list[list[float]]]:
    ci = point.get("groups_ci95") or {}

    def one(group: str, v: float) -> list[list[float]]:
        iv = ci.get(group) or {}
        lo, hi = iv.get("low"), iv.get("high")
        if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            return [[0.0], [0.0]]
        return [[max(v - float(lo), 0.0)], [max(float(hi) - v, 0.0)]]

    return one("helpful", x), one("harmless", y)


@styled
def tradeoff_figure(dials: Sequence[Mapping[str, Any]], titles: Sequence[str]) -> Figure:
    """One panel per dial; ``titles`` names each (set, RM)."""
    fig, axes = _grid(len(dials), 3, 3.6, 3.4)
    for ax, dial, title in zip(axes, dials, titles):
        pts = [(p.get("factor"), _xy(p), p) for p in dial.get("points", [])]
        pts = [(f, xy, p) for f, xy, p in pts if xy is not None]
        if not pts:
            _empty(ax)
            ax.set_title(title)
            continue
        color = OBJECTIVE_COLORS["mixed"]
        ax.plot([xy[0] for _, xy, _ in pts], [xy[1] for _, xy, _ in pts], "-", color=color, lw=1, alpha=0.6)
        for f, (x, y), p in pts:
            ex, ey = _errs(p, x, y)
            ax.errorbar([x], [y], xerr=ex, yerr=ey, fmt="o", ms=4, color=color, elinewidth=0.7, capsize=2)
            ax.annotate(f"×{f:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
            if f == 1:
                ax.plot([x], [y], "o", ms=11, mfc="none", mec=color, mew=1.0, label="unscaled")
        refs = dial.get("references") or {}
        ref_xy = {}
        for name in GROUPS:
            r = refs.get(name)
            xy = _xy(r) if r else None
            if xy is None:
                continue
            ref_xy[name] = xy
            ex, ey = _errs(r, *xy)
            ax.errorbar([xy[0]], [xy[1]], xerr=ex, yerr=ey, fmt="s", ms=6, color=OBJECTIVE_COLORS[name],
                        elinewidth=0.8, capsize=2, label=f"{name} RM")
        if len(ref_xy) == 2:
            (x0, y0), (x1, y1) = ref_xy["helpful"], ref_xy["harmless"]
            ax.plot([x0, x1], [y0, y1], "--", color="#555555", lw=0.9, label="segment between them")
        verdict = (dial.get("tradeoff") or {}).get("verdict")
        ax.set_title(title + (f"\ntrade-off: {verdict}" if verdict else ""))
        ax.set_xlabel("helpful-group accuracy")
        ax.set_ylabel("harmless-group accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
    for ax in axes[len(dials):]:
        ax.set_axis_off()
    return fig


def _pct_iv(iv: Any) -> str:
    if not isinstance(iv, Mapping) or iv.get("low") is None or iv.get("high") is None:
        return "—"
    return f"[{100 * float(iv['low']):.1f}, {100 * float(iv['high']):.1f}]"


def dial_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """One line per (dial, factor): the two group accuracies with intervals, δ beyond the segment, the verdict."""
    from rmtension.report.model import Column, Table

    cols = [Column("backbone"), Column("seed"), Column("set"), Column("factor", "num"), Column("helpful", "pct"),
            Column("helpful 95% CI"), Column("harmless", "pct"), Column("harmless 95% CI"),
            Column("δ beyond segment", "delta"), Column("δ interval (simultaneous)"), Column("verdict")]
    out = []
    for r in rows:
        d = r["dial"]
        judged = {p.get("factor"): p for p in (d.get("tradeoff") or {}).get("points", [])}
        for p in d.get("points", []):
            g, ci = p.get("groups") or {}, p.get("groups_ci95") or {}
            t = judged.get(p.get("factor"), {})
            iv = {"low": t.get("low"), "high": t.get("high")}
            out.append([r["backbone"], str(r["seed"]), r["set"], p.get("factor"), g.get("helpful"),
                        _pct_iv(ci.get("helpful")), g.get("harmless"), _pct_iv(ci.get("harmless")), t.get("delta"),
                        _pct_iv(iv), t.get("verdict", "—")])
    return Table("dial", "The tension dial: group accuracy per scale factor of the mixed RM's neuron set", cols, out,
                 note="δ: the mixed RM's distance beyond the line through the helpful and the harmless RM, in points of "
                      "the objective weighting under which the two tie (rmtension.analysis.tradeoff); > 0 is a better "
                      "trade-off than either specialist.")


def dial_section(s: Any) -> Any:
    """The report's dial section, or None when the study has no dial (an optional section adds nothing)."""
    from rmtension.report.model import FigureBlock, Paragraph, Section, TableBlock
    from rmtension.report.style import slug

    rows = s["dial"] if "dial" in getattr(s, "lists", {}) else []
    if not rows:
        return None
    blocks: list[Any] = [Paragraph(
        "The mixed RM with one of its neuron sets scaled by each factor (0 = ablated, 1 = unchanged, > 1 = "
        "amplified), plotted as helpful- against harmless-group accuracy beside the helpful and the harmless RM "
        "(95% bootstrap intervals). A point up and to the right of the dashed segment is a better trade-off than "
        "either single-objective RM; the verdict says whether any factor is beyond it with simultaneous 95% "
        "intervals.")]
    for bb in sorted({str(r["backbone"]) for r in rows}):
        mine = [r for r in rows if str(r["backbone"]) == bb]
        titles = [f"{r['set']} (seed {r['seed']})" for r in mine]
        blocks.append(FigureBlock(f"dial_tradeoff_{slug(bb)}", f"The tension dial, {bb}: helpful vs harmless accuracy "
                                  "per scale factor.", tradeoff_figure([r["dial"] for r in mine], titles),
                                  alt=f"trade-off plot of the tension dial for {bb}"))
    blocks.append(TableBlock(dial_table(rows)))
    return Section("dial", "The tension dial (beyond the paper)", blocks)
