"""``rmtension eval``: score an RM on benchmarks and write results.json + items.jsonl."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rmtension.bench.groups import DEFAULT_GROUPING, GROUPINGS, load_group_overrides
from rmtension.bench.loaders import BENCHMARKS, load_benchmark, rm_heldout_split, subsample
from rmtension.cli.common import add_data_dir, add_json, add_progress, check_out_dir, print_json, show_progress
from rmtension import names as N, validate as V
from rmtension.errors import RmtensionError

if TYPE_CHECKING:
    from rmtension.evaluation.scorer import ScorerConfig


def add_scorer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=V.positive_int, default=16, help="texts per forward pass (default 16)")
    p.add_argument("--max-length", type=V.positive_int, default=None,
                   help="longest input in tokens; longer texts are cut from the left (default: the RM's training "
                   "max length from its rmtension.json, else the model's limit)")
    p.add_argument("--dtype", choices=N.DTYPES, default="float32",
                   help="float32, or bf16/fp16 autocast (default float32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_progress(p)
    add_shared_prompt_option(p)


def add_shared_prompt_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-shared-prompt", action="store_true",
                   help="score every text in full instead of computing a prompt shared by several texts once "
                   "(same scores; for checks, and what families other than GPT-2/Llama/Gemma 3 get anyway)")


def scorer_config(args: argparse.Namespace) -> ScorerConfig:
    from rmtension.evaluation.scorer import ScorerConfig  # torch: only when something is scored

    return ScorerConfig(batch_size=args.batch_size, max_length=args.max_length, dtype=args.dtype,
                        device=args.device, progress=show_progress(args),
                        shared_prompt=not getattr(args, "no_shared_prompt", False))


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar: loading an RM folder is quick, and the
    bar would bury this command's own output (and a one-line error) under progress noise."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def add_rm_and_bench_options(p: argparse.ArgumentParser) -> None:
    """The options every command that scores an RM on benchmarks shares (eval, ablate)."""
    p.add_argument("--rm", required=True, help="RM folder (from `rmtension train`, or any sequence-classification "
                   "model with one output)")
    p.add_argument("--bench", action="append", required=True, metavar="NAME_OR_FILE",
                   help=f"benchmark: {', '.join(BENCHMARKS.names())} (optionally NAME:subset,subset) or a generic "
                   "benchmark file; repeat for several")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-items", type=V.positive_int, default=None, metavar="N",
                   help="at most N items per subset (a seeded, stable sample)")
    p.add_argument("--sample-seed", type=V.seed, default=0)
    p.add_argument("--template", default=None, help="override the RM's text template: hh or chat (the tokenizer's "
                   "chat template); default: the one in its rmtension.json, hh for an RM without one")
    p.add_argument("--groups", default=None, metavar="FILE", help="JSON/YAML {subset: helpful|harmless} overrides")
    p.add_argument("--grouping", choices=tuple(GROUPINGS), default=DEFAULT_GROUPING,
                   help="which subsets enter the helpful/harmless group means: paper (default: the paper's task "
                   "table, without RewardBench hep-*, RM-Bench code and RewardBench 2 Ties, RM-Bench math and "
                   "RewardBench 2 Math averaged into one Math task) or all (every subset)")
    add_data_dir(p)
    add_scorer_options(p)


def add_ablation_mode_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How ablated neurons are changed (eval --ablate, ablate): the same four options for both."""
    a = p.add_argument_group("ablation")
    a.add_argument("--mode", choices=N.ABLATION_MODES, default="zero",
                   help="zero (default, the paper), mean (replace by the mean from --means) or scale (by --factor)")
    a.add_argument("--factor", type=V.finite_float, default=None, help="scale mode: multiply the activations by this")
    a.add_argument("--means", default=None, metavar="STATS_FILE",
                   help="mean mode: statistics file (`rmtension neurons score`) whose per-neuron means replace them")
    a.add_argument("--means-pool", choices=N.MEANS_POOLS, default="all",
                   help="mean mode: tokens the means are taken over (default all)")
    return a


