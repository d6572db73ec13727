"""Bradley-Terry reward-model training through TRL's ``RewardTrainer``.

Why TRL: it is what the field and the paper use, its loss is exactly −log σ(r_chosen − r_rejected),
and through ``transformers.Trainer`` it brings accelerate (multi-process / multi-GPU, DeepSpeed,
FSDP), checkpoints that hold optimizer, scheduler and RNG states, and resumption. What we add:
our own data pipeline (template, over-long policy, counts — TRL would silently filter), an explicit
seed path (the paper's seed and learning rate never reached its trainer), a stop on NaN/inf loss
before anything is saved, a held-out evaluation with our scorer, and a run record.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmtension.errors import RmtensionError
from rmtension.training.config import TrainConfig
from rmtension.training.data import PreparedData, prepare_data, training_source

RECORD = "rmtension.json"


def checkpoint_dir(out_dir: Path) -> Path:
    """Checkpoints live beside the RM folder (``OUT.checkpoints``), not inside it, so that the RM
    folder is published atomically as a whole and holds nothing but the finished model."""
    return out_dir.with_name(out_dir.name + ".checkpoints")


class NonFiniteLossError(RmtensionError):
    """The loss became NaN or infinite; the run stops and the final model is not written."""


def _reward_trainer_cls():
    from trl import RewardTrainer

    class CheckedRewardTrainer(RewardTrainer):
        """TRL's trainer with a finite-loss check after every step."""

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


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rmtension", "torch", "transformers", "trl", "accelerate", "datasets", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def last_checkpoint(out_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = checkpoint_dir(out_dir)
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None


def _training_args(cfg: TrainConfig, out_dir: Path):
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
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),
    )


def heldout_metrics(model, tokenizer, cfg: TrainConfig, prepared: PreparedData) -> dict[str, Any]:
    """Accuracy and mean margin of the trained RM on the held-out pairs of its own objective."""
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
    from rmtension.models.formatting import format_for_rm

    pairs = prepared.heldout
    if not pairs:
        return {"heldout_n": 0}
    texts = [format_for_rm(p.prompt, r, tokenizer, cfg.template) for p in pairs for r in (p.chosen, p.rejected)]
    scorer = RewardScorer(model, tokenizer, ScorerConfig(batch_size=cfg.eval_batch_size, max_length=cfg.max_length,
                                                         dtype="bfloat16" if cfg.bf16 else "float32"))
    s = scorer.score(texts, desc="held-out")
    margins = s[0::2] - s[1::2]
    return {
        "heldout_n": len(pairs),
        "heldout_accuracy": float(np.mean(margins > 0)),
        "heldout_mean_margin": float(np.mean(margins)),
        "heldout_truncated": scorer.last_report.truncated,
    }


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train one RM into ``out_dir`` (an RM folder ``from_pretrained`` loads) and return its record.

    With ``resume``, continue from the last checkpoint in ``OUT.checkpoints`` (a fresh start when
    there is none; the finished record when the run already completed); optimizer,
    scheduler, RNG states and the position in the data order are restored, so the result equals
    an uninterrupted run's.
    """
    import datasets
    from transformers import set_seed

    from rmtension.models.reward_model import build_reward_model, save_reward_model

    cfg.validate()
    out = Path(out_dir)
    if (out / RECORD).is_file() and not resume:
        raise RmtensionError(f"{out} already holds a trained RM ({RECORD}); choose another --out or delete it")
    resume_from = None
    if resume:
        resume_from = last_checkpoint(out)
        if (out / RECORD).is_file():
            return json.loads((out / RECORD).read_text())  # already finished: nothing to resume
    elif checkpoint_dir(out).is_dir():
        raise RmtensionError(f"{checkpoint_dir(out)} holds checkpoints of an earlier run: pass --resume to continue it, "
                             "or delete the folder")
    if out.is_dir() and any(out.iterdir()):
        raise RmtensionError(f"{out} exists and is not empty; the RM folder must be new (choose another --out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    set_seed(cfg.seed)
    model, tokenizer = build_reward_model(cfg.backbone, seed=cfg.seed)
    prepared = prepare_data(cfg, tokenizer)
    dataset = datasets.Dataset.from_list(prepared.train_rows)
    args = _training_args(cfg, out)
    trainer = _reward_trainer_cls()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=resume_from)
    train_time = time.time() - t0

    record: dict[str, Any] = {}
    if trainer.accelerator.is_main_process:
        model = trainer.model
        metrics = heldout_metrics(model, tokenizer, cfg, prepared)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        record = {
            "kind": "reward-model",
            "backbone": cfg.backbone,
            "objective": cfg.objective,
            "seed": cfg.seed,
            "template": cfg.template,
            "train_data": training_source(cfg),
            "data_files": prepared.sources,
            "pairs": prepared.counts,
            "config": cfg.to_dict(),
            "trainer": {
                "library": "trl.RewardTrainer",
                "global_steps": trainer.state.global_step,
                "num_processes": trainer.accelerator.num_processes,
                "resumed_from": resume_from,
                "train_loss": result.training_loss,
                "first_logged_loss": losses[0] if losses else None,
                "last_logged_loss": losses[-1] if losses else None,
            },
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


