"""The one reward scorer that evaluation, neuron statistics and ablation all use.

Why one scorer: every stage of the study reads the same RM on the same texts, and the numbers
must agree between stages. It scores a list of texts by
- de-duplicating them (a text is never computed twice in one call; RM-Bench and best-of-N items
  share many responses — 493 of RM-Bench's 4788 responses repeat — and chosen/rejected lists of
  different items often repeat),
- sorting by token length and cutting batches from the sorted list, so each batch is padded only
  to its own longest text (a plain pipeline pads random mixtures of short and long texts),
- running without gradients and without a key/value cache (a decoder would otherwise build one
  per batch that nobody reads), in float32 on CPU or bf16/fp16 autocast where asked,
- calling observers around each batch, so that neuron recorders and other hooks see exactly the
  tokens the model saw (``attention_mask`` marks the real ones).

Repeated calls on the same texts (an ablation sweep re-scores one benchmark under many neuron
sets) reuse the previous call's tokenisation instead of tokenising again.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rmtension.errors import RmtensionError
from rmtension.models.encoding import encode, model_max_length, truncate_left

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


class NonFiniteScoreError(RmtensionError, FloatingPointError):
    """The RM produced NaN/inf scores: broken weights, a NaN training run, or fp16 overflow.

    A user-fixable problem (retrain, or score in float32/bf16), so it is an ``RmtensionError``
    and the command line prints one line; it stays a ``FloatingPointError`` for callers that
    catch numeric failures generically.
    """


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
    progress: show a progress bar (only on a terminal: logs and tests stay clean).
    """

    batch_size: int = 16
    max_length: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True


