"""Ablation sweep: shared work against separate runs, side by side in one process.

What it measures: evaluating one RM on real HH-RLHF pairs unablated and under ≥ 8 neuron sets,
(a) the way a user would otherwise do it — one ``evaluate()`` per set under ``ablate()`` (plus
the baseline run), and (b) with ``rmtension.ablation.sweep`` (one plan, one baseline pass, each
set re-running only the layers from its lowest ablated layer on; identical and empty sets free).
Optionally (c) the sweep with ``share=False`` (one plan, a full pass per set), which isolates the
layer skipping from the planning. Scores of (a) and (b) must agree to float tolerance.

The sets are realistic for the study: top-k% of the model's own magnitude scores on the same
pairs (one statistics pass, not timed), random controls, and location experiments (top neurons
of the middle or late third only, one late layer). Each set's start layer is printed with the
layer-forward work ratio it implies, so the time ratio can be read against what sharing can
possibly save: a set that touches layer 0 saves nothing but its tokenisation.

    python benchmarks/ablation_sweep.py --backbone smollm2-135m-instruct --pairs 16 --max-length 256
    python benchmarks/ablation_sweep.py --backbone tiny-llama --pairs 64

``--rm DIR`` uses a trained RM instead of the untrained RM built on ``--backbone``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rmtension.ablation import Ablation, apply_ablation, prepare, random_like, sweep
from rmtension.bench.groups import group_of
from rmtension.bench.types import METRIC_PAIRWISE, Benchmark, BenchItem
from rmtension.data.sources import load_preferences
from rmtension.evaluation.evaluate import evaluate
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.models.formatting import format_for_rm
from rmtension.neurons.recorder import collect_stats
from rmtension.neurons.scores import compute_scores, random_scores
from rmtension.neurons.sets import NeuronSet, select_top, thirds
from rmtension.neurons.sites import model_sites

REPO = Path(__file__).resolve().parent.parent


def _pairs(data_dir: str, n: int):
    """n real pairs, half helpful-base and half harmless-base (test split)."""
    half = n // 2
    out = []
    for src, k in (("hh-rlhf:helpful-base@test", n - half), ("hh-rlhf:harmless-base@test", half)):
        out += load_preferences(src, data_dir).pairs[:k]
    return out


def _bench(pairs) -> Benchmark:
    items = [BenchItem(id=f"{p.subset}:{i}", subset=p.subset, group=group_of(p.subset), prompt=p.prompt,
                       chosen=(p.chosen,), rejected=(p.rejected,), benchmark="hh-sample") for i, p in enumerate(pairs)]
    return Benchmark("hh-sample", items, METRIC_PAIRWISE)


def _band(scores: np.ndarray, lo: int, hi: int, percent: float, site: str, label: str) -> NeuronSet:
    """Top ``percent``% of the neurons of layers lo..hi-1 only (a location experiment)."""
    masked = np.full_like(scores, -np.inf)
    masked[lo:hi] = scores[lo:hi]
    k = int(round(scores[lo:hi].size * percent / 100))
    order = np.argsort(-masked.reshape(-1), kind="stable")[:k]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order] = True
    return NeuronSet(mask.reshape(scores.shape), {"site": site, "selection": label})


def build_sets(model, tokenizer, texts_pairs, cfg: ScorerConfig, site: str) -> list[Ablation]:
    ms = model_sites(model)
    stats, _ = collect_stats(RewardScorer(model, tokenizer, cfg), texts_pairs, site=site)
    mag = compute_scores(stats, "magnitude")
    rnd = random_scores(ms.n_layers, ms.n_neurons, seed=0)
    (_, e0, e1), (_, m0, m1), (_, l0, l1) = thirds(ms.n_layers)
    top10 = select_top(mag, 10, meta={"site": site})
    named = [
        ("magnitude-top1", select_top(mag, 1, meta={"site": site})),
        ("magnitude-top5", select_top(mag, 5, meta={"site": site})),
        ("magnitude-top10", top10),
        ("random-scores-top10", select_top(rnd, 10, meta={"site": site})),
        ("random-like-top10", random_like(top10, seed=1)),
        ("magnitude-middle-third-top10", _band(mag, m0, m1, 10, site, "middle")),
        ("magnitude-late-third-top10", _band(mag, l0, l1, 10, site, "late")),
        ("random-like-late-third", random_like(_band(mag, l0, l1, 10, site, "late"), seed=2)),
        ("last-layer-all", _band(mag, ms.n_layers - 1, ms.n_layers, 100, site, "last layer")),
        ("magnitude-top0", select_top(mag, 0, meta={"site": site})),
    ]
    return [prepare(ms, s, name=n) for n, s in named]


def run_separate(model, tok, bench, ablations, cfg) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """What a user does without sweeps: ``evaluate()`` for the baseline and once per set under ``ablate``."""
    def scores_of(res) -> np.ndarray:
        return np.array([s for row in res.items for s in row["chosen_scores"] + row["rejected_scores"]])

    t0 = time.perf_counter()
    base = scores_of(evaluate(model, tok, [bench], template="hh", scorer_config=cfg))
    out = {}
    for ab in ablations:
        with apply_ablation(model, ab):
            out[ab.name] = scores_of(evaluate(model, tok, [bench], template="hh", scorer_config=cfg))
    return time.perf_counter() - t0, out, base


def run_sweep(model, tok, bench, ablations, cfg, share: bool):
    t0 = time.perf_counter()
    res = sweep(model, tok, [bench], ablations, template="hh", scorer_config=cfg, share=share)
    secs = time.perf_counter() - t0

    def scores_of(r) -> np.ndarray:
        return np.array([s for row in r.items for s in row["chosen_scores"] + row["rejected_scores"]])

    return secs, {sr.ablation.name: scores_of(sr.result) for sr in res.sets}, scores_of(res.baseline), res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="smollm2-135m-instruct", help="registered name or folder (untrained RM)")
    ap.add_argument("--rm", default=None, help="a trained RM folder instead of --backbone")
    ap.add_argument("--data-dir", default=os.environ.get("RMTENSION_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--pairs", type=int, default=16, help="HH pairs (2 texts each; half helpful, half harmless)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--site", default="act", choices=("act", "down_in"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: stable timings on a shared CPU)")
    ap.add_argument("--no-share-too", action="store_true", help="also time the sweep with share=False")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |score difference| allowed")
    ap.add_argument("--json-out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.rm:
        from rmtension.models.reward_model import load_reward_model

        model, tok, _info = load_reward_model(args.rm)
        label = args.rm
    else:
        from rmtension.models.reward_model import build_reward_model

        model, tok = build_reward_model(args.backbone, seed=0)
        label = args.backbone
    model.eval()
    cfg = ScorerConfig(batch_size=args.batch_size, max_length=args.max_length, progress=False, device="cpu")
    pairs = _pairs(args.data_dir, args.pairs)
    bench = _bench(pairs)
    text_pairs = [(format_for_rm(p.prompt, p.chosen, tok, "hh"), format_for_rm(p.prompt, p.rejected, tok, "hh"))
                  for p in pairs]
    ablations = build_sets(model, tok, text_pairs, cfg, args.site)
    ms = model_sites(model)
    L = ms.n_layers

    t_sep, sep, base_sep = run_separate(model, tok, bench, ablations, cfg)
    t_sh, sh, base_sh, res = run_sweep(model, tok, bench, ablations, cfg, share=True)
    t_ns = None
    if args.no_share_too:
        t_ns, _ns, _b, _r = run_sweep(model, tok, bench, ablations, cfg, share=False)

    st = res.stats
    worst = float(np.abs(base_sep - base_sh).max())
    rows = []
    for ab in ablations:
        diff = float(np.abs(sep[ab.name] - sh[ab.name]).max())
        worst = max(worst, diff)
        start = st.starts[ab.name]
        acc = next(sr for sr in res.sets if sr.ablation.name == ab.name).result.results["benchmarks"]["hh-sample"]
        rows.append({"set": ab.name, "neurons": ab.count, "start_layer": start,
                     "layers_run": 0 if start is None else L - start, "max_abs_diff": diff,
                     "groups": acc["groups"]})
    n_texts = res.baseline.results["scoring"]["unique_texts"]
    print(f"model: {label} ({ms.family}, {L} layers × {ms.n_neurons} neurons, site {args.site}); "
          f"{len(pairs)} HH pairs = {n_texts} texts, max length {args.max_length}, batch {args.batch_size}, "
          f"threads {args.threads}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'set':32s} {'neurons':>8s} {'start':>6s} {'layers run':>10s} {'max|Δscore|':>12s}")
    for r in rows:
        start = "-" if r["start_layer"] is None else str(r["start_layer"])
        print(f"{r['set']:32s} {r['neurons']:8d} {start:>6s} {r['layers_run']:>10d} {r['max_abs_diff']:12.2e}")
    print()
    print(f"{'method':44s} {'seconds':>9s} {'ratio':>7s}")
    print(f"{'separate runs (evaluate() × (1 + sets))':44s} {t_sep:9.1f} {1.0:7.3f}")
    if t_ns is not None:
        print(f"{'sweep, share=False (one plan, full passes)':44s} {t_ns:9.1f} {t_ns / t_sep:7.3f}")
    print(f"{'sweep, shared work':44s} {t_sh:9.1f} {t_sh / t_sep:7.3f}")
    print(f"layer-forward work ratio (shared / separate): {st.work_ratio:.3f} "
          f"({st.layer_forwards} / {st.layer_forwards_separate}); distinct sets computed: {st.computed} of {st.sets}")
    ok = worst <= args.tolerance
    print(f"scores agree: {'yes' if ok else 'NO'} (max |Δscore| {worst:.2e}, tolerance {args.tolerance:g})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "model": label, "layers": L, "texts": n_texts, "max_length": args.max_length, "threads": args.threads,
            "separate_s": t_sep, "shared_s": t_sh, "no_share_s": t_ns, "time_ratio": t_sh / t_sep,
            "work_ratio": st.work_ratio, "max_abs_diff": worst, "sets": rows}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
