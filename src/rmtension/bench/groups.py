"""Which subsets measure helpfulness and which harmlessness — one table, overridable.

The paper tags chat, chat-hard, reasoning, math, code, factuality, precise instruction following
and focus as helpfulness-oriented, and safety, refusals, XSTest and Do-Not-Answer as
harmlessness-oriented. Exact subset names come first; a subset not listed is matched by the
keyword rules below (so RM-Bench's ``safety-refuse`` is harmless), and a subset nothing matches is
an error unless the item carries its own group.

Which subsets then enter the group means, and which subsets form one task, is a separate choice:
the named groupings at the end of this module (``paper``, the paper's task table, the default; and
``all``, every subset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from rmtension.errors import RmtensionError

SUBSET_GROUPS: dict[str, str] = {
    # RewardBench — Chat
    "alpacaeval-easy": "helpful",
    "alpacaeval-length": "helpful",
    "alpacaeval-hard": "helpful",
    "mt-bench-easy": "helpful",
    "mt-bench-med": "helpful",
    # RewardBench — Chat Hard
    "mt-bench-hard": "helpful",
    "llmbar-natural": "helpful",
    "llmbar-adver-neighbor": "helpful",
    "llmbar-adver-GPTInst": "helpful",
    "llmbar-adver-GPTOut": "helpful",
    "llmbar-adver-manual": "helpful",
    # RewardBench — Safety
    "refusals-dangerous": "harmless",
    "refusals-offensive": "harmless",
    "xstest-should-refuse": "harmless",
    "xstest-should-respond": "harmless",
    "donotanswer": "harmless",
    # RewardBench — Reasoning
    "math-prm": "helpful",
    "hep-cpp": "helpful",
    "hep-go": "helpful",
    "hep-java": "helpful",
    "hep-js": "helpful",
    "hep-python": "helpful",
    "hep-rust": "helpful",
    # RewardBench 2
    "Factuality": "helpful",
    "Precise IF": "helpful",
    "Math": "helpful",
    "Safety": "harmless",
    "Focus": "helpful",
    "Ties": "helpful",
    # RM-Bench domains
    "chat": "helpful",
    "code": "helpful",
    "math": "helpful",
    "safety-refuse": "harmless",
    "safety-response": "harmless",
}

# Fallback keyword rules, checked in order on the lower-cased subset name.
KEYWORD_GROUPS: tuple[tuple[str, str], ...] = (
    ("safety", "harmless"),
    ("refus", "harmless"),
    ("xstest", "harmless"),
    ("donotanswer", "harmless"),
    ("do-not-answer", "harmless"),
    ("harmless", "harmless"),
    ("chat", "helpful"),
    ("reason", "helpful"),
    ("math", "helpful"),
    ("code", "helpful"),
    ("hep-", "helpful"),
    ("factual", "helpful"),
    ("precise", "helpful"),
    ("focus", "helpful"),
    ("llmbar", "helpful"),
    ("alpacaeval", "helpful"),
    ("mt-bench", "helpful"),
    ("helpful", "helpful"),
)

_overrides: dict[str, str] = {}


def set_group_overrides(mapping: Mapping[str, str], source: str = "group overrides") -> None:
    """Replace the user's overrides (subset → "helpful"|"harmless"), checked before the table.

    ``source`` (the file they came from) starts any error message.
    """
    for subset, group in mapping.items():
        if group not in ("helpful", "harmless"):
            raise RmtensionError(f"{source}: group of subset {subset!r} must be 'helpful' or 'harmless', got {group!r}")
    _overrides.clear()
    _overrides.update(mapping)


def load_group_overrides(path: str | Path) -> dict[str, str]:
    """Read a JSON or YAML mapping {subset: group} and install it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark is not an error
    except (OSError, UnicodeDecodeError) as exc:
        raise RmtensionError(f"{p}: cannot read group overrides: {exc}") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            mapping = yaml.safe_load(text)
        else:
            mapping = json.loads(text)
    except RecursionError:
        raise RmtensionError(f"{p}: cannot parse group overrides: nested too deeply") from None
    except Exception as exc:
        raise RmtensionError(f"{p}: cannot parse group overrides: {' '.join(str(exc).split())}") from None
    if not isinstance(mapping, dict):
        raise RmtensionError(f"{p}: group overrides must be a mapping of subset to 'helpful' or 'harmless'")
    set_group_overrides(mapping, source=str(p))
    return dict(mapping)


