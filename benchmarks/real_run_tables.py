"""Tables of a finished study's real-model evidence, for benchmarks/RESULTS.md.

Reads a study folder written by ``rmtension run`` (its ``summary.json`` and the per-item files the
steps left behind) and prints Markdown tables:

1. each RM's held-out HH accuracy on both objectives (helpful group = the three helpful subsets,
   harmless group = harmless-base), with 95% percentile-bootstrap intervals computed here from
   ``items.jsonl`` (subsets resampled apart, as the group mean weights them equally), and whether the
   tension signature shows (each single-objective RM better than the other on its own objective);
2. RM-Bench per domain (hard / normal / easy / average) and LLMBar per subset, with group means;
3. the top-k% neurons: count, layer thirds, helpful-vs-harmless overlap and the mixed RM's retention;
4. ablations: accuracy change on held-out HH when a set is zeroed, own neurons against the
   size-matched random set, with a paired bootstrap interval of the change (the same items scored
   before and after).

Why a script and not the report: the report shows the study; this prints exactly the numbers the
issues ask to be recorded, with intervals, in a form that pastes into RESULTS.md.

    python benchmarks/real_run_tables.py runs/smollm2-cpu
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rmtension.bench.types import GROUPS
from rmtension.evaluation.aggregate import bootstrap_macro_ci
from rmtension.evaluation.evaluate import read_items


def by_group_subset(rows: list[dict], bench: str) -> dict[str, dict[str, dict[str, float]]]:
    """group -> subset -> item id -> correctness, for one benchmark."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["benchmark"] == bench:
            out[r["group"]][r["subset"]][str(r["id"])] = float(r["correct"])
    return out


def fmt_ci(iv) -> str:
    return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def heldout_table(summary: dict) -> tuple[str, dict]:
    lines = ["| RM | train pairs | steps | train time | helpful held-out (95% CI) | harmless held-out (95% CI) | n (helpful / harmless) |",
             "|---|---|---|---|---|---|---|"]
    acc: dict[tuple, dict[str, object]] = {}
    for run in summary["runs"]:
        groups = by_group_subset(read_items(Path(run["items_file"]).parent), "hh-heldout")
        ivs = {g: bootstrap_macro_ci([list(s.values()) for s in groups[g].values()], seed=0) for g in GROUPS}
        ns = {g: sum(len(s) for s in groups[g].values()) for g in GROUPS}
        acc[(run["backbone"], run["seed"], run["objective"])] = ivs
        t = run["train"]
        lines.append(f"| {run['objective']}-s{run['seed']} | {t['pairs_used']} | {t['steps']} | {t['wall_time_s'] / 60:.1f} min | "
                     f"{fmt_ci(ivs['helpful'])} | {fmt_ci(ivs['harmless'])} | {ns['helpful']} / {ns['harmless']} |")
    verdicts = []
    for (bb, seed, obj), ivs in sorted(acc.items()):
        if obj != "helpful" or (bb, seed, "harmless") not in acc:
            continue
        hv, av = ivs, acc[(bb, seed, "harmless")]
        own_h = hv["helpful"].estimate > av["helpful"].estimate
        own_a = av["harmless"].estimate > hv["harmless"].estimate
        sep_h = hv["helpful"].low > av["helpful"].high
        sep_a = av["harmless"].low > hv["harmless"].high
        verdicts.append(
            f"{bb} seed {seed}: helpful RM {'>' if own_h else '<='} harmless RM on helpful data "
            f"({hv['helpful'].estimate:.3f} vs {av['helpful'].estimate:.3f}, intervals {'apart' if sep_h else 'overlap'}); "
            f"harmless RM {'>' if own_a else '<='} helpful RM on harmless data "
            f"({av['harmless'].estimate:.3f} vs {hv['harmless'].estimate:.3f}, intervals {'apart' if sep_a else 'overlap'}). "
            f"Tension signature (each better on its own objective): {'yes' if own_h and own_a else 'no'}"
            f"{', and significant at 95%' if own_h and own_a and sep_h and sep_a else ''}.")
    return "\n".join(lines), {"verdicts": verdicts}


def rm_bench_table(summary: dict) -> str:
    lines = ["| RM | subset | n | hard | normal | easy | average |", "|---|---|---|---|---|---|---|"]
    for run in summary["runs"]:
        entry = run["eval"].get("rm-bench")
        if not entry:
            continue
        agg = entry["aggregate"]
        for sub, d in entry["subsets"].items():  # the four offline files; RM-Bench's own "safety" domain joins the last two
            lines.append(f"| {run['objective']}-s{run['seed']} | {sub} ({d['group']}) | {d['n']} | {d['hard']:.3f} | "
                         f"{d['normal']:.3f} | {d['easy']:.3f} | {d['score']:.3f} |")
        g = entry["groups"]
        lines.append(f"| {run['objective']}-s{run['seed']} | **overall** (RM-Bench's mean over chat, code, safety; helpful group "
                     f"{g['helpful']:.3f}, harmless group {g['harmless']:.3f}) | {agg['items']} | {agg['hard']:.3f} | {agg['normal']:.3f} | {agg['easy']:.3f} | "
                     f"{agg['average']:.3f} |")
    return "\n".join(lines)


