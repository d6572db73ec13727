"""The data/bench commands: JSON contracts on real files and one-line errors for bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from rmtension.cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("source,total", [
    ("hh-rlhf:harmless-base", 2312), ("hh-rlhf:helpful-base", 2354), ("hh-rlhf:helpful-online", 1137),
    ("hh-rlhf:helpful-rejection-sampled", 2749), ("hh-rlhf:helpful", 2354 + 1137 + 2749),
    ("hh-rlhf:harmless", 2312), ("hh-rlhf:mixed", 8552),
])
def test_data_show_json_contract(capsys, data_dir, source, total):
    rc, out, _ = _run(capsys, "data", "show", source, "--data-dir", str(data_dir), "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["total"] == total
    assert s["usable"] + sum(s["skipped"].values()) == total
    assert sum(v["total"] for v in s["subsets"].values()) == total
    for sub in s["subsets"].values():
        assert set(sub) >= {"total", "usable", "skipped"}


def test_data_show_readable(capsys, data_dir):
    rc, out, _ = _run(capsys, "data", "show", "hh-rlhf:helpful", "--data-dir", str(data_dir))
    assert rc == 0 and "6240 records" in out and "identical-responses" in out and "helpful-online" in out


def test_bench_show_json_contract(capsys, data_dir):
    rc, out, _ = _run(capsys, "bench", "show", "rm-bench", "--data-dir", str(data_dir), "--json")
    s = json.loads(out)
    assert rc == 0 and s["items"] == 798
    assert s["subsets"]["safety-response"] == {"items": 157, "group": "harmless", "metric": "rm-bench"}
    rc, out, _ = _run(capsys, "bench", "show", "llmbar", "--data-dir", str(data_dir), "--json")
    s = json.loads(out)
    assert [v["items"] for v in s["subsets"].values()] == [100, 134, 92, 47, 46]
    assert s["groups"] == {"helpful": 419, "harmless": 0}


def test_bench_show_generic_file_with_group_override(capsys, tmp_path):
    f = tmp_path / "b.jsonl"
    f.write_text(json.dumps({"id": "1", "subset": "s1", "group": "helpful", "prompt": "p", "chosen": "a",
                             "rejected": "b"}) + "\n")
    groups = tmp_path / "g.yaml"
    groups.write_text("s1: harmless\n")
    rc, out, _ = _run(capsys, "bench", "show", str(f), "--groups", str(groups), "--json")
    from rmtension.bench.groups import set_group_overrides

    set_group_overrides({})
    assert rc == 0 and json.loads(out)["subsets"]["s1"]["group"] == "harmless"


@pytest.mark.parametrize("content,expected", [
    ('{"chosen": "a", "rejected": "b", "prompt": "p"}\nnot json\n', "bad.jsonl:2: malformed JSON"),
    ('{"chosen": "a", "prompt": "p"}\n', "bad.jsonl:1: missing field 'rejected'"),
    ('{"chosen": 3, "rejected": "b", "prompt": "p"}\n', "bad.jsonl:1: field 'chosen' must be a string"),
    ('[1, 2]\n', "bad.jsonl:1: expected a JSON object"),
    ("", "bad.jsonl: file is empty"),
])
def test_bad_input_is_one_line_naming_file_and_line(capsys, tmp_path, content, expected):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    rc, out, err = _run(capsys, "data", "show", str(f))
    assert rc == 2 and out == ""
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_gzip_and_json_list(capsys, tmp_path):
    f = tmp_path / "x.jsonl.gz"
    f.write_bytes(b"not gzip at all")
    rc, _, err = _run(capsys, "data", "show", str(f))
    assert rc == 2 and "x.jsonl.gz" in err and "cannot read" in err
    j = tmp_path / "y.json"
    j.write_text(json.dumps([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a"}]))
    rc, _, err = _run(capsys, "data", "show", str(j))
    assert rc == 2 and "y.json [record 1]: missing field 'rejected'" in err


def test_console_script_has_no_traceback_unless_debug(tmp_path):
    f = tmp_path / "bad.jsonl"
    with gzip.open(tmp_path / "ok.jsonl.gz", "wt") as fh:
        fh.write("")
    f.write_text("{oops\n")
    cmd = [sys.executable, "-m", "rmtension", "data", "show", str(f)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "bad.jsonl:1" in res.stderr
    res = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_every_command_has_help():
    from rmtension.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: rmtension " + name)
