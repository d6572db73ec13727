"""Per-neuron sufficient statistics of one pass over a dataset, and their file format.

Why sums and not scores: every score method (signed mean, mean |a|, RMS, share > 0, RMS of the
change from the base model) is a function of five running sums per neuron — token count, Σa,
Σ|a|, Σa², #(a > 0) — so one pass over the data serves every method, and the sums of two passes
(or of data-parallel processes) simply add. The sums are kept in float64: a float32 running sum
over millions of tokens loses the small differences the scores rank by.

Sums are kept per *group* (the scorer's tags: ``chosen`` and ``rejected``), so a score can be
computed per side and averaged (the paper), pooled over all tokens, or use one side only. The
``diff`` block holds the same sums for a_RM − a_base on identical tokens (present when a base
model was run), and ``rmsd`` the per-pair RMSD between a pair's chosen and rejected mean
activation vectors, summed over pairs (ours). The paper's RMSD compares the two *dataset-mean*
vectors instead (``rmsd_of_dataset_means``); it needs only the sums, so every file has it.

File format (``.npz``, written atomically, read without pickle):

====================  =============  =====================================================
entry                 shape          meaning
====================  =============  =====================================================
``meta``              () str         JSON object, see below
``count``             (G,)           tokens per group (weighted by how often a text occurs)
``texts``             (G,)           texts per group (occurrences)
``act.sum``           (G, L, N)      Σ a             — also ``act.abs_sum`` Σ|a|,
``act.sq_sum``        (G, L, N)      Σ a²              ``act.pos_count`` #(a > 0)
``diff.*``            (G, L, N)      the same four for a_RM − a_base (only with a base model)
``rmsd.sum``          (L + 1,)       Σ over pairs of RMSD(chosen mean, rejected mean) per
                                     layer; the last entry is over all layers × neurons
``rmsd.sq_sum``       (L + 1,)       Σ RMSD² (for the spread over pairs)
``rmsd.pairs``        ()             number of pairs in those sums
``scores``            (L, N)         optional: the per-neuron scores of ``meta.scores``
``attr.sum``          (L, N)         optional (``meta.has_attr``): Σ over pairs of each pair's
                                     attribution A_p (``rmtension.neurons.attribution``);
                                     also ``attr.abs_sum`` Σ|A_p|, ``attr.sq_sum`` Σ A_p²
``attr.pairs``        ()             number of pairs in those sums
====================  =============  =====================================================

``meta`` holds at least ``format`` ("rmtension.neuron-stats/1"), ``site``, ``layers``,
``neurons_per_layer``, ``groups`` (order of G), ``has_diff``, and whatever the producer adds
(``rm``, ``data``, ``base``, ``architecture``, ``tokens``, ``pairs``, ``created_by``...); a
score file adds ``scores`` = {method, pool, seed}. A file with attribution sums adds ``has_attr``
and ``attribution`` = {tokens, ig_steps} (how they were computed); files without them read as before.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rmtension.errors import InputError, RmtensionError
from rmtension.files import write_atomic

STATS_FORMAT = "rmtension.neuron-stats/1"
MOMENTS = ("sum", "abs_sum", "sq_sum", "pos_count")


@dataclass
class Moments:
    """Float64 running sums for G groups × L layers × N neurons, plus token counts per group."""

    groups: list[str]
    count: np.ndarray  # (G,)
    sum: np.ndarray  # (G, L, N)
    abs_sum: np.ndarray
    sq_sum: np.ndarray
    pos_count: np.ndarray

    @classmethod
    def zeros(cls, groups: list[str], layers: int, neurons: int) -> "Moments":
        shape = (len(groups), layers, neurons)
        return cls(list(groups), np.zeros(len(groups)), *(np.zeros(shape) for _ in MOMENTS))

    def pooled(self, pool: str) -> tuple[float, dict[str, np.ndarray]]:
        """(token count, {moment: (L, N)}) over all groups (``pool="all"``) or one group."""
        if pool == "all":
            idx = list(range(len(self.groups)))
        elif pool in self.groups:
            idx = [self.groups.index(pool)]
        else:
            raise RmtensionError(f"unknown pool {pool!r}; use 'all' or one of: {', '.join(self.groups)}")
        n = float(self.count[idx].sum())
        return n, {m: getattr(self, m)[idx].sum(axis=0) for m in MOMENTS}


ATTR_SUMS = ("sum", "abs_sum", "sq_sum")


@dataclass
class AttributionSums:
    """Float64 sums over preference pairs of per-neuron attributions A_p (L, N each), and how they were made.

    Kept per pair and not per token or per side: an attribution is a property of the pair's margin
    r(chosen) − r(rejected) (see ``rmtension.neurons.attribution``). ``sq_sum`` gives the spread over
    pairs, so a mean attribution can carry a standard error.
    """

    pairs: int
    sum: np.ndarray  # (L, N) Σ_p A_p
    abs_sum: np.ndarray  # Σ_p |A_p|
    sq_sum: np.ndarray  # Σ_p A_p²
    tokens: str = "response"
    ig_steps: int = 0

    @classmethod
    def zeros(cls, layers: int, neurons: int, tokens: str = "response", ig_steps: int = 0) -> "AttributionSums":
        return cls(0, *(np.zeros((layers, neurons)) for _ in ATTR_SUMS), tokens=tokens, ig_steps=ig_steps)

    def how(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "ig_steps": int(self.ig_steps)}

    def merge(self, other: "AttributionSums") -> "AttributionSums":
        if self.how() != other.how():
            raise RmtensionError(f"cannot merge attributions computed differently ({self.how()} vs {other.how()})")
        return AttributionSums(self.pairs + other.pairs, *(getattr(self, m) + getattr(other, m) for m in ATTR_SUMS),
                               tokens=self.tokens, ig_steps=self.ig_steps)


@dataclass
class NeuronStats:
    """Everything one statistics pass produced. See the module docstring for the meaning."""

    site: str
    layers: int
    neurons: int
    act: Moments
    texts: np.ndarray  # (G,) occurrences per group
    diff: Moments | None = None
    rmsd_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rmsd_sq_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rmsd_pairs: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    attr: AttributionSums | None = None  # per-pair attribution sums, when an attribution pass was run

    @property
    def groups(self) -> list[str]:
        return self.act.groups

    def __repr__(self) -> str:
        """Shape and provenance only (the moment arrays are layers × neurons each)."""
        shown = {k: self.meta[k] for k in ("pairs", "rm", "data", "objective") if self.meta.get(k) is not None}
        extra = "".join(f", {k}={v!r}" for k, v in shown.items())
        return (f"NeuronStats(site={self.site!r}, {self.layers} layers × {self.neurons} neurons, groups={self.groups}, "
                f"change={'yes' if self.diff is not None else 'no'}{extra})")

    @property
    def tokens(self) -> dict[str, int]:
        return {g: int(round(c)) for g, c in zip(self.groups, self.act.count)}

    def rmsd(self) -> dict[str, Any]:
        """Mean (and std) over pairs of the chosen-vs-rejected RMSD, per layer and over all layers."""
        if self.rmsd_pairs == 0:
            return {"pairs": 0, "per_layer": [], "all_layers": None, "per_layer_std": [], "all_layers_std": None}
        mean = self.rmsd_sum / self.rmsd_pairs
        var = np.maximum(self.rmsd_sq_sum / self.rmsd_pairs - mean**2, 0.0)
        std = np.sqrt(var)
        return {"pairs": int(self.rmsd_pairs), "per_layer": mean[:-1].tolist(), "all_layers": float(mean[-1]),
                "per_layer_std": std[:-1].tolist(), "all_layers_std": float(std[-1])}

    def group_means(self) -> dict[str, np.ndarray]:
        """{group: (L, N) mean activation over that group's tokens} — the paper's per-side 'absolute' score."""
        out = {}
        for gi, g in enumerate(self.groups):
            n = float(self.act.count[gi])
            out[g] = self.act.sum[gi] / n if n > 0 else np.full((self.layers, self.neurons), np.nan)
        return out

    def rmsd_of_means(self) -> dict[str, Any]:
        """The paper's chosen-vs-rejected RMSD of this one pass; see :func:`rmsd_of_dataset_means`."""
        return rmsd_of_dataset_means([self])

    def merge(self, other: "NeuronStats") -> "NeuronStats":
        """The statistics of both passes together (e.g. of data-parallel processes)."""
        if (self.site, self.layers, self.neurons, self.groups) != (other.site, other.layers, other.neurons, other.groups):
            raise RmtensionError("cannot merge neuron statistics of different sites, shapes or groups")
        if (self.diff is None) != (other.diff is None):
            raise RmtensionError("cannot merge statistics with and without the base-model change")

        def add(a: Moments, b: Moments) -> Moments:
            return Moments(a.groups, a.count + b.count, *(getattr(a, m) + getattr(b, m) for m in MOMENTS))

        return NeuronStats(
            self.site, self.layers, self.neurons, add(self.act, other.act), self.texts + other.texts,
            add(self.diff, other.diff) if self.diff is not None and other.diff is not None else None,
            _add_vec(self.rmsd_sum, other.rmsd_sum), _add_vec(self.rmsd_sq_sum, other.rmsd_sq_sum),
            self.rmsd_pairs + other.rmsd_pairs, dict(self.meta),
            _merge_attr(self.attr, other.attr),
        )

    def summary(self) -> dict[str, Any]:
        return {"site": self.site, "layers": self.layers, "neurons_per_layer": self.neurons, "groups": self.groups,
                "texts": {g: int(round(t)) for g, t in zip(self.groups, self.texts)}, "tokens": self.tokens,
                "has_diff": self.diff is not None, "rmsd": self.rmsd(),
                "rmsd_dataset_means": _value_of(self)}


def _value_of(stats: "NeuronStats") -> float | None:
    sides = ("chosen", "rejected")
    if not set(sides) <= set(stats.groups) or min(stats.tokens[g] for g in sides) == 0:
        return None
    return rmsd_of_dataset_means([stats])["value"]


def rmsd_of_dataset_means(stats_by_seed: list["NeuronStats"]) -> dict[str, Any]:
    """The paper's RMSD between the chosen and the rejected dataset-mean activation vectors.

    notebooks/plotsNresults.ipynb cell 39 (EshaanT/RM-alignment_tension, commit 96efa92): the
    per-side mean activation (L, N) of each seed is averaged over seeds (no clipping there), then
    ``diff = chosen_mean - rejected_mean``, ``rms = sqrt(mean(diff**2, axis=0))`` — the root mean
    square over the *layers*, one value per neuron index — and the reported "global trend" is the
    mean of that over the neurons. ``per_layer`` (RMS over the neurons of each layer) is added for
    reading; the per-pair RMSD of ``NeuronStats.rmsd`` is a different quantity (the mean over pairs
    of each pair's own chosen-vs-rejected RMSD).
    """
    if not stats_by_seed:
        raise RmtensionError("no statistics to compute the RMSD of dataset means from")
    means = [st.group_means() for st in stats_by_seed]
    for m in means:
        if not {"chosen", "rejected"} <= set(m):
            raise RmtensionError("the RMSD of dataset means needs chosen and rejected statistics")
    chosen = np.mean([m["chosen"] for m in means], axis=0)
    rejected = np.mean([m["rejected"] for m in means], axis=0)
    diff = chosen - rejected
    per_neuron = np.sqrt(np.mean(diff**2, axis=0))
    return {"value": float(np.mean(per_neuron)), "per_neuron": per_neuron,
            "per_layer": np.sqrt(np.mean(diff**2, axis=1)), "seeds": len(stats_by_seed)}


def _merge_attr(a: AttributionSums | None, b: AttributionSums | None) -> AttributionSums | None:
    if a is None and b is None:
        return None
    if a is None or b is None:
        raise RmtensionError("cannot merge statistics with and without attribution sums")
    return a.merge(b)


def _add_vec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return b.copy()
    if b.size == 0:
        return a.copy()
    return a + b


# ----------------------------------------------------------------------------- files


def _arrays(stats: NeuronStats, scores: np.ndarray | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"count": stats.act.count, "texts": stats.texts}
    for block, mom in (("act", stats.act), ("diff", stats.diff)):
        if mom is not None:
            for m in MOMENTS:
                out[f"{block}.{m}"] = getattr(mom, m)
    out["rmsd.sum"] = stats.rmsd_sum
    out["rmsd.sq_sum"] = stats.rmsd_sq_sum
    out["rmsd.pairs"] = np.array(stats.rmsd_pairs)
    if stats.attr is not None:
        for m in ATTR_SUMS:
            out[f"attr.{m}"] = np.asarray(getattr(stats.attr, m), dtype=np.float64)
        out["attr.pairs"] = np.array(stats.attr.pairs)
    if scores is not None:
        if scores.shape != (stats.layers, stats.neurons):
            raise ValueError(f"scores have shape {scores.shape}, expected {(stats.layers, stats.neurons)}")
        out["scores"] = np.asarray(scores, dtype=np.float64)
    return out


def save_stats(path: str | Path, stats: NeuronStats, scores: np.ndarray | None = None,
               scores_meta: dict[str, Any] | None = None) -> Path:
    """Write statistics (and optionally one method's scores) to ``path`` atomically."""
    meta = dict(stats.meta)
    meta.update({"format": STATS_FORMAT, "site": stats.site, "layers": stats.layers,
                 "neurons_per_layer": stats.neurons, "groups": stats.groups, "has_diff": stats.diff is not None})
    meta.pop("has_attr", None)
    meta.pop("attribution", None)
    if stats.attr is not None:
        meta.update({"has_attr": True, "attribution": stats.attr.how()})
    if scores is not None:
        meta["scores"] = dict(scores_meta or {})
    arrays = _arrays(stats, scores)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True)  # type: ignore[arg-type]


