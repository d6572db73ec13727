"""Bradley-Terry reward-model training through TRL's ``RewardTrainer``.

Why TRL: it is what the field and the paper use, its loss is exactly −log σ(r_chosen − r_rejected),
and through ``transformers.Trainer`` it brings accelerate (multi-process / multi-GPU, DeepSpeed,
FSDP), checkpoints that hold optimizer, scheduler and RNG states, and resumption. What we add:
our own data pipeline (template, over-long policy, counts — TRL would silently filter), an explicit
seed path (the paper's train_new.py passes neither its ``--seed`` nor its ``--lr`` to ``RewardConfig``:
its trainer ran with seed 42 and TRL's default lr), a stop on NaN/inf loss before anything is saved,
resumption from the newest *complete* checkpoint, the training loss over the whole run (also across
resumes), a held-out evaluation with our scorer, and a run record.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmtension.files import check_out_dir
from rmtension.data.split import HeldoutSplit
from rmtension.errors import RmtensionError
from rmtension.training.batching import SharedPromptCollator
from rmtension.training.config import TrainConfig
from rmtension.training.data import PreparedData, prepare_data, training_source

RECORD = "rmtension.json"
log = logging.getLogger(__name__)


def tensorboard_dir(out_dir: Path) -> Path:
    """TensorBoard event files (``report_to: tensorboard``) live beside the RM folder, like checkpoints,
    so that the RM folder holds nothing but the model."""
    return out_dir.with_name(out_dir.name + ".tensorboard")


def report_callbacks(cfg: TrainConfig, out_dir: Path) -> list:
    """The trainer callbacks ``cfg.report_to`` asks for; a one-line error when the logger is not installed.

    TensorBoard gets its own callback (not ``RewardConfig(report_to=...)``) so that the event files go
    to ``tensorboard_dir(out_dir)``: the trainer's default is inside the checkpoint folder, which is
    deleted after a successful run.
    """
    if cfg.report_to == "none":
        return []
    from transformers.integrations import TensorBoardCallback
    from transformers.integrations.integration_utils import is_tensorboard_available

    if not is_tensorboard_available():
        raise RmtensionError("report_to tensorboard needs the tensorboard package (pip install tensorboard); "
                             "it is not installed")
    callback = TensorBoardCallback()
    callback.logging_dir = str(tensorboard_dir(out_dir))
    return [callback]


def checkpoint_dir(out_dir: Path) -> Path:
    """Checkpoints live beside the RM folder (``OUT.checkpoints``), not inside it, so that the RM
    folder is published atomically as a whole and holds nothing but the finished model."""
    return out_dir.with_name(out_dir.name + ".checkpoints")


class NonFiniteLossError(RmtensionError):
    """The loss became NaN or infinite; the run stops and the final model is not written."""


def _reward_trainer_cls():
    from trl import RewardTrainer

    from rmtension.training.batching import LengthGroupedSampler, padded_length, shared_prompt_rewards

    class CheckedRewardTrainer(RewardTrainer):
        """TRL's trainer with a finite-loss check after every step, optional length-grouped steps and
        shared-prompt pairs (training.batching), and a count of the positions computed and the real
        tokens over the whole run (kept in the log history, so it survives resumes).

        Without the two options, every step is TRL's own (its collator, sampler and ``compute_loss``)."""

        def __init__(self, *args, length_grouped: bool = False, shared_prompt: bool = False, **kwargs):
            self.length_grouped = length_grouped
            self.shared_prompt = shared_prompt
            self.positions_total = 0
            self.real_tokens_total = 0
            self.counts_complete = True
            self._counts_restored = False
            super().__init__(*args, **kwargs)

        # ------------------------------------------------------------ data order
        def _get_train_sampler(self, train_dataset=None):
            if not self.length_grouped:
                return super()._get_train_sampler(train_dataset)
            ds = train_dataset if train_dataset is not None else self.train_dataset
            lengths = [padded_length({"chosen_ids": c, "rejected_ids": r}, self.shared_prompt)
                       for c, r in zip(ds["chosen_ids"], ds["rejected_ids"])]
            # One micro-step over all processes: accelerate hands each process one per-device batch of it.
            group = self.args.per_device_train_batch_size * self.args.world_size
            return LengthGroupedSampler(lengths, group, self.args.seed)

        # ------------------------------------------------------------ counts
        def _restore_counts(self) -> None:
            """Continue the counts of a resumed run from its checkpoint's log history (logged at every
            checkpoint step); a run resumed from a checkpoint without them is marked incomplete."""
            if self._counts_restored:
                return
            self._counts_restored = True
            step = self.state.global_step
            if step == 0:
                return
            for entry in reversed(self.state.log_history):
                if "positions_total" in entry:
                    if int(entry.get("step", -1)) == step:
                        self.positions_total = int(entry["positions_total"])
                        self.real_tokens_total = int(entry["real_tokens_total"])
                        return
                    break
            self.counts_complete = False

        def _count(self, positions, real_tokens) -> None:
            self._restore_counts()
            t = torch.stack([torch.as_tensor(positions), torch.as_tensor(real_tokens)]).to(self.accelerator.device,
                                                                                          torch.long)
            t = self.accelerator.reduce(t, reduction="sum")  # every process's micro-batch of this step
            self.positions_total += int(t[0])
            self.real_tokens_total += int(t[1])

        def run_counts(self) -> dict[str, Any]:
            self._restore_counts()
            ok = self.counts_complete and self.real_tokens_total > 0
            return {"positions": self.positions_total if ok else None,
                    "real_tokens": self.real_tokens_total if ok else None,
                    "positions_per_token": round(self.positions_total / self.real_tokens_total, 4) if ok else None}

        def log(self, logs, start_time=None):
            if self.model.training or "loss" in logs:
                self._restore_counts()
                logs["positions_total"] = self.positions_total
                logs["real_tokens_total"] = self.real_tokens_total
            super().log(logs, start_time)

        # ------------------------------------------------------------ loss
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            training = self.model.training
            if "segment_ids" not in inputs:  # the plain path: TRL's own step
                if training:
                    self._count(inputs["input_ids"].numel(), inputs["attention_mask"].sum())
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return self._shared_prompt_loss(model, inputs, return_outputs, training)

        def _shared_prompt_loss(self, model, inputs, return_outputs, training):
            """The same Bradley-Terry loss and logged metrics as TRL's ``compute_loss`` (trl 1.16.0
            reward_trainer.py), on rewards read from one packed row per pair."""
            mode = "train" if training else "eval"
            rewards_chosen, rewards_rejected = shared_prompt_rewards(model, inputs)
            diff = rewards_chosen - rewards_rejected
            if "margin" in inputs:
                diff = diff - inputs["margin"]
            loss = -torch.nn.functional.logsigmoid(diff).mean()
            if self.args.center_rewards_coefficient is not None:
                loss += self.args.center_rewards_coefficient * torch.mean((rewards_chosen + rewards_rejected) ** 2)
            if training:
                self._count(inputs["input_ids"].numel(), inputs["real_tokens"])
                tokens = self.accelerator.gather_for_metrics(inputs["real_tokens"].reshape(1)).sum().item()
                self._total_train_tokens += tokens // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            with torch.no_grad():
                logits = torch.cat([rewards_chosen, rewards_rejected])
                all_rewards = self.accelerator.gather(logits)
                self._metrics[mode]["min_reward"].append(all_rewards.min().item())
                self._metrics[mode]["mean_reward"].append(all_rewards.mean().item())
                self._metrics[mode]["max_reward"].append(all_rewards.max().item())
                acc = (rewards_chosen > rewards_rejected).float().mean()
                self._metrics[mode]["accuracy"].append(self.accelerator.gather_for_metrics(acc).mean().item())
                margin = (rewards_chosen - rewards_rejected).mean()
                self._metrics[mode]["margin"].append(self.accelerator.gather_for_metrics(margin).mean().item())
            return (loss, {"logits": logits[:, None]}) if return_outputs else loss

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            if not torch.isfinite(loss.detach()).all():
                step = self.state.global_step + 1
                raise NonFiniteLossError(
                    f"training loss became {loss.detach().float().mean().item()} at step {step}; stopped without saving "
                    "the model (lower --lr, use float32 instead of bf16, or check the data); "
                    "checkpoints written before the failure are kept"
                )
            return loss

    return CheckedRewardTrainer


