"""Evaluate one RM on benchmarks: score every response once, then apply each subset's metric.

The output is two files that together let anyone recompute every number:
``results.json`` (per benchmark: per-subset metric/score/n/group and a 95% bootstrap interval,
helpful and harmless group means with theirs, the benchmark's own aggregate) and ``items.jsonl``
(one line per item with every chosen and rejected score and the item's correctness).

Which subsets enter the helpful/harmless group means is the *grouping*
(:mod:`rmtension.bench.groups`: ``paper`` by default, or ``all``); results.json names it at the top
level, marks every subset ``in_group_mean`` true or false, and adds a task table across all the
benchmarks of the run (``tasks``, ``groups``, ``groups_ci95``): one score per task, as the paper's
task table has them (its "Math" task spans RM-Bench and RewardBench 2).

Every accuracy has a 95% bootstrap interval, and every subset its length controls
(:mod:`rmtension.analysis.length`: length-only baselines, margin–length correlation, length-matched
accuracy), computed from the response lengths that items.jsonl carries (docs/STUDY_FORMAT.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rmtension.analysis.length import length_controls, mean_controls
from rmtension.bench.groups import DEFAULT_GROUPING, Grouping, get_grouping
from rmtension.data.io import read_json, read_jsonl
from rmtension.bench.types import GROUPS, METRIC_PAIRWISE, METRIC_STRICT, METRIC_TIES, Benchmark, BenchItem
from rmtension.errors import RmtensionError
from rmtension.evaluation.aggregate import bootstrap_macro_ci, group_means, rewardbench2_overall, rewardbench_overall, rewardbench_section_scores
from rmtension.evaluation.metrics import (SubsetScore, parse_ties_id, rm_bench_summary, score_items,
                                          strict_correct, ties_score)
from rmtension.evaluation.lengths import item_lengths
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.files import jsonable, write_json_atomic, write_jsonl_atomic
from rmtension.models.formatting import format_for_rm
from rmtension.registry import Registry

RESULTS_FILE = "results.json"
ITEMS_FILE = "items.jsonl"
BOOTSTRAP_RESAMPLES = 2000  # enough for stable 95% bounds (±0.005 run to run) at a fraction of a second per subset

# Benchmark-specific aggregates, keyed by the benchmark's base name (before any ":subset" filter).
Aggregator = Callable[[dict[str, SubsetScore]], dict[str, Any]]
AGGREGATES: Registry[Aggregator] = Registry("benchmark aggregate")


@AGGREGATES.register("rewardbench")
def _rewardbench_aggregate(subsets: dict[str, SubsetScore]) -> dict[str, Any]:
    sections = rewardbench_section_scores({k: v.score for k, v in subsets.items()})
    return {"sections": sections, "overall": rewardbench_overall(sections) if sections else float("nan")}


@AGGREGATES.register("rewardbench2")
def _rewardbench2_aggregate(subsets: dict[str, SubsetScore]) -> dict[str, Any]:
    return {"overall": rewardbench2_overall({k: v.score for k, v in subsets.items()})}


@AGGREGATES.register("rm-bench")
def _rm_bench_aggregate(subsets: dict[str, SubsetScore]) -> dict[str, Any]:
    s = rm_bench_summary(subsets)
    return {
        "hard": s.hard, "normal": s.normal, "easy": s.easy, "average": s.average,
        "domains": {d: {"hard": a.hard, "normal": a.normal, "easy": a.easy, "average": a.average, "n": a.n}
                    for d, a in s.domains.items()},
    }


@dataclass
class EvalResult:
    """In-memory results: the ``results.json`` object and the ``items.jsonl`` rows."""

    results: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def groups(self) -> dict[str, Any]:
        """The helpful/harmless group means over all benchmarks (the task table's; None when absent)."""
        return dict(self.results.get("groups") or {})

    def __repr__(self) -> str:
        """Benchmarks, item count and group means; the full numbers are in ``results``."""
        groups = {k: (None if v is None or v != v else round(float(v), 3)) for k, v in self.groups.items()}
        return (f"EvalResult(benchmarks={list((self.results.get('benchmarks') or {}))}, items={len(self.items)}, "
                f"groups={groups})")


def item_texts(item: BenchItem, tokenizer, template: str) -> list[str]:
    """The RM inputs of an item, chosen responses first."""
    return [format_for_rm(item.prompt, r, tokenizer, template) for r in item.chosen + item.rejected]


ItemScores = list[tuple[list[float], list[float]]]  # per item: (chosen scores, rejected scores)


@dataclass(frozen=True)
class BenchTexts:
    """Every RM input of every item of some benchmarks as one list, and where each item's inputs lie.

    Why separate from scoring: evaluation scores these texts once; an ablation sweep scores the same
    texts under many neuron sets (``rmtension.ablation.sweep``). Both build them here, so the texts
    and their order are one definition, and both map flat scores back to items with :meth:`split`.
    """

    texts: list[str]
    spans: list[list[tuple[int, int, int]]]  # per benchmark, per item: (first text, chosen count, rejected count)

    def split(self, scores: np.ndarray | Sequence[float]) -> list[ItemScores]:
        """Flat scores (one per text, in ``texts`` order) as per-benchmark, per-item (chosen, rejected) lists."""
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (len(self.texts),):
            raise ValueError(f"expected {len(self.texts)} scores, got shape {scores.shape}")
        return [[(scores[s:s + c].tolist(), scores[s + c:s + c + r].tolist()) for s, c, r in rows]
                for rows in self.spans]


def benchmark_texts(benchmarks: Sequence[Benchmark], tokenizer, template: str) -> BenchTexts:
    """The RM inputs of every item (chosen responses first), benchmark by benchmark."""
    texts: list[str] = []
    spans: list[list[tuple[int, int, int]]] = []
    for bench in benchmarks:
        rows = []
        for item in bench.items:
            start = len(texts)
            texts.extend(item_texts(item, tokenizer, template))
            rows.append((start, len(item.chosen), len(item.rejected)))
        spans.append(rows)
    return BenchTexts(texts, spans)


def score_benchmarks(scorer: RewardScorer, benchmarks: Sequence[Benchmark], template: str,
                     desc: str = "scoring") -> list[ItemScores]:
    """Scores of every response of every item, from one scorer call (so shared texts run once)."""
    bt = benchmark_texts(benchmarks, scorer.tokenizer, template)
    return bt.split(scorer.score(bt.texts, desc=desc) if bt.texts else np.zeros(0))


def scoring_record(scorer: RewardScorer, **extra: Any) -> dict[str, Any]:
    """The ``"scoring"`` block of results.json: what the last scoring call of ``scorer`` did, and how it was
    configured; ``extra`` adds what only the caller knows (timings, sweep sharing)."""
    rep = scorer.last_report
    return {"texts": rep.texts, "unique_texts": rep.unique_texts, "truncated": rep.truncated, "tokens": rep.tokens,
            "padded_tokens": rep.padded_tokens, "batches": rep.batches, "batch_size": scorer.config.batch_size,
            "max_length": scorer.max_length, "dtype": scorer.config.dtype, "device": str(scorer.device),
            **rep.scoring_fields(), **extra}


def _check_subset(bench: str, subset: str, items: Sequence[BenchItem]) -> None:
    """Item ids unique and one group per subset: items.jsonl rows are keyed by (benchmark, subset,
    id), and a subset's group decides which group mean it enters, so either ambiguity would make
    numbers that cannot be recomputed from the files."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise RmtensionError(f"benchmark {bench!r}, subset {subset!r}: item id {item.id!r} occurs more than "
                                 "once; ids must be unique within a subset")
        seen.add(item.id)
    groups = sorted({item.group for item in items})
    if len(groups) > 1:
        raise RmtensionError(f"benchmark {bench!r}, subset {subset!r} mixes groups {', '.join(groups)}; "
                             "give every item of a subset the same group (or split the subset)")


def summarise_benchmark(bench: Benchmark, scores: list[tuple[list[float], list[float]]],
                        grouping: Grouping | str = DEFAULT_GROUPING,
                        lengths: list[tuple[list[int], list[int]]] | None = None) -> tuple[dict, list[dict]]:
    """Apply each subset's metric; return the benchmark's results entry and its item rows.

    Group means and their intervals take only the subsets the grouping includes; every subset is
    still scored and listed, with ``in_group_mean`` saying whether it counted.

    ``lengths``: per item, the token counts of its chosen and rejected responses
    (:func:`rmtension.evaluation.lengths.item_lengths`); the rows then carry them and the length
    controls (:mod:`rmtension.analysis.length`) use them. Without them the controls use character
    lengths, and ``length_unit`` says so.
    """
    grouping = get_grouping(grouping) if isinstance(grouping, str) else grouping
    by_subset: dict[str, list[int]] = {}
    for k, item in enumerate(bench.items):
        by_subset.setdefault(item.subset, []).append(k)
    subset_scores: dict[str, SubsetScore] = {}
    subsets_out: dict[str, dict] = {}
    rows: list[dict] = []
    groups: dict[str, str] = {}
    for subset, idx in by_subset.items():
        items = [bench.items[k] for k in idx]
        _check_subset(bench.name, subset, items)
        chosen = [scores[k][0] for k in idx]
        rejected = [scores[k][1] for k in idx]
        metric = bench.metric_for(subset)
        res = score_items(metric, items, chosen, rejected)
        subset_scores[subset] = res
        groups[subset] = items[0].group
        entry = res.to_dict()
        entry["group"] = items[0].group
        entry["task"] = grouping.task_of(bench.name, subset)
        entry["in_group_mean"] = grouping.includes(bench.name, subset)
        if metric != METRIC_PAIRWISE and metric != METRIC_STRICT:
            # The strict rule min(chosen) > max(rejected) per item, beside the benchmark's own. On RewardBench 2
            # rows it is the paper's code's rule (RM-alignment_tension evaluation.py::rm_acc); on an RM-Bench
            # item it asks all nine cells, which the paper did not compute (it scored same-style pairs = normal).
            strict = np.array([strict_correct(c, r) for c, r in zip(chosen, rejected)], dtype=float)
            entry["strict_score"] = float(strict.mean()) if strict.size else float("nan")
            entry["strict_ci95"] = _ci95([strict])
        if metric != METRIC_TIES:
            entry["ci95"] = _ci95([res.correct])
        else:  # Ties' score is a composite: its interval resamples prompts (ref and tied item together)
            entry["ci95"] = _ties_ci95([it.id for it in items], chosen, rejected)
        if res.matrices is not None:  # RM-Bench's hard/normal/easy are means of per-item triangle means
            for part, values in rm_bench_parts_per_item(res.matrices).items():
                entry[f"{part}_ci95"] = _ci95([values])
        subsets_out[subset] = entry
        chars = [([len(x) for x in item.chosen], [len(x) for x in item.rejected]) for item in items]
        tokens = [lengths[k] for k in idx] if lengths is not None else None
        unit_lengths = tokens if tokens is not None else chars
        entry.update(length_controls(metric, chosen, rejected, [c for c, _ in unit_lengths],
                                     [r for _, r in unit_lengths], n_resamples=BOOTSTRAP_RESAMPLES))
        for k, (item, c, r, ok) in enumerate(zip(items, chosen, rejected, res.correct)):
            row = {"benchmark": bench.name, "subset": subset, "id": item.id, "group": item.group,
                   "metric": metric, "chosen_scores": c, "rejected_scores": r, "correct": float(ok)}
            if tokens is not None:
                row["chosen_tokens"], row["rejected_tokens"] = list(tokens[k][0]), list(tokens[k][1])
            row["chosen_chars"], row["rejected_chars"] = chars[k]
            rows.append(row)
    plain = {k: v.score for k, v in subset_scores.items()}
    base = bench.name.split(":")[0]
    aggregate: dict[str, Any] = {"mean": float(np.mean(list(plain.values()))) if plain else float("nan"),
                                 "items": len(bench.items)}
    if base in AGGREGATES:
        aggregate.update(AGGREGATES.get(base)(subset_scores))
    counted = {k: v for k, v in plain.items() if subsets_out[k]["in_group_mean"]}
    means = group_means(counted, groups)
    # Both groups always appear (null when the benchmark has no counted subset of that group), so
    # readers can index results["benchmarks"][b]["groups"]["harmless"] without guarding.
    group_out = {g: means.get(g, float("nan")) for g in GROUPS} | {g: v for g, v in means.items() if g not in GROUPS}
    # 95% percentile-bootstrap intervals of the group means, each counted subset resampled on its own.
    by_group: dict[str, list[SubsetScore]] = {}
    for subset in counted:
        by_group.setdefault(groups[subset], []).append(subset_scores[subset])
    groups_ci = {g: _ci95([r.correct for r in rs]) for g, rs in sorted(by_group.items())
                 if all(r.metric != METRIC_TIES for r in rs)}
    # Length controls per group, averaged over the counted subsets as the group scores are.
    groups_length = {g: mean_controls([subsets_out[x] for x in counted if groups[x] == g]) for g in sorted(by_group)}
    entry = {"subsets": subsets_out, "groups": group_out, "groups_ci95": groups_ci, "groups_length": groups_length,
             "length_unit": "tokens" if lengths is not None else "chars", "aggregate": aggregate,
             "aggregate_ci95": _aggregate_intervals(base, subset_scores),
             "files": list(bench.files), "notes": list(bench.notes)}
    return jsonable(entry), rows


def _ci95(correct: list[np.ndarray], weights: list[float] | None = None) -> dict[str, float]:
    iv = bootstrap_macro_ci(correct, n_resamples=BOOTSTRAP_RESAMPLES, seed=0, weights=weights)
    return {"low": iv.low, "high": iv.high}


def _aggregate_intervals(base: str, subsets: dict[str, SubsetScore]) -> dict[str, Any]:
    """95% bootstrap intervals of a benchmark's own aggregates (``aggregate_ci95``, keyed like
    ``aggregate``; kept apart so that readers of ``aggregate`` see only scores). Each is a weighted mean of subset
    means, so a stratified bootstrap with those weights (subsets resampled apart) gives them:
    RewardBench sections (EXAMPLE_COUNTS weights) and overall (mean of sections); RM-Bench
    hard/normal/easy/average (subsets pooled into domains by item count, domains averaged);
    RewardBench 2 overall (mean of subsets), unless Ties (a composite) is among them."""
    from rmtension.evaluation.aggregate import REWARDBENCH2_SUBSETS, REWARDBENCH_EXAMPLE_COUNTS, REWARDBENCH_SECTIONS
    from rmtension.evaluation.metrics import RM_BENCH_DOMAINS

    present = {k: v for k, v in subsets.items() if v.n > 0}
    if base == "rewardbench":
        sections = {sec: [x for x in members if x in present] for sec, members in REWARDBENCH_SECTIONS.items()}
        sections = {sec: xs for sec, xs in sections.items() if xs}
        out: dict[str, Any] = {"sections": {
            sec: _ci95([present[x].correct for x in xs], [REWARDBENCH_EXAMPLE_COUNTS[x] for x in xs])
            for sec, xs in sections.items()}}
        if sections:
            strata, weights = [], []
            for xs in sections.values():
                total = sum(REWARDBENCH_EXAMPLE_COUNTS[x] for x in xs)
                strata += [present[x].correct for x in xs]
                weights += [REWARDBENCH_EXAMPLE_COUNTS[x] / total for x in xs]
            out["overall"] = _ci95(strata, weights)
        return out
    if base == "rewardbench2":
        xs = [x for x in REWARDBENCH2_SUBSETS if x in present]
        if xs and all(present[x].metric != METRIC_TIES for x in xs):
            return {"overall": _ci95([present[x].correct for x in xs])}
        return {}
    if base == "rm-bench":
        domains: dict[str, list[str]] = {}
        for x, v in present.items():
            if v.matrices is not None:
                domains.setdefault(next((d for d in RM_BENCH_DOMAINS if x.startswith(d)), x), []).append(x)
        if not domains:
            return {}
        weights = [present[x].n / sum(present[y].n for y in xs) for xs in domains.values() for x in xs]
        parts = {x: rm_bench_parts_per_item(present[x].matrices) for xs in domains.values() for x in xs}
        return {part: _ci95([parts[x][part] for xs in domains.values() for x in xs], weights)
                for part in ("hard", "normal", "easy", "average")}
    return {}


def rm_bench_parts_per_item(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """Per item, the hard/normal/easy/average cell means of its K×K matrix. RM-Bench's subset
    hard/normal/easy read the *mean* matrix, and a triangle's mean is linear in the matrix, so the
    mean over items of these equals them; resampling them gives their intervals."""
    m = np.asarray(matrices, dtype=float)
    if m.size == 0:
        return {k: np.zeros(0) for k in ("hard", "normal", "easy", "average")}
    k = m.shape[-1]
    upper, lower = np.triu(np.ones((k, k)), 1).astype(bool), np.tril(np.ones((k, k)), -1).astype(bool)
    hard, easy = m[:, upper].mean(axis=1), m[:, lower].mean(axis=1)
    normal = m[:, np.eye(k, dtype=bool)].mean(axis=1)
    return {"hard": hard, "normal": normal, "easy": easy, "average": (hard + normal + easy) / 3.0}


TIES_RESAMPLES = 500  # Ties' composite is recomputed per resample in Python: fewer resamples keep it quick


def _ties_ci95(ids: list[str], chosen: list[list[float]], rejected: list[list[float]]) -> dict[str, float]:
    """95% percentile-bootstrap interval of the Ties composite: prompts resampled with replacement,
    each drawn prompt bringing its ref and tied items (renamed so that a prompt drawn twice counts twice)."""
    by_prompt: dict[str, list[int]] = {}
    for k, i in enumerate(ids):
        by_prompt.setdefault(parse_ties_id(i)[1], []).append(k)
    prompts = list(by_prompt)
    if not prompts:
        return {"low": float("nan"), "high": float("nan")}
    rng = np.random.default_rng(0)
    values = []
    for _ in range(TIES_RESAMPLES):
        b_ids, b_c, b_r = [], [], []
        for j, p in enumerate(rng.integers(0, len(prompts), size=len(prompts))):
            for k in by_prompt[prompts[p]]:
                b_ids.append(f"{parse_ties_id(ids[k])[0]}:{j}")
                b_c.append(chosen[k])
                b_r.append(rejected[k])
        values.append(ties_score(b_ids, b_c, b_r).score)
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"low": float("nan"), "high": float("nan")}
    low, high = np.percentile(v, [2.5, 97.5])
    return {"low": float(low), "high": float(high)}


def task_table(entries: dict[str, dict], correct: dict[tuple[str, str], np.ndarray] | None = None
               ) -> dict[str, Any]:
    """The cross-benchmark task table of a grouping and its helpful/harmless group means.

    ``entries`` are ``summarise_benchmark`` results by benchmark name (each subset carrying
    ``task``, ``group`` and ``in_group_mean``). A task's score is the unweighted mean of the scores of
    its counted subsets (the paper's Math: RM-Bench math and RewardBench 2 Math averaged, not pooled
    item by item); a group's score is the unweighted mean of its tasks' scores (the paper's "Avg").
    With ``correct`` (per-item correctness by (benchmark, subset)) each group also gets a 95%
    stratified bootstrap interval in which every subset carries its task's share of the weight;
    a group containing a Ties subset (a composite, not a mean of items) gets none.
    """
    sources: dict[str, list[tuple[str, str, dict]]] = {}
    for bench, entry in entries.items():
        for subset, s in entry["subsets"].items():
            if s.get("in_group_mean") and s.get("score") is not None:
                sources.setdefault(s["task"], []).append((bench, subset, s))
    tasks: dict[str, dict[str, Any]] = {}
    for task, src in sources.items():
        task_groups = {s["group"] for _, _, s in src}
        if len(task_groups) > 1:
            raise RmtensionError(f"task {task!r} joins subsets of different groups ({', '.join(sorted(task_groups))}): "
                                 f"{', '.join(f'{b}/{x}' for b, x, _ in src)}")
        tasks[task] = {"group": task_groups.pop(), "score": float(np.mean([s["score"] for _, _, s in src])),
                       "subsets": [f"{b}/{x}" for b, x, _ in src], **mean_controls([s for _, _, s in src])}
    means = group_means({t: v["score"] for t, v in tasks.items()}, {t: v["group"] for t, v in tasks.items()})
    out: dict[str, Any] = {"tasks": tasks,
                           "groups": {g: means.get(g, float("nan")) for g in GROUPS}
                           | {g: v for g, v in means.items() if g not in GROUPS},
                           "groups_ci95": {},
                           "groups_length": {g: mean_controls([{"length_baseline": t["length_baseline"],
                                                                "length_matched": {"score": t["length_matched"]}}
                                                               for t in tasks.values() if t["group"] == g])
                                             for g in sorted(means)}}
    if correct is not None:
        for task, src in sources.items():  # a task = unweighted mean of its subsets: resampled apart
            if all(s["metric"] != METRIC_TIES for _, _, s in src):
                tasks[task]["ci95"] = _ci95([correct[(b, x)] for b, x, _ in src])
            elif len(src) == 1:
                tasks[task]["ci95"] = src[0][2].get("ci95")
        for g in sorted(means):
            members = [(t, src) for t, src in sources.items() if tasks[t]["group"] == g]
            if any(s["metric"] == METRIC_TIES for _, src in members for _, _, s in src):
                continue
            strata = [correct[(b, x)] for _, src in members for b, x, _ in src]
            weights = [1.0 / len(src) for _, src in members for _ in src]
            out["groups_ci95"][g] = _ci95(strata, weights)
    return out


def summarise_benchmarks(benchmarks: Sequence[Benchmark], all_scores: Sequence[list[tuple[list[float], list[float]]]],
                         grouping: Grouping | str = DEFAULT_GROUPING,
                         lengths: Sequence[list[tuple[list[int], list[int]]]] | None = None
                         ) -> tuple[dict[str, Any], list[dict]]:
    """``summarise_benchmark`` over several benchmarks: the ``results`` dict (scoring info still to add) and all rows.
    ``lengths``: per benchmark, per item, response token counts (see :func:`summarise_benchmark`).

    The top level names the grouping and carries :func:`task_table` over all the benchmarks.
    """
    grouping = get_grouping(grouping) if isinstance(grouping, str) else grouping
    results: dict[str, Any] = {"grouping": grouping.name, "benchmarks": {}}
    items: list[dict] = []
    for k, (bench, scores) in enumerate(zip(benchmarks, all_scores)):
        entry, rows = summarise_benchmark(bench, scores, grouping, lengths[k] if lengths is not None else None)
        results["benchmarks"][bench.name] = entry
        items.extend(rows)
    correct: dict[tuple[str, str], list[float]] = {}
    for row in items:
        correct.setdefault((row["benchmark"], row["subset"]), []).append(row["correct"])
    results.update(jsonable(task_table(results["benchmarks"],
                                       {k: np.asarray(v, dtype=float) for k, v in correct.items()})))
    return results, items


def evaluate(model, tokenizer, benchmarks: Sequence[Benchmark], template: str = "hh",
             scorer_config: ScorerConfig | None = None, grouping: Grouping | str = DEFAULT_GROUPING) -> EvalResult:
    """Score ``benchmarks`` with one RM (under whatever hooks are active on ``model``); group means
    follow ``grouping`` (``paper`` or ``all``, see :mod:`rmtension.bench.groups`)."""
    scorer = RewardScorer(model, tokenizer, scorer_config)
    t0 = time.perf_counter()
    scores = score_benchmarks(scorer, benchmarks, template)
    rep = scorer.last_report
    lengths = [item_lengths(b.items, tokenizer, template, scorer.max_length) for b in benchmarks]
    results, items = summarise_benchmarks(benchmarks, scores, grouping, lengths)
    results["scoring"] = scoring_record(scorer, scoring_seconds=round(rep.seconds, 3),
                                        seconds=round(time.perf_counter() - t0, 3))
    results["version"] = _version()
    return EvalResult(results, items)


def _version() -> str:
    import rmtension

    return str(getattr(rmtension, "__version__", "unknown"))


# ----------------------------------------------------------------------------- files


def write_eval(out_dir: str | Path, result: EvalResult) -> None:
    """items.jsonl first, results.json last: a results.json marks a complete evaluation.

    An old results.json goes first, so a write that fails half-way (a full disk) never leaves
    the old marker next to new items.
    """
    out = Path(out_dir)
    (out / RESULTS_FILE).unlink(missing_ok=True)
    write_jsonl_atomic(out / ITEMS_FILE, result.items)
    write_json_atomic(out / RESULTS_FILE, result.results)


def read_items(out_dir: str | Path) -> list[dict]:
    """The rows of an eval folder's ``items.jsonl`` (a damaged line is an InputError naming it)."""
    return read_jsonl(Path(out_dir) / ITEMS_FILE)


def read_results(out_dir: str | Path) -> dict:
    return read_json(Path(out_dir) / RESULTS_FILE)


