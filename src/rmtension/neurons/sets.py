"""Neuron sets: top-k% selection, set algebra, overlap figures, layer location, random controls.

A ``NeuronSet`` is a boolean (layers × neurons) mask plus metadata. Holding a mask rather than
per-layer index lists makes every set operation an elementwise one, *per neuron*: the
intersection of A and B in a layer where B has nothing is empty. (The paper's code,
``AblateNeurons`` with ``both_intersection`` in RM_interpretation/neural_abalation/abalate.py at
commit 96efa92 of EshaanT/RM-alignment_tension, kept a whole layer of either set's neurons where
the other set had none in that layer — its "shared" set was partly helpful-only and partly
harmless-only; ``shared`` here never is.)

Everything in this module is pure: files are read and written by ``setfile``.

Selection (``select_top``)
    Top ``percent``% of the scores over all layers × neurons at once (the paper), or the top
    ``percent``% within each layer (``per_layer=True``). ``rule="count"`` (the default) keeps
    exactly ``floor(total × percent / 100)`` (computed exactly, so 10% of 30 × 1536 is 4608), ties
    broken deterministically: a higher score first, then the lower layer, then the lower neuron
    index. ``rule="percentile"`` is the paper's own rule (``get_top_indices`` in
    EshaanT/RM-alignment_tension, RM_interpretation/neural_abalation/abalate.py and
    notebooks/plotsNresults.ipynb cell 6, commit 96efa92): every neuron whose score is
    ``>= np.percentile(scores, 100 - percent)``. Without ties that keeps
    ``floor(total × percent / 100 + 1 - percent / 100)`` neurons — one more than ``count`` for
    some sizes (GPT-2 small: 3687 instead of 3686 of 36,864) — and with ties it keeps all of
    them (after the paper's clipping at 0, possibly many).

Location (``thirds``, ``location``)
    The paper's rule (notebook cell 43, ``assign_layer_region``, commit 96efa92): with L layers,
    layer ℓ is early if ℓ < L/3, middle if ℓ < 2L/3, late otherwise — in integers 3ℓ < L and
    3ℓ < 2L, so the boundaries are ceil(L/3) and ceil(2L/3). 30 layers → 0-9, 10-19, 20-29;
    32 → 0-10, 11-21, 22-31; 4 → 0-1, 2, 3; 5 → 0-1, 2-3, 4; 1 → early only.
    (The notebook takes L as 1 + the deepest layer holding a top neuron of that RM; we use the
    model's real layer count, which is the same whenever the last layer holds one.)

Retention (``retention``)
    ``retention`` is the paper's neuron retention |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A ∪ N_M|
    (notebook cell 51, "custom_jaccard", commit 96efa92); ``retention_of_single`` is the share of
    the single-objective neurons the mixed RM keeps, |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A|.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.names import SET_OPS as SET_OPS

THIRDS = ("early", "middle", "late")
SELECTION_RULES = ("count", "percentile")


@dataclass(frozen=True)
class NeuronSet:
    """Selected neurons of a model with ``layers`` × ``neurons_per_layer`` MLP units."""

    mask: np.ndarray  # (layers, neurons_per_layer) bool
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != np.bool_:
            raise ValueError("NeuronSet.mask must be a 2-d boolean array")

    @property
    def layers(self) -> int:
        return int(self.mask.shape[0])

    @property
    def neurons_per_layer(self) -> int:
        return int(self.mask.shape[1])

    @property
    def total(self) -> int:
        return int(self.mask.size)

    def __len__(self) -> int:
        return int(self.mask.sum())

    def per_layer(self) -> list[int]:
        return [int(c) for c in self.mask.sum(axis=1)]

    def by_layer(self) -> dict[int, list[int]]:
        """{layer: sorted neuron indices} for every layer (empty lists included)."""
        return {i: np.flatnonzero(self.mask[i]).tolist() for i in range(self.layers)}

    def indices(self, layer: int) -> np.ndarray:
        return np.flatnonzero(self.mask[layer])

    @classmethod
    def from_indices(cls, layers: int, neurons_per_layer: int, selected: dict[int, list[int]],
                     meta: dict[str, Any] | None = None) -> "NeuronSet":
        mask = np.zeros((layers, neurons_per_layer), dtype=bool)
        for layer, idx in selected.items():
            mask[int(layer), np.asarray(idx, dtype=np.int64)] = True
        return cls(mask, dict(meta or {}))

    @classmethod
    def empty(cls, layers: int, neurons_per_layer: int, meta: dict[str, Any] | None = None) -> "NeuronSet":
        return cls(np.zeros((layers, neurons_per_layer), dtype=bool), dict(meta or {}))

    def with_meta(self, **meta: Any) -> "NeuronSet":
        return NeuronSet(self.mask, {**self.meta, **meta})

    def __repr__(self) -> str:
        """Counts and the identifying metadata, never the mask (a SmolLM2 set is 46,080 booleans)."""
        shown = {k: self.meta[k] for k in ("method", "site", "k", "selection", "objective") if self.meta.get(k) is not None}
        extra = "".join(f", {k}={v!r}" for k, v in shown.items())
        return (f"NeuronSet({len(self)} of {self.total} neurons in {self.layers} layers × "
                f"{self.neurons_per_layer}{extra})")


# ----------------------------------------------------------------------------- selection


def n_selected(total: int, percent: float) -> int:
    """floor(total × percent / 100), exact for decimal percentages (no 0.1-style float error)."""
    if not 0 <= percent <= 100:
        raise RmtensionError(f"top percent must be between 0 and 100, got {percent}")
    return int(Fraction(total) * Fraction(str(percent)) / 100)


def _top_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Mask of the k highest scores; ties → lower flat index first (stable sort on −score)."""
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(scores.shape)


