"""Gathering finished steps into ``summary.json`` (the contract in docs/STUDY_FORMAT.md).

Reading only files the steps wrote keeps the report independent of how the steps ran (one
process, a SLURM array, several machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from rmtension.data.io import read_json, read_jsonl
from rmtension.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from rmtension.study.pipeline import Plan

HIST_BINS = 30


def _step_output(read: Callable[[Path], Any], path: Path) -> Any:
    # A damaged file in a step folder written before checksums were recorded (which ``run`` cannot
    # detect) must give one line naming it and what to do, not a JSONDecodeError traceback.
    try:
        return read(path)
    except InputError as exc:
        raise InputError(path, f"cannot read step output ({exc}); delete its step folder and run the study "
                         "again") from None


def _read(path: Path) -> Any:
    return _step_output(read_json, path)


def _items(path: Path) -> list[dict]:
    return _step_output(read_jsonl, path)


def _all_scores(rows: list[dict]) -> list[float]:
    return [float(v) for r in rows for v in r["chosen_scores"] + r["rejected_scores"]]


def _hist(before: list[float], after: list[float], bins: int = HIST_BINS) -> dict[str, Any]:
    both = np.asarray(before + after, dtype=float)
    if both.size == 0:
        return {"bins": [], "before": [], "after": []}
    lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    return {"bins": edges.tolist(), "before": np.histogram(before, edges)[0].tolist(),
            "after": np.histogram(after, edges)[0].tolist()}


def _ablation_entry(base: dict, abl: dict) -> dict[str, Any]:
    """Per benchmark: per-subset score/baseline/delta and the same for the group means."""
    out: dict[str, Any] = {}
    for bench, entry in abl["benchmarks"].items():
        b_entry = base["benchmarks"][bench]
        subsets = {}
        for sub, s in entry["subsets"].items():
            b = b_entry["subsets"][sub]["score"]
            subsets[sub] = {"group": s["group"], "score": s["score"], "baseline": b,
                            "delta": None if s["score"] is None or b is None else s["score"] - b}
        groups = {}
        for g in ("helpful", "harmless"):
            a, b = entry["groups"].get(g), b_entry["groups"].get(g)
            groups[g] = {"score": a, "baseline": b, "delta": None if a is None or b is None else a - b}
        out[bench] = {"subsets": subsets, "groups": groups}
    return out


def _ablation_rows(step, backbone: str, seed: int, rm_objective: str, method: str, k: float) -> list[dict]:
    folder = step.folder
    base = _read(folder / "baseline" / "results.json")
    before = _all_scores(_items(folder / "baseline" / "items.jsonl"))
    rows = []
    for name in step.outcome().get("sets", {}):
        res = _read(folder / name / "results.json")
        after = _all_scores(_items(folder / name / "items.jsonl"))
        meta = res.get("ablation") or {}
        set_kind = "random" if name.startswith("random") else name
        rows.append({"backbone": backbone, "seed": seed, "rm_objective": rm_objective, "set": set_kind,
                     "name": name, "method": method, "k": k, "size": meta.get("count", meta.get("size")),
                     "random_of": name.split("random-", 1)[1] if name.startswith("random-") else None,
                     "benchmarks": _ablation_entry(base, res), "score_hist": _hist(before, after)})
    return rows


def _curve_rows(step, backbone: str, seed: int, rm_objective: str, methods: list[str], ks: list[float]) -> list[dict]:
    folder = step.folder
    base = _read(folder / "baseline" / "results.json")
    results = {name: _read(folder / name / "results.json") for name in step.outcome().get("sets", {})}
    rows = []
    for bench, b_entry in base["benchmarks"].items():
        for group in ("helpful", "harmless", "all"):
            def pick(entry):
                if group == "all":
                    return entry["aggregate"].get("mean")
                return entry["groups"].get(group)

            if pick(b_entry) is None:
                continue
            for method in methods:
                points = []
                for k in ks:
                    res = base if k == 0 else results.get(f"{method}-k{k:g}")
                    if res is not None:
                        points.append({"k": k, "score": pick(res["benchmarks"][bench])})
                rows.append({"backbone": backbone, "seed": seed, "rm_objective": rm_objective, "method": method,
                             "bench": bench, "group": group, "points": points})
    return rows


def summarise(plan: "Plan") -> dict[str, Any]:
    cfg = plan.cfg
    out: dict[str, Any] = {"runs": [], "retention": [], "calibration": [], "neurons": [], "overlap": [],
                           "ablation": [], "curves": [], "neuron_length": [], "ablation_stats": []}
    for (b, o, s), tr in plan.train.items():
        ev = plan.eval[(b, o, s)]
        if not (tr.done() and ev.done()):
            continue
        t = tr.outcome()
        res = _read(ev.folder / "results.json")
        out["runs"].append({"backbone": b, "objective": o, "seed": s, "rm_dir": str(tr.folder / "rm"),
                            "train": {"pairs_used": t.get("pairs_used"), "steps": t.get("steps"),
                                      "train_loss": t.get("train_loss"), "heldout_accuracy": t.get("heldout_accuracy"),
                                      "wall_time_s": t.get("wall_time_s")},
                            "eval": res["benchmarks"], "items_file": str(ev.folder / "items.jsonl")})
    # the untrained backbone's rows (objective "backbone") come after the RMs' (docs/STUDY_FORMAT.md)
    neuron_steps = [*plan.neurons.items(), *(((b, "backbone", s), st) for (b, s), st in plan.backbone.items())]
    for (b, o, s), nr in neuron_steps:
        if not nr.done():
            continue
        rmsd = _rmsd_of(nr.folder / "stats.npz")
        for method, info in nr.outcome().items():
            per_layer = info["per_layer"]
            out["neurons"].append({"backbone": b, "objective": o, "seed": s, "method": method, "site": cfg.neurons.site,
                                   "k": cfg.neurons.k, "selected": info["selected"], "total": info["total"],
                                   "n_layers": len(per_layer), "per_layer": {str(i): c for i, c in enumerate(per_layer)},
                                   "thirds": info["thirds"], "set_file": str(nr.folder / "sets" / f"{method}.json"),
                                   "rmsd": rmsd})
    for (b, s), st in plan.overlap.items():
        if not st.done():
            continue
        for method, entry in _read(st.folder / "overlap.json").items():
            mr = entry.get("mixed_retention")
            out["overlap"].append({"backbone": b, "seed": s, "method": method, "k": cfg.neurons.k,
                                   "helpful_harmless": entry.get("helpful_harmless"),
                                   "mixed_retention": mr.get("retention") if mr else None,
                                   "mixed_retention_of_single": mr.get("retention_of_single") if mr else None,
                                   "mixed_retention_detail": mr,
                                   "backbone_baseline": entry.get("backbone_baseline")})
    for (b, o, s), st in plan.neuron_length.items():
        if st.done():
            for method, v in _read(st.folder / "neuron_length.json")["methods"].items():
                out["neuron_length"].append({"backbone": b, "objective": o, "seed": s, "method": method,
                                             "site": v["site"], "k": v["k"], "n_texts": v["n_texts"],
                                             "set_size": v.get("set_size"), "spearman": v["spearman"]})
    out["neurons_seed_mean"], out["overlap_seed_mean"] = seed_mean_neurons(plan)
    out["pooled"], out["contrasts"] = pooled_intervals(out["runs"])
    for (b, s), st in plan.compare.items():
        if not st.done():
            continue
        comp = _read(st.folder / "compare.json")
        # "unit" says what the retention sets count (the paper's units; None: a compare.json from before units)
        out["retention"].append({"backbone": b, "seed": s, "unit": comp.get("retention_unit"), "tasks": comp["tasks"]})
        for entry in comp.get("calibration", []):
            out["calibration"].append({"backbone": b, "seed": s, **entry})
    ab = cfg.ablation
    for (b, o, s), st in plan.own_ablation.items():
        if st.done():
            out["ablation"].extend(_ablation_rows(st, b, s, o, ab.method, cfg.neurons.k))
    for (b, s), st in plan.mixed_ablation.items():
        if st.done():
            out["ablation"].extend(_ablation_rows(st, b, s, "mixed", ab.method, cfg.neurons.k))
    for (b, o, s), st in plan.curves.items():
        if st.done():
            out["curves"].extend(_curve_rows(st, b, s, o, ab.curves.methods, ab.curves.k))
    out["ablation_stats"] = ablation_stats_rows(plan)
    from rmtension.study.dial_steps import dial_rows

    dial = dial_rows(plan)  # the optional tension dial; absent from the summary when it did not run
    if dial:
        out["dial"] = dial
    return out


# Each ablated set and the size-matched random set drawn for it in the same step (study/pipeline.py).
RANDOM_OF = {"own": "random-own", "shared": "random-shared", "helpful-only": "random-helpful-only",
             "harmless-only": "random-harmless-only"}


def _group_members(results: dict) -> dict[tuple[str, str], list[str]]:
    """(bench, group) → the subsets counted in that group's mean, from a results.json."""
    out: dict[tuple[str, str], list[str]] = {}
    for bench, entry in results["benchmarks"].items():
        for sub, v in entry["subsets"].items():
            if v.get("in_group_mean") and v.get("group") in ("helpful", "harmless"):
                out.setdefault((bench, v["group"]), []).append(sub)
    return out


