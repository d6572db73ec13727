"""Stage 7: the report — the paper's tables and figures regenerated from a study's ``summary.json``.

``build_report(study_dir)`` reads ``<study_dir>/summary.json`` (docs/STUDY_FORMAT.md) and writes
``<study_dir>/report/``: ``report.md``, a self-contained ``report.html``, ``figures/<name>.png``
and ``.svg``, ``tables/<name>.csv``. The pieces are pure and usable alone: :mod:`.aggregate`
(reductions over seeds), :mod:`.tables`, :mod:`.figures`, :mod:`.sections` (the document),
:mod:`.markdown` and :mod:`.html` (rendering); :mod:`.build` is the only writer.
"""

from rmtension.report.build import build_report
from rmtension.report.load import Summary, load_summary, parse_summary

__all__ = ["build_report", "load_summary", "parse_summary", "Summary"]
