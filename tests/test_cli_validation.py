"""Every number and path a user gives is checked in one place, and every refusal is one line, exit 2.

The property-style test walks the parser that ``rmtension.cli.main`` builds, so an option added
later is covered without touching this file; the other tests pin each reported misreading
(issue 18, items 8-10) to the behaviour that replaced it.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from cli_walk import commands, run_main

from rmtension import validate as V
from rmtension.cli.main import build_parser, main
from rmtension.errors import InputError, RmtensionError

REPO = Path(__file__).resolve().parent.parent


_run = run_main


def _assert_one_line_refusal(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("rmtension: error: "), err
    for needle in needles:
        assert needle in lines[0], err


# ----------------------------------------------------------------------------- the parser, walked


def _numeric_options() -> list[tuple[tuple[str, ...], str, V.Rule | V.ListRule]]:
    out = []
    for path, parser in commands(build_parser()):
        for action, rule in V.rules_of(parser._actions):
            out.append((path, action.option_strings[-1] if action.option_strings else action.dest, rule))
    return out


NUMERIC = _numeric_options()


def _bad_values(rule: V.Rule) -> list[str]:
    """Values no numeric option may accept, plus those outside this rule's declared range."""
    bad = ["nan", "NaN", "inf", "-inf", "1e309", "-1e309", "abc", "", " ", "1,2"]
    if rule.kind is int:
        bad += ["1.5", "1e3", str(2**64), "0x10"]
    if -1 not in rule.special and rule.lo is not None and rule.lo > -1:
        bad.append("-1")
    if rule.lo is not None and (rule.lo > 0 or (rule.lo == 0 and rule.lo_open)):
        bad.append("0")
    if rule.hi is not None:
        bad.append(str(int(rule.hi) + 1) if rule.kind is int else repr(rule.hi * 1.5 + 1))
    return bad


def test_the_walk_finds_the_options_the_issue_names():
    found = {(" ".join(p), opt) for p, opt, _ in NUMERIC}
    for cmd, opt in [("eval", "--max-items"), ("eval", "--max-length"), ("neurons score", "--max-pairs"),
                     ("train", "--epochs"), ("train", "--seed"), ("train", "--lr"), ("data show", "--heldout-fraction"),
                     ("ablate", "--seed"), ("ablate", "--top-percent"), ("neurons select", "--top-percent"),
                     ("compare", "--threshold")]:
        assert (cmd, opt) in found, (cmd, opt)


def test_no_option_reads_a_bare_int_or_float():
    """A new numeric option must name a rule of rmtension.validate, or it would accept -1, 0 and nan."""
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            assert action.type not in (int, float), (path, action.option_strings)


@pytest.mark.parametrize("path,opt,rule", NUMERIC, ids=[f"{' '.join(p)} {o}" for p, o, _ in NUMERIC])
def test_every_numeric_option_refuses_bad_values_in_one_line(capsys, path, opt, rule):
    item = rule.item if isinstance(rule, V.ListRule) else rule
    values = _bad_values(item)
    if isinstance(rule, V.ListRule):  # one bad entry spoils the list; so does an empty list
        values = [f"0,{v}" for v in values if v.strip() and "," not in v] + ["", ",,"]
    for value in values:
        rc, out, err = _run(capsys, *path, f"{opt}={value}")
        _assert_one_line_refusal(rc, err, opt)
        assert out == ""
    # the rule itself accepts its lower bound (or 1): the refusals above are not refusals of everything
    good = "1" if item.kind is int and (item.lo is None or item.lo <= 1) else "0.5" if (item.hi or 2) >= 0.5 else "0"
    assert rule(good) is not None


def test_the_separate_value_form_is_refused_too(capsys):
    # `--opt -inf` looks like an option to argparse; `--opt -2` is a value: both are one-line refusals
    for argv in (("eval", "--max-items", "-2"), ("eval", "--max-items", "-inf"), ("train", "--epochs", "0"),
                 ("neurons", "score", "--max-pairs", "-1"), ("train", "--seed", str(2**32))):
        rc, _, err = _run(capsys, *argv)
        _assert_one_line_refusal(rc, err, argv[-2])


