"""Stage 5: ablating objective-oriented neurons in a trained RM, one set or many at once.

* ``ablate``: ``ablate(model, neuron_set, mode=...)`` context manager (zero / mean / scale), the
  validated ``Ablation`` (``prepare``), ``ablation_from_file`` for ``rmtension eval --ablate``,
  ``load_means``, and ``random_like`` (size-matched random control, same count per layer by default).
* ``sweep``: ``sweep()`` / ``score_sweep()`` — many sets on the same texts, sharing tokenisation,
  batching, the baseline and every layer below each set's lowest ablated layer.
* ``resume``: ``LayerResume`` — how a forward pass restarts at layer s, for any layer loop.
* ``named_sets``: the named sets a sweep ablates — files, random controls, top-k% curves.
* ``report``: deltas vs. the baseline, ``sweep.json`` / ``sweep.csv`` and the per-set folders.

The imports are eager (this package needs torch anyway; the CLI imports it only when a command
runs): the functions ``ablate`` and ``sweep`` share their modules' names, and binding them here,
after the submodules load, is what makes ``from rmtension.ablation import ablate, sweep`` always
give the functions.
"""

from __future__ import annotations

from rmtension.ablation.ablate import (
    MODES, Ablation, ablate, ablation_from_file, apply_ablation, load_means, prepare, random_like,
)
from rmtension.ablation.named_sets import curve_sets, parse_k_list, random_controls, sets_from_files
from rmtension.ablation.report import deltas, write_sweep
from rmtension.ablation.resume import LayerResume
from rmtension.ablation.sweep import SetResult, SweepResult, SweepStats, score_sweep, sweep

__all__ = [
    "MODES", "Ablation", "LayerResume", "SetResult", "SweepResult", "SweepStats", "ablate", "ablation_from_file",
    "apply_ablation", "curve_sets", "deltas", "load_means", "parse_k_list", "prepare", "random_controls",
    "random_like", "score_sweep", "sets_from_files", "sweep", "write_sweep",
]
