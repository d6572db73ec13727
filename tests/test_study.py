"""The study: config validation, the cached step graph, resume after a kill, jobs, the tiny study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rmtension.cli.main import main
from rmtension.errors import RmtensionError
from rmtension.study.config import config_from_dict, load_study_config
from rmtension.study.pipeline import build_plan, describe

REPO = Path(__file__).resolve().parent.parent

# A minimal study: every step kind, on a tiny model, in well under a minute.
SMALL = {
    "name": "small",
    "backbones": ["tiny-gpt2"],
    "seeds": [0],
    "training": {"preset": "cpu", "overrides": {"max_pairs": 16, "batch_size": 8, "max_length": 128,
                                                "bf16": False, "heldout_max_pairs": 8, "lr": 1e-3}},
    "evaluation": {"benchmarks": ["hh-heldout", "llmbar:llmbar-natural"], "max_items": 4, "max_length": 128},
    "neurons": {"max_pairs": 6, "max_length": 128},
    "ablation": {"benchmarks": ["hh-heldout"], "max_items": 3,
                 "curves": {"k": [0, 10, 30], "benchmarks": ["hh-heldout"], "max_items": 3}},
}


def _write(tmp_path: Path, cfg: dict, name: str = "study.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("raw,message", [
    ({"seedz": [1]}, "seedz: unknown key"),
    ({"seeds": ["a"]}, "seeds[0]: expected an integer"),
    ({"training": {"overides": {}}}, "training.overides: unknown key"),
    ({"training": {"overrides": {"lr": "fast"}}}, "training.overrides.lr: expected a number"),
    ({"training": {"overrides": {"learning_rate": 1}}}, "training.overrides.learning_rate: unknown training field"),
    ({"ablation": {"sets": ["own", "both"]}}, "ablation.sets[1]: unknown value 'both'"),
    ({"neurons": {"methods": ["magnitude"]}, "ablation": {"method": "change"}}, "ablation.method: unknown value"),
    ({"evaluation": {"benchmarks": ["missing.jsonl"]}}, "evaluation.benchmarks[0]: 'missing.jsonl' is neither"),
    ({"objectives": ["helpful", "kind"]}, "objectives[1]: unknown value 'kind'"),
    ({"data_dir": "/no/such/dir"}, "data_dir: /no/such/dir is not a folder"),
    ({"neurons": {"k": 0}}, "neurons.k: expected a percentage in (0, 100]"),
    ({"evaluation": {"max_items": {"rm-bench": 0}}}, "evaluation.max_items.rm-bench: expected a positive integer"),
    ({"neurons": {"methods": ["magnitude", "random"]}}, "ablation.curves.methods[1]: unknown value 'change'"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(RmtensionError) as err:
        config_from_dict(raw, source="cfg.yaml")
    assert message in str(err.value) and str(err.value).startswith("cfg.yaml: ")


def test_short_config_gets_defaults_and_shipped_configs_validate(tmp_path):
    cfg = config_from_dict({"backbones": ["tiny-llama"]})
    assert cfg.objectives == ["helpful", "harmless", "mixed"] and cfg.neurons.k == 10.0
    for f in ("configs/tiny.yaml", "configs/paper.yaml", "src/rmtension/configs/quickstart.yaml"):
        assert load_study_config(REPO / f).backbones
    # curves switched off need no methods of their own (the quickstart scores magnitude and random only)
    off = config_from_dict({"neurons": {"methods": ["magnitude", "random"]}, "ablation": {"curves": {"enabled": False}}})
    assert off.neurons.methods == ["magnitude", "random"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RmtensionError, match=r"bad.yaml:\d+: not valid YAML"):
        load_study_config(bad)


def test_max_items_per_benchmark(data_dir, tmp_path):
    from rmtension.study.pipeline import _load_benches

    cfg = config_from_dict({"evaluation": {"benchmarks": ["llmbar", "rm-bench"],
                                           "max_items": {"llmbar": 2, "default": 3}}})
    # The RM folder matters only for hh-heldout (its recorded split), which is not asked for here.
    llmbar, rmb = _load_benches(cfg.evaluation.benchmarks, cfg.evaluation.max_items, str(data_dir), tmp_path)
    assert all(len(v) == 2 for v in llmbar.subsets().values())
    assert all(len(v) == 3 for v in rmb.subsets().values())


def test_step_keys_follow_settings(tmp_path):
    cfg = config_from_dict(SMALL)
    a = build_plan(cfg, tmp_path)
    b = build_plan(config_from_dict(SMALL), tmp_path)
    assert [s.folder for s in a.steps] == [s.folder for s in b.steps]
    changed = json.loads(json.dumps(SMALL))
    changed["evaluation"]["max_items"] = 5
    c = build_plan(config_from_dict(changed), tmp_path)
    same = {s.label: s.key for s in a.steps}
    diff = {s.label: s.key for s in c.steps}
    assert same["train:tiny-gpt2/helpful-s0"] == diff["train:tiny-gpt2/helpful-s0"]  # upstream untouched
    assert same["eval:tiny-gpt2/helpful-s0"] != diff["eval:tiny-gpt2/helpful-s0"]
    assert same["compare:tiny-gpt2/s0"] != diff["compare:tiny-gpt2/s0"]  # downstream follows
    kinds = {s.kind for s in a.steps}
    assert kinds == {"train", "eval", "neurons", "ablate-own", "curves", "compare", "ablate-mixed", "overlap",
                     "neurons-backbone", "neuron-length"}


def test_plan_jobs_prints_one_command_per_cell(tmp_path, capsys):
    cfg = _write(tmp_path, {**SMALL, "seeds": [0, 1]})
    assert main(["plan", str(cfg), "--out", str(tmp_path / "o"), "--jobs", "--data-dir", "/d"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    assert all(line.startswith("rmtension run ") and "--cell tiny-gpt2/" in line for line in lines)


def _markers(out: Path) -> dict[str, float]:
    return {str(p.parent.relative_to(out)): p.stat().st_mtime for p in out.glob("steps/*/*/step.json")}


def test_study_runs_resumes_after_kill_and_reruns_cached(tmp_path, data_dir):
    # random_per_set: every ablated set of the mixed RM gets a random control of its own size (issue 11)
    cfg = _write(tmp_path, {**SMALL, "ablation": {**SMALL["ablation"], "random_per_set": True}})
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "rmtension", "run", str(cfg), "--out", str(out), "--data-dir", str(data_dir),
           "--no-report"]
    # 1. Start the study and kill it (SIGKILL) once a few steps have finished.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(_markers(out)) < 4 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _markers(out)
    n_steps = len(build_plan(load_study_config(cfg), out, str(data_dir)).steps)
    # per cell: train, eval, neurons, own ablation, curves, neuron-length; per backbone × seed: compare, mixed
    # ablation, overlap, and the backbone baseline with its neuron-length step
    assert n_steps == 3 * 6 + 3 + 2
    assert 4 <= len(before) < n_steps, before
    # 2. Run again: finishes, and the finished steps are not redone.
    assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report"]) == 0
    after = _markers(out)
    assert len(after) == n_steps
    assert all(after[k] == t for k, t in before.items())
    summary = json.loads((out / "summary.json").read_text())
    assert {r["objective"] for r in summary["runs"]} == {"helpful", "harmless", "mixed"}
    assert summary["retention"] and summary["overlap"] and summary["curves"]
    assert {e["unit"] for e in summary["retention"]} == {"paper"}  # the paper's retention units, recorded
    assert {"jaccard_helpful", "kept_helpful"} <= set(next(iter(summary["retention"][0]["tasks"].values())))
    assert {a["set"] for a in summary["ablation"]} == {"own", "shared", "helpful-only", "harmless-only", "random"}
    # accuracies pooled over items × seeds and paired RM contrasts, from the evals' items files (analysis/pooled.py)
    assert {e["objective"] for e in summary["pooled"]} == {"helpful", "harmless", "mixed"}
    assert {c["name"] for c in summary["contrasts"]} == {"helpful-vs-harmless", "mixed-vs-helpful", "mixed-vs-harmless"}
    assert all(e["ci95"]["low"] <= e["mean"] <= e["ci95"]["high"] for e in summary["pooled"] if e["ci95"])
    # The mixed RM's shared set really is the intersection of the helpful and harmless RMs' neurons.
    from rmtension.neurons.setfile import load_set

    files = {n["objective"]: n["set_file"] for n in summary["neurons"] if n["method"] == "magnitude"}
    nh, na = load_set(files["helpful"]), load_set(files["harmless"])
    shared = next(a for a in summary["ablation"] if a["set"] == "shared")
    assert shared["size"] == int((nh.mask & na.mask).sum())
    # Each RM draws its own random set, so the random row of the overlap is chance level (Jaccard ≈
    # k/(2−k) ≈ 0.05 at 10%), not the same set twice (Jaccard 1).
    rand = next(o for o in summary["overlap"] if o["method"] == "random")["helpful_harmless"]
    assert rand["a"] == rand["b"] > 0 and rand["jaccard"] < 0.5
    # The paper's aggregate over seeds (here one seed): labelled entries beside the per-seed ones, no random.
    agg = summary["neurons_seed_mean"]
    assert {(e["objective"], e["method"]) for e in agg} == {(o, m) for o in ("helpful", "harmless", "mixed")
                                                           for m in ("magnitude", "change")}
    assert all(e["aggregate"] == "seed-mean" and e["seeds"] == [0] for e in agg)
    mag = {e["objective"]: e for e in summary["neurons"] if e["method"] == "magnitude"}
    assert all(e["selected"] == mag[e["objective"]]["selected"] for e in agg if e["method"] == "magnitude")
    ov = next(o for o in summary["overlap_seed_mean"] if o["method"] == "magnitude")
    d = ov["mixed_retention_detail"]
    assert ov["mixed_retention"] == d["retained"] / d["all_union"]  # the paper's |M ∩ (H ∪ A)| / |H ∪ A ∪ M|
    assert all(isinstance(e["rmsd"]["dataset_means"], float) for e in summary["neurons"])
    # Controls (issue 11). The backbone baseline: rows shaped like an RM's, one per method but change.
    bk = {e["method"]: e for e in summary["neurons"] if e["objective"] == "backbone"}
    assert set(bk) == {"magnitude", "random"} and all(e["seed"] == 0 for e in bk.values())
    assert all((bk[m]["selected"], bk[m]["total"], bk[m]["n_layers"]) == (mag["helpful"]["selected"],
               mag["helpful"]["total"], mag["helpful"]["n_layers"]) for m in bk)
    assert load_set(bk["magnitude"]["set_file"]).mask.shape == nh.mask.shape
    ov_mag = next(o for o in summary["overlap"] if o["method"] == "magnitude")
    base_set = load_set(bk["magnitude"]["set_file"])
    assert set(ov_mag["backbone_baseline"]) == {"helpful", "harmless", "mixed"}
    jh = ov_mag["backbone_baseline"]["helpful"]
    assert jh["shared"] == int((nh.mask & base_set.mask).sum())
    assert jh["jaccard"] == jh["shared"] / int((nh.mask | base_set.mask).sum())
    assert next(o for o in summary["overlap"] if o["method"] == "change")["backbone_baseline"] is None
    # Neuron–length correlation: every set of every RM and of the backbone
    nl = summary["neuron_length"]
    assert {(r["objective"], r["method"]) for r in nl} == ({(o, m) for o in ("helpful", "harmless", "mixed")
                                                            for m in ("magnitude", "change", "random")}
                                                           | {("backbone", "magnitude"), ("backbone", "random")})
    assert all(r["n_texts"] == 12 and -1 <= r["spearman"]["value"] <= 1 for r in nl)  # 6 pairs, 2 texts each
    assert all(r["spearman"]["ci95"]["low"] <= r["spearman"]["value"] <= r["spearman"]["ci95"]["high"] for r in nl)
    # Ablation statistics: own (per RM) and shared (mixed RM) against their random sets, Holm per table
    st = summary["ablation_stats"]
    assert {(r["rm_objective"], r["set"]) for r in st} == {("helpful", "own"), ("harmless", "own"),
                                                           ("mixed", "own"), ("mixed", "shared"),
                                                           ("mixed", "helpful-only"), ("mixed", "harmless-only")}
    sizes = {(a["set"], a["random_of"]): a["size"] for a in summary["ablation"] if a["rm_objective"] == "mixed"}
    for kind in ("shared", "helpful-only", "harmless-only"):
        assert sizes[("random", kind)] == sizes[(kind, None)]
    for r in st:
        assert r["family"] == f"tiny-gpt2/{r['rm_objective']}/{r['set']}" and r["seeds"] == [0]
        assert r["diff"] == pytest.approx(r["set_delta"] - r["random_delta"])
        assert r["p"] <= r["p_holm"] <= 1 and r["survives"] == (r["p_holm"] < 0.05)
    own = {r["task"]: r for r in st if (r["rm_objective"], r["set"]) == ("helpful", "own")}
    assert any(t.endswith("(group mean)") for t in own)
    # the set's delta is the one the ablation rows report (subset of hh-heldout: mean of correct flags)
    row = next(a for a in summary["ablation"] if (a["rm_objective"], a["set"]) == ("helpful", "own"))
    for sub, v in row["benchmarks"]["hh-heldout"]["subsets"].items():
        assert own[f"hh-heldout/{sub}"]["set_delta"] == pytest.approx(v["delta"])
    # The ablation and curve steps write the layout of `rmtension ablate` (ablation/report.py), and the summary's
    # deltas are the ones the sweep stored.
    mixed_step = next((out / "steps" / "ablate-mixed").iterdir())
    sweep = {s["name"]: s for s in json.loads((mixed_step / "sweep.json").read_text())["sets"]}
    assert set(sweep) == {"shared", "helpful-only", "harmless-only", "random-shared", "random-helpful-only",
                          "random-harmless-only"}
    assert all(s["dir"] == f"sets/{name}" and (mixed_step / s["dir"] / "items.jsonl").is_file()
               for name, s in sweep.items())
    assert (mixed_step / "sweep.csv").is_file() and not (mixed_step / "shared").exists()
    assert (next((out / "steps" / "curves").iterdir()) / "sets" / "magnitude-k10" / "results.json").is_file()
    mixed_rows = [a for a in summary["ablation"] if a["rm_objective"] == "mixed" and a["name"] in sweep]
    assert len(mixed_rows) == len(sweep)  # the mixed RM's own-neuron rows come from its ablate-own step
    for a in mixed_rows:
        stored = sweep[a["name"]]["delta"]["hh-heldout"]
        assert {s: v["delta"] for s, v in a["benchmarks"]["hh-heldout"]["subsets"].items()} == stored["subsets"]
        assert {g: v["delta"] for g, v in a["benchmarks"]["hh-heldout"]["groups"].items()} == \
            {g: stored["groups"].get(g) for g in ("helpful", "harmless")}
    # 3. Nothing changed: a third run only gathers, and is quick.
    t0 = time.time()
    assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report"]) == 0
    assert _markers(out) == after
    assert time.time() - t0 < 60
    plan = build_plan(load_study_config(cfg), out, str(data_dir))
    assert all(row["status"] == "cached" for row in describe(plan))


def test_cell_runs_only_its_steps(tmp_path, data_dir, capsys):
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "study"
    assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--cell", "tiny-gpt2/harmless/0"]) == 0
    done = _markers(out)
    assert len(done) == 6 and all("harmless-s0" in k for k in done)
    assert not (out / "summary.json").exists()
    rc = main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--cell", "tiny-gpt2/nope/0"])
    assert rc == 2 and "unknown cell" in capsys.readouterr().err
    assert main(["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "cached   train:tiny-gpt2/harmless-s0" in text and "to run   train:tiny-gpt2/helpful-s0" in text


@pytest.mark.slow
def test_tiny_config_study_with_report(tmp_path, data_dir):
    """configs/tiny.yaml end to end, as the README describes it, including the report."""
    out = tmp_path / "tiny"
    assert main(["run", str(REPO / "configs" / "tiny.yaml"), "--data-dir", str(data_dir), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 6 and len({r["seed"] for r in summary["runs"]}) == 2
    for key in ("retention", "calibration", "neurons", "overlap", "ablation", "curves"):
        assert summary[key], key
    report = (out / "report" / "report.md").read_text()
    assert "Not run in this study" not in report
    assert list((out / "report" / "figures").glob("*.png")) and list((out / "report" / "tables").glob("*.csv"))


def _numbers(obj):
    """A summary without what legitimately differs between two runs of the same step (clock times)."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in ("created", "wall_time_s")}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


