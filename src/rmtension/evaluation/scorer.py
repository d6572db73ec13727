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

Shared prompts (``ScorerConfig.shared_prompt``, on by default): the responses of one item share
their whole prompt, and on HH most of each text is that prompt. Texts whose token ids begin with
the same prefix are *packed* into one row ``[prefix | rest 1 | rest 2 | ...]`` so that the prefix
is computed once. A block mask lets each rest attend to the prefix and to itself only (causally),
and position ids restart every rest at the prefix's end, so each token sees exactly the keys and
positions it would see in its own text; the score head reads each text's own last position. So
the scores equal the plain path's (float tolerance; ``tests/test_shared_prompt_scoring.py``).

- The prefix is found on token ids, never on text: texts are sorted by their ids and neighbours'
  longest exact common prefix is used, so a BPE merge across the prompt/response boundary just
  shortens the shared part. It stops before any member's scored position.
- A text cut by ``max_length`` is never packed (its kept tokens are not a prefix of anything).
- Packing is used only where it computes less: a packed row pays attention over its full length
  (the block mask hides, but a dense kernel still computes, the other rests), so an item with a
  short prompt and many long responses (RM-Bench) is split into several rows, or left unpacked,
  by a cost model (``_row_cost``).
- Only decoder families whose mask and position handling was checked share (GPT-2, Llama/SmolLM2,
  Gemma 3 text; sdpa or eager attention); any other model logs one line and runs the plain path.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rmtension.errors import RmtensionError
from rmtension.models.encoding import encode, model_max_length, truncate_left
from rmtension.models.packing import packed_attention_mask, read_position

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

log = logging.getLogger(__name__)

