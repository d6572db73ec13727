"""Ablation statistics: is ablating a neuron set worse than ablating a size-matched random set?

Why: a table of "own −12 points, random −3 points" says nothing about whether −12 and −3 differ
beyond noise. The two effects are measured on the same items of the same RM, so they are compared
*paired*: per item, the ablated set's correctness minus the random set's correctness (the
unablated baseline cancels in that difference, so ``diff`` = ``set_delta`` − ``random_delta``
exactly). Seeds are separate RMs; their items are never pooled with each other's, only their
per-seed mean differences averaged. With many tasks in one table, some "effects" pass p < 0.05 by
chance, so the p-values of one table (a *family*) are Holm-corrected.

Pure numpy functions; reading the ablation folders' items.jsonl is the caller's (study/gather.py).

Definitions (docs/STUDY_FORMAT.md, ``ablation_stats``):

- A *stratum* is one subset's items. A subset task has one; a group-mean task ("<bench>/<group>
  (group mean)") has one per subset of the group, weighted equally, as the group score is the
  unweighted mean of its subsets' scores. Per seed, the task's statistic is the mean over strata of
  the mean over the stratum's items; over seeds, the mean of the per-seed statistics.
- ``ci95``: percentile bootstrap of ``diff``: each resample redraws, within every seed and every
  stratum, that stratum's items with replacement (the pairs item ↔ (set, random) are kept).
- ``p``: two-sided paired sign-flip (randomisation) test of "the set and its random control are
  exchangeable": each item's paired difference gets an independent random sign; p = (1 + #{|T*| ≥
  |T|}) / (1 + B) (never 0: Phipson & Smyth 2010, "Permutation p-values should never be zero").
- Holm (1979) step-down: with the m p-values of a family sorted ascending, p_holm(i) =
  max_{j ≤ i} min(1, (m − j + 1) · p(j)); a task *survives* when p_holm < 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rmtension.errors import RmtensionError

ALPHA = 0.05
DEFAULT_RESAMPLES = 5000
TEST_NAME = "paired sign-flip randomisation, items within seeds"


@dataclass
class Stratum:
    """One subset's items on one seed: per-item correctness with the set ablated, with its random
    control ablated, and unablated (all in the same item order)."""

    set_correct: np.ndarray
    random_correct: np.ndarray
    base_correct: np.ndarray

    def __post_init__(self) -> None:
        self.set_correct = np.asarray(self.set_correct, dtype=float)
        self.random_correct = np.asarray(self.random_correct, dtype=float)
        self.base_correct = np.asarray(self.base_correct, dtype=float)
        n = self.set_correct.size
        if self.set_correct.ndim != 1 or n == 0:
            raise RmtensionError("an ablation stratum needs at least one item")
        if self.random_correct.shape != (n,) or self.base_correct.shape != (n,):
            raise RmtensionError(f"ablation stratum: {n} set items but {self.random_correct.size} random and "
                                 f"{self.base_correct.size} baseline items; the items must be paired")

    @property
    def diff(self) -> np.ndarray:
        """Per-item paired difference: set − random (the baseline cancels)."""
        return self.set_correct - self.random_correct


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (NaN stays NaN and does not count in m)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p[idx])))
        out[idx] = running
    return out.tolist()


def _statistic(seeds: Sequence[Sequence[np.ndarray]]) -> float:
    """Mean over seeds of the mean over strata of the mean over items."""
    return float(np.mean([np.mean([float(np.mean(d)) for d in strata]) for strata in seeds]))


def _resampled(seeds: Sequence[Sequence[np.ndarray]], n_resamples: int, rng: np.random.Generator,
               how: str) -> np.ndarray:
    """The statistic under ``n_resamples`` item bootstraps (``how="bootstrap"``) or sign flips."""
    total = np.zeros(n_resamples)
    for strata in seeds:
        per_seed = np.zeros(n_resamples)
        for d in strata:
            n = d.size
            if how == "bootstrap":
                pick = rng.integers(0, n, size=(n_resamples, n))
                per_seed += d[pick].mean(axis=1)
            else:
                signs = rng.integers(0, 2, size=(n_resamples, n)) * 2.0 - 1.0
                per_seed += (signs * d[None, :]).mean(axis=1)
        total += per_seed / len(strata)
    return total / len(seeds)


def paired_effect(seeds: Sequence[Sequence[Stratum]], *, n_resamples: int = DEFAULT_RESAMPLES,
                  seed: int = 0) -> dict[str, Any]:
    """``set_delta``, ``random_delta``, ``diff`` with its bootstrap ``ci95`` and sign-flip ``p``.

    ``seeds``: per seed, the task's strata (see the module docstring). Deterministic for a given
    ``seed`` (``numpy.random.default_rng``).
    """
    if not seeds or any(not strata for strata in seeds):
        raise RmtensionError("ablation statistics need at least one seed with at least one stratum")
    set_delta = _statistic([[s.set_correct - s.base_correct for s in strata] for strata in seeds])
    random_delta = _statistic([[s.random_correct - s.base_correct for s in strata] for strata in seeds])
    diffs = [[s.diff for s in strata] for strata in seeds]
    observed = _statistic(diffs)
    rng = np.random.default_rng(seed)
    boot = _resampled(diffs, n_resamples, rng, "bootstrap")
    flips = _resampled(diffs, n_resamples, rng, "sign-flip")
    low, high = np.percentile(boot, [2.5, 97.5])
    # a small tolerance so that flips reproducing |T| exactly (e.g. all-zero differences) count as extreme
    extreme = int(np.sum(np.abs(flips) >= abs(observed) - 1e-12))
    return {"set_delta": set_delta, "random_delta": random_delta, "diff": observed,
            "ci95": {"low": float(low), "high": float(high)}, "p": (1 + extreme) / (1 + n_resamples),
            "n_items": int(sum(s.set_correct.size for strata in seeds for s in strata)),
            "test": f"{TEST_NAME} (B={n_resamples}); ci95: paired percentile bootstrap of items within seeds"}


def apply_holm(rows: list[dict[str, Any]], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Add ``p_holm`` and ``survives`` to rows that carry ``p`` and ``family`` (in place; returned)."""
    families: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault(str(r["family"]), []).append(i)
    for idx in families.values():
        adjusted = holm([rows[i]["p"] for i in idx])
        for i, p_adj in zip(idx, adjusted):
            rows[i]["p_holm"] = p_adj
            rows[i]["survives"] = bool(math.isfinite(p_adj) and p_adj < alpha)
    return rows