def test_other_argparse_errors_are_one_line_too(capsys):
    for argv in (("eval",), ("eval", "--dtype", "float8"), ("no-such-command",), ("neurons", "select", "--bogus", "1")):
        rc, _, err = _run(capsys, *argv)
        _assert_one_line_refusal(rc, err)


@pytest.mark.parametrize("argv", [
    ["eval", "--max-items", "-2"],
    ["train", "--lr", "nan"],
    ["data", "show", "x.jsonl", "--heldout-fraction", "nan"],
    ["neurons", "random-like", "x.json", "--seed", str(2**64), "--out", "y.json"],
])
def test_bad_values_through_the_real_program(argv):
    """The installed entry point (a fresh interpreter), not only main() in-process."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "rmtension", *argv], capture_output=True, text=True, env=env,
                          timeout=120)
    _assert_one_line_refusal(proc.returncode, proc.stderr)
    assert proc.stdout == ""


# ----------------------------------------------------------------------------- the rules themselves


def test_rules_read_text_strictly():
    assert V.positive_int("3") == 3 and V.positive_int(" 7 ") == 7
    assert V.seed("0") == 0 and V.seed(str(2**32 - 1)) == 2**32 - 1
    for rule, text in [(V.positive_int, "0"), (V.positive_int, "-2"), (V.seed, "-1"), (V.seed, str(2**32)),
                       (V.positive_float, "0"), (V.positive_float, "nan"), (V.ratio, "1.01"), (V.ratio, "-0.1"),
                       (V.percent, "0"), (V.percent, "100.5"), (V.heldout_fraction, "1"), (V.finite_float, "inf")]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            rule(text)
    assert V.percent("100") == 100.0 and V.percent_or_zero("0") == 0.0 and V.ratio("1") == 1.0
    assert V.seed_list("0, 1,2") == [0, 1, 2] and V.percent_list("0,5,10") == [0.0, 5.0, 10.0]
    assert V.step_limit.accepts(-1) and not V.step_limit.accepts(0) and not V.step_limit.accepts(-2)
    assert not V.positive_int.accepts(True) and not V.positive_int.accepts(2.0)


def _numeric_fields(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, f"{prefix}{f.name}.")
            continue
        args = set(typing.get_args(tp)) | {tp}
        for a in list(args):
            args |= set(typing.get_args(a))
        if args & {int, float}:
            out.append(prefix + f.name)
    return out


def test_every_numeric_config_field_has_a_rule():
    from rmtension.study.config import StudyConfig
    from rmtension.training.config import TrainConfig

    assert set(_numeric_fields(TrainConfig)) <= set(V.TRAIN_FIELDS)
    assert set(_numeric_fields(StudyConfig)) <= set(V.STUDY_FIELDS)


# ----------------------------------------------------------------------------- item 8: config fields


def test_train_config_fields_are_checked():
    from rmtension.training.config import make_config, parse_assignments

    for bad, field in [({"warmup_ratio": 5.0}, "warmup_ratio"), ({"lr": math.nan}, "lr"), ({"epochs": 0.0}, "epochs"),
                       ({"seed": -1}, "seed"), ({"seed": 2**40}, "seed"), ({"max_steps": 0}, "max_steps"),
                       ({"max_pairs": 0}, "max_pairs"), ({"weight_decay": -1.0}, "weight_decay"),
                       ({"lr": math.inf}, "lr"), ({"heldout_fraction": 1.0}, "heldout_fraction")]:
        with pytest.raises(RmtensionError, match=f"^{field}: expected"):
            make_config("cpu", **bad)
    with pytest.raises(RmtensionError, match="warmup_ratio: expected a number in"):
        make_config("cpu", **parse_assignments(["warmup_ratio=5"]))
    with pytest.raises(RmtensionError, match="lr: expected"):
        make_config("cpu", **parse_assignments(["lr=nan"]))
    cfg = make_config("cpu", max_steps=-1, warmup_ratio=0.1, epochs=None, max_pairs=None)
    assert cfg.max_steps == -1 and cfg.warmup_ratio == 0.1


def test_train_set_override_refused_on_the_command_line(capsys, tmp_path):
    rc, _, err = _run(capsys, "train", "--backbone", "tiny-llama", "--objective", "helpful", "--seed", "0",
                      "--out", tmp_path / "rm", "--set", "warmup_ratio=5", "--print-config")
    _assert_one_line_refusal(rc, err, "warmup_ratio")
    assert not (tmp_path / "rm").exists()


@pytest.mark.parametrize("yaml_text,message", [
    ("evaluation:\n  max_items: -1\n", "evaluation.max_items: expected a positive integer"),
    ("evaluation:\n  max_items: 0\n", "evaluation.max_items: expected a positive integer"),
    ("seeds: [0, -1]\n", "seeds[1]: expected a seed"),
    (f"seeds: [{2**32}]\n", "seeds[0]: expected a seed"),
    ("training:\n  overrides:\n    lr: .nan\n", "training.overrides.lr: expected a finite number > 0"),
    ("training:\n  overrides:\n    warmup_ratio: 5\n", "training.overrides.warmup_ratio: expected a number in [0, 1]"),
    ("training:\n  overrides:\n    epochs: 0\n", "training.overrides.epochs: expected"),
    ("neurons:\n  max_pairs: 0\n", "neurons.max_pairs: expected a positive integer"),
    ("neurons:\n  k: .inf\n", "neurons.k: expected a percentage"),
    ("ablation:\n  curves:\n    k: [0, 5, 101]\n", "ablation.curves.k[2]: expected a percentage in [0, 100]"),
    ("ablation:\n  max_items: {rm-bench: -3}\n", "ablation.max_items.rm-bench: expected a positive integer"),
    ("evaluation:\n  benchmarks: ['rm-bench:,,']\n", "evaluation.benchmarks[0]: 'rm-bench:,,' names no subset"),
    ("", "the study config is empty"),
    ("# only a comment\n", "the study config is empty"),
])
def test_study_config_values_are_checked(capsys, tmp_path, yaml_text, message):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml_text)
    rc, _, err = _run(capsys, "run", cfg, "--out", tmp_path / "out", "--dry-run")
    _assert_one_line_refusal(rc, err, message, str(cfg))
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- item 9: tracebacks


def test_cuda_device_without_cuda_is_one_line(monkeypatch):
    import torch

    from rmtension.evaluation.scorer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RmtensionError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(RmtensionError, match="CUDA is not available"):
        resolve_device("cuda:1")
    with pytest.raises(RmtensionError, match="unknown device"):
        resolve_device("gpu")
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type == "cpu"


def test_run_with_the_config_inside_its_own_out_folder(tmp_path, monkeypatch):
    """`run OUT/config.yaml --out OUT` used to fail copying the config onto itself (SameFileError)."""
    import rmtension.study.pipeline as pipeline
    from rmtension.cli.cmd_study import _execute

    monkeypatch.setattr(pipeline, "execute", lambda plan, cell, echo, **kw: {"ran": 0, "cached": 0})
    cfg = tmp_path / "config.yaml"
    cfg.write_text("backbones: [tiny-llama]\n")
    done = _execute(None, str(tmp_path), "tiny-llama/helpful/0", report=False, config_text=cfg.read_bytes())
    assert (done["ran"], done["cached"], done["summary"]) == (0, 0, None)  # one cell: no summary yet
    assert cfg.read_text() == "backbones: [tiny-llama]\n"
    other = tmp_path / "elsewhere.yaml"  # a config beside it is still copied in
    other.write_text("backbones: [tiny-gpt2]\n")
    _execute(None, str(tmp_path), "x", report=False, config_text=other.read_bytes())
    assert cfg.read_text() == "backbones: [tiny-gpt2]\n"


def _raise(exc: BaseException):
    def f(*a, **k):
        raise exc
    return f


def test_atomic_writer_full_disk_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    import rmtension.files as files

    target = tmp_path / "out" / "results.json"
    target.parent.mkdir()
    target.write_text("old\n")
    monkeypatch.setattr(files.os, "replace", _raise(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(RmtensionError, match=f"^no space left on {tmp_path / 'out'}$"):
        files.write_json_atomic(target, {"a": 1})
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_atomic_writer_read_only_or_forbidden_folder(tmp_path, monkeypatch):
    """Tests run as root, where chmod does not stop a write: the refusal is simulated."""
    import rmtension.files as files

    for code, message in [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")]:
        monkeypatch.setattr(files.tempfile, "mkstemp", _raise(OSError(code, os.strerror(code))))
        with pytest.raises(RmtensionError, match=message):
            files.write_atomic(tmp_path / "x.json", lambda fh: fh.write("{}"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc,message", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/study/steps/train/model.safetensors"),
     "no space left on /data/study/steps/train"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/rm"), "cannot write /mnt/ro/rm: read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "permission denied: /root/x"),
    (RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left\" })"),
     "no space left on"),
])
def test_disk_errors_anywhere_in_a_command_are_one_line(capsys, tmp_path, monkeypatch, exc, message):
    """train/run/eval/score all end in main(); a disk error from any library below it is one line."""
    import rmtension.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", _raise(exc))
    rc, _, err = _run(capsys, "train", "--backbone", "tiny-llama", "--objective", "helpful", "--seed", "0",
                      "--out", tmp_path / "rm")
    _assert_one_line_refusal(rc, err, message)


def test_a_disk_error_wrapped_by_a_library_is_found_in_the_chain(capsys, tmp_path, monkeypatch):
    import rmtension.study.pipeline as pipeline

    def execute(plan, cell, echo, **kw):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "steps" / "x.bin"))
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos") from inner

    monkeypatch.setattr(pipeline, "execute", execute)
    cfg = tmp_path / "s.yaml"
    cfg.write_text("backbones: [tiny-llama]\n")
    rc, _, err = _run(capsys, "run", cfg, "--out", tmp_path / "out", "--no-report")
    _assert_one_line_refusal(rc, err, f"no space left on {tmp_path / 'out' / 'steps'}")


def test_other_exceptions_keep_their_traceback(monkeypatch, tmp_path):
    """Only disk errors are turned into one line: a bug must stay visible."""
    import rmtension.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", _raise(KeyError("bug")))
    with pytest.raises(KeyError):
        main(["train", "--backbone", "tiny-llama", "--objective", "helpful", "--seed", "0", "--out", str(tmp_path / "r")])


def test_deeply_nested_json_is_an_input_error(capsys, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"prompt": ' + deep + "}\n")
    (tmp_path / "set.json").write_text(deep)
    (tmp_path / "groups.json").write_text(deep)
    for argv, where in [(("data", "show", tmp_path / "deep.json"), "deep.json"),
                        (("data", "show", tmp_path / "deep.jsonl"), "deep.jsonl:1"),
                        (("neurons", "show", tmp_path / "set.json"), "set.json"),
                        (("bench", "show", tmp_path / "deep.jsonl", "--groups", tmp_path / "groups.json"), "groups.json")]:
        rc, _, err = _run(capsys, *argv)
        _assert_one_line_refusal(rc, err, where, "nested too deeply")


def _set(**over) -> dict:
    obj = {"layers": 2, "neurons_per_layer": 4, "neurons": {"0": [1]}, "meta": {"site": "act"}}
    obj.update(over)
    return obj


@pytest.mark.parametrize("obj,message", [
    (_set(meta=["act"]), "'meta' must be a JSON object, got list"),
    (_set(meta="x"), "'meta' must be a JSON object, got str"),
    (_set(meta={"site": 3}), "'meta.site' must be a string or null"),
    (_set(meta={"k": "ten"}), "'meta.k' must be a number or null"),
    (_set(meta={"seed": 1.5}), "'meta.seed' must be an integer or null"),
    (_set(layers=10**9), "beyond any model"),
    (_set(neurons_per_layer=10**12), "beyond any model"),
    (_set(layers=9_000, neurons_per_layer=9_000_000), "beyond any model"),
])
def test_malformed_or_huge_neuron_sets_are_one_line(capsys, tmp_path, obj, message):
    f = tmp_path / "set.json"
    f.write_text(json.dumps(obj))
    rc, _, err = _run(capsys, "neurons", "show", f)
    _assert_one_line_refusal(rc, err, str(f), message)


# ----------------------------------------------------------------------------- item 10


def test_bom_files_are_read(capsys, tmp_path):
    from rmtension.data.io import iter_records
    from rmtension.neurons.setfile import load_set

    rec = {"prompt": "p", "chosen": "a", "rejected": "b"}
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (json.dumps(rec) + "\n").encode() * 2)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([rec]).encode())
    assert [loc.record for loc in iter_records(tmp_path / "bom.jsonl")] == [rec, rec]
    assert [loc.record for loc in iter_records(tmp_path / "bom.json")] == [rec]
    rc, out, err = _run(capsys, "data", "show", tmp_path / "bom.jsonl", "--json")
    assert rc == 0 and json.loads(out)["usable"] == 2, err
    (tmp_path / "set.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(_set()).encode())
    assert len(load_set(tmp_path / "set.json")) == 1
    (tmp_path / "study.yaml").write_bytes(b"\xef\xbb\xbfbackbones: [tiny-llama]\n")
    from rmtension.study.config import load_study_config

    assert load_study_config(tmp_path / "study.yaml").backbones == ["tiny-llama"]


def test_empty_subset_filter_is_an_error(capsys):
    from rmtension.bench.loaders import load_benchmark

    for name in ("rm-bench:,,", "rm-bench:", "llmbar: , "):
        with pytest.raises(RmtensionError, match="no subset named"):
            load_benchmark(name, "/no/such/dir")  # refused before any file is looked for
    rc, _, err = _run(capsys, "bench", "show", "rm-bench:,,")
    _assert_one_line_refusal(rc, err, "rm-bench:,,")


def test_bad_group_names_the_file_and_line(capsys, tmp_path):
    f = tmp_path / "bench.jsonl"
    good = {"prompt": "p", "chosen": "a", "rejected": "b", "subset": "chat"}
    f.write_text(json.dumps(good) + "\n" + json.dumps({**good, "subset": "s", "group": "evil"}) + "\n")
    rc, _, err = _run(capsys, "bench", "show", f)
    _assert_one_line_refusal(rc, err, f"{f}:2", "'evil'")
    groups = tmp_path / "groups.yaml"
    groups.write_text("chat: evil\n")
    rc, _, err = _run(capsys, "bench", "show", f, "--groups", groups)
    _assert_one_line_refusal(rc, err, str(groups), "'evil'")


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory) -> Path:
    from rmtension.models.reward_model import build_reward_model, save_reward_model

    model, tok = build_reward_model("tiny-llama", seed=0)
    out = tmp_path_factory.mktemp("rm") / "tiny-llama-helpful-s0"
    save_reward_model(model, tok, out, {"backbone": "tiny-llama", "seed": 0, "objective": "helpful", "template": "hh"})
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    rows = [{"prompt": f"Question {i}?", "chosen": f"A helpful answer {i}.", "rejected": "No."} for i in range(4)]
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_select_refuses_to_overwrite_without_force(capsys, tmp_path, tiny_rm, pairs):
    scores = tmp_path / "s.npz"
    rc, _, err = _run(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs, "--out", scores)
    assert rc == 0, err
    precious = tmp_path / "notes.txt"
    precious.write_text("weeks of notes\n")
    rc, _, err = _run(capsys, "neurons", "select", "--scores", scores, "--out", precious)
    _assert_one_line_refusal(rc, err, str(precious), "--force")
    assert precious.read_text() == "weeks of notes\n"
    rc, _, err = _run(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs, "--out", scores)
    _assert_one_line_refusal(rc, err, "already exists")
    rc, _, err = _run(capsys, "neurons", "select", "--scores", scores, "--out", tmp_path)
    _assert_one_line_refusal(rc, err, "is a folder")
    rc, _, err = _run(capsys, "neurons", "select", "--scores", scores, "--out", precious, "--force")
    assert rc == 0, err
    assert json.loads(precious.read_text())["format"] == "rmtension.neuron-set/1"


def test_truncated_weights_are_one_line(capsys, tmp_path, tiny_rm, pairs):
    import shutil

    broken = tmp_path / "rm"
    shutil.copytree(tiny_rm, broken)
    weights = broken / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    rc, _, err = _run(capsys, "neurons", "score", "--rm", broken, "--data", pairs, "--out", tmp_path / "s.npz")
    _assert_one_line_refusal(rc, err, f"cannot load reward model from {broken}")
    assert not (tmp_path / "s.npz").exists()


def test_eval_and_score_on_a_full_disk(capsys, tmp_path, monkeypatch, tiny_rm, pairs):
    import rmtension.files as files

    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "subset": "chat"}) + "\n")
    out = tmp_path / "eval"
    monkeypatch.setattr(files.os, "replace", _raise(OSError(errno.ENOSPC, "No space left on device")))
    rc, _, err = _run(capsys, "eval", "--rm", tiny_rm, "--bench", bench, "--out", out, "--no-progress", "--device", "cpu")
    lines = [ln for ln in err.splitlines() if ln.startswith("rmtension: error:")]
    assert rc == 2 and lines == [f"rmtension: error: no space left on {out}"], err
    assert "Traceback" not in err and not (out / "results.json").exists() and not list(out.glob(".*.tmp"))
    rc, _, err = _run(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs, "--out", tmp_path / "s.npz")
    assert rc == 2 and "no space left on" in err and "Traceback" not in err, err
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".npz", ".tmp"))] == []


def test_no_usable_pairs_says_why(capsys, tmp_path, tiny_rm):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}) + "\n"
                 + json.dumps({"prompt": "p", "chosen": "", "rejected": "x"}) + "\n"
                 + json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"}) + "\n")
    rc, _, err = _run(capsys, "neurons", "score", "--rm", tiny_rm, "--data", f, "--out", tmp_path / "s.npz")
    _assert_one_line_refusal(rc, err, "2 identical-responses", "1 empty-response")
    assert "max_length" not in err
    rc, _, err = _run(capsys, "train", "--backbone", "tiny-llama", "--objective", "helpful", "--seed", "0",
                      "--train-data", f, "--out", tmp_path / "rm", "--preset", "cpu")
    lines = [ln for ln in err.splitlines() if ln.startswith("rmtension: error:")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "2 identical-responses" in lines[0] and "max_length" not in lines[0]


def test_input_error_locations_survive():
    err = InputError("f.jsonl", "bad", line=3)
    assert str(err) == "f.jsonl:3: bad"


def test_malformed_statistics_meta_and_eval_folders_are_one_line(capsys, tmp_path):
    import numpy as np

    from rmtension.neurons.stats import STATS_FORMAT

    for meta, message in [("[1, 2]", "'meta' must be a JSON object"), ("[" * 100_000, "'meta' is not valid JSON"),
                          (json.dumps({"format": STATS_FORMAT, "groups": ["chosen"], "site": "act",
                                       "layers": "many", "neurons_per_layer": 2}), "malformed 'meta'")]:
        f = tmp_path / "s.npz"
        np.savez(f, meta=np.array(meta), count=np.zeros(1), texts=np.zeros(1))
        rc, _, err = _run(capsys, "neurons", "show", f)
        _assert_one_line_refusal(rc, err, str(f), message)
    run = tmp_path / "eval"
    run.mkdir()
    (run / "results.json").write_text("[" * 100_000)
    (run / "items.jsonl").write_text("")
    rc, _, err = _run(capsys, "compare", run, run, run)
    _assert_one_line_refusal(rc, err, "results.json", "nested too deeply")
