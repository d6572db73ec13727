"""The RM folder as a portable artifact, community result formats, and the Python API (issue 15).

Every check compares against an independent path: plain transformers (chat template, tokenizer,
AutoModelForSequenceClassification) for the RM folder, a re-implementation of RewardBench's section
weighting for rewardbench.json, and the files on disk for the exports.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rmtension.bench.loaders import load_benchmark, subsample
from rmtension.cli.main import main
from rmtension.errors import RmtensionError
from rmtension.evaluation.aggregate import REWARDBENCH_EXAMPLE_COUNTS, REWARDBENCH_SECTIONS
from rmtension.models.formatting import format_for_rm
from rmtension.models.portable import absolute_paths
from rmtension.models.reward_model import build_reward_model, save_reward_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "notebook_walkthrough.py"


def _cache_env(mp: pytest.MonkeyPatch, factory) -> None:
    mp.setenv("RMTENSION_CACHE", os.environ.get("RMTENSION_TEST_CACHE") or str(factory.getbasetemp() / "rmtension-cache"))


def _save_rm(out: Path, backbone: str, max_length: int | None = None, seed: int = 3, template: str = "hh") -> Path:
    model, tok = build_reward_model(backbone, seed=seed)
    record = {"backbone": backbone, "template": template, "objective": "helpful", "seed": seed}
    if max_length is not None:
        record["config"] = {"max_length": max_length}
    return save_reward_model(model, tok, out, record)


@pytest.fixture(scope="module")
def llama_rm(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _cache_env(mp, tmp_path_factory)
        return _save_rm(tmp_path_factory.mktemp("rm") / "tiny-llama-rm", "tiny-llama")


def _plain_score(model, tok, text: str) -> float:
    """What a user of plain transformers computes (the model card's snippet)."""
    with torch.no_grad():
        return float(model(**tok(text, return_tensors="pt")).logits[0, 0])


# ----------------------------------------------------------------------------- RM folder


@pytest.mark.parametrize("backbone,template", [("tiny-llama", "hh"), ("tiny-gemma", "hh"), ("tiny-gpt2", "hh"),
                                               ("tiny-bert", "hh"), ("tiny-llama", "chat"), ("tiny-gemma", "chat")])
def test_chat_template_round_trip_equals_our_scores(backbone, template, tmp_path, data_dir):
    """apply_chat_template + plain transformers gives exactly the text and the score `rmtension eval`
    gives, on real LLMBar items: BOS (Gemma), pad == EOS (GPT-2, Llama) and encoders (BERT) included;
    for RMs trained on the backbone's own chat template too (Gemma's writes a BOS the tokenizer adds again)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    original = build_reward_model(backbone, seed=0)[1]  # the backbone's tokenizer, its own chat template
    rm = _save_rm(tmp_path / "rm", backbone, template=template)
    out = tmp_path / "eval"
    assert main(["eval", "--rm", str(rm), "--bench", "llmbar", "--max-items", "3", "--out", str(out),
                 "--no-progress", "--batch-size", "4", "--data-dir", str(data_dir)]) == 0
    rows = {(r["subset"], r["id"]): r for r in map(json.loads, (out / "items.jsonl").read_text().splitlines())}
    bench = subsample(load_benchmark("llmbar", data_dir), 3, 0)

    tok = AutoTokenizer.from_pretrained(rm)
    model = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    limit = json.loads((out / "results.json").read_text())["scoring"]["max_length"]
    compared = 0
    for item in bench.items:
        row = rows[(item.subset, item.id)]
        for response, ours in zip(item.chosen + item.rejected, row["chosen_scores"] + row["rejected_scores"]):
            messages = [{"role": t.role, "content": t.content} for t in item.prompt]
            text = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
            assert text == format_for_rm(item.prompt, response, original, template)
            if len(tok(text)["input_ids"]) > limit:  # rmtension cuts it from the left; plain code would not
                continue
            assert abs(_plain_score(model, tok, text) - ours) < 1e-5
            compared += 1
    assert compared >= 10


def test_rm_folder_has_card_and_no_absolute_paths(tmp_path, data_dir, monkeypatch):
    """Absolute paths in a record (data files, a local backbone folder, a checkpoint) are written
    relative; loading turns the relative backbone folder back into a usable one."""
    from rmtension.models.backbones import resolve_backbone
    from rmtension.models.reward_model import load_reward_model

    backbone_dir = Path(resolve_backbone("tiny-llama"))
    model, tok = build_reward_model(str(backbone_dir), seed=1)
    data_file = data_dir / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    record = {"backbone": str(backbone_dir), "objective": "helpful", "seed": 1, "template": "hh",
              "data_files": [{"source": "hh-rlhf:helpful-base", "file": str(data_file), "sha256": "ab" * 32}],
              "config": {"data_dir": str(data_dir), "max_length": 96, "backbone": str(backbone_dir)},
              "trainer": {"resumed_from": str(tmp_path / "rm.checkpoints" / "checkpoint-4")},
              "metrics": {"heldout_n": 50, "heldout_accuracy": 0.62, "heldout_mean_margin": 0.1}}
    rm = save_reward_model(model, tok, tmp_path / "rm", record)
    written = json.loads((rm / "rmtension.json").read_text())
    assert absolute_paths(written) == []
    assert written["data_files"][0]["file"] == "hh-rlhf/helpful-base/test.jsonl.gz"
    assert written["data_files"][0]["relative_to"] == "data_dir"
    assert written["trainer"]["resumed_from"] == "../rm.checkpoints/checkpoint-4"
    assert str(tmp_path) not in "".join(p.read_text(errors="ignore") for p in rm.iterdir() if p.suffix in (".json", ".md", ".jinja"))
    info = load_reward_model(rm)[2]
    assert Path(info["backbone"]) == backbone_dir.resolve()

    # Paths relative to the working directory of the run (`--data-dir ../shared/data`) are rewritten too.
    monkeypatch.chdir(data_dir.parent)
    relative = {**record, "data_files": [{**record["data_files"][0], "file": f"{data_dir.name}/hh-rlhf/helpful-base/test.jsonl.gz"}],
                "config": {"data_dir": data_dir.name, "max_length": 96}, "train_data": f"{data_dir.name}/hh-rlhf/helpful-base"}
    rm2 = save_reward_model(model, tok, tmp_path / "rm2", relative)
    written = json.loads((rm2 / "rmtension.json").read_text())
    assert written["data_files"][0]["file"] == "hh-rlhf/helpful-base/test.jsonl.gz"
    assert (rm2 / written["config"]["data_dir"]).resolve() == data_dir.resolve()
    assert (rm2 / written["train_data"]).resolve() == (data_dir / "hh-rlhf" / "helpful-base").resolve()

    card = (rm / "README.md").read_text()
    assert "0.620 (95% Wilson interval [0.482, 0.741], n = 50 pairs" in card  # Wilson, 31 of 50, computed by hand: [0.4815, 0.7414]
    assert "| max length | 96 tokens |" in card and "`hh`" in card and "sha256 `" + "ab" * 32 in card
    assert "apply_chat_template" in card and "AutoModelForSequenceClassification" in card


def test_foreign_rm_is_scored_with_a_stated_template(tmp_path, data_dir, capsys):
    """A sequence-classification model saved by plain transformers (no rmtension.json): eval says
    which template it uses and why, and --template chat switches to the tokenizer's own."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmtension.models.backbones import resolve_backbone

    src = resolve_backbone("tiny-llama")
    foreign = tmp_path / "foreign"
    AutoModelForSequenceClassification.from_pretrained(src, num_labels=1).save_pretrained(foreign)
    AutoTokenizer.from_pretrained(src).save_pretrained(foreign)
    assert not (foreign / "rmtension.json").exists()

    args = ["--bench", "llmbar:llmbar-natural", "--max-items", "3", "--no-progress", "--rm", str(foreign),
            "--data-dir", str(data_dir)]
    assert main(["eval", *args, "--out", str(tmp_path / "hh")]) == 0
    err = capsys.readouterr().err
    assert "no rmtension.json" in err and "template 'hh'" in err and "--template chat" in err
    assert main(["eval", *args, "--template", "chat", "--out", str(tmp_path / "chat")]) == 0
    assert "no rmtension.json" not in capsys.readouterr().err  # chosen explicitly: nothing to explain
    hh = json.loads((tmp_path / "hh" / "results.json").read_text())
    chat = json.loads((tmp_path / "chat" / "results.json").read_text())
    assert hh["rm"]["template"] == "hh" and chat["rm"]["template"] == "chat"
    assert hh["scoring"]["max_length"] == chat["scoring"]["max_length"] == 2048  # the model's limit
    rows = [json.loads(x) for x in (tmp_path / "chat" / "items.jsonl").read_text().splitlines()]
    hh_rows = [json.loads(x) for x in (tmp_path / "hh" / "items.jsonl").read_text().splitlines()]
    assert [r["chosen_scores"] for r in rows] != [r["chosen_scores"] for r in hh_rows]


def test_training_max_length_is_the_eval_default(tmp_path, data_dir, capsys):
    rm = _save_rm(tmp_path / "rm", "tiny-gpt2", max_length=64)
    bench = ["--bench", "llmbar:llmbar-natural", "--max-items", "2", "--no-progress", "--rm", str(rm),
             "--data-dir", str(data_dir)]
    assert main(["eval", *bench, "--out", str(tmp_path / "a")]) == 0
    assert "max length 64 tokens (the RM's training max length" in capsys.readouterr().err
    assert main(["eval", *bench, "--max-length", "80", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())["scoring"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["scoring"]
    assert (a["max_length"], b["max_length"]) == (64, 80) and a["truncated"] > 0


# ----------------------------------------------------------------------------- RewardBench format


def _official_sections(subsets: dict[str, float]) -> dict[str, float]:
    """allenai/reward-bench rewardbench/utils.py::calculate_scores_per_section (05a9005), restated:
    EXAMPLE_COUNTS-weighted mean of the subsets present, per section (sections without any left out)."""
    out = {}
    for section, tests in REWARDBENCH_SECTIONS.items():
        present = [t for t in tests if t in subsets]
        if present:
            out[section] = sum(subsets[t] * REWARDBENCH_EXAMPLE_COUNTS[t] for t in present) / sum(
                REWARDBENCH_EXAMPLE_COUNTS[t] for t in present)
    return out


def test_rewardbench_json_has_the_leaderboard_keys_and_our_sections(llama_rm, tmp_path, data_dir):
    from rmtension.evaluation.evaluate import evaluate
    from rmtension.evaluation.formats import rewardbench_results
    from rmtension.models.reward_model import load_reward_model

    out = tmp_path / "eval"
    assert main(["eval", "--rm", str(llama_rm), "--bench", "llmbar", "--max-items", "4", "--out", str(out),
                 "--no-progress", "--format", "rewardbench", "--data-dir", str(data_dir)]) == 0
    text = (out / "rewardbench.json").read_text()
    rb = json.loads(text)
    assert text == json.dumps(rb, indent=4, sort_keys=True)  # RewardBench's own serialisation
    llmbar = ["llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst", "llmbar-adver-GPTOut",
              "llmbar-adver-manual"]
    assert set(rb) == {"model", "model_type", "chat_template", *llmbar, "Chat Hard"}
    assert rb["model"] == "tiny-llama-rm" and rb["model_type"] == "Seq. Classifier"
    assert rb["chat_template"] == "tokenizer"  # the folder's template renders the scored text
    results = json.loads((out / "results.json").read_text())
    for s in llmbar:
        assert rb[s] == results["benchmarks"]["llmbar"]["subsets"][s]["score"]
    assert rb["Chat Hard"] == pytest.approx(_official_sections({s: rb[s] for s in llmbar})["Chat Hard"], abs=1e-12)

    # The same subsets evaluated as RewardBench: our results.json sections equal the file's.
    model, tok, _ = load_reward_model(llama_rm)
    bench = dataclasses.replace(subsample(load_benchmark("llmbar", data_dir), 4, 0), name="rewardbench")
    res = evaluate(model, tok, [bench]).results
    ours = res["benchmarks"]["rewardbench"]["aggregate"]["sections"]
    assert set(ours) == {"Chat Hard"}
    assert rewardbench_results(res, "m", "tokenizer")["Chat Hard"] == ours["Chat Hard"] == rb["Chat Hard"]


def test_rewardbench_format_needs_its_subsets(llama_rm, tmp_path, capsys):
    assert main(["eval", "--rm", str(llama_rm), "--bench", "rm-bench", "--out", str(tmp_path / "o"),
                 "--format", "rewardbench"]) == 2
    assert "needs RewardBench subsets" in capsys.readouterr().err  # before any model or data is loaded
    assert not (tmp_path / "o" / "results.json").exists()


# ----------------------------------------------------------------------------- study


SMALL = {"backbones": ["tiny-gpt2"], "objectives": ["helpful"], "seeds": [0],
         "evaluation": {"benchmarks": ["llmbar"], "max_items": 2}}


def test_study_formats_and_report_to_leave_existing_step_keys(tmp_path):
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import build_plan

    def keys(raw) -> dict[str, str]:
        return {s.label: s.key for s in build_plan(config_from_dict(json.loads(json.dumps(raw))), tmp_path).steps}

    base = keys(SMALL)
    plan = build_plan(config_from_dict(json.loads(json.dumps(SMALL))), tmp_path)
    assert "formats" not in plan.eval[("tiny-gpt2", "helpful", 0)].params  # default: params as before
    explicit = keys({**SMALL, "evaluation": {**SMALL["evaluation"], "formats": []}})
    tb = keys({**SMALL, "training": {"report_to": "tensorboard"}})
    rb = keys({**SMALL, "evaluation": {**SMALL["evaluation"], "formats": ["rewardbench"]}})
    assert explicit == base and tb == base
    assert rb["train:tiny-gpt2/helpful-s0"] == base["train:tiny-gpt2/helpful-s0"]
    assert rb["eval:tiny-gpt2/helpful-s0"] != base["eval:tiny-gpt2/helpful-s0"]
    with pytest.raises(RmtensionError, match="evaluation.formats"):
        config_from_dict({**SMALL, "evaluation": {"benchmarks": ["rm-bench"], "formats": ["rewardbench"]}})
    with pytest.raises(RmtensionError, match=r"evaluation.formats\[0\]: unknown value 'csv'"):
        config_from_dict({**SMALL, "evaluation": {**SMALL["evaluation"], "formats": ["csv"]}})


def test_summary_exports_every_run_task_metric(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_study import make_summary

    from rmtension.study.export import COLUMNS, export_summary

    summary = make_summary()
    paths = export_summary(summary, tmp_path)
    with open(tmp_path / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    for run in summary["runs"]:
        for bench, entry in run["eval"].items():
            for subset, s in entry["subsets"].items():
                match = [r for r in rows if (r["backbone"], r["objective"], r["seed"], r["benchmark"], r["subset"],
                                             r["metric"]) == (run["backbone"], run["objective"], str(run["seed"]),
                                                              bench, subset, "score")]
                assert len(match) == 1 and float(match[0]["value"]) == s["score"]
                assert match[0]["group"] == s["group"]
            for g, v in entry["groups"].items():
                assert any(r["metric"] == "group_mean" and r["group"] == g and r["benchmark"] == bench
                           and r["objective"] == run["objective"] and float(r["value"]) == v for r in rows)
    assert any(r["metric"] == "aggregate:sections.Chat" for r in rows)
    if len(paths) == 2:  # pyarrow installed: the same rows as Parquet
        import pyarrow.parquet as pq

        table = pq.read_table(tmp_path / "summary.parquet").to_pylist()
        assert len(table) == len(rows)
        assert [t["value"] for t in table] == [float(r["value"]) if r["value"] else None for r in rows]


def test_report_to_tensorboard(tmp_path, data_dir):
    from importlib.util import find_spec

    from rmtension.training.config import make_config
    from rmtension.training.trainer import tensorboard_dir, train

    cfg = make_config("cpu", backbone="tiny-gpt2", objective="helpful", max_pairs=8, batch_size=4, max_length=128,
                      bf16=False, heldout_max_pairs=4, logging_steps=1, data_dir=str(data_dir), report_to="tensorboard")
    if find_spec("tensorboard") is None and find_spec("tensorboardX") is None:
        with pytest.raises(RmtensionError, match="needs the tensorboard package") as err:
            train(cfg, tmp_path / "rm")
        assert "\n" not in str(err.value) and not (tmp_path / "rm").exists()
        pytest.skip("tensorboard is not installed: checked the one-line error only")
    train(cfg, tmp_path / "rm")
    assert list(tensorboard_dir(tmp_path / "rm").glob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- Python API


def test_import_is_light_and_every_stage_is_documented():
    code = ("import sys, rmtension\n"
            "names = ['train', 'load_rm', 'evaluate', 'neuron_stats', 'select_neurons', 'ablate', 'run_study']\n"
            "docs = {n: getattr(rmtension, n).__doc__ for n in names}\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
            "assert all(d and 'Example' in d and f'rmtension.{n}(' in d for n, d in docs.items()), docs\n"
            "assert set(names) <= set(dir(rmtension))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_reprs_are_short():
    from rmtension.neurons.sets import NeuronSet, select_top

    big = select_top(np.random.default_rng(0).random((30, 1536)), 10.0, meta={"method": "magnitude", "site": "act"})
    text = repr(big)
    assert text == "NeuronSet(4608 of 46080 neurons in 30 layers × 1536, method='magnitude', site='act', k=10.0, " \
                   "selection='global')"
    assert len(repr(NeuronSet.empty(30, 1536))) < 80


def test_notebook_walkthrough_runs(tmp_path, data_dir):
    """The examples/ script (what docs/API.md shows) runs end to end on tiny-llama."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    ns = runpy.run_path(str(EXAMPLE), run_name="walkthrough")
    out = ns["main"](["--data-dir", str(data_dir), "--out", str(tmp_path / "w")])
    rm = out["rm"]
    assert repr(rm).startswith("RewardModel(path=") and len(repr(rm)) < 200
    assert len(repr(out["neurons"])) < 200 and len(repr(out["stats"])) < 300 and len(repr(out["before"])) < 200
    # The ablation changed scores inside the block and the model is whole again after it.
    before = [r["chosen_scores"] for r in out["before"].items]
    assert [r["chosen_scores"] for r in out["after"].items] != before
    again = rm.score(out["probe"][0], out["probe"][1])
    assert again == pytest.approx(out["probe_score"], abs=1e-6)
    # The trained folder is portable: no absolute path, a card, our text from its chat template.
    folder = rm.path
    record = json.loads((folder / "rmtension.json").read_text())
    assert absolute_paths(record) == []
    assert record["metrics"]["heldout_accuracy_ci95"]["low"] <= record["metrics"]["heldout_accuracy"]
    assert "held-out accuracy" in (folder / "README.md").read_text()
    assert (tmp_path / "w" / "eval" / "rewardbench.json").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    prompt, response = out["probe"]
    text = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                   tokenize=False)
    assert abs(_plain_score(plain, tok, text) - out["probe_score"]) < 1e-5


def test_run_study_api_writes_summary_table_and_rewardbench(tmp_path, data_dir):
    """rmtension.run_study on a one-RM study: summary.json, the flat table, rewardbench.json per eval."""
    import rmtension

    config = {"backbones": ["tiny-gpt2"], "objectives": ["helpful"], "seeds": [0],
              "training": {"overrides": {"max_pairs": 8, "batch_size": 4, "max_length": 128, "bf16": False,
                                         "heldout_max_pairs": 4}},
              "evaluation": {"benchmarks": ["llmbar:llmbar-natural,llmbar-adver-manual"], "max_items": 3,
                             "formats": ["rewardbench"]},
              "neurons": {"methods": ["magnitude"], "max_pairs": 4, "max_length": 128},
              "ablation": {"enabled": False, "method": "magnitude", "curves": {"enabled": False, "methods": ["magnitude"]}},
              "report": {"enabled": False}}
    study = rmtension.run_study(config, tmp_path / "study", data_dir=data_dir, verbose=False)
    assert repr(study).startswith("StudyResult(out=") and study.ran >= 2 and study.report is None
    run = study.summary()["runs"][0]
    table = study.table()
    bench = "llmbar:llmbar-natural,llmbar-adver-manual"
    scores = table[(table.metric == "score") & (table.benchmark == bench)]
    assert set(scores.subset) == {"llmbar-natural", "llmbar-adver-manual"}
    for _, row in scores.iterrows():
        assert row.value == run["eval"][bench]["subsets"][row.subset]["score"]
    (rb_file,) = (tmp_path / "study" / "steps" / "eval").glob("*/rewardbench.json")
    rb = json.loads(rb_file.read_text())
    assert rb["llmbar-natural"] == run["eval"][bench]["subsets"]["llmbar-natural"]["score"]
    assert rb["model"].startswith("tiny-gpt2__helpful-s0")
    again = rmtension.run_study(config, tmp_path / "study", data_dir=data_dir, verbose=False)
    assert again.ran == 0 and again.cached == study.ran + study.cached