def test_damaged_cached_outputs_are_rerun_with_the_same_numbers(tmp_path, data_dir, capsys, monkeypatch):
    """Truncated or altered outputs of finished steps are found before reuse and the steps run again (issue 18, item 4)."""
    from rmtension.study import steps as steps_mod

    # one cell: train, eval, neurons, own ablation, curves, neuron-length (+ the backbone baseline's two steps)
    cfg = _write(tmp_path, {**SMALL, "objectives": ["helpful"]})
    out = tmp_path / "study"
    args = ["run", str(cfg), "--out", str(out), "--data-dir", str(data_dir), "--no-report"]
    assert main(args) == 0
    first = _numbers(json.loads((out / "summary.json").read_text()))
    folder = {kind: next((out / "steps" / kind).iterdir()) for kind in ("train", "eval", "neurons", "ablate-own")}
    record = json.loads((folder["eval"] / "step.json").read_text())
    assert record["outputs"]["results.json"]["size"] == (folder["eval"] / "results.json").stat().st_size
    assert set(record["inputs"]) == {folder["train"].name}

    def truncate(kind: str, rel: str) -> None:
        path = folder[kind] / rel
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def rerun(*extra: str) -> tuple[str, dict[str, float]]:
        before = _markers(out)
        capsys.readouterr()
        assert main(args + list(extra)) == 0
        after = _markers(out)
        ran = {k.split("/")[1] for k in after if after[k] != before[k]}
        assert _numbers(json.loads((out / "summary.json").read_text())) == first
        return capsys.readouterr().err, ran

    # 1. Three independent steps, each with one damaged file (a truncated results.json once crashed every rerun).
    truncate("eval", "results.json")
    truncate("neurons", "stats.npz")
    truncate("ablate-own", "baseline/items.jsonl")
    err, ran = rerun()
    for kind, rel in (("eval", "results.json"), ("neurons", "stats.npz"), ("ablate-own", "baseline/items.jsonl")):
        assert f"step {kind}:tiny-gpt2/helpful-s0: outputs changed ({rel}: size " in err, err
    assert {"eval", "neurons", "ablate-own"} <= ran and "train" not in ran
    # 2. A truncated model: training runs again from scratch (never "resumed" from the damaged folder),
    #    and every step that read the old model follows.
    truncate("train", "rm/model.safetensors")
    err, ran = rerun()
    assert "step train:tiny-gpt2/helpful-s0: outputs changed (rm/model.safetensors: size " in err
    assert ran == {"train", "eval", "neurons", "ablate-own", "curves", "neuron-length"}
    # 3. Same-size damage to a file above the hash limit: the size check alone cannot see it; --verify can.
    monkeypatch.setattr(steps_mod, "HASH_LIMIT", 0)
    stats = folder["neurons"] / "stats.npz"
    data = bytearray(stats.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stats.write_bytes(bytes(data))
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    assert "outputs changed" not in err  # the size check alone cannot see it ...
    # ... and the summary, which reads the statistics for the RMSDs, either does not touch the damaged
    # member or refuses in one line naming the file — never a traceback or silently wrong numbers.
    assert rc == 0 or (rc == 2 and "stats.npz" in err and len(err.strip().splitlines()) == 1), err
    err, ran = rerun("--verify")
    assert "step neurons:tiny-gpt2/helpful-s0: outputs changed (stats.npz: content differs" in err and "neurons" in ran