def group_of(subset: str, explicit: str | None = None) -> str:
    """The group of a subset: user override, then the item's own ``explicit`` group, then the
    table, then the keyword rules."""
    if subset in _overrides:
        return _overrides[subset]
    if explicit is not None:
        if explicit not in ("helpful", "harmless"):
            raise RmtensionError(f"group of subset {subset!r} must be 'helpful' or 'harmless', got {explicit!r}")
        return explicit
    if subset in SUBSET_GROUPS:
        return SUBSET_GROUPS[subset]
    low = subset.lower()
    for key, group in KEYWORD_GROUPS:
        if key in low:
            return group
    raise RmtensionError(
        f"subset {subset!r} has no helpful/harmless group: give items a 'group' field, "
        "or pass --groups FILE with a mapping {subset: helpful|harmless}"
    )


# ----------------------------------------------------------------------------- named groupings
#
# A grouping decides which subsets enter the helpful/harmless group means and which subsets form one
# task together. It does not change an item's group (that is ``group_of`` above, user overrides
# included), only how subset scores are combined, so the same items.jsonl serves every grouping.

DEFAULT_GROUPING = "paper"


@dataclass(frozen=True)
class Grouping:
    """A named way to combine subset scores into tasks and helpful/harmless group means.

    ``excluded``: (benchmark, subset) pairs left out of every group mean (still scored and
    reported per subset). ``tasks``: (benchmark, subset) → task name; subsets sharing a task name
    form one task whose score is the unweighted mean of their scores; a subset not listed is a task
    of its own, named ``"<benchmark>/<subset>"``. ``closed``: benchmarks whose table is complete, so
    that a subset of theirs missing from ``tasks`` is left out too (the paper's code drops any
    subset its task table does not name). Benchmark names are the registered base names
    (``rm-bench``, not ``rm-bench:chat``).
    """

    name: str
    description: str
    excluded: frozenset[tuple[str, str]] = frozenset()
    tasks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    closed: frozenset[str] = frozenset()

    def includes(self, benchmark: str, subset: str) -> bool:
        """Whether the subset enters the group means."""
        key = (_base(benchmark), subset)
        if key in self.excluded:
            return False
        return key[0] not in self.closed or key in self.tasks

    def task_of(self, benchmark: str, subset: str) -> str:
        """The task the subset belongs to (its own ``benchmark/subset`` unless the table names one)."""
        base = _base(benchmark)
        return self.tasks.get((base, subset), f"{base}/{subset}")


def _base(benchmark: str) -> str:
    return benchmark.split(":")[0]


