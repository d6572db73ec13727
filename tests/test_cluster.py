"""The study on a cluster (issue 17): `run --executor ray`, `plan --slurm`, `run --step`.

The Ray tests start a local cluster of 2 CPUs and run a small study three times (serially, on Ray, on
Ray with a worker killed mid-step); they are marked slow (CI runs them; locally RMTENSION_SLOW=1) and
are skipped where Ray is not installed (it is an optional extra). The Slurm script and the install hint
need neither Ray nor a model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from rmtension.cli.main import main
from rmtension.study.config import load_study_config
from rmtension.study.pipeline import build_plan

REPO = Path(__file__).resolve().parent.parent

# The cluster tests' study: configs/tiny.yaml cut to one seed and fewer items (three cells that run side by
# side, every step kind), so that three runs of it fit in CI's time. Same sections, smaller numbers.
CLUSTER = {
    **yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text()),
    "name": "tiny-cluster",
    "seeds": [0],
}
CLUSTER["training"]["overrides"].update(max_pairs=16, heldout_max_pairs=8, max_length=128)
CLUSTER["evaluation"].update(benchmarks=["hh-heldout", "llmbar:llmbar-natural"], max_items=4, max_length=128)
CLUSTER["neurons"].update(max_pairs=6, max_length=128)
CLUSTER["ablation"].update(benchmarks=["hh-heldout"], max_items=3)
CLUSTER["ablation"]["curves"].update(k=[0, 10, 30], max_items=3)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(CLUSTER))
    return path


# ----------------------------------------------------------------------------- Slurm


def _parse_stages(script: str) -> list[dict]:
    """Each `sbatch` here-document of the script: its variable, dependency, #SBATCH options, case commands."""
    stages = []
    pattern = re.compile(r"^(jid_\w+)=\$\(sbatch --parsable(.*?) <<'(\w+)'\n(.*?)\n\3\n\)$", re.S | re.M)
    for var, flags, _, body in pattern.findall(script):
        dep = re.search(r"--dependency=afterok:\$(\w+)", flags)
        options = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", body, re.M))
        cases = re.findall(r"^  (\d+)\) exec (.*) ;;$", body, re.M)
        stages.append({"var": var, "after": dep.group(1) if dep else None, "options": options,
                       "commands": {int(i): shlex.split(c) for i, c in cases}})
    return stages


