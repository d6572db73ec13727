"""Nothing in a model folder is executed, and one run at a time works in a study folder.

The hostile folders here are real: a tiny model saved by ``save_pretrained`` whose configuration
gets an ``auto_map`` naming a ``modeling_evil.py`` that writes a marker file when imported. The first
test shows that plain ``transformers`` does run it when the terminal answers ``y``; the others show
that no rmtension command does, even with ``y`` waiting on stdin.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmtension.cli.main import main

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- hostile model folders


def _make_hostile(folder: Path, marker: Path, config_file: str = "config.json") -> Path:
    """Give a saved model folder custom code that writes ``marker`` when transformers imports it."""
    (folder / "modeling_evil.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('custom code ran')\n"
        "from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast\n"
        "class EvilConfig(GPT2Config):\n    model_type = 'evilgpt2'\n"
        "class EvilModel(GPT2ForSequenceClassification):\n    config_class = EvilConfig\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    path = folder / config_file
    cfg = json.loads(path.read_text())
    if config_file == "config.json":
        # An unknown model_type: transformers has no built-in class, so it must ask about the custom code.
        cfg["model_type"] = "evilgpt2"
        cfg["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig",
                           "AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    else:
        cfg["auto_map"] = {"AutoTokenizer": [None, "modeling_evil.EvilTokenizer"]}
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def clean_rm(tmp_path_factory) -> Path:
    from rmtension.models.reward_model import build_reward_model, save_reward_model

    out = tmp_path_factory.mktemp("clean") / "rm"
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    save_reward_model(model, tok, out, {"backbone": "tiny-gpt2", "objective": "helpful", "seed": 0})
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, with ``y`` waiting on stdin for any prompt."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "rmtension", *args], input="y\n", capture_output=True, text=True,
                          env=env, timeout=300)


def _assert_refused(proc: subprocess.CompletedProcess, config: Path, marker: Path) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rmtension: error: "), proc.stderr
    assert str(config) in lines[0] and "auto_map" in lines[0]
    assert "Do you wish" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists(), "the folder's custom code ran"


def test_the_hostile_folder_really_runs_code_in_plain_transformers(clean_rm, tmp_path):
    """The control: without rmtension's guard, answering ``y`` runs the folder's code."""
    folder = _copy(clean_rm, tmp_path / "evil")
    marker = tmp_path / "marker"
    _make_hostile(folder, marker)
    code = f"from transformers import AutoConfig\nAutoConfig.from_pretrained({str(folder)!r})\n"
    subprocess.run([sys.executable, "-c", code], input="y\n", capture_output=True, text=True, timeout=300)
    assert marker.read_text() == "custom code ran"


def test_eval_neurons_and_train_refuse_a_folder_with_custom_code(clean_rm, tmp_path, data_dir):
    rm = _copy(clean_rm, tmp_path / "evil-rm")
    marker = tmp_path / "marker"
    config = _make_hostile(rm, marker)
    _assert_refused(_cli(["eval", "--rm", str(rm), "--bench", "hh-heldout", "--max-items", "2",
                          "--data-dir", str(data_dir), "--out", str(tmp_path / "eval")]), config, marker)
    _assert_refused(_cli(["neurons", "score", "--rm", str(rm), "--data", "hh-rlhf:helpful", "--max-pairs", "2",
                          "--data-dir", str(data_dir), "--out", str(tmp_path / "s.npz")]), config, marker)

    from rmtension.models.tiny import build_tiny

    backbone = tmp_path / "evil-backbone"
    backbone.mkdir()
    build_tiny("tiny-gpt2", backbone)
    bconfig = _make_hostile(backbone, marker)
    _assert_refused(_cli(["train", "--backbone", str(backbone), "--objective", "helpful", "--seed", "0",
                          "--max-pairs", "8", "--data-dir", str(data_dir), "--out", str(tmp_path / "trained")]),
                    bconfig, marker)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "trained").exists()


def test_custom_code_in_the_tokenizer_config_or_the_base_backbone_is_refused(clean_rm, tmp_path, data_dir, capsys):
    marker = tmp_path / "marker"
    rm = _copy(clean_rm, tmp_path / "tok-rm")
    tconfig = _make_hostile(rm, marker, "tokenizer_config.json")
    assert main(["eval", "--rm", str(rm), "--bench", "hh-heldout", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert str(tconfig) in err and "auto_map" in err and len(err.strip().splitlines()) == 1
    # A clean RM whose untrained base (for the change score) is a hostile backbone folder.
    from rmtension.models.tiny import build_tiny

    backbone = tmp_path / "evil-base"
    backbone.mkdir()
    build_tiny("tiny-gpt2", backbone)
    bconfig = _make_hostile(backbone, marker)
    capsys.readouterr()  # build_tiny's own progress output
    assert main(["neurons", "score", "--rm", str(clean_rm), "--data", "hh-rlhf:helpful", "--max-pairs", "2",
                 "--method", "change", "--base", str(backbone), "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err  # the clean RM was loaded first (its progress bar), then the base refused
    errors = [line for line in err.splitlines() if line.startswith("rmtension: error: ")]
    assert len(errors) == 1 and str(bconfig) in errors[0] and "Traceback" not in err
    assert not marker.exists()


def test_pickled_weights_are_refused_in_one_line(clean_rm, tmp_path, data_dir, capsys):
    rm = _copy(clean_rm, tmp_path / "bin-rm")
    (rm / "model.safetensors").rename(rm / "pytorch_model.bin")
    assert main(["eval", "--rm", str(rm), "--bench", "hh-heldout", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pytorch_model.bin" in err and "safetensors only" in err


def test_a_pickled_statistics_file_is_refused_without_unpickling(tmp_path, capsys):
    """``.npz`` statistics are read with ``allow_pickle=False``: an object array is refused, never unpickled."""
    import numpy as np

    marker = tmp_path / "marker"
    payload = np.empty(1, dtype=object)
    payload[0] = _Hostile(marker)
    evil = tmp_path / "evil.npz"
    np.savez(evil, mean=payload)
    with np.load(evil, allow_pickle=True) as z:  # the control: unpickling it runs the payload
        z["mean"]
    assert marker.exists()
    marker.unlink()
    assert main(["neurons", "select", "--scores", str(evil), "--top-percent", "10", "--out", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(evil) in err and not marker.exists()


class _Hostile:
    """Unpickling this writes a marker file: what a malicious pickle could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _calls_without_trust_flag(path: Path) -> list[str]:
    """``X.from_pretrained(...)`` and ``pipeline(...)`` calls that do not pass ``trust_remote_code``."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name not in ("from_pretrained", "pipeline"):
            continue
        named = {k.arg for k in node.keywords}
        spread = {k.value.id for k in node.keywords if k.arg is None and isinstance(k.value, ast.Name)}
        if "trust_remote_code" not in named and "NO_REMOTE_CODE" not in spread:
            bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return bad


def test_every_from_pretrained_call_refuses_remote_code():
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))
    bad = [c for f in files for c in _calls_without_trust_flag(f)]
    assert not bad, bad
    from rmtension.models.backbones import NO_REMOTE_CODE

    assert NO_REMOTE_CODE == {"trust_remote_code": False}


# ----------------------------------------------------------------------------- the study lock

SMALL_STUDY = {"name": "locked", "backbones": ["tiny-gpt2"], "seeds": [0], "objectives": ["helpful"],
               "training": {"preset": "cpu", "overrides": {"max_pairs": 8, "batch_size": 8, "max_length": 64}}}

HOLDER = """
import sys, time
from rmtension.study.lock import study_lock
cell = sys.argv[2] if len(sys.argv) > 2 else None
with study_lock(sys.argv[1], cell):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(root: Path, cell: str | None = None) -> subprocess.Popen:
    """Another process holding the study folder (or one cell of it) until killed."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), *([cell] if cell else [])],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_second_run_on_a_locked_study_folder_stops_at_once(tmp_path, capsys):
    import yaml

    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(SMALL_STUDY))
    out = tmp_path / "study"
    holder = _hold(out)
    try:
        t0 = time.time()
        assert main(["run", str(cfg), "--out", str(out), "--no-report"]) == 2
        err = capsys.readouterr().err.strip()
        assert time.time() - t0 < 30
        assert len(err.splitlines()) == 1 and str(out / ".lock") in err and f"pid {holder.pid}" in err, err
        assert not (out / "steps").exists() and not (out / "config.yaml").exists()  # nothing touched
        # A cell job is refused too, naming the whole-study holder.
        assert main(["run", str(cfg), "--out", str(out), "--cell", "tiny-gpt2/helpful/0", "--no-report"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
    finally:
        _kill(holder)
    # The holder was killed without any clean-up: its flock went with it, so nothing blocks now.
    assert json.loads((out / ".lock").read_text())["pid"] == holder.pid  # the stale record is still there
    from rmtension.study.lock import study_lock

    with study_lock(out) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.read_text() == ""  # released cleanly: the record is cleared


def test_cells_run_side_by_side_but_not_twice_and_exclude_a_whole_run(tmp_path):
    from rmtension.errors import RmtensionError
    from rmtension.study.lock import cell_lock_path, study_lock

    out = tmp_path / "study"
    a = _hold(out, "tiny-gpt2/helpful/0")
    try:
        with study_lock(out, "tiny-gpt2/harmless/0"):  # another cell: allowed alongside
            pass
        with pytest.raises(RmtensionError) as same:
            with study_lock(out, "tiny-gpt2/helpful/0"):
                pass
        assert str(cell_lock_path(out, "tiny-gpt2/helpful/0")) in str(same.value) and f"pid {a.pid}" in str(same.value)
        with pytest.raises(RmtensionError) as whole:
            with study_lock(out):
                pass
        assert f"pid {a.pid}" in str(whole.value) and "--cell tiny-gpt2/helpful/0" in str(whole.value)
    finally:
        _kill(a)
    with study_lock(out):  # the cell job is gone: a whole-study run may start
        pass


def test_two_rmtension_runs_on_one_folder(tmp_path, data_dir, capsys):
    """The issue's case: a second `rmtension run` while the first works refuses at once, naming it."""
    import yaml

    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(SMALL_STUDY))
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.Popen([sys.executable, "-m", "rmtension", "run", str(cfg), "--out", str(out),
                              "--data-dir", str(data_dir), "--no-report"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None:
            try:
                if json.loads((out / ".lock").read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the test could see its lock"
        assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {first.pid}" in err and str(out / ".lock") in err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
