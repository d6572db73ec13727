"""Attribution scores: which neurons make the RM prefer the chosen response over the rejected one.

Why: the paper's neuron scores (``neurons.scores``: signed mean, |a|, RMS, change) never look at
the objective; a neuron that is large on every text scores high for every RM. An attribution
asks the RM itself: how much does the pair's margin m = r(chosen) − r(rejected) depend on this
neuron?

Definition (per neuron j of layer l, per preference pair p)::

    A_p[l, j] = Σ_{t ∈ R(c)} a_c[t, j] · ∂m/∂a_c[t, j]  +  Σ_{t ∈ R(r)} a_r[t, j] · ∂m/∂a_r[t, j]

with a_c, a_r the neuron's activations at the chosen/rejected text's token t (at the neuron site,
``act`` or ``down_in``), and R(·) the text's *response tokens*. Since ∂m/∂a_c = ∂r(c)/∂a_c and
∂m/∂a_r = −∂r(r)/∂a_r, A_p = A(c) − A(r) with A(x) = Σ_{t∈R(x)} a_x · ∂r(x)/∂a_x. A_p is exactly
∂m/∂g at g = 1, where g scales the neuron's activation on R (``a ← g·a``): to first order,
scaling the neuron by (1 − ε) on those tokens changes the margin by −ε·A_p, and removing it
(g = 0, the paper's ablation) by about −A_p (tests/test_attribution.py checks the first-order
statement against finite differences). Scores over a dataset (``neurons.scores``):

* ``attribution``: the mean over pairs of A_p (signed). High = the neuron pushes the RM towards the
  chosen response; its top-k% is the set whose removal should cost the most margin.
* ``attribution-abs``: the mean over pairs of |A_p|: how much the neuron moves margins either way.

*Response tokens* (``tokens="response"``, the default): the tokens after the longest common prefix
of the pair's two token sequences (as the RM sees them: the RM's template, left truncation at the
max length). For HH that prefix is the whole conversation up to and including the last
"Assistant:" tag, plus any identical opening tokens of the two responses. Why this and not the
prompt as a string: it is exact on tokens (a BPE merge across the prompt/response boundary just
shortens it), and it is precisely where the two texts differ — on the common prefix a causal RM
computes identical activations for both texts, so those tokens say nothing about *which response*
the RM prefers (their a·∇ terms measure how the shared context is read, not the judgement). A
text cut from the left at the max length usually shares no prefix with its partner any more; all its
kept tokens then count. A text that occurs in several pairs (the scorer computes it once) gets one
sum per distinct prefix, so every pair's A_p is exact. ``tokens="all"``: every real token, so that
A_p is the first-order effect of ablating the neuron everywhere, as ``ablation.ablate`` does.

Integrated gradients (``ig_steps=S > 0``): the gate g of *every* neuron on the response tokens is
moved together from 0 to 1, and each neuron's attribution is ∫₀¹ ∂m/∂g_j dα by the midpoint rule
over S points; then Σ_j A_p[j] = m(all neurons on, on R) − m(all neurons zeroed on R) up to the
rule's O(1/S²) error (completeness; tested). S forward+backward passes per batch instead of one.
(A text shared by pairs with different prefixes is gated from its earliest response start.)

Computation, and why this way: the scorer's batches run with autograd on (``RewardScorer.logits``)
and the model's weights frozen (no weight gradients are computed or stored), one backward per
batch of ``logits.sum()`` — in a plain batch each text is its own row and only its own score
depends on its activations, so that one backward gives every text's own ∂r/∂a. Packed shared
prompts are turned off for this pass: a packed prefix is one activation for several texts, whose
gradient mixes their scores. The products a·∂r/∂a are reduced over each text's response span at
once, per-text (L, N) sums are held only until the chunk's pairs are assembled, and the pair sums
are float64 totals: memory is one batch's graph plus one chunk's per-text sums, flat in the number
of pairs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from rmtension.errors import RmtensionError
from rmtension.models.encoding import common_prefix
from rmtension.names import ATTRIBUTION_TOKENS
from rmtension.neurons.sites import ModelSites, check_site, hook_sites, model_sites
from rmtension.neurons.stats import AttributionSums

DEFAULT_CHUNK_PAIRS = 64  # per-text (L, N) float64 sums held per chunk: 128 texts × 0.37 MB for SmolLM2-135M


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Weights with ``requires_grad=False`` inside the block (restored after, also on errors): the
    backward then computes activation gradients only, and the forward keeps nothing for weight grads."""
    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


