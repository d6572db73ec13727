"""Tokenising RM input texts the same way for training, scoring and neuron statistics.

Over-long texts are cut from the *left*: the end of an RM input holds the response being judged
and the token whose hidden state the head reads, so that is what must survive. A leading special
token (BERT's [CLS], a BOS) is kept in front.
"""

from __future__ import annotations

from typing import Sequence


def model_max_length(model, tokenizer=None, cap: int | None = None) -> int:
    """The longest input the model accepts (positions), optionally capped."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if limit is None and tokenizer is not None and 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limit = tokenizer.model_max_length
    limit = int(limit or 1024)
    return min(limit, cap) if cap else limit


def encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, with the tokenizer's own special tokens, without truncation."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]]


def truncate_left(ids: list[int], max_length: int, special_ids: set[int]) -> list[int]:
    """Keep the last ``max_length`` tokens (and a leading special token, if any)."""
    if len(ids) <= max_length:
        return ids
    if ids and ids[0] in special_ids and max_length > 1:
        return ids[:1] + ids[len(ids) - (max_length - 1):]
    return ids[len(ids) - max_length:]


def common_prefix(a: Sequence[int], b: Sequence[int], *, own_token: bool = True) -> int:
    """Length of the shared token prefix of ``a`` and ``b``, by default leaving each at least one own token.

    Computed on token ids (not text), so a prompt whose last token merges with the start of the
    response is simply not shared past that token. The cap keeps both branches non-empty (two
    identical texts, or one a prefix of the other, still give each side its own last token), as
    shared-prompt packing needs; ``own_token=False`` gives the plain longest common prefix (where a
    pair's two responses start, for attribution)."""
    n = min(len(a), len(b)) - (1 if own_token else 0)
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return max(k, 0)


def truncate_pair_left(chosen: list[int], rejected: list[int], max_length: int,
                       special_ids: set[int]) -> tuple[list[int], list[int]]:
    """Cut both sides of a pair by the same number of leading tokens, when that cut lies inside their common prefix.

    Why: :func:`truncate_left` cuts each side to its own last ``max_length`` tokens, so two sides of unequal
    length lose different amounts of their shared dialogue and no longer start alike; the shared-prompt training
    path then finds a short common prefix and computes most of the dialogue twice (on HH at 256 tokens, the
    prefix share of the real tokens falls from ~70% to 22-43%). Cutting the same ``k = max(len) - max_length``
    tokens from both keeps the two sides' context identical (the longer side fits exactly; the shorter side
    loses context it could have kept). When ``k`` reaches past the common prefix (a response alone longer than
    the room left) there is no aligned cut, and each side is cut as :func:`truncate_left` does.
    A leading special token (BOS) shared by both sides is kept, as :func:`truncate_left` keeps it.
    """
    longest = max(len(chosen), len(rejected))
    if longest <= max_length:
        return chosen, rejected
    lead = 1 if (chosen and rejected and chosen[0] == rejected[0] and chosen[0] in special_ids and max_length > 1) else 0
    k = longest - max_length
    # common_prefix leaves each side one own token, so a cut inside it leaves both sides non-empty.
    if lead + k < common_prefix(chosen, rejected):
        return chosen[:lead] + chosen[lead + k:], rejected[:lead] + rejected[lead + k:]
    return truncate_left(chosen, max_length, special_ids), truncate_left(rejected, max_length, special_ids)
