"""Neuron scoring: rmtension's streaming statistics against plain forward passes and the paper's approach.

Everything runs side by side in one invocation, on one RM and the same real HH-RLHF texts
(hashed sample of ``--data``, rendered with the RM template, cut from the left at ``--max-length``):

(a) Overhead. ``collect_stats`` (the streaming recorder as an observer of the one ``RewardScorer``)
    against a plain ``RewardScorer.score`` over the same texts — the cost of one forward pass,
    which any neuron scoring must pay. With the base model (for the ``change`` score) the
    recorder also runs the untrained backbone on every batch, so it is compared with *two* plain
    passes (2 × the plain time: the RM's and the base model's). Target: ≤ 1.15×.
(b) The paper's approach, re-implemented plainly here after its code (EshaanT/RM-alignment_tension
    at 96efa92: RM_interpretation/neural_score/dataset.py pads every text on the right to the
    max length, ``padding="max_length"``; scoring.py ``compute_mlp_activation`` runs the model
    **without an attention mask**, keeps every layer's activations of the batch, then multiplies
    them by the attention mask, sums over batch and positions and divides by the real-token
    count; neuron_scoring.py runs the chosen texts and the rejected texts in separate passes and
    abalate.py averages the two means). Here: hooks append every layer's activations, then
    ``torch.stack`` (layers × batch × length × neurons, float32), then that masked mean
    (``--paper-keep dataset``: keep the activations for the whole dataset before reducing, instead
    of per batch, in the timed runs; (c) measures both). With right padding and a causal decoder
    the real tokens' activations are the same with or without the mask, and the pads are masked
    out of the sums, so the paper's numbers are ours: the script checks that its per-side mean,
    averaged over the two sides, equals our ``magnitude`` score (float tolerance) — the two
    computations being timed are the same one. The same max length is used as ours for
    fairness, and the paper's own 1024 as well where it fits in memory (on the first
    ``--pairs``/4 pairs).
(c) Peak memory for N and 4N pairs (``--mem-pairs``), our recorder (target: flat) and the paper's
    approach keeping activations per batch and per dataset. These pairs are the first ones (same
    hash order) whose two sides both reach the max length, so every batch has the same shape
    (batch × max length, no padding) at N and at 4N: any growth comes from the number of texts.
    "− plain" is the peak above a plain forward pass on the same texts.

Measurement: every run is a fresh subprocess (this script with ``--worker``) that loads the
model(s), warms up on two other texts, then resets the kernel's peak-RSS mark (writing 5 to
``/proc/self/clear_refs``) and runs the configuration once; it reports wall seconds, CPU seconds
(user + system, all threads: less sensitive to other processes than wall time) and the peak RSS
above the RSS before the run (model loaded, warm). The configurations are run in turn, and the
whole round ``--repeats`` times (plain and stats once more), so a busy machine slows all of them
alike; the table shows the best wall time (and the CPU time of that run) and the ratios round by
round. Memory is the largest peak over repeats. (a) and (b) run with glibc's default allocator
settings, as users do, so their peaks include memory the allocator retains after freeing (up to
~0.6 GB of noise for the paper's approach); the memory test (c) runs with
``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB, so that freed tensors are unmapped at once and the peak
RSS is the peak of live memory (it slows page-fault-heavy code, so it is not used for timing).

Usage (from the repository root):
    python benchmarks/neuron_scoring.py [--backbone smollm2-135m-instruct | --rm DIR] [--pairs 32]
        [--mem-pairs 8] [--max-length 256] [--batch-size 16] [--repeats 2] [--paper-max-length 1024]
        [--paper-keep batch|dataset] [--site act] [--threads N] [--data hh-rlhf:harmless-base] [--no-shared-prompt]
        [--data-dir ../shared/data] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import cpu_seconds

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
MB = 1024 * 1024
MMAP_THRESHOLD = 1024 * 1024  # glibc: allocations above this are mmapped and unmapped when freed


# ----------------------------------------------------------------------------- memory / time helpers


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Reset VmHWM (peak RSS) to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# ----------------------------------------------------------------------------- data and models


def load_model(args):
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.rm:
        from rmtension.models.reward_model import load_reward_model

        model, tok, info = load_reward_model(args.rm)
        return model, tok, info.get("template", "hh"), info.get("backbone") or args.backbone
    from rmtension.models.reward_model import build_reward_model

    model, tok = build_reward_model(args.backbone, seed=0)
    return model, tok, "hh", args.backbone


def text_pairs(tok, template: str, n: int, data: str, data_dir: str, long_from: int = 0) -> list[tuple[str, str]]:
    """``n`` (chosen, rejected) texts, a seeded hash sample (the first n/4 are a subset of the first n).

    ``long_from`` > 0: the first ``n`` pairs in the same hash order whose two sides both have at
    least that many tokens — cut at that length, every batch then has the same full shape (the
    memory test: growth can only come from the number of texts).
    """
    from rmtension.data.sources import load_preferences
    from rmtension.models.encoding import encode
    from rmtension.models.formatting import format_for_rm
    from rmtension.training.data import sample_pairs

    pairs = load_preferences(data, data_dir).pairs
    if not long_from:
        return [(format_for_rm(p.prompt, p.chosen, tok, template), format_for_rm(p.prompt, p.rejected, tok, template))
                for p in sample_pairs(pairs, n, seed=0)]
    out = []
    for p in sorted(pairs, key=lambda p: hashlib.sha256(f"0\x00{p.id}".encode()).digest()):  # sample_pairs' order
        pair = (format_for_rm(p.prompt, p.chosen, tok, template), format_for_rm(p.prompt, p.rejected, tok, template))
        if min(len(ids) for ids in encode(tok, list(pair))) >= long_from:
            out.append(pair)
            if len(out) == n:
                return out
    raise SystemExit(f"only {len(out)} pairs of {data} have both sides ≥ {long_from} tokens; need {n}")


def warm_pair(tok, template: str) -> tuple[str, str]:
    from rmtension.models.formatting import format_for_rm

    return (format_for_rm("Is warm-up needed?", "Yes, it is.", tok, template),
            format_for_rm("Is warm-up needed?", "No.", tok, template))


# ----------------------------------------------------------------------------- the paper's approach


class PaperScorer:
    """Pad to ``max_length``, no attention mask, keep all layers' activations, then the masked mean.

    Tokens are exactly ours (same tokenizer call, same left cut), so the comparison isolates
    padding, keeping and reducing. The reduction is the paper's (scoring.py at 96efa92):
    ``act * mask`` summed over batch and positions, divided by the number of real tokens.
    ``keep="batch"``: reduce after each batch; ``keep="dataset"``: after the whole dataset.
    """

    def __init__(self, model, tok, max_length: int, batch_size: int, site: str = "act", keep: str = "batch"):
        from rmtension.evaluation.scorer import _pad_id
        from rmtension.neurons.sites import model_sites

        self.model, self.tok = model.eval(), tok
        self.max_length, self.batch_size, self.keep = max_length, batch_size, keep
        self.pad_id = _pad_id(model, tok)
        self.sites = model_sites(model)  # used only to find the hooked modules
        self.site = site
        self.tokens = self.positions = 0

    def __call__(self, texts: list[str]):
        from rmtension.models.encoding import encode, truncate_left

        special = set(self.tok.all_special_ids)
        ids = [truncate_left(row, self.max_length, special) for row in encode(self.tok, texts)]
        L, N, T = self.sites.n_layers, self.sites.n_neurons, self.max_length
        acts: list[torch.Tensor] = []
        handles = []
        for i in range(L):
            module, where = self.sites.hook_module(i, self.site)
            if where == "output":
                handles.append(module.register_forward_hook(lambda _m, _a, out: acts.append(out.detach())))
            else:
                handles.append(module.register_forward_pre_hook(lambda _m, a: acts.append(a[0].detach())))
        kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        running = torch.zeros(L, N, dtype=torch.float64)
        scores = []
        tokens = 0
        try:
            for start in range(0, len(ids), self.batch_size):
                rows = ids[start:start + self.batch_size]
                x = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), T))
                for r, row in enumerate(rows):
                    x[r, :len(row)] = torch.tensor(row)
                    mask[r, :len(row)] = 1
                acts.clear()
                with torch.no_grad():
                    out = self.model(input_ids=x, use_cache=False)  # no attention mask, as the paper's code
                scores.append(out.logits[:, 0].float())
                full = torch.stack(acts)  # (L, B, T, N): every layer's full activations of the batch
                acts.clear()
                tokens += int(mask.sum())
                self.tokens += int(mask.sum())
                self.positions += x.numel()
                if self.keep == "dataset":
                    kept.append((full, mask))
                else:
                    self._reduce(full, mask, running)
                del full
            for full, mask in kept:
                self._reduce(full, mask, running)
            kept.clear()
        finally:
            for h in handles:
                h.remove()
        return (running / tokens).numpy(), torch.cat(scores).numpy()

    @staticmethod
    def _reduce(full, mask, running):
        """The paper's ``act = act * mask; running[i] += act.sum(dim=(0, 1))`` for every layer i."""
        for i in range(full.shape[0]):
            running[i] += (full[i] * mask[:, :, None]).sum(dim=(0, 1)).double()


