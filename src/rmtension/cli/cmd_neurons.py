"""``rmtension neurons``: score an RM's MLP neurons, select the top k%, compare and combine sets.

Files (formats documented in ``rmtension.neurons.stats`` and ``rmtension.neurons.setfile``):
a *score file* (.npz) holds the streamed statistics of one pass plus one method's scores, so
``select --method`` can re-score without running the model; a *neuron-set file* (.json) lists
the selected neurons per layer with the metadata of how they were chosen.
"""

from __future__ import annotations

import argparse
from typing import Any

from rmtension.cli.cmd_eval import add_shared_prompt_option
from rmtension.cli.common import add_data_dir, add_json, add_progress, check_out_file, print_json, show_progress
from rmtension import names as N, validate as V

METHODS, POOLS, OPS = N.SCORE_METHODS, N.SCORE_POOLS, N.SET_OPS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("neurons", help="score, select, compare and combine objective-oriented neurons",
                       description="Stage 4 of the study: per-neuron statistics of an RM on preference data, "
                       "top-k% selection, overlap between neuron sets, and set algebra for ablation.")
    nsub = p.add_subparsers(dest="neurons_command", metavar="SUBCOMMAND")
    nsub.required = True
    _add_score(nsub)
    _add_select(nsub)
    _add_compare(nsub)
    _add_combine(nsub)
    _add_random_like(nsub)
    _add_show(nsub)
    _add_sites(nsub)


def _add_force(s: argparse.ArgumentParser) -> None:
    s.add_argument("--force", "--overwrite", action="store_true", help="replace OUT if it already exists")


# ----------------------------------------------------------------------------- score


