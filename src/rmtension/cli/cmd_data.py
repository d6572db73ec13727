"""``rmtension data show``: what a preference source holds and what was skipped, by reason."""

from __future__ import annotations

import argparse

from rmtension.cli.common import add_data_dir, add_json, emit, print_json
from rmtension import validate as V
from rmtension.data.sources import SOURCES, load_preferences
from rmtension.data.split import DEFAULT_HELDOUT_FRACTION, split_pairs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect preference data sources",
                       description="List the registered preference sources and show what one holds: records, "
                       "usable pairs, what was skipped and why, and the prompt-hash train/held-out split.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True
    show = dsub.add_parser("show", help="summarise a preference source: records, usable pairs, skips by reason",
                           description="Read a preference source (a registered name or a file/folder) and print "
                           "its records, usable pairs, skipped records by reason, per-subset counts and the "
                           "train/held-out split by prompt hash.")
    show.add_argument("source", help="a registered name (e.g. hh-rlhf:harmless-base, hh-rlhf:mixed[@test]) or a file/folder")
    add_data_dir(show)
    add_json(show)
    show.add_argument("--heldout-fraction", type=V.ratio, default=DEFAULT_HELDOUT_FRACTION,
                      help="also report the train/held-out split by prompt hash at this fraction")
    show.set_defaults(func=run_show)
    ls = dsub.add_parser("list", help="list registered source names",
                         description="Print the source names `--data` and study configs accept, with a description.")
    add_json(ls)
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    names = SOURCES.names()
    emit(args, {n: SOURCES.get(n).description for n in names},
         lambda: "\n".join(f"{n:40s} {SOURCES.get(n).description}" for n in names))
    return 0


def run_show(args: argparse.Namespace) -> int:
    data = load_preferences(args.source, args.data_dir)
    summary = data.to_summary()
    train, heldout = split_pairs(data.pairs, args.heldout_fraction)
    summary["split"] = {"heldout_fraction": args.heldout_fraction, "train": len(train), "heldout": len(heldout)}
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.source}: {summary['total']} records, {summary['usable']} usable pairs")
    for reason, n in summary["skipped"].items():
        print(f"  skipped {n:6d}  {reason}")
    if len(summary["subsets"]) > 1 or not summary["skipped"]:
        for name, rep in summary["subsets"].items():
            skipped = ", ".join(f"{k} {v}" for k, v in rep["skipped"].items()) or "none skipped"
            print(f"  {name:32s} {rep['total']:7d} records {rep['usable']:7d} usable ({skipped})")
    sp = summary["split"]
    print(f"  split by prompt hash: {sp['train']} train / {sp['heldout']} held out ({sp['heldout_fraction']:.0%})")
    for f in summary["files"]:
        print(f"  file: {f}")
    return 0