def ablation_stats_rows(plan: "Plan") -> list[dict]:
    """``ablation_stats``: every ablated set against its size-matched random set, paired per item, over all
    seeds, Holm-corrected within each table (docs/STUDY_FORMAT.md; rmtension.analysis.ablation_stats).

    Only sets with a random control of their own size enter (own ↔ random-own, shared ↔ random-shared;
    helpful-only ↔ random-helpful-only and harmless-only ↔ random-harmless-only with
    ``ablation.random_per_set``).
    """
    from rmtension.analysis.ablation_stats import ablation_stats, task_strata

    cfg = plan.cfg
    steps = [((b, o), s, st) for (b, o, s), st in plan.own_ablation.items()]
    steps += [((b, "mixed"), s, st) for (b, s), st in plan.mixed_ablation.items()]
    families: dict[tuple[str, str, str], dict[int, Any]] = {}
    groups: dict[tuple[str, str, str], dict[tuple[str, str], str]] = {}
    for (b, o), s, st in steps:
        if not st.done():
            continue
        names = set(st.outcome().get("sets", {}))
        pairs = [(kind, rnd) for kind, rnd in RANDOM_OF.items() if kind in names and rnd in names]
        if not pairs:
            continue
        base_rows = _items(st.folder / "baseline" / "items.jsonl")
        members = _group_members(_read(st.folder / "baseline" / "results.json"))
        for kind, rnd in pairs:
            key = (b, o, kind)
            strata = task_strata(base_rows, _items(st.folder / kind / "items.jsonl"),
                                 _items(st.folder / rnd / "items.jsonl"), members)
            families.setdefault(key, {})[s] = strata
            g = groups.setdefault(key, {})
            for row in base_rows:
                g[(str(row["benchmark"]), str(row["subset"]))] = row.get("group")
            for (bench, group) in members:
                g[(bench, f"{group} (group mean)")] = group
    rows: list[dict] = []
    for (b, o, kind), per_seed in families.items():
        info = {"backbone": b, "rm_objective": o, "set": kind, "method": cfg.ablation.method, "k": cfg.neurons.k}
        rows.extend(ablation_stats(per_seed, info, groups[(b, o, kind)]))
    return rows


