"""Ablating MLP neurons in the forward pass of a trained RM (stage 5): zero, mean or scale.

Why a context manager over site hooks: ablation must act on *every* forward pass the model makes
inside the block — the shared scorer, ``evaluate()``, a user's own loop — without touching the
weights (no retraining, no copy of the model) and must leave the model exactly as it was when the
block ends, also after an exception. ``rmtension.neurons.sites.hook_sites`` gives that: one hook
per layer at the set's site (``act`` or ``down_in``), removed in a ``finally``.

Modes (the ablated neurons' activations a, per neuron j):

* ``zero``  — a_j ← 0. The paper's ablation. At ``down_in`` this removes the neuron's write into
  the residual stream exactly; at ``act`` too (down_in = act ⊙ up for gated MLPs).
* ``mean``  — a_j ← μ_j, the neuron's mean activation over a dataset, read from a statistics file
  written by ``rmtension neurons score`` (pooled over ``all`` tokens by default). Mean-ablation
  removes what the neuron *varies* with while keeping its average contribution, so a drop in
  accuracy is not just the model being knocked off its usual operating point.
* ``scale`` — a_j ← factor · a_j (factor 0 is zero-ablation; factor > 1 amplifies).

Replacement is ``torch.where(mask, new, a)``: untouched neurons keep their value bit for bit,
and no in-place write hits a tensor that autograd or another hook may still hold.

Only layers that hold selected neurons get a hook, so an empty set installs nothing and changes
nothing (bit-identical scores), and the lowest such layer (``Ablation.first_layer``) is where a
sweep can start re-computing (see ``sweep``).

Validation happens when the ablation is *prepared* (``prepare`` / ``ablation_from_file``), before
any text is scored: the set must have the model's layers × neurons per layer, its site must be the
one asked for, and mean values must come from the same site and shape. Each mismatch is a
one-line ``RmtensionError``.

Random controls are one call away: ``rmtension.neurons.sets.random_like(s, seed)`` draws the same
count *per layer* by default (``match="total"`` draws the same total over all layers); it is
re-exported here as ``random_like``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Iterator, Literal

import numpy as np
import torch
from torch import nn

from rmtension.errors import RmtensionError
from rmtension.names import ABLATION_MODES, SITES
from rmtension.neurons.sets import NeuronSet, random_like
from rmtension.neurons.setfile import load_set
from rmtension.neurons.sites import ModelSites, check_site, hook_sites, model_sites

__all__ = ["MODES", "Ablation", "ablate", "ablation_from_file", "apply_ablation", "load_means", "prepare",
           "random_like"]

log = logging.getLogger(__name__)

Mode = Literal["zero", "mean", "scale"]
MODES: tuple[str, ...] = ABLATION_MODES
DEFAULT_SITE = "act"
_SET_META_KEYS = ("rm", "data", "backbone", "objective", "method", "pool", "site", "k", "selection", "seed", "op",
                  "disjoint", "scores_file", "file")


@dataclass(frozen=True, eq=False)
class Ablation:
    """A validated ablation of one neuron set: which neurons, at which site, replaced by what.

    Built by ``prepare`` (never directly: it checks the set against the model). ``means`` is the
    full (layers, neurons) float64 array in mean mode, else None.
    """

    name: str
    neurons: NeuronSet
    site: str
    mode: str
    factor: float | None = None
    means: np.ndarray | None = None
    means_source: dict[str, Any] | None = None
    _tensors: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def count(self) -> int:
        return len(self.neurons)

    def __repr__(self) -> str:
        """What is ablated, never the mask or the mean values."""
        factor = f", factor={self.factor}" if self.factor is not None else ""
        return (f"Ablation(name={self.name!r}, {self.count} neurons in {len(self.layers)} layers, mode={self.mode!r}"
                f"{factor}, site={self.site!r})")

    @property
    def layers(self) -> list[int]:
        """Layers that hold at least one ablated neuron (the only ones that get a hook)."""
        return [i for i, c in enumerate(self.neurons.per_layer()) if c]

    @property
    def first_layer(self) -> int | None:
        """The lowest ablated layer; None for an empty set (nothing changes)."""
        ls = self.layers
        return ls[0] if ls else None

    def key(self) -> tuple:
        """Identity of the computation: two ablations with equal keys give equal scores."""
        extra: bytes = b""
        if self.mode == "mean" and self.means is not None:
            extra = self.means[self.neurons.mask].tobytes()
        return (self.site, self.mode, self.factor, self.neurons.mask.shape, self.neurons.mask.tobytes(), extra)

    def _layer_tensors(self, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(bool mask (neurons,), fill values or None) on ``like``'s device and dtype, cached."""
        cache_key = (layer, like.device, like.dtype)
        hit = self._tensors.get(cache_key)
        if hit is None:
            mask = torch.from_numpy(self.neurons.mask[layer].copy()).to(like.device)
            fill = None
            if self.mode == "zero":
                fill = torch.zeros((), dtype=like.dtype, device=like.device)
            elif self.mode == "mean":
                assert self.means is not None
                fill = torch.from_numpy(self.means[layer].copy()).to(device=like.device, dtype=like.dtype)
            hit = (mask, fill)
            self._tensors[cache_key] = hit
        return hit

    def replace(self, layer: int, acts: torch.Tensor) -> torch.Tensor:
        """The activations of ``layer`` with this ablation applied (a new tensor)."""
        mask, fill = self._layer_tensors(layer, acts)
        if self.mode == "scale":
            return torch.where(mask, acts * float(self.factor or 0.0), acts)
        assert fill is not None
        return torch.where(mask, fill, acts)

    def metadata(self) -> dict[str, Any]:
        """What ``results.json`` records under ``"ablation"``: enough to redo the run."""
        s = self.neurons
        return {
            "name": self.name,
            "file": s.meta.get("file"),
            "mode": self.mode,
            "factor": self.factor,
            "means": self.means_source,
            "site": self.site,
            "count": len(s),
            "total": s.total,
            "layers": s.layers,
            "neurons_per_layer": s.neurons_per_layer,
            "per_layer": s.per_layer(),
            "first_layer": self.first_layer,
            "set": {k: s.meta[k] for k in _SET_META_KEYS if k in s.meta},
        }


