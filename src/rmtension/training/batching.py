"""Computing each training token once: length-grouped steps and shared-prompt pairs.

Two wastes of the plain TRL step (``DataCollatorForPreference`` + ``RewardTrainer.compute_loss``):

* **Padding.** A step pads its 2 × B sequences to the longest one; with pairs in random order
  that is ≈ 2× the real tokens on HH (benchmarks/RESULTS.md). :class:`LengthGroupedSampler`
  puts pairs of similar length into the same step, with a seeded, shuffled step order.
* **The shared prompt.** Chosen and rejected share their dialogue up to the last assistant turn,
  and the plain step encodes it twice. :class:`SharedPromptCollator` packs each pair as one row
  ``[prompt | chosen_rest | rejected_rest]``; :func:`shared_prompt_rewards` runs it with an
  attention mask that hides ``chosen_rest`` from ``rejected_rest`` and position ids that restart
  ``rejected_rest`` at the prompt's end, so every token sees exactly the tokens (at the same
  positions) it sees in its own unshared sequence, and reads the reward at each branch's end.
  The loss is the same Bradley-Terry loss, and gradients flow through the prompt from both
  branches, as they do in the unshared step (tests/test_shared_prompt_training.py checks loss
  and gradient against the plain computation for every supported family).

Both are counted: ``positions`` (what the forward computes, padding included) and
``real_tokens`` (len(chosen) + len(rejected), what the texts hold) per batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from rmtension.models.encoding import common_prefix
from rmtension.models.packing import packed_attention_mask, read_position

log = logging.getLogger(__name__)

MEGA_BATCHES = 50
"""Groups sorted together: pairs are sorted by length within chunks of this many groups of a
random permutation, so grouping never reaches beyond ~50 steps and the data order stays random
at that scale (the same mega-batch idea as transformers' ``LengthGroupedSampler``)."""

SHARED_PROMPT_FAMILIES = ("llama", "gpt2", "gemma3_text")
"""Model types whose shared-prompt path is tested equal to the plain path (tests/test_shared_prompt_training.py).
Others fall back to the plain path with a one-line notice."""

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention back-ends that take our 4D mask as it is (bool for sdpa, additive float for eager)."""


# ----------------------------------------------------------------------------- lengths


def padded_length(row: dict[str, Sequence[int]], shared: bool) -> int:
    """What one pair costs in the row it is padded with: its packed length when sharing, else its longer side."""
    c, r = row["chosen_ids"], row["rejected_ids"]
    if shared:
        return len(c) + len(r) - common_prefix(c, r)
    return max(len(c), len(r))


# ----------------------------------------------------------------------------- sampler


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in an order where each consecutive ``group_size`` have similar lengths; group order shuffled.

    One epoch: a random permutation (seeded by ``seed`` and the epoch), cut into chunks of
    ``MEGA_BATCHES`` groups; each chunk sorted by length (longest first) and cut into groups;
    the groups of the whole epoch shuffled (the last, possibly partial, group stays last so that
    every other group starts on a batch boundary). ``group_size`` is the pairs of one micro-step
    over all processes (per-device batch × processes): accelerate's ``BatchSamplerShard`` gives
    process k the k-th per-device batch of each such run of indices, so each process's batch is
    length-grouped and the order equals a one-process run with the same global batch.
    Deterministic in (seed, epoch): a resumed run sees the same order.
    """

    def __init__(self, lengths: Sequence[int], group_size: int, seed: int):
        if group_size < 1:
            raise ValueError(f"group_size must be ≥ 1, got {group_size}")
        self.lengths = list(lengths)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def groups(self) -> list[list[int]]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        mega = self.group_size * MEGA_BATCHES
        groups: list[list[int]] = []
        for start in range(0, len(perm), mega):
            chunk = sorted(perm[start:start + mega], key=lambda i: -self.lengths[i])  # stable: ties keep random order
            groups.extend(chunk[k:k + self.group_size] for k in range(0, len(chunk), self.group_size))
        last = groups.pop() if groups and len(groups[-1]) < self.group_size else None
        order = torch.randperm(len(groups), generator=g).tolist()
        groups = [groups[i] for i in order]
        if last is not None:
            groups.append(last)
        return groups

    def __iter__(self) -> Iterator[int]:
        for group in self.groups():
            yield from group


# ----------------------------------------------------------------------------- shared-prompt collation


@dataclass
class SharedPromptCollator:
    """One packed row ``[prompt | chosen_rest | rejected_rest]`` per pair, right-padded.

    Returns ``input_ids``, ``position_ids`` (the position each token has in its own unshared
    sequence), ``segment_ids`` (0 prompt, 1 chosen, 2 rejected, -1 padding), ``chosen_index`` /
    ``rejected_index`` (the packed position the head reads for each side, mapped from the
    position it reads in the unshared sequence), ``real_tokens`` (len chosen + len rejected of
    the batch) and ``margin`` when the examples carry one.
    """

    pad_token_id: int
    score_pad_id: int | None = None
    """The model's ``config.pad_token_id`` (the id its head skips when pooling)."""

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows, pos, seg, ci, ri = [], [], [], [], []
        real = 0
        for ex in examples:
            c, r = list(ex["chosen_ids"]), list(ex["rejected_ids"])
            p = common_prefix(c, r)
            rows.append(c + r[p:])
            pos.append(list(range(len(c))) + list(range(p, len(r))))
            seg.append([0] * p + [1] * (len(c) - p) + [2] * (len(r) - p))
            ci.append(read_position(c, self.score_pad_id))
            k = read_position(r, self.score_pad_id)
            ri.append(k if k < p else len(c) + k - p)
            real += len(c) + len(r)
        width = max(len(x) for x in rows)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((n, width), dtype=torch.long)
        segment_ids = torch.full((n, width), -1, dtype=torch.long)
        for i in range(n):
            m = len(rows[i])
            input_ids[i, :m] = torch.tensor(rows[i])
            position_ids[i, :m] = torch.tensor(pos[i])
            position_ids[i, m:] = torch.arange(width - m)  # padding: harmless positions, never read
            segment_ids[i, :m] = torch.tensor(seg[i])
        out = {"input_ids": input_ids, "position_ids": position_ids, "segment_ids": segment_ids,
               "chosen_index": torch.tensor(ci), "rejected_index": torch.tensor(ri),
               "real_tokens": torch.tensor(real)}
        if "margin" in examples[0]:
            out["margin"] = torch.tensor([ex["margin"] for ex in examples], dtype=torch.float)
        return out


# ----------------------------------------------------------------------------- shared-prompt forward


def shared_prompt_unsupported(model: Any) -> str | None:
    """Why ``model`` cannot take the shared-prompt path (None when it can)."""
    config = model.config
    kind = getattr(config, "model_type", "?")
    if kind not in SHARED_PROMPT_FAMILIES:
        return f"model type {kind!r} is not one of the families tested for shared-prompt training ({', '.join(SHARED_PROMPT_FAMILIES)})"
    impl = getattr(config, "_attn_implementation", None)
    if impl not in ATTENTION_IMPLEMENTATIONS:
        return f"attention implementation {impl!r} does not take a custom 4D mask here (sdpa or eager do)"
    if getattr(config, "use_bidirectional_attention", False):
        return "bidirectional attention"
    types = set(getattr(config, "layer_types", None) or [])
    if types - {"full_attention", "sliding_attention"}:
        return f"layer types {sorted(types)}"
    if getattr(config, "sliding_window", None) and "sliding_attention" not in types:
        return "sliding window without per-layer types"
    if not hasattr(model, "score"):
        return "no `score` head"
    return None


def attention_masks(config: Any, segment_ids: torch.Tensor, position_ids: torch.Tensor,
                    dtype: torch.dtype) -> torch.Tensor | dict[str, torch.Tensor]:
    """The packed rows' mask for ``config``'s attention implementation (``rmtension.models.packing``)."""
    return packed_attention_mask(config, config._attn_implementation, segment_ids, position_ids, dtype)


def shared_prompt_rewards(model: Any, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (chosen, rejected) of a packed batch from :class:`SharedPromptCollator`.

    Runs the model's own forward (through any DDP / accelerate wrapper, so gradient sync and
    autocast apply as in the plain step) and reads the ``score`` head's output at every position
    with a forward hook: transformers' sequence-classification heads apply ``score`` to all
    hidden states and then pick one position per row; we pick two, one per branch end."""
    inner = model
    while hasattr(inner, "module"):  # DDP / DataParallel wrappers
        inner = inner.module
    config = inner.config
    dtype = next(inner.parameters()).dtype
    mask = attention_masks(config, inputs["segment_ids"], inputs["position_ids"], dtype)
    seen: list[torch.Tensor] = []
    handle = inner.score.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        model(input_ids=inputs["input_ids"], attention_mask=mask, position_ids=inputs["position_ids"], use_cache=False)
    finally:
        handle.remove()
    logits = seen[-1].squeeze(-1)  # [B, L]
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, inputs["chosen_index"]], logits[rows, inputs["rejected_index"]]
