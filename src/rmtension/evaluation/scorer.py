"""The one reward scorer that evaluation, neuron statistics and ablation all use.

Why one scorer: every stage of the study reads the same RM on the same texts, and the numbers
must agree between stages. It scores a list of texts by
- de-duplicating them (a text is never computed twice in one call; RM-Bench and best-of-N items
  share many responses, and chosen/rejected lists of different items often repeat),
- sorting by token length and cutting batches from the sorted list, so each batch is padded only
  to its own longest text (a plain pipeline pads random mixtures of short and long texts),
- running without gradients, in float32 on CPU or bf16/fp16 autocast where asked,
- calling observers around each batch, so that neuron recorders and other hooks see exactly the
  tokens the model saw (``attention_mask`` marks the real ones).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rmtension.models.encoding import encode, model_max_length, truncate_left


@dataclass
class Batch:
    """One forward pass: right-padded ids, the mask of real tokens, and which texts they are."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    text_index: list[int]  # positions in the caller's ``texts`` of each row (first occurrence)
    tags: list[str] = field(default_factory=list)  # per-row labels passed through (e.g. "chosen")


class BatchObserver(Protocol):
    """Something that wants to see every batch: neuron recorders, ablation bookkeeping, timers."""

    def before_batch(self, batch: Batch) -> None: ...

    def after_batch(self, batch: Batch, scores: torch.Tensor) -> None: ...


@dataclass
class ScorerConfig:
    """How texts are batched and run.

    batch_size: texts per forward pass (after sorting by length).
    max_length: longest input in tokens; longer texts are cut from the left (keeping the
        response end). None → the model's position limit.
    dtype: "float32", "bfloat16" or "float16"; the latter two run under autocast with float32
        weights (on CPU, bf16 autocast needs a processor with bf16 matrix instructions to pay off).
    device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", ...
    progress: show a progress bar.
    """

    batch_size: int = 16
    max_length: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True


@dataclass
class ScoreReport:
    """What a scoring call did, for the run records."""

    texts: int = 0
    unique_texts: int = 0
    truncated: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class RewardScorer:
    """Scores texts with a sequence-classification RM (one output)."""

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None):
        self.config = config or ScorerConfig()
        self.tokenizer = tokenizer
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.max_length = model_max_length(model, tokenizer, self.config.max_length)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("tokenizer has neither a pad nor an EOS token")
        self.pad_id = int(pad)
        self.special_ids = set(tokenizer.all_special_ids)
        self.last_report = ScoreReport()

    def _autocast(self):
        if self.config.dtype == "float32":
            return contextlib.nullcontext()
        dt = {"bfloat16": torch.bfloat16, "float16": torch.float16}[self.config.dtype]
        return torch.autocast(device_type=self.device.type, dtype=dt)

    def plan(self, texts: Sequence[str], tags: Sequence[str] | None = None) -> tuple[list[Batch], list[int], ScoreReport]:
        """Tokenise, de-duplicate and batch. Returns batches, the map text → unique row, and a report."""
        first: dict[str, int] = {}
        owner: list[int] = []
        for i, t in enumerate(texts):
            owner.append(first.setdefault(t, i))
        uniq = sorted(set(owner))
        ids = encode(self.tokenizer, [texts[i] for i in uniq])
        rep = ScoreReport(texts=len(texts), unique_texts=len(uniq))
        cut = []
        for row in ids:
            c = truncate_left(row, self.max_length, self.special_ids)
            rep.truncated += len(c) < len(row)
            cut.append(c)
        order = sorted(range(len(uniq)), key=lambda k: -len(cut[k]))
        batches = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(order), bs):
            rows = order[start:start + bs]
            width = max(len(cut[k]) for k in rows)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, k in enumerate(rows):
                input_ids[r, : len(cut[k])] = torch.tensor(cut[k], dtype=torch.long)
                mask[r, : len(cut[k])] = 1
            rep.tokens += int(mask.sum())
            rep.padded_tokens += input_ids.numel()
            batches.append(Batch(input_ids, mask, [uniq[k] for k in rows],
                                 [tags[uniq[k]] for k in rows] if tags is not None else []))
        rep.batches = len(batches)
        return batches, owner, rep

    @torch.inference_mode()
    def forward(self, batch: Batch) -> torch.Tensor:
        """Scores of one batch (float32, on CPU)."""
        with self._autocast():
            out = self.model(input_ids=batch.input_ids.to(self.device), attention_mask=batch.attention_mask.to(self.device))
        return out.logits[:, 0].float().cpu()

    def score(self, texts: Sequence[str], observers: Sequence[BatchObserver] = (), tags: Sequence[str] | None = None,
              desc: str = "scoring") -> np.ndarray:
        """One float score per text, in the input order."""
        batches, owner, rep = self.plan(texts, tags)
        scores = np.full(len(texts), np.nan, dtype=np.float64)
        bar = tqdm(total=rep.unique_texts, desc=desc, unit="text", disable=not self.config.progress, leave=False)
        for batch in batches:
            for ob in observers:
                ob.before_batch(batch)
            s = self.forward(batch)
            for ob in observers:
                ob.after_batch(batch, s)
            scores[batch.text_index] = s.double().numpy()
            bar.update(len(batch.text_index))
        bar.close()
        scores = scores[owner]
        if np.isnan(scores).any():
            raise FloatingPointError("the reward model produced NaN scores; the weights are probably broken")
        self.last_report = rep
        return scores
