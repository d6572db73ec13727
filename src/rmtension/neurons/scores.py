"""Per-neuron importance scores, registered by name, computed from ``NeuronStats`` alone.

Each method is a pure function of the streamed sums (see ``stats``), so a statistics file can be
re-scored with any method without running the model again (``change`` needs the sums of
a_RM − a_base, recorded only when a base model was run).

========== ============================================================================
method     score per neuron (over the tokens of the pool)
========== ============================================================================
magnitude  signed mean activation Σa / n — what the paper's code computes ("magnitude")
mean-abs   mean |a|: a large negative mean is as much "activity" as a large positive one
rms        sqrt(Σa² / n): activity including variance around the mean
prob       share of tokens with a > 0 (activation probability)
change     sqrt(Σ(a_RM − a_base)² / n): how far training moved the neuron on these tokens
random     uniform draws from a seeded generator: the baseline every method is compared to
attribution mean over pairs of activation × gradient of the margin r(chosen) − r(rejected)
           on the response tokens (ours; ``rmtension.neurons.attribution``); signed
attribution-abs  mean over pairs of |that pair's attribution|
========== ============================================================================

The attribution methods read sums of a gradient pass (``NeuronStats.attr``), recorded only when
one was run (``neurons score --method attribution`` or ``--with-attribution``). They are per pair,
not per token, so ``pool`` does not apply to them (every pool gives the same scores).

``pool`` chooses the tokens: ``group-mean`` (the default) scores the chosen texts' tokens and the
rejected texts' tokens apart and averages the two scores — the paper's ``(neural_score_chosen +
neural_score_rejected) / 2`` (``get_neuron_score`` in RM_interpretation/neural_abalation/abalate.py;
its scoring.py reduces each side over that side's real tokens), EshaanT/RM-alignment_tension at
commit 96efa92; ``all`` pools both sides' tokens into one mean (differs from ``group-mean`` when
the sides have different token counts); ``chosen`` / ``rejected`` use one side only.

``seed_mean_scores`` is the paper's aggregate over seeds (notebook cell 38): per side, the mean
over seeds, clipped at 0 *after* averaging (``np.maximum(np.mean(scores, axis=0), 0)``), then
the mean of the two sides; the paper ranks these for its layer figure and its overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.names import SCORE_POOLS
from rmtension.neurons.stats import NeuronStats
from rmtension.registry import Registry

GROUP_MEAN = "group-mean"
POOLS = SCORE_POOLS  # (group-mean, all, chosen, rejected)

ScoreFn = Callable[[NeuronStats, str, int], np.ndarray]


@dataclass(frozen=True)
class ScoreMethod:
    name: str
    description: str
    fn: ScoreFn
    needs_diff: bool = False
    needs_attr: bool = False


SCORE_METHODS: Registry[ScoreMethod] = Registry("neuron score method")


def _moments(stats: NeuronStats, pool: str, diff: bool = False) -> tuple[float, dict[str, np.ndarray]]:
    block = stats.diff if diff else stats.act
    if block is None:
        raise RmtensionError("the change score needs statistics recorded with the base model "
                             "(run `rmtension neurons score` with --method change or --with-change)")
    n, m = block.pooled(pool)
    if n <= 0:
        raise RmtensionError(f"no tokens in pool {pool!r}: cannot score neurons")
    return n, m


def _method(name: str, description: str, needs_diff: bool = False, needs_attr: bool = False):
    def deco(fn: ScoreFn) -> ScoreFn:
        SCORE_METHODS.register(name, ScoreMethod(name, description, fn, needs_diff, needs_attr))
        return fn
    return deco


@_method("magnitude", "signed mean activation (the paper's code)")
def magnitude(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    n, m = _moments(stats, pool)
    return m["sum"] / n


@_method("mean-abs", "mean absolute activation")
def mean_abs(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    n, m = _moments(stats, pool)
    return m["abs_sum"] / n


@_method("rms", "root mean square activation")
def rms(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    n, m = _moments(stats, pool)
    return np.sqrt(m["sq_sum"] / n)


@_method("prob", "activation probability: share of tokens with a > 0")
def prob(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    n, m = _moments(stats, pool)
    return m["pos_count"] / n


@_method("change", "RMS of a_RM − a_base (untrained base model, same tokens)", needs_diff=True)
def change(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    n, m = _moments(stats, pool, diff=True)
    return np.sqrt(m["sq_sum"] / n)


@_method("random", "seeded uniform random scores (baseline)")
def random(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    return random_scores(stats.layers, stats.neurons, seed)


def _attr(stats: NeuronStats):
    if stats.attr is None:
        raise RmtensionError("the attribution scores need statistics recorded with an attribution pass "
                             "(run `rmtension neurons score` with --method attribution or --with-attribution)")
    if stats.attr.pairs <= 0:
        raise RmtensionError("no pairs in the attribution sums: cannot score neurons")
    return stats.attr


@_method("attribution", "mean over pairs of activation × gradient of the pair margin (signed)", needs_attr=True)
def attribution(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    a = _attr(stats)
    return a.sum / a.pairs


@_method("attribution-abs", "mean over pairs of |activation × gradient of the pair margin|", needs_attr=True)
def attribution_abs(stats: NeuronStats, pool: str = "all", seed: int = 0) -> np.ndarray:
    a = _attr(stats)
    return a.abs_sum / a.pairs


def random_scores(layers: int, neurons: int, seed: int) -> np.ndarray:
    """Uniform [0, 1) scores from ``numpy.random.default_rng(seed)``; same seed, same scores."""
    return np.random.default_rng(int(seed)).random((layers, neurons))


def compute_scores(stats: NeuronStats, method: str, pool: str = GROUP_MEAN, seed: int = 0) -> np.ndarray:
    """(layers, neurons) float64 scores of ``method``; higher = more important."""
    if pool not in POOLS:
        raise RmtensionError(f"unknown pool {pool!r}; use one of: {', '.join(POOLS)}")
    entry = SCORE_METHODS.get(method)
    fn = entry.fn
    if pool == GROUP_MEAN:
        if method == "random" or entry.needs_attr:  # random and per-pair scores do not depend on the pool
            scores = np.asarray(fn(stats, "all", seed), dtype=np.float64)
        else:
            scores = np.mean([np.asarray(fn(stats, g, seed), dtype=np.float64) for g in stats.groups], axis=0)
    else:
        scores = np.asarray(fn(stats, pool, seed), dtype=np.float64)
    if not np.isfinite(scores).all():
        raise RmtensionError(f"method {method!r} produced non-finite scores; the statistics are broken (NaN weights?)")
    return scores


def needs_base(method: str) -> bool:
    return SCORE_METHODS.get(method).needs_diff


def needs_attribution(method: str) -> bool:
    """Whether ``method`` needs the gradient pass of ``rmtension.neurons.attribution``."""
    return SCORE_METHODS.get(method).needs_attr


def seed_mean_scores(stats_by_seed: list[NeuronStats], method: str) -> np.ndarray:
    """The paper's scores over seeds: per side, mean over seeds, clipped at 0, then the mean of the sides.

    notebooks/plotsNresults.ipynb cell 38 (EshaanT/RM-alignment_tension, commit 96efa92):
    ``scores_chosen = np.maximum(np.mean(scores_chosen, axis=0), 0)`` (the same for rejected),
    then ``np.abs((scores_chosen + scores_rejected) / 2)`` — the clip comes after the seed mean,
    so a neuron negative in one seed and positive in the others keeps its net mean. ``random``
    has no such aggregate (its scores do not come from the data).
    """
    if method == "random":
        raise RmtensionError("random scores have no seed aggregate; draw a random set per seed instead")
    if not stats_by_seed:
        raise RmtensionError("no seeds to aggregate neuron scores over")
    groups = stats_by_seed[0].groups
    shape = (stats_by_seed[0].layers, stats_by_seed[0].neurons)
    for st in stats_by_seed:
        if st.groups != groups or (st.layers, st.neurons) != shape:
            raise RmtensionError("cannot aggregate neuron statistics of different models, sites or groups over seeds")
    sides = [np.maximum(np.mean([compute_scores(st, method, g) for st in stats_by_seed], axis=0), 0.0) for g in groups]
    return np.abs(np.mean(sides, axis=0))