def load_benches(args: argparse.Namespace) -> list:
    """The --bench benchmarks, with --groups overrides applied and --max-items sampling.

    ``hh-heldout`` is carved with the split --rm was trained with (its record), so that it holds
    no prompt the RM was trained on; an RM without a recorded split is refused for it.
    """
    if args.groups:
        load_group_overrides(args.groups)
    split = rm_heldout_split(args.rm, args.bench)
    return [subsample(load_benchmark(b, args.data_dir, split), args.max_items, args.sample_seed) for b in args.bench]


def rm_record(args: argparse.Namespace, info: dict, template: str) -> dict:
    """What results.json says about the RM that was scored."""
    return {"path": str(Path(args.rm).resolve()), "template": template,
            **{k: info.get(k) for k in ("backbone", "objective", "seed") if k in info}}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a reward model on benchmarks",
                       description="Score every response of every benchmark item once (length-sorted batches), "
                       "apply each subset's metric, and write OUT/results.json and OUT/items.jsonl.")
    add_rm_and_bench_options(p)
    p.add_argument("--ablate", default=None, metavar="NEURONS_FILE",
                   help="ablate these neurons (a neuron-set file from `rmtension neurons select`) during scoring; "
                   "--mode says how (zero by default)")
    add_ablation_mode_options(p)
    p.add_argument("--format", action="append", default=None, choices=("rewardbench",),
                   help="also write results in a community format beside results.json: rewardbench "
                   "(OUT/rewardbench.json, the file RewardBench's leaderboard tooling reads); repeatable")
    add_json(p)
    p.set_defaults(func=run_eval)


def scoring_choice(args: argparse.Namespace, info: dict, tokenizer: Any) -> str:
    """The template to score --rm with; sets args.max_length to the RM's training max length when not
    given. Says on stderr what was chosen when it was not given (see models.portable.scoring_defaults)."""
    import sys

    from rmtension.models.portable import scoring_defaults

    chosen = scoring_defaults(args.rm, info, tokenizer, args.template, args.max_length)
    for note in chosen.notes:
        print(f"note: {note}", file=sys.stderr)
    args.max_length = chosen.max_length
    return chosen.template


def run_eval(args: argparse.Namespace) -> int:
    from rmtension.evaluation.evaluate import evaluate, write_eval
    from rmtension.models.reward_model import load_reward_model

    if not args.ablate and (args.mode != "zero" or args.factor is not None or args.means is not None):
        raise RmtensionError("--mode, --factor and --means say how to ablate: give the neurons with --ablate FILE")
    check_out_dir(args.out)
    if args.format:
        from rmtension.evaluation.formats import check_formats

        check_formats(args.format, args.bench)
    benches = load_benches(args)
    with quiet_model_loading():
        model, tokenizer, info = load_reward_model(args.rm)
    template = scoring_choice(args, info, tokenizer)
    ablation_ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    ablation_meta: Any = None
    if args.ablate:
        from rmtension.ablation.ablate import ablation_from_file

        ablation_ctx, ablation_meta = ablation_from_file(model, args.ablate, args.mode, factor=args.factor,
                                                         means=args.means, means_pool=args.means_pool)
    with ablation_ctx:
        result = evaluate(model, tokenizer, benches, template=template, scorer_config=scorer_config(args),
                          grouping=args.grouping)
    result.results["rm"] = rm_record(args, info, template)
    result.results["ablation"] = ablation_meta
    write_eval(args.out, result)
    if args.format:
        from rmtension.evaluation.formats import model_name, rewardbench_chat_template, write_formats

        write_formats(args.out, args.format, result.results,
                      {"model": model_name(args.rm), "chat_template": rewardbench_chat_template(tokenizer, template)})
    res = result.results
    if args.json:
        print_json({"out": args.out, "results": res})
        return 0
    print(f"group means under grouping {res['grouping']!r}")
    for name, entry in res["benchmarks"].items():
        print(f"{name}: {entry['aggregate']['items']} items; group means: {_groups_text(entry)}")
        for sub, s in entry["subsets"].items():
            score = "n/a" if s["score"] is None else f"{s['score']:.3f}{_ci_text(s.get('ci95'))}"
            counted = "" if s.get("in_group_mean", True) else ", not in group means"
            print(f"  {sub:28s} {s['metric']:16s} {score}  (n={s['n']}, {s['group']}{counted})")
            if s.get("strict_score") is not None:
                print(f"  {'':28s} {'strict':16s} {s['strict_score']:.3f}{_ci_text(s.get('strict_ci95'))}")
            length = length_text(s, entry.get("length_unit", "tokens"))
            if length:
                print(f"  {'':28s} {length}")
        headline = _aggregate_line(entry["aggregate"], entry.get("aggregate_ci95") or {})
        if headline:
            print(f"  {headline}")
    if len(res["benchmarks"]) > 1:
        print(f"all benchmarks, {len(res['tasks'])} tasks; group means: {_groups_text(res)}")
    print(f"wrote {Path(args.out) / 'results.json'} and items.jsonl")
    return 0