def _add_score(nsub) -> None:
    s = nsub.add_parser(
        "score", help="one pass over preference data: per-neuron statistics and scores",
        description="Run the RM over the chosen and rejected texts of a preference source (one forward pass, "
        "streamed float64 statistics over real tokens only) and write a score file (.npz): the statistics, "
        "which every method can be computed from, plus the chosen method's per-neuron scores.")
    s.add_argument("--rm", required=True, help="reward-model folder (from `rmtension train`)")
    s.add_argument("--data", required=True, help="preference source name (e.g. hh-rlhf:helpful-base@test) or file")
    add_data_dir(s)
    s.add_argument("--method", default="magnitude", choices=METHODS,
                   help="score method (default: magnitude, the paper's signed mean); change also runs the "
                   "untrained base model; attribution / attribution-abs (activation × gradient of the pair margin "
                   "r(chosen) − r(rejected), mean over pairs, signed / absolute) also run a gradient pass")
    s.add_argument("--site", default="act", choices=N.SITES,
                   help="act = activation-function output (the paper); down_in = input of the down projection "
                   "(act(gate)*up for gated MLPs; the same as act for GPT-2/BERT)")
    s.add_argument("--pool", default="group-mean", choices=POOLS,
                   help="tokens scored: group-mean (default; the paper: chosen and rejected texts scored apart, "
                   "then averaged), all (both pooled), chosen or rejected texts")
    s.add_argument("--max-pairs", type=V.positive_int, help="use at most N pairs (a seeded hashed sample over all subsets)")
    s.add_argument("--split", choices=("all", "train", "heldout"), default="all",
                   help="score only one side of the prompt-hash train/held-out split the RM was trained with "
                   "(its rmtension.json; default: all pairs)")
    s.add_argument("--batch-size", type=V.positive_int, default=16, help="texts per forward pass (default 16)")
    s.add_argument("--max-length", type=V.positive_int, help="cut longer texts from the left (default: the model's limit)")
    s.add_argument("--dtype", default="float32", choices=N.DTYPES)
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    s.add_argument("--seed", type=V.seed, default=0, help="seed of the random method")
    s.add_argument("--with-change", action="store_true",
                   help="also record the change statistics (runs the base model) whatever the method")
    s.add_argument("--with-attribution", action="store_true",
                   help="also record the attribution sums (a gradient pass) whatever the method")
    s.add_argument("--attr-tokens", choices=N.ATTRIBUTION_TOKENS, default="response",
                   help="attribution: sum over the response tokens (after the pair's common token prefix; default) "
                   "or all real tokens")
    s.add_argument("--ig-steps", type=V.nonneg_int, default=0,
                   help="attribution: integrated gradients with N midpoint steps (0, the default: plain activation × "
                   "gradient; N costs N forward+backward passes per batch)")
    s.add_argument("--base", help="backbone of the untrained base model (default: the one in the RM's rmtension.json)")
    s.add_argument("--backbone-baseline", action="store_true",
                   help="score the RM's untrained backbone (or --base) with a fresh head seeded with --seed instead of "
                   "the RM, on the same pairs with the same template: the baseline an RM's set is compared with "
                   "(`neurons compare --backbone`); not with --method change")
    s.add_argument("--chunk-pairs", type=V.positive_int, default=512, help="pairs per scorer call (bounds pending memory)")
    add_progress(s)
    add_shared_prompt_option(s)
    s.add_argument("--out", required=True, help="score file to write (.npz)")
    _add_force(s)
    add_json(s)
    s.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from rmtension.neurons.pipeline import ScoreRequest, score_rm
    from rmtension.neurons.stats import save_stats

    check_out_file(args.out, replace=args.force)
    req = ScoreRequest(rm=args.rm, data=args.data, method=args.method, site=args.site, pool=args.pool,
                       data_dir=args.data_dir, max_pairs=args.max_pairs, split=args.split, batch_size=args.batch_size,
                       max_length=args.max_length, dtype=args.dtype, device=args.device, seed=args.seed,
                       with_change=args.with_change, base=args.base, chunk_pairs=args.chunk_pairs,
                       progress=show_progress(args), shared_prompt=not args.no_shared_prompt,
                       backbone_baseline=args.backbone_baseline, head_seed=args.seed,
                       with_attribution=args.with_attribution, attr_tokens=args.attr_tokens, ig_steps=args.ig_steps)
    stats, scores = score_rm(req)
    stats.meta.update(_created("neurons score"))
    save_stats(args.out, stats, scores, {"method": args.method, "pool": args.pool, "seed": args.seed})
    summary = {"out": args.out, "method": args.method, "pool": args.pool, **stats.summary(),
               "pairs": stats.meta.get("pairs"), "accuracy": stats.meta.get("accuracy")}
    if args.json:
        print_json(summary)
    else:
        print(f"scored {stats.layers}×{stats.neurons} neurons ({args.site}) of {args.rm} on {summary['pairs']} pairs "
              f"of {args.data} ({sum(stats.tokens.values())} tokens, pair accuracy {summary['accuracy']:.3f}); "
              f"method {args.method} → {args.out}")
    return 0


# ----------------------------------------------------------------------------- select


def _add_select(nsub) -> None:
    s = nsub.add_parser(
        "select", help="keep the top K%% neurons of a score file as a neuron-set file",
        description="Select the neurons with the highest scores: top K% over all layers × neurons at once "
        "(the paper) or within each layer (--per-layer). Ties go to the lower layer, then the lower index.")
    s.add_argument("--scores", required=True, help="score file from `rmtension neurons score`")
    s.add_argument("--top-percent", type=V.percent, default=10.0, help="K (default 10)")
    s.add_argument("--per-layer", action="store_true", help="top K%% of every layer instead of over all layers")
    s.add_argument("--method", choices=METHODS, help="re-score from the file's statistics with this method")
    s.add_argument("--pool", choices=POOLS, help="re-score over these tokens (default: as in the file)")
    s.add_argument("--seed", type=V.seed, help="seed of the random method (default: as in the file)")
    s.add_argument("--rule", choices=("count", "percentile"), default="count",
                   help="count: exactly floor(total × K / 100) neurons, ties to the lower layer/index (default); "
                   "percentile: the paper's score >= np.percentile(scores, 100 − K), ties all kept")
    s.add_argument("--out", required=True, help="neuron-set file to write (.json)")
    _add_force(s)
    add_json(s)
    s.set_defaults(func=run_select)