# Families whose packed forward (4D block mask + restarted position ids) was checked against the
# plain one in tests/test_shared_prompt_scoring.py (transformers 5.24). BERT-style encoders attend
# both ways, so a rest would see the other rests: they can never share this way.
SHARED_MODEL_TYPES = ("gpt2", "llama", "gemma3_text")
SHARED_ATTENTION = ("sdpa", "eager")
MIN_SHARED_TOKENS = 8  # a shorter common prefix saves too little to be worth a block mask
# Cost of one row of T positions in "position units": T + T² / C with C = ATTENTION_PER_HIDDEN ×
# hidden size. The quadratic term is attention over the whole packed row (a dense kernel computes
# the masked blocks too). Per pair of positions attention costs ~4·hidden FLOPs against ~12–14·hidden²
# per position for the linear layers, so C grows with the hidden size; on this 2-core CPU masked
# SDPA ran ~4× below the matmul rate, which puts C near 1.5 × hidden (SmolLM2-135M, hidden 576:
# ~0.28 s attention vs ~0.4 s linear layers per layer and 2048 positions at T = 512, float32).
ATTENTION_PER_HIDDEN = 1.5


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
    text_index: list[int]  # positions in the caller's ``texts`` of each text (first occurrence)
    tags: list[str] = field(default_factory=list)  # per-text labels passed through (e.g. "chosen")
    # Where each text (in ``text_index`` order) lies: its (row, start, end) spans. A plain row is one
    # text, one span; a packed row holds a shared prefix span and each text's own rest.
    text_spans: list[list[tuple[int, int, int]]] = field(default_factory=list)
    read_pos: list[tuple[int, int]] = field(default_factory=list)  # per text: (row, position) the head reads
    # Packed batches only: per position the segment (-1 padding, 0 prefix or a plain text, k ≥ 1 the
    # k-th rest of its row) and the position id. None: a plain batch, run as the model's own forward.
    segment_ids: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None

    @property
    def packed(self) -> bool:
        return self.segment_ids is not None


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
    shared_prompt: compute a prompt shared by several texts once (see the module docstring);
        False is the plain path (for checks, and what unsupported families get anyway).
    """

    batch_size: int = 16
    max_length: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True
    shared_prompt: bool = True


@dataclass
class ScoreReport:
    """What a scoring call did, for the run records.

    ``unique_texts`` is the number of texts that went through the model; ``padded_tokens`` the
    number of positions computed (rows × batch width), ``tokens`` the texts' real tokens (the sum
    of the unique texts' lengths; with shared prompts a prefix counts once per text, so this is the
    same number on both paths and ``padded_tokens / tokens`` can fall below 1).
    ``shared_texts`` texts were packed with others into ``shared_rows`` rows.
    """

    texts: int = 0
    unique_texts: int = 0
    truncated: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0
    seconds: float = 0.0
    shared_prompt: bool = False
    shared_texts: int = 0
    shared_rows: int = 0

    @property
    def positions(self) -> int:
        return self.padded_tokens

    @property
    def real_tokens(self) -> int:
        return self.tokens

    def scoring_fields(self) -> dict[str, Any]:
        """The counts every results.json ``scoring`` block carries."""
        return {"positions": self.padded_tokens, "real_tokens": self.tokens, "shared_prompt": self.shared_prompt,
                "shared_texts": self.shared_texts, "shared_rows": self.shared_rows}

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


def _text_config(model: Any) -> Any:
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def shared_prompt_support(model: Any) -> str | None:
    """None if ``model`` can score packed rows, else the reason it cannot (one line)."""
    cfg = _text_config(model)
    kind = getattr(cfg, "model_type", None)
    if kind not in SHARED_MODEL_TYPES:
        return f"model type {kind!r} is not one of {', '.join(SHARED_MODEL_TYPES)}"
    attn = getattr(cfg, "_attn_implementation", None) or getattr(model.config, "_attn_implementation", None)
    if attn not in SHARED_ATTENTION:
        return f"attention implementation {attn!r} is not one of {', '.join(SHARED_ATTENTION)}"
    if not isinstance(getattr(cfg, "pad_token_id", None), int):
        return "the model config has no pad token id (its head then reads the last position of a row)"
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear) or getattr(model, "base_model", model) is model:
        return "the model has no separate backbone and linear score head"
    return None


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _row_cost(width: int, attention_tokens: float) -> float:
    """Relative cost of one row of ``width`` positions: linear layers plus dense attention."""
    return width + width * width / attention_tokens


def share_groups(ids: Sequence[Sequence[int]], reads: Sequence[int], candidates: Sequence[int],
                 attention_tokens: float, max_members: int | None = None) -> list[tuple[int, list[int]]]:
    """(prefix length, members) of each packed row; texts not listed stay plain.

    Texts are sorted by their token ids, so texts with a common prefix are neighbours and a run's
    common prefix is the minimum of its neighbours' common prefixes. A run grows while adding the
    next text lowers the total cost (``_row_cost``) and keeps a prefix of at least
    ``MIN_SHARED_TOKENS`` that ends at or before every member's read position (each text's score
    must come from its own rest, which is then never empty), and while it has fewer than
    ``max_members`` texts (the scorer passes its batch size: a row never holds more texts than a
    batch, so memory stays bounded as in the plain path).
    """
    order = sorted(candidates, key=lambda k: list(ids[k]))
    groups: list[tuple[int, list[int]]] = []
    members: list[int] = []
    prefix = 0
    cost = 0.0

    def close() -> None:
        if len(members) > 1:
            groups.append((prefix, list(members)))

    for k in order:
        if members and (max_members is None or len(members) < max_members):
            p = min(prefix if len(members) > 1 else reads[members[0]], _lcp(ids[members[-1]], ids[k]), reads[k])
            width = p + sum(len(ids[m]) - p for m in members) + len(ids[k]) - p
            new_cost = _row_cost(width, attention_tokens)
            if p >= MIN_SHARED_TOKENS and new_cost < cost + _row_cost(len(ids[k]), attention_tokens):
                members.append(k)
                prefix, cost = p, new_cost
                continue
        if members:
            close()
        members, prefix, cost = [k], 0, _row_cost(len(ids[k]), attention_tokens)
    if members:
        close()
    return groups


def model_inputs(model: Any, batch: Batch, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for ``model`` (or its backbone) on ``batch``.

    A plain batch: ids and the 2D padding mask, as always. A packed batch: the packed rows' mask
    (``rmtension.models.packing.packed_attention_mask``, the one training uses too) and the unpacked
    position ids.
    """
    ids = batch.input_ids.to(device, non_blocking=True)
    if batch.segment_ids is None:
        return {"input_ids": ids, "attention_mask": batch.attention_mask.to(device, non_blocking=True)}
    seg = batch.segment_ids.to(device)
    pos = batch.position_ids.to(device)
    cfg = _text_config(model)
    attn = getattr(cfg, "_attn_implementation", None) or getattr(model.config, "_attn_implementation", None)
    mask = packed_attention_mask(cfg, attn, seg, pos, next(model.parameters()).dtype)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