def _num(v: Any, sign: bool = False) -> str:
    return "n/a" if v is None else (f"{v:+.3f}" if sign else f"{v:.3f}")


def _pair_ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def length_text(s: dict[str, Any], unit: str = "tokens") -> str:
    """One subset's length controls in a line: what longer-/shorter-wins would score, how the
    margins track length (Spearman, 95% CI), and the accuracy on length-matched pairs."""
    base = s.get("length_baseline")
    if not base:
        return ""
    rho = s.get("margin_length_spearman") or {}
    lm = s.get("length_matched") or {}
    tol = lm.get("tolerance")
    matched = (f"matched(±{tol:.0%}) {_num(lm.get('score'))}{_ci_text(_as_ci(lm.get('ci95')))} (n={lm.get('n', 0)} pairs"
               f" of {(lm.get('all_pairs') or {}).get('n', '?')})") if tol is not None else ""
    return (f"length ({unit}): longer-wins {_num(base.get('longer'))}, shorter-wins {_num(base.get('shorter'))}; "
            f"ρ(margin, Δlen) {_num(rho.get('value'), True)}{_pair_ci(rho.get('ci95'))}; {matched}")


def _as_ci(pair: Any) -> dict | None:
    return {"low": pair[0], "high": pair[1]} if pair and pair[0] is not None else None


def _groups_text(entry: dict[str, Any]) -> str:
    cis = entry.get("groups_ci95", {})
    lengths = entry.get("groups_length", {})

    def baseline(k: str) -> str:
        b = (lengths.get(k) or {}).get("length_baseline") or {}
        return f" (longer-wins {_num(b.get('longer'))})" if b.get("longer") is not None else ""

    parts = ", ".join(f"{k} {v:.3f}{_ci_text(cis.get(k))}{baseline(k)}" for k, v in entry["groups"].items()
                      if v is not None)
    return parts or "n/a"


def _ci_text(ci: dict | None) -> str:
    if not ci or ci.get("low") is None:
        return ""
    return f" [{ci['low']:.3f}, {ci['high']:.3f}]"


def _aggregate_line(agg: dict[str, Any], cis: dict[str, Any]) -> str:
    """The benchmark's own headline numbers: RM-Bench hard/normal/easy, RewardBench sections, overall."""
    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    parts = [f"{k} {num(agg[k])}{_ci_text(cis.get(k))}" for k in ("hard", "normal", "easy", "average") if k in agg]
    sections_ci = cis.get("sections") or {}
    parts += [f"{k} {num(v)}{_ci_text(sections_ci.get(k))}" for k, v in (agg.get("sections") or {}).items()]
    if "overall" in agg:
        parts.append(f"overall {num(agg['overall'])}{_ci_text(cis.get('overall'))}")
    return ", ".join(parts)