def check_options(tokens: str, ig_steps: int) -> None:
    if tokens not in ATTRIBUTION_TOKENS:
        raise RmtensionError(f"attribution tokens must be one of {', '.join(ATTRIBUTION_TOKENS)}, got {tokens!r}")
    if int(ig_steps) < 0:
        raise RmtensionError(f"integrated-gradient steps must be 0 (plain activation × gradient) or more, got {ig_steps}")


def _plain_scorer(scorer):
    """The scorer itself, or a copy that does not pack shared prompts (see the module docstring)."""
    from rmtension.evaluation.scorer import RewardScorer

    if not getattr(scorer, "shares", False):
        return scorer
    return RewardScorer(scorer.model, scorer.tokenizer, dataclasses.replace(scorer.config, shared_prompt=False))


def _text_ids(batches) -> dict[int, list[int]]:
    """Each unique text's token ids (as the model sees them), read from the planned plain batches."""
    ids: dict[int, list[int]] = {}
    for b in batches:
        for j, t in enumerate(b.text_index):
            spans = b.text_spans[j]
            if len(spans) != 1:
                raise RuntimeError("attribution needs plain batches (one span per text)")
            row, s, e = spans[0]
            ids[t] = b.input_ids[row, s:e].tolist()
    return ids


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (autocast), else as is (a float64 model keeps float64)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def batch_attribution(scorer, batch, starts: dict[int, Sequence[int]], sites: ModelSites, site: str,
                      ig_steps: int = 0) -> tuple[dict[tuple[int, int], np.ndarray], torch.Tensor | None]:
    """Per (text, start) the (L, N) float64 sum A(x) over the text's positions ≥ start, for a plain batch,
    and the texts' scores (None with integrated gradients, whose passes never run the intact model).

    ``starts[text]``: the response starts (token offsets in the text) wanted for that text; usually one.
    With integrated gradients the gate of a text spans its positions from its smallest start.
    """
    model = scorer.model
    L, N = sites.n_layers, sites.n_neurons
    regions = []  # (text, start, row, begin, end) in batch coordinates: the tokens attributed
    gated = []  # (row, begin, end): where integrated gradients scale the activations
    for j, t in enumerate(batch.text_index):
        row, s, e = batch.text_spans[j][0]
        wanted = sorted(set(starts.get(t, (0,))))
        for st in wanted:
            regions.append((t, st, row, min(e, s + st), e))
        gated.append((row, min(e, s + wanted[0]), e))
    dev = scorer.device
    out = torch.zeros((len(regions), L, N), dtype=torch.float64, device=dev)
    alphas = [1.0] if ig_steps <= 0 else [(k + 0.5) / ig_steps for k in range(ig_steps)]
    weight = 1.0 / len(alphas)
    scores = None
    for alpha in alphas:
        gate = None
        if ig_steps > 0:
            gate = torch.ones(batch.input_ids.shape + (1,), dtype=torch.float32, device=dev)
            for row, b, e in gated:
                gate[row, b:e] = alpha
        seen: dict[int, torch.Tensor] = {}  # what flows on (differentiated)
        pre: dict[int, torch.Tensor] = {}  # the activation as computed (the "a" of a · ∂m/∂a)

        def hook(layer: int, a: torch.Tensor) -> torch.Tensor | None:
            if not a.requires_grad:  # the first hooked layer: weights frozen, so nothing upstream needs grad
                a.requires_grad_()
            pre[layer] = a
            if gate is None:
                seen[layer] = a
                return None
            g = a * gate.to(a.dtype)
            seen[layer] = g
            return g

        with hook_sites(model, site, hook, sites=sites), torch.enable_grad():
            logits = scorer.logits(batch)
            if len(seen) != L:
                raise RuntimeError(f"the attribution hooks saw {len(seen)} of {L} layers")
            grads = torch.autograd.grad(logits.sum(), [seen[i] for i in range(L)], allow_unused=True)
        if gate is None:
            scores = logits.detach().float().cpu()
        for layer, g in enumerate(grads):
            if g is None:  # a layer the score does not depend on (cannot happen in a working model)
                continue
            prod = _wide(pre[layer].detach()) * _wide(g)
            for k, (_t, _st, row, b, e) in enumerate(regions):
                if e > b:
                    out[k, layer] += weight * prod[row, b:e].sum(dim=0, dtype=torch.float64)
        del grads, seen, pre, logits
    sums = out.cpu().numpy()
    return {(t, st): sums[k] for k, (t, st, _row, _b, _e) in enumerate(regions)}, scores