def run_select(args: argparse.Namespace) -> int:
    from rmtension.errors import RmtensionError
    from rmtension.neurons.scores import compute_scores
    from rmtension.neurons.sets import select_top
    from rmtension.neurons.setfile import save_set
    from rmtension.neurons.stats import load_stats

    check_out_file(args.out, replace=args.force)
    stats, scores = load_stats(args.scores)
    saved = stats.meta.get("scores") or {}
    method = args.method or saved.get("method")
    # a score file without a recorded pool predates group-mean and was scored over all tokens
    pool = args.pool or saved.get("pool") or ("all" if saved else "group-mean")
    seed = args.seed if args.seed is not None else int(saved.get("seed", 0) or 0)
    if method is None:
        raise RmtensionError(f"{args.scores} holds statistics but no scores; pass --method")
    if scores is None or (method, pool, seed) != (saved.get("method"), saved.get("pool", "all"), int(saved.get("seed", 0) or 0)):
        scores = compute_scores(stats, method, pool, seed)
    meta = {key: stats.meta.get(key) for key in ("rm", "data", "backbone", "objective")}
    meta.update({"method": method, "pool": pool, "site": stats.site, "seed": seed if method == "random" else None,
                 "scores_file": args.scores, **_created("neurons select")})
    chosen = select_top(scores, args.top_percent, per_layer=args.per_layer, rule=args.rule, meta=meta)
    save_set(args.out, chosen)
    out = {"selected": len(chosen), "total": chosen.total, "per_layer": {str(i): c for i, c in enumerate(chosen.per_layer())},
           "method": method, "pool": pool, "site": stats.site, "k": args.top_percent,
           "selection": chosen.meta["selection"], "out": args.out}
    if args.json:
        print_json(out)
    else:
        print(f"selected {out['selected']} of {out['total']} neurons (top {args.top_percent:g}% {out['selection']}, "
              f"{method}, {stats.site}) → {args.out}")
    return 0


# ----------------------------------------------------------------------------- compare


def _add_compare(nsub) -> None:
    s = nsub.add_parser(
        "compare", help="overlap figures of two neuron sets (and the mixed RM's retention)",
        description="Overlap of neuron sets A and B, per neuron: sizes, shared, A-only, B-only, union, Jaccard, "
        "overlap share |A∩B|/min(|A|,|B|), per-layer counts and location in early/middle/late thirds of "
        "the layers. With --mixed M: the paper's neuron retention |M ∩ (A ∪ B)| / |A ∪ B ∪ M| and the share "
        "of single-objective neurons the mixed RM keeps, |M ∩ (A ∪ B)| / |A ∪ B|.")
    s.add_argument("a", help="neuron-set file A (e.g. the helpful RM's)")
    s.add_argument("b", help="neuron-set file B (e.g. the harmless RM's)")
    s.add_argument("--mixed", help="neuron-set file of the mixed RM")
    s.add_argument("--backbone", help="neuron-set file of the untrained backbone (`neurons score --backbone-baseline`): "
                   "Jaccard of every set with it")
    add_json(s)
    s.set_defaults(func=run_compare)


def compare_sets(a, b, mixed=None, backbone=None) -> dict[str, Any]:
    """The ``compare --json`` object (pure; exposed for the report)."""
    from rmtension.neurons.sets import location, overlap, retention, shared

    both = shared(a, b)
    out: dict[str, Any] = overlap(a, b)
    out["sites"] = {"a": a.meta.get("site"), "b": b.meta.get("site")}
    out["per_layer"] = {"a": a.per_layer(), "b": b.per_layer(), "shared": both.per_layer()}
    out["location"] = {"a": location(a), "b": location(b), "shared": location(both)}
    if mixed is not None:
        out["mixed"] = len(mixed)
        out["retention"] = retention(mixed, a, b)
    if backbone is not None:
        named = {"a": a, "b": b, **({"mixed": mixed} if mixed is not None else {})}
        out["backbone_baseline"] = {k: {f: v for f, v in overlap(x, backbone).items() if f in ("jaccard", "shared", "a", "b")}
                                    for k, x in named.items()}
    return out