def _log_at_checkpoints_callback():
    from transformers import TrainerCallback

    class LogAtCheckpoints(TrainerCallback):
        """Log the running loss at every step that writes a checkpoint, and at the last step.

        The trainer's running loss is not checkpointed: after a resume it starts again from the
        resumed step, so steps not yet logged when the checkpoint was written would be lost (and
        the trainer's own ``training_loss`` averages only the steps after the resume). Logging at
        each checkpoint puts every step's loss in the log history that the checkpoint carries, from
        which ``whole_run_loss`` computes the loss of the whole run. Runs after the trainer's own
        flow callback, which decides ``should_save`` and ``should_training_stop``.
        """

        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save or control.should_training_stop:
                control.should_log = True
            return control

    return LogAtCheckpoints()


def whole_run_loss(log_history: list[dict[str, Any]], global_step: int, resumed_at: int | None = None) -> float | None:
    """Mean training loss over steps 1..``global_step`` from the trainer's log history.

    Each ``loss`` entry is the mean over the steps since the previous one, so it is weighted by that
    window. None when the history does not cover every step: nothing logged, the last entry before
    ``global_step``, or a resume from a step that had not been logged (checkpoints written by code
    that did not log at checkpoints).
    """
    total, prev, steps = 0.0, 0, set()
    for entry in log_history:
        if "loss" not in entry or "step" not in entry:
            continue
        step = int(entry["step"])
        if step <= prev:
            return None
        total += float(entry["loss"]) * (step - prev)
        prev = step
        steps.add(step)
    if prev == 0 or prev != global_step or (resumed_at and resumed_at not in steps):
        return None
    return total / prev


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rmtension", "torch", "transformers", "trl", "accelerate", "datasets", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _safetensors_complete(path: Path) -> bool:
    """The file holds its whole header and every tensor's bytes (a truncated file does not)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return False
            n = int.from_bytes(head, "little")
            if n <= 0 or 8 + n > size:
                return False
            header = json.loads(fh.read(n))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
    return size == 8 + n + max(ends, default=0)


def _torch_file_complete(path: Path) -> bool:
    """A ``torch.save`` file (zip format) with its central directory, i.e. not cut short."""
    return path.is_file() and zipfile.is_zipfile(path)


def _weights_complete(folder: Path) -> bool:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        return bool(shards) and all(_safetensors_complete(folder / s) for s in shards)
    return _safetensors_complete(folder / "model.safetensors")


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` (a ``checkpoint-N``) cannot be resumed from, or None when it is complete.

    Complete means everything ``Trainer`` reads on resume is there and whole: ``trainer_state.json``
    (valid, at step N; the trainer writes it last), the model weights (every safetensors file as
    long as its header says), ``optimizer.pt`` and ``scheduler.pt`` (DeepSpeed and FSDP keep the
    optimizer in a ``global_step*`` / ``optimizer_0`` folder instead), and an RNG state file.
    """
    m = _CHECKPOINT_RE.match(folder.name)
    if m is None or not folder.is_dir():
        return "not a checkpoint folder"
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError):
        return "unreadable trainer_state.json"
    if not isinstance(state, dict) or state.get("global_step") != int(m.group(1)):
        return "trainer_state.json is not at this checkpoint's step"
    if not _weights_complete(folder):
        return "model weights missing or truncated"
    try:
        sharded_optimizer = any(p.is_dir() and p.name.startswith(("global_step", "optimizer_0")) for p in folder.iterdir())
    except OSError:
        return "unreadable folder"
    if not sharded_optimizer:
        for name in ("optimizer.pt", "scheduler.pt"):
            if not _torch_file_complete(folder / name):
                return f"{name} missing or truncated"
    rng = list(folder.glob("rng_state*.pth"))
    if not rng or not all(_torch_file_complete(p) for p in rng):
        return "RNG state missing or truncated"
    return None


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete checkpoint of the run into ``out_dir`` (None when there is none).

    Newer incomplete ones (a run killed or out of disk while writing one) are skipped with a
    warning: resuming from them would fail on every retry.
    """
    ckpt = checkpoint_dir(out_dir)
    if not ckpt.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in ckpt.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()),
                   reverse=True)
    for _step, folder in found:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        log.warning("skipping incomplete checkpoint %s (%s)", folder, problem)
    return None


def _remove_incomplete_after(out_dir: Path, chosen: str | None) -> None:
    """Delete incomplete checkpoints newer than the one resumed from: the resumed run writes those
    steps again, and a stale partial folder must not be picked up (or rotated) in its place."""
    ckpt = checkpoint_dir(out_dir)
    start = int(_CHECKPOINT_RE.match(Path(chosen).name).group(1)) if chosen else -1  # type: ignore[union-attr]
    for p in ckpt.iterdir() if ckpt.is_dir() else []:
        m = _CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and int(m.group(1)) > start and checkpoint_problem(p) is not None:
            shutil.rmtree(p, ignore_errors=True)


def _training_args(cfg: TrainConfig, out_dir: Path, progress: bool = True):
    from trl import RewardConfig

    return RewardConfig(
        output_dir=str(checkpoint_dir(out_dir)),
        seed=cfg.seed,
        data_seed=cfg.seed,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.effective_epochs(),
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=float(cfg.warmup_ratio),  # a float in [0, 1) is a ratio of the total steps
        optim="adamw_torch_fused",  # transformers' default; its update is ~6× faster than adamw_torch here
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.bf16,
        fp16=False,
        activation_checkpointing=cfg.gradient_checkpointing,  # TRL turns it on by default; we don't (speed)
        disable_dropout=cfg.disable_dropout,
        max_length=None,  # over-long pairs are handled (and counted) by training.data
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        report_to="none",
        disable_tqdm=not progress,  # then log dicts are printed instead (the CLI sends them to stderr)
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),
    )


def _shared_prompt_choice(cfg: TrainConfig, model) -> tuple[bool, str | None]:
    """Whether this run packs shared prompts, and why not when it was asked for and the model cannot."""
    from rmtension.training.batching import shared_prompt_unsupported

    if not cfg.shared_prompt:
        return False, None
    reason = shared_prompt_unsupported(model)
    if reason is not None:
        log.warning("shared_prompt off for this backbone (%s): training on the plain (unshared) path", reason)
        return False, reason
    return True, None


def heldout_metrics(model, tokenizer, cfg: TrainConfig, prepared: PreparedData,
                    progress: bool = True) -> dict[str, Any]:
    """Accuracy and mean margin of the trained RM on the held-out pairs of its own objective."""
    from rmtension.evaluation.aggregate import wilson_interval
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
    from rmtension.models.formatting import format_for_rm

    pairs = prepared.heldout
    if not pairs:
        return {"heldout_n": 0}
    texts = [format_for_rm(p.prompt, r, tokenizer, cfg.template) for p in pairs for r in (p.chosen, p.rejected)]
    scorer = RewardScorer(model, tokenizer, ScorerConfig(batch_size=cfg.eval_batch_size, max_length=cfg.max_length,
                                                         dtype="bfloat16" if cfg.bf16 else "float32",
                                                         progress=progress))
    s = scorer.score(texts, desc="held-out")
    margins = s[0::2] - s[1::2]
    iv = wilson_interval(int(np.sum(margins > 0)), len(pairs))
    return {
        "heldout_n": len(pairs),
        "heldout_accuracy": float(np.mean(margins > 0)),
        "heldout_accuracy_ci95": {"low": iv.low, "high": iv.high, "method": "wilson"},
        "heldout_mean_margin": float(np.mean(margins)),
        "heldout_truncated": scorer.last_report.truncated,
    }


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one RM into ``out_dir`` (an RM folder ``from_pretrained`` loads) and return its record.

    With ``resume``, continue from the newest complete checkpoint in ``OUT.checkpoints`` (a fresh
    start when there is none; the finished record when the run already completed); optimizer,
    scheduler, RNG states and the position in the data order are restored, so the result equals
    an uninterrupted run's. The output path is checked before any work, and a run that fails
    before writing a checkpoint leaves no ``OUT.checkpoints`` folder behind.
    """
    cfg.validate()
    out = check_out_dir(out_dir)
    report_callbacks(cfg, out)  # a missing logger fails before any work
    check_out_dir(checkpoint_dir(out), "checkpoint folder")
    if (out / RECORD).is_file() and not resume:
        raise RmtensionError(f"{out} already holds a trained RM ({RECORD}); choose another --out or delete it")
    if resume and (out / RECORD).is_file():
        return json.loads((out / RECORD).read_text())  # already finished: nothing to resume
    if not resume and checkpoint_dir(out).is_dir():
        raise RmtensionError(f"{checkpoint_dir(out)} holds checkpoints of an earlier run: pass --resume to continue it, "
                             "or delete the folder")
    if out.is_dir() and any(out.iterdir()):
        raise RmtensionError(f"{out} exists and is not empty; the RM folder must be new (choose another --out)")
    had_checkpoints = checkpoint_dir(out).is_dir()
    try:
        return _train(cfg, out, resume, progress)
    finally:
        ckpt = checkpoint_dir(out)
        try:
            if not had_checkpoints and ckpt.is_dir() and not any(ckpt.iterdir()):
                ckpt.rmdir()  # created by the trainer, nothing written into it: leave nothing behind
        except OSError:
            pass  # another process of the same run removed it first


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: bool = True) -> dict[str, Any]:
    import datasets
    from accelerate import PartialState
    from transformers import set_seed

    from rmtension.data.split import DEFAULT_SALT
    from rmtension.models.reward_model import build_reward_model, save_reward_model

    resume_from = last_checkpoint(out) if resume else None
    if resume and PartialState().is_main_process:
        _remove_incomplete_after(out, resume_from)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    set_seed(cfg.seed)
    model, tokenizer = build_reward_model(cfg.backbone, seed=cfg.seed)
    prepared = prepare_data(cfg, tokenizer)
    dataset = datasets.Dataset.from_list(prepared.train_rows)
    args = _training_args(cfg, out, progress)
    shared, fallback = _shared_prompt_choice(cfg, model)
    collator = SharedPromptCollator(tokenizer.pad_token_id, model.config.pad_token_id) if shared else None
    trainer = _reward_trainer_cls()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                    data_collator=collator,
                                    callbacks=[_log_at_checkpoints_callback(), *report_callbacks(cfg, out)],
                                    length_grouped=cfg.length_grouped, shared_prompt=shared)
    trainer.train(resume_from_checkpoint=resume_from)
    train_time = time.time() - t0
    counts = trainer.run_counts()

    record: dict[str, Any] = {}
    if trainer.accelerator.is_main_process:
        model = trainer.model
        metrics = heldout_metrics(model, tokenizer, cfg, prepared, progress)
        history = trainer.state.log_history
        losses = [h["loss"] for h in history if "loss" in h]
        resumed_at = int(Path(resume_from).name.split("-")[-1]) if resume_from else None
        record = {
            "kind": "reward-model",
            "backbone": cfg.backbone,
            "objective": cfg.objective,
            "seed": cfg.seed,
            "template": cfg.template,
            "train_data": training_source(cfg),
            "data_files": prepared.sources,
            # The prompt-hash split the training pairs were carved with: everything that later calls
            # itself held out for this RM (hh-heldout, neurons --split heldout) must use the same.
            "split": HeldoutSplit(cfg.heldout_fraction, DEFAULT_SALT).to_record(),
            "pairs": prepared.counts,
            "config": cfg.to_dict(),
            "trainer": {
                "library": "trl.RewardTrainer",
                "global_steps": trainer.state.global_step,
                "num_processes": trainer.accelerator.num_processes,
                "resumed_from": resume_from,
                # Over every step of the run, resumed or not (the trainer's own ``training_loss``
                # covers only the steps after the last resume).
                "train_loss": whole_run_loss(history, trainer.state.global_step, resumed_at),
                "first_logged_loss": losses[0] if losses else None,
                "last_logged_loss": losses[-1] if losses else None,
            },
            # Positions the forward computed (padding included; with shared prompts, each pair's prompt
            # once) ÷ the real tokens of both sides, over every step of the run (None after a resume
            # from a checkpoint that did not carry the counts).
            "positions_per_token": counts["positions_per_token"],
            "batching": {"length_grouped": cfg.length_grouped, "shared_prompt": shared,
                         "shared_prompt_fallback": fallback, "positions": counts["positions"],
                         "real_tokens": counts["real_tokens"]},
            "metrics": metrics,
            "versions": package_versions(),
            "device": str(trainer.args.device),
            "wall_time_s": round(time.time() - t0, 2),
            "train_time_s": round(train_time, 2),
        }
        save_reward_model(model, tokenizer, out, record)
        if not cfg.keep_checkpoints:
            shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return record