def pooled_intervals(runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """``pooled`` and ``contrasts`` (docs/STUDY_FORMAT.md): accuracies and RM-vs-RM differences with
    intervals over items and seeds together, from each run's items.jsonl
    (:func:`rmtension.analysis.pooled.pooled_entries`). Runs whose items file is gone are left out."""
    from rmtension.analysis.pooled import pooled_entries

    items = {r["items_file"]: read_jsonl(r["items_file"]) for r in runs
             if r.get("items_file") and Path(r["items_file"]).is_file()}
    return pooled_entries(runs, items)


def _rmsd_of(stats_file: Path) -> dict[str, Any] | None:
    """Both chosen-vs-rejected RMSDs of one RM's statistics: per pair (ours) and of dataset means (the paper's)."""
    from rmtension.neurons.stats import load_stats, rmsd_of_dataset_means

    if not stats_file.is_file():
        return None
    stats, _ = load_stats(stats_file)
    pairs = stats.rmsd()
    return {"per_pair": pairs["all_layers"], "per_pair_std": pairs["all_layers_std"], "pairs": pairs["pairs"],
            "dataset_means": rmsd_of_dataset_means([stats])["value"]}


def seed_mean_neurons(plan: "Plan") -> tuple[list[dict], list[dict]]:
    """The paper's neuron sets over seeds, and their overlaps (docs/STUDY_FORMAT.md ``*_seed_mean``).

    Per backbone × objective × method, the scores of every seed whose neuron step finished are
    combined as the paper's notebook does (``rmtension.neurons.scores.seed_mean_scores``: per side
    the mean over seeds, clipped at 0, then the mean of chosen and rejected) and the top k% taken
    once — one set per RM type instead of one per seed. ``random`` has no such aggregate. The
    RMSD of dataset means averages each side's mean activations over the same seeds (the paper's
    cell 39). Computed here from the steps' statistics files: numpy on (layers × neurons) arrays.
    """
    from rmtension.neurons.scores import seed_mean_scores
    from rmtension.neurons.sets import location, overlap, retention, select_top
    from rmtension.neurons.stats import load_stats, rmsd_of_dataset_means

    cfg = plan.cfg
    nc = cfg.neurons
    done: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for (b, o, s), nr in plan.neurons.items():
        if nr.done() and (nr.folder / "stats.npz").is_file():
            done.setdefault((b, o), []).append((s, nr.folder / "stats.npz"))
    neurons: list[dict] = []
    sets: dict[tuple[str, str, str], Any] = {}
    seeds_of: dict[tuple[str, str], list[int]] = {}
    for (b, o), files in done.items():
        stats = [load_stats(f)[0] for _s, f in files]
        seeds_of[(b, o)] = [s for s, _f in files]
        rmsd = rmsd_of_dataset_means(stats)["value"]
        for method in nc.methods:
            if method == "random":
                continue
            scores = seed_mean_scores(stats, method)
            chosen = select_top(scores, nc.k, per_layer=nc.per_layer)
            sets[(b, o, method)] = chosen
            per_layer = chosen.per_layer()
            neurons.append({"backbone": b, "objective": o, "seeds": seeds_of[(b, o)], "aggregate": "seed-mean",
                            "method": method, "site": nc.site, "k": nc.k, "selected": len(chosen),
                            "total": chosen.total, "n_layers": len(per_layer),
                            "per_layer": {str(i): c for i, c in enumerate(per_layer)},
                            "thirds": {t: v["count"] for t, v in location(chosen).items()},
                            "rmsd_dataset_means": rmsd})
    overlaps: list[dict] = []
    for b in cfg.backbones:
        for method in nc.methods:
            got = {o: sets[(b, o, method)] for o in ("helpful", "harmless", "mixed") if (b, o, method) in sets}
            if not {"helpful", "harmless"} <= set(got):
                continue
            mr = retention(got["mixed"], got["helpful"], got["harmless"]) if "mixed" in got else None
            overlaps.append({"backbone": b, "method": method, "k": nc.k, "aggregate": "seed-mean",
                             "seeds": {o: seeds_of[(b, o)] for o in got},
                             "helpful_harmless": overlap(got["helpful"], got["harmless"]),
                             "mixed_retention": mr["retention"] if mr else None,
                             "mixed_retention_of_single": mr["retention_of_single"] if mr else None,
                             "mixed_retention_detail": mr})
    return neurons, overlaps


# A study's retention counts the paper's units (RM-Bench same-style pairs; see rmtension.analysis.retention).
# It is a parameter of the compare step, so a study folder computed with another unit is recomputed.
STUDY_RETENTION_UNIT = "paper"


def compare_evals(folders: dict[str, Path], unit: str = STUDY_RETENTION_UNIT,
                  grouping: str = "paper") -> dict[str, Any]:
    """Retention and calibration of one backbone × seed from its three eval folders (group means under
    ``grouping``, the study's ``evaluation.grouping``)."""
    from rmtension.analysis.compare import CompareOptions, compare_triple
    from rmtension.analysis.eval_runs import explicit_triple, load_eval_run

    triple = explicit_triple(load_eval_run(folders["mixed"]), load_eval_run(folders["helpful"]),
                             load_eval_run(folders["harmless"]))
    return compare_triple(triple, CompareOptions(unit=unit, grouping=grouping)).to_dict()
