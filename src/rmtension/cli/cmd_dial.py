"""``rmtension dial``: scale one neuron set of an RM by several factors; helpful vs harmless accuracy per factor.

The factors are the ablation code's scale mode, evaluated in one shared-work sweep
(``rmtension.ablation.dial``). With ``--helpful-rm`` and ``--harmless-rm`` the two single-objective
RMs are evaluated on the same items and ``dial.json`` states, with intervals, whether any factor
moves the RM beyond the segment between them (``rmtension.analysis.tradeoff``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rmtension import validate as V
from rmtension.cli.cmd_eval import add_rm_and_bench_options, load_benches, rm_record, scorer_config, scoring_choice
from rmtension.cli.common import add_json, check_out_dir, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dial", help="the tension dial: scale a neuron set by several factors, helpful vs harmless accuracy per factor",
        description="Evaluate an RM (typically the mixed one) with one neuron set's activations multiplied by each "
        "factor (0 = ablated, 1 = unchanged, >1 = amplified), sharing the work across factors, and write "
        "OUT/dial.json: per factor the helpful- and harmless-group accuracy with 95% intervals (plus OUT/baseline "
        "and OUT/sets/x<factor> as `rmtension ablate` writes them). With --helpful-rm and --harmless-rm, also the "
        "two single-objective RMs on the same items, the trade-off verdict (does any factor move the RM beyond "
        "the segment between them?) and OUT/tradeoff.png.")
    add_rm_and_bench_options(p)
    p.add_argument("--set", required=True, metavar="SETFILE", help="neuron-set file (`rmtension neurons select/combine`)")
    p.add_argument("--factors", type=V.factor_list, default="0,0.5,1,1.5,2", metavar="F",
                   help="scale factors, comma-separated (default 0,0.5,1,1.5,2)")
    p.add_argument("--helpful-rm", default=None, metavar="DIR", help="the helpful RM: reference point of the trade-off")
    p.add_argument("--harmless-rm", default=None, metavar="DIR", help="the harmless RM: reference point of the trade-off")
    p.add_argument("--no-share", action="store_true", help="run every factor as a full forward pass (for checks)")
    p.add_argument("--no-plot", action="store_true", help="do not draw OUT/tradeoff.png")
    add_json(p)
    p.set_defaults(func=run_dial_command)


def _reference(path: str, benches: list, args: argparse.Namespace) -> dict:
    """A single-objective RM evaluated on the dial's items (its own template, the dial's max length)."""
    from rmtension.evaluation.evaluate import evaluate, write_eval
    from rmtension.models.reward_model import load_reward_model

    model, tokenizer, info = load_reward_model(path)
    result = evaluate(model, tokenizer, benches, template=info.get("template", "hh"),
                      scorer_config=scorer_config(args), grouping=args.grouping)
    result.results["rm"] = {"path": str(Path(path).resolve()), "template": info.get("template", "hh"),
                            **{k: info.get(k) for k in ("backbone", "objective", "seed") if k in info}}
    return {"result": result, "info": info}


def run_dial_command(args: argparse.Namespace) -> int:
    from rmtension.ablation.dial import DIAL_FILE, check_factors, run_dial
    from rmtension.ablation.report import write_sweep
    from rmtension.errors import RmtensionError
    from rmtension.evaluation.evaluate import write_eval
    from rmtension.files import jsonable, write_json_atomic
    from rmtension.models.reward_model import load_reward_model
    from rmtension.neurons.setfile import load_set

    if (args.helpful_rm is None) != (args.harmless_rm is None):
        raise RmtensionError("the trade-off needs both reference RMs: give --helpful-rm and --harmless-rm together")
    check_out_dir(args.out)
    factors = check_factors(args.factors)
    neuron_set = load_set(args.set)  # a bad set file fails before any model is loaded
    benches = load_benches(args)
    model, tokenizer, info = load_reward_model(args.rm)
    template = scoring_choice(args, info, tokenizer)
    refs = {}
    if args.helpful_rm:
        refs = {"helpful": _reference(args.helpful_rm, benches, args),
                "harmless": _reference(args.harmless_rm, benches, args)}
    run = run_dial(model, tokenizer, benches, neuron_set, factors, template=template,
                   scorer_config=scorer_config(args), grouping=args.grouping, share=not args.no_share,
                   name=Path(args.set).stem)
    rm = rm_record(args, info, template)
    for r in [run.sweep.baseline] + [sr.result for sr in run.sweep.sets]:
        r.results["rm"] = rm
    out = Path(args.out)
    write_sweep(out, run.sweep, {"rm": rm, "mode": "scale", "factors": factors, "set_file": str(args.set),
                                 "benchmarks": [b.name for b in benches]})
    for k, v in refs.items():
        write_eval(out / "references" / k, v["result"])
    dial = {**run.dial, "rm": rm, "set_file": str(Path(args.set).resolve())}
    if refs:
        from rmtension.analysis.tradeoff import with_references

        dial = with_references(dial, {k: v["result"].results for k, v in refs.items()})
        dial["references"] = {k: {**dial["references"][k], "rm": v["result"].results["rm"]} for k, v in refs.items()}
    plot = None
    if refs and not args.no_plot:
        from rmtension.report.build import figure_bytes
        from rmtension.report.tradeoff import tradeoff_figure
        from rmtension.files import write_atomic

        data = figure_bytes(tradeoff_figure([dial], [Path(args.set).stem]), "png")
        plot = write_atomic(out / "tradeoff.png", lambda fh: fh.write(data), binary=True)
    write_json_atomic(out / DIAL_FILE, jsonable(dial))
    if args.json:
        print_json(jsonable({"out": str(out / DIAL_FILE), "factors": factors, "points": dial["points"],
                    "tradeoff": dial.get("tradeoff"), "factor_one_exact": dial["factor_one_exact"]}))
        return 0
    print(f"dial of {len(neuron_set)} neurons ({Path(args.set).name}) on {', '.join(b.name for b in benches)}:")
    for p in dial["points"]:
        g, ci = p["groups"], p.get("groups_ci95", {})

        def cell(name: str) -> str:
            v = g.get(name)
            iv = ci.get(name) or {}
            if v is None:
                return f"{name} n/a"
            return f"{name} {v:.3f}" + (f" [{iv['low']:.3f}, {iv['high']:.3f}]" if "low" in iv else "")
        print(f"  x{p['factor']:<6g} {cell('helpful')}  {cell('harmless')}")
    if "tradeoff" in dial:
        print(f"trade-off: {dial['tradeoff']['verdict']} — {dial['tradeoff']['reason']}")
    print(f"wrote {out / DIAL_FILE}" + (f" and {plot}" if plot else ""))
    return 0
