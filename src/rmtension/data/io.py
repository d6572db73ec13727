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


# "utf-8-sig" reads plain UTF-8 and also drops the byte-order mark that Windows editors (and
# PowerShell's `Out-File`) put at the start of a file, which json.loads would otherwise reject.
ENCODING = "utf-8-sig"


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=ENCODING)
    return open(path, encoding=ENCODING)


def parse_json(text: str, path: str | Path, line: int | None = None) -> Any:
    """``json.loads`` whose failures are one-line :class:`InputError` naming the file (and line).

    Deeply nested input (``[[[[...]]]]``) exhausts the parser's recursion limit; that is bad input,
    not a bug, so it is reported like malformed JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        col = f" at column {exc.colno}" if line is not None else ""
        raise InputError(path, f"malformed JSON ({exc.msg}{col})", line=where) from None
    except RecursionError:
        raise InputError(path, "malformed JSON (nested too deeply)", line=line) from None


def read_json(path: str | Path) -> Any:
    """A whole JSON file (BOM tolerated); unreadable or malformed files are :class:`InputError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding=ENCODING)
    except FileNotFoundError:
        raise InputError(p, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read file: {exc}") from None
    return parse_json(text, p)


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


def _iter_jsonl(p: Path, allow_empty: bool = False) -> Iterator[Located]:
    seen = 0
    with _open_text(p) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            rec = parse_json(line, p, line=lineno)
            if not isinstance(rec, dict):
                raise InputError(p, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
            seen += 1
            yield Located(rec, str(p), line=lineno)
    if seen == 0 and not allow_empty:
        raise InputError(p, "file is empty (no records)")


def iter_jsonl(path: str | Path, allow_empty: bool = True) -> Iterator[Located]:
    """The one JSONL reader: every object of a JSONL(.gz) file with its line; anything malformed,
    unreadable or not an object is an :class:`InputError` naming ``file:line``.

    Why one: the package's own outputs (``items.jsonl``) and users' inputs are read the same way, so
    a damaged line gives the same one-line error wherever it is read. Blank lines are skipped;
    ``allow_empty`` (default, for outputs) accepts a file with no records."""
    p = Path(path)
    try:
        yield from _iter_jsonl(p, allow_empty)
    except FileNotFoundError:
        raise InputError(p, "file not found") from None
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(p, f"cannot read file: {exc}") from None


def read_jsonl(path: str | Path, allow_empty: bool = True) -> list[dict[str, Any]]:
    """Every record of a JSONL file (see :func:`iter_jsonl`)."""
    return [loc.record for loc in iter_jsonl(path, allow_empty)]


def _iter_json(p: Path) -> Iterator[Located]:
    with _open_text(p) as fh:
        text = fh.read()
    if not text.strip():
        raise InputError(p, "file is empty (no records)")
    data = parse_json(text, p)
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
