"""Eval output folders (``rmtension eval --out DIR``) read back, and sorted into RM triples.

Why a module of its own: retention and calibration compare the *same items* across three RMs (mixed,
helpful, harmless) of one backbone and seed, so before any number is computed the folders must be
read with errors that name the file and line, and matched up by what each RM is. ``results.json``
carries that (``rm.objective``, ``rm.backbone``, ``rm.seed``, written from the RM's ``rmtension.json``);
RMs trained elsewhere have no such record, and their roles are given explicitly instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rmtension.data.io import Located, iter_jsonl, read_json
from rmtension.errors import InputError, RmtensionError

OBJECTIVES = ("mixed", "helpful", "harmless")
ROW_FIELDS = ("benchmark", "subset", "id", "chosen_scores", "rejected_scores", "correct")


def task_key(benchmark: str, subset: str) -> str:
    """``"<bench>/<subset>"``, the task name used in compare output and the study summary."""
    return f"{benchmark}/{subset}"


@dataclass
class TaskRows:
    """One task's items of one RM: id → row, plus the task's metric and group from results.json."""

    benchmark: str
    subset: str
    metric: str | None
    group: str | None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class EvalRun:
    """One eval folder: which RM it scored, and its items grouped by task."""

    path: str
    objective: str | None
    backbone: str | None
    seed: int | None
    ablation: Any
    tasks: dict[str, TaskRows]
    results: dict[str, Any]

    def label(self) -> str:
        return f"{self.path} ({self.objective or '?'}, {self.backbone or '?'}, seed {self.seed})"


def _read_rows(path: Path) -> list[Located]:
    """The rows of ``items.jsonl`` with their lines; a row lacking a field the comparison needs is an error."""
    rows = list(iter_jsonl(path))
    for loc in rows:
        missing = [k for k in ROW_FIELDS if k not in loc.record]
        if missing:
            raise loc.error(f"missing field {', '.join(map(repr, missing))}")
    return rows


def load_eval_run(folder: str | Path) -> EvalRun:
    """Read ``results.json`` and ``items.jsonl`` of an eval folder (one-line errors on bad input)."""
    d = Path(folder)
    results_path, items_path = d / "results.json", d / "items.jsonl"
    if not d.is_dir():
        raise RmtensionError(f"{d}: no such eval folder")
    if not results_path.is_file() or not items_path.is_file():
        raise RmtensionError(f"{d} is not an eval output folder (needs results.json and items.jsonl from "
                             f"`rmtension eval --out {d}`)")
    results = read_json(results_path)
    if not isinstance(results, dict) or not isinstance(results.get("benchmarks"), dict):
        raise InputError(results_path, "expected an object with a 'benchmarks' mapping (the `rmtension eval` format)")
    rm: dict[str, Any] = results["rm"] if isinstance(results.get("rm"), dict) else {}
    tasks: dict[str, TaskRows] = {}
    for loc in _read_rows(items_path):
        row = loc.record
        bench, subset, item = str(row["benchmark"]), str(row["subset"]), str(row["id"])
        key = task_key(bench, subset)
        if key not in tasks:
            entry: dict[str, Any] = results["benchmarks"].get(bench, {}).get("subsets", {}).get(subset, {})
            tasks[key] = TaskRows(bench, subset, entry.get("metric", row.get("metric")),
                                  entry.get("group", row.get("group")))
        if item in tasks[key].rows:
            raise loc.error(f"item {item!r} of task {key} occurs twice")
        tasks[key].rows[item] = row
    objective = rm.get("objective")
    if objective is not None and objective not in OBJECTIVES:
        raise InputError(results_path, f"rm.objective is {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    seed = rm.get("seed")
    return EvalRun(str(d), objective, rm.get("backbone"), int(seed) if isinstance(seed, (int, float)) else None,
                   results.get("ablation"), tasks, results)


@dataclass
class RunTriple:
    """The three RMs one comparison needs, with the backbone and seed they share."""

    backbone: str | None
    seed: int | None
    mixed: EvalRun
    helpful: EvalRun
    harmless: EvalRun
    notes: list[str] = field(default_factory=list)

    def runs(self) -> dict[str, EvalRun]:
        return {"mixed": self.mixed, "helpful": self.helpful, "harmless": self.harmless}


def triples_from_records(runs: Sequence[EvalRun]) -> list[RunTriple]:
    """Group eval folders by (backbone, seed) from their results.json; each group needs all three objectives."""
    groups: dict[tuple[str, int], dict[str, EvalRun]] = {}
    for run in runs:
        if run.objective is None or run.backbone is None or run.seed is None:
            raise RmtensionError(f"{run.path}/results.json does not record the RM's objective, backbone and seed "
                                 "(an RM not trained by rmtension?); give its role with --mixed/--helpful/--harmless")
        slot = groups.setdefault((run.backbone, run.seed), {})
        if run.objective in slot:
            raise RmtensionError(f"two eval folders for the {run.objective} RM of {run.backbone} seed {run.seed}: "
                                 f"{slot[run.objective].path} and {run.path} (an ablated run? pass roles explicitly "
                                 "with --mixed/--helpful/--harmless)")
        slot[run.objective] = run
    out = []
    for (backbone, seed), slot in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        missing = [o for o in OBJECTIVES if o not in slot]
        if missing:
            raise RmtensionError(f"{backbone} seed {seed}: no eval folder for the {' and '.join(missing)} RM "
                                 f"among those given (have: {', '.join(slot[o].path for o in OBJECTIVES if o in slot)})")
        out.append(RunTriple(backbone, seed, slot["mixed"], slot["helpful"], slot["harmless"]))
    return out


def explicit_triple(mixed: EvalRun, helpful: EvalRun, harmless: EvalRun, index: int = 0) -> RunTriple:
    """A triple whose roles the user named; backbone and seed come from the records when they agree.

    The records' own objectives are overridden (that is the point of naming roles), but a
    disagreement in backbone or seed is kept as a note: comparing RMs of different backbones or
    seeds is not what retention means, so the output must say so.
    """
    runs = {"mixed": mixed, "helpful": helpful, "harmless": harmless}
    notes = []
    backbones = {r.backbone for r in runs.values() if r.backbone is not None}
    seeds = {r.seed for r in runs.values() if r.seed is not None}
    if len(backbones) > 1:
        notes.append(f"the RMs have different backbones ({', '.join(sorted(backbones))})")
    if len(seeds) > 1:
        notes.append(f"the RMs have different seeds ({', '.join(map(str, sorted(seeds)))})")
    for role, run in runs.items():
        if run.objective is not None and run.objective != role:
            notes.append(f"{run.path} was trained as {run.objective} but is compared as {role}")
    backbone = mixed.backbone if len(backbones) == 1 else None
    seed = mixed.seed if len(seeds) == 1 else index
    return RunTriple(backbone, seed, mixed, helpful, harmless, notes)