# ----------------------------------------------------------------------------- preparing


def _set_name(s: NeuronSet, name: str | None) -> str:
    if name:
        return name
    f = s.meta.get("file")
    return Path(str(f)).stem if f else "neuron-set"


def _resolve_site(s: NeuronSet, site: str | None, name: str) -> str:
    """The site to hook: the set's own, unless the caller names one; they must not disagree."""
    own = s.meta.get("site")
    if site is not None:
        check_site(site)
        if own is not None and own != site:
            raise RmtensionError(f"neuron set {name} was selected at site {own!r}, not {site!r}; "
                                 f"ablate it at {own!r} (or select neurons at {site!r})")
        return site
    if own is None:
        return DEFAULT_SITE
    if own not in SITES:
        raise RmtensionError(f"neuron set {name} has site {own!r} (a combination of sets from different sites); "
                             "ablation needs sets from one site (act or down_in)")
    return str(own)


def check_matches(s: NeuronSet, ms: ModelSites, name: str) -> None:
    """One-line error when the set was made for a model of another shape."""
    if (s.layers, s.neurons_per_layer) != (ms.n_layers, ms.n_neurons):
        raise RmtensionError(
            f"neuron set {name} is for a model with {s.layers} layers × {s.neurons_per_layer} MLP neurons, but this "
            f"{ms.model_type} model has {ms.n_layers} layers × {ms.n_neurons}; was it selected on another backbone?")


def load_means(path: str | Path, site: str | None = None, pool: str = "all") -> tuple[np.ndarray, dict[str, Any]]:
    """Per-neuron mean activations (layers, neurons) from a ``neurons score`` statistics file.

    ``pool`` picks the tokens (``all``, ``chosen`` or ``rejected``). When ``site`` is given the
    file must have been recorded there: a mean measured at ``act`` is not a value ``down_in`` takes.
    """
    from rmtension.neurons.stats import load_stats

    stats, _scores = load_stats(path)
    if site is not None and stats.site != site:
        raise RmtensionError(f"mean values in {path} were recorded at site {stats.site!r}, but the neuron set is at "
                             f"{site!r}; run `rmtension neurons score --site {site}`")
    n, moments = stats.act.pooled(pool)
    if n <= 0:
        raise RmtensionError(f"{path} holds no tokens in pool {pool!r}; cannot take mean activations")
    means = moments["sum"] / n
    source = {"file": str(path), "pool": pool, "site": stats.site, "tokens": int(round(n)),
              "data": stats.meta.get("data"), "rm": stats.meta.get("rm")}
    return means, source


