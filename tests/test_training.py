"""Training on tiny models: seeds, resume after kill -9, over-long pairs, NaN stop, record, 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rmtension.cli.main import main
from rmtension.errors import RmtensionError
from rmtension.training.config import make_config, parse_assignments
from rmtension.training.data import prepare_data

BASE = ["--backbone", "tiny-llama", "--objective", "harmless", "--max-pairs", "24", "--batch-size", "4",
        "--max-length", "384", "--overlong", "truncate", "--epochs", "1", "--set", "heldout_max_pairs=16",
        "--set", "logging_steps=1"]


def _train(tmp_path: Path, name: str, data_dir: Path, *extra: str, seed: int = 0) -> Path:
    out = tmp_path / name
    rc = main(["train", *BASE, "--seed", str(seed), "--out", str(out), "--data-dir", str(data_dir), *extra])
    assert rc == 0
    return out


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_different_seed_different(tmp_path, data_dir):
    a = _weights(_train(tmp_path, "a", data_dir, seed=3))
    b = _weights(_train(tmp_path, "b", data_dir, seed=3))
    c = _weights(_train(tmp_path, "c", data_dir, seed=4))
    assert _same(a, b)
    head = [k for k in a if k.startswith("score")]
    assert head and not torch.equal(a[head[0]], c[head[0]])  # seed reaches the head initialisation
    body = [k for k in a if "layers.0.mlp.up_proj" in k][0]
    assert not torch.equal(a[body], c[body])  # and the data order / updates
    # The learning rate reaches the trainer too (the paper's code lost it).
    d = _weights(_train(tmp_path, "d", data_dir, "--lr", "3e-4", seed=3))
    assert not torch.equal(a[body], d[body])


def test_record_and_folder_load_with_transformers(tmp_path, data_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = _train(tmp_path, "rm", data_dir, seed=1)
    rec = json.loads((out / "rmtension.json").read_text())
    assert rec["backbone"] == "tiny-llama" and rec["seed"] == 1 and rec["objective"] == "harmless"
    assert rec["config"]["lr"] == 1e-4 and rec["config"]["batch_size"] == 4
    assert rec["pairs"]["used"] == 24 and rec["pairs"]["records"] == 2312
    assert rec["pairs"]["skipped"] == {"empty-response": 4, "prompt-mismatch": 5}
    assert rec["data_files"][0]["sha256"] and len(rec["data_files"][0]["sha256"]) == 64
    assert rec["trainer"]["global_steps"] == 6 and rec["trainer"]["first_logged_loss"] is not None
    assert 0.0 <= rec["metrics"]["heldout_accuracy"] <= 1.0 and rec["metrics"]["heldout_n"] == 16
    assert {"torch", "transformers", "trl"} <= set(rec["versions"])
    assert rec["wall_time_s"] > 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1 and tok.pad_token_id is not None
    assert not (out.parent / "rm.checkpoints").exists()  # removed after success


def test_overlong_drop_and_truncate_are_counted(data_dir):
    from rmtension.models.reward_model import build_reward_model

    _, tok = build_reward_model("tiny-llama", seed=0)
    drop = prepare_data(make_config("paper", backbone="tiny-llama", objective="harmless", data_dir=str(data_dir),
                                    max_pairs=40, max_length=300, overlong="drop"), tok)
    c = drop.counts
    assert c["dropped_overlong"] > 0 and c["used"] == c["sampled"] - c["dropped_overlong"]
    assert all(len(r["chosen_ids"]) <= 300 and len(r["rejected_ids"]) <= 300 for r in drop.train_rows)
    trunc = prepare_data(make_config("paper", backbone="tiny-llama", objective="harmless", data_dir=str(data_dir),
                                     max_pairs=40, max_length=300, overlong="truncate"), tok)
    t = trunc.counts
    assert t["truncated_overlong"] == c["dropped_overlong"] and t["used"] == 40
    # Left truncation keeps the end of the text (the response and its EOS).
    full = prepare_data(make_config("paper", backbone="tiny-llama", objective="harmless", data_dir=str(data_dir),
                                    max_pairs=40, max_length=100000), tok)
    for a, b in zip(trunc.train_rows, full.train_rows):
        assert a["chosen_ids"][-50:] == b["chosen_ids"][-50:]
    with pytest.raises(RmtensionError, match="no training pairs left"):
        prepare_data(make_config("paper", backbone="tiny-llama", objective="harmless", data_dir=str(data_dir),
                                 max_pairs=5, max_length=8, overlong="drop"), tok)


def test_nan_loss_stops_without_saving(tmp_path, data_dir, capsys):
    out = tmp_path / "nan"
    rc = main(["train", *BASE, "--seed", "0", "--out", str(out), "--data-dir", str(data_dir), "--lr", "1e12",
               "--set", "max_grad_norm=1e30"])
    err = capsys.readouterr().err
    assert rc == 2 and "loss became" in err and "without saving" in err
    assert not (out / "rmtension.json").exists()
    # It failed at step 1, before any checkpoint: no empty OUT.checkpoints is left behind (issue 18, item 7).
    assert not (tmp_path / "nan.checkpoints").exists()


def test_config_presets_and_overrides():
    cfg = make_config("paper", objective="mixed")
    assert (cfg.batch_size, cfg.lr, cfg.max_length, cfg.overlong, cfg.effective_epochs()) == (16, 1e-4, 1024, "drop", 1.0)
    assert make_config("paper", objective="helpful").effective_epochs() == 2.0
    cpu = make_config("cpu", **parse_assignments(["lr=2e-5", "bf16=false", "max_pairs=none"]))
    assert cpu.lr == 2e-5 and cpu.bf16 is False and cpu.max_pairs is None and cpu.max_length == 256
    # Batching: the paper's plain TRL steps; the cpu preset groups lengths and shares prompts (same loss, issue 12).
    assert (cfg.length_grouped, cfg.shared_prompt) == (False, False)
    assert (cpu.length_grouped, cpu.shared_prompt) == (True, True)
    assert make_config("cpu", length_grouped=False).length_grouped is False
    with pytest.raises(RmtensionError, match="unknown training field"):
        make_config("paper", nope=1)
    with pytest.raises(RmtensionError, match="objective"):
        make_config("paper", objective="both")


KILLER = textwrap.dedent("""
    import os, signal, sys
    import rmtension.training.trainer as T
    make = T._reward_trainer_cls
    def patched():
        cls = make()
        class KilledAfterCheckpoint(cls):
            def _save_checkpoint(self, *a, **k):
                super()._save_checkpoint(*a, **k)
                if self.state.global_step >= int(os.environ["KILL_AT"]):
                    os.kill(os.getpid(), signal.SIGKILL)
        return KilledAfterCheckpoint
    T._reward_trainer_cls = patched
    from rmtension.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def test_resume_after_kill_gives_the_same_weights(tmp_path, data_dir):
    args = ["train", *BASE, "--seed", "5", "--data-dir", str(data_dir), "--save-steps", "2"]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = tmp_path / "killed"
    env = {**os.environ, "KILL_AT": "4"}
    res = subprocess.run([sys.executable, str(script), *args, "--out", str(out)], env=env, capture_output=True, text=True)
    assert res.returncode == -9, res.stderr[-2000:]
    assert not (out / "rmtension.json").exists()
    ckpts = sorted(p.name for p in (tmp_path / "killed.checkpoints").iterdir())
    assert "checkpoint-4" in ckpts
    assert main([*args, "--out", str(out), "--resume"]) == 0
    rec = json.loads((out / "rmtension.json").read_text())
    assert rec["trainer"]["resumed_from"].endswith("checkpoint-4")
    assert _same(_weights(ref), _weights(out))
    # The loss of the whole run, not of the 2 steps after the resume (issue 18, item 6).
    ref_loss = json.loads((ref / "rmtension.json").read_text())["trainer"]["train_loss"]
    assert ref_loss is not None and rec["trainer"]["train_loss"] == pytest.approx(ref_loss, rel=1e-9)


