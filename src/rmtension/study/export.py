"""A study's summary as one flat table: every run × task × metric, for pandas users.

Why: ``summary.json`` is nested (runs → benchmarks → subsets → numbers with intervals); a table
with one number per row is what ``pandas.read_csv`` / ``read_parquet`` and a ``groupby`` want. The
rows are derived from ``summary.json`` alone (a pure function), and written beside it as
``summary.csv`` and, when pyarrow is importable, ``summary.parquet`` with the same rows.

Columns (``COLUMNS``): the run (backbone, objective, seed), where the number comes from
(benchmark, subset, task, group, in_group_mean, scoring = the subset's metric rule), ``metric``
(what the number is), ``value``, its 95% interval (``ci95_low``, ``ci95_high``) and ``n`` (items).
Metrics: per subset ``score`` (and ``strict_score`` where the benchmark has one); per benchmark
``group_mean`` (one row per group, subset empty) and ``aggregate:<name>`` (the benchmark's own
aggregates: RewardBench sections, RM-Bench hard/normal/easy, overall, mean); per run, under
benchmark ``train``, ``heldout_accuracy``, ``train_loss``, ``pairs_used``, ``steps``, ``wall_time_s``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from rmtension.files import write_atomic
from rmtension.analysis.findings import interval_bounds

CSV_FILE = "summary.csv"
PARQUET_FILE = "summary.parquet"
COLUMNS = ("backbone", "objective", "seed", "benchmark", "subset", "task", "group", "in_group_mean", "scoring",
           "metric", "value", "ci95_low", "ci95_high", "n")
TRAIN_METRICS = ("heldout_accuracy", "train_loss", "pairs_used", "steps", "wall_time_s")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _row(run: dict[str, Any], **fields: Any) -> dict[str, Any]:
    row = {c: None for c in COLUMNS}
    row.update(backbone=run.get("backbone"), objective=run.get("objective"), seed=run.get("seed"))
    row.update(fields)
    return row


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat rows (dicts keyed by ``COLUMNS``) of a ``summary.json`` object."""
    rows: list[dict[str, Any]] = []
    for run in summary.get("runs") or []:
        train = run.get("train") or {}
        for m in TRAIN_METRICS:
            if m in train:
                rows.append(_row(run, benchmark="train", metric=m, value=_number(train[m])))
        for bench, entry in (run.get("eval") or {}).items():
            for subset, s in (entry.get("subsets") or {}).items():
                where = dict(benchmark=bench, subset=subset, task=s.get("task"), group=s.get("group"),
                             in_group_mean=s.get("in_group_mean"), scoring=s.get("metric"), n=s.get("n"))
                low, high = interval_bounds(s.get("ci95"))
                rows.append(_row(run, **where, metric="score", value=_number(s.get("score")), ci95_low=low,
                                 ci95_high=high))
                if "strict_score" in s:
                    low, high = interval_bounds(s.get("strict_ci95"))
                    rows.append(_row(run, **where, metric="strict_score", value=_number(s.get("strict_score")),
                                     ci95_low=low, ci95_high=high))
            cis = entry.get("groups_ci95") or {}
            for group, value in (entry.get("groups") or {}).items():
                low, high = interval_bounds(cis.get(group))
                rows.append(_row(run, benchmark=bench, group=group, metric="group_mean", value=_number(value),
                                 ci95_low=low, ci95_high=high))
            agg = entry.get("aggregate") or {}
            agg_ci = entry.get("aggregate_ci95") or {}
            for key, value in agg.items():
                if key in ("items", "domains"):  # a count, and RM-Bench's per-domain detail
                    continue
                parts = value.items() if isinstance(value, dict) else [(None, value)]
                for part, number in parts:
                    ci = agg_ci.get(key)
                    if part is not None:
                        ci = ci.get(part) if isinstance(ci, dict) else None
                    low, high = interval_bounds(ci)
                    metric = f"aggregate:{key}" if part is None else f"aggregate:{key}.{part}"
                    rows.append(_row(run, benchmark=bench, metric=metric, value=_number(number), ci95_low=low,
                                     ci95_high=high, n=agg.get("items")))
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    def write(fh: Any) -> None:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return write_atomic(path, write)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path | None:
    """The same rows as Parquet, typed (None when pyarrow is not installed)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    schema = pa.schema([("backbone", pa.string()), ("objective", pa.string()), ("seed", pa.int64()),
                        ("benchmark", pa.string()), ("subset", pa.string()), ("task", pa.string()),
                        ("group", pa.string()), ("in_group_mean", pa.bool_()), ("scoring", pa.string()),
                        ("metric", pa.string()), ("value", pa.float64()), ("ci95_low", pa.float64()),
                        ("ci95_high", pa.float64()), ("n", pa.int64())])
    table = pa.Table.from_pylist(rows, schema=schema)
    return write_atomic(path, lambda fh: pq.write_table(table, fh), binary=True)


def export_summary(summary: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write ``summary.csv`` (and ``summary.parquet`` when pyarrow is available) into ``folder``."""
    rows = summary_rows(summary)
    folder = Path(folder)
    written = [write_csv(folder / CSV_FILE, rows)]
    parquet = write_parquet(folder / PARQUET_FILE, rows)
    if parquet is not None:
        written.append(parquet)
    return written


__all__ = ["COLUMNS", "CSV_FILE", "PARQUET_FILE", "export_summary", "summary_rows", "write_csv", "write_parquet"]
