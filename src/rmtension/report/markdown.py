"""Render a :class:`Document` as Markdown (GitHub-flavoured tables; figures as relative PNG links).

Why relative links: ``report.md`` lives beside ``figures/`` and ``tables/``, so the folder can be
moved, committed (docs/example-report/) or viewed on a forge as it is.
"""

from __future__ import annotations

from rmtension.report.model import Bullets, Code, Document, FigureBlock, Heading, Paragraph, Section, Table, TableBlock


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table_md(t: Table) -> str:
    """The table's title, its rows (or, for long data, a pointer to its CSV) and its note."""
    lines = [f"**{t.title}** (`tables/{t.name}.csv`)", ""]
    if not t.inline:
        lines = [f"{t.title}: {len(t.rows)} rows in `tables/{t.name}.csv`."]
        return "\n".join(lines)
    if not t.rows:
        lines.append("_(no rows)_")
    else:
        lines.append("| " + " | ".join(_cell(c.name) for c in t.columns) + " |")
        lines.append("|" + "|".join("---" if c.kind == "text" else "---:" for c in t.columns) + "|")
        for row in t.display_rows():
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines)


def section_md(s: Section, heading: str) -> str:
    out = [f"## {heading}", ""]
    if s.not_run:
        out += [f"> {s.not_run}", ""]
    for b in s.blocks:
        if isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Heading):
            out += [f"### {b.text}", ""]
        elif isinstance(b, Code):
            if b.summary:
                out += [f"{b.summary}:", ""]
            out += [f"```{b.lang}", b.text, "```", ""]
        elif isinstance(b, TableBlock):
            out += [table_md(b.table), ""]
        elif isinstance(b, FigureBlock):
            out += [f"![{b.alt or b.caption}](figures/{b.name}.png)", "", f"_{b.caption}_ "
                    f"(`figures/{b.name}.png`, `figures/{b.name}.svg`)", ""]
    return "\n".join(out)


def render_markdown(doc: Document) -> str:
    """The whole report under the page title; sections headed as :meth:`Document.headings` says."""
    parts = [f"# {doc.title}", ""]
    for s, heading in zip(doc.sections, doc.headings()):
        parts.append(section_md(s, heading))
    return "\n".join(parts).rstrip() + "\n"
