"""``rmtension bench show``: the items, subsets and helpful/harmless groups of a benchmark."""

from __future__ import annotations

import argparse

from rmtension.bench.groups import load_group_overrides
from rmtension.bench.loaders import BENCHMARKS, load_benchmark
from rmtension.cli.common import add_data_dir, add_json, emit, print_json


def add_groups(p: argparse.ArgumentParser) -> None:
    p.add_argument("--groups", default=None, metavar="FILE",
                   help="JSON/YAML mapping {subset: helpful|harmless} overriding the built-in group table")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="inspect reward-model benchmarks (RewardBench, RM-Bench, ...)",
                       description="List the registered reward-model benchmarks and show what one holds: items per "
                       "subset, each subset's metric and its helpful/harmless group.")
    bsub = p.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    bsub.required = True
    show = bsub.add_parser("show", help="summarise a reward-model benchmark: items per subset and their groups",
                           description="Load a benchmark (from --data-dir, else the hub) and print its items per "
                           "subset, each subset's group (helpful or harmless) and metric, and the loader's notes.")
    show.add_argument("benchmark", help=f"a registered name ({', '.join(BENCHMARKS.names())}), "
                      "optionally NAME:subset,subset, or a generic benchmark file")
    add_data_dir(show)
    add_json(show)
    add_groups(show)
    show.set_defaults(func=run_show)
    ls = bsub.add_parser("list", help="list the registered reward-model benchmarks",
                         description="Print the names `--bench` and study configs accept, one a line.")
    add_json(ls)
    ls.set_defaults(func=lambda a: emit(a, BENCHMARKS.names(), "\n".join(BENCHMARKS.names())))


def run_show(args: argparse.Namespace) -> int:
    if args.groups:
        load_group_overrides(args.groups)
    bench = load_benchmark(args.benchmark, args.data_dir)
    summary = bench.to_summary()
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.benchmark}: {summary['items']} items "
          f"({summary['groups']['helpful']} helpful, {summary['groups']['harmless']} harmless)")
    for name, s in summary["subsets"].items():
        print(f"  {name:28s} {s['items']:6d} items  {s['group']:8s}  {s['metric']}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    return 0
