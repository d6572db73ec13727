"""Evaluating many neuron sets on the same texts, sharing the work that the sets have in common.

A naive sweep runs ``evaluate()`` once per set: it re-tokenises, re-sorts and re-batches every
text, and runs every layer of the model for every set. What can be shared:

1. Tokenising, de-duplicating, length-sorting and batching: done once (``RewardScorer.plan``).
2. The unablated baseline, needed anyway for the deltas: one full pass per batch.
3. Everything below a set's lowest ablated layer ``s``: in the baseline pass of each batch, the
   output of layer ``s-1`` is kept, and every set starting at ``s`` re-runs only layers ``s ..``
   (``resume.LayerResume``; works the same for GPT-2, Llama/SmolLM2, Gemma and BERT, and falls
   back to a full pass, with a logged reason, where a model cannot be resumed).
4. Identical sets (same neurons, site, mode and values) are computed once; empty sets — e.g.
   k = 0 on an ablation curve — are the baseline, and take no forward pass at all.

Loops run batch-outer, set-inner, so the cache holds one batch of hidden states per distinct
start layer (≤ one per set, ≤ one per layer) and never anything per dataset. The scores equal
separate ``evaluate()`` runs under ``ablate()`` (same batches, same kernels on the same inputs;
the tests check every family to float tolerance, and on CPU they are bit-identical).

Cost, in layer forwards: baseline L per batch plus Σ_sets (L − s_set), against L × (1 + #sets)
for separate runs; ``SweepStats.work_ratio`` reports it, so a sweep whose sets all start at
layer 0 honestly shows ~1.0 (only steps 1 and 4 then save anything).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from rmtension.ablation.ablate import Ablation, apply_ablation
from rmtension.ablation.resume import LayerResume
from rmtension.bench.types import Benchmark
from rmtension.bench.groups import DEFAULT_GROUPING
from rmtension.evaluation.evaluate import BenchTexts, EvalResult, benchmark_texts, scoring_record, summarise_benchmarks
from rmtension.evaluation.lengths import item_lengths
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.neurons.sites import ModelSites, model_sites

try:  # the scorer's own error for NaN/inf scores (an RmtensionError: one line on the command line)
    from rmtension.evaluation.scorer import NonFiniteScoreError
except ImportError:  # pragma: no cover - older scorer
    NonFiniteScoreError = FloatingPointError  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)


@dataclass
class SweepStats:
    """How much work a sweep did, and how much separate runs would have done."""

    sets: int = 0
    computed: int = 0  # distinct non-empty ablations actually run
    batches: int = 0
    layers: int = 0
    layer_forwards: int = 0  # decoder/encoder layer forwards run (baseline included)
    layer_forwards_separate: int = 0  # one full pass per set plus the baseline
    starts: dict[str, int | None] = field(default_factory=dict)  # set name → layer its passes started at
    fallbacks: dict[int, str] = field(default_factory=dict)  # start layer → why it could not be resumed
    shared: bool = True
    seconds: float = 0.0

    @property
    def work_ratio(self) -> float:
        """Layer forwards run ÷ layer forwards of separate runs (lower is better)."""
        return self.layer_forwards / self.layer_forwards_separate if self.layer_forwards_separate else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"sets": self.sets, "computed": self.computed, "batches": self.batches, "layers": self.layers,
                "shared": self.shared, "layer_forwards": self.layer_forwards,
                "layer_forwards_separate": self.layer_forwards_separate, "work_ratio": round(self.work_ratio, 4),
                "starts": self.starts, "fallbacks": {str(k): v for k, v in self.fallbacks.items()},
                "seconds": round(self.seconds, 3)}


def _dedupe(ablations: Sequence[Ablation]) -> tuple[list[Ablation], list[int | None]]:
    """Distinct non-empty ablations, and for each input the index into them (None = baseline)."""
    unique: list[Ablation] = []
    seen: dict[tuple, int] = {}
    index: list[int | None] = []
    for ab in ablations:
        if ab.first_layer is None:
            index.append(None)
            continue
        k = ab.key()
        if k not in seen:
            seen[k] = len(unique)
            unique.append(ab)
        index.append(seen[k])
    return unique, index


def score_sweep(scorer: RewardScorer, texts: Sequence[str], ablations: Sequence[Ablation], *, share: bool = True,
                sites: ModelSites | None = None, desc: str = "ablation sweep") -> tuple[np.ndarray, list[np.ndarray], SweepStats]:
    """Baseline scores and one score array per ablation, for ``texts`` in input order.

    ``share=False`` runs a full pass per set (still one batching and one baseline); it exists for
    checks and benchmarks of the sharing itself.
    """
    t0 = time.perf_counter()
    model = scorer.model
    ms = sites or model_sites(model)
    unique, index = _dedupe(ablations)
    L = ms.n_layers
    resume = LayerResume(ms, [ab.first_layer for ab in unique if ab.first_layer] if share else [])
    if not texts:
        return np.zeros(0), [np.zeros(0) for _ in ablations], SweepStats(sets=len(ablations), layers=L, shared=share)
    batches, owner, rep = scorer.make_batches(texts)
    stats = SweepStats(sets=len(ablations), computed=len(unique), batches=len(batches), layers=L, shared=share)
    base = np.full(len(texts), np.nan)
    outs = [np.full(len(texts), np.nan) for _ in unique]
    starts_used: list[set[int]] = [set() for _ in unique]
    bar = tqdm(total=len(batches) * (1 + len(unique)), desc=desc, unit="pass",
               disable=None if scorer.config.progress else True, leave=False)
    for batch in batches:
        with resume.capture():
            base[batch.text_index] = scorer.forward(batch).double().numpy()
        stats.layer_forwards += L
        bar.update(1)
        for u, ab in enumerate(unique):
            start = ab.first_layer or 0
            scores = None
            if resume.usable(start):
                with apply_ablation(model, ab, ms), resume.replay(start) as check:
                    scores = scorer.forward(batch)
                if check.ok:
                    stats.layer_forwards += L - start
                else:
                    resume.disable(start, f"layer {start} did not receive the replayed hidden states exactly once")
                    scores = None
            if scores is None:
                start = 0
                with apply_ablation(model, ab, ms):
                    scores = scorer.forward(batch)
                stats.layer_forwards += L
            starts_used[u].add(start)
            outs[u][batch.text_index] = scores.double().numpy()
            bar.update(1)
    bar.close()
    stats.layer_forwards_separate = L * len(batches) * (1 + len(ablations))
    stats.fallbacks = {s: st.reason or "" for s, st in resume.status.items() if not st.usable}
    for ab, i in zip(ablations, index):
        stats.starts[ab.name] = None if i is None else min(starts_used[i], default=0)
    base = base[owner]
    if not np.isfinite(base).all():
        raise NonFiniteScoreError("the reward model produced non-finite scores (NaN/inf) without any ablation: "
                                  "the weights are probably broken, or the dtype overflowed (try --dtype float32)")
    result = []
    for ab, i in zip(ablations, index):
        arr = base if i is None else outs[i][owner]
        if not np.isfinite(arr).all():
            raise NonFiniteScoreError(f"the reward model produced non-finite scores (NaN/inf) with {ab.name} ablated")
        result.append(arr.copy())
    scorer.last_report = rep
    stats.seconds = time.perf_counter() - t0
    if hasattr(rep, "seconds"):
        rep.seconds = stats.seconds
    return base, result, stats


# ----------------------------------------------------------------------------- benchmarks


@dataclass
class SetResult:
    """One ablated set's evaluation: the ``Ablation`` and an ``EvalResult`` (results.json + items)."""

    ablation: Ablation
    result: EvalResult