def llmbar_table(summary: dict) -> str:
    runs = [r for r in summary["runs"] if "llmbar" in r["eval"]]
    if not runs:
        return "(no LLMBar results)"
    subsets = list(runs[0]["eval"]["llmbar"]["subsets"])
    lines = ["| RM | " + " | ".join(subsets) + " | helpful group |", "|---" * (len(subsets) + 2) + "|"]
    for run in runs:
        e = run["eval"]["llmbar"]
        cells = [f"{e['subsets'][s]['score']:.3f} (n={e['subsets'][s]['n']})" for s in subsets]
        lines.append(f"| {run['objective']}-s{run['seed']} | " + " | ".join(cells) + f" | {e['groups']['helpful']:.3f} |")
    return "\n".join(lines)


def neuron_tables(summary: dict) -> str:
    lines = ["| RM | method | k | selected / total | early | middle | late |", "|---|---|---|---|---|---|---|"]
    for n in summary.get("neurons", []):
        if n["method"] == "random":
            continue
        th = n["thirds"]
        lines.append(f"| {n['objective']}-s{n['seed']} | {n['method']} | {n['k']:g}% | {n['selected']} / {n['total']} | "
                     f"{th['early']} | {th['middle']} | {th['late']} |")
    lines += ["", "| method | k | helpful | harmless | shared | helpful-only | harmless-only | Jaccard | overlap share | mixed RM keeps |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for o in summary.get("overlap", []):
        hh = o["helpful_harmless"]
        ret = o.get("mixed_retention")
        lines.append(f"| {o['method']} | {o['k']:g}% | {hh['a']} | {hh['b']} | {hh['shared']} | {hh['a_only']} | {hh['b_only']} | "
                     f"{hh['jaccard']:.3f} | {hh['overlap_share']:.3f} | {'n/a' if ret is None else f'{ret:.3f}'} |")
    return "\n".join(lines)


def _set_dir(study: Path, ab: dict, name: str) -> Path | None:
    """The eval folder (items.jsonl, results.json) of set ``name`` (or "baseline") in the ablation step that ran ``ab``.

    Own-neuron ablations live in ``ablate-own/<backbone>__<objective>-s<seed>-<key>``, the mixed RM's
    shared / helpful-only / harmless-only sets in ``ablate-mixed/<backbone>__s<seed>-<key>``; inside a step,
    a set's folder is found in either sweep layout (``rmtension.ablation.report.set_dir``).
    """
    from rmtension.ablation.report import BASELINE_DIR, set_dir

    for folder in (f"ablate-own/{ab['backbone']}__{ab['rm_objective']}-s{ab['seed']}-*",
                   f"ablate-mixed/{ab['backbone']}__s{ab['seed']}-*"):
        for step in sorted(study.glob(f"steps/{folder}")):
            if (set_dir(step, ab["name"]) / "items.jsonl").is_file():
                return step / BASELINE_DIR if name == "baseline" else set_dir(step, name)
    return None


def ablation_table(study: Path, summary: dict) -> str:
    lines = ["| RM | set | neurons | bench | group | before | after | change (95% paired CI) |",
             "|---|---|---|---|---|---|---|---|"]
    for ab in summary.get("ablation", []):
        after_dir = _set_dir(study, ab, ab["name"])
        before_dir = _set_dir(study, ab, "baseline")
        if after_dir is None or before_dir is None:
            continue
        after_rows, before_rows = read_items(after_dir), read_items(before_dir)
        for bench in ab["benchmarks"]:
            before, after = by_group_subset(before_rows, bench), by_group_subset(after_rows, bench)
            for g in GROUPS:
                if g not in before:
                    continue
                diffs = [[after[g][s][i] - c for i, c in items.items()] for s, items in before[g].items()]
                iv = bootstrap_macro_ci(diffs, seed=0)
                b = np.mean([np.mean(list(items.values())) for items in before[g].values()])
                a = np.mean([np.mean(list(after[g][s].values())) for s in before[g]])
                lines.append(f"| {ab['rm_objective']}-s{ab['seed']} | {ab['name']} | {ab['size']} | {bench} | {g} | {b:.3f} | "
                             f"{a:.3f} | {iv.estimate:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a study folder written by `rmtension run`")
    args = ap.parse_args()
    summary = json.loads((args.study / "summary.json").read_text(encoding="utf-8"))
    table, info = heldout_table(summary)
    print("### Held-out HH-RLHF accuracy by objective (95% percentile bootstrap, 10,000 resamples)\n")
    print(table + "\n")
    for v in info["verdicts"]:
        print(f"- {v}")
    print("\n### RM-Bench (the four offline subsets; a subset's score is the mean of its 3×3 style matrix)\n")
    print(rm_bench_table(summary) + "\n")
    print("### LLMBar\n")
    print(llmbar_table(summary) + "\n")
    print("### Objective-oriented neurons (top-k over all layers × neurons)\n")
    print(neuron_tables(summary) + "\n")
    print("### Ablation on held-out HH-RLHF (accuracy change; paired bootstrap over items)\n")
    print(ablation_table(args.study, summary))


if __name__ == "__main__":
    main()
