"""Write the report folder: ``report.md``, ``report.html``, ``figures/*.png|svg``, ``tables/*.csv``.

This is the only module with side effects. The whole folder is built in a temporary sibling and
swapped in with one rename (:func:`rmtension.files.build_atomically`), so a reader never
sees a half-written report and a failed build leaves the previous report in place.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from rmtension.files import build_atomically
from rmtension.report.figures import RC
from rmtension.report.html import render_html
from rmtension.report.load import load_summary
from rmtension.report.markdown import render_markdown
from rmtension.report.model import Document, Table
from rmtension.report.sections import build_document

REPORT_DIR = "report"
PNG_DPI = 110


def unique_names(doc: Document) -> None:
    """Make table and figure names unique (two backbones may slug alike), in place, before rendering."""
    for items in (doc.tables(), doc.figures()):
        seen: dict[str, int] = {}
        for item in items:
            n = seen.get(item.name, 0)
            seen[item.name] = n + 1
            if n:
                item.name = f"{item.name}-{n + 1}"


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """PNG or SVG bytes, without time stamps, so an unchanged study gives unchanged files."""
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        fig.savefig(buf, format=fmt, dpi=PNG_DPI, metadata=meta, facecolor="white")
    return buf.getvalue()


def table_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(t.csv_header())
    w.writerows(t.csv_rows())
    return buf.getvalue()


def write_report(doc: Document, out: Path) -> None:
    """Write every file of ``doc`` under the (empty) folder ``out``."""
    unique_names(doc)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    for fb in doc.figures():
        png = figure_bytes(fb.figure, "png")
        # The PNG's draw has laid the figure out; keep that layout for the SVG instead of solving it again.
        fb.figure.set_layout_engine("none")
        (out / "figures" / f"{fb.name}.png").write_bytes(png)
        (out / "figures" / f"{fb.name}.svg").write_bytes(figure_bytes(fb.figure, "svg"))
        images[fb.name] = png
    for t in doc.tables():
        (out / "tables" / f"{t.name}.csv").write_text(table_csv(t), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(doc), encoding="utf-8")
    (out / "report.html").write_text(render_html(doc, images), encoding="utf-8")


def build_report(study_dir: str | Path) -> Path:
    """Build ``<study_dir>/report/`` from ``<study_dir>/summary.json``; return the path of ``report.html``.

    Its folder also holds ``report.md``, ``figures/`` and ``tables/``. An unusable summary raises
    :class:`rmtension.errors.RmtensionError` before anything is written.
    """
    summary = load_summary(study_dir)
    doc = build_document(summary)
    target = Path(study_dir) / REPORT_DIR
    build_atomically(target, lambda tmp: write_report(doc, tmp), replace=True)
    return target / "report.html"