# ----------------------------------------------------------------------------- one measured run (subprocess)


CONFIGS = {
    "plain": "plain forward (RewardScorer.score)",
    "stats": "streaming stats (collect_stats)",
    "change": "streaming stats + base model (change)",
    "paper": "paper approach",
}


def worker(args) -> int:
    torch.set_num_threads(args.threads)
    model, tok, template, backbone = load_model(args)
    model.eval()
    base = None
    if args.worker == "change":
        from rmtension.models.reward_model import build_reward_model

        base = build_reward_model(backbone, seed=0)[0].eval()
    pairs = text_pairs(tok, template, args.pairs, args.data, args.data_dir,
                       long_from=args.max_length if args.text_set == "long" else 0)
    texts = [t for p in pairs for t in p]
    warm = [warm_pair(tok, template)]

    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
    from rmtension.neurons.recorder import collect_stats
    from rmtension.neurons.scores import compute_scores

    scorer = RewardScorer(model, tok, ScorerConfig(batch_size=args.batch_size, max_length=args.max_length,
                                                   device="cpu", progress=False,
                                                   shared_prompt=not args.no_shared_prompt))
    if args.worker == "plain":
        def run():
            scorer.score(texts)
            rep = scorer.last_report
            return {"tokens": rep.tokens, "positions": rep.padded_tokens, "texts": rep.unique_texts}
        scorer.score([t for p in warm for t in p])
    elif args.worker in ("stats", "change"):
        out: dict = {}

        def run():
            stats, s = collect_stats(scorer, pairs, site=args.site, base_model=base)
            out["stats"], out["scores"] = stats, s
            # the positions and tokens of every chunk (collect_stats sums them), not only the last call's
            return {"tokens": stats.meta["real_tokens"], "positions": stats.meta["positions"],
                    "texts": scorer.last_report.unique_texts}
        collect_stats(scorer, warm, site=args.site, base_model=base)
    elif args.worker == "paper":
        paper = PaperScorer(model, tok, args.max_length, args.batch_size, args.site, args.paper_keep)
        out = {}

        def run():
            # the paper's neuron_scoring.py: one pass over the chosen texts, one over the rejected texts;
            # abalate.py's get_neuron_score averages the two per-side means
            paper.tokens = paper.positions = 0
            (mean_c, s_c), (mean_r, s_r) = paper([p[0] for p in pairs]), paper([p[1] for p in pairs])
            out["mean"], out["scores"] = (mean_c + mean_r) / 2, np.stack([s_c, s_r], axis=1).reshape(-1)
            return {"tokens": paper.tokens, "positions": paper.positions, "texts": len(texts)}
        paper([t for p in warm for t in p])
    else:
        raise SystemExit(f"unknown worker {args.worker}")

    gc.collect()
    before = rss_bytes()
    exact = reset_peak()
    c0, t0 = cpu_seconds(), time.perf_counter()
    info = run()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    peak = peak_bytes()
    info.update({"config": args.worker, "set": args.text_set, "keep": args.paper_keep, "seconds": seconds,
                 "cpu_seconds": cpu, "rss_before": before,
                 "peak_above": max(0, peak - before) if exact else None, "peak_rss": peak,
                 "peak_exact": exact, "pairs": len(pairs), "max_length": args.max_length})
    if args.save_scores:
        path = Path(args.save_scores)
        if args.worker in ("stats", "change"):
            st = out["stats"]
            np.savez(path, magnitude=compute_scores(st, "magnitude"), count=st.act.count.sum(),
                     change=compute_scores(st, "change") if st.diff is not None else np.zeros(0),
                     rm_scores=out["scores"].reshape(-1))
        elif args.worker == "paper":
            np.savez(path, paper_mean=out["mean"], rm_scores=out["scores"])
    print("RESULT " + json.dumps(info), flush=True)
    return 0