@dataclass
class SweepResult:
    """Baseline and per-set evaluations of one sweep, plus what the sharing saved."""

    baseline: EvalResult
    sets: list[SetResult]
    stats: SweepStats


def _eval_result(benchmarks: Sequence[Benchmark], bt: BenchTexts, scores: np.ndarray, scoring: dict[str, Any],
                 grouping: str = DEFAULT_GROUPING, lengths: list | None = None) -> EvalResult:
    results, items = summarise_benchmarks(benchmarks, bt.split(scores), grouping, lengths)
    results["scoring"] = dict(scoring)
    return EvalResult(results, items)


def sweep(model: Any, tokenizer: Any, benchmarks: Sequence[Benchmark], ablations: Sequence[Ablation],
          template: str = "hh", scorer_config: ScorerConfig | None = None, share: bool = True,
          grouping: str = DEFAULT_GROUPING) -> SweepResult:
    """Evaluate ``benchmarks`` unablated and under each ablation, sharing work (see the module docstring).
    Group means follow ``grouping`` (see :mod:`rmtension.bench.groups`).

    Each set's ``EvalResult`` has the ``evaluate()`` contract plus ``"ablation"`` (the set's
    metadata) and ``"delta_vs_baseline"`` (see ``report.deltas``).
    """
    from rmtension.ablation.report import deltas

    names = [ab.name for ab in ablations]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"ablation names must be unique in a sweep; repeated: {', '.join(dup)}")
    scorer = RewardScorer(model, tokenizer, scorer_config)
    bt = benchmark_texts(benchmarks, tokenizer, template)
    base, per_set, stats = score_sweep(scorer, bt.texts, ablations, share=share)
    scoring = scoring_record(scorer, seconds=None, sweep=True, shared_work=share)
    lengths = [item_lengths(b.items, tokenizer, template, scorer.max_length) for b in benchmarks]
    baseline = _eval_result(benchmarks, bt, base, scoring, grouping, lengths)
    baseline.results["ablation"] = None
    out: list[SetResult] = []
    for ab, scores in zip(ablations, per_set):
        res = _eval_result(benchmarks, bt, scores, scoring, grouping, lengths)
        res.results["ablation"] = ab.metadata()
        res.results["ablation"]["start_layer"] = stats.starts.get(ab.name)
        res.results["delta_vs_baseline"] = deltas(res, baseline)
        out.append(SetResult(ab, res))
    log.info("ablation sweep: %d sets, work ratio %.3f, %.1fs", len(ablations), stats.work_ratio, stats.seconds)
    return SweepResult(baseline, out, stats)
