"""A realistic synthetic ``summary.json`` (docs/STUDY_FORMAT.md) for report tests.

Why synthetic: a real study takes minutes to hours; the report only reads ``summary.json``, so a
seeded generator that fills every list the way the pipeline does (backbones × objectives × seeds,
benchmarks with helpful and harmless subsets, neuron layouts, ablations, curves) tests every
section in a second. The numbers follow the paper's pattern (single RMs strong on their own group,
the mixed RM in between, mixed margins nearer zero) so the figures look like the real thing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Sequence

OBJECTIVES = ("helpful", "harmless", "mixed")
BENCHES: dict[str, dict[str, str]] = {
    "rewardbench": {"alpacaeval-easy": "helpful", "mt-bench-hard": "helpful", "math-prm": "helpful",
                    "refusals-dangerous": "harmless", "xstest-should-refuse": "harmless"},
    "rm-bench": {"chat": "helpful", "code": "helpful", "safety-refuse": "harmless", "safety-response": "harmless"},
}
CURVE_KS = (0.0, 5.0, 10.0, 20.0, 30.0)


def _acc(rng: random.Random, objective: str, group: str) -> float:
    """Accuracy in the paper's pattern: each single RM is best on its own group, mixed in between."""
    base = {("helpful", "helpful"): 0.74, ("helpful", "harmless"): 0.42, ("harmless", "helpful"): 0.51,
            ("harmless", "harmless"): 0.81, ("mixed", "helpful"): 0.66, ("mixed", "harmless"): 0.70}[(objective, group)]
    return round(min(1.0, max(0.0, base + rng.uniform(-0.06, 0.06))), 4)


def _hist(rng: random.Random, centres: Sequence[float], spreads: Sequence[float], names: Sequence[str],
          lo: float, hi: float, n: int = 400, bins: int = 24) -> dict[str, Any]:
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    out: dict[str, Any] = {"bins": [round(e, 4) for e in edges]}
    for name, c, s in zip(names, centres, spreads):
        counts = [0] * bins
        for _ in range(n):
            x = rng.gauss(c, s)
            j = int((x - lo) / (hi - lo) * bins)
            counts[min(bins - 1, max(0, j))] += 1
        out[name] = counts
    return out