# ----------------------------------------------------------------------------- orchestration


def spawn(args, config: str, pairs: int, max_length: int, text_set: str = "mixed", save: str | None = None,
          keep: str | None = None, fixed_mmap: bool = False) -> dict:
    keep = keep or args.paper_keep
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", config, "--pairs", str(pairs),
           "--max-length", str(max_length), "--batch-size", str(args.batch_size), "--site", args.site,
           "--threads", str(args.threads), "--data", args.data, "--data-dir", args.data_dir,
           "--paper-keep", keep, "--backbone", args.backbone, "--text-set", text_set]
    if args.no_shared_prompt:
        cmd.append("--no-shared-prompt")
    if args.rm:
        cmd += ["--rm", args.rm]
    if save:
        cmd += ["--save-scores", save]
    env = dict(os.environ)
    if fixed_mmap:  # freed tensors go back to the OS at once: the peak RSS is the peak of live memory
        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            name = config + (f" (keep per {keep})" if config == "paper" else "")
            print(f"  {name:26s} {pairs:3d} {text_set:5s} pairs, max len {max_length:4d}: {res['seconds']:6.1f} s wall, "
                  f"{res['cpu_seconds']:6.1f} s CPU, peak +{(res['peak_above'] or 0) / MB:6.0f} MB "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"worker {config} failed (exit {proc.returncode}): " + " | ".join(tail))


