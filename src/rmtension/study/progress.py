"""How long a study's steps took and how long the rest will take (the lines ``rmtension run`` prints).

Why per kind: a study's steps differ by orders of magnitude (training an RM takes minutes to hours,
an overlap table a second), so "mean step time × steps left" would be wrong by far after the
first few cheap steps. The estimate uses, for each step left, the mean time of the steps of its
kind that already ran in this run, and the mean of all steps that ran for a kind not seen yet.
It is an estimate of this run only: cached steps cost nothing and are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence


class StepClock:
    """Durations of the steps that ran, by kind, and the estimate of the steps still to run."""

    def __init__(self) -> None:
        self._seconds: dict[str, list[float]] = defaultdict(list)

    def record(self, kind: str, seconds: float) -> None:
        self._seconds[kind].append(float(seconds))

    def eta(self, kinds_left: Iterable[str]) -> float | None:
        """Seconds the steps of ``kinds_left`` should take; None before any step ran (nothing to go by)."""
        every = [s for times in self._seconds.values() for s in times]
        if not every:
            return None
        overall = sum(every) / len(every)
        total = 0.0
        for kind in kinds_left:
            times = self._seconds.get(kind)
            total += sum(times) / len(times) if times else overall
        return total


def duration_text(seconds: float) -> str:
    """A duration the way a person reads it: ``42s``, ``3m05s``, ``2h07m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def step_done_line(index: int, count: int, label: str, seconds: float, eta: float | None,
                   left: Sequence[str]) -> str:
    """``[3/20] train:tiny/helpful/s0 done in 1m12s; 12 steps left, ETA 14m05s``."""
    tail = "; nothing left to run" if not left else (
        f"; {len(left)} step{'s' if len(left) != 1 else ''} left"
        + ("" if eta is None else f", ETA {duration_text(eta)}"))
    return f"[{index}/{count}] {label} done in {duration_text(seconds)}{tail}"
