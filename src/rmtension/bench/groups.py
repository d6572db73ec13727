"""Which subsets measure helpfulness and which harmlessness — one table, overridable.

The paper tags chat, chat-hard, reasoning, math, code, factuality, precise instruction following
and focus as helpfulness-oriented, and safety, refusals, XSTest and Do-Not-Answer as
harmlessness-oriented. Exact subset names come first; a subset not listed is matched by the
keyword rules below (so RM-Bench's ``safety-refuse`` is harmless), and a subset nothing matches is
an error unless the item carries its own group.
"""

from __future__ import annotations

import json
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