def prepare(model: nn.Module | ModelSites, neuron_set: NeuronSet, mode: str = "zero", *,
            factor: float | None = None, means: np.ndarray | str | Path | None = None, means_pool: str = "all",
            site: str | None = None, name: str | None = None) -> Ablation:
    """Check ``neuron_set`` against the model and build the ``Ablation`` (no hooks yet).

    ``means``: a (layers, neurons) array, or the path of a statistics file (``load_means``);
    required for ``mode="mean"``. ``factor``: required for ``mode="scale"``, refused otherwise
    (a factor that silently does nothing is a mis-specified experiment).
    """
    label = _set_name(neuron_set, name)
    if mode not in MODES:
        raise RmtensionError(f"unknown ablation mode {mode!r}; use one of: {', '.join(MODES)}")
    ms = model if isinstance(model, ModelSites) else model_sites(model)
    check_matches(neuron_set, ms, label)
    where = _resolve_site(neuron_set, site, label)
    if mode == "scale":
        if factor is None:
            raise RmtensionError("scale ablation needs a factor (e.g. --factor 0.5)")
        if not np.isfinite(factor):
            raise RmtensionError(f"scale factor must be finite, got {factor}")
    elif factor is not None:
        raise RmtensionError(f"a factor only applies to --mode scale, not {mode}")
    mean_arr: np.ndarray | None = None
    source: dict[str, Any] | None = None
    if mode == "mean":
        if means is None:
            hint = neuron_set.meta.get("scores_file")
            raise RmtensionError("mean ablation needs per-neuron means: pass a statistics file from `rmtension neurons "
                                 "score` (--means FILE)" + (f", e.g. {hint}" if hint else ""))
        if isinstance(means, (str, Path)):
            mean_arr, source = load_means(means, where, means_pool)
        else:
            mean_arr, source = np.asarray(means, dtype=np.float64), {"file": None, "pool": None, "site": where}
        if mean_arr.shape != neuron_set.mask.shape:
            raise RmtensionError(f"mean values have shape {mean_arr.shape}, the neuron set {label} "
                                 f"{neuron_set.mask.shape}; they come from another model")
        if not np.isfinite(mean_arr[neuron_set.mask]).all():
            raise RmtensionError("mean values of the ablated neurons are not finite; the statistics file is broken")
    elif means is not None:
        raise RmtensionError(f"mean values only apply to --mode mean, not {mode}")
    return Ablation(label, neuron_set, where, mode, None if factor is None else float(factor), mean_arr, source)


# ----------------------------------------------------------------------------- applying


@contextmanager
def apply_ablation(model: nn.Module, ablation: Ablation, sites: ModelSites | None = None) -> Iterator[Ablation]:
    """Apply a prepared ablation to every forward pass inside the block; hooks go on exit."""
    with hook_sites(model, ablation.site, ablation.replace, layers=ablation.layers, sites=sites):
        yield ablation


@contextmanager
def ablate(model: nn.Module, neuron_set: NeuronSet, mode: str = "zero", *, factor: float | None = None,
           means: np.ndarray | str | Path | None = None, means_pool: str = "all",
           site: str | None = None) -> Iterator[Ablation]:
    """Ablate ``neuron_set`` in every forward pass of ``model`` inside the ``with`` block.

    >>> with ablate(model, load_set("helpful.json")):            # doctest: +SKIP
    ...     result = evaluate(model, tokenizer, benches)
    """
    ab = prepare(model, neuron_set, mode, factor=factor, means=means, means_pool=means_pool, site=site)
    with apply_ablation(model, ab) as applied:
        yield applied


def ablation_from_file(model: nn.Module, path: str | Path, mode: str = "zero", *, factor: float | None = None,
                       means: np.ndarray | str | Path | None = None, means_pool: str = "all",
                       site: str | None = None) -> tuple[ContextManager[Ablation], dict[str, Any]]:
    """(context manager, metadata for results.json) for a neuron-set file.

    Everything is read and validated here, so a bad file fails before any scoring starts; the
    returned context manager only installs and removes the hooks.
    """
    s = load_set(path)
    ab = prepare(model, s, mode, factor=factor, means=means, means_pool=means_pool, site=site)
    log.info("ablating %d neurons of %s (%s at %s)", ab.count, path, mode, ab.site)
    return apply_ablation(model, ab), ab.metadata()
