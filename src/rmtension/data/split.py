"""Deterministic train / held-out split by a hash of the prompt.

Only HH-RLHF's test files exist offline, so training and held-out evaluation are carved from the
same files. The split hashes the *first user turn* of each prompt (salted, SHA-256), so that every
dialogue that opens with the same question lands on the same side: no prompt, and no branch of a
conversation, is on both sides. The split is stable across machines, Python versions and orders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from rmtension.data.types import PreferencePair, Prompt

DEFAULT_HELDOUT_FRACTION = 0.2
DEFAULT_SALT = "rmtension-split-v1"
SPLIT_KEY = "sha256(salt, first user turn)"


@dataclass(frozen=True)
class HeldoutSplit:
    """One train / held-out split: the share of prompts held out and the salt of the hash.

    An RM records the split it was trained with (``rmtension.json``, key ``split``) so that
    everything that later claims to be "held out" for that RM (``hh-heldout``, ``neurons score
    --split heldout``) is carved the same way and never contains a prompt it was trained on.
    """

    fraction: float = DEFAULT_HELDOUT_FRACTION
    salt: str = DEFAULT_SALT

    def apply(self, pairs: Sequence[PreferencePair]) -> tuple[list[PreferencePair], list[PreferencePair]]:
        return split_pairs(pairs, self.fraction, self.salt)

    def to_record(self) -> dict[str, Any]:
        return {"heldout_fraction": self.fraction, "salt": self.salt, "key": SPLIT_KEY}


def prompt_key(prompt: Prompt) -> str:
    """The text that decides a pair's side: its first user turn (or first turn of any role)."""
    for turn in prompt:
        if turn.role == "user":
            return turn.content.strip()
    return prompt[0].content.strip() if prompt else ""


def heldout_bucket(prompt: Prompt, salt: str = DEFAULT_SALT) -> float:
    """A number in [0, 1) fixed by the prompt; pairs with bucket < fraction are held out."""
    digest = hashlib.sha256(f"{salt}\x00{prompt_key(prompt)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_pairs(
    pairs: Sequence[PreferencePair],
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
    salt: str = DEFAULT_SALT,
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Return (train, heldout), each in the input order."""
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError("heldout_fraction must be in [0, 1]")
    train: list[PreferencePair] = []
    heldout: list[PreferencePair] = []
    for pair in pairs:
        (heldout if heldout_bucket(pair.prompt, salt) < heldout_fraction else train).append(pair)
    return train, heldout


def sample_pairs(pairs: list[PreferencePair], n: int | None, seed: int) -> list[PreferencePair]:
    """At most ``n`` pairs, chosen by a seeded hash of their ids (stable under file re-ordering)."""
    if n is None or n >= len(pairs):
        return list(pairs)
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(f"{seed}\x00{p.id}".encode()).digest())
    keep = {id(p) for p in ranked[:n]}
    return [p for p in pairs if id(p) in keep]
