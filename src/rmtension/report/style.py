"""Colours, orders and names shared by every figure and table.

Why fixed: a reader learns once that blue is the helpful RM, orange the harmless one and purple
the mixed one, and every figure keeps that; orders (objectives, ablation sets, methods) are fixed
so tables of different backbones line up. None of these colours is used by the page's CSS, so a
rendering test can look for them in a screenshot to tell that figures were drawn.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from rmtension.names import ABLATION_SETS, PAPER_SCORE_METHODS

OBJECTIVES = ("helpful", "harmless", "mixed")
GROUPS = ("helpful", "harmless")
OBJECTIVE_COLORS = {"helpful": "#1f6fc5", "harmless": "#e07b00", "mixed": "#8a3ffc"}
GROUP_COLORS = {"helpful": OBJECTIVE_COLORS["helpful"], "harmless": OBJECTIVE_COLORS["harmless"], "all": "#444444"}
FALLBACK_COLORS = ("#2a9d8f", "#d62828", "#6c757d", "#b5838d", "#588157", "#bc6c25", "#3a0ca3")

SET_COLORS = {"own": "#264653", "shared": "#6d597a", "helpful-only": "#1f6fc5", "harmless-only": "#e07b00",
              "random": "#7f7f7f"}

# Scoring methods: the paper's three first, others after in name order.
METHODS = PAPER_SCORE_METHODS
METHOD_COLORS = {"magnitude": "#d62828", "change": "#2a9d8f", "random": "#7f7f7f"}
BEFORE_COLOR = "#9e9e9e"

THIRDS = ("early", "middle", "late")


def ordered(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """The distinct ``values``: those in ``preferred`` first in that order, the rest sorted."""
    seen = list(dict.fromkeys(str(v) for v in values))
    return [p for p in preferred if p in seen] + sorted(v for v in seen if v not in preferred)


def color_for(name: str, table: dict[str, str], others: Sequence[str] = ()) -> str:
    """``name``'s fixed colour, or a stable fallback by its position among ``others``."""
    if name in table:
        return table[name]
    extra = [o for o in others if o not in table]
    idx = extra.index(name) if name in extra else sum(map(ord, name))
    return FALLBACK_COLORS[idx % len(FALLBACK_COLORS)]


def slug(text: str) -> str:
    """A file-name-safe form of a backbone, benchmark or method name ("openai/gpt2" → "openai-gpt2")."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return s or "x"


def seed_sort_key(seed: object) -> tuple[int, object]:
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))
