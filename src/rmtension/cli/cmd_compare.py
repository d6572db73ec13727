"""``rmtension compare``: retention and calibration across the mixed, helpful and harmless RMs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rmtension.bench.groups import DEFAULT_GROUPING, GROUPINGS
from rmtension.cli.common import add_json, print_json
from rmtension import validate as V

FRACTION = "{:.3f}"
RETENTION_FIELDS = ("retention", "jaccard_helpful", "jaccard_harmless", "kept_helpful", "kept_harmless")
RETENTION_HEADERS = ["retention", "J(M,H)", "J(M,A)", "kept H", "kept A"]
RETENTION_LEGEND = ("retention = |C_M∩(C_H∪C_A)|/|C_H∪C_A|; J(M,X) = |C_M∩C_X|/|C_M∪C_X| (the paper's pairwise "
                    "retention); kept X = |C_M∩C_X|/|C_X|")
UNIT_TEXT = {"paper": "the paper's units (RM-Bench: same-style pairs; others: items, min chosen > max rejected)",
             "item": "whole items (right at --threshold; RM-Bench: all nine cells at 1.0)"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="behavioural retention and calibration of the mixed RM vs the single-objective RMs",
        description="Read eval folders (`rmtension eval --out DIR`) of the mixed, helpful and harmless RMs of one "
        "backbone and seed (roles, backbone and seed from each results.json; several seeds are grouped and "
        "summarised as mean ± std) and compute per task: retention |C_M ∩ (C_H ∪ C_A)| / |C_H ∪ C_A|, the "
        "paper's pairwise retention (Jaccard |C_M ∩ C_X| / |C_M ∪ C_X|, X = helpful or harmless), the share of "
        "each single RM's correct set the mixed RM keeps (|C_M ∩ C_X| / |C_X|), and the margins of items both a "
        "single RM and the mixed RM get right.")
    p.add_argument("dirs", nargs="*", metavar="OUT_DIR", help="eval folders; roles from their results.json")
    p.add_argument("--mixed", action="append", default=[], metavar="DIR", help="eval folder of a mixed RM (repeat "
                   "for several seeds, in the same order as --helpful and --harmless)")
    p.add_argument("--helpful", action="append", default=[], metavar="DIR", help="eval folder of a helpful RM")
    p.add_argument("--harmless", action="append", default=[], metavar="DIR", help="eval folder of a harmless RM")
    p.add_argument("--retention-unit", choices=("paper", "item"), default="paper",
                   help="what retention counts: 'paper' (default; as the paper's code: an RM-Bench item is its "
                   "three same-style pairs, every other item one unit right iff min(chosen) > max(rejected)) or "
                   "'item' (whole items right when their benchmark correctness reaches --threshold; an RM-Bench "
                   "item then needs all nine cells of its 3×3 matrix)")
    p.add_argument("--grouping", choices=tuple(GROUPINGS), default=DEFAULT_GROUPING,
                   help="which tasks enter the helpful/harmless group means: 'paper' (default; the paper's task "
                   "table: code subsets and RewardBench 2 Ties left out, the two Math subsets one task) or 'all'")
    p.add_argument("--threshold", type=V.fraction, default=1.0,
                   help="per-item correctness that counts as right (default 1.0: fully right) for calibration "
                   "and for --retention-unit item")
    p.add_argument("--margin", choices=("min-max", "mean"), default="min-max",
                   help="item margin: min(chosen) − max(rejected) (default) or mean(chosen) − mean(rejected)")
    p.add_argument("--bins", type=V.histogram_bins, default=20, help="histogram bins of the pooled calibration entries")
    p.add_argument("--intersect", action="store_true",
                   help="use the items common to the three RMs when their item sets differ (default: error)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the comparison as JSON to FILE")
    add_json(p)
    p.set_defaults(func=run_compare)


def _triples(args: argparse.Namespace):
    from rmtension.analysis.eval_runs import explicit_triple, load_eval_run, triples_from_records
    from rmtension.errors import RmtensionError

    counts = {len(args.mixed), len(args.helpful), len(args.harmless)}
    if len(counts) != 1:
        raise RmtensionError(f"--mixed, --helpful and --harmless must be given equally often (got "
                             f"{len(args.mixed)}, {len(args.helpful)}, {len(args.harmless)})")
    if not args.dirs and not args.mixed:
        raise RmtensionError("give eval folders (OUT_DIR...) or --mixed/--helpful/--harmless DIR")
    triples = triples_from_records([load_eval_run(d) for d in args.dirs]) if args.dirs else []
    for k, (m, h, a) in enumerate(zip(args.mixed, args.helpful, args.harmless)):
        triples.append(explicit_triple(load_eval_run(m), load_eval_run(h), load_eval_run(a), index=k))
    return triples


def run_compare(args: argparse.Namespace) -> int:
    from rmtension.analysis.compare import CompareOptions, compare
    from rmtension.files import write_json_atomic

    options = CompareOptions(unit=args.retention_unit, threshold=args.threshold, margin=args.margin, bins=args.bins,
                             intersect=args.intersect, grouping=args.grouping)
    result = compare(_triples(args), options)
    data = result.to_dict()
    if args.out:
        write_json_atomic(Path(args.out), data)
    if args.json:
        print_json(data)
    else:
        print(format_tables(data))
        if args.out:
            print(f"wrote {args.out}")
    return 0


# ----------------------------------------------------------------------------- tables


def _f(value: Any) -> str:
    return "—" if value is None else FRACTION.format(value)


def _ms(stat: dict[str, Any], digits: int = 3) -> str:
    mean, std, n = stat.get("mean"), stat.get("std"), stat.get("n", 0)
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f} (n={n})"


def _table(header: list[str], rows: list[list[Any]], text_columns: int = 2) -> str:
    """Plain-text table: the first ``text_columns`` columns left-aligned, numbers right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[Any]) -> str:
        return "  ".join(str(c).ljust(w) if i < text_columns else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _by_group(tasks: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Helpful-oriented tasks first, then harmless-oriented, each by name (as the paper's tables)."""
    rank = {"helpful": 0, "harmless": 1}
    return sorted(tasks.items(), key=lambda kv: (rank.get(kv[1].get("group") or "", 2), kv[0]))


def _comparison_tables(c: dict[str, Any], margin_rule: str) -> list[str]:
    title = f"{c['backbone'] or '?'} seed {c['seed']}: " + ", ".join(f"{role} {r['path']}" for role, r in c["runs"].items())
    rows = []
    for key, t in _by_group(c["tasks"]):
        acc = t["accuracy"]
        rows.append([key, t["group"] or "?", t["n"], t["n_units"], _f(acc["mixed"]), _f(acc["helpful"]),
                     _f(acc["harmless"]), *(_f(t[f]) for f in RETENTION_FIELDS), t["n_union"]])
    for g, e in c["groups"].items():
        rows.append([f"{g} tasks (mean of {e['tasks']})", g, "", "", "", "", "", *(_f(e[f]) for f in RETENTION_FIELDS),
                     ""])
    out = [title, _table(["task", "group", "n", "units", "acc M", "acc H", "acc A", *RETENTION_HEADERS, "|C_H∪C_A|"],
                         rows),
           f"retention over {UNIT_TEXT.get(c['retention_unit'], c['retention_unit'])}\n{RETENTION_LEGEND}"]
    crow = []
    for e in c["calibration"]:
        sm, mm = e["single_margin"], e["mixed_margin"]
        crow.append([e["single"], e["group"], e["n"], f"{_f(sm['mean'])} / {_f(sm['median'])}",
                     f"{_f(mm['mean'])} / {_f(mm['median'])}", _f(e["share_mixed_smaller"]),
                     _f(e["single_score"]["mean_abs"]), _f(e["mixed_score"]["mean_abs"])])
    out.append(f"calibration: items both the single RM and the mixed RM get right; margin rule {margin_rule}")
    out.append(_table(["single RM", "tasks", "n", "single margin mean/median", "mixed margin mean/median",
                       "mixed smaller", "|score| single", "|score| mixed"], crow))
    out.extend(_length_table(c))
    for s in c["skipped_tasks"]:
        out.append(f"note: task {s['task']} skipped: not scored by the {', '.join(s['missing_in'])} RM")
    out.extend(f"note: {n}" for n in c["notes"])
    return out


def _acc_ci(acc: Any, ci: Any) -> str:
    if acc is None:
        return "—"
    if not ci or ci.get("low") is None:
        return _f(acc)
    return f"{acc:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _rho(r: Any) -> str:
    if not r or r.get("value") is None:
        return "—"
    lo, hi = r.get("ci95") or [None, None]
    return f"{r['value']:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None else "")


def _length_table(c: dict[str, Any]) -> list[str]:
    """Per task: each RM's accuracy with its 95% interval beside what a length rule alone scores,
    how each RM's margins track length, and each RM's accuracy on length-matched pairs."""
    rows = []
    unit = None
    for key, t in _by_group(c["tasks"]):
        ln = t.get("length") or {}
        if not ln:
            continue
        unit = ln["unit"]
        acc, ci = t["accuracy"], ln.get("accuracy_ci95", {})
        rho, lm = ln.get("margin_length_spearman", {}), ln.get("length_matched", {})
        base = ln["length_baseline"]
        matched = " / ".join(_f((lm.get(r) or {}).get("score")) for r in ("mixed", "helpful", "harmless"))
        n_matched = (lm.get("mixed") or {}).get("n", "")
        rows.append([key, t["group"] or "?", _acc_ci(acc["mixed"], ci.get("mixed")),
                     _acc_ci(acc["helpful"], ci.get("helpful")), _acc_ci(acc["harmless"], ci.get("harmless")),
                     _f(base.get("longer")), _f(base.get("shorter")), _rho(rho.get("mixed")), _rho(rho.get("helpful")),
                     _rho(rho.get("harmless")), matched, n_matched])
    if not rows:
        return []
    return [f"length controls ({unit}): accuracy [95% CI]; length-only rules; Spearman ρ(margin, Δlength) [95% CI]; "
            "accuracy on pairs within 10% length (M / H / A) and their number",
            _table(["task", "group", "acc M", "acc H", "acc A", "longer-wins", "shorter-wins", "ρ M", "ρ H", "ρ A",
                    "matched M / H / A", "n matched"], rows)]


def format_tables(data: dict[str, Any]) -> str:
    """The readable form of :meth:`CompareResult.to_dict`: per comparison, then over seeds."""
    parts: list[str] = []
    for c in data["comparisons"]:
        parts.append("\n".join(_comparison_tables(c, data["margin_rule"])))
    for backbone, s in data["over_seeds"].items():
        if len(s["seeds"]) < 2:
            continue
        rows = [[k, t["group"] or "?", *(_ms(t[f]) for f in RETENTION_FIELDS)] for k, t in _by_group(s["tasks"])]
        rows += [[f"{g} tasks (mean)", g, *(_ms(e[f]) for f in RETENTION_FIELDS)] for g, e in s["groups"].items()]
        seeds = ", ".join(map(str, s["seeds"]))
        parts.append(f"{backbone}: mean ± std over seeds {seeds}\n"
                     + _table(["task", "group", *RETENTION_HEADERS], rows))
        crow = [[e["single"], e["group"], _ms(e["n"], 1), _ms(e["single_margin.mean"]), _ms(e["mixed_margin.mean"]),
                 _ms(e["share_mixed_smaller"])] for e in s["calibration"]]
        parts.append(_table(["single RM", "tasks", "n", "single margin mean", "mixed margin mean", "mixed smaller"],
                            crow))
    return "\n\n".join(parts)