def test_slurm_script_has_one_array_per_stage_afterok_and_one_line_per_cell(tmp_path, capsys):
    cfg = REPO / "configs" / "tiny.yaml"
    out = tmp_path / "study"
    rc = main(["plan", str(cfg), "--out", str(out), "--slurm", "--gpus", "1", "--partition", "gpu",
               "--time", "02:00:00", "--data-dir", str(tmp_path)])
    script = capsys.readouterr().out
    assert rc == 0
    plan = build_plan(load_study_config(cfg), out, str(tmp_path))
    stages = _parse_stages(script)
    assert [s["var"] for s in stages] == ["jid_cells", "jid_groups", "jid_report"]
    # afterok chain: each stage waits for the one before it
    assert [s["after"] for s in stages] == [None, "jid_cells", "jid_groups"]
    cells, groups, report = stages
    # one array index per cell, each `rmtension run CONFIG --out OUT --cell C` on the same folder
    assert cells["options"]["array"] == f"0-{len(plan.cells()) - 1}" and len(plan.cells()) == 6
    assert sorted(c[c.index("--cell") + 1] for c in cells["commands"].values()) == sorted(plan.cells())
    for cmd in [*cells["commands"].values(), *groups["commands"].values(), *report["commands"].values()]:
        assert cmd[:3] == ["rmtension", "run", str(cfg.resolve())]
        assert cmd[cmd.index("--out") + 1] == str(out.resolve()) and cmd[cmd.index("--data-dir") + 1] == str(tmp_path)
    # resources per stage: GPUs for the model stages, none for the report
    assert cells["options"]["gres"] == groups["options"]["gres"] == "gpu:1" and "gres" not in report["options"]
    assert cells["options"]["partition"] == "gpu" and cells["options"]["time"] == "02:00:00"
    # one index per backbone × seed, and every step of the plan is run by exactly one index of stages 1-2
    assert len(groups["commands"]) == 2
    in_cells = {st.label for st in plan.steps if st.cell is not None}
    in_groups = [c[i + 1] for c in groups["commands"].values() for i, a in enumerate(c) if a == "--step"]
    assert len(in_groups) == len(set(in_groups)) and not set(in_groups) & in_cells
    assert set(in_groups) | in_cells == {st.label for st in plan.steps}
    assert list(report["commands"]) == [0] and "--cell" not in report["commands"][0]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_slurm_script_submits_with_the_job_ids_of_the_stage_before(tmp_path, capsys):
    """The script run against a stand-in `sbatch` (prints a job id, records its arguments and batch script)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sbatch.log"
    (bindir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f'n=$(( $(ls {tmp_path}/job-* 2>/dev/null | wc -l) + 101 ))\n'
        f'cat > {tmp_path}/job-$n\n'
        f'echo "$n $*" >> {log}\n'
        'echo "$n;cluster"\n')
    (bindir / "sbatch").chmod(0o755)
    assert main(["plan", "tiny", "--out", str(tmp_path / "study"), "--slurm", "--gpus", "0"]) == 0
    script = capsys.readouterr().out
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-s"], input=script, text=True, env=env, capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls == ["101 --parsable", "102 --parsable --dependency=afterok:101 --kill-on-invalid-dep=yes",
                     "103 --parsable --dependency=afterok:102 --kill-on-invalid-dep=yes"]
    first = (tmp_path / "job-101").read_text()
    assert "#SBATCH --array=0-5" in first and "--gres" not in first  # --gpus 0: a CPU-only cluster
    assert (tmp_path / "study" / "slurm-logs").is_dir()


def test_run_step_runs_only_the_named_steps_and_needs_their_dependencies(tmp_path, capsys, data_dir):
    cfg = _config(tmp_path)
    out = tmp_path / "study"
    plan = build_plan(load_study_config(cfg), out, str(data_dir))
    compare = plan.compare[("tiny-llama", 0)].label
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--step", compare])
    assert rc == 2 and "needs eval:tiny-llama/helpful-s0" in capsys.readouterr().err
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--step", "train:nope", "--dry-run"])
    assert rc == 2 and "unknown step 'train:nope'" in capsys.readouterr().err
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--step", compare, "--dry-run",
               "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == [compare]


# ----------------------------------------------------------------------------- Ray optional


def test_executor_ray_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when not installed
    out = tmp_path / "study"
    rc = main(["run", "tiny", "--out", str(out), "--executor", "ray"])
    err = capsys.readouterr().err
    assert rc == 2 and 'pip install -e ".[ray]"' in err
    assert not out.exists()  # refused before the study folder is touched
    # everything else still works without Ray: the plan, the Slurm script, a dry run
    assert main(["plan", "tiny", "--out", str(out), "--slurm"]) == 0
    assert main(["run", "tiny", "--out", str(out), "--dry-run"]) == 0


def test_ray_options_only_with_the_ray_executor(tmp_path, capsys):
    rc = main(["run", "tiny", "--out", str(tmp_path / "s"), "--address", "auto"])
    assert rc == 2 and "--address, --cpus and --gpus-per-train go with --executor ray" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Ray runs (slow)


def _numbers(summary_path: Path, root: Path):
    """A summary without what legitimately differs between two runs of the same study: clock times, and
    the study folder's own path (written into each RM's record)."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("created", "wall_time_s")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip(json.loads(summary_path.read_text().replace(str(root), "OUT")))


