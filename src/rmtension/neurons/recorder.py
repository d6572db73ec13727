"""Streaming neuron statistics as an observer of the one reward scorer.

Why an observer: scoring and statistics then share one forward pass over exactly the tokens the
RM saw (length-sorted batches, left truncation, de-duplication), instead of a second, subtly
different pass. ``RewardScorer.score`` calls ``before_batch`` → forward → ``after_batch``; the
recorder's hooks fire inside that forward and reduce each layer's activations at once:

* only real tokens count: each row is reduced over the span its attention mask marks, so padding
  is never summed or computed on beyond the batch's longest text. (The paper's code,
  RM_interpretation/neural_score/scoring.py of EshaanT/RM-alignment_tension at 96efa92, pads
  every text on the right to 1024 tokens, runs the model without an attention mask — harmless for
  a causal model, whose real tokens never attend to later pads — keeps every layer's activations,
  then multiplies them by the attention mask and divides by the real-token count: the same
  per-side mean as ours, at the cost of time and memory; tests/test_neurons_fidelity.py);
* each text's real tokens are one contiguous span of its batch row, reduced where it lies (no copy
  of the batch's activations; |a|, a² and a > 0 pass through one reused span-sized buffer, see
  ``_row_sums``) to four per-text sums [Σa, Σ|a|, Σa², #(a > 0)] in float32; the texts' group weights
  then combine those rows into float64 running totals, so nothing larger than one batch is ever
  held, and the memory does not grow with the number of texts. The per-text sums also give the
  per-text means (for the pair RMSD) for free;
* the base model (for the change score) runs in ``before_batch`` on the identical ``Batch``;
  its activations (float32, rows × tokens × neurons per layer, every layer of that one batch) are
  held until the RM's forward reaches the same layer, then dropped — lower ``--batch-size`` if
  that does not fit;
* per-text mean vectors are kept only until the text's pair partner has been seen. Pairs are fed
  in chunks (``collect_stats``), so at most one chunk's means are pending.

With shared prompts the scorer packs texts that begin with the same tokens into one row
(``[prefix | rest 1 | rest 2 | ...]``, see ``evaluation/scorer.py``); the batch names each text's
spans. Sums are taken per distinct span, and a shared prefix's sums are weighted by the total
weight of the texts that contain it: each text's statistics still count its prompt tokens, exactly
as a pass over each text alone would. A text's mean adds its prefix and rest sums.

The scorer de-duplicates texts, so a text that occurs twice (the same transcript in two records,
or one text as chosen in one pair and rejected in another) is run once. ``declare`` tells the
recorder the full list, and each unique text's tokens are weighted by how often it occurs in
each group: the sums equal those of a pass over every occurrence.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from rmtension.errors import RmtensionError
from rmtension.neurons.sites import ModelSites, check_site, hook_sites, model_sites
from rmtension.neurons.stats import MOMENTS, Moments, NeuronStats

GROUPS = ("chosen", "rejected")


def _autocast(device: torch.device, dtype: str):
    if dtype in ("float32", None):
        return contextlib.nullcontext()
    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return torch.autocast(device_type=device.type, dtype=dt)


class _Scratch:
    """One reusable float32 work buffer per device, grown to the longest span seen.

    Why: the span reductions below write |a|, a² and (a > 0) into it instead of allocating a
    fresh temporary per span and layer (a fresh multi-megabyte tensor is a fresh mmap, whose pages
    fault in on first touch). It never holds more than one span's tokens × neurons, i.e. at most
    one batch row of one layer of the activations the model has just computed anyway.
    """

    def __init__(self) -> None:
        self._bufs: dict[tuple[torch.device, int], torch.Tensor] = {}

    def get(self, tokens: int, neurons: int, device: torch.device, slot: int = 0) -> torch.Tensor:
        key = (device, slot)
        buf = self._bufs.get(key)
        if buf is None or buf.shape[0] < tokens or buf.shape[1] != neurons:
            with torch.inference_mode(False):  # a normal tensor: writable in and outside inference mode
                buf = torch.empty((max(tokens, 1), neurons), dtype=torch.float32, device=device)
            self._bufs[key] = buf
        return buf[:tokens]


def _row_sums(a: torch.Tensor, spans: Sequence[tuple[int, int, int]], scratch: _Scratch | None = None) -> torch.Tensor:
    """(spans, 4, N) float32: per (row, start, end) span, [Σa, Σ|a|, Σa², #(a > 0)] over its tokens.

    Why this shape of computation: the spans are views of the hooked (rows, T, N) activations, so
    padding is never read; each elementwise feature (|a|, a², a > 0 as 0/1) is written into one
    reused span-sized buffer (``_Scratch``, cache-resident for typical spans) and summed over the
    tokens by ``torch.sum``, whose reduction over the token axis is vectorised. Measured on real
    SmolLM2-135M activations (shared-prompt batches of 16 HH pairs, 1 thread): 4.2 ms per layer and
    batch, against 26 ms for ``torch.linalg.vector_norm`` (ord 1 and 2, not vectorised on CPU) and a
    ``(a > 0).sum`` over a fresh bool tensor — 6× — and closer to float64 sums (relative error
    ~3e-7 for Σ|a| and Σa², against ~1e-6 with the norms; Σa² is no longer a squared square root).
    The earlier gather of the real tokens into a 4×-wide feature matrix was slower still
    (benchmarks/RESULTS.md). A span holds at most the max length's tokens, so float32 sums lose
    nothing that matters; counts below 2^24 are exact in float32.
    """
    a = a.detach()  # statistics need no gradient (and ``out=`` refuses tensors that carry one)
    n = a.shape[-1]
    out = torch.empty((len(spans), 4, n), dtype=torch.float32, device=a.device)
    if not spans:
        return out
    scratch = scratch or _Scratch()
    longest = max(e - s for _, s, e in spans)
    buf = scratch.get(longest, n, a.device)
    conv = scratch.get(longest, n, a.device, slot=1) if a.dtype != torch.float32 else None
    for r, (row, s, e) in enumerate(spans):
        x = a[row, s:e]
        if conv is not None:  # autocast (bf16/fp16) activations: reduce their exact float32 values
            x = conv[:e - s].copy_(x)
        b = buf[:e - s]
        torch.sum(x, dim=0, out=out[r, 0])
        torch.sum(torch.abs(x, out=b), dim=0, out=out[r, 1])
        torch.sum(torch.mul(x, x, out=b), dim=0, out=out[r, 2])
        torch.sum(torch.gt(x, 0, out=b), dim=0, out=out[r, 3])
    return out


class _Accumulator:
    """Float64 running sums for one block (activations or change), G × L × N each."""

    def __init__(self, groups: int, layers: int, neurons: int, device: torch.device):
        self.neurons = neurons
        self.t = {m: torch.zeros((groups, layers, neurons), dtype=torch.float64, device=device) for m in MOMENTS}

    def add(self, layer: int, weights: torch.Tensor, row_sums: torch.Tensor) -> None:
        """weights: (G, rows) float64, how much each batch row counts in each group; row_sums: (rows, 4, N).

        The product lands on the accumulators' device (a no-op unless the model is split across
        devices, where later layers live elsewhere).
        """
        dev = self.t["sum"].device
        rows = row_sums.shape[0]
        prod = (weights @ row_sums.reshape(rows, -1).to(dtype=torch.float64)).to(dev)
        n = self.neurons
        for k, m in enumerate(MOMENTS):
            self.t[m][:, layer] += prod[:, k * n:(k + 1) * n]

    def to_moments(self, groups: list[str], count: np.ndarray) -> Moments:
        return Moments(list(groups), count.copy(), *(self.t[m].cpu().numpy() for m in MOMENTS))


class NeuronStatsRecorder:
    """A ``BatchObserver`` that accumulates per-neuron statistics of ``model`` at ``site``.

    Use it as a context manager (installs and removes the hooks) around scorer calls:

        rec = NeuronStatsRecorder(scorer.model, site="act", base_model=base)
        with rec:
            rec.declare(texts, tags, pairs)          # optional: exact weights and pair RMSD
            scorer.score(texts, observers=[rec], tags=tags)
        stats = rec.result()

    Without ``declare`` each batch row counts once, in the group named by its tag.
    ``autocast`` should match the scorer's dtype so the base model runs like the RM.
    """

    def __init__(self, model: nn.Module, *, site: str = "act", base_model: nn.Module | None = None,
                 groups: Sequence[str] = GROUPS, autocast: str = "float32"):
        check_site(site)
        self.model = model
        self.site = site
        self.sites: ModelSites = model_sites(model)
        self.base = base_model
        self.base_sites: ModelSites | None = None
        if base_model is not None and base_model is model:
            raise ValueError("the base model must be a separate model object (hooks are per module)")
        if base_model is not None:
            base_model.eval()  # dropout off, as the scorer does for the RM
            self.base_sites = model_sites(base_model)
            if (self.base_sites.n_layers, self.base_sites.n_neurons) != (self.sites.n_layers, self.sites.n_neurons):
                raise RmtensionError(
                    f"base model has {self.base_sites.n_layers}×{self.base_sites.n_neurons} neurons, the RM "
                    f"{self.sites.n_layers}×{self.sites.n_neurons}; the change score needs the RM's own backbone")
        self.groups = list(groups)
        self.autocast = autocast
        self._stack: contextlib.ExitStack | None = None
        self._acc: _Accumulator | None = None
        self._diff: _Accumulator | None = None
        self._count = np.zeros(len(self.groups))
        self._texts = np.zeros(len(self.groups))
        L = self.sites.n_layers
        self._rmsd_sum = np.zeros(L + 1)
        self._rmsd_sq = np.zeros(L + 1)
        self._rmsd_pairs = 0
        self._declared: _CallTexts | None = None
        self._batch: _BatchState | None = None
        self._scratch = _Scratch()

    # ------------------------------------------------------------------ hooks

    def __enter__(self) -> "NeuronStatsRecorder":
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(hook_sites(self.model, self.site, self._rm_hook, sites=self.sites))
        if self.base is not None:
            self._stack.enter_context(hook_sites(self.base, self.site, self._base_hook, sites=self.base_sites))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self._batch = None

    def _rm_hook(self, layer: int, a: torch.Tensor) -> None:
        st = self._batch
        if st is None:  # a forward pass outside the scorer's batches: not ours to count
            return None
        sums = _row_sums(a, st.spans, self._scratch)
        w = st.weights_on(a.device)
        self._acc.add(layer, w, sums)  # type: ignore[union-attr]
        if st.row_means is not None:  # each text's mean: its spans' sums over its length
            st.row_means[:, layer] = (st.members_on(a.device) @ sums[:, 0]).double()
        if self._diff is not None:
            base = st.base_act.pop(layer, None)
            if base is None:
                raise RuntimeError(f"base-model activations of layer {layer} missing for this batch")
            # a − base in place on the base copy (ours alone): no second batch-sized temporary
            diff = base.to(a.device).neg_().add_(a)
            self._diff.add(layer, w, _row_sums(diff, st.spans, self._scratch))
        return None

    def _base_hook(self, layer: int, a: torch.Tensor) -> None:
        st = self._batch
        if st is not None:  # a copy: the module may reuse its output buffer
            # a normal (not inference-mode) tensor, so that the RM's hook may subtract in place in any mode
            with torch.inference_mode(False):
                st.base_act[layer] = a.detach().to(torch.float32, copy=True)
        return None

    # ------------------------------------------------------------------ per call / per batch

    def declare(self, texts: Sequence[str], tags: Sequence[str], pairs: Sequence[tuple[int, int]] = ()) -> None:
        """Declare the texts of the next scorer call: occurrence weights and (chosen, rejected) pairs."""
        self._declared = _CallTexts(texts, tags, pairs, self.groups)

    def finish_call(self) -> None:
        """Check that every declared pair was completed, and drop the call's bookkeeping."""
        if self._declared is not None and self._declared.pending:
            raise RuntimeError(f"{len(self._declared.pending)} texts of this call were never seen by the recorder")
        self._declared = None

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def before_batch(self, batch) -> None:
        dev = self._device()
        L, N, G = self.sites.n_layers, self.sites.n_neurons, len(self.groups)
        if self._acc is None:
            self._acc = _Accumulator(G, L, N, dev)
            if self.base is not None:
                self._diff = _Accumulator(G, L, N, dev)
        text_spans = getattr(batch, "text_spans", None) or [[(r, s, e)] for r, (s, e) in
                                                             enumerate(_spans(batch.attention_mask.bool()))]
        n_texts = len(batch.text_index)
        if len(text_spans) != n_texts:
            raise RuntimeError(f"batch names {len(text_spans)} texts' spans for {n_texts} texts")
        # distinct spans (a shared prefix is one span of several texts), summed once per layer
        span_of: dict[tuple[int, int, int], int] = {}
        for spans in text_spans:
            for sp in spans:
                span_of.setdefault(sp, len(span_of))
        text_w = np.zeros((G, n_texts))
        for r, t in enumerate(batch.text_index):
            if self._declared is not None:
                text_w[:, r] = self._declared.weights(t)
            else:
                tag = batch.tags[r] if batch.tags else ""
                if tag not in self.groups:
                    raise RmtensionError(f"text tag {tag!r} is not one of the recorder's groups {self.groups}")
                text_w[self.groups.index(tag), r] = 1.0
        weights = np.zeros((G, len(span_of)))
        members = torch.zeros((n_texts, len(span_of)), dtype=torch.float32)
        lengths = np.array([sum(e - s for _, s, e in spans) for spans in text_spans], dtype=np.float64)
        for r, spans in enumerate(text_spans):
            for sp in spans:
                weights[:, span_of[sp]] += text_w[:, r]
                members[r, span_of[sp]] = 1.0 / lengths[r] if lengths[r] else 0.0
        need_means = self._declared is not None and self._declared.has_pairs
        self._count += (text_w * lengths[None, :]).sum(axis=1)
        self._texts += text_w.sum(axis=1)
        self._batch = _BatchState(list(span_of), torch.from_numpy(weights), members,
                                  torch.zeros((n_texts, L, N), dtype=torch.float64, device=dev) if need_means else None)
        if self.base is not None:
            from rmtension.evaluation.scorer import model_inputs

            base_dev = next(self.base.parameters()).device
            if base_dev != dev:  # the scorer moved the RM; the base follows it once
                self.base.to(dev)
                base_dev = dev
            with torch.inference_mode(), _autocast(base_dev, self.autocast):  # the same (packed) layout as the RM
                self.base(**model_inputs(self.base, batch, base_dev))
            if len(self._batch.base_act) != L:
                raise RuntimeError("the base model's hooks did not see every layer")

    def after_batch(self, batch, scores: torch.Tensor) -> None:
        st = self._batch
        self._batch = None
        if st is None or st.row_means is None or self._declared is None:
            return
        means = st.row_means.cpu()
        for r, t in enumerate(batch.text_index):
            for c_mean, r_mean in self._declared.complete(t, means[r]):
                d2 = (c_mean - r_mean).square()
                per_layer = d2.mean(dim=1).sqrt().numpy()
                vals = np.append(per_layer, float(d2.mean().sqrt()))
                self._rmsd_sum += vals
                self._rmsd_sq += vals**2
                self._rmsd_pairs += 1

    # ------------------------------------------------------------------ result

    def result(self, meta: dict[str, Any] | None = None) -> NeuronStats:
        L, N = self.sites.n_layers, self.sites.n_neurons
        acc = self._acc or _Accumulator(len(self.groups), L, N, torch.device("cpu"))
        info = {"architecture": self.sites.describe(), "site_module": self.sites.module_path(0, self.site)}
        info.update(meta or {})
        return NeuronStats(
            self.site, L, N, acc.to_moments(self.groups, self._count), self._texts.copy(),
            self._diff.to_moments(self.groups, self._count) if self._diff is not None else None,
            self._rmsd_sum.copy(), self._rmsd_sq.copy(), self._rmsd_pairs, info,
        )