@dataclass
class _Tokenised:
    """A call's tokenisation, kept so that a repeated call on the same texts skips it."""

    key: tuple[str, ...]
    owner: list[int]  # text position → position of its first occurrence
    uniq: list[int]  # positions of first occurrences, ascending
    ids: list[list[int]]  # per unique text, after left truncation
    truncated: int
    cut: list[bool]  # per unique text: was it truncated (then it is never packed)


@dataclass
class _Row:
    """One row of a batch: a single text (prefix 0), or texts packed behind a shared prefix."""

    prefix: int
    members: list[int]  # unique-text indices
    width: int


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
        self._share_reason = shared_prompt_support(model)
        pad = getattr(_text_config(model), "pad_token_id", None)
        self.head_pad_id = pad if isinstance(pad, int) else -1  # the id the head's "last non-pad" rule skips
        if self.config.shared_prompt and self._share_reason is not None:
            log.warning("shared-prompt scoring off: %s; every text is scored in full", self._share_reason)
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
        ids, cuts = [], []
        for i, row in zip(uniq, raw):
            if not row:
                raise RmtensionError(f"text {i} is empty after tokenisation; every RM input needs at least one token")
            kept = truncate_left(row, self.max_length, self.special_ids)
            cuts.append(len(kept) < len(row))
            ids.append(kept)
        self._last_tokenised = _Tokenised(key, owner, uniq, ids, sum(cuts), cuts)
        return self._last_tokenised

    def make_batches(self, texts: Sequence[str], tags: Sequence[str] | None = None) -> tuple[list[Batch], list[int], ScoreReport]:
        """Tokenise, de-duplicate, pack shared prompts and batch. Returns batches, the map text →
        unique text, and a report.

        Rows (a text, or several packed texts) are sorted longest first (ties keep input order)
        and cut into batches of at most ``batch_size`` texts, so each is padded only to its own
        longest row and the first batch is the largest: a batch size that does not fit in memory
        fails at once, not at the end of a long run.
        """
        if tags is not None and len(tags) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(tags)} tags")
        tok = self._tokenise(texts)
        rep = ScoreReport(texts=len(texts), unique_texts=len(tok.uniq), truncated=tok.truncated,
                          tokens=sum(len(x) for x in tok.ids))
        rows = self._rows(tok)
        rep.shared_prompt = self.shares
        rep.shared_rows = sum(1 for r in rows if len(r.members) > 1)
        rep.shared_texts = sum(len(r.members) for r in rows if len(r.members) > 1)
        rows.sort(key=lambda r: (-r.width, min(r.members)))
        pin = self.device.type == "cuda"
        batches = []
        bs = self.config.batch_size
        start = 0
        while start < len(rows):
            end, n = start, 0
            while end < len(rows) and (end == start or n + len(rows[end].members) <= bs):
                n += len(rows[end].members)
                end += 1
            batch = self._batch(tok, rows[start:end], tags)
            if pin:
                batch.input_ids, batch.attention_mask = batch.input_ids.pin_memory(), batch.attention_mask.pin_memory()
            rep.padded_tokens += batch.input_ids.numel()
            batches.append(batch)
            start = end
        rep.batches = len(batches)
        return batches, list(tok.owner), rep

    @property
    def shares(self) -> bool:
        """Whether this scorer packs shared prompts (config asks for it and the model supports it)."""
        return self.config.shared_prompt and self._share_reason is None

    def _rows(self, tok: "_Tokenised") -> list["_Row"]:
        """Each unique text in a row of its own, except the packed groups (``share_groups``)."""
        n = len(tok.ids)
        grouped: list[tuple[int, list[int]]] = []
        if self.shares and n > 1:
            reads = [read_position(x, self.head_pad_id) for x in tok.ids]
            candidates = [k for k in range(n) if not tok.cut[k]]
            hidden = int(getattr(_text_config(self.model), "hidden_size", 0) or getattr(_text_config(self.model), "n_embd", 0) or 512)
            grouped = share_groups(tok.ids, reads, candidates, ATTENTION_PER_HIDDEN * hidden, self.config.batch_size)
        in_group = {k for _, members in grouped for k in members}
        rows = [_Row(0, [k], len(tok.ids[k])) for k in range(n) if k not in in_group]
        for prefix, members in grouped:
            members = sorted(members)  # input order inside a row
            rows.append(_Row(prefix, members, prefix + sum(len(tok.ids[k]) - prefix for k in members)))
        return rows

    def _batch(self, tok: "_Tokenised", rows: list["_Row"], tags: Sequence[str] | None) -> Batch:
        width = rows[0].width
        packed = any(len(r.members) > 1 for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        seg = torch.full((len(rows), width), -1, dtype=torch.long) if packed else None
        pos = torch.zeros((len(rows), width), dtype=torch.long) if packed else None
        index, spans, reads = [], [], []
        for r, row in enumerate(rows):
            mask[r, :row.width] = 1
            if len(row.members) == 1:
                k = row.members[0]
                x = tok.ids[k]
                input_ids[r, :len(x)] = torch.tensor(x, dtype=torch.long)
                if packed:
                    seg[r, :len(x)] = 0  # type: ignore[index]
                    pos[r, :len(x)] = torch.arange(len(x))  # type: ignore[index]
                index.append(tok.uniq[k])
                spans.append([(r, 0, len(x))])
                reads.append((r, read_position(x, self.head_pad_id)))
                continue
            p = row.prefix
            input_ids[r, :p] = torch.tensor(tok.ids[row.members[0]][:p], dtype=torch.long)
            seg[r, :p] = 0  # type: ignore[index]
            pos[r, :p] = torch.arange(p)  # type: ignore[index]
            at = p
            for j, k in enumerate(row.members, start=1):
                rest = tok.ids[k][p:]
                input_ids[r, at:at + len(rest)] = torch.tensor(rest, dtype=torch.long)
                seg[r, at:at + len(rest)] = j  # type: ignore[index]
                pos[r, at:at + len(rest)] = torch.arange(p, p + len(rest))  # type: ignore[index]
                index.append(tok.uniq[k])
                spans.append([(r, 0, p), (r, at, at + len(rest))])
                reads.append((r, at + read_position(tok.ids[k], self.head_pad_id) - p))
                at += len(rest)
        return Batch(input_ids, mask, index, [tags[i] for i in index] if tags is not None else [],
                     spans, reads, seg, pos)

    @torch.inference_mode()
    def forward(self, batch: Batch) -> torch.Tensor:
        """Scores of one batch, one per text in ``batch.text_index`` order (float32, on CPU).

        A packed batch runs the backbone under the block mask and applies the score head to each
        text's read position (what the model's own head does on the text alone).
        """
        return self.logits(batch).float().cpu()

    def logits(self, batch: Batch) -> torch.Tensor:
        """``forward`` without its ``inference_mode`` and on the model's device: autograd records the
        pass when it is enabled (attribution scores, ``rmtension.neurons.attribution``)."""
        with self._autocast():
            if not batch.packed:
                out = self.model(input_ids=batch.input_ids.to(self.device, non_blocking=True),
                                 attention_mask=batch.attention_mask.to(self.device, non_blocking=True), **self._extra)
                return out.logits[:, 0]
            out = self.model.base_model(**model_inputs(self.model, batch, self.device), use_cache=False)
            hidden = out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state
            rows = torch.tensor([r for r, _ in batch.read_pos], device=hidden.device)
            cols = torch.tensor([c for _, c in batch.read_pos], device=hidden.device)
            logits = self.model.score(hidden[rows, cols])
        return logits[:, 0]

    def score(self, texts: Sequence[str], observers: Sequence[BatchObserver] = (), tags: Sequence[str] | None = None,
              desc: str = "scoring") -> np.ndarray:
        """One float score per text, in the input order.

        Raises :class:`NonFiniteScoreError` if any score is NaN/inf (after the whole pass, so that
        observers and ``last_report`` still describe it).
        """
        t0 = time.perf_counter()
        batches, owner, rep = self.make_batches(texts, tags)
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
