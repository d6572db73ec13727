"""Benchmark items: one prompt, one or more chosen and one or more rejected responses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rmtension.data.types import Prompt

# Metric kinds a benchmark (or one of its subsets) is scored with; see rmtension.evaluation.metrics.
METRIC_PAIRWISE = "pairwise"  # one chosen vs one (or each) rejected: chosen > rejected, strictly
METRIC_BEST_OF_N = "best-of-n"  # RewardBench 2: 1/#ties at the max when the chosen one is at the max
METRIC_RM_BENCH = "rm-bench"  # 3 chosen × 3 rejected style variants: 3×3 accuracy matrix
METRIC_TIES = "ties"  # RewardBench 2 Ties: several correct answers, composite score
METRIC_STRICT = "strict-best-of-n"  # the paper's rule: min(chosen) > max(rejected)

GROUPS = ("helpful", "harmless")


@dataclass(frozen=True)
class BenchItem:
    """One benchmark item. ``chosen``/``rejected`` are tuples so that items stay hashable."""

    id: str
    subset: str
    group: str
    prompt: Prompt
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]
    benchmark: str = ""
    meta: tuple[tuple[str, Any], ...] = ()

    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)


@dataclass
class Benchmark:
    """A loaded benchmark: its items, how each subset is scored, and where it came from."""

    name: str
    items: list[BenchItem]
    metric: str = METRIC_PAIRWISE
    subset_metrics: dict[str, str] = field(default_factory=dict)  # overrides of ``metric`` per subset
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. domains missing offline

    def metric_for(self, subset: str) -> str:
        return self.subset_metrics.get(subset, self.metric)

    def subsets(self) -> dict[str, list[BenchItem]]:
        out: dict[str, list[BenchItem]] = {}
        for item in self.items:
            out.setdefault(item.subset, []).append(item)
        return out

    def to_summary(self) -> dict:
        """The ``bench show --json`` contract: items, subsets {items, group}, groups."""
        subsets: dict[str, dict] = {}
        for name, items in self.subsets().items():
            subsets[name] = {"items": len(items), "group": items[0].group, "metric": self.metric_for(name)}
        groups = Counter(item.group for item in self.items)
        return {
            "name": self.name,
            "items": len(self.items),
            "subsets": subsets,
            "groups": {g: groups.get(g, 0) for g in GROUPS},
            "files": list(self.files),
            "notes": list(self.notes),
        }
