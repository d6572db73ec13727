"""Texts per second: rmtension's RewardScorer against a transformers text-classification pipeline.

Both score the same texts with the same model object, batch size, maximum length (cut from the
left) and float32 weights, in one process, one after the other; the script first checks that the
two give the same scores (the pipeline with ``function_to_apply="none"`` returns the raw reward),
because a speed comparison between different computations would mean nothing.

Texts: real HH-RLHF pairs (chosen and rejected transcripts, hh-rlhf:mixed) and real RM-Bench items
(all six responses of each item, as an evaluation scores them), half and half, in benchmark order.
Their lengths differ by 20× and more, which is where batching by length pays off.

Why the scorer is faster (the table shows the counts behind each reason):
- it sorts texts by token length before cutting batches, so a batch is padded only to its own
  longest text; the pipeline batches in input order and pads every short text to the longest text
  that happens to share its batch ("positions" vs "real tokens");
- it scores each distinct text once (RM-Bench repeats responses across an item's variants);
- it tokenises all texts in one call and gathers scores in one array, where the pipeline tokenises,
  collates and post-processes text by text.

With ``--shared``: shared-prompt scoring against the plain RewardScorer (``shared_prompt=False``)
instead, on two text sets scored as an evaluation scores them: HH-RLHF pairs (chosen and
rejected of each pair; the texts hh-heldout evaluates are such pairs) and RM-Bench items (all six
responses of each item). Both scorers run in one process on the same model object, interleaved
(plain, shared, plain, shared, ...), and the scores are checked equal first.

Usage (from the repository root):
    python benchmarks/score_throughput.py [--backbone smollm2-135m-instruct] [--texts 128]
        [--batch-size 16] [--max-length 512] [--repeats 1] [--data-dir ../shared/data]
    python benchmarks/score_throughput.py --shared [--backbone tiny-llama] [--pairs 32] [--items 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from machine import matmul_gflops

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"


@dataclass
class Timing:
    name: str
    seconds: float
    rows: int  # texts that went through the model
    positions: int  # token positions computed (rows × batch width, summed over batches)
    tokens: int  # real (non-padding) tokens among them


def real_texts(tokenizer, n: int, data_dir: Path, template: str) -> tuple[list[str], int, int]:
    """``n`` RM input texts: half HH pairs (chosen, rejected), half RM-Bench item responses."""
    from rmtension.bench.loaders import load_benchmark
    from rmtension.data.sources import load_preferences
    from rmtension.models.formatting import format_for_rm

    n_hh = n // 2
    pairs = load_preferences("hh-rlhf:mixed", data_dir).pairs
    pairs = sorted(pairs, key=lambda p: hashlib.sha256(p.id.encode()).digest())[: (n_hh + 1) // 2]
    hh = [format_for_rm(p.prompt, r, tokenizer, template) for p in pairs for r in (p.chosen, p.rejected)][:n_hh]
    items = load_benchmark("rm-bench", data_dir).items
    items = sorted(items, key=lambda it: hashlib.sha256(it.id.encode()).digest())
    rmb: list[str] = []
    for it in items:
        if len(rmb) >= n - n_hh:
            break
        rmb += [format_for_rm(it.prompt, r, tokenizer, template) for r in it.chosen + it.rejected]
    rmb = rmb[: n - n_hh]
    return hh + rmb, len(hh), len(rmb)


def run_scorer(model, tokenizer, texts: list[str], batch_size: int, max_length: int) -> tuple[np.ndarray, Timing]:
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig

    scorer = RewardScorer(model, tokenizer, ScorerConfig(batch_size=batch_size, max_length=max_length,
                                                         device="cpu", progress=False))
    t0 = time.perf_counter()
    scores = scorer.score(texts)
    seconds = time.perf_counter() - t0
    rep = scorer.last_report
    return scores, Timing("rmtension RewardScorer", seconds, rep.unique_texts, rep.padded_tokens, rep.tokens)


def shared_sets(tokenizer, n_pairs: int, n_items: int, data_dir: Path, template: str) -> dict[str, list[str]]:
    """HH-RLHF pairs (hashed sample of hh-rlhf:mixed) and RM-Bench items (hashed sample), as texts."""
    from rmtension.bench.loaders import load_benchmark
    from rmtension.data.sources import load_preferences
    from rmtension.models.formatting import format_for_rm

    pairs = load_preferences("hh-rlhf:mixed", data_dir).pairs
    pairs = sorted(pairs, key=lambda p: hashlib.sha256(p.id.encode()).digest())[:n_pairs]
    items = load_benchmark("rm-bench", data_dir).items
    items = sorted(items, key=lambda it: hashlib.sha256(it.id.encode()).digest())[:n_items]
    return {"HH-RLHF pairs": [format_for_rm(p.prompt, r, tokenizer, template) for p in pairs for r in (p.chosen, p.rejected)],
            "RM-Bench items": [format_for_rm(it.prompt, r, tokenizer, template) for it in items for r in it.chosen + it.rejected]}


def run_shared_comparison(model, tok, label: str, args: argparse.Namespace, template: str) -> int:
    """Plain vs shared-prompt RewardScorer on HH pairs and RM-Bench items; scores must agree."""
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig

    sets = shared_sets(tok, args.pairs, args.items, Path(args.data_dir), template)
    scorers = {name: RewardScorer(model, tok, ScorerConfig(batch_size=args.batch_size, max_length=args.max_length,
                                                           device="cpu", progress=False, shared_prompt=shared))
               for name, shared in (("plain", False), ("shared", True))}
    for sc in scorers.values():  # warm-up
        sc.score(sets["HH-RLHF pairs"][: args.batch_size])
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "wte" not in n)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"model {label}: {params / 1e6:.1f}M non-embedding parameters, float32, {torch.get_num_threads()} threads, "
          f"batch size {args.batch_size}, max length {args.max_length}, {args.repeats} interleaved repeat(s)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    ok = True
    header = f"{'texts':16s} {'method':7s} {'seconds':>8s} {'all runs':>18s} {'ratio':>6s} {'positions':>10s} " \
             f"{'real tokens':>11s} {'packed':>7s} {'cut':>4s}"
    print(header)
    print("-" * len(header))
    for set_name, texts in sets.items():
        times: dict[str, list[float]] = {"plain": [], "shared": []}
        scores: dict[str, np.ndarray] = {}
        for _ in range(max(1, args.repeats)):
            for name, sc in scorers.items():
                t0 = time.perf_counter()
                scores[name] = sc.score(texts)
                times[name].append(time.perf_counter() - t0)
        diff = float(np.max(np.abs(scores["shared"] - scores["plain"])))
        same = diff <= 1e-5 * max(1.0, float(np.max(np.abs(scores["plain"]))))
        ok &= same
        base = min(times["plain"])
        for name, sc in scorers.items():
            rep = sc.last_report
            runs = "/".join(f"{t:.1f}" for t in times[name])
            print(f"{set_name:16s} {name:7s} {min(times[name]):8.2f} {runs:>18s} {base / min(times[name]):5.2f}× "
                  f"{rep.padded_tokens:10d} {rep.tokens:11d} {rep.shared_texts:7d} {rep.truncated:4d}")
        print(f"{'':16s} {len(texts)} texts; scores equal: {'yes' if same else 'NO'} (max |difference| {diff:.2e})")
    print("seconds: best of the runs; ratio: plain seconds / this method's; packed: texts scored in a shared row; "
          "cut: texts over the max length (cut from the left, never packed).")
    if not ok:
        print("error: shared and plain scores disagree, so the timing comparison is meaningless", file=sys.stderr)
        return 1
    return 0


def make_pipeline(model, tokenizer, batch_size: int):
    from transformers import pipeline

    return pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1, batch_size=batch_size,
                    function_to_apply="none", trust_remote_code=False)


def run_pipeline(pipe, texts: list[str], batch_size: int, max_length: int) -> tuple[np.ndarray, Timing]:
    t0 = time.perf_counter()
    out = pipe(texts, batch_size=batch_size, truncation=True, max_length=max_length)
    seconds = time.perf_counter() - t0
    scores = np.array([o["score"] if isinstance(o, dict) else o[0]["score"] for o in out], dtype=np.float64)
    lengths = [len(ids) for ids in pipe.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    positions = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size])
                    for i in range(0, len(lengths), batch_size))
    return scores, Timing("transformers pipeline", seconds, len(texts), positions, sum(lengths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct", help="registered backbone, folder or hub id")
    ap.add_argument("--rm", default=None, help="an RM folder instead of a fresh RM on --backbone")
    ap.add_argument("--texts", type=int, default=128, help="number of texts (half HH, half RM-Bench)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512, help="tokens; longer texts are cut from the left by both")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each method (best is reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--data-dir", default=os.environ.get("RMTENSION_DATA_DIR") or str(DEFAULT_DATA))
    ap.add_argument("--shared", action="store_true", help="shared-prompt vs plain RewardScorer instead of the pipeline")
    ap.add_argument("--pairs", type=int, default=32, help="--shared: HH-RLHF pairs")
    ap.add_argument("--items", type=int, default=8, help="--shared: RM-Bench items (six texts each)")
    args = ap.parse_args(argv)

    from transformers.utils import logging as hf_logging

    from rmtension.models.reward_model import build_reward_model, load_reward_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rm:
        model, tok, info = load_reward_model(args.rm)
        template, label = info.get("template", "hh"), args.rm
    else:
        model, tok = build_reward_model(args.backbone, seed=0)
        template, label = "hh", args.backbone
    model.eval()
    if args.shared:
        return run_shared_comparison(model, tok, label, args, template)
    # Same texts, same cut: the pipeline's tokenizer truncates from the left like the scorer, and pads
    # on the right (the scorer's layout; decoder heads read the last non-pad token either way).
    tok.truncation_side, tok.padding_side = "left", "right"
    texts, n_hh, n_rmb = real_texts(tok, args.texts, Path(args.data_dir), template)
    pipe = make_pipeline(model, tok, args.batch_size)

    warm = texts[: args.batch_size]
    run_scorer(model, tok, warm, args.batch_size, args.max_length)
    run_pipeline(pipe, warm, args.batch_size, args.max_length)
    best: dict[str, Timing] = {}
    results: dict[str, np.ndarray] = {}
    for _ in range(max(1, args.repeats)):  # interleaved, so a busy machine hurts both alike
        for name, fn in (("pipeline", lambda: run_pipeline(pipe, texts, args.batch_size, args.max_length)),
                         ("scorer", lambda: run_scorer(model, tok, texts, args.batch_size, args.max_length))):
            scores, timing = fn()
            results[name] = scores
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing

    diff = float(np.max(np.abs(results["scorer"] - results["pipeline"])))
    scale = float(np.max(np.abs(results["pipeline"]))) or 1.0
    same = diff <= 1e-4 * max(1.0, scale)
    gflops = matmul_gflops()
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "wte" not in n)
    lengths = [len(ids) for ids in tok(texts)["input_ids"]]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3

    print(f"model {label}: {params / 1e6:.1f}M non-embedding parameters, float32, {torch.get_num_threads()} threads, "
          f"batch size {args.batch_size}, max length {args.max_length} (cut from the left)")
    print(f"texts: {len(texts)} ({n_hh} HH-RLHF, {n_rmb} RM-Bench; {len(set(texts))} distinct), "
          f"{min(lengths)}–{max(lengths)} tokens before the cut, {sum(ln > args.max_length for ln in lengths)} cut")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; measured matmul {gflops:.0f} GFLOP/s (float32)")
    print(f"scores identical: {'yes' if same else 'NO'} (max |difference| {diff:.2e})")
    base = best["pipeline"]
    header = f"{'method':24s} {'seconds':>8s} {'texts/s':>8s} {'ratio':>6s} {'rows':>5s} {'positions':>10s} " \
             f"{'real tokens':>11s} {'MFU':>6s}"
    print(header)
    print("-" * len(header))
    for key in ("pipeline", "scorer"):
        t = best[key]
        mfu = 2 * params * t.tokens / t.seconds / (gflops * 1e9)
        print(f"{t.name:24s} {t.seconds:8.2f} {len(texts) / t.seconds:8.2f} {base.seconds / t.seconds:5.2f}× "
              f"{t.rows:5d} {t.positions:10d} {t.tokens:11d} {100 * mfu:5.1f}%")
    print("MFU: 2 × non-embedding parameters × real tokens / time / measured matmul rate (attention not counted).")
    if not same:
        print("error: the two methods disagree, so the timing comparison is meaningless", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
