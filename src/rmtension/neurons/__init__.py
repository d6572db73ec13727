"""Stage 4: which MLP neurons carry an RM's objective.

* ``sites``: per-architecture neuron sites (``layers.{i}.mlp.act`` / ``layers.{i}.mlp.down_in``),
  ``ADAPTERS`` registry, ``model_sites``, and ``hook_sites`` (shared by recording and ablation).
* ``recorder``: ``NeuronStatsRecorder`` (a scorer observer) and ``collect_stats``: one streaming
  pass → float64 sums per layer × neuron, chosen/rejected separately, change vs. the base model,
  per-pair RMSD (ours).
* ``stats``: ``NeuronStats`` and its ``.npz`` file format (``save_stats``/``load_stats``);
  ``rmsd_of_dataset_means`` (the paper's chosen-vs-rejected RMSD).
* ``scores``: ``SCORE_METHODS`` (magnitude, mean-abs, rms, prob, change, random), ``compute_scores``,
  ``seed_mean_scores`` (the paper's aggregate over seeds).
* ``sets``: ``NeuronSet``, ``select_top``, set algebra, overlap/retention figures, thirds (the
  paper's rule), ``random_like``.
* ``setfile``: the neuron-set JSON format (``save_set``/``load_set``).
* ``pipeline``: ``score_rm`` — RM folder + preference source → statistics and scores.

Names are imported lazily so that ``rmtension --help`` does not pay for torch.
"""

from __future__ import annotations

from rmtension.lazy import lazy_exports

_EXPORTS = {
    "ADAPTERS": "sites", "MlpLayout": "sites", "ModelSites": "sites", "SITES": "sites", "hook_sites": "sites",
    "model_sites": "sites", "find_adapter": "sites", "register_model_type": "sites",
    "NeuronStatsRecorder": "recorder", "collect_stats": "recorder",
    "NeuronStats": "stats", "Moments": "stats", "save_stats": "stats", "load_stats": "stats",
    "rmsd_of_dataset_means": "stats",
    "SCORE_METHODS": "scores", "compute_scores": "scores", "random_scores": "scores", "seed_mean_scores": "scores",
    "NeuronSet": "sets", "select_top": "sets", "n_selected": "sets", "combine": "sets", "shared": "sets",
    "a_only": "sets", "b_only": "sets", "union": "sets", "overlap": "sets", "retention": "sets",
    "thirds": "sets", "layer_third": "sets", "location": "sets", "random_like": "sets",
    "save_set": "setfile", "load_set": "setfile",
    "ScoreRequest": "pipeline", "score_rm": "pipeline",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