@dataclass
class ScoreReport:
    """What a scoring call did, for the run records.

    ``unique_texts`` is the number of rows that went through the model; ``padded_tokens`` the
    number of positions computed (rows × batch width), ``tokens`` the real ones among them.
    """

    texts: int = 0
    unique_texts: int = 0
    truncated: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def padding_ratio(self) -> float:
        """Computed positions per real token (1.0 = no padding at all)."""
        return self.padded_tokens / self.tokens if self.tokens else float("nan")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise RmtensionError(f"unknown device {device!r} ({exc}); use auto, cpu, cuda or cuda:N") from None
    # torch accepts the name of any device type; using one this machine lacks fails later, deep in a forward pass
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RmtensionError(f"--device {device}: CUDA is not available on this machine; use --device cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise RmtensionError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RmtensionError(f"--device {device}: MPS is not available on this machine; use --device cpu or auto")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise RmtensionError(f"--device {device}: unsupported device type {dev.type!r}; use auto, cpu, cuda or cuda:N")
    return dev


def _pad_id(model: Any, tokenizer: Any) -> int:
    """The id to pad with: the model config's pad id first.

    Decoder heads find the scored position as the rightmost token that is not
    ``config.pad_token_id``; padding with any other id would move that position into the padding
    and make a text's score depend on its batch.
    """
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for pad in (getattr(cfg, "pad_token_id", None), getattr(model.config, "pad_token_id", None),
                tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(pad, int):
            return pad
    raise RmtensionError("neither the model config nor the tokenizer defines a pad or EOS token; cannot pad batches")


def _accepts_use_cache(model: Any) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "use_cache" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@dataclass
class _Tokenised:
    """A call's tokenisation, kept so that a repeated call on the same texts skips it."""

    key: tuple[str, ...]
    owner: list[int]  # text position → position of its first occurrence
    uniq: list[int]  # positions of first occurrences, ascending
    ids: list[list[int]]  # per unique text, after left truncation
    truncated: int


class RewardScorer:
    """Scores texts with a sequence-classification RM (one output)."""

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None):
        self.config = config or ScorerConfig()
        if self.config.batch_size < 1:
            raise RmtensionError(f"batch size must be at least 1, got {self.config.batch_size}")
        if self.config.dtype not in ("float32", *DTYPES):
            raise RmtensionError(f"dtype must be float32, bfloat16 or float16, got {self.config.dtype!r}")
        labels = getattr(model.config, "num_labels", 1)
        if labels != 1:
            raise RmtensionError(f"a reward model has one output; this model has {labels} labels "
                                 "(reading its first logit as a reward would be meaningless)")
        self.tokenizer = tokenizer
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device).eval()
        self.max_length = model_max_length(model, tokenizer, self.config.max_length)
        self.pad_id = _pad_id(model, tokenizer)
        self.special_ids = set(tokenizer.all_special_ids)
        self._extra = {"use_cache": False} if _accepts_use_cache(model) else {}
        self._last_tokenised: _Tokenised | None = None
        self.last_report = ScoreReport()

    def _autocast(self):
        if self.config.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=DTYPES[self.config.dtype])

    def _tokenise(self, texts: Sequence[str]) -> _Tokenised:
        key = tuple(texts)
        last = self._last_tokenised
        if last is not None and last.key == key:
            return last
        first: dict[str, int] = {}
        owner = [first.setdefault(t, i) for i, t in enumerate(key)]
        uniq = sorted(first.values())
        raw = encode(self.tokenizer, [key[i] for i in uniq])
        ids, truncated = [], 0
        for i, row in zip(uniq, raw):
            if not row:
                raise RmtensionError(f"text {i} is empty after tokenisation; every RM input needs at least one token")
            cut = truncate_left(row, self.max_length, self.special_ids)
            truncated += len(cut) < len(row)
            ids.append(cut)
        self._last_tokenised = _Tokenised(key, owner, uniq, ids, truncated)
        return self._last_tokenised

    def plan(self, texts: Sequence[str], tags: Sequence[str] | None = None) -> tuple[list[Batch], list[int], ScoreReport]:
        """Tokenise, de-duplicate and batch. Returns batches, the map text → unique row, and a report.

        Batches are cut from the unique texts sorted longest first (ties keep input order), so
        each is padded only to its own longest text and the first batch is the largest: a batch
        size that does not fit in memory fails at once, not at the end of a long run.
        """
        if tags is not None and len(tags) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(tags)} tags")
        tok = self._tokenise(texts)
        rep = ScoreReport(texts=len(texts), unique_texts=len(tok.uniq), truncated=tok.truncated)
        order = sorted(range(len(tok.uniq)), key=lambda k: -len(tok.ids[k]))
        pin = self.device.type == "cuda"
        batches = []
        bs = self.config.batch_size
        for start in range(0, len(order), bs):
            rows = order[start:start + bs]
            width = len(tok.ids[rows[0]])
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, k in enumerate(rows):
                n = len(tok.ids[k])
                input_ids[r, :n] = torch.tensor(tok.ids[k], dtype=torch.long)
                mask[r, :n] = 1
            if pin:
                input_ids, mask = input_ids.pin_memory(), mask.pin_memory()
            rep.tokens += int(mask.sum())
            rep.padded_tokens += input_ids.numel()
            index = [tok.uniq[k] for k in rows]
            batches.append(Batch(input_ids, mask, index, [tags[i] for i in index] if tags is not None else []))
        rep.batches = len(batches)
        return batches, list(tok.owner), rep

    @torch.inference_mode()
    def forward(self, batch: Batch) -> torch.Tensor:
        """Scores of one batch (float32, on CPU)."""
        with self._autocast():
            out = self.model(input_ids=batch.input_ids.to(self.device, non_blocking=True),
                             attention_mask=batch.attention_mask.to(self.device, non_blocking=True), **self._extra)
        return out.logits[:, 0].float().cpu()

    def score(self, texts: Sequence[str], observers: Sequence[BatchObserver] = (), tags: Sequence[str] | None = None,
              desc: str = "scoring") -> np.ndarray:
        """One float score per text, in the input order.

        Raises :class:`NonFiniteScoreError` if any score is NaN/inf (after the whole pass, so that
        observers and ``last_report`` still describe it).
        """
        t0 = time.perf_counter()
        batches, owner, rep = self.plan(texts, tags)
        scores = np.full(len(texts), np.nan, dtype=np.float64)
        bar = tqdm(total=rep.unique_texts, desc=desc, unit="text", disable=None if self.config.progress else True,
                   leave=False)
        try:
            for batch in batches:
                for ob in observers:
                    ob.before_batch(batch)
                s = self.forward(batch)
                for ob in observers:
                    ob.after_batch(batch, s)
                scores[batch.text_index] = s.double().numpy()
                bar.update(len(batch.text_index))
        finally:
            bar.close()
        scores = scores[owner] if len(texts) else scores
        rep.seconds = time.perf_counter() - t0
        self.last_report = rep
        bad = ~np.isfinite(scores)
        if bad.any():
            where = np.flatnonzero(bad)
            cause = ("the weights are probably broken (a NaN training loss?)" if self.config.dtype == "float32"
                     else f"{self.config.dtype} may have overflowed (try float32), or the weights are broken")
            raise NonFiniteScoreError(f"the reward model produced {int(bad.sum())} non-finite scores (NaN/inf) out of "
                                      f"{len(texts)}, first at text {int(where[0])}: {cause}")
        return scores
