"""The report as data: sections of paragraphs, tables and figures, before any file is written.

Why a document model: the Markdown page, the HTML page and the CSV files must say the same thing.
Section builders produce these plain objects once; :mod:`.markdown`, :mod:`.html` and
:mod:`.build` only render them. A table keeps its raw numbers (and :class:`Stat` cells) so the CSV
holds full precision while the pages show formatted text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from matplotlib.figure import Figure

from rmtension.report.stats import KINDS, Stat, StatCI, as_float, fmt_cell


@dataclass(frozen=True)
class Column:
    """A table column: its header and how its cells are formatted (see :data:`stats.KINDS`)."""

    name: str
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}")


@dataclass
class Table:
    """A table with raw cells; ``name`` is its file stem (``tables/<name>.csv``).

    ``inline=False`` marks data too long to read on the page (e.g. every point of every curve):
    it is still written as CSV and the page points to it.
    """

    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    note: str = ""
    inline: bool = True

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.name}: row {i} has {len(row)} cells for {len(self.columns)} columns")

    def full_n(self) -> int:
        """The most seeds behind any cell; cells with fewer are marked ``(n=…)``."""
        ns = [c.n for row in self.rows for c in row if isinstance(c, Stat)]
        return max(ns) if ns else 0

    def display_rows(self) -> list[list[str]]:
        full = self.full_n()
        return [[fmt_cell(v, col.kind, full) for v, col in zip(row, self.columns)] for row in self.rows]

    def _stat_columns(self) -> list[bool]:
        return [any(isinstance(row[j], Stat) for row in self.rows) for j in range(len(self.columns))]

    def _ci_columns(self) -> list[bool]:
        return [any(isinstance(row[j], StatCI) for row in self.rows) for j in range(len(self.columns))]

    def csv_header(self) -> list[str]:
        """Headers of the CSV: a column of :class:`Stat` cells becomes ``<name> mean/std/n``, and
        ``<name> ci95 low/high`` after them when some of its cells carry an interval.

        Percent and percentage-point columns hold fractions in the CSV, and say so in their header.
        """
        out: list[str] = []
        for col, is_stat, has_ci in zip(self.columns, self._stat_columns(), self._ci_columns()):
            name = csv_name(col)
            out.extend([f"{name} mean", f"{name} std", f"{name} n"] if is_stat else [name])
            if has_ci:
                out.extend([f"{name} ci95 low", f"{name} ci95 high"])
        return out

    def csv_rows(self) -> list[list[str]]:
        """Raw values: fractions as fractions (not percentages), full precision, missing as empty."""
        flags = self._stat_columns()
        ci_flags = self._ci_columns()
        out: list[list[str]] = []
        for row in self.rows:
            cells: list[str] = []
            for v, col, is_stat, has_ci in zip(row, self.columns, flags, ci_flags):
                if is_stat:
                    s = v if isinstance(v, Stat) else Stat(as_float(v), math.nan, 0 if v is None else 1)
                    cells.extend([_raw(s.mean), _raw(s.std), str(s.n)])
                    if has_ci:
                        cells.extend([_raw(s.low), _raw(s.high)] if isinstance(s, StatCI) else ["", ""])
                elif col.kind == "text":
                    cells.append("" if v is None else str(v))
                else:
                    cells.append(_raw(v))
            out.append(cells)
        return out


def csv_name(col: Column) -> str:
    """``"helpful RM (%)"`` → ``"helpful RM (fraction)"``: the CSV's unit, not the page's."""
    if col.kind in ("pct", "delta"):
        return col.name.replace(" (%)", "").replace(" (pp)", "") + " (fraction)"
    return col.name


def _raw(value: Any) -> str:
    x = as_float(value)
    if not math.isfinite(x):
        return ""
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


@dataclass
class Paragraph:
    """Plain text; `backticks` mark code."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Heading:
    """A sub-heading inside a section (one level below the section title)."""

    text: str


@dataclass
class Code:
    """Verbatim text; with ``summary`` the HTML folds it away under that line."""

    text: str
    summary: str = ""
    lang: str = ""


@dataclass
class TableBlock:
    table: Table


@dataclass
class FigureBlock:
    """A matplotlib figure; written as ``figures/<name>.png`` and ``.svg``."""

    name: str
    caption: str
    figure: Figure
    alt: str = ""


Block = Union[Paragraph, Bullets, Heading, Code, TableBlock, FigureBlock]


@dataclass
class Section:
    """A top-level section; ``not_run`` is set (and ``blocks`` empty) when the study had no data for it.

    Result sections are numbered in order; a section with ``label`` (Findings, Method, Appendix) is
    headed by that label instead and takes no number.
    """

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    not_run: str = ""
    label: str = ""


@dataclass
class Document:
    title: str
    sections: list[Section]

    def tables(self) -> list[Table]:
        return [b.table for s in self.sections for b in s.blocks if isinstance(b, TableBlock)]

    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]

    def headings(self) -> list[str]:
        """Each section's heading: its label, or its number among the unlabelled sections and its title."""
        out, n = [], 0
        for s in self.sections:
            if s.label:
                out.append(s.label)
            else:
                n += 1
                out.append(f"{n}. {s.title}")
        return out