def run_compare(args: argparse.Namespace) -> int:
    from rmtension.neurons.setfile import load_set

    a, b = load_set(args.a), load_set(args.b)
    mixed = load_set(args.mixed) if args.mixed else None
    backbone = load_set(args.backbone) if args.backbone else None
    out = compare_sets(a, b, mixed, backbone)
    if args.json:
        print_json(out)
        return 0
    share = "n/a" if out["overlap_share"] is None else f"{out['overlap_share']:.1%}"
    print(f"A {out['a']}, B {out['b']}: shared {out['shared']}, A-only {out['a_only']}, B-only {out['b_only']}, "
          f"Jaccard {out['jaccard']:.3f}, overlap share {share}")
    for name in ("a", "b", "shared"):
        loc = out["location"][name]
        print(f"  {name:6s} " + "  ".join(f"{third} {loc[third]['count']}" for third in ("early", "middle", "late")))
    if mixed is not None:
        ret = out["retention"]

        def pct(x):
            return "n/a" if x is None else f"{x:.1%}"
        print(f"  mixed RM keeps {ret['retained']} of {ret['single_union']} single-objective neurons "
              f"({pct(ret['retention_of_single'])}); retention (the paper's, over |A ∪ B ∪ M| = "
              f"{ret['all_union']}) {pct(ret['retention'])}")
    if backbone is not None:
        print("  vs the untrained backbone's set: " + ", ".join(
            f"{k} Jaccard {v['jaccard']:.3f} ({v['shared']} shared)" for k, v in out["backbone_baseline"].items()))
    return 0


# ----------------------------------------------------------------------------- combine / random-like


def _add_combine(nsub) -> None:
    s = nsub.add_parser("combine", help="set algebra on two neuron sets: shared, a-only, b-only, union",
                        description="Write A ∩ B (shared), A \\ B (a-only), B \\ A (b-only) or A ∪ B (union), "
                        "computed per neuron (a layer where one set has nothing contributes nothing to 'shared').")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--op", required=True, choices=OPS)
    s.add_argument("--out", required=True, help="neuron-set file to write")
    _add_force(s)
    add_json(s)
    s.set_defaults(func=run_combine)


def run_combine(args: argparse.Namespace) -> int:
    from rmtension.neurons.sets import combine
    from rmtension.neurons.setfile import load_set, save_set

    check_out_file(args.out, replace=args.force)
    result = combine(load_set(args.a), load_set(args.b), args.op)
    result = result.with_meta(selection=f"combine:{args.op}", **_created("neurons combine"))
    save_set(args.out, result)
    return _report_set(args, result, f"{args.op} of {args.a} and {args.b}")


def _add_random_like(nsub) -> None:
    s = nsub.add_parser("random-like", help="a seeded random neuron set of the same size as a given one",
                        description="Draw a random control set with the same number of neurons per layer "
                        "(default) or the same total, from a seeded generator.")
    s.add_argument("like", help="neuron-set file whose size to match")
    s.add_argument("--seed", type=V.seed, required=True)
    s.add_argument("--match", choices=N.RANDOM_MATCH, default="per-layer")
    s.add_argument("--disjoint", action="store_true", help="draw only among neurons not in the given set")
    s.add_argument("--out", required=True, help="neuron-set file to write")
    _add_force(s)
    add_json(s)
    s.set_defaults(func=run_random_like)


