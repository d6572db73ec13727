"""Attribution scores on a real RM: their cost, and whether they find the neurons that matter (issue 14).

Two measurements, each on one thread (the machine is shared):

``timing``: time and peak memory of one pass over the same pairs, each mode in a fresh process so that
its peak resident memory is its own (``ru_maxrss``; the model's own footprint is reported apart):

* ``stats``   the statistics pass of ``neurons score`` (inference, packed shared prompts);
* ``fwdbwd``  a plain forward + backward of the scores with weight gradients (what training does per
  batch; unpacked batches, the same batching as the attribution pass);
* ``attr``    the attribution pass (``rmtension.neurons.attribution``: weights frozen, activation
  gradients only, per-text sums over the response tokens);
* ``ig4``     the attribution pass with 4 integrated-gradient steps (optional, ``--ig``).

    python benchmarks/attribution.py timing --rm /work/runs/qs/steps/train/<helpful run>/rm --pairs 8

``ablation``: the issue's "test that matters". For each single-objective RM of a study (its own
objective's training pairs, the RM's train split), the top-k% neurons by ``magnitude`` (the paper),
by ``attribution`` (signed) and by ``attribution-abs`` and a size-matched random set are each zeroed,
and own-objective accuracy on held-out HH items (the RM's own held-out split, its own objective's
subsets) is compared, paired per item: attribution − magnitude (negative = the attribution set hurts
more), with a paired bootstrap 95% interval and a sign-flip p (``rmtension.analysis.ablation_stats``).

    python benchmarks/attribution.py ablation --study /work/runs/qs --pairs 32 --heldout 40 --k 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = {"helpful": "hh-rlhf:helpful", "harmless": "hh-rlhf:harmless-base"}
OWN_SUBSETS = {"helpful": "hh-heldout:helpful-base,helpful-online,helpful-rejection-sampled",
               "harmless": "hh-heldout:harmless-base"}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _texts(rm_dir: str, source: str, pairs: int, data_dir: str | None, split: str = "train"):
    from rmtension.neurons.pipeline import ScoreRequest, prepare

    prep = prepare(ScoreRequest(rm=rm_dir, data=source, data_dir=data_dir, max_pairs=pairs, split=split))
    return prep


def child(args: argparse.Namespace) -> None:
    """One mode in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig

    prep = _texts(args.rm, args.data, args.pairs, args.data_dir)
    cfg = ScorerConfig(batch_size=args.batch_size, max_length=args.max_length, progress=False)
    scorer = RewardScorer(prep.model, prep.tokenizer, cfg)
    rss_model = _rss_mb()
    t0 = time.perf_counter()
    if args.mode == "stats":
        from rmtension.neurons.recorder import collect_stats

        collect_stats(scorer, prep.texts)
    elif args.mode == "fwdbwd":
        from dataclasses import replace

        plain = RewardScorer(prep.model, prep.tokenizer, replace(cfg, shared_prompt=False))
        texts = [t for p in prep.texts for t in p]
        batches, _owner, _rep = plain.make_batches(texts)
        for b in batches:
            with torch.enable_grad():
                plain.logits(b).sum().backward()
            prep.model.zero_grad(set_to_none=True)
    else:
        from rmtension.neurons.attribution import collect_attribution

        collect_attribution(scorer, prep.texts, ig_steps=4 if args.mode == "ig4" else 0)
    seconds = time.perf_counter() - t0
    tokens = sum(min(len(x), args.max_length) for x in prep.tokenizer([t for p in prep.texts for t in p])["input_ids"])
    print(json.dumps({"mode": args.mode, "seconds": round(seconds, 2), "rss_after_load_mb": round(rss_model, 1),
                      "peak_rss_mb": round(_rss_mb(), 1), "pass_peak_mb": round(_rss_mb() - rss_model, 1),
                      "pairs": len(prep.texts), "tokens": tokens, "threads": torch.get_num_threads()}))


def timing(args: argparse.Namespace) -> None:
    modes = ["stats", "fwdbwd", "attr"] + (["ig4"] if args.ig else [])
    rows = []
    for mode in modes:
        cmd = [sys.executable, __file__, "_child", "--mode", mode, "--rm", args.rm, "--data", args.data,
               "--pairs", str(args.pairs), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
               "--threads", str(args.threads)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO / "src")}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = {r["mode"]: r for r in rows}
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}, "rm": args.rm, "data": args.data, "rows": rows,
                      "attr_vs_fwdbwd_time": round(base["attr"]["seconds"] / base["fwdbwd"]["seconds"], 2),
                      "attr_vs_stats_time": round(base["attr"]["seconds"] / base["stats"]["seconds"], 2)}, indent=1))


def _run_dirs(study: Path) -> dict[str, Path]:
    out = {}
    for d in sorted((study / "steps" / "train").iterdir()):
        for objective in ("helpful", "harmless", "mixed"):
            if f"__{objective}-s" in d.name and (d / "rm").is_dir():
                out[objective] = d / "rm"
    return out


