"""Reading record files (JSONL, JSONL.gz, JSON, JSON.gz, Parquet) with precise error locations.

Every record comes back with a location string (``file:line`` or ``file [record i]``) so that
later validation can name exactly where a bad field is.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rmtension.errors import InputError

RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")


@dataclass(frozen=True)
class Located:
    """A raw record and where it came from."""

    record: dict[str, Any]
    path: str
    line: int | None = None  # 1-based line for JSONL
    index: int | None = None  # 0-based record index for JSON lists and Parquet

    def error(self, message: str) -> InputError:
        return InputError(self.path, message, line=self.line, record=self.index)

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        return f"{self.path} [record {self.index}]"


def is_record_file(path: str | Path) -> bool:
    return str(path).lower().endswith(RECORD_SUFFIXES)


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_records(path: str | Path) -> Iterator[Located]:
    """Yield every record of a file; raise ``InputError`` on anything malformed.

    A JSON file may hold a list of objects, or an object with one list-valued key
    (``{"data": [...]}``), as exported by many tools.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if not p.is_file():
        raise InputError(p, "not a file")
    name = p.name.lower()
    try:
        if name.endswith(".parquet"):
            yield from _iter_parquet(p)
        elif name.endswith((".jsonl", ".jsonl.gz")):
            yield from _iter_jsonl(p)
        elif name.endswith((".json", ".json.gz")):
            yield from _iter_json(p)
        else:
            raise InputError(p, f"unsupported file type; expected one of {', '.join(RECORD_SUFFIXES)}")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(p, f"cannot read file: {exc}") from exc


def _iter_jsonl(p: Path) -> Iterator[Located]:
    seen = 0
    with _open_text(p) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(p, f"malformed JSON ({exc.msg} at column {exc.colno})", line=lineno) from None
            if not isinstance(rec, dict):
                raise InputError(p, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
            seen += 1
            yield Located(rec, str(p), line=lineno)
    if seen == 0:
        raise InputError(p, "file is empty (no records)")


def _iter_json(p: Path) -> Iterator[Located]:
    with _open_text(p) as fh:
        text = fh.read()
    if not text.strip():
        raise InputError(p, "file is empty (no records)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(p, f"malformed JSON ({exc.msg})", line=exc.lineno) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputError(p, "expected a JSON list of objects (or an object holding exactly one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise InputError(p, f"expected a JSON list of objects, got {type(data).__name__}")
    if not data:
        raise InputError(p, "file is empty (no records)")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise InputError(p, f"expected a JSON object, got {type(rec).__name__}", record=i)
        yield Located(rec, str(p), index=i)


def _iter_parquet(p: Path) -> Iterator[Located]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(p, f"cannot read Parquet file: {exc}") from None
    if table.num_rows == 0:
        raise InputError(p, "file is empty (no records)")
    for i, rec in enumerate(table.to_pylist()):
        yield Located(rec, str(p), index=i)


def require_str(loc: Located, key: str, *, allow_empty: bool = True) -> str:
    """Fetch a string field or raise an error naming the file, line and field."""
    if key not in loc.record:
        raise loc.error(f"missing field {key!r}")
    value = loc.record[key]
    if not isinstance(value, str):
        raise loc.error(f"field {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise loc.error(f"field {key!r} is empty")
    return value


def require_str_list(loc: Located, key: str) -> list[str]:
    """A field that may hold one string or a non-empty list of strings."""
    if key not in loc.record:
        raise loc.error(f"missing field {key!r}")
    value = loc.record[key]
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise loc.error(f"field {key!r} must be a string or a non-empty list of strings")
