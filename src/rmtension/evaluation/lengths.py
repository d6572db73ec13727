"""Response lengths in the RM's tokens, as the scorer saw them (for the length controls).

A length-only baseline compares the *responses*, not the rendered inputs (the prompt and template
are the same on both sides of a pair), so what is counted is the tokens of the response alone:
the rendered text (:func:`rmtension.models.formatting.format_for_rm`) is tokenised exactly as the
scorer tokenises it (:func:`rmtension.models.encoding.encode`, with special tokens), and a token
counts when its character span overlaps the response's span in that text. Truncation-aware: when
the rendered text is longer than the scorer's ``max_length`` it is cut from the left as the scorer
cuts it (:func:`rmtension.models.encoding.truncate_left`), and only the response tokens that
survive are counted. Template text, special tokens and the appended EOS are never counted.

Tokenizers without offset mappings (slow, Python-only ones) fall back to the response tokenised on
its own without special tokens, capped at ``max_length`` (boundary merges with the template can then
be off by a token).
"""

from __future__ import annotations

from typing import Any, Sequence

from rmtension.models.formatting import format_for_rm


def _span(text: str, response: str) -> tuple[int, int] | None:
    """Where the response sits in the rendered text: its last occurrence (the response is the
    final turn; only template text such as EOS follows it). None when the template changed it."""
    if not response:
        return (len(text), len(text))
    for r in (response, response.strip()):
        if r:
            pos = text.rfind(r)
            if pos >= 0:
                return (pos, pos + len(r))
    return None


def count_response_tokens(texts: Sequence[str], responses: Sequence[str], tokenizer: Any, max_length: int
                          ) -> list[int]:
    """Tokens of each response inside its rendered text that the scorer keeps (see the module docstring)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    cache: dict[tuple[str, str], int] = {}
    if getattr(tokenizer, "is_fast", False) and texts:
        uniq = list(dict.fromkeys(zip(texts, responses)))
        enc = tokenizer([t for t, _ in uniq], add_special_tokens=True, truncation=False, verbose=False,
                        return_offsets_mapping=True)
        for (text, resp), ids, offsets in zip(uniq, enc["input_ids"], enc["offset_mapping"]):
            span = _span(text, resp)
            if span is None:
                continue
            n = len(ids)
            kept_from = 0
            if n > max_length:
                lead = 1 if ids and ids[0] in special and max_length > 1 else 0
                kept_from = n - (max_length - lead)
            s, e = span
            cache[(text, resp)] = sum(1 for p, (a, b) in enumerate(offsets)
                                      if p >= kept_from and b > a and b > s and a < e)
    missing = [k for k in range(len(texts)) if (texts[k], responses[k]) not in cache]
    if missing:
        alone = tokenizer([responses[k] for k in missing], add_special_tokens=False, truncation=False, verbose=False)
        for k, ids in zip(missing, alone["input_ids"]):
            cache[(texts[k], responses[k])] = min(len(ids), max_length)
    return [cache[key] for key in zip(texts, responses)]


def item_lengths(items: Sequence[Any], tokenizer: Any, template: str, max_length: int
                 ) -> list[tuple[list[int], list[int]]]:
    """(chosen_tokens, rejected_tokens) of every benchmark item, responses in the item's order."""
    texts: list[str] = []
    responses: list[str] = []
    shape: list[tuple[int, int]] = []
    for item in items:
        for r in (*item.chosen, *item.rejected):
            texts.append(format_for_rm(item.prompt, r, tokenizer, template))
            responses.append(r)
        shape.append((len(item.chosen), len(item.rejected)))
    counts = count_response_tokens(texts, responses, tokenizer, max_length)
    out, pos = [], 0
    for c, r in shape:
        out.append((counts[pos:pos + c], counts[pos + c:pos + c + r]))
        pos += c + r
    return out