def ablation(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from rmtension.ablation.ablate import prepare as prepare_ablation
    from rmtension.ablation.sweep import sweep
    from rmtension.analysis.ablation_stats import Stratum, paired_effect
    from rmtension.bench.loaders import load_benchmark, rm_heldout_split, subsample
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
    from rmtension.neurons.attribution import collect_attribution
    from rmtension.neurons.recorder import collect_stats
    from rmtension.neurons.scores import compute_scores
    from rmtension.neurons.sets import random_like, select_top
    from rmtension.neurons.sites import model_sites

    rms = _run_dirs(Path(args.study))
    report = {"study": args.study, "pairs": args.pairs, "heldout_per_subset": args.heldout, "k": args.k, "rms": {}}
    for objective in args.objectives.split(","):
        rm_dir = str(rms[objective])
        t0 = time.perf_counter()
        prep = _texts(rm_dir, SOURCES[objective], args.pairs, args.data_dir)
        cfg = ScorerConfig(batch_size=args.batch_size, max_length=args.max_length, progress=False)
        scorer = RewardScorer(prep.model, prep.tokenizer, cfg)
        stats, _ = collect_stats(scorer, prep.texts)
        stats.attr, _ = collect_attribution(scorer, prep.texts)
        t_scores = time.perf_counter() - t0
        sets = {m: select_top(compute_scores(stats, m, "group-mean"), args.k, meta={"method": m, "site": "act"})
                for m in ("magnitude", "attribution", "attribution-abs")}
        sets["random"] = random_like(sets["magnitude"], 0)
        ms = model_sites(prep.model)
        jac = {f"{a}|{b}": float((sets[a].mask & sets[b].mask).sum() / max((sets[a].mask | sets[b].mask).sum(), 1))
               for a, b in (("magnitude", "attribution"), ("magnitude", "attribution-abs"), ("attribution", "attribution-abs"))}
        per_subset = args.heldout_harmless if objective == "harmless" else args.heldout
        bench = subsample(load_benchmark(OWN_SUBSETS[objective], args.data_dir,
                                         rm_heldout_split(rm_dir, ["hh-heldout"])), per_subset)
        abl = [prepare_ablation(ms, s, "zero", name=m) for m, s in sets.items()]
        t1 = time.perf_counter()
        res = sweep(prep.model, prep.tokenizer, [bench], abl, template=prep.info.get("template", "hh"),
                    scorer_config=ScorerConfig(batch_size=args.batch_size, max_length=args.eval_max_length,
                                               progress=False))
        t_eval = time.perf_counter() - t1

        def correct(items) -> dict[str, np.ndarray]:
            by: dict[str, list[float]] = {}
            for r in items:
                by.setdefault(r["subset"], []).append(float(r["correct"]))
            return {k: np.asarray(v) for k, v in sorted(by.items())}

        base = correct(res.baseline.items)
        per_set = {sr.ablation.name: correct(sr.result.items) for sr in res.sets}
        acc = {name: float(np.mean([v.mean() for v in c.values()])) for name, c in [("baseline", base), *per_set.items()]}
        contrasts = {}
        for a, b in (("attribution", "magnitude"), ("attribution-abs", "magnitude"), ("magnitude", "random"),
                     ("attribution", "random")):
            strata = [Stratum(per_set[a][sub], per_set[b][sub], base[sub]) for sub in base]
            contrasts[f"{a} - {b}"] = paired_effect([strata], n_resamples=5000, seed=0)
        report["rms"][objective] = {
            "rm": rm_dir, "set_size": len(sets["magnitude"]), "total": sets["magnitude"].total,
            "jaccard": jac, "own_accuracy": acc, "items": int(sum(v.size for v in base.values())),
            "contrasts": contrasts, "seconds": {"scores": round(t_scores, 1), "eval": round(t_eval, 1)},
            "pair_accuracy_train_sample": stats.meta.get("accuracy")}
        print(json.dumps({objective: report["rms"][objective]}, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("timing", "_child"):
        t = sub.add_parser(name)
        t.add_argument("--rm", required=True)
        t.add_argument("--data", default="hh-rlhf:helpful")
        t.add_argument("--pairs", type=int, default=8)
        t.add_argument("--batch-size", type=int, default=4)
        t.add_argument("--max-length", type=int, default=256)
        t.add_argument("--threads", type=int, default=1)
        t.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
        t.add_argument("--ig", action="store_true")
        t.add_argument("--mode", default="attr")
    a = sub.add_parser("ablation")
    a.add_argument("--study", required=True)
    a.add_argument("--objectives", default="helpful,harmless")
    a.add_argument("--pairs", type=int, default=32)
    a.add_argument("--heldout", type=int, default=20, help="held-out items per helpful subset (3 subsets)")
    a.add_argument("--heldout-harmless", type=int, default=60, help="held-out harmless-base items")
    a.add_argument("--k", type=float, default=10.0)
    a.add_argument("--batch-size", type=int, default=8)
    a.add_argument("--max-length", type=int, default=256)
    a.add_argument("--eval-max-length", type=int, default=384)
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    a.add_argument("--out", default=None)
    args = p.parse_args()
    {"timing": timing, "_child": child, "ablation": ablation}[args.cmd](args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