@pytest.fixture(scope="module")
def serial_study(tmp_path_factory, data_dir):
    """The cluster study run serially once: the numbers the Ray runs must reproduce."""
    import torch

    torch.set_num_threads(int(os.environ.get("RMTENSION_TEST_THREADS", "1")))
    tmp = tmp_path_factory.mktemp("serial")
    cfg = _config(tmp)
    out = tmp / "study"
    # the model cache the function-scoped _isolated_env fixture gives the Ray tests (set up after this one)
    cache = os.environ.get("RMTENSION_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "rmtension-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RMTENSION_CACHE", cache)
        mp.delenv("RMTENSION_DATA_DIR", raising=False)
        assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report", "--quiet"]) == 0
    return cfg, _numbers(out / "summary.json", out)


def _intervals(out: Path, kind: str) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of each finished step of ``kind`` (step.json is written at the end)."""
    spans = []
    for marker in out.glob(f"steps/{kind}/*/step.json"):
        end = marker.stat().st_mtime
        spans.append((end - json.loads(marker.read_text())["seconds"], end))
    return spans


@pytest.mark.slow
def test_ray_run_equals_the_serial_run_and_runs_cells_side_by_side(tmp_path, data_dir, serial_study, capsys):
    pytest.importorskip("ray")
    cfg, serial = serial_study
    out = tmp_path / "study"
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report",
               "--executor", "ray", "--cpus", "2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _numbers(out / "summary.json", out) == serial  # every number, every list
    assert "is visible to all of them" in err and re.search(r"train:tiny-llama/\w+-s0 running on \S+ \(pid \d+\)", err)
    # two trainings overlapped in time: independent cells ran side by side on the 2 CPUs
    spans = sorted(_intervals(out, "train"))
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    # the same cache: a serial run afterwards finds everything complete
    assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == 0


@pytest.mark.slow
def test_ray_retries_a_step_whose_worker_was_killed(tmp_path, data_dir, serial_study, capsys):
    pytest.importorskip("ray")
    cfg, serial = serial_study
    out = tmp_path / "study"
    running = out / ".ray" / "running"
    killed: dict = {}

    def kill_first_training() -> None:
        """SIGKILL the worker process of the first training step seen running (mid-step: its record
        exists only between the step's start and its end)."""
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            for rec in running.glob("*.json") if running.is_dir() else []:
                try:
                    info = json.loads(rec.read_text())
                except (OSError, ValueError):
                    continue
                if not info["label"].startswith("train:"):
                    continue
                os.kill(info["pid"], signal.SIGKILL)
                killed.update(info, at=time.time(), folder=rec.name[: -len(".json")])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_training, daemon=True)
    killer.start()
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report",
               "--executor", "ray", "--cpus", "2"])
    err = capsys.readouterr().err
    killer.join(timeout=5)
    assert rc == 0, err
    assert killed, "no training step was seen running"
    # the killed step was started again by Ray (a new worker process) and finished after the kill
    assert re.search(rf"{re.escape(killed['label'])} running on \S+ \(pid (?!{killed['pid']}\))\d+\)", err), err
    assert (out / "steps" / "train" / killed["folder"] / "step.json").stat().st_mtime > killed["at"]
    assert _numbers(out / "summary.json", out) == serial


# ----------------------------------------------------------------------------- the graph (pure functions)


def _chain_plan():
    """a → b → d and a → c → d, with e alone: the critical path is a, c, d when c is the slower branch."""
    from rmtension.study.steps import Step

    a = Step("train", "a", {}, lambda s: {})
    b = Step("eval", "b", {}, lambda s: {}, deps=[a])
    c = Step("neurons", "c", {}, lambda s: {}, deps=[a])
    d = Step("overlap", "d", {}, lambda s: {}, deps=[b, c])
    e = Step("neurons-backbone", "e", {}, lambda s: {})
    return [a, b, c, d, e]


def test_critical_path_and_list_schedule():
    from rmtension.study.graph import critical_path, list_schedule

    steps = _chain_plan()
    secs = {"train:a": 10.0, "eval:b": 3.0, "neurons:c": 5.0, "overlap:d": 1.0, "neurons-backbone:e": 12.0}
    cp = critical_path(steps, secs)
    assert cp.path == ["train:a", "neurons:c", "overlap:d"] and cp.seconds == 16.0 and cp.total_seconds == 31.0
    assert list_schedule(steps, secs, 1) == 31.0
    # two workers: a (0-10) and e (0-12) at once; at 10 b takes the free worker (plan order) until 13,
    # c gets the other at 12 until 17, then d until 18: greedy, not optimal (c first would give 16)
    assert list_schedule(steps, secs, 2) == 18.0
    assert list_schedule(steps, secs, 10) == 16.0  # never below the critical path