def run_random_like(args: argparse.Namespace) -> int:
    from rmtension.neurons.sets import random_like
    from rmtension.neurons.setfile import load_set, save_set

    check_out_file(args.out, replace=args.force)
    result = random_like(load_set(args.like), args.seed, match=args.match, disjoint=args.disjoint)
    result = result.with_meta(**_created("neurons random-like"))
    save_set(args.out, result)
    return _report_set(args, result, f"random set like {args.like} (seed {args.seed}, {args.match})")


def _report_set(args: argparse.Namespace, s, what: str) -> int:
    out = {"selected": len(s), "total": s.total, "per_layer": {str(i): c for i, c in enumerate(s.per_layer())},
           "out": args.out}
    if args.json:
        print_json(out)
    else:
        print(f"{what}: {len(s)} neurons → {args.out}")
    return 0


# ----------------------------------------------------------------------------- show / sites


def _add_show(nsub) -> None:
    s = nsub.add_parser("show", help="summarise a score file or a neuron-set file",
                        description="Print what a score file (.npz) or neuron-set file (.json) holds: metadata, "
                        "token counts, the chosen-vs-rejected RMSD (the paper's, of the dataset-mean activations, "
                        "and per pair), per-layer counts.")
    s.add_argument("file")
    add_json(s)
    s.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    if Path(args.file).suffix == ".json":
        from rmtension.neurons.sets import location
        from rmtension.neurons.setfile import load_set

        s = load_set(args.file)
        out: dict[str, Any] = {"kind": "neuron-set", "meta": s.meta, "layers": s.layers,
                               "neurons_per_layer": s.neurons_per_layer, "count": len(s), "per_layer": s.per_layer(),
                               "location": location(s)}
    else:
        from rmtension.neurons.stats import load_stats

        stats, scores = load_stats(args.file)
        out = {"kind": "neuron-stats", "meta": stats.meta, **stats.summary(), "has_scores": scores is not None}
    if args.json:
        print_json(out)
        return 0
    if out["kind"] == "neuron-set":
        print(f"{args.file}: {out['count']} of {out['layers']}×{out['neurons_per_layer']} neurons; per layer {out['per_layer']}")
    else:
        r = out["rmsd"]
        rm = "n/a" if r["all_layers"] is None else f"{r['all_layers']:.4g}"
        dm = out.get("rmsd_dataset_means")
        print(f"{args.file}: {out['layers']}×{out['neurons_per_layer']} neurons at {out['site']}; tokens {out['tokens']}; "
              f"chosen-vs-rejected RMSD of dataset means (the paper's) {'n/a' if dm is None else f'{dm:.4g}'}, "
              f"per pair (all layers, mean over {r['pairs']} pairs) {rm}")
    return 0


def _add_sites(nsub) -> None:
    s = nsub.add_parser("sites", help="show the neuron sites of an RM folder or backbone",
                        description="Which modules the act and down_in sites hook, the number of layers and "
                        "neurons per layer, for an RM folder or a backbone name.")
    s.add_argument("model", help="RM folder, or backbone (registered name, folder, hub id)")
    add_json(s)
    s.set_defaults(func=run_sites)


def run_sites(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rmtension.errors import RmtensionError
    from rmtension.models.reward_model import build_reward_model, load_reward_model
    from rmtension.neurons.sites import model_sites

    model = None
    if (Path(args.model) / "config.json").is_file():
        try:
            model = load_reward_model(args.model)[0]
        except RmtensionError:  # a backbone folder, not an RM: build the RM on it below
            model = None
    if model is None:
        model = build_reward_model(args.model, seed=0)[0]
    info = model_sites(model).describe()
    if args.json:
        print_json(info)
    else:
        print(f"{args.model}: {info['family']} ({info['model_type']}), {info['layers']} layers × "
              f"{info['neurons_per_layer']} neurons")
        for site, path in info["sites"].items():
            print(f"  layers.{{i}}.mlp.{site:8s} {path}")
        if info["down_in_equals_act"]:
            print("  (no gate: down_in is the same tensor as act)")
    return 0


def _created(command: str) -> dict[str, str]:
    from rmtension.neurons.setfile import created_by

    return created_by(command)