# The paper's task table. Source: EshaanT/RM-alignment_tension, notebooks/plotsNresults.ipynb at
# 96efa92ee8bb12bd63baeb6aba407c203b6b2751, cell 3: NORMALISED_SUB_TYPE (subset → task name),
# SUB_TASK_2_AVOIDE (subsets left out: 'Code', 'Hep-Java', 'Hep-Rust', 'Hep-JS', 'Hep-CPP', 'Hep-GO',
# 'Hep-Python', 'Ties', matched lower-cased against the raw subset names, i.e. RM-Bench ``code``,
# RewardBench's six ``hep-*`` and RewardBench 2 ``Ties``) and SUB_TASK_TYPE (task → Helpful /
# Harmless). Subset names per benchmark come from RM_interpretation/benchmarking/dataset.py (same
# commit): RM-Bench's ``domain``, RewardBench's ``subset`` of split ``filtered`` and RewardBench 2's
# ``subset``. Cells 11-12 and 69 then rename the subsets with NORMALISED_SUB_TYPE, so RM-Bench
# ``math`` and RewardBench 2 ``Math`` both become the task "Math", and average the rows of a task
# (``groupby([... 'sub_task' ...])['accuracy'].mean()``): the Math task is the unweighted mean of
# the two subset accuracies, not an item-pooled accuracy. A group's score ("Avg" in cell 69's tables)
# is the unweighted mean of its tasks. (Cell 69 also drops, with ``dropna(subset=["task_type"])``, any
# subset the table does not name: hence ``closed`` below. Benchmarks the paper did not use —
# hh-heldout, llmbar, your own files — are not in its table; under ``paper`` each of their subsets
# is a task of its own in its item group, as under ``all``.)
_PAPER_TASK_NAMES: dict[tuple[str, str], str] = {
    ("rm-bench", "chat"): "Chat",
    ("rm-bench", "math"): "Math",
    ("rm-bench", "safety-refuse"): "Safety Refuse",
    ("rm-bench", "safety-response"): "Safety Response",
    ("rewardbench", "alpacaeval-easy"): "Alpaca Eval (Easy)",
    ("rewardbench", "alpacaeval-hard"): "Alpaca Eval (Hard)",
    ("rewardbench", "alpacaeval-length"): "Alpaca Eval (Length)",
    ("rewardbench", "mt-bench-easy"): "MT Bench (Easy)",
    ("rewardbench", "mt-bench-med"): "MT Bench (Med)",
    ("rewardbench", "mt-bench-hard"): "MT Bench (Hard)",
    ("rewardbench", "llmbar-natural"): "LLM Bar (Natural)",
    ("rewardbench", "llmbar-adver-neighbor"): "LLM Bar (Adver Neighbor)",
    ("rewardbench", "llmbar-adver-GPTInst"): "LLM Bar (Adver GPTInst)",
    ("rewardbench", "llmbar-adver-GPTOut"): "LLM Bar (Adver GPTOut)",
    ("rewardbench", "llmbar-adver-manual"): "LLM Bar (Adver Manual)",
    ("rewardbench", "refusals-dangerous"): "Refusals Dangerous",
    ("rewardbench", "refusals-offensive"): "Refusals Offensive",
    ("rewardbench", "xstest-should-respond"): "XStest Should Respond",
    ("rewardbench", "xstest-should-refuse"): "XStest Should Refuse",
    ("rewardbench", "donotanswer"): "Do Not Answer",
    ("rewardbench", "math-prm"): "Math PRM",
    ("rewardbench2", "Factuality"): "Factuality",
    ("rewardbench2", "Precise IF"): "Precise IF",
    ("rewardbench2", "Math"): "Math",
    ("rewardbench2", "Safety"): "Safety",
    ("rewardbench2", "Focus"): "Focus",
}
_PAPER_EXCLUDED: frozenset[tuple[str, str]] = frozenset(
    [("rm-bench", "code"), ("rewardbench2", "Ties")]
    + [("rewardbench", f"hep-{lang}") for lang in ("cpp", "go", "java", "js", "python", "rust")]
)
# The paper's task → group (SUB_TASK_TYPE, same cell), used to check that the table above agrees
# with SUBSET_GROUPS; the group of a subset is still decided by ``group_of``.
PAPER_TASK_GROUPS: dict[str, str] = {
    **{t: "helpful" for t in (
        "Chat", "Math", "Alpaca Eval (Easy)", "Alpaca Eval (Hard)", "Alpaca Eval (Length)", "MT Bench (Easy)",
        "MT Bench (Med)", "MT Bench (Hard)", "LLM Bar (Natural)", "LLM Bar (Adver Neighbor)",
        "LLM Bar (Adver GPTInst)", "LLM Bar (Adver GPTOut)", "LLM Bar (Adver Manual)", "Math PRM", "Factuality",
        "Precise IF", "Focus")},
    **{t: "harmless" for t in (
        "Safety Refuse", "Safety Response", "Refusals Dangerous", "Refusals Offensive", "XStest Should Respond",
        "XStest Should Refuse", "Do Not Answer", "Safety")},
}

GROUPINGS: dict[str, Grouping] = {
    "paper": Grouping(
        "paper",
        "the paper's task table: RewardBench hep-* (code), RM-Bench code and RewardBench 2 Ties left out of "
        "the group means; RM-Bench math and RewardBench 2 Math averaged into one Math task",
        _PAPER_EXCLUDED, _PAPER_TASK_NAMES, frozenset({"rewardbench", "rewardbench2", "rm-bench"})),
    "all": Grouping("all", "every subset is a task of its own and enters its group mean"),
}


def get_grouping(name: str) -> Grouping:
    """The grouping registered under ``name`` (``paper`` or ``all``); a one-line error otherwise."""
    try:
        return GROUPINGS[name]
    except KeyError:
        raise RmtensionError(f"unknown grouping {name!r}; choose one of: {', '.join(GROUPINGS)}") from None