def _percentile_mask(scores: np.ndarray, percent: float) -> np.ndarray:
    """The paper's ``get_top_indices``: scores >= np.percentile(scores, 100 - percent), ties all kept."""
    n_selected(scores.size, percent)  # the same range check as the count rule
    return scores >= np.percentile(scores, 100 - percent)


def select_top(scores: np.ndarray, percent: float = 10.0, *, per_layer: bool = False,
               rule: str = "count", meta: dict[str, Any] | None = None) -> NeuronSet:
    """The top ``percent``% neurons of ``scores`` (layers × neurons); see the module docstring."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be (layers, neurons)")
    if np.isnan(scores).any():
        raise RmtensionError("neuron scores contain NaN; cannot rank them")
    if rule not in SELECTION_RULES:
        raise RmtensionError(f"unknown selection rule {rule!r}; use one of: {', '.join(SELECTION_RULES)}")
    if rule == "percentile":
        if per_layer:
            mask = np.stack([_percentile_mask(row, percent) for row in scores])
        else:
            mask = _percentile_mask(scores, percent)
    elif per_layer:
        k = n_selected(scores.shape[1], percent)
        mask = np.stack([_top_mask(row, k) for row in scores])
    else:
        mask = _top_mask(scores, n_selected(scores.size, percent))
    info = {"k": percent, "selection": "per-layer" if per_layer else "global"}
    if rule != "count":
        info["rule"] = rule
    info.update(meta or {})
    return NeuronSet(mask, info)


# ----------------------------------------------------------------------------- algebra


def _check_compatible(a: NeuronSet, b: NeuronSet) -> None:
    if a.mask.shape != b.mask.shape:
        raise RmtensionError(f"neuron sets of different models: {a.layers}×{a.neurons_per_layer} vs "
                             f"{b.layers}×{b.neurons_per_layer} neurons")


def _summary(s: NeuronSet) -> dict[str, Any]:
    keep = ("rm", "data", "method", "site", "k", "selection", "pool", "seed", "op", "file")
    return {k: s.meta[k] for k in keep if k in s.meta}


def _site_of(a: NeuronSet, b: NeuronSet) -> str | None:
    sa, sb = a.meta.get("site"), b.meta.get("site")
    return sa if sa == sb else "+".join(str(s) for s in (sa, sb) if s)


def combine(a: NeuronSet, b: NeuronSet, op: str) -> NeuronSet:
    """``shared`` (A ∩ B), ``a-only`` (A \\ B), ``b-only`` (B \\ A) or ``union`` (A ∪ B), per neuron."""
    _check_compatible(a, b)
    masks = {"shared": a.mask & b.mask, "a-only": a.mask & ~b.mask, "b-only": b.mask & ~a.mask,
             "union": a.mask | b.mask}
    if op not in masks:
        raise RmtensionError(f"unknown set operation {op!r}; use one of: {', '.join(SET_OPS)}")
    return NeuronSet(masks[op], {"op": op, "site": _site_of(a, b), "a": _summary(a), "b": _summary(b)})


def shared(a: NeuronSet, b: NeuronSet) -> NeuronSet:
    return combine(a, b, "shared")


def a_only(a: NeuronSet, b: NeuronSet) -> NeuronSet:
    return combine(a, b, "a-only")


def b_only(a: NeuronSet, b: NeuronSet) -> NeuronSet:
    return combine(a, b, "b-only")


def union(a: NeuronSet, b: NeuronSet) -> NeuronSet:
    return combine(a, b, "union")


# ----------------------------------------------------------------------------- figures


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def overlap(a: NeuronSet, b: NeuronSet) -> dict[str, Any]:
    """|A|, |B|, shared, a_only, b_only, union, Jaccard, overlap share |A∩B| / min(|A|, |B|).

    Jaccard of two empty sets is 1.0 (they are equal); the overlap share is None when either
    set is empty (0/0).
    """
    _check_compatible(a, b)
    na, nb = len(a), len(b)
    sh = int((a.mask & b.mask).sum())
    un = int((a.mask | b.mask).sum())
    return {
        "a": na, "b": nb, "shared": sh, "a_only": na - sh, "b_only": nb - sh, "union": un,
        "jaccard": sh / un if un else 1.0,
        "overlap_share": _ratio(sh, min(na, nb)),
        "total": a.total,
    }


def retention(mixed: NeuronSet, helpful: NeuronSet, harmless: NeuronSet) -> dict[str, Any]:
    """How many single-objective neurons the mixed RM keeps, by the paper's definition and ours.

    ``retention`` (the paper's, reported by default): |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A ∪ N_M|
    — notebooks/plotsNresults.ipynb cell 51 ("custom_jaccard": numerator ``(helpful | harmless) &
    both``, denominator ``helpful | harmless | both``), EshaanT/RM-alignment_tension at 96efa92.
    ``retention_of_single``: |N_M ∩ (N_H ∪ N_A)| / |N_H ∪ N_A|, the share of the single-objective
    neurons the mixed RM keeps (the brief's §6). The pairwise figures: Jaccard of the mixed set
    with each single set (the paper's cell 46 Jaccard over pairs of RM types) and our
    |N_M ∩ N_H| / |N_H|, |N_M ∩ N_A| / |N_A|. A 0/0 ratio is None (the notebook writes 0.0).
    """
    _check_compatible(mixed, helpful)
    _check_compatible(mixed, harmless)
    single = helpful.mask | harmless.mask
    kept = int((mixed.mask & single).sum())
    n_single, n_all = int(single.sum()), int((single | mixed.mask).sum())

    def jaccard(a: NeuronSet, b: NeuronSet) -> float | None:
        return _ratio(int((a.mask & b.mask).sum()), int((a.mask | b.mask).sum()))

    return {
        "retained": kept, "single_union": n_single, "all_union": n_all,
        "retention": _ratio(kept, n_all), "retention_of_single": _ratio(kept, n_single),
        "definition": "paper: |M ∩ (H ∪ A)| / |H ∪ A ∪ M|",
        "retention_helpful": _ratio(int((mixed.mask & helpful.mask).sum()), len(helpful)),
        "retention_harmless": _ratio(int((mixed.mask & harmless.mask).sum()), len(harmless)),
        "jaccard_helpful": jaccard(mixed, helpful), "jaccard_harmless": jaccard(mixed, harmless),
    }


def thirds(n_layers: int) -> list[tuple[str, int, int]]:
    """[(name, first layer, end layer exclusive)] for early / middle / late; see the module docstring.

    Layer ℓ is early iff 3ℓ < L and middle iff L ≤ 3ℓ < 2L (the paper's ``layer < L/3``,
    ``layer < 2·L/3`` without floating point): the boundaries are ceil(L/3) and ceil(2L/3).
    """
    if n_layers < 1:
        raise ValueError("a model has at least one layer")
    return [("early", 0, -(-n_layers // 3)), ("middle", -(-n_layers // 3), -(-2 * n_layers // 3)),
            ("late", -(-2 * n_layers // 3), n_layers)]


def layer_third(layer: int, n_layers: int) -> str:
    """The third of one layer, written as the paper's ``assign_layer_region`` (notebook cell 43)."""
    third = n_layers / 3
    if layer < third:
        return "early"
    if layer < 2 * third:
        return "middle"
    return "late"


def location(s: NeuronSet) -> dict[str, dict[str, Any]]:
    """Count and share of the set's neurons in each third of the layers.

    ``layers`` is the inclusive [first, last] layer range of the third ([] when it is empty);
    ``share`` is count / |set| (None for an empty set).
    """
    counts = s.per_layer()
    n = len(s)
    out = {}
    for name, lo, hi in thirds(s.layers):
        c = sum(counts[lo:hi])
        out[name] = {"layers": [lo, hi - 1] if hi > lo else [], "count": c, "share": _ratio(c, n)}
    return out


# ----------------------------------------------------------------------------- random control


def random_like(s: NeuronSet, seed: int, *, match: Literal["per-layer", "total"] = "per-layer",
                disjoint: bool = False) -> NeuronSet:
    """A seeded random set of the same size as ``s``.

    match="per-layer": the same count in every layer (controls for where the neurons sit);
    match="total": the same total, drawn uniformly over all layers × neurons.
    disjoint: draw only among neurons not in ``s``.
    """
    rng = np.random.default_rng(int(seed))
    allowed = ~s.mask if disjoint else np.ones_like(s.mask)
    mask = np.zeros_like(s.mask)
    if match == "per-layer":
        for i, c in enumerate(s.per_layer()):
            pool = np.flatnonzero(allowed[i])
            if c > pool.size:
                raise RmtensionError(f"layer {i}: cannot draw {c} random neurons from {pool.size} candidates")
            mask[i, rng.choice(pool, size=c, replace=False)] = True
    elif match == "total":
        pool = np.flatnonzero(allowed.reshape(-1))
        if len(s) > pool.size:
            raise RmtensionError(f"cannot draw {len(s)} random neurons from {pool.size} candidates")
        mask.flat[rng.choice(pool, size=len(s), replace=False)] = True
    else:
        raise RmtensionError(f"unknown match {match!r}; use per-layer or total")
    meta = {"method": "random", "selection": f"random-like:{match}", "seed": int(seed), "disjoint": disjoint,
            "site": s.meta.get("site"), "like": _summary(s)}
    for key in ("rm", "data", "k"):
        if key in s.meta:
            meta[key] = s.meta[key]
    return NeuronSet(mask, meta)
