"""Parsing Anthropic HH-RLHF transcripts into a prompt (as turns) and two final responses.

An HH record holds two whole transcripts, ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. The prompt is
everything up to the last ``\\n\\nAssistant:`` and must be the same in both; the response is what
follows it. The official files contain a few odd records (identical responses, empty final
responses, transcripts that diverge before the last turn); they are reported by reason.
"""

from __future__ import annotations

import re

from rmtension.data.types import (
    SKIP_EMPTY,
    SKIP_IDENTICAL,
    SKIP_NO_ASSISTANT,
    SKIP_PROMPT_MISMATCH,
    Prompt,
    Turn,
)

ASSISTANT_MARK = "\n\nAssistant:"
_TURN_SPLIT = re.compile(r"\n\n(Human|Assistant|System):")
_ROLE = {"Human": "user", "Assistant": "assistant", "System": "system"}


def split_transcript(transcript: str) -> tuple[str, str] | None:
    """Split at the last assistant marker into (prompt text, response); None if there is none."""
    cut = transcript.rfind(ASSISTANT_MARK)
    if cut < 0:
        return None
    return transcript[:cut], transcript[cut + len(ASSISTANT_MARK):].strip()


def parse_turns(prompt_text: str) -> Prompt:
    """Turn ``"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c"`` into turns, keeping every turn's text.

    Text before the first marker (absent in the official files) is kept as a user turn so that
    nothing is lost.
    """
    parts = _TURN_SPLIT.split(prompt_text)
    turns: list[Turn] = []
    head = parts[0].strip()
    if head:
        turns.append(Turn("user", head))
    for speaker, content in zip(parts[1::2], parts[2::2]):
        turns.append(Turn(_ROLE[speaker], content.strip()))
    return tuple(turns)


def parse_hh_pair(chosen: str, rejected: str) -> tuple[Prompt, str, str] | str:
    """Parse one HH record; return (prompt, chosen response, rejected response) or a skip reason."""
    c = split_transcript(chosen)
    r = split_transcript(rejected)
    if c is None or r is None:
        return SKIP_NO_ASSISTANT
    if chosen == rejected:
        return SKIP_IDENTICAL
    if c[0] != r[0]:
        return SKIP_PROMPT_MISMATCH
    if not c[1] or not r[1]:
        return SKIP_EMPTY
    if c[1] == r[1]:
        return SKIP_IDENTICAL
    return parse_turns(c[0]), c[1], r[1]