def paper_bytes(layers: int, neurons: int, texts: int, batch: int, max_length: int, keep: str) -> int:
    """Activation bytes the paper's approach holds at once (float32; stack doubles one batch)."""
    one_batch = layers * min(batch, texts) * max_length * neurons * 4
    if keep == "dataset":
        return layers * texts * max_length * neurons * 4 + one_batch
    return 2 * one_batch


def fmt_mb(b) -> str:
    return "n/a" if b is None else f"{b / MB:,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct", help="registered name, folder or hub id (untrained RM)")
    ap.add_argument("--rm", default=None, help="a trained RM folder instead of --backbone")
    ap.add_argument("--data", default="hh-rlhf:harmless-base")
    ap.add_argument("--data-dir", default=os.environ.get("RMTENSION_DATA_DIR") or str(DEFAULT_DATA))
    ap.add_argument("--pairs", type=int, default=32, help="pairs of mixed lengths for the timing runs")
    ap.add_argument("--mem-pairs", type=int, default=8,
                    help="N of the memory test (N and 4N pairs with both sides ≥ max length)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="rounds of all timed configurations (best wall time)")
    ap.add_argument("--paper-max-length", type=int, default=1024,
                    help="also run the paper's approach (and ours) at this length on the first pairs/4 pairs; 0: skip")
    ap.add_argument("--paper-keep", choices=("batch", "dataset"), default="batch",
                    help="paper approach keeps all activations per batch (default) or for the whole dataset")
    ap.add_argument("--site", default="act", choices=("act", "down_in"))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    ap.add_argument("--memory-fraction", type=float, default=0.6,
                    help="skip a paper run whose activations would need more than this share of MemAvailable")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="relative tolerance of the equality check")
    ap.add_argument("--no-shared-prompt", action="store_true",
                    help="score every text in full (ScorerConfig.shared_prompt=False) in plain and stats runs alike")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--save-scores", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--text-set", default="mixed", choices=("mixed", "long"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    from rmtension.neurons.sites import model_sites

    model, tok, template, label = load_model(args)
    ms = model_sites(model)
    L, N = ms.n_layers, ms.n_neurons
    P, ML, B = args.pairs, args.max_length, args.batch_size
    MN = args.mem_pairs
    lengths = [len(ids) for ids in tok([t for p in text_pairs(tok, template, P, args.data, args.data_dir)
                                        for t in p])["input_ids"]]
    text_pairs(tok, template, 4 * MN, args.data, args.data_dir, long_from=ML)  # fails early if too few
    if (2 * MN) % B:
        print(f"warning: 2 × --mem-pairs ({2 * MN} texts) is not a multiple of the batch size {B}: the N and 4N runs "
              "do not have the same batch shapes", file=sys.stderr)
    del model
    load0 = os.getloadavg()
    t_start = time.time()
    print(f"model {args.rm or label}: {ms.family}, {L} layers × {N} neurons, site {args.site}; float32, "
          f"{args.threads} threads; batch {B}; data {args.data}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="neuron_scoring."))
    runs: dict[tuple, list[dict]] = {}

    def record(config, pairs, max_length, text_set="mixed", keep=None, save=None):
        keep = keep or args.paper_keep
        res = spawn(args, config, pairs, max_length, text_set, save=save, keep=keep, fixed_mmap=text_set == "long")
        runs.setdefault((config if config != "paper" else f"paper-{keep}", pairs, max_length, text_set), []).append(res)

    def fits(pairs, max_length, keep):
        return paper_bytes(L, N, 2 * pairs, B, max_length, keep) < args.memory_fraction * mem_available()

    # (a), (b): interleaved rounds on the mixed-length sample
    timed = ["plain", "stats", "change"] + (["paper"] if fits(P, ML, args.paper_keep) else [])
    rounds = max(1, args.repeats)
    for r in range(rounds + 1):  # plain and stats (the headline ratio, and cheap) get one more round
        print(f"round {r + 1}/{rounds + 1}: {P} pairs, max length {ML}", flush=True)
        for config in timed if r < rounds else ["plain", "stats"]:
            save = str(tmp / f"{config}.npz") if r == rounds - 1 and config != "plain" else None
            record(config, P, ML, save=save)
    # (b) at the paper's length, on the first P/4 pairs of the same sample
    n_long = max(1, P // 4)
    long_ok = bool(args.paper_max_length) and fits(n_long, args.paper_max_length, "batch")
    if long_ok:
        print(f"max length {args.paper_max_length}: {n_long} pairs", flush=True)
        record("stats", n_long, args.paper_max_length)
        record("paper", n_long, args.paper_max_length, keep="batch")
    elif args.paper_max_length:
        print(f"max length {args.paper_max_length}: skipped, the paper's approach would need ≈"
              f"{paper_bytes(L, N, 2 * n_long, B, args.paper_max_length, 'batch') / MB:,.0f} MB of activations; "
              f"MemAvailable {mem_available() / MB:,.0f} MB")
    # (c) memory for N and 4N pairs whose sides all reach the max length: every batch is B × ML
    mem_configs = [("plain", None), ("stats", None), ("change", None), ("paper", "batch"), ("paper", "dataset")]
    for pairs in (MN, 4 * MN):
        print(f"memory: {pairs} pairs with both sides ≥ {ML} tokens", flush=True)
        for config, keep in mem_configs:
            if config == "paper" and not fits(pairs, ML, keep):
                print(f"  paper (keep per {keep}) skipped: ≈{paper_bytes(L, N, 2 * pairs, B, ML, keep) / MB:,.0f} MB")
                continue
            record(config, pairs, ML, "long", keep=keep)
    load1 = os.getloadavg()
    minutes = (time.time() - t_start) / 60

    def best(config, pairs, max_length, text_set="mixed"):
        rs = runs.get((config, pairs, max_length, text_set), [])
        if not rs:
            return None
        b = dict(min(rs, key=lambda x: x["seconds"]))
        peaks = [x["peak_above"] for x in rs if x["peak_above"] is not None]
        b["peak_above"] = max(peaks) if peaks else None
        return b

    plain, stats, change = (best(c, P, ML) for c in ("plain", "stats", "change"))
    paper = best(f"paper-{args.paper_keep}", P, ML)

    # ------------------------------------------------------------------ equality check
    ours, ch = np.load(tmp / "stats.npz"), np.load(tmp / "change.npz")
    check_lines = []
    ok = True
    if paper:
        pp = np.load(tmp / "paper.npz")
        mag, real = ours["magnitude"], pp["paper_mean"]
        diff = float(np.abs(mag - real).max())
        scale = float(np.abs(real).max())
        k = int(round(0.1 * mag.size))

        def top(x):
            return set(np.argsort(-x.ravel(), kind="stable")[:k].tolist())

        def jac(a, b):
            return len(a & b) / len(a | b)

        sdiff = float(np.abs(ours["rm_scores"] - pp["rm_scores"]).max())
        ok = diff <= args.tolerance * scale and sdiff <= 1e-3
        check_lines += [
            f"equality: our magnitude (per side signed mean over real tokens, float64 sums, (chosen + rejected) / 2) vs "
            f"the paper's reduction (pad to {ML}, no attention mask, act × mask summed / real tokens, per side, then "
            f"averaged; {paper['positions']:,} positions for {paper['tokens']:,} real tokens): "
            f"max |diff| {diff:.2e} (max |score| {scale:.3f}, relative tolerance {args.tolerance:g}) → "
            f"{'EQUAL' if diff <= args.tolerance * scale else 'DIFFERENT'}; top-10% sets Jaccard "
            f"{jac(top(mag), top(real)):.3f}; RM scores max |diff| {sdiff:.2e}",
        ]
    check_lines.append(f"change scores of an untrained RM against its own backbone: max {float(np.abs(ch['change']).max()):.2e} "
                       "(the same weights, so 0 is expected: the base saw the identical tokens)")

    # ------------------------------------------------------------------ tables
    cut = sum(ln > ML for ln in lengths)
    print()
    print(f"model {args.rm or label} ({ms.family}, {L} layers × {N} neurons, site {args.site}), float32, "
          f"{args.threads} threads, batch {B}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("(a) and (b): glibc's default allocator settings, as users run; peak memory there includes what the "
          "allocator retains (see (c) for live memory)")
    print(f"texts: {P} pairs of {args.data} = {2 * P} texts, {min(lengths)}–{max(lengths)} tokens "
          f"(median {int(np.median(lengths))}), {cut} cut from the left at {ML}")
    print(f"load average {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} at start, {load1[0]:.1f} / {load1[1]:.1f} / "
          f"{load1[2]:.1f} at end; {minutes:.1f} min; best wall time of {rounds} interleaved rounds ({rounds + 1} for plain and stats), each run a fresh process")
    print()
    print("(a) overhead of the streaming statistics over plain forward passes")
    hdr = f"{'configuration':44s} {'wall s':>7s} {'ratio':>6s} {'CPU s':>7s} {'ratio':>6s} {'tokens':>7s} {'positions':>9s}"
    print(hdr)
    print("-" * len(hdr))

    def row(name, r, ref):
        print(f"{name:44s} {r['seconds']:7.1f} {r['seconds'] / ref['seconds']:5.2f}× {r['cpu_seconds']:7.1f} "
              f"{r['cpu_seconds'] / ref['cpu_seconds']:5.2f}× {r['tokens']:7d} {r['positions']:9d}")

    two = {"seconds": 2 * plain["seconds"], "cpu_seconds": 2 * plain["cpu_seconds"], "tokens": 2 * plain["tokens"],
           "positions": 2 * plain["positions"]}
    row(CONFIGS["plain"], plain, plain)
    row(CONFIGS["stats"], stats, plain)
    row("2 × plain forward (RM + base model)", two, two)
    row(CONFIGS["change"], change, two)
    pr, sr, cr = (runs[(c, P, ML, "mixed")] for c in ("plain", "stats", "change"))
    per_round = ", ".join(f"{b['seconds'] / a['seconds']:.2f}×" for a, b in zip(pr, sr))
    per_round_change = ", ".join(f"{b['seconds'] / (2 * a['seconds']):.2f}×" for a, b in zip(pr, cr))
    per_round_cpu = ", ".join(f"{b['cpu_seconds'] / a['cpu_seconds']:.2f}×" for a, b in zip(pr, sr))
    print(f"round by round: stats / plain {per_round} (CPU {per_round_cpu}); change / (2 × plain) {per_round_change}")
    # the ratio compares like with like only if both passes computed the same positions (same packing)
    same = {(x["positions"], x["tokens"]) for x in pr + sr + cr}
    print(f"shared prompts {'off' if args.no_shared_prompt else 'on'}; positions / real tokens of plain, stats and "
          f"change runs: " + (f"all {plain['positions']:,} / {plain['tokens']:,} (equal)" if len(same) == 1
                               else f"DIFFERENT: {sorted(same)}"))
    print()

    print("(b) the paper's approach (pad to max length, no attention mask, keep every layer's activations of the batch, "
          "then the masked mean) vs ours")
    hdr = f"{'configuration':44s} {'max len':>7s} {'wall s':>7s} {'CPU s':>7s} {'peak MB':>8s} {'positions':>9s} " \
          f"{'time ×':>7s} {'mem ×':>7s}"
    print(hdr)
    print("-" * len(hdr))

    def row_b(name, r, ref):
        mr = (r["peak_above"] / ref["peak_above"]) if r["peak_above"] and ref["peak_above"] else float("nan")
        print(f"{name:44s} {r['max_length']:7d} {r['seconds']:7.1f} {r['cpu_seconds']:7.1f} {fmt_mb(r['peak_above']):>8s} "
              f"{r['positions']:9d} {r['seconds'] / ref['seconds']:6.2f}× {mr:6.2f}×")

    row_b(f"ours: streaming stats, {P} pairs", stats, stats)
    if paper:
        row_b(f"paper approach, {P} pairs", paper, stats)
    else:
        print(f"paper approach at {ML}: skipped (memory)")
    if long_ok:
        s_long, p_long = best("stats", n_long, args.paper_max_length), best("paper-batch", n_long, args.paper_max_length)
        row_b(f"ours: streaming stats, {n_long} pairs", s_long, s_long)
        row_b(f"paper approach, {n_long} pairs", p_long, s_long)
    print()

    print(f"(c) peak memory above the loaded, warm process (MB), N = {MN} vs 4N = {4 * MN} pairs whose sides all have "
          f"≥ {ML} tokens (every batch {B} × {ML}, no padding); glibc MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD} so that "
          "the peak RSS is the peak of live memory, not allocator retention")
    hdr = f"{'configuration':44s} {'N':>8s} {'4N':>8s} {'4N / N':>7s} {'N − plain':>10s} {'4N − plain':>10s}"
    print(hdr)
    print("-" * len(hdr))
    pl_n, pl_4n = best("plain", MN, ML, "long"), best("plain", 4 * MN, ML, "long")
    mem_out = {}
    for config, keep in mem_configs:
        key = config if config != "paper" else f"paper-{keep}"
        name = CONFIGS[config] if config != "paper" else f"paper approach, keep per {keep}"
        a, b = best(key, MN, ML, "long"), best(key, 4 * MN, ML, "long")
        pa, pb = (a or {}).get("peak_above"), (b or {}).get("peak_above")
        ratio = f"{pb / pa:6.2f}×" if pa and pb else "   n/a"
        da = fmt_mb(pa - pl_n["peak_above"]) if pa is not None and pl_n and pl_n["peak_above"] is not None else "n/a"
        db = fmt_mb(pb - pl_4n["peak_above"]) if pb is not None and pl_4n and pl_4n["peak_above"] is not None else "n/a"
        if config == "plain":
            da = db = "—"
        print(f"{name:44s} {fmt_mb(pa):>8s} {fmt_mb(pb):>8s} {ratio:>7s} {da:>10s} {db:>10s}")
        mem_out[key] = {"N": pa, "4N": pb}
    proj = paper_bytes(L, N, 2 * 2303, B, 1024, "dataset")
    print(f"activations the paper's approach holds: one batch {B} × {ML} × {L} layers × {N} × 4 B = "
          f"{L * B * ML * N * 4 / MB:,.0f} MB (twice while stacking); at 1024: {L * B * 1024 * N * 4 / MB:,.0f} MB; "
          f"kept for a whole dataset, e.g. all 2,303 harmless-base pairs at 1024: {proj / 1024**3:,.0f} GiB")
    print(f"ours holds per batch: per-text sums of one layer ({B} × 4 × {N} float32 = {B * 4 * N * 4 / 1024:.0f} KiB; the "
          f"activations are reduced in place, span by span); with the base model also the base's activations of all "
          f"layers (float32, ≤ {B * ML * L * N * 4 / MB:,.0f} MB); per-text mean vectors "
          f"({L * N * 8 / 1024:.0f} KiB each) wait for their pair partner within a chunk of ≤ 512 pairs")
    print()
    for line in check_lines:
        print(line)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "model": args.rm or label, "layers": L, "neurons": N, "pairs": P, "mem_pairs": MN, "max_length": ML,
            "batch_size": B, "threads": args.threads, "shared_prompt": not args.no_shared_prompt, "load_start": load0, "load_end": load1, "minutes": minutes,
            "runs": {"|".join(map(str, k)): v for k, v in runs.items()}, "memory": mem_out, "equal": ok},
            indent=2) + "\n")
    if not ok:
        print("error: our statistics and the paper-style computation disagree: the comparison is meaningless",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
