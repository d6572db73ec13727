"""``rmtension report DIR``: the study's tables and figures as Markdown and a self-contained HTML page."""

from __future__ import annotations

import argparse

from rmtension.cli.common import add_json, emit, library_output_to_stderr


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write DIR/report/ (report.md, report.html, figures, tables) from DIR/summary.json",
        description="Build the report of a study folder from its summary.json: report.md, a self-contained "
                    "report.html (figures embedded), every figure as PNG and SVG and every table as CSV, under DIR/report/.")
    p.add_argument("study_dir", metavar="DIR", help="a study folder written by `rmtension run` (holds summary.json)")
    add_json(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from rmtension.report import build_report  # matplotlib is imported only when a report is made

    with library_output_to_stderr():
        html = build_report(args.study_dir)
    emit(args, {"report": str(html), "markdown": str(html.with_suffix(".md")), "folder": str(html.parent)},
         f"report: {html}  (also {html.with_suffix('.md').name}, figures/, tables/ in {html.parent})")
    return 0
