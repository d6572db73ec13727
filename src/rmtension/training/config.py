"""Training configuration: one dataclass, documented fields, named presets.

``paper`` reproduces the paper's setting (the TRL defaults it actually ran with, see ``PRESETS``); ``cpu`` is what fits
a 2-core laptop CPU in minutes per few hundred pairs. Every field can be overridden from the CLI
(``rmtension train --set field=value`` or the dedicated flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rmtension.errors import RmtensionError

OBJECTIVES = ("helpful", "harmless", "mixed")
OVERLONG_POLICIES = ("drop", "truncate", "truncate-aligned")
REPORT_TO = ("none", "tensorboard")


@dataclass
class TrainConfig:
    """Everything that decides a trained RM. Two runs with equal configs give equal weights."""

    backbone: str = "smollm2-135m-instruct"
    """Registered name, local folder or hub id of the backbone."""
    objective: str = "helpful"
    """helpful | harmless | mixed: picks the default training data (hh-rlhf:<objective>)."""
    train_data: str | None = None
    """Preference source (name or file); None → the objective's HH-RLHF bundle."""
    data_dir: str | None = None
    """Local data directory (else $RMTENSION_DATA_DIR, else the hub)."""
    seed: int = 0
    """Seeds the head initialisation, the trainer's data order and dropout (passed to the trainer; the
    paper's trainer always ran with seed 42, see models/reward_model.py)."""
    data_seed: int = 0
    """Seeds which pairs are used when ``max_pairs`` caps them, independent of ``seed`` so that
    runs with different seeds train on the same pairs."""
    max_pairs: int | None = None
    """Use at most this many training pairs (a hashed, seeded sample over all subsets)."""
    heldout_fraction: float = 0.2
    """Share of prompts held out for the final accuracy (split by prompt hash, see data.split)."""
    heldout_max_pairs: int | None = 300
    """Score at most this many held-out pairs at the end (None: all)."""
    max_length: int = 1024
    """Longest pair side in tokens."""
    overlong: str = "drop"
    """drop: leave out pairs with a side over max_length (the paper); truncate: cut each side from the left;
    truncate-aligned: cut the same leading tokens from both sides while the cut lies in their common prefix
    (both sides keep the same context, and shared-prompt training shares it; else as truncate)."""
    epochs: float | None = None
    """None → 2 for single objectives, 1 for mixed (the paper)."""
    max_steps: int = -1
    """Stop after this many optimiser steps (overrides epochs when > 0)."""
    lr: float = 1e-4
    batch_size: int = 16
    """Pairs per optimiser step per process (times grad_accum)."""
    grad_accum: int = 1
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = False
    """bfloat16 autocast (weights stay float32)."""
    gradient_checkpointing: bool = False
    disable_dropout: bool = True
    """Turn the backbone's dropout off while training, as the paper's runs did: TRL 0.27.1 (the
    paper's lock file, EshaanT/RM-alignment_tension uv.lock @96efa92) has ``RewardConfig.disable_dropout``
    default True (trl/trainer/reward_config.py) and the paper's train_new.py does not override it.
    ``--set disable_dropout=false`` keeps the backbone's dropout (GPT-2: 0.1; Llama-style models
    such as SmolLM2 have none, so it changes nothing for them)."""
    length_grouped: bool = False
    """Put pairs of similar length into the same step (seeded by ``seed``; step order shuffled; see
    training.batching.LengthGroupedSampler): fewer padded positions per real token. Off: TRL's
    random order (what the paper ran)."""
    shared_prompt: bool = False
    """Encode the common token prefix of chosen and rejected once per pair (packed row with a mask;
    the same loss and gradients, see training.batching). Families not tested for it (BERT-style
    encoders, ...) fall back to the plain path with a one-line notice."""
    template: str = "hh"
    """Text template of RM inputs (models.formatting)."""
    save_steps: int = 50
    """Write a resumable checkpoint every this many steps."""
    keep_checkpoints: bool = False
    """Keep the checkpoints folder after a successful run."""
    logging_steps: int = 10
    report_to: str = "none"
    """none | tensorboard: also log the training loss/metrics to TensorBoard, in ``OUT.tensorboard``
    beside the RM folder (needs the ``tensorboard`` package). Does not change the trained RM."""
    eval_batch_size: int = 16
    preset: str = "paper"

    def effective_epochs(self) -> float:
        if self.epochs is not None:
            return self.epochs
        return 1.0 if self.objective == "mixed" else 2.0

    def validate(self) -> "TrainConfig":
        from rmtension.validate import TRAIN_FIELDS, check_fields  # every numeric field's range, in one place

        check_fields({f.name: getattr(self, f.name) for f in fields(self)}, TRAIN_FIELDS)
        if self.objective not in OBJECTIVES:
            raise RmtensionError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.report_to not in REPORT_TO:
            raise RmtensionError(f"report_to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if self.overlong not in OVERLONG_POLICIES:
            raise RmtensionError(f"overlong must be one of {', '.join(OVERLONG_POLICIES)}, got {self.overlong!r}")
        for name in ("max_length", "batch_size", "grad_accum", "save_steps", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise RmtensionError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise RmtensionError(f"lr must be > 0, got {self.lr}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise RmtensionError(f"max_pairs must be ≥ 1, got {self.max_pairs}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise RmtensionError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["effective_epochs"] = self.effective_epochs()
        return d


PRESETS: dict[str, dict[str, Any]] = {
    # The paper (EshaanT/RM-alignment_tension @96efa92, train_new.py; library versions from its uv.lock:
    # trl 0.27.1, transformers 5.0.0), checked value by value:
    # - full fine-tuning; batch 16: ``per_device_train_batch_size=args.batch_size``, default 16.
    # - lr 1e-4: train_new.py parses ``--lr`` but never passes it, so TRL's ``RewardConfig.learning_rate``
    #   default ran, 1e-4 (trl 0.27.1 trl/trainer/reward_config.py).
    # - linear schedule, no warmup, weight decay 0, grad-norm clip 1.0: TrainingArguments defaults
    #   (transformers 5.0.0 training_args.py), none overridden.
    # - epochs: ``--epochs`` default 2.0 (train_new.py); 1 for the mixed RM is the paper's text (the
    #   brief), not visible in the code.
    # - max length 1024, over-long pairs dropped: ``RewardConfig.max_length`` default 1024, and
    #   RewardTrainer *filters out* pairs with a side over it (trl 0.27.1 reward_trainer.py, "Filter
    #   samples that are longer than `max_length`"; its help text says "truncated", the code drops).
    # - dropout off: ``RewardConfig.disable_dropout`` default True, not overridden (TrainConfig default).
    # Deliberate deviations: float32 weights (the paper loads the backbone in bfloat16, rm_model/model.py
    # ``dtype=torch.bfloat16``, and RewardConfig's bf16 default is True; bf16 weight updates at lr 1e-4
    # round away small steps, so we keep float32 master weights, ``--set bf16=true`` for autocast); the
    # trainer's seed is the run's seed (the paper's trainer always ran with seed 42, see
    # models/reward_model.py); the paper evaluated on HH-RLHF's test split every 100 steps and, with
    # ``load_best_model_at_end=True``, ended on the saved checkpoint (every 500 steps, the default) with
    # the lowest eval loss; we keep the final model (HH's test split is our held-out data).
    "paper": dict(batch_size=16, lr=1e-4, scheduler="linear", epochs=None, max_length=1024, overlong="drop",
                  bf16=False, max_pairs=None, disable_dropout=True, length_grouped=False, shared_prompt=False),
    # A 2-core CPU: 8 pairs a step, 256 tokens cut from the left, one epoch over a few hundred
    # pairs, bf16 autocast (about 2× faster on processors with bf16 matrix instructions), lr 5e-5:
    # the setting of the reference runs in ../shared/data/SOURCES.md, which learn both objectives
    # at 300 pairs.
    # Length-grouped steps and shared prompts: the same loss, fewer positions computed (benchmarks/RESULTS.md,
    # training section). Over-long pairs lose the same leading dialogue tokens on both sides
    # (``truncate-aligned``), so both sides keep the same context and the shared prompt survives the cut:
    # on 800 HH pairs at 256 tokens, 18-21% fewer positions than cutting each side alone, for 3% fewer real tokens.
    "cpu": dict(batch_size=8, lr=5e-5, scheduler="linear", epochs=1.0, max_length=256, overlong="truncate-aligned",
                bf16=True, max_pairs=300, heldout_max_pairs=300, save_steps=10, logging_steps=5,
                length_grouped=True, shared_prompt=True),
}


def make_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """A preset with ``overrides`` applied on top (a None value sets the field to None)."""
    if preset not in PRESETS:
        raise RmtensionError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    cfg = replace(TrainConfig(), preset=preset, **PRESETS[preset])
    known = {f.name for f in fields(TrainConfig)}
    bad = [k for k in overrides if k not in known]
    if bad:
        raise RmtensionError(f"unknown training field(s): {', '.join(bad)}; known: {', '.join(sorted(known))}")
    cfg = replace(cfg, **overrides)
    return cfg.validate()


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["lr=3e-5", "bf16=true"]`` → typed overrides, using the dataclass field types."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in types:
            raise RmtensionError(f"--set expects FIELD=VALUE with a training field, got {item!r}")
        t = str(types[key])
        try:
            if raw.lower() in ("none", "null"):
                value: Any = None
            elif "bool" in t:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                value = raw.lower() in ("1", "true", "yes")
            elif "int" in t:
                value = int(raw)
            elif "float" in t:
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise RmtensionError(f"--set {key}: cannot read {raw!r} as {t}") from None
        out[key] = value
    return out