# ----------------------------------------------------------------------------- from items.jsonl rows


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (str(row["benchmark"]), str(row["subset"]), str(row["id"]))


def _by_subset(base: Sequence[dict], ablated: Sequence[dict], random: Sequence[dict]
               ) -> dict[tuple[str, str], Stratum]:
    """Pair the three item lists of one seed by (benchmark, subset, id); strata by subset.

    Ties subsets (RewardBench 2: a composite score, not a mean of item correctness) are left out.
    Items whose ids repeat within a subset are paired by position instead (a sweep writes every set's
    items in the same order), after checking that the three lists name the same items in that order.
    """
    base = [r for r in base if r.get("metric") != "ties"]
    ablated = [r for r in ablated if r.get("metric") != "ties"]
    random = [r for r in random if r.get("metric") != "ties"]
    keys = [_key(r) for r in base]
    if len(set(keys)) == len(keys):
        a = {_key(r): r for r in ablated}
        b = {_key(r): r for r in random}
        missing = [k for k in keys if k not in a or k not in b]
        if missing:
            raise RmtensionError(f"item {missing[0]} of the unablated run is missing from an ablated run; the sets "
                                 "were not evaluated on the same items")
        set_rows, random_rows = [a[k] for k in keys], [b[k] for k in keys]
    else:
        if [_key(r) for r in ablated] != keys or [_key(r) for r in random] != keys:
            raise RmtensionError("the ablated runs' items are missing or not in the unablated run's order; the sets "
                                 "were not evaluated on the same items")
        set_rows, random_rows = list(ablated), list(random)
    cols: dict[tuple[str, str], tuple[list[float], list[float], list[float]]] = {}
    for row, srow, rrow in zip(base, set_rows, random_rows):
        s, r, z = cols.setdefault(_key(row)[:2], ([], [], []))
        s.append(float(srow["correct"]))
        r.append(float(rrow["correct"]))
        z.append(float(row["correct"]))
    return {k: Stratum(np.array(s), np.array(r), np.array(z)) for k, (s, r, z) in cols.items()}


def task_strata(base: Sequence[dict], ablated: Sequence[dict], random: Sequence[dict],
                group_members: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[Stratum]]:
    """One seed's strata per task: ``(bench, subset)`` tasks and ``(bench, "<group> (group mean)")``.

    ``group_members``: (bench, group) → the subsets counted in that group's mean (results.json's
    ``in_group_mean``). A group with a Ties subset, or with a subset missing, gets no task.
    """
    subsets = _by_subset(base, ablated, random)
    out: dict[tuple[str, str], list[Stratum]] = {k: [v] for k, v in subsets.items()}
    for (bench, group), members in group_members.items():
        if members and all((bench, m) in subsets for m in members):
            out[(bench, f"{group} (group mean)")] = [subsets[(bench, m)] for m in members]
    return out


def ablation_stats(per_seed: dict[int, dict[tuple[str, str], list[Stratum]]], info: dict[str, Any],
                   groups: dict[tuple[str, str], str], *, n_resamples: int = DEFAULT_RESAMPLES,
                   alpha: float = ALPHA) -> list[dict[str, Any]]:
    """The ``ablation_stats`` rows of one family (one backbone × RM × set), Holm applied.

    ``per_seed``: seed → :func:`task_strata`; ``info``: backbone, rm_objective, set, method, k;
    ``groups``: task → helpful/harmless. A task enters with the seeds that have it.
    """
    family = f"{info['backbone']}/{info['rm_objective']}/{info['set']}"
    tasks = sorted({t for strata in per_seed.values() for t in strata})
    rows = []
    for task in tasks:
        seeds = sorted(s for s, strata in per_seed.items() if task in strata)
        eff = paired_effect([per_seed[s][task] for s in seeds], n_resamples=n_resamples)
        rows.append({"backbone": info["backbone"], "rm_objective": info["rm_objective"], "set": info["set"],
                     "method": info["method"], "k": info["k"], "task": f"{task[0]}/{task[1]}",
                     "group": groups.get(task), "seeds": seeds, **eff, "family": family})
    return apply_holm(rows, alpha)