class _BatchState:
    """What the hooks of one batch need, moved to the activations' device once."""

    def __init__(self, spans: list[tuple[int, int, int]], weights: torch.Tensor, members: torch.Tensor,
                 row_means: torch.Tensor | None):
        # spans: distinct (row, start, end); weights: (G, spans); members: (texts, spans), 1/length
        # where a span belongs to a text (so members @ span sums = the texts' means)
        self.spans, self.weights, self.members, self.row_means = spans, weights, members, row_means
        self.base_act: dict[int, torch.Tensor] = {}
        self._cache: dict[tuple[str, torch.device], torch.Tensor] = {}

    def _on(self, name: str, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        key = (name, device)
        if key not in self._cache:
            self._cache[key] = t.to(device)
        return self._cache[key]

    def weights_on(self, device: torch.device) -> torch.Tensor:
        return self._on("weights", self.weights, device)

    def members_on(self, device: torch.device) -> torch.Tensor:
        return self._on("members", self.members, device)


def _spans(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Each row's real tokens as one (start, end) span; the scorer pads on one side only."""
    spans = []
    for r, row in enumerate(mask):
        idx = torch.nonzero(row).flatten()
        s, e = (int(idx[0]), int(idx[-1]) + 1) if idx.numel() else (0, 0)
        if e - s != idx.numel():
            raise RmtensionError(f"batch row {r}: the attention mask has holes; the recorder needs each text's "
                                 "tokens in one contiguous span (pad on one side)")
        spans.append((s, e))
    return spans


class _CallTexts:
    """Occurrence weights and pair bookkeeping of one scorer call (texts de-duplicated as the scorer does)."""

    def __init__(self, texts: Sequence[str], tags: Sequence[str], pairs: Sequence[tuple[int, int]], groups: list[str]):
        if len(tags) != len(texts):
            raise ValueError("plan: one tag per text is needed")
        first: dict[str, int] = {}
        owner = [first.setdefault(t, i) for i, t in enumerate(texts)]
        self._w: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(groups)))
        for i, tag in enumerate(tags):
            if tag not in groups:
                raise RmtensionError(f"text tag {tag!r} is not one of the recorder's groups {groups}")
            self._w[owner[i]][groups.index(tag)] += 1.0
        self.has_pairs = bool(pairs)
        self.pairs = [(owner[c], owner[r]) for c, r in pairs]
        self._pairs_of: dict[int, list[int]] = defaultdict(list)
        for k, (c, r) in enumerate(self.pairs):
            self._pairs_of[c].append(k)
            if r != c:
                self._pairs_of[r].append(k)
        self.pending = set(self._w)
        self._means: dict[int, torch.Tensor] = {}
        self._left = {t: len(ks) for t, ks in self._pairs_of.items()}

    def weights(self, text_index: int) -> np.ndarray:
        if text_index not in self._w:
            raise RuntimeError(f"text {text_index} was not declared in declare()")
        return self._w[text_index]

    def complete(self, text_index: int, mean: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Record a text's mean vectors; return the (chosen, rejected) means of pairs now complete."""
        self.pending.discard(text_index)
        if text_index not in self._pairs_of:
            return []
        self._means[text_index] = mean
        done = []
        for k in self._pairs_of[text_index]:
            c, r = self.pairs[k]
            if c in self._means and r in self._means:
                done.append((self._means[c], self._means[r]))
                for t in {c, r}:
                    self._left[t] -= 1
                    if self._left[t] == 0:
                        del self._means[t]
        return done


def collect_stats(scorer, pairs: Sequence[tuple[str, str]], *, site: str = "act", base_model: nn.Module | None = None,
                  chunk_pairs: int = 512, meta: dict[str, Any] | None = None) -> tuple[NeuronStats, np.ndarray]:
    """One pass over (chosen text, rejected text) pairs: statistics and the RM's scores together.

    Returns the statistics and a (pairs, 2) array of (chosen, rejected) scores. Pairs are scored
    in chunks of ``chunk_pairs`` so that pending per-text means stay bounded; each chunk is still
    length-sorted and batched by the scorer.
    """
    if not pairs:
        raise RmtensionError("no preference pairs to compute neuron statistics on")
    rec = NeuronStatsRecorder(scorer.model, site=site, base_model=base_model, autocast=scorer.config.dtype)
    scores = np.empty((len(pairs), 2))
    step = max(1, int(chunk_pairs))
    truncated = positions = real_tokens = 0
    with rec:
        for start in range(0, len(pairs), step):
            chunk = pairs[start:start + step]
            texts = [t for pair in chunk for t in pair]
            tags = list(GROUPS) * len(chunk)
            rec.declare(texts, tags, [(2 * k, 2 * k + 1) for k in range(len(chunk))])
            s = scorer.score(texts, observers=[rec], tags=tags,
                             desc=f"neuron stats {start + len(chunk)}/{len(pairs)}")
            rec.finish_call()
            truncated += scorer.last_report.truncated
            positions += scorer.last_report.padded_tokens
            real_tokens += scorer.last_report.tokens
            scores[start:start + len(chunk)] = s.reshape(-1, 2)
    # texts over the length limit were cut from the left (the scorer's rule): counted, not hidden
    return rec.result({**(meta or {}), "truncated_texts": truncated, "positions": positions, "real_tokens": real_tokens,
                       "shared_prompt": bool(getattr(scorer, "shares", False))}), scores
