"""One training step's forward + backward on the same real HH batch: TRL's plain batch vs the shared-prompt packed row.

A small, load-tolerant measurement of the shared-prompt lever alone (same pairs, same tokens, same model, bf16
autocast or float32), interleaved plain / shared for ``--repeats`` rounds; the best and the median of each are
shown with the ratio. The full trainer comparison is ``train_throughput.py``.

Usage (repository root):
    python benchmarks/train_step_shared.py [--backbone smollm2-135m-instruct] [--pairs 8] [--max-length 256]
        [--dtype bf16|fp32] [--repeats 3] [--data hh-rlhf:harmless-base] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct")
    ap.add_argument("--data", default="hh-rlhf:harmless-base")
    ap.add_argument("--data-dir", default=os.environ.get("RMTENSION_DATA_DIR") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rmtension.data.sources import load_preferences
    from rmtension.models.encoding import encode
    from rmtension.models.formatting import format_for_rm
    from rmtension.models.reward_model import build_reward_model
    from rmtension.training.batching import SharedPromptCollator, shared_prompt_rewards

    model, tok = build_reward_model(args.backbone, seed=0)
    pairs = sorted(load_preferences(args.data, args.data_dir).pairs, key=lambda p: hashlib.sha256(p.id.encode()).digest())
    rows = []
    for p in pairs:  # the first pairs in a hashed order whose sides both fit (none cut), as train_throughput.py
        c, r = encode(tok, [format_for_rm(p.prompt, p.chosen, tok, "hh"), format_for_rm(p.prompt, p.rejected, tok, "hh")])
        if max(len(c), len(r)) <= args.max_length:
            rows.append({"chosen_ids": c, "rejected_ids": r})
        if len(rows) == args.pairs:
            break
    plain = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(rows)
    shared = SharedPromptCollator(tok.pad_token_id, model.config.pad_token_id)(rows)
    real = int(plain["attention_mask"].sum())

    def step(kind: str) -> tuple[float, float]:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            if kind == "plain":
                rc, rr = torch.chunk(model(**plain, use_cache=False).logits.squeeze(-1).float(), 2)
            else:
                rc, rr = (x.float() for x in shared_prompt_rewards(model, shared))
            loss = -torch.nn.functional.logsigmoid(rc - rr).mean()
        loss.backward()
        return time.perf_counter() - t0, float(loss.detach())

    step("plain")  # warm-up
    times: dict[str, list[float]] = {"plain": [], "shared": []}
    losses = {}
    for rep in range(args.repeats):
        for kind in (("plain", "shared") if rep % 2 == 0 else ("shared", "plain")):
            t, losses[kind] = step(kind)
            times[kind].append(t)
            print(f"  round {rep + 1} {kind:6s} {t:6.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"{args.backbone}, {args.dtype}, {len(rows)} pairs of {args.data} (≤ {args.max_length} tokens, none cut): "
          f"{real} real tokens; plain batch {plain['input_ids'].numel()} positions ({plain['input_ids'].numel() / real:.3f}/token), "
          f"shared {shared['input_ids'].numel()} ({shared['input_ids'].numel() / real:.3f}/token); loss plain "
          f"{losses['plain']:.6f}, shared {losses['shared']:.6f}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for kind in times:
        print(f"{kind:6s} best {min(times[kind]):6.1f} s  median {statistics.median(times[kind]):6.1f} s  "
              f"all {' '.join(f'{t:.1f}' for t in times[kind])}  → {real / min(times[kind]):6.0f} real tok/s (best)")
    print(f"shared / plain speed: {min(times['plain']) / min(times['shared']):.2f}× (best), "
          f"{statistics.median(times['plain']) / statistics.median(times['shared']):.2f}× (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
