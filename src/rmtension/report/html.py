"""Render a :class:`Document` as one self-contained HTML page.

Why self-contained: the page is mailed, attached to tickets and opened from archives, away from
its folder. So the CSS is inline, every figure is embedded as a base64 PNG data URI, there is no
script and nothing is fetched from anywhere. The PNG and SVG files beside the page are for reuse.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Mapping

from rmtension.report.model import Bullets, Code, Document, FigureBlock, Heading, Paragraph, Section, Table, TableBlock

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;background:#fff;margin:0;
 line-height:1.45;font-size:15px}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 6px}
nav ul{columns:2;font-size:14px;list-style:none;padding-left:0}nav a{color:#2c3e50}
.notrun{background:#f6f6f6;border-left:4px solid #999;padding:8px 12px;color:#444}
.tablewrap{overflow-x:auto;margin:8px 0 4px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e2e2e2;padding:3px 9px;white-space:nowrap}
th{background:#f3f3f3;text-align:left}td.num,th.num{text-align:right}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
.note{font-size:13px;color:#555;margin:2px 0 14px}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444}
code{background:#f3f3f3;padding:0 3px;border-radius:3px;font-size:90%}
pre{background:#f7f7f7;padding:10px;overflow-x:auto;font-size:12px}
"""


def _text(s: str) -> str:
    """Escape, then turn `backticks` into <code>, **bold** into <strong> and *italics* into <em>."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(s, quote=False))
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", out)


def table_html(t: Table) -> str:
    if not t.inline:
        return f'<p class="note">{html.escape(t.title)}: {len(t.rows)} rows in <code>tables/{html.escape(t.name)}.csv</code>.</p>'
    num = [c.kind != "text" for c in t.columns]
    head = "".join(f'<th class="{"num" if n else ""}">{html.escape(c.name)}</th>' for c, n in zip(t.columns, num))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if n else ""}">{html.escape(v)}</td>' for v, n in zip(row, num))
                   + "</tr>" for row in t.display_rows())
    out = (f'<div class="tablewrap"><table id="table-{html.escape(t.name)}"><caption>{html.escape(t.title)} '
           f'<code>tables/{html.escape(t.name)}.csv</code></caption><thead><tr>{head}</tr></thead>'
           f"<tbody>{body}</tbody></table></div>")
    if t.note:
        out += f'<p class="note">{_text(t.note)}</p>'
    return out


def figure_html(f: FigureBlock, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="fig-{html.escape(f.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(f.alt or f.caption)}"><figcaption>{_text(f.caption)} '
            f"<code>figures/{html.escape(f.name)}.png</code> <code>.svg</code></figcaption></figure>")


def section_html(s: Section, heading: str, images: Mapping[str, bytes]) -> str:
    out = [f'<section id="{html.escape(s.id)}"><h2>{html.escape(heading)}</h2>']
    if s.not_run:
        out.append(f'<p class="notrun">{_text(s.not_run)}</p>')
    for b in s.blocks:
        if isinstance(b, Paragraph):
            out.append(f"<p>{_text(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_text(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Heading):
            out.append(f"<h3>{html.escape(b.text)}</h3>")
        elif isinstance(b, Code):
            pre = f"<pre>{html.escape(b.text)}</pre>"
            out.append(f"<details><summary>{html.escape(b.summary)}</summary>{pre}</details>" if b.summary else pre)
        elif isinstance(b, TableBlock):
            out.append(table_html(b.table))
        elif isinstance(b, FigureBlock):
            out.append(figure_html(b, images[b.name]))
    out.append("</section>")
    return "\n".join(out)


def render_html(doc: Document, images: Mapping[str, bytes]) -> str:
    """The page; ``images`` maps each figure's name to its PNG bytes."""
    headings = doc.headings()
    toc = "".join(f'<li><a href="#{html.escape(s.id)}">{html.escape(h)}</a>'
                  f'{" — not run" if s.not_run else ""}</li>' for s, h in zip(doc.sections, headings))
    body = "\n".join(section_html(s, h, images) for s, h in zip(doc.sections, headings))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n"
            f"<body><main><h1>{html.escape(doc.title)}</h1><nav><ul>{toc}</ul></nav>\n{body}\n</main></body></html>\n")
