"""hh-heldout (and neurons --split) carved with the split the evaluated RM was trained with (issue 10, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmtension.bench.loaders import load_benchmark, rm_heldout_split
from rmtension.cli.main import main
from rmtension.data.split import DEFAULT_SALT, HeldoutSplit, prompt_key
from rmtension.data.sources import load_preferences
from rmtension.errors import RmtensionError
from rmtension.models.reward_model import heldout_split_of


def _prompt_text(prompt) -> str:
    return "\n".join(f"{t.role}: {t.content}" for t in prompt)


def test_eval_hh_heldout_never_scores_a_prompt_the_rm_was_trained_on(tmp_path, data_dir, monkeypatch, capsys):
    """Train a tiny RM with heldout_fraction 0.05 (configs/paper.yaml's value), evaluate it on hh-heldout, and
    check every scored item against the pairs the trainer really received: no shared first user turn, no shared
    prompt. The default 20% split would have scored prompts it was trained on (checked below), which is the leak."""
    import rmtension.training.trainer as T

    seen = {}
    real_prepare = T.prepare_data

    def capture(cfg, tokenizer):
        seen["prepared"] = real_prepare(cfg, tokenizer)
        return seen["prepared"]

    monkeypatch.setattr(T, "prepare_data", capture)
    rm = tmp_path / "rm"
    assert main(["train", "--backbone", "tiny-llama", "--objective", "mixed", "--seed", "0", "--max-pairs", "120",
                 "--batch-size", "8", "--max-length", "256", "--overlong", "truncate", "--max-steps", "2",
                 "--set", "heldout_fraction=0.05", "--set", "heldout_max_pairs=4", "--data-dir", str(data_dir),
                 "--out", str(rm)]) == 0
    record = json.loads((rm / "rmtension.json").read_text())
    assert record["split"]["heldout_fraction"] == 0.05 and record["split"]["salt"] == DEFAULT_SALT
    trained = seen["prepared"].train_pairs
    assert len(trained) == 120

    ev = tmp_path / "ev"
    rc = main(["eval", "--rm", str(rm), "--bench", "hh-heldout", "--data-dir", str(data_dir), "--max-length", "64",
               "--batch-size", "32", "--no-progress", "--out", str(ev)])
    assert rc == 0, capsys.readouterr().err
    scored_ids = {json.loads(line)["id"] for line in (ev / "items.jsonl").read_text().splitlines()}
    # Map the scored ids back to their prompts through the full data, not through the split code.
    by_id = {p.id: p for p in load_preferences("hh-rlhf:mixed", data_dir).pairs}
    scored = [by_id[i] for i in scored_ids]
    assert len(scored) > 100  # 5% of ~8.5k pairs: the check below is over a real set
    train_keys = {prompt_key(p.prompt) for p in trained}
    train_texts = {_prompt_text(p.prompt) for p in trained}
    assert not {prompt_key(p.prompt) for p in scored} & train_keys
    assert not {_prompt_text(p.prompt) for p in scored} & train_texts
    assert not scored_ids & {p.id for p in trained}
    # The old behaviour (always the default 20% split) scores prompts this RM was trained on.
    leaky = load_benchmark("hh-heldout", data_dir)
    assert {prompt_key(it.prompt) for it in leaky.items} & train_keys
    results = json.loads((ev / "results.json").read_text())
    assert results["benchmarks"]["hh-heldout"]["aggregate"]["items"] == len(scored_ids)


def test_rm_without_a_recorded_split_is_refused_for_hh_heldout(tmp_path, data_dir, capsys):
    """An RM folder whose record holds no split (hub model, other code) cannot be scored on hh-heldout: one line,
    exit 2, before any model is loaded. Other benchmarks still need no split."""
    rm = tmp_path / "foreign"
    rm.mkdir()
    (rm / "rmtension.json").write_text(json.dumps({"backbone": "x", "template": "hh"}))
    rc = main(["eval", "--rm", str(rm), "--bench", "hh-heldout", "--data-dir", str(data_dir), "--out",
               str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2 and "records no train/held-out split" in err and len(err.strip().splitlines()) == 1
    assert rm_heldout_split(rm, ["rm-bench"]) is None
    with pytest.raises(RmtensionError, match="no train/held-out split"):
        rm_heldout_split(rm, ["hh-heldout:harmless-base"])


def test_split_of_a_record_new_legacy_and_bad():
    """`split` wins; a legacy `rmtension train` record has config.heldout_fraction and the only salt the code ever
    used; a fraction of 0 (nothing held out) or a malformed entry is refused."""
    assert heldout_split_of({"split": {"heldout_fraction": 0.05, "salt": "s"}}, "rm") == HeldoutSplit(0.05, "s")
    assert heldout_split_of({"kind": "reward-model", "config": {"heldout_fraction": 0.05}}, "rm") == \
        HeldoutSplit(0.05, DEFAULT_SALT)
    with pytest.raises(RmtensionError, match="heldout_fraction 0"):
        heldout_split_of({"split": {"heldout_fraction": 0.0, "salt": "s"}}, "rm")
    for bad in ({"heldout_fraction": 1.5, "salt": "s"}, {"heldout_fraction": "0.1", "salt": "s"},
                {"heldout_fraction": 0.1, "salt": 3}):
        with pytest.raises(RmtensionError, match="split"):
            heldout_split_of({"split": bad}, "rm")


def test_hh_heldout_follows_the_given_split(data_dir):
    """The loader carves exactly the held-out side of the given split (fraction and salt), and says whose it is."""
    pairs = load_preferences("hh-rlhf:mixed", data_dir).pairs
    for split in (HeldoutSplit(0.05), HeldoutSplit(0.2, "other-salt")):
        bench = load_benchmark("hh-heldout", data_dir, split)
        assert [it.id for it in bench.items] == [p.id for p in split.apply(pairs)[1]]
        assert "RM's recorded training split" in bench.notes[0]
    small, large = (len(load_benchmark("hh-heldout", data_dir, HeldoutSplit(f)).items) for f in (0.05, 0.2))
    assert 0.15 < small / large < 0.35


def test_neurons_split_uses_the_rms_split(tmp_path, data_dir):
    """`neurons score --split heldout` on an RM trained with 5% held out scores only that 5%."""
    from rmtension.neurons.pipeline import ScoreRequest, _select_pairs

    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "rmtension.json").write_text(json.dumps({"split": {"heldout_fraction": 0.05, "salt": DEFAULT_SALT}}))
    pairs = load_preferences("hh-rlhf:harmless", data_dir).pairs
    held = _select_pairs(pairs, ScoreRequest(rm=str(rm), data="hh-rlhf:harmless", split="heldout"))
    train = _select_pairs(pairs, ScoreRequest(rm=str(rm), data="hh-rlhf:harmless", split="train"))
    assert len(held) + len(train) == len(pairs) and 0 < len(held) < 0.1 * len(pairs)
    assert not {prompt_key(p.prompt) for p in held} & {prompt_key(p.prompt) for p in train}
    (rm / "rmtension.json").write_text("{}")
    with pytest.raises(RmtensionError, match="no train/held-out split"):
        _select_pairs(pairs, ScoreRequest(rm=str(rm), data="hh-rlhf:harmless", split="heldout"))
    assert len(_select_pairs(pairs, ScoreRequest(rm=str(rm), data="hh-rlhf:harmless"))) == len(pairs)


def test_study_benchmarks_use_the_rms_split(tmp_path, data_dir):
    """The study loads hh-heldout for each RM with that RM's split (configs/paper.yaml trains with 0.05), and an
    hh-heldout step's cache key carries the rule, so results cached under the old always-20% rule are not reused."""
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import _load_benches, build_plan

    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "rmtension.json").write_text(json.dumps({"split": {"heldout_fraction": 0.05, "salt": DEFAULT_SALT}}))
    (bench,) = _load_benches(["hh-heldout"], None, str(data_dir), rm)
    assert [it.id for it in bench.items] == [it.id for it in load_benchmark("hh-heldout", data_dir, HeldoutSplit(0.05)).items]
    plan = build_plan(config_from_dict({"backbones": ["tiny-llama"], "objectives": ["helpful"], "seeds": [0],
                                        "evaluation": {"benchmarks": ["hh-heldout"]}}), tmp_path / "study")
    (ev,) = [s for s in plan.steps if s.kind == "eval"]
    assert ev.params["hh_heldout_split"] == "rm"
