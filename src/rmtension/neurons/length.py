"""Neuron–length correlation: does a selected set's activity simply track how long the text is?

Why: small RMs learn response length first (issue 11), and a neuron whose mean activation grows or
shrinks with the number of tokens would be "selected" by a magnitude score on long-response data
for reasons that have nothing to do with helpfulness or harmlessness. For each selected set we
therefore report the Spearman correlation, over the scored texts, between

* the set's *mean activation per text*: the mean over the set's neurons of each neuron's mean
  activation over the text's real tokens (prompt and response, the tokens the scores are made
  from), and
* the text's *response length* in the RM's tokens (``rmtension.evaluation.lengths``: the tokens of
  the response inside the rendered text, as the scorer keeps them).

The interval is a 95% percentile bootstrap that resamples *pairs* (a pair's chosen and rejected
texts share a prompt, so they are not independent), computed with the Spearman and bootstrap
helpers of :mod:`rmtension.analysis.length` (one "cell" per text, one "item" per pair).

``set_length_spearman`` and ``set_mean_activation`` are pure; ``SetActivationRecorder`` and
``text_set_activations`` run the model (one scorer pass, the neuron recorder's hooks).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rmtension.analysis.length import DEFAULT_RESAMPLES, Cells, margin_length_spearman
from rmtension.errors import RmtensionError


def set_mean_activation(text_means: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(texts,) mean over the set's neurons of per-text mean activations ``text_means`` (texts, L, N).

    NaN for every text when the set is empty (there is nothing to average).
    """
    m = np.asarray(mask, dtype=bool)
    a = np.asarray(text_means, dtype=float)
    if a.ndim != 3 or a.shape[1:] != m.shape:
        raise RmtensionError(f"per-text means of shape {a.shape} do not match a set of shape {m.shape}")
    if not m.any():
        return np.full(a.shape[0], np.nan)
    return a[:, m].mean(axis=1)


def set_length_spearman(activation: Sequence[float] | np.ndarray, lengths: Sequence[float] | np.ndarray,
                        pair_of: Sequence[int] | np.ndarray | None = None, *,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Spearman ρ of a set's per-text mean activation with the texts' response lengths.

    ``pair_of``: the pair each text belongs to (texts of one pair are resampled together); default:
    each text on its own. Returns ``{"value", "ci95": {"low", "high"}, "n_texts"}``; ``value`` is NaN
    when either side is constant (or the set is empty).
    """
    x = np.asarray(activation, dtype=float)
    y = np.asarray(lengths, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise RmtensionError(f"activations {x.shape} and lengths {y.shape} must be flat and of equal length")
    n = x.size
    if n == 0 or not np.isfinite(x).all():
        return {"value": float("nan"), "ci95": {"low": float("nan"), "high": float("nan")}, "n_texts": int(n)}
    groups = np.arange(n) if pair_of is None else np.asarray(pair_of, dtype=int)
    if groups.shape != (n,):
        raise RmtensionError("pair_of needs one pair index per text")
    # Cells want each item's cells contiguous: order the texts by pair (stable), then number the pairs 0..P-1
    order = np.argsort(groups, kind="stable")
    _, item, counts = np.unique(groups[order], return_inverse=True, return_counts=True)
    cells = Cells(margin=x[order], length_diff=y[order], longer=np.abs(y[order]), item=item.astype(int),
                  starts=np.cumsum(counts) - counts, counts=counts.astype(int))
    rho = margin_length_spearman(cells, n_resamples=n_resamples, seed=seed)
    lo, hi = rho["ci95"]
    return {"value": float(rho["value"]), "ci95": {"low": float(lo), "high": float(hi)}, "n_texts": int(n)}


# ----------------------------------------------------------------------------- running the model


def _recorder_class():
    """``SetActivationRecorder``, built on first use so that importing this module needs no torch."""
    import torch

    from rmtension.neurons.recorder import NeuronStatsRecorder

    class SetActivationRecorder(NeuronStatsRecorder):
        """The neuron recorder, also reducing each text's per-neuron mean activations onto given sets.

        Why a subclass: the recorder already computes every text's (layers × neurons) mean in its
        hooks (for the pair RMSD), on exactly the tokens the RM scores; this keeps, per text, only
        one number per set (mean over the set's neurons), so nothing of size texts × neurons is held.
        """

        def __init__(self, model, masks: dict[str, np.ndarray], **kwargs: Any):
            super().__init__(model, **kwargs)
            self.masks = {name: torch.from_numpy(np.asarray(m, dtype=np.float64)) for name, m in masks.items()}
            self.sizes = {name: float(np.asarray(m, dtype=bool).sum()) for name, m in masks.items()}
            self.values: dict[int, dict[str, float]] = {}

        def before_batch(self, batch) -> None:
            super().before_batch(batch)
            st = self._batch
            if st is not None and st.row_means is None:  # no pairs declared: the means are still wanted
                st.row_means = torch.zeros((len(batch.text_index), self.sites.n_layers, self.sites.n_neurons),
                                           dtype=torch.float64, device=self._device())

        def after_batch(self, batch, scores) -> None:
            st = self._batch
            if st is not None and st.row_means is not None:
                means = st.row_means.cpu()
                for name, m in self.masks.items():
                    size = self.sizes[name]
                    vals = (means * m).sum(dim=(1, 2)) / size if size else torch.full((means.shape[0],), float("nan"))
                    for r, t in enumerate(batch.text_index):
                        self.values.setdefault(int(t), {})[name] = float(vals[r])
            super().after_batch(batch, scores)

    return SetActivationRecorder


def text_set_activations(scorer, texts: Sequence[str], masks: dict[str, np.ndarray], *, site: str = "act",
                         chunk: int = 1024) -> dict[str, np.ndarray]:
    """{set name: (texts,) mean activation of the set per text}, one scorer pass over ``texts``.

    Texts are scored in chunks (the recorder's per-call bookkeeping stays bounded); a text that
    occurs twice is run once by the scorer and gets the same value twice.
    """
    if not texts:
        raise RmtensionError("no texts to measure neuron activations on")
    rec = _recorder_class()(scorer.model, masks, site=site, autocast=scorer.config.dtype)
    out = {name: np.full(len(texts), np.nan) for name in masks}
    with rec:
        for start in range(0, len(texts), max(1, int(chunk))):
            part = list(texts[start:start + chunk])
            first: dict[str, int] = {}
            owner = [first.setdefault(t, i) for i, t in enumerate(part)]
            rec.values = {}
            rec.declare(part, ["chosen"] * len(part))
            scorer.score(part, observers=[rec], tags=["chosen"] * len(part),
                         desc=f"set activations {start + len(part)}/{len(texts)}")
            rec.finish_call()
            for i, o in enumerate(owner):
                if o not in rec.values:
                    raise RuntimeError(f"text {start + i} was not seen by the set-activation recorder")
                for name in masks:
                    out[name][start + i] = rec.values[o][name]
    return out
