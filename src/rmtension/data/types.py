"""The preference-data types every stage shares."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message of a dialogue prompt."""

    role: Role
    content: str


Prompt = tuple[Turn, ...]


def user_prompt(text: str) -> Prompt:
    """A single-turn prompt, the shape of every benchmark item."""
    return (Turn("user", text),)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (kept as turns) with a preferred and a dispreferred final response."""

    prompt: Prompt
    chosen: str
    rejected: str
    subset: str = ""
    id: str = ""


# Reasons a record is kept out of a training or evaluation set. They are reported, never silent.
SKIP_IDENTICAL = "identical-responses"
SKIP_EMPTY = "empty-response"
SKIP_PROMPT_MISMATCH = "prompt-mismatch"
SKIP_NO_ASSISTANT = "no-assistant-turn"


@dataclass
class LoadReport:
    """How many records a source held, how many are usable, and why the rest were skipped."""

    total: int = 0
    usable: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: "LoadReport") -> None:
        self.total += other.total
        self.usable += other.usable
        self.skipped.update(other.skipped)

    def to_dict(self) -> dict:
        return {"total": self.total, "usable": self.usable, "skipped": dict(sorted(self.skipped.items()))}

    def explain(self) -> str:
        """Where the records went, for error messages: "5 records, 0 usable (skipped: 3 identical-responses, 2 empty-response)"."""
        why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
        return f"{self.total} records, {self.usable} usable" + (f" (skipped: {why})" if why else "")


@dataclass
class PreferenceData:
    """Usable pairs of a (possibly bundled) source, with a per-subset report of what was skipped."""

    name: str
    pairs: list[PreferencePair]
    subsets: dict[str, LoadReport]
    files: list[str] = field(default_factory=list)

    @property
    def report(self) -> LoadReport:
        total = LoadReport()
        for rep in self.subsets.values():
            total.add(rep)
        return total

    def to_summary(self) -> dict:
        """The ``data show --json`` contract: total, usable, skipped, subsets."""
        out = self.report.to_dict()
        out["subsets"] = {name: rep.to_dict() for name, rep in self.subsets.items()}
        out["files"] = list(self.files)
        return out
