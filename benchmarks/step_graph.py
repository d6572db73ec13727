"""The study's step graph on paper: how many steps of each kind, the serial total, the critical path, and
what a cluster of W workers (one step each at a time, e.g. one GPU per step) could make of it (issue 17).

Two sources of step times:

* ``--from-study DIR``: the seconds each step of a finished study recorded in its ``step.json`` (what the
  tiny study really took here);
* otherwise an estimate per step from FLOPs (the assumptions below; change them with the flags). They are
  assumptions, not measurements: the point is the *shape* of the graph (which chain bounds the study, how
  much parallelism it offers), which holds for any per-kind times of similar ratios.

Assumptions of the estimate (paper grid, ``configs/paper.yaml``):
  - each step runs on one GPU at an effective ``--rate`` FLOP/s (default 2e14: a H100 in bf16 at ~20-30%
    utilisation), plus ``--overhead`` seconds of loading (default 60);
  - parameters: GPT-2 124M / 355M / 774M, SmolLM2 135M / 360M / 1.7B (their model cards; study.graph);
  - training: 6 × params × tokens × epochs, 500 tokens per pair (chosen + rejected), HH-RLHF train pairs
    helpful 118,263 (helpful-base 43,835 + helpful-online 22,007 + helpful-rejection-sampled 52,421), harmless
    42,537, mixed 160,800 (github.com/anthropics/hh-rlhf, the train files' line counts), 95% of them (5% held
    out), 2 epochs single-objective, 1 mixed (the paper);
  - one evaluation: 2 × params × 8.6M tokens (RewardBench 2,985 pairs, RewardBench 2 1,865 items of ~4
    completions, RM-Bench 1,327 × 6 texts: ~21,400 texts × ~400 tokens);
  - neuron statistics: 2,000 pairs × 2 texts × 250 tokens, twice with change scores (RM and base model);
    the backbone baseline and the neuron-length step once;
  - own ablation: 1 + #sets evaluations (baseline, own, random); mixed ablation: 1 + 4 (shared, helpful-only,
    harmless-only, random); curves: 1 + methods × nonzero k evaluations of 500 hh-heldout pairs (250 tokens);
  - compare, overlap: 10 s.

    python benchmarks/step_graph.py                         # the paper grid, estimated
    python benchmarks/step_graph.py --config tiny --from-study runs/tiny --workers 1,2
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

from rmtension.study.config import load_study_config
from rmtension.study.graph import backbone_of, backbone_params, critical_path, list_schedule
from rmtension.study.pipeline import Plan, build_plan
from rmtension.study.presets import resolve_config

TRAIN_PAIRS = {"helpful": 118_263, "harmless": 42_537, "mixed": 160_800}
TOKENS_PER_PAIR = 500
EVAL_TOKENS = 8.6e6
NEURON_TOKENS = 2_000 * 2 * 250
CURVE_TOKENS = 500 * 2 * 250
TABLE_SECONDS = 10.0


def estimate_seconds(plan: Plan, rate: float, overhead: float) -> dict[str, float]:
    """Seconds per step label under the module's assumptions."""
    backbones = backbone_of(plan)
    objective = {st.label: o for (b, o, s), st in plan.train.items()}
    cfg = plan.cfg
    out: dict[str, float] = {}
    for st in plan.steps:
        n = backbone_params(backbones[st.label]) or 1e8
        kind = st.kind
        if kind == "train":
            o = objective[st.label]
            epochs = 1 if o == "mixed" else 2
            flops = 6 * n * TRAIN_PAIRS[o] * 0.95 * TOKENS_PER_PAIR * epochs
        elif kind == "eval":
            flops = 2 * n * EVAL_TOKENS
        elif kind == "neurons":
            flops = 2 * n * NEURON_TOKENS * (2 if "change" in cfg.neurons.methods else 1)
        elif kind in ("neurons-backbone", "neuron-length"):
            flops = 2 * n * NEURON_TOKENS
        elif kind == "ablate-own":
            flops = 2 * n * EVAL_TOKENS * (1 + len([x for x in cfg.ablation.sets if x in ("own", "random")]))
        elif kind == "ablate-mixed":
            flops = 2 * n * EVAL_TOKENS * 5
        elif kind == "curves":
            cv = cfg.ablation.curves
            flops = 2 * n * CURVE_TOKENS * (1 + len(cv.methods) * len([k for k in cv.k if k > 0]))
        else:
            out[st.label] = TABLE_SECONDS
            continue
        out[st.label] = overhead + flops / rate
    return out


def measured_seconds(plan: Plan) -> dict[str, float]:
    """Seconds each step recorded in its step.json (a finished study in the plan's folder)."""
    out = {}
    for st in plan.steps:
        record = json.loads((st.folder / "step.json").read_text())
        out[st.label] = float(record["seconds"])
    return out


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="paper")
    ap.add_argument("--from-study", default=None, help="a finished study folder of --config: measured step times")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--rate", type=float, default=2e14, help="effective FLOP/s per worker (estimate)")
    ap.add_argument("--overhead", type=float, default=60.0, help="seconds per model step (estimate)")
    ap.add_argument("--workers", default="1,4,8,18,54", help="cluster sizes to schedule on")
    args = ap.parse_args()
    cfg = load_study_config(resolve_config(args.config))
    plan = build_plan(cfg, args.from_study or "OUT", args.data_dir)
    seconds = measured_seconds(plan) if args.from_study else estimate_seconds(plan, args.rate, args.overhead)
    kinds = Counter(st.kind for st in plan.steps)
    per_kind: dict[str, float] = defaultdict(float)
    for st in plan.steps:
        per_kind[st.kind] += seconds[st.label]
    print(f"study {cfg.name}: {len(cfg.backbones)} backbones × {len(cfg.objectives)} objectives × "
          f"{len(cfg.seeds)} seeds = {len(plan.cells())} cells, {len(plan.steps)} steps "
          f"({'measured' if args.from_study else 'estimated'} step times)")
    print("| kind | steps | total | share |")
    print("|---|---:|---:|---:|")
    total = sum(seconds.values())
    for kind, n in kinds.most_common():
        print(f"| {kind} | {n} | {hours(per_kind[kind])} | {per_kind[kind] / total:.0%} |")
    cp = critical_path(plan.steps, seconds)
    print(f"\nserial total: {hours(cp.total_seconds)}; critical path: {hours(cp.seconds)} "
          f"({len(cp.path)} steps); parallelism bound: {cp.total_seconds / cp.seconds:.1f}×")
    print("critical path: " + " → ".join(f"{x} ({hours(seconds[x])})" for x in cp.path))
    print("\n| workers | makespan (list schedule) | speed-up | lower bound max(critical path, total / workers) |")
    print("|---:|---:|---:|---:|")
    for w in (int(x) for x in args.workers.split(",")):
        span = list_schedule(plan.steps, seconds, w)
        print(f"| {w} | {hours(span)} | {cp.total_seconds / span:.1f}× | {hours(max(cp.seconds, cp.total_seconds / w))} |")


if __name__ == "__main__":
    main()
