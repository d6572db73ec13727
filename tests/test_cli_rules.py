"""The rules every command follows (issue 16, "one tool, not nine").

- ``--help`` of the program and of every command runs without importing torch;
- every command has a description, takes ``--json`` and ``--quiet``, and the README names it;
- stdout holds only the result: with ``--json`` exactly one JSON document (also while HF's Trainer
  logs), with ``--quiet`` nothing; progress and step lines go to stderr;
- one flag per idea, old spellings still accepted;
- the built-in configs run by name and equal the checkout's ``configs/``;
- one list per name: the torch-side registries register exactly ``rmtension.names``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_walk import commands, run_main

from rmtension import names
from rmtension.cli.main import build_parser, main

REPO = Path(__file__).resolve().parent.parent


def _leaves() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The commands that do something (no further subcommands)."""
    return [(path, p) for path, p in commands(build_parser())
            if path and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


_run = run_main


# ----------------------------------------------------------------------------- --help without torch

HELP_PROBE = """
import json, sys, contextlib, io
from rmtension.cli.main import build_parser, main
import argparse

def walk(parser, path=()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))

paths = list(walk(build_parser()))
for path in paths:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*path, "--help"])
        except SystemExit:
            pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "trl", "datasets", "accelerate"))
print(json.dumps({"paths": len(paths), "heavy": heavy}))
"""


def test_help_of_every_command_leaves_torch_unimported():
    """`rmtension --help` and every `rmtension CMD --help` build the parser and print help without torch
    (≈ 3 s of imports); a fresh interpreter, because this test process has torch loaded already."""
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["paths"] >= 20  # the program, its commands and subcommands were all walked
    assert report["heavy"] == [], report["heavy"]


def test_the_program_help_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "rmtension", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "quickstart" in done.stdout and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- every command alike


def test_every_command_has_a_description():
    for path, parser in commands(build_parser()):
        assert parser.description and len(parser.description) > 30, " ".join(path) or "rmtension"


def test_every_command_takes_json_and_quiet():
    for path, parser in _leaves():
        flags = {opt for a in parser._actions for opt in a.option_strings}
        assert {"--json", "--quiet"} <= flags, " ".join(path)


def test_every_command_that_runs_a_model_has_the_one_progress_rule():
    """--progress / --no-progress, default on (bars show only while stderr is a terminal)."""
    for path in (("eval",), ("ablate",), ("train",), ("neurons", "score")):
        parser = dict(_leaves())[path]
        action = next(a for a in parser._actions if "--progress" in a.option_strings)
        assert "--no-progress" in action.option_strings and action.default is True, path


def test_readme_lists_every_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for path, _ in _leaves():
        assert f"rmtension {' '.join(path)}" in readme, " ".join(path)


def test_one_flag_per_idea_and_the_old_spellings_still_work():
    parse = build_parser().parse_args
    new = parse(["ablate", "--rm", "r", "--bench", "b", "--out", "o", "--top-percent", "5,10", "--seed", "1,2",
                 "--match", "total"])
    old = parse(["ablate", "--rm", "r", "--bench", "b", "--out", "o", "--k", "5,10", "--seeds", "1,2",
                 "--random-match", "total"])
    assert (new.k, new.seeds, new.random_match) == (old.k, old.seeds, old.random_match) == ([5.0, 10.0], [1, 2], "total")
    default = parse(["ablate", "--rm", "r", "--bench", "b", "--out", "o"])
    assert (default.k, default.seeds, default.random_match) == ([0.0, 5.0, 10.0, 20.0, 30.0], [0], "per-layer")
    base = ["train", "--backbone", "tiny-llama", "--objective", "helpful", "--seed", "0", "--out", "o"]
    assert parse([*base, "--data", "x.jsonl"]).train_data == parse([*base, "--train-data", "x.jsonl"]).train_data == "x.jsonl"
    assert parse(base).train_data is None
    helps = {p: parser.format_help() for p, parser in _leaves()}
    for path, hidden in ((("ablate",), "--seeds"), (("ablate",), "--random-match"), (("ablate",), "--k "),
                         (("train",), "--train-data")):
        assert hidden not in helps[path], (path, hidden)


# ----------------------------------------------------------------------------- stdout is the result


def _neuron_set(tmp_path: Path) -> Path:
    import numpy as np

    from rmtension.neurons.sets import NeuronSet
    from rmtension.neurons.setfile import save_set

    mask = np.zeros((2, 8), dtype=bool)
    mask[0, [1, 3]] = True
    mask[1, 5] = True
    return save_set(tmp_path / "set.json", NeuronSet(mask, {"site": "act", "method": "magnitude"}))


def test_json_is_one_document_and_quiet_prints_nothing(capsys, tmp_path, data_dir):
    s = _neuron_set(tmp_path)
    cases = [
        (["bench", "list"], lambda d: "rm-bench" in d),
        (["data", "list"], lambda d: any(k.startswith("hh-rlhf") for k in d)),
        (["data", "show", "hh-rlhf:harmless-base@test", "--data-dir", data_dir], lambda d: d["usable"] > 0),
        (["neurons", "show", s], lambda d: d["count"] == 3),
        (["neurons", "random-like", s, "--seed", "1", "--out", tmp_path / "r.json", "--force"],
         lambda d: d["selected"] == 3),
        (["plan", "tiny"], lambda d: {r["status"] for r in d} == {"to run"} and len(d) > 10),
        (["run", "tiny", "--out", tmp_path / "study", "--dry-run"], lambda d: len(d) > 10),
    ]
    for argv, check in cases:
        rc, out, err = _run(capsys, *argv, "--json")
        assert rc == 0, (argv, err)
        assert check(json.loads(out)), argv  # the whole of stdout is one JSON document
        rc, out, err = _run(capsys, *argv, "--quiet")
        assert rc == 0 and out == "", (argv, out)
    assert (tmp_path / "r.json").is_file()  # --quiet still writes the file
    rc, _, err = _run(capsys, "bench", "list", "--json", "--quiet")
    assert rc == 2 and "not allowed with" in err


def test_train_and_eval_json_keep_library_logs_off_stdout(capsys, tmp_path, data_dir):
    """HF's Trainer prints a dict per logging step; with --json stdout must still be one JSON document."""
    rm = tmp_path / "rm"
    rc, out, err = _run(capsys, "train", "--backbone", "tiny-llama", "--objective", "harmless", "--seed", "0",
                        "--data", "hh-rlhf:harmless-base", "--data-dir", data_dir, "--preset", "cpu", "--max-pairs", "8",
                        "--batch-size", "4", "--max-length", "128", "--max-steps", "2", "--set", "logging_steps=1",
                        "--set", "heldout_max_pairs=4", "--no-progress", "--out", rm, "--json")
    assert rc == 0, err
    record = json.loads(out)
    assert record["out"] == str(rm) and record["record"]["trainer"]["global_steps"] == 2
    assert "'loss'" in err  # the Trainer's log dicts went to stderr
    rc, out, err = _run(capsys, "eval", "--rm", rm, "--bench", "rm-bench:chat", "--data-dir", data_dir,
                        "--max-items", "2", "--max-length", "128", "--out", tmp_path / "ev", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["results"]["benchmarks"]["rm-bench:chat"]["subsets"]["chat"]["n"] == 2
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["benchmarks"].keys() == \
        res["results"]["benchmarks"].keys()
    rc, out, err = _run(capsys, "eval", "--rm", rm, "--bench", "rm-bench:chat", "--data-dir", data_dir,
                        "--max-items", "2", "--max-length", "128", "--out", tmp_path / "ev2", "--quiet")
    assert rc == 0 and out == "", err
    assert (tmp_path / "ev2" / "results.json").is_file()


# ----------------------------------------------------------------------------- built-in configs


def test_builtin_configs_equal_the_checkout_copies():
    from rmtension.study.presets import builtin_names, resolve_config

    packaged = REPO / "src" / "rmtension" / "configs"
    root = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert root and set(root) <= {p.name for p in packaged.glob("*.yaml")}
    for name in root:  # an edit to one copy must be made to both (cp configs/X src/rmtension/configs/X)
        assert (REPO / "configs" / name).read_bytes() == (packaged / name).read_bytes(), \
            f"configs/{name} differs from src/rmtension/configs/{name}: the built-in copy must be the same file"
    assert {"tiny", "paper", "smollm2-cpu", "evidence-cpu", "quickstart"} <= set(builtin_names())
    assert resolve_config("tiny").read_bytes() == (REPO / "configs" / "tiny.yaml").read_bytes()
    from rmtension.study.config import load_study_config

    for name in builtin_names():  # each validates as the study would read it
        assert load_study_config(resolve_config(name)).backbones, name


def test_a_file_wins_over_a_builtin_name_and_unknown_names_list_the_builtins(tmp_path, monkeypatch, capsys):
    from rmtension.study.presets import resolve_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_text("name: mine\nbackbones: [tiny-gpt2]\n")
    assert resolve_config("tiny") == Path("tiny")
    rc, _, err = _run(capsys, "plan", "no-such-study")
    assert rc == 2 and "built-in config" in err and "evidence-cpu" in err


def test_run_json_reports_what_ran_and_step_lines_go_to_stderr(capsys, tmp_path, monkeypatch):
    """A real run prints step lines (with times and the ETA) on stderr and its result on stdout."""
    import rmtension.study.pipeline as P

    def fake_execute(plan, cell, echo, **kw):
        echo("[1/2] train:x …")
        echo("[1/2] train:x done in 3s; 1 step left, ETA 3s")
        return {"ran": 1, "cached": 1}

    monkeypatch.setattr(P, "execute", fake_execute)
    monkeypatch.setattr(P, "write_summary", lambda plan: tmp_path / "o" / "summary.json")
    rc, out, err = _run(capsys, "run", "tiny", "--out", tmp_path / "o", "--no-report", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"out": str(tmp_path / "o"), "ran": 1, "cached": 1,
                               "summary": str(tmp_path / "o" / "summary.json"), "report": None}
    assert "ETA 3s" in err
    rc, out, err = _run(capsys, "run", "tiny", "--out", tmp_path / "o", "--no-report")
    assert out.splitlines()[0] == "1 steps run, 1 cached" and "ETA" in err


# ----------------------------------------------------------------------------- ETA


def test_eta_uses_the_mean_time_of_each_kind():
    from rmtension.study.progress import StepClock, duration_text, step_done_line

    clock = StepClock()
    assert clock.eta(["train"]) is None  # nothing ran yet: no estimate rather than a wrong one
    clock.record("train", 100.0)
    clock.record("train", 200.0)
    clock.record("eval", 10.0)
    # two trains at their mean 150, one eval at 10, one unseen kind at the mean of all three (310 / 3)
    assert clock.eta(["train", "train", "eval", "overlap"]) == pytest.approx(310 + 310 / 3)
    assert [duration_text(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]
    assert step_done_line(3, 9, "eval:x", 65, 3725, ["a", "b"]) == "[3/9] eval:x done in 1m05s; 2 steps left, ETA 1h02m"
    assert step_done_line(9, 9, "overlap:x", 1, None, []) == "[9/9] overlap:x done in 1s; nothing left to run"


# ----------------------------------------------------------------------------- one list per name


def test_registries_register_exactly_the_listed_names():
    from rmtension.ablation.ablate import MODES
    from rmtension.neurons.scores import POOLS, SCORE_METHODS
    from rmtension.neurons.sites import SITES

    assert tuple(SCORE_METHODS.names()) == tuple(sorted(names.SCORE_METHODS))
    assert set(names.PAPER_SCORE_METHODS) <= set(names.SCORE_METHODS)
    assert POOLS == names.SCORE_POOLS and SITES == names.SITES and MODES == names.ABLATION_MODES


# ----------------------------------------------------------------------------- one reader


def test_every_reader_of_an_eval_folder_names_the_damaged_line(tmp_path):
    """`eval` folders are read by the evaluator, by `compare` and by the study's gather; a damaged line of
    items.jsonl is the same one-line error, naming file and line, in all three."""
    from rmtension.analysis.eval_runs import load_eval_run
    from rmtension.errors import InputError
    from rmtension.evaluation.evaluate import read_items
    from rmtension.study.gather import _items

    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"benchmarks": {}, "rm": {}}))
    row = {"benchmark": "b", "subset": "s", "id": "1", "chosen_scores": [1.0], "rejected_scores": [0.0], "correct": 1}
    (folder / "items.jsonl").write_text(json.dumps(row) + "\n" + '{"benchmark": "b", \n')
    where = f"{folder / 'items.jsonl'}:2: malformed JSON"
    for read in (read_items, lambda d: load_eval_run(d), lambda d: _items(d / "items.jsonl")):
        with pytest.raises(InputError, match=re.escape(where)):
            read(folder)
    (folder / "items.jsonl").write_text(json.dumps(row) + "\n")
    assert read_items(folder) == [row]
