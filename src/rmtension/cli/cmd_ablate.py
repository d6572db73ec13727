"""``rmtension ablate``: evaluate an RM under many neuron ablations at once (a sweep), or an ablation curve.

Sets come from neuron-set files (``--sets``), size-matched random controls of set files
(``--random-like`` × ``--seeds``), and top-k% curves of score files (``--scores`` × ``--k``, for
the file's method or ``--methods``). All of them are evaluated in one sweep that shares the
tokenisation, the batches, the unablated baseline and the layers below each set's lowest ablated
layer (see ``rmtension.ablation.sweep``). Output layout: ``rmtension.ablation.report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rmtension.cli.cmd_eval import (add_ablation_mode_options, add_rm_and_bench_options, load_benches, rm_record,
                                    scorer_config, scoring_choice)
from rmtension import names as N, validate as V
from rmtension.cli.common import add_hidden_alias, add_json, check_out_dir, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate", help="evaluate an RM with neuron sets ablated (sweeps, random controls, curves over k)",
        description="Evaluate a reward model unablated and with each neuron set ablated (zero, mean or scale), "
        "sharing the work the sets have in common, and write OUT/baseline, OUT/sets/NAME (results.json + "
        "items.jsonl each, as `rmtension eval`), OUT/sweep.json and OUT/sweep.csv (per set and subset: score "
        "and delta vs. the baseline).")
    add_rm_and_bench_options(p)
    g = p.add_argument_group("neuron sets (at least one source)")
    g.add_argument("--sets", nargs="+", default=[], metavar="FILE", help="neuron-set files (`rmtension neurons select`)")
    g.add_argument("--random-like", action="append", default=[], metavar="FILE",
                   help="add size-matched random sets like this set file, one per --seed entry (repeatable)")
    g.add_argument("--seed", dest="seeds", type=V.seed_list, default="0", metavar="SEEDS",
                   help="seeds of the random sets, comma-separated (default 0)")
    add_hidden_alias(g, "--seeds", "seeds", type=V.seed_list)
    g.add_argument("--match", dest="random_match", choices=N.RANDOM_MATCH, default="per-layer",
                   help="random sets keep the count of every layer (default) or only the total")
    add_hidden_alias(g, "--random-match", "random_match", choices=N.RANDOM_MATCH)
    g.add_argument("--scores", action="append", default=[], metavar="SCORES_FILE",
                   help="curve mode: a score file from `rmtension neurons score`; one set per --top-percent entry (repeatable)")
    g.add_argument("--top-percent", dest="k", type=V.percent_list, default="0,5,10,20,30", metavar="K",
                   help="curve mode: top-K%% values, comma-separated (default 0,5,10,20,30)")
    add_hidden_alias(g, "--k", "k", type=V.percent_list)
    g.add_argument("--methods", default=None,
                   help="curve mode: score methods to select by, comma-separated (default: each file's own; "
                   "random uses --seed; change needs statistics recorded with the base model)")
    g.add_argument("--per-layer", action="store_true", help="curve mode: top k%% of every layer instead of overall")
    a = add_ablation_mode_options(p)
    a.add_argument("--no-share", action="store_true",
                   help="run every set as a full forward pass (for checking the shared-work sweep)")
    add_json(p)
    p.set_defaults(func=run_ablate)


def _named_sets(args: argparse.Namespace) -> list:
    from rmtension.ablation.named_sets import curve_sets, random_controls, sets_from_files, unique_names
    from rmtension.errors import RmtensionError

    if not (args.sets or args.random_like or args.scores):
        raise RmtensionError("no neuron sets to ablate: give --sets FILE..., --random-like FILE or --scores FILE")
    seeds = args.seeds  # parsed and checked by V.seed_list
    named = sets_from_files(args.sets)
    named += random_controls(args.random_like, seeds, args.random_match)
    if args.scores:
        ks = args.k  # parsed and checked by V.percent_list
        methods = [m for m in args.methods.split(",") if m] if args.methods else None
        for f in args.scores:
            curve = curve_sets(f, ks, methods, seeds, args.per_layer)
            prefix = f"{Path(f).stem}:" if len(args.scores) > 1 else ""
            named += [(prefix + n, s) for n, s in curve]
    return unique_names(named)


def run_ablate(args: argparse.Namespace) -> int:
    from rmtension.ablation.ablate import prepare
    from rmtension.ablation.report import write_sweep
    from rmtension.ablation.sweep import sweep
    from rmtension.models.reward_model import load_reward_model
    from rmtension.neurons.sites import model_sites

    check_out_dir(args.out)
    named = _named_sets(args)  # set files fail before any model or benchmark is loaded
    benches = load_benches(args)
    model, tokenizer, info = load_reward_model(args.rm)
    template = scoring_choice(args, info, tokenizer)
    ms = model_sites(model)
    ablations = [prepare(ms, s, args.mode, factor=args.factor, means=args.means, means_pool=args.means_pool, name=n)
                 for n, s in named]
    result = sweep(model, tokenizer, benches, ablations, template=template, scorer_config=scorer_config(args),
                   share=not args.no_share, grouping=args.grouping)
    rm = rm_record(args, info, template)
    for r in [result.baseline] + [sr.result for sr in result.sets]:
        r.results["rm"] = rm
    write_sweep(args.out, result, {"rm": rm, "mode": args.mode, "factor": args.factor, "means": args.means,
                                   "benchmarks": [b.name for b in benches], "architecture": ms.describe()})
    st = result.stats
    if args.json:
        print_json({"out": args.out, "sets": len(ablations), "sharing": st.to_dict()})
        return 0
    print(f"baseline + {len(ablations)} sets on {', '.join(b.name for b in benches)}: {st.layer_forwards} of "
          f"{st.layer_forwards_separate} layer forwards of separate runs (work ratio {st.work_ratio:.2f}), {st.seconds:.1f}s")
    for sr in result.sets:
        d = sr.result.results["delta_vs_baseline"]
        parts = []
        for bname, e in d.items():
            g = ", ".join(f"{k} {v:+.3f}" for k, v in e["groups"].items() if v is not None)
            parts.append(f"{bname}: {g or 'n/a'} (lost {e['items_lost']}, gained {e['items_gained']})")
        print(f"  {sr.ablation.name:32s} {sr.ablation.count:7d} neurons  " + "; ".join(parts))
    print(f"wrote {Path(args.out) / 'sweep.json'}, sweep.csv, baseline/ and sets/")
    return 0