def load_stats(path: str | Path) -> tuple[NeuronStats, np.ndarray | None]:
    """Read a statistics/score file: (statistics, scores or None)."""
    path = Path(path)
    if not path.is_file():
        raise RmtensionError(f"neuron statistics file {path} does not exist; write one with `rmtension neurons score`")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:  # zlib: a damaged member
        raise InputError(path, f"not a neuron statistics file (.npz): {exc}") from None
    if "meta" not in data:
        raise InputError(path, "not a neuron statistics file: no 'meta' entry")
    try:
        meta = json.loads(str(data["meta"]))
    except (ValueError, RecursionError) as exc:
        raise InputError(path, f"'meta' is not valid JSON ({exc or 'nested too deeply'})") from None
    if not isinstance(meta, dict):
        raise InputError(path, f"'meta' must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != STATS_FORMAT:
        raise InputError(path, f"unsupported format {meta.get('format')!r}; expected {STATS_FORMAT}")
    try:
        groups = list(meta["groups"])

        def block(name: str) -> Moments:
            return Moments(groups, data["count"], *(data[f"{name}.{m}"] for m in MOMENTS))

        stats = NeuronStats(
            meta["site"], int(meta["layers"]), int(meta["neurons_per_layer"]), block("act"), data["texts"],
            block("diff") if meta.get("has_diff") else None,
            data["rmsd.sum"], data["rmsd.sq_sum"], int(data["rmsd.pairs"]), meta,
        )
        if meta.get("has_attr"):
            how = meta.get("attribution") or {}
            stats.attr = AttributionSums(int(data["attr.pairs"]), *(data[f"attr.{m}"] for m in ATTR_SUMS),
                                         tokens=str(how.get("tokens", "response")),
                                         ig_steps=int(how.get("ig_steps", 0) or 0))
    except KeyError as exc:
        raise InputError(path, f"neuron statistics file lacks {exc}") from None
    except (TypeError, ValueError) as exc:  # e.g. "layers": "many" in a hand-edited meta
        raise InputError(path, f"malformed 'meta' ({exc})") from None
    if stats.act.sum.shape != (len(groups), stats.layers, stats.neurons):
        raise InputError(path, f"array shapes {stats.act.sum.shape} do not match the metadata")
    return stats, data.get("scores")


def meta_of(path: str | Path) -> dict[str, Any]:
    """Only the metadata of a statistics file (cheap: reads one entry)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))