def test_existing_outputs_are_protected(tmp_path, data_dir, capsys):
    out = _train(tmp_path, "done", data_dir)
    rc = main(["train", *BASE, "--seed", "0", "--out", str(out), "--data-dir", str(data_dir)])
    assert rc == 2 and "already holds a trained RM" in capsys.readouterr().err
    # --resume on a finished run is a no-op that returns its record.
    assert main(["train", *BASE, "--seed", "0", "--out", str(out), "--data-dir", str(data_dir), "--resume"]) == 0


@pytest.mark.parametrize("batching", [[], ["--set", "length_grouped=true", "--set", "shared_prompt=true"]],
                         ids=["plain", "grouped-shared"])
def test_two_processes_match_one_process_with_the_global_batch(tmp_path, data_dir, batching):
    """accelerate launch with 2 CPU processes × 2 pairs equals 1 process × 4 pairs (same data order), with TRL's
    plain steps and with length-grouped shared-prompt steps (each process its share of every grouped step).

    On a machine without GPUs ``accelerate launch --multi_gpu`` starts gloo processes on the CPU
    (``--cpu`` alone would silently start one process: accelerate's multi-CPU mode wants MPI).
    """
    common = ["--backbone", "tiny-gpt2", "--objective", "helpful", "--seed", "2", "--max-pairs", "16",
              "--max-length", "256", "--overlong", "truncate", "--epochs", "1", "--data-dir", str(data_dir),
              "--set", "heldout_max_pairs=8", "--set", "disable_dropout=true", "--lr", "2e-3", *batching]
    one = tmp_path / "one"
    assert main(["train", *common, "--batch-size", "4", "--out", str(one)]) == 0
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rmtension", "train", *common,
           "--batch-size", "2", "--out", str(two)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads((two / "rmtension.json").read_text())
    assert rec["trainer"]["num_processes"] == 2 and rec["trainer"]["global_steps"] == 4
    one_rec = json.loads((one / "rmtension.json").read_text())
    assert rec["batching"]["shared_prompt"] is bool(batching) and rec["config"]["length_grouped"] is bool(batching)
    # Both processes' tokens are counted: the same real tokens as one process (padding differs per batch).
    assert rec["batching"]["real_tokens"] == one_rec["batching"]["real_tokens"] > 0
    a, b = _weights(one), _weights(two)
    from rmtension.models.reward_model import build_reward_model

    init = build_reward_model("tiny-gpt2", seed=2)[0].state_dict()
    keys = [k for k in a if k in init]
    moved = torch.cat([(a[k] - init[k]).abs().flatten() for k in keys])
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in keys])
    assert moved.mean() > 1e-3  # training moved the weights, so the comparison below means something
    # Equal up to float reduction order: Adam turns the tiny gradient differences of a few
    # near-zero-gradient parameters into visible steps, so compare in bulk.
    assert diff.mean() < 1e-4 * moved.mean(), (diff.mean(), moved.mean())
    assert (diff > 1e-6).float().mean() < 0.01