def test_memory_hint_follows_the_backbone_size():
    from rmtension.models.backbones import describe_backbone
    from rmtension.study.graph import BASE_PROCESS_BYTES, backbone_params, memory_hint

    assert backbone_params("HuggingFaceTB/SmolLM2-1.7B") == 1_700_000_000
    assert backbone_params("HuggingFaceTB/SmolLM2-135M") == 135_000_000
    assert backbone_params("openai-community/gpt2-large") == 774_000_000
    assert backbone_params("no-size-here") is None and memory_hint("no-size-here", "train", False) is None
    # a materialised backbone: its config's estimate is close to the real parameter count
    import transformers

    folder = describe_backbone("tiny-llama").folder
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    real = sum(p.numel() for p in model.parameters())
    assert abs(backbone_params("tiny-llama") - real) <= 0.1 * real
    # training on a CPU asks for more than a forward pass; a table step only for the process itself
    big = "HuggingFaceTB/SmolLM2-1.7B"
    assert memory_hint(big, "train", False) > memory_hint(big, "eval", False) > memory_hint(big, "eval", True)
    assert memory_hint(big, "compare", False) == BASE_PROCESS_BYTES


# ----------------------------------------------------------------------------- Ray: storage, failures, resume


class _TwoNodeRay:
    """Stands in for `ray` in the storage check: two nodes, the second with a private disk (it sees another
    folder at the study's path), each probe run by the real probe function."""

    def __init__(self, private: Path):
        self.private = private

    def nodes(self):
        return [{"NodeID": "a" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.1"},
                {"NodeID": "b" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.2"}]

    def remote(self, fn):
        private = self.private

        class Task:
            def options(self, scheduling_strategy, **_):
                on_b = scheduling_strategy.node_id.startswith("b")

                class Call:
                    def remote(self, path, token):
                        return fn(str(private / Path(path).name) if on_b else path, token)
                return Call()
        return Task()

    def get(self, refs, timeout=None):
        return refs


def test_storage_check_names_the_node_that_does_not_see_the_study_folder(tmp_path):
    pytest.importorskip("ray")
    from rmtension.errors import RmtensionError
    from rmtension.study.ray_executor import check_shared_storage

    root = tmp_path / "study"
    (tmp_path / "private").mkdir()
    with pytest.raises(RmtensionError) as err:
        check_shared_storage(_TwoNodeRay(tmp_path / "private"), root)
    text = str(err.value)
    assert "is not on storage every Ray node sees" in text and "(10.0.0.2): cannot read" in text
    assert "10.0.0.1" not in text  # the node that sees the folder is not blamed
    assert not list((root / ".ray" / "probe").iterdir())  # the probe files are cleaned up
    # both nodes on the same folder: the check passes and names both
    assert len(check_shared_storage(_TwoNodeRay(root / ".ray" / "probe"), root)) == 2


def _noop(step) -> dict:
    (step.folder / "out.txt").write_text(step.label)
    return {"label": step.label}


def _fail(step) -> dict:
    raise ValueError(f"broken input for {step.label}")


@pytest.mark.slow
def test_ray_failed_step_stops_only_its_dependents_and_a_rerun_finishes(tmp_path, data_dir, capsys):
    """A study started serially (one cell) continues on Ray; a step that raises is not retried, its
    dependents do not run, every independent step finishes; the same run again redoes only what is missing."""
    pytest.importorskip("ray")
    from ray import cloudpickle

    # the workers cannot import this test module: its stand-in actions travel by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        _fail_then_finish(tmp_path, data_dir)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _fail_then_finish(tmp_path: Path, data_dir: Path) -> None:
    from rmtension.errors import RmtensionError
    from rmtension.study.pipeline import execute
    from rmtension.study.ray_executor import RayOptions, execute_ray

    root = tmp_path / "study"
    plan = build_plan(load_study_config(_config(tmp_path)), root, str(data_dir))
    for st in plan.steps:
        st.action = _noop
    first = plan.cells()[0]
    execute(plan, cell=first, echo=lambda s: None)
    serial_done = {st.label: (st.folder / "step.json").stat().st_mtime for st in plan.steps if st.done()}
    assert serial_done and all(plan.steps[i].cell == first for i in range(len(serial_done)))
    broken = plan.eval[("tiny-llama", "harmless", 0)]
    broken.action = _fail
    lines: list[str] = []
    with pytest.raises(RmtensionError) as err:
        execute_ray(plan, echo=lines.append, options=RayOptions(num_cpus=2))
    assert "eval:tiny-llama/harmless-s0" in str(err.value) and "run the same command again" in str(err.value)
    assert any("eval:tiny-llama/harmless-s0 FAILED: ValueError: broken input" in x for x in lines), lines
    compare = plan.compare[("tiny-llama", 0)]
    assert any(f"{compare.label} not run: eval:tiny-llama/harmless-s0 failed" in x for x in lines), lines
    assert not broken.done() and not compare.done()
    others = [st for st in plan.steps if st not in (broken, compare)]
    assert all(st.done() for st in others)
    assert all((st.folder / "step.json").stat().st_mtime == t for st in plan.steps
               for label, t in serial_done.items() if st.label == label)  # the serial cell was reused
    broken.action = _noop
    counts = execute_ray(plan, echo=lambda s: None, options=RayOptions(num_cpus=2))
    assert counts == {"cached": len(plan.steps) - 2, "ran": 2}
    assert all(st.done() for st in plan.steps)


@pytest.mark.slow
def test_slurm_stages_run_in_order_complete_the_study_with_the_serial_numbers(tmp_path, data_dir, serial_study):
    """Each stage's batch script run index by index (a stand-in `sbatch` that runs the array in turn): the
    cells, then the per backbone × seed steps (--step), then the report stage, finish the study."""
    from rmtension.study.slurm import SlurmOptions, slurm_script

    cfg, serial = serial_study
    out = tmp_path / "study"
    plan = build_plan(load_study_config(cfg), out, str(data_dir))
    script = slurm_script(plan, str(cfg), str(out), str(data_dir),
                          SlurmOptions(gpus=0, exe=(sys.executable, "-m", "rmtension")), str(tmp_path))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        "job=$(mktemp)\ncat > $job\n"
        "last=$(sed -n 's/^#SBATCH --array=0-//p' $job)\n"
        "for i in $(seq 0 $last); do SLURM_ARRAY_TASK_ID=$i bash $job >> " + str(tmp_path / "jobs.log") + " 2>&1 "
        "|| exit 1; done\n"
        "echo 7\n")
    (bindir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-s"], input=script, text=True, env=env, capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr + (tmp_path / "jobs.log").read_text()[-3000:]
    assert all(st.done() for st in plan.steps)
    assert _numbers(out / "summary.json", out) == serial


@pytest.mark.slow
def test_ray_training_on_two_processes_keeps_the_global_batch(tmp_path, data_dir):
    """--gpus-per-train 2 on a cluster without GPUs: the train step's task runs 2 processes under accelerate
    (gloo on the CPU), each with half the config's batch, so the RM matches the one-process training."""
    pytest.importorskip("ray")
    from rmtension.study.pipeline import execute
    from rmtension.study.ray_executor import RayOptions, execute_ray

    cfg = load_study_config(_config(tmp_path))
    one = build_plan(cfg, tmp_path / "one", str(data_dir))
    two = build_plan(cfg, tmp_path / "two", str(data_dir))
    label = one.train[("tiny-llama", "helpful", 0)].label
    execute(one, labels=[label], echo=lambda s: None)
    counts = execute_ray(two, labels=[label], echo=lambda s: None, options=RayOptions(num_cpus=2, gpus_per_train=2))
    assert counts == {"cached": 0, "ran": 1}
    rec1, rec2 = (json.loads((p.train[("tiny-llama", "helpful", 0)].folder / "rm" / "rmtension.json").read_text())
                  for p in (one, two))
    assert rec2["trainer"]["num_processes"] == 2 and rec1["trainer"]["num_processes"] == 1
    assert rec2["config"]["batch_size"] * 2 == rec1["config"]["batch_size"] == 8  # per process × processes
    assert rec2["trainer"]["global_steps"] == rec1["trainer"]["global_steps"] > 0
    # same data order and global batch: the same loss up to float reduction order
    assert rec2["trainer"]["train_loss"] == pytest.approx(rec1["trainer"]["train_loss"], rel=1e-3)
    assert not list((two.root / "steps" / "train").glob(".*.launch"))  # the launch folder is cleaned up
