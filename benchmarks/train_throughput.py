"""Training tokens per second: rmtension's training path against a plain TRL ``RewardTrainer`` script.

Both train the same freshly built RM (``build_reward_model(backbone, seed=0)``, identical weights)
on the same preference pairs with the same batch size, max length, number of steps, learning
rate and schedule, seed (hence data order), dtype (bf16 autocast as the ``cpu`` preset uses, or
float32), dropout setting and gradient checkpointing, side by side in one process:

- **ours**: ``rmtension.training`` — ``prepare_data`` (load, render with the RM template,
  tokenise, over-long policy, counts) and our ``RewardTrainer`` subclass with ``_training_args``
  (what ``rmtension train`` runs; the held-out scoring and the final RM folder are left out), in
  up to four variants (``--variants``): ``plain`` (TRL's collator, random order), ``grouped``
  (length-grouped steps), ``shared`` (shared-prompt packed rows), ``both`` (the ``cpu`` preset's
  batching). Each variant trains on all ``steps × batch`` pairs once, so every run computes the
  same real tokens; the variants differ in positions computed;
- **TRL**: what a user would write without rmtension — the same pairs as a text dataset
  (``{"chosen": transcript, "rejected": transcript}``, read from the same JSONL file) handed to
  ``trl.RewardTrainer``, which appends EOS, tokenises and filters by length itself.
  TRL's own defaults differ from ours in two places that change speed: gradient checkpointing is
  on (set off here so the computation is the same; ``--trl-defaults-too`` adds a row with it on),
  and the optimizer is fused AdamW (kept, as a plain script would; ours asks for ``adamw_torch``;
  ``--trl-adamw-too`` adds a TRL row with ``adamw_torch`` to separate that effect).

The pairs are a hashed sample of ``--data`` whose two sides both fit in ``--max-length`` tokens, so
nobody drops or truncates anything; the script checks that both pipelines produce the same token
ids and that both runs end with the same training loss and head weights (the same computation).

Times: *setup* = data preparation + tokenisation + trainer construction; *loop* = from the start of
training to the end of the last optimiser step (the final checkpoint save is excluded, and shown
in *total*); *steady* = steps 2..S (step 1 pays one-time allocation costs). Tokens are the real
(non-padding) tokens of chosen and rejected sides. Runs alternate (ours, TRL, TRL, ours, ...) so a
busy machine slows both alike; the best of ``--repeats`` is shown. The machine's limit: model
FLOPs per step ≈ 6 × non-embedding parameters × tokens, against a measured large-matmul rate
(float32 and bf16, timed in this script before and after the runs, best taken).

``--positions-pairs N`` adds, without training, the positions computed per real token of the
four batchings over N pairs of ``--data`` as the ``cpu`` preset prepares them (max length,
left truncation) with the benchmark's batch size: what grouping and sharing give at the scale of
a real run rather than of the few benchmark steps.

Usage (from the repository root):
    python benchmarks/train_throughput.py [--backbone smollm2-135m-instruct | tiny-llama] [--steps 4]
        [--batch-size 8] [--max-length 256] [--dtype bf16|fp32|both] [--repeats 2]
        [--variants plain,grouped,shared,both] [--positions-pairs 800]   (plain: needed for the checks)
        [--trl-adamw-too] [--trl-defaults-too] [--threads N] [--data hh-rlhf:harmless-base] [--data-dir ../shared/data]
        [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from machine import cpu_seconds, matmul_gflops

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


# ----------------------------------------------------------------------------- data


def select_pairs(tok, args) -> list[tuple[str, str]]:
    """(chosen, rejected) HH transcripts (no EOS) whose rendered, tokenised sides both fit max length."""
    from rmtension.data.sources import load_preferences
    from rmtension.models.encoding import encode
    from rmtension.models.formatting import eos_suffix, format_for_rm

    need = args.steps * args.batch_size
    pairs = sorted(load_preferences(args.data, args.data_dir).pairs, key=lambda p: hashlib.sha256(p.id.encode()).digest())
    eos = eos_suffix(tok)
    out = []
    for p in pairs:
        c, r = format_for_rm(p.prompt, p.chosen, tok, "hh"), format_for_rm(p.prompt, p.rejected, tok, "hh")
        if max(len(ids) for ids in encode(tok, [c, r])) > args.max_length:
            continue
        strip = (lambda s: s[: -len(eos)] if eos and s.endswith(eos) else s)
        out.append((strip(c), strip(r)))
        if len(out) == need:
            return out
    raise SystemExit(f"only {len(out)} pairs of {args.data} fit in {args.max_length} tokens; need {need}")


def positions_per_token(tok, args) -> list[str]:
    """Positions computed ÷ real tokens of each batching over ``--positions-pairs`` pairs as the cpu preset
    prepares them (max length; each over-long policy that cuts: ``truncate`` cuts each side alone,
    ``truncate-aligned`` — the preset's — cuts both alike), batch ``--batch-size``, one epoch; random order
    seeded 0. Positions are also given per pair, the cost measure that does not depend on how many real tokens
    a policy keeps."""
    from rmtension.training.batching import LengthGroupedSampler, padded_length
    from rmtension.training.config import make_config
    from rmtension.training.data import prepare_data

    out = []
    for policy in ("truncate", "truncate-aligned"):
        cfg = make_config("cpu", train_data=args.data, data_dir=args.data_dir, max_pairs=args.positions_pairs,
                          max_length=args.max_length, heldout_fraction=0.0, overlong=policy)
        prepared = prepare_data(cfg, tok)
        rows = prepared.train_rows
        real = sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows)
        out.append(f"positions per real token (per pair) over {len(rows)} pairs of {args.data} (cpu preparation: max "
                   f"length {args.max_length}, overlong={policy}, {prepared.counts['truncated_overlong']} pairs cut; "
                   f"{real} real tokens), batch {args.batch_size}:")
        for grouped in (False, True):
            for shared in (False, True):
                if grouped:
                    order = list(LengthGroupedSampler([padded_length(r, shared) for r in rows], args.batch_size, 0))
                else:
                    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
                pos = 0
                for k in range(0, len(order), args.batch_size):
                    group = [rows[i] for i in order[k:k + args.batch_size]]
                    pos += len(group) * max(padded_length(r, shared) for r in group) * (1 if shared else 2)
                out.append(f"  {'length-grouped' if grouped else 'random order  '} "
                           f"{'shared prompt' if shared else 'plain        '} {pos / real:.3f} ({pos / len(rows):.0f})")
    return out


# ----------------------------------------------------------------------------- instrumentation


@dataclass
class Run:
    method: str
    dtype: str
    setup_s: float = 0.0
    loop_s: float = 0.0
    steady_s: float = 0.0
    total_s: float = 0.0
    loop_cpu_s: float = 0.0
    tokens: list[int] = field(default_factory=list)  # real tokens per step
    positions: list[int] = field(default_factory=list)  # padded positions per step
    train_loss: float = float("nan")
    head: np.ndarray | None = None
    ids: list | None = None
    optim: str = ""

    @property
    def loop_tps(self) -> float:
        return sum(self.tokens) / self.loop_s

    @property
    def steady_tps(self) -> float:
        return sum(self.tokens[1:]) / self.steady_s if len(self.tokens) > 1 else self.loop_tps


def _timer_callback():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin = self.cpu_begin = None
            self.ends: list[float] = []
            self.cpu_ends: list[float] = []

        def on_train_begin(self, args, state, control, **kw):
            self.begin, self.cpu_begin = time.perf_counter(), cpu_seconds()

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(cpu_seconds())

    return StepTimer()


class CountingCollator:
    """Wraps a trainer's collator to count real tokens and padded positions per batch (no other effect)."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens: list[int] = []
        self.positions: list[int] = []

    def __call__(self, examples):
        out = self.inner(examples)
        if "real_tokens" in out:  # a shared-prompt packed batch
            self.tokens.append(int(out["real_tokens"]))
        else:
            self.tokens.append(int(out["attention_mask"].sum()))
        self.positions.append(int(out["input_ids"].numel()))
        return out


def _train(run: Run, trainer, timer, t0: float, keep: bool) -> Run:
    from rmtension.models.reward_model import head_parameters

    run.setup_s = time.perf_counter() - t0
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints its final metrics dict
        result = trainer.train()
    run.total_s = time.perf_counter() - t0
    run.loop_s = timer.ends[-1] - timer.begin
    run.steady_s = timer.ends[-1] - timer.ends[0]
    run.loop_cpu_s = timer.cpu_ends[-1] - timer.cpu_begin
    steps = len(timer.ends)
    run.tokens, run.positions = counter.tokens[:steps], counter.positions[:steps]
    run.train_loss = float(result.training_loss)
    run.optim = str(getattr(trainer.args.optim, "value", trainer.args.optim))
    if keep:
        run.head = np.concatenate([p.detach().float().cpu().numpy().ravel() for _, p in head_parameters(trainer.model)])
        run.ids = sorted((list(r["chosen_ids"]), list(r["rejected_ids"])) for r in trainer.train_dataset)
    return run


VARIANTS = {
    "plain": ("ours", False, False),
    "grouped": ("ours + length-grouped", True, False),
    "shared": ("ours + shared prompt", False, True),
    "both": ("ours + both (cpu preset)", True, True),
}


def run_ours(args, jsonl: Path, work: Path, bf16: bool, keep: bool, variant: str = "plain") -> Run:
    import datasets
    from transformers import set_seed

    from rmtension.models.reward_model import build_reward_model
    from rmtension.training.batching import SharedPromptCollator
    from rmtension.training.config import make_config
    from rmtension.training.data import prepare_data
    from rmtension.training.trainer import _reward_trainer_cls, _shared_prompt_choice, _training_args

    name, grouped, shared = VARIANTS[variant]
    set_seed(0)
    model, tok = build_reward_model(args.backbone, seed=0)  # not timed: the same for both
    cfg = make_config("cpu", backbone=args.backbone, train_data=str(jsonl), data_dir=None, heldout_fraction=0.0,
                      max_pairs=None, max_length=args.max_length, batch_size=args.batch_size,
                      max_steps=args.steps, bf16=bf16, seed=0, length_grouped=grouped, shared_prompt=shared)
    timer = _timer_callback()
    t0 = time.perf_counter()
    prepared = prepare_data(cfg, tok)
    assert prepared.counts["used"] == args.steps * args.batch_size, prepared.counts
    dataset = datasets.Dataset.from_list(prepared.train_rows)
    shared, _ = _shared_prompt_choice(cfg, model)
    collator = SharedPromptCollator(tok.pad_token_id, model.config.pad_token_id) if shared else None
    trainer = _reward_trainer_cls()(model=model, args=_training_args(cfg, work / "ours"), train_dataset=dataset,
                                    processing_class=tok, callbacks=[timer], data_collator=collator,
                                    length_grouped=grouped, shared_prompt=shared)
    return _train(Run(name, "bf16" if bf16 else "fp32"), trainer, timer, t0, keep)


def run_trl(args, jsonl: Path, work: Path, bf16: bool, keep: bool, gradient_checkpointing: bool = False,
            optim: str | None = None) -> Run:
    import datasets
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    from rmtension.models.reward_model import build_reward_model
    from rmtension.training.config import make_config

    set_seed(0)
    model, tok = build_reward_model(args.backbone, seed=0)
    ref = make_config("cpu", max_length=args.max_length, batch_size=args.batch_size, max_steps=args.steps, bf16=bf16)
    timer = _timer_callback()
    t0 = time.perf_counter()
    with open(jsonl, encoding="utf-8") as fh:
        dataset = datasets.Dataset.from_list([json.loads(line) for line in fh])
    targs = RewardConfig(
        output_dir=str(work / "trl"), seed=0, learning_rate=ref.lr, per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, lr_scheduler_type=ref.scheduler, bf16=bf16, max_length=args.max_length,
        gradient_checkpointing=gradient_checkpointing, disable_dropout=ref.disable_dropout,
        logging_steps=ref.logging_steps, report_to="none", use_cpu=not torch.cuda.is_available(),
        **({"optim": optim} if optim else {}),
    )
    trainer = RewardTrainer(model=model, args=targs, train_dataset=dataset, processing_class=tok, callbacks=[timer])
    assert len(trainer.train_dataset) == args.steps * args.batch_size
    name = "TRL, gradient checkpointing (its default)" if gradient_checkpointing else "TRL"
    if optim:
        name = f"TRL, optim {optim} (as ours)"
    return _train(Run(name, "bf16" if bf16 else "fp32"), trainer, timer, t0, keep)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct",
                    help="registered name (e.g. tiny-llama, tiny-gpt2 for a quick check), folder or hub id")
    ap.add_argument("--data", default="hh-rlhf:harmless-base")
    ap.add_argument("--data-dir", default=os.environ.get("RMTENSION_DATA_DIR") or str(DEFAULT_DATA))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per step (2 × that many sequences)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--dtype", choices=("bf16", "fp32", "both"), default="bf16",
                    help="bf16 autocast (the cpu preset) or float32")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each method, alternating (best shown)")
    ap.add_argument("--trl-defaults-too", action="store_true",
                    help="also run TRL with its default gradient checkpointing (once per repeat)")
    ap.add_argument("--trl-adamw-too", action="store_true",
                    help="also run TRL with our optimizer (adamw_torch instead of its fused default), once per repeat")
    ap.add_argument("--variants", default="plain,grouped,shared,both",
                    help=f"our batchings to run, comma-separated from {', '.join(VARIANTS)}")
    ap.add_argument("--positions-pairs", type=int, default=0,
                    help="also count positions per real token of each batching over this many pairs (no training)")
    ap.add_argument("--positions-only", action="store_true",
                    help="only count positions (needs --positions-pairs): deterministic, seconds, no timing")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)

    import datasets
    import transformers
    import trl  # imported before any timing, as is rmtension.training: neither method pays an import
    from transformers.utils import logging as hf_logging

    from rmtension.models.reward_model import build_reward_model
    from rmtension.training import trainer as _our_trainer

    assert _our_trainer.RECORD

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tok = build_reward_model(args.backbone, seed=0)
    if args.positions_only:
        print("\n".join(positions_per_token(tok, args)))
        return 0
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "wte" not in n and "wpe" not in n)
    all_params = sum(p.numel() for p in model.parameters())
    # warm-up: one forward/backward so that neither method pays first-use costs
    x = tok(["warm up", "a slightly longer warm-up text"], return_tensors="pt", padding=True)
    model(**x).logits.sum().backward()
    del model, x
    gc.collect()

    work = Path(tempfile.mkdtemp(prefix="train_throughput."))
    jsonl = work / "pairs.jsonl"
    pairs = select_pairs(tok, args)
    with open(jsonl, "w", encoding="utf-8") as fh:
        for c, r in pairs:
            fh.write(json.dumps({"chosen": c, "rejected": r}) + "\n")

    load0 = os.getloadavg()
    rates0 = {"fp32": matmul_gflops(torch.float32, n=2048, seconds=2.0), "bf16": matmul_gflops(torch.bfloat16, n=2048, seconds=2.0)}
    t_start = time.time()
    dtypes = ["bf16", "fp32"] if args.dtype == "both" else [args.dtype]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise SystemExit(f"--variants: names from {', '.join(VARIANTS)}; got {args.variants}")
    positions_table = positions_per_token(tok, args) if args.positions_pairs else []
    runs: list[Run] = []
    for rep in range(max(1, args.repeats)):
        for dt in dtypes:
            bf16 = dt == "bf16"
            keep = rep == 0
            methods = [lambda: run_trl(args, jsonl, work, bf16, keep)]
            methods += [(lambda v=v: run_ours(args, jsonl, work, bf16, keep, v)) for v in variants]
            if rep % 2:
                methods.reverse()
            if args.trl_adamw_too:
                methods.append(lambda: run_trl(args, jsonl, work, bf16, keep, optim="adamw_torch"))
            if args.trl_defaults_too:
                methods.append(lambda: run_trl(args, jsonl, work, bf16, keep, gradient_checkpointing=True))
            for fn in methods:
                r = fn()
                runs.append(r)
                print(f"  round {rep + 1} {r.method:42s} {r.dtype}: loop {r.loop_s:6.1f} s, {r.loop_tps:6.0f} tok/s, "
                      f"total {r.total_s:6.1f} s, loss {r.train_loss:.4f} (load {os.getloadavg()[0]:.1f})", flush=True)
                for sub in ("ours", "ours.checkpoints", "trl"):
                    shutil.rmtree(work / sub, ignore_errors=True)
                gc.collect()
    minutes = (time.time() - t_start) / 60
    rates1 = {"fp32": matmul_gflops(torch.float32, n=2048, seconds=2.0), "bf16": matmul_gflops(torch.bfloat16, n=2048, seconds=2.0)}
    rates = {k: max(rates0[k], rates1[k]) for k in rates0}
    load1 = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------------ checks
    ok = True
    lines = []
    for dt in dtypes:
        first = {r.method: r for r in runs if r.dtype == dt and r.head is not None}
        if "ours" not in first:  # without the plain variant there is nothing computed the same way to compare
            lines.append(f"{dt}: no 'plain' variant run: no same-computation check against TRL")
            continue
        o, t = first["ours"], first["TRL"]
        same_ids = o.ids == t.ids
        dloss = abs(o.train_loss - t.train_loss)
        dhead = float(np.abs(o.head - t.head).max())
        tol = 1e-2 if dt == "bf16" else 1e-4
        same = same_ids and dloss <= tol * max(1.0, abs(t.train_loss)) and dhead <= 50 * tol * float(np.abs(t.head).max())
        ok = ok and same_ids
        lines.append(f"{dt}: same token ids in both pipelines: {'yes' if same_ids else 'NO'}; training loss ours "
                     f"{o.train_loss:.5f} vs TRL {t.train_loss:.5f}; head weights max |diff| {dhead:.1e} → "
                     f"{'same computation' if same else 'DIFFERENT (see above)'}; optimizers: ours {o.optim}, TRL {t.optim}")
        sp = first.get(VARIANTS["shared"][0])
        if sp is not None:  # the same data order as plain: the same loss and head, up to float rounding
            dl, dh = abs(sp.train_loss - o.train_loss), float(np.abs(sp.head - o.head).max())
            equal = dl <= tol * max(1.0, abs(o.train_loss)) and dh <= 50 * tol * float(np.abs(o.head).max())
            ok = ok and equal
            lines.append(f"{dt}: shared prompt vs plain (same data order): training loss {sp.train_loss:.5f} vs "
                         f"{o.train_loss:.5f}; head weights max |diff| {dh:.1e} → {'same' if equal else 'DIFFERENT'}")

    # ------------------------------------------------------------------ table
    def best(method, dt):
        rs = [r for r in runs if r.method == method and r.dtype == dt]
        return min(rs, key=lambda r: r.loop_s) if rs else None

    n_tok = runs[0].tokens
    print()
    print(f"model {args.backbone}: {all_params / 1e6:.1f}M parameters ({params / 1e6:.1f}M non-embedding); "
          f"{args.steps} steps × {args.batch_size} pairs, max length {args.max_length} (all pairs fit: none dropped "
          f"or cut), {sum(n_tok)} real tokens / {sum(runs[0].positions)} positions per run; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"transformers {transformers.__version__}, trl {trl.__version__}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; measured matmul 2048³: {rates['fp32']:.0f} GFLOP/s float32, {rates['bf16']:.0f} "
          f"GFLOP/s bf16 (before {rates0['fp32']:.0f}/{rates0['bf16']:.0f}, after {rates1['fp32']:.0f}/{rates1['bf16']:.0f})")
    print(f"load average {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} at start, {load1[0]:.1f} / {load1[1]:.1f} / "
          f"{load1[2]:.1f} at end; {minutes:.1f} min; best of {args.repeats} alternating runs")
    hdr = (f"{'method':42s} {'dtype':>5s} {'setup s':>7s} {'loop s':>7s} {'total s':>7s} {'loop tok/s':>10s} "
           f"{'steady tok/s':>12s} {'CPU s':>6s} {'pos/tok':>7s} {'vs TRL':>7s} {'MFU':>6s}")
    print(hdr)
    print("-" * len(hdr))
    out_rows = []
    for dt in dtypes:
        ref = best("TRL", dt)
        for method in ("TRL", *(VARIANTS[v][0] for v in variants), "TRL, optim adamw_torch (as ours)",
                       "TRL, gradient checkpointing (its default)"):
            r = best(method, dt)
            if r is None:
                continue
            mfu = 6 * params * sum(r.tokens[1:]) / r.steady_s / (rates[dt] * 1e9) if len(r.tokens) > 1 else float("nan")
            print(f"{r.method:42s} {dt:>5s} {r.setup_s:7.1f} {r.loop_s:7.1f} {r.total_s:7.1f} {r.loop_tps:10.0f} "
                  f"{r.steady_tps:12.0f} {r.loop_cpu_s:6.0f} {sum(r.positions) / sum(r.tokens):7.3f} "
                  f"{r.loop_tps / ref.loop_tps:6.2f}× {100 * mfu:5.1f}%")
            out_rows.append({"method": r.method, "dtype": dt, "setup_s": r.setup_s, "loop_s": r.loop_s,
                             "total_s": r.total_s, "loop_tps": r.loop_tps, "steady_tps": r.steady_tps,
                             "loop_cpu_s": r.loop_cpu_s, "ratio_vs_trl": r.loop_tps / ref.loop_tps, "mfu": mfu,
                             "tokens": r.tokens, "positions": r.positions, "train_loss": r.train_loss})
    print("vs TRL: loop tokens/s ratio (> 1: ours faster). pos/tok: positions computed ÷ real tokens. MFU: 6 × "
          "non-embedding parameters × real tokens of steps 2..S / their time / measured matmul rate of that dtype "
          "(attention FLOPs not counted; with shared prompts fewer than the real tokens are computed, so it can "
          "exceed what the hardware does).")
    for line in positions_table:
        print(line)
    for line in lines:
        print(line)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "backbone": args.backbone, "steps": args.steps, "batch_size": args.batch_size,
            "max_length": args.max_length, "params_nonembedding": params, "matmul_gflops": rates,
            "load_start": load0, "load_end": load1, "rows": out_rows, "checks": lines,
            "positions_per_token_at_scale": positions_table}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
