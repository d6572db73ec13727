"""Packed rows: several texts that share a token prefix, computed in one row of a decoder.

Training packs ``[prompt | chosen | rejected]`` (``rmtension.training.batching``) and the scorer packs
``[prefix | rest 1 | rest 2 | ...]`` (``rmtension.evaluation.scorer``); both need the same two things,
kept here once: the position a sequence-classification head reads, and the attention mask that lets
each text see the shared prefix and itself but never a sibling.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def read_position(ids: Sequence[int], pad_id: int | None) -> int:
    """The position a decoder head scores: the rightmost token that is not the config's pad id.

    Same rule as transformers 5.24's ``GPT2ForSequenceClassification`` and
    ``GenericForSequenceClassification`` (``(arange(L) * (ids != pad)).argmax(-1)``: 0 when every
    token is a pad); a model without a pad id reads the last position.
    """
    if pad_id is None:
        return len(ids) - 1
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] != pad_id:
            return i
    return 0


def _allowed(segment_ids: torch.Tensor, position_ids: torch.Tensor, window: int | None) -> torch.Tensor:
    """[B, L, L] bool: query i may attend key j.

    Segments: 0 the shared prefix, 1, 2, ... the texts' own rests, -1 padding. A real query sees
    earlier keys of the prefix and of its own segment (never a sibling's); padding sees earlier
    padding, so no row of the mask is empty and no real token ever sees a pad. With ``window``
    (sliding-window layers), also pos_q − pos_k < window on the *unpacked* positions: transformers'
    rule ``kv_idx > q_idx − sliding_window`` (masking_utils.sliding_window_overlay, 5.24).
    """
    width = segment_ids.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=segment_ids.device).tril()
    q, k = segment_ids[:, :, None], segment_ids[:, None, :]
    ok = causal[None] & (((k == 0) & (q >= 0)) | (k == q))
    if window is not None:
        ok = ok & (position_ids[:, None, :] > position_ids[:, :, None] - window)
    return ok


def _as_mask(allowed: torch.Tensor, attn: str | None, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, L, L]: bool for sdpa, additive float for eager attention (which adds it to the logits)."""
    allowed = allowed[:, None]
    if attn == "eager":
        zero = torch.zeros((), dtype=dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)
    return allowed


def packed_attention_mask(config: Any, attn: str | None, segment_ids: torch.Tensor, position_ids: torch.Tensor,
                          dtype: torch.dtype) -> torch.Tensor | dict[str, torch.Tensor]:
    """The mask a decoder's forward takes as it is (transformers 5.24 uses a 4D mask unchanged); for a
    model with sliding-window layers (Gemma 3, ``config.layer_types``), the per-layer-type dict its
    text model accepts instead of building masks itself."""
    full = _as_mask(_allowed(segment_ids, position_ids, None), attn, dtype)
    if "sliding_attention" not in set(getattr(config, "layer_types", None) or []):
        return full
    sliding = _as_mask(_allowed(segment_ids, position_ids, int(config.sliding_window)), attn, dtype)
    return {"full_attention": full, "sliding_attention": sliding}