def collect_attribution(scorer, pairs: Sequence[tuple[str, str]], *, site: str = "act", tokens: str = "response",
                        ig_steps: int = 0, chunk_pairs: int = DEFAULT_CHUNK_PAIRS,
                        progress: Any = None) -> tuple[AttributionSums, np.ndarray]:
    """Attribution sums over (chosen text, rejected text) pairs, and the pairs' (chosen, rejected) scores.

    ``scorer`` is a ``RewardScorer`` (its batch size, max length, dtype and device are used; shared
    prompts are not packed in this pass). Pairs are processed in chunks of ``chunk_pairs``; each
    chunk is de-duplicated, length-sorted and batched by the scorer. With ``ig_steps > 0`` the
    scores come from one extra plain forward per batch.
    """
    check_site(site)
    check_options(tokens, ig_steps)
    if not pairs:
        raise RmtensionError("no preference pairs to compute attributions on")
    sc = _plain_scorer(scorer)
    ms = model_sites(sc.model)
    L, N = ms.n_layers, ms.n_neurons
    total = AttributionSums.zeros(L, N, tokens, int(ig_steps))
    pair_scores = np.empty((len(pairs), 2))
    step = max(1, int(chunk_pairs))
    with frozen(sc.model):
        for begin in range(0, len(pairs), step):
            chunk = pairs[begin:begin + step]
            texts = [t for pair in chunk for t in pair]
            batches, owner, _rep = sc.make_batches(texts)
            ids = _text_ids(batches)
            pair_start: list[int] = []
            starts: dict[int, set[int]] = {}
            for k in range(len(chunk)):
                c, r = owner[2 * k], owner[2 * k + 1]
                st = 0 if tokens == "all" else common_prefix(ids[c], ids[r], own_token=False)
                pair_start.append(st)
                starts.setdefault(c, set()).add(st)
                starts.setdefault(r, set()).add(st)
            sums: dict[tuple[int, int], np.ndarray] = {}
            text_scores: dict[int, float] = {}
            for batch in batches:
                got, s = batch_attribution(sc, batch, {t: sorted(v) for t, v in starts.items()}, ms, site,
                                           int(ig_steps))
                if s is None:
                    s = sc.forward(batch)
                sums.update(got)
                for j, t in enumerate(batch.text_index):
                    text_scores[t] = float(s[j])
                if progress is not None:
                    progress(len(batch.text_index))
            for k in range(len(chunk)):
                c, r = owner[2 * k], owner[2 * k + 1]
                st = pair_start[k]
                a_p = sums[(c, st)] - sums[(r, st)]
                total.sum += a_p
                total.abs_sum += np.abs(a_p)
                total.sq_sum += a_p * a_p
                total.pairs += 1
                pair_scores[begin + k] = (text_scores[c], text_scores[r])
            del sums
    if not np.all(np.isfinite(total.sum)):
        raise RmtensionError("attribution produced non-finite values (NaN weights, or fp16 overflow: try float32)")
    return total, pair_scores


def attribution_summary(attr: AttributionSums) -> dict[str, Any]:
    """Numbers worth printing beside a score file: pairs, method settings, total attribution."""
    mean = attr.sum / max(attr.pairs, 1)
    return {"pairs": attr.pairs, **attr.how(), "mean_total": float(mean.sum()),
            "mean_abs_total": float(attr.abs_sum.sum() / max(attr.pairs, 1))}
