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