@pytest.mark.slow
def test_real_smollm2_trains_a_few_steps(tmp_path, data_dir):
    """The real offline backbone: 3 steps of 2 pairs, loss finite, weights move, folder loads."""
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "smol"
    rc = main(["train", "--backbone", "smollm2-135m-instruct", "--objective", "helpful", "--seed", "0",
               "--preset", "cpu", "--max-pairs", "6", "--batch-size", "2", "--max-length", "96",
               "--data-dir", str(data_dir), "--set", "heldout_max_pairs=4", "--set", "logging_steps=1",
               "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "rmtension.json").read_text())
    assert rec["trainer"]["global_steps"] == 3 and rec["config"]["bf16"] is True
    assert all(np.isfinite(h) for h in [rec["trainer"]["first_logged_loss"], rec["trainer"]["last_logged_loss"]])
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 30 and model.config.intermediate_size == 1536
    from rmtension.models.reward_model import build_reward_model

    init = build_reward_model("smollm2-135m-instruct", seed=0)[0].state_dict()
    trained = model.state_dict()
    key = "model.layers.29.mlp.down_proj.weight"
    assert not torch.equal(init[key], trained[key])


def test_whole_run_loss_weights_each_logged_window():
    """Each logged loss is the mean since the previous log, so the run's mean weights it by its window."""
    from rmtension.training.trainer import whole_run_loss

    hist = [{"loss": 1.0, "step": 2}, {"loss": 4.0, "step": 3}, {"eval": 1, "step": 3}, {"loss": 0.5, "step": 7},
            {"train_loss": 9.0, "step": 7}]
    assert whole_run_loss(hist, 7) == pytest.approx((1.0 * 2 + 4.0 * 1 + 0.5 * 4) / 7)
    assert whole_run_loss(hist, 8) is None  # the last step was never logged
    assert whole_run_loss(hist, 7, resumed_at=5) is None  # resumed from a step with unlogged steps before it
    assert whole_run_loss(hist, 7, resumed_at=3) == pytest.approx(8.0 / 7)
    assert whole_run_loss([], 0) is None


def test_resume_skips_a_broken_newest_checkpoint_and_keeps_the_whole_run_loss(tmp_path, data_dir, monkeypatch):
    """A newest checkpoint cut short (full disk) is skipped for the newest complete one, and the result equals an
    uninterrupted run: the same weights and the same train_loss. Resuming from the *final* checkpoint (all steps
    done) also reports the whole run's loss, not 0.0 (issue 18, items 5 and 6). Logging every 50 steps with a
    checkpoint every 2: the steps before a checkpoint are in its log history only because we log at checkpoints."""
    import shutil

    import rmtension.training.trainer as T
    from rmtension.training.trainer import checkpoint_problem

    reported = []
    make = T._reward_trainer_cls

    def spy():
        class Spy(make()):
            def train(self, *a, **k):
                out = super().train(*a, **k)
                reported.append(out.training_loss)
                return out
        return Spy

    monkeypatch.setattr(T, "_reward_trainer_cls", spy)
    args = ["train", *BASE, "--seed", "5", "--data-dir", str(data_dir), "--save-steps", "2",
            "--set", "keep_checkpoints=true", "--set", "logging_steps=50"]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    ref_rec = json.loads((ref / "rmtension.json").read_text())
    ref_loss = ref_rec["trainer"]["train_loss"]
    assert ref_rec["trainer"]["global_steps"] == 6 and ref_loss is not None and ref_loss > 0
    # Uninterrupted, it is the trainer's own mean over all steps.
    assert ref_loss == pytest.approx(reported[0], rel=1e-6)
    ckpts = tmp_path / "ref.checkpoints"
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert checkpoint_problem(ckpts / "checkpoint-4") is None and checkpoint_problem(ckpts / "checkpoint-6") is None

    # Every way a checkpoint can be cut short is recognised as incomplete.
    def broken(name: str, damage) -> Path:
        dst = tmp_path / "broken" / name / "checkpoint-6"
        shutil.copytree(ckpts / "checkpoint-6", dst)
        damage(dst)
        return dst

    def truncate(f: str):
        def damage(d: Path) -> None:
            data = (d / f).read_bytes()
            (d / f).write_bytes(data[: len(data) // 2])
        return damage

    cases = {
        "no-state": lambda d: (d / "trainer_state.json").unlink(),
        "bad-state": lambda d: (d / "trainer_state.json").write_text("{\"global_step\": 6"),
        "weights": truncate("model.safetensors"),
        "optimizer": truncate("optimizer.pt"),
        "scheduler": lambda d: (d / "scheduler.pt").unlink(),
        "rng": truncate("rng_state.pth"),
    }
    for name, damage in cases.items():
        assert checkpoint_problem(broken(name, damage)) is not None, name

    # Resume from the final checkpoint: nothing left to train, the loss is still the whole run's.
    final = tmp_path / "final"
    shutil.copytree(ckpts, tmp_path / "final.checkpoints")
    assert main([*args, "--out", str(final), "--resume"]) == 0
    rec = json.loads((final / "rmtension.json").read_text())
    assert rec["trainer"]["resumed_from"].endswith("checkpoint-6")
    assert rec["trainer"]["train_loss"] == pytest.approx(ref_loss, rel=1e-9)

    # A truncated newest checkpoint: resume from checkpoint-4 instead, and end where the reference did.
    out = tmp_path / "out"
    shutil.copytree(ckpts, tmp_path / "out.checkpoints")
    truncate("model.safetensors")(tmp_path / "out.checkpoints" / "checkpoint-6")
    assert main([*args, "--out", str(out), "--resume"]) == 0
    rec = json.loads((out / "rmtension.json").read_text())
    assert rec["trainer"]["resumed_from"].endswith("checkpoint-4")
    assert _same(_weights(ref), _weights(out))
    assert rec["trainer"]["train_loss"] == pytest.approx(ref_loss, rel=1e-9)
    assert reported[-1] != pytest.approx(ref_loss, rel=1e-6)  # the trainer's own number: steps 5-6 only


def test_paper_preset_is_what_the_papers_trainer_ran():
    """The `paper` preset against EshaanT/RM-alignment_tension @96efa92 train_new.py and the TRL it locked
    (uv.lock: trl 0.27.1, transformers 5.0.0): batch 16 (--batch_size default), lr 1e-4 (RewardConfig default;
    --lr is never passed), linear schedule (TrainingArguments default), 2 epochs (--epochs default; 1 for mixed from
    the paper's text), max_length 1024 with over-long pairs dropped (RewardConfig default; RewardTrainer filters),
    dropout off (RewardConfig.disable_dropout default True, not overridden). configs/paper.yaml uses the base
    SmolLM2 models of the paper's MODEL_PATHS (RM_interpretation/rm_model/model.py), not -Instruct."""
    import yaml

    from rmtension.training.trainer import _training_args

    cfg = make_config("paper", objective="helpful")
    assert (cfg.batch_size, cfg.lr, cfg.scheduler, cfg.effective_epochs(), cfg.max_length, cfg.overlong) == \
        (16, 1e-4, "linear", 2.0, 1024, "drop")
    assert make_config("paper", objective="mixed").effective_epochs() == 1.0
    assert cfg.disable_dropout is True and cfg.warmup_ratio == 0.0 and cfg.weight_decay == 0.0
    assert _training_args(cfg, Path("/tmp/x")).disable_dropout is True
    paper = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs" / "paper.yaml").read_text())
    smol = [b for b in paper["backbones"] if "SmolLM2" in b]
    assert smol == ["HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-1.7B"]
    assert [b for b in paper["backbones"] if "gpt2" in b] == \
        ["openai-community/gpt2", "openai-community/gpt2-medium", "openai-community/gpt2-large"]


def test_dropout_is_off_in_training_by_default(tmp_path, data_dir, monkeypatch):
    """tiny-gpt2 has dropout 0.1; the trainer the paper preset builds runs it with every dropout at p = 0."""
    import rmtension.training.trainer as T

    seen = {}
    make = T._reward_trainer_cls

    def spy():
        cls = make()

        class Spy(cls):
            def training_step(self, model, *a, **k):
                seen.setdefault("p", [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)])
                return super().training_step(model, *a, **k)
        return Spy

    monkeypatch.setattr(T, "_reward_trainer_cls", spy)
    assert main(["train", "--backbone", "tiny-gpt2", "--objective", "helpful", "--seed", "0", "--max-pairs", "4",
                 "--batch-size", "4", "--max-length", "128", "--overlong", "truncate", "--max-steps", "1",
                 "--set", "heldout_max_pairs=2", "--data-dir", str(data_dir), "--out", str(tmp_path / "rm")]) == 0
    assert seen["p"] and all(p == 0.0 for p in seen["p"])