def _eval(rng: random.Random, objective: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for bench, subsets in BENCHES.items():
        subs: dict[str, dict[str, Any]] = {s: {"metric": "pairwise" if bench == "rewardbench" else "rm-bench", "score": _acc(rng, objective, g),
                    "n": 40 + 10 * i, "group": g} for i, (s, g) in enumerate(subsets.items())}
        groups = {g: round(sum(v["score"] for v in subs.values() if v["group"] == g)
                           / sum(1 for v in subs.values() if v["group"] == g), 6) for g in ("helpful", "harmless")}
        mean = sum(v["score"] for v in subs.values()) / len(subs)
        agg: dict[str, Any] = {"mean": mean, "items": sum(v["n"] for v in subs.values())}
        if bench == "rewardbench":
            agg.update({"sections": {"Chat": subs["alpacaeval-easy"]["score"], "Safety": groups["harmless"]},
                        "overall": mean})
        else:
            agg.update({"hard": mean - 0.1, "normal": mean, "easy": mean + 0.1, "average": mean,
                        "domains": {"chat": {"hard": 0.5, "normal": 0.6, "easy": 0.7, "average": 0.6, "n": 40}}})
        out[bench] = {"subsets": subs, "groups": groups, "aggregate": agg}
    return out


def _thirds(per_layer: dict[str, int], n_layers: int) -> dict[str, int]:
    t = {"early": 0, "middle": 0, "late": 0}
    for layer, c in per_layer.items():
        i = int(layer)  # the paper's rule: layer < L/3 early, < 2L/3 middle
        t["early" if 3 * i < n_layers else "middle" if 3 * i < 2 * n_layers else "late"] += c
    return t


def make_summary(backbones: Sequence[str] = ("tiny-gpt2",), seeds: Sequence[int] = (0, 1),
                 rng_seed: int = 7, n_layers: int = 6, width: int = 64) -> dict[str, Any]:
    """A summary with every list populated for ``backbones`` × three objectives × ``seeds``."""
    rng = random.Random(rng_seed)
    total = n_layers * width
    k = 10.0
    summary: dict[str, Any] = {
        "study": {"name": "synthetic-study", "created": "2026-05-01T12:00:00+00:00", "rmtension_version": "0.1.0",
                  "config": {"backbones": list(backbones), "objectives": list(OBJECTIVES), "seeds": list(seeds),
                             "train": {"preset": "tiny", "lr": 1e-4, "epochs": {"single": 2, "mixed": 1},
                                       "batch_size": 16, "max_pairs": 200},
                             "benchmarks": list(BENCHES), "neurons": {"methods": ["magnitude", "change"],
                                                                      "sites": ["mlp.act"], "k": [k]},
                             "ablation": {"sets": ["own", "shared", "helpful-only", "harmless-only", "random"],
                                          "curves": {"k": list(CURVE_KS), "methods": ["magnitude", "change", "random"]}}}},
        "runs": [], "retention": [], "calibration": [], "neurons": [], "overlap": [], "ablation": [], "curves": [],
        "neurons_seed_mean": [], "overlap_seed_mean": [],
    }
    for bb in backbones:
        for seed in seeds:
            for obj in OBJECTIVES:
                summary["runs"].append({
                    "backbone": bb, "objective": obj, "seed": seed, "rm_dir": f"steps/train/{bb}-{obj}-{seed}",
                    "train": {"pairs_used": 400 if obj == "mixed" else 200, "steps": 25 if obj == "mixed" else 50,
                              "train_loss": round(rng.uniform(0.45, 0.69), 4),
                              "heldout_accuracy": round(rng.uniform(0.55, 0.7), 4),
                              "wall_time_s": round(rng.uniform(20, 60), 2)},
                    "eval": _eval(rng, obj), "items_file": f"steps/eval/{bb}-{obj}-{seed}/items.jsonl"})
            tasks = {}
            for bench, subsets in BENCHES.items():
                for sub, g in subsets.items():
                    ret = round(rng.uniform(0.6, 0.9), 4)
                    kept_h, kept_a = round(rng.uniform(0.6, 0.95), 4), round(rng.uniform(0.6, 0.95), 4)
                    tasks[f"{bench}/{sub}"] = {  # Jaccard ≤ kept share; derived so the random stream is unchanged
                        "group": g, "n": 40, "retention": ret, "kept_helpful": kept_h, "kept_harmless": kept_a,
                        "jaccard_helpful": round(0.8 * kept_h, 4), "jaccard_harmless": round(0.8 * kept_a, 4),
                        "n_union": rng.randint(25, 38), "n_helpful": rng.randint(15, 30), "n_harmless": rng.randint(15, 30)}
            summary["retention"].append({"backbone": bb, "seed": seed, "unit": "paper", "tasks": tasks})
            for single in ("helpful", "harmless"):
                for group in ("helpful", "harmless", "all"):
                    sm, mm = rng.uniform(1.2, 1.8), rng.uniform(0.4, 0.8)
                    summary["calibration"].append({
                        "backbone": bb, "seed": seed, "single": single, "group": group, "n": rng.randint(60, 120),
                        "single_margin": {"mean": sm, "median": sm * 0.9, "std": 0.8},
                        "mixed_margin": {"mean": mm, "median": mm * 0.9, "std": 0.5},
                        "share_mixed_smaller": round(rng.uniform(0.6, 0.85), 4),
                        "hist": _hist(rng, (sm, mm), (0.8, 0.5), ("single", "mixed"), -1.0, 4.0)})
            sets: dict[tuple[str, str], set[int]] = {}
            rmsd_of: dict[str, dict] = {}  # one statistics pass per RM: the same RMSD for every method
            for method in ("magnitude", "change"):
                for obj in OBJECTIVES:
                    # later layers favoured, as the paper finds
                    want = int(total * k / 100)
                    chosen: set[int] = set()
                    while len(chosen) < want:
                        layer = rng.choices(range(n_layers), weights=[1 + i for i in range(n_layers)])[0]
                        chosen.add(layer * width + rng.randrange(width))
                    sets[(method, obj)] = chosen
                    per_layer = {str(i): sum(1 for n in chosen if n // width == i) for i in range(n_layers)}
                    summary["neurons"].append({
                        "backbone": bb, "objective": obj, "seed": seed, "method": method, "site": "mlp.act", "k": k,
                        "selected": len(chosen), "total": total, "n_layers": n_layers, "per_layer": per_layer,
                        "thirds": _thirds(per_layer, n_layers), "set_file": f"steps/neurons/{bb}-{obj}-{seed}-{method}.json",
                        "rmsd": rmsd_of.setdefault(obj, {"per_pair": round(rng.uniform(0.2, 0.4), 4),
                                                         "per_pair_std": 0.05, "pairs": 64,
                                                         "dataset_means": round(rng.uniform(0.01, 0.05), 4)})})
                    if seed == seeds[0]:  # one seed-mean set per RM type (the paper's aggregate)
                        summary["neurons_seed_mean"].append({
                            "backbone": bb, "objective": obj, "seeds": list(seeds), "aggregate": "seed-mean",
                            "method": method, "site": "mlp.act", "k": k, "selected": len(chosen), "total": total,
                            "n_layers": n_layers, "per_layer": per_layer, "thirds": _thirds(per_layer, n_layers),
                            "rmsd_dataset_means": round(rng.uniform(0.01, 0.05), 4)})
                a, b, m = sets[(method, "helpful")], sets[(method, "harmless")], sets[(method, "mixed")]
                union = a | b
                entry = {
                    "backbone": bb, "seed": seed, "method": method, "k": k,
                    "helpful_harmless": {"a": len(a), "b": len(b), "shared": len(a & b), "a_only": len(a - b),
                                         "b_only": len(b - a), "jaccard": len(a & b) / len(union),
                                         "overlap_share": len(a & b) / min(len(a), len(b))},
                    "mixed_retention": len(m & union) / len(union | m),
                    "mixed_retention_of_single": len(m & union) / len(union)}
                summary["overlap"].append(entry)
                if seed == seeds[0]:
                    summary["overlap_seed_mean"].append({**{k_: v for k_, v in entry.items() if k_ != "seed"},
                                                         "aggregate": "seed-mean",
                                                         "seeds": {o: list(seeds) for o in OBJECTIVES}})
            plans = [("helpful", "own", None), ("harmless", "own", None), ("mixed", "own", None),
                     ("mixed", "shared", None), ("mixed", "helpful-only", None), ("mixed", "harmless-only", None),
                     ("mixed", "random", "shared"), ("helpful", "random", "own")]
            baselines: dict[tuple[str, str], float] = {}  # one unablated score per RM and task
            for rm, set_name, random_of in plans:
                hit = {"own": {"helpful": -0.12, "harmless": -0.1}, "shared": {"helpful": -0.15, "harmless": -0.14},
                       "helpful-only": {"helpful": -0.1, "harmless": -0.02},
                       "harmless-only": {"helpful": -0.02, "harmless": -0.11},
                       "random": {"helpful": -0.01, "harmless": -0.005}}[set_name]
                benches = {}
                for bench, subsets in BENCHES.items():
                    subs: dict[str, dict[str, Any]] = {}
                    for sub, g in subsets.items():
                        base = baselines.setdefault((rm, f"{bench}/{sub}"), _acc(rng, rm, g))
                        score = round(max(0.0, base + hit[g] + rng.uniform(-0.02, 0.02)), 4)
                        subs[sub] = {"group": g, "score": score, "baseline": base, "delta": round(score - base, 6)}
                    groups = {}
                    for g in ("helpful", "harmless"):
                        members = [v for v in subs.values() if v["group"] == g]
                        sc = sum(v["score"] for v in members) / len(members)
                        bl = sum(v["baseline"] for v in members) / len(members)
                        groups[g] = {"score": sc, "baseline": bl, "delta": sc - bl}
                    benches[bench] = {"subsets": subs, "groups": groups}
                summary["ablation"].append({
                    "backbone": bb, "seed": seed, "rm_objective": rm, "set": set_name, "method": "magnitude", "k": k,
                    "size": 12 if "shared" in (set_name, random_of) else 38, "random_of": random_of, "benchmarks": benches,
                    "score_hist": _hist(rng, (0.8, 0.3), (1.2, 0.9), ("before", "after"), -4.0, 5.0)})
            for rm in OBJECTIVES:
                starts = {g: _acc(rng, rm, g) for g in ("helpful", "harmless")}  # k = 0: the same unablated RM
                for method, drop in (("magnitude", 0.010), ("change", 0.008), ("random", 0.001)):
                    for group in ("helpful", "harmless"):
                        start = starts[group]
                        summary["curves"].append({
                            "backbone": bb, "seed": seed, "rm_objective": rm, "method": method, "bench": "hh-heldout",
                            "group": group, "points": [{"k": kk, "score": round(max(0.3, start - drop * kk
                                                                                    + rng.uniform(-0.01, 0.01)), 4)
                                                                                    if kk else start}
                                                       for kk in CURVE_KS]})
    return summary


def write_summary(study_dir: Path, summary: dict[str, Any]) -> Path:
    study_dir.mkdir(parents=True, exist_ok=True)
    path = study_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return path
