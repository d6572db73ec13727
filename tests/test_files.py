"""The one atomic writer every stage uses: a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import json

import pytest

from rmtension.files import write_atomic, write_json_atomic, write_jsonl_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_json_atomic(path, {"score": 0.5})

    def boom(fh):
        fh.write("half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, boom)
    assert json.loads(path.read_text()) == {"score": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_text_binary_and_strict_json(tmp_path):
    assert write_atomic(tmp_path / "a.bin", lambda fh: fh.write(b"\x00\x01"), binary=True).read_bytes() == b"\x00\x01"
    write_json_atomic(tmp_path / "r.json", {"nan": float("nan"), "path": tmp_path})
    assert json.loads((tmp_path / "r.json").read_text()) == {"nan": None, "path": str(tmp_path)}
    write_jsonl_atomic(tmp_path / "i.jsonl", [{"x": 1}, {"x": float("nan")}])
    assert [json.loads(line) for line in (tmp_path / "i.jsonl").read_text().splitlines()] == [{"x": 1}, {"x": None}]
