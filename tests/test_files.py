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


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_users_umask_not_mkstemp_0600(tmp_path, mask):
    """Neuron sets, statistics and results are shared like any file the user creates (issue 18, item 2)."""
    import os
    import stat

    import numpy as np

    from rmtension.neurons.setfile import save_set
    from rmtension.neurons.sets import NeuronSet

    old = os.umask(mask)
    try:
        paths = [write_atomic(tmp_path / "a.bin", lambda fh: fh.write(b"x"), binary=True),
                 save_set(tmp_path / "set.json", NeuronSet(np.eye(3, dtype=bool), {"method": "magnitude"}))]
        write_json_atomic(tmp_path / "results.json", {"score": 1})
        paths.append(tmp_path / "results.json")
    finally:
        os.umask(old)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths} == {p.name: oct(0o666 & ~mask) for p in paths}
