"""What an ablation sweep writes: per-set results, deltas against the baseline, a summary table.

Layout of ``OUT`` (every file written atomically):

* ``baseline/results.json`` and ``baseline/items.jsonl`` — the unablated RM, the ``rmtension eval`` contract;
* ``sets/<safe_name>/results.json`` and ``items.jsonl`` — one per set, the same contract plus
  ``"ablation"`` (set metadata, mode, site, start layer) and ``"delta_vs_baseline"``;
* ``sweep.json`` — baseline numbers, per set its size and per-subset / per-group / aggregate
  score and delta, and what the shared work saved (``SweepStats``);
* ``sweep.csv`` — the same numbers as one long table, one row per set × benchmark × number:
  ``set, count, site, mode, start_layer, benchmark, level, name, group, metric, n, score, baseline, delta``
  (``level`` is ``subset``, ``group`` or ``aggregate``).

A delta is ablated − baseline (negative: the ablation hurt). Items ``lost`` were more correct
in the baseline than under the ablation, ``gained`` the reverse.

``rmtension ablate`` and the study's ablation and curve steps both write this layout. Study steps
written before they did (each set in ``<step>/<name>/``, no ``sweep.json``) are still read:
:func:`set_dir` finds a set's folder in either layout.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Iterator

from rmtension.evaluation.evaluate import EvalResult, write_eval
from rmtension.files import write_atomic, write_json_atomic

BASELINE_DIR = "baseline"
SETS_DIR = "sets"
CSV_FIELDS = ("set", "count", "site", "mode", "start_layer", "benchmark", "level", "name", "group", "metric", "n",
              "score", "baseline", "delta")


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x == x else None


def _diff(a: Any, b: Any) -> float | None:
    fa, fb = _num(a), _num(b)
    return None if fa is None or fb is None else fa - fb


def deltas(result: EvalResult, baseline: EvalResult) -> dict[str, Any]:
    """Per benchmark: subset, group and numeric aggregate deltas, and items lost / gained."""
    out: dict[str, Any] = {}
    for name, entry in result.results["benchmarks"].items():
        base = baseline.results["benchmarks"][name]
        subsets = {s: _diff(v.get("score"), base["subsets"][s].get("score")) for s, v in entry["subsets"].items()}
        groups = {g: _diff(v, base["groups"].get(g)) for g, v in entry["groups"].items()}
        aggregate = {k: _diff(v, base["aggregate"].get(k)) for k, v in entry["aggregate"].items()
                     if _num(v) is not None and k != "items"}
        out[name] = {"subsets": subsets, "groups": groups, "aggregate": aggregate}
    lost: dict[str, int] = {}
    gained: dict[str, int] = {}
    for row, brow in zip(result.items, baseline.items):
        b = row["benchmark"]
        lost[b] = lost.get(b, 0) + (row["correct"] < brow["correct"])
        gained[b] = gained.get(b, 0) + (row["correct"] > brow["correct"])
    for name in out:
        out[name]["items_lost"] = lost.get(name, 0)
        out[name]["items_gained"] = gained.get(name, 0)
    return out


def _numbers(entry: dict[str, Any]) -> Iterator[tuple[str, str, str | None, str | None, int | None, Any]]:
    """(level, name, group, metric, n, score) for every number of one benchmark entry."""
    for sub, v in entry["subsets"].items():
        yield "subset", sub, v.get("group"), v.get("metric"), v.get("n"), v.get("score")
    for g, v in entry["groups"].items():
        yield "group", g, g, None, None, v
    for k, v in entry["aggregate"].items():
        if _num(v) is not None and k != "items":
            yield "aggregate", k, None, None, entry["aggregate"].get("items"), v


def rows(sweep_result: Any) -> list[dict[str, Any]]:
    """The long table of ``sweep.csv`` (see the module docstring)."""
    base = sweep_result.baseline.results["benchmarks"]
    out = []
    for sr in sweep_result.sets:
        meta = sr.result.results["ablation"]
        for bname, entry in sr.result.results["benchmarks"].items():
            bnum = {(lvl, nm): sc for lvl, nm, _g, _m, _n, sc in _numbers(base[bname])}
            for level, name, group, metric, n, score in _numbers(entry):
                b = bnum.get((level, name))
                out.append({"set": sr.ablation.name, "count": meta["count"], "site": meta["site"], "mode": meta["mode"],
                            "start_layer": meta.get("start_layer"), "benchmark": bname, "level": level, "name": name,
                            "group": group, "metric": metric, "n": n, "score": _num(score), "baseline": _num(b),
                            "delta": _diff(score, b)})
    return out


def summary(sweep_result: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``sweep.json`` object."""
    def compact(entry: dict[str, Any]) -> dict[str, Any]:
        return {"subsets": {s: v.get("score") for s, v in entry["subsets"].items()}, "groups": entry["groups"],
                "aggregate": {k: v for k, v in entry["aggregate"].items() if _num(v) is not None}}

    sets = []
    for sr in sweep_result.sets:
        res = sr.result.results
        meta = res["ablation"]
        sets.append({"name": sr.ablation.name, "count": meta["count"], "per_layer": meta["per_layer"],
                     "site": meta["site"], "mode": meta["mode"], "factor": meta["factor"],
                     "start_layer": meta.get("start_layer"), "set": meta["set"],
                     "benchmarks": {b: compact(e) for b, e in res["benchmarks"].items()},
                     "delta": res["delta_vs_baseline"]})
    out = {"baseline": {b: compact(e) for b, e in sweep_result.baseline.results["benchmarks"].items()},
           "sets": sets, "sharing": sweep_result.stats.to_dict()}
    out.update(extra or {})
    return out


def safe_name(name: str) -> str:
    """A file-system-safe folder name for a set (letters, digits, ``._-+``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "set"
    return cleaned[:120]


def set_dir(out_dir: str | Path, name: str) -> Path:
    """The folder (results.json, items.jsonl) of set ``name`` in a sweep folder: ``sets/<safe_name>/``.

    A study step written before the study wrote through :func:`write_sweep` keeps each set in
    ``<name>/`` beside ``baseline/``; that folder is returned where it exists and the current one
    does not, so a cached study resumed by newer code reads its old steps unchanged.
    """
    out = Path(out_dir)
    current = out / SETS_DIR / safe_name(name)
    legacy = out / name
    if not current.is_dir() and (legacy / "results.json").is_file():
        return legacy
    return current


def write_sweep(out_dir: str | Path, sweep_result: Any, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the layout described in the module docstring; ``sweep.json`` last (it marks completion).

    Each set's ``dir`` in ``sweep.json`` is relative to ``out_dir`` (``sets/<safe_name>``), so a moved
    folder stays readable.
    """
    out = Path(out_dir)
    write_eval(out / BASELINE_DIR, sweep_result.baseline)
    dirs: dict[str, Path] = {}
    for sr in sweep_result.sets:
        d = out / SETS_DIR / safe_name(sr.ablation.name)
        if d in dirs.values():
            raise ValueError(f"two sets map to the folder {d}; give them distinct names")
        write_eval(d, sr.result)
        dirs[sr.ablation.name] = d
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows(sweep_result):
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    write_atomic(out / "sweep.csv", lambda fh: fh.write(buf.getvalue()))
    info = summary(sweep_result, extra)
    for s in info["sets"]:
        s["dir"] = dirs[s["name"]].relative_to(out).as_posix()
    write_json_atomic(out / "sweep.json", info)
    return dirs
