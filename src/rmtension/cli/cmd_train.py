"""``rmtension train``: one reward model from a backbone, an objective and a seed."""

from __future__ import annotations

import argparse
import sys

from rmtension.cli.common import (add_data_dir, add_hidden_alias, add_json, add_progress, check_out_dir, emit,
                                  library_output_to_stderr, print_json, show_progress)
from rmtension import validate as V
from rmtension.training.config import OBJECTIVES, OVERLONG_POLICIES, PRESETS, make_config, parse_assignments

# CLI flag → TrainConfig field. Flags left unset keep the preset's value.
_FLAGS = {
    "backbone": "backbone", "objective": "objective", "seed": "seed", "train_data": "train_data",
    "max_pairs": "max_pairs", "max_length": "max_length", "epochs": "epochs", "lr": "lr",
    "batch_size": "batch_size", "overlong": "overlong", "max_steps": "max_steps", "data_dir": "data_dir",
    "grad_accum": "grad_accum", "save_steps": "save_steps", "template": "template",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a reward model (Bradley-Terry, TRL RewardTrainer)",
                       description="Train a reward model and write a folder that from_pretrained loads, the tokenizer "
                       "and rmtension.json (how it was made, pair counts, held-out accuracy). Runs under "
                       "`accelerate launch -m rmtension train ...` for several processes or GPUs.")
    p.add_argument("--backbone", required=True, help="registered name (smollm2-135m-instruct, tiny-llama, ...), "
                   "local folder or hub id")
    p.add_argument("--objective", required=True, choices=OBJECTIVES)
    p.add_argument("--seed", type=V.seed, required=True)
    p.add_argument("--out", required=True, help="output RM folder")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="hyper-parameter preset (default: paper)")
    p.add_argument("--data", dest="train_data", metavar="SOURCE",
                   help="preference source, a registered name or a file (default: hh-rlhf:<objective>)")
    add_hidden_alias(p, "--train-data", "train_data")
    add_data_dir(p)
    p.add_argument("--max-pairs", type=V.positive_int, help="use at most N training pairs")
    p.add_argument("--max-length", type=V.positive_int, help="longest pair side in tokens")
    p.add_argument("--overlong", choices=OVERLONG_POLICIES, help="drop over-long pairs, cut each side from the left (truncate), or cut both sides alike inside their shared dialogue (truncate-aligned)")
    p.add_argument("--epochs", type=V.positive_float)
    p.add_argument("--max-steps", type=V.positive_int, help="stop after N optimiser steps")
    p.add_argument("--lr", type=V.positive_float)
    p.add_argument("--batch-size", type=V.positive_int, help="pairs per step per process")
    p.add_argument("--grad-accum", type=V.positive_int)
    p.add_argument("--save-steps", type=V.positive_int, help="checkpoint every N steps")
    p.add_argument("--template", help="RM input template (hh, chat)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set any TrainConfig field, e.g. --set bf16=false --set warmup_ratio=0.1")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_progress(p)
    add_json(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    overrides = {field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None}
    overrides.update(parse_assignments(args.set))
    cfg = make_config(args.preset, **overrides)
    if args.print_config:
        print_json(cfg.to_dict())
        return 0
    check_out_dir(args.out)
    from rmtension.training.trainer import train

    # HF Trainer's bar follows the one rule (only while stderr is a terminal); without it the Trainer prints
    # its log dicts instead, which are progress too: stderr, never this command's result.
    bars = show_progress(args) and sys.stderr.isatty()
    with library_output_to_stderr():
        record = train(cfg, args.out, resume=args.resume, progress=bars)
    if not record:  # not the main process of `accelerate launch`: the main one prints the result
        return 0
    m = record.get("metrics", {})
    acc = m.get("heldout_accuracy")
    summary = f"held-out accuracy {acc:.3f} on {m.get('heldout_n', 0)} pairs" if acc is not None else "no held-out pairs"
    emit(args, {"out": args.out, "record": record},
         lambda: f"trained {cfg.objective} RM from {cfg.backbone} (seed {cfg.seed}) → {args.out}: "
                 f"{record['pairs']['used']} pairs, {record['trainer']['global_steps']} steps, {summary}")
    return 0
