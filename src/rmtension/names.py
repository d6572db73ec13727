"""The fixed name lists that options, configs, files and reports share: one list each, torch-free.

Why here: the registries that hold the objects behind these names (``neurons.scores.SCORE_METHODS``,
``neurons.sites.SITES``, ``ablation.ablate.MODES``) sit in modules that import torch, and the
command line must build its ``--help`` and check a study config without paying for torch. So the
names live in this module, which imports nothing, and every user imports them from here;
``tests/test_cli_rules.py`` checks that each registry registers exactly the names listed here.
"""

from __future__ import annotations

SCORE_METHODS: tuple[str, ...] = ("magnitude", "mean-abs", "rms", "prob", "change", "random", "attribution",
                                  "attribution-abs")
"""Neuron score methods (``rmtension.neurons.scores``); ``magnitude`` is the paper's; the attribution
methods (ours, ``rmtension.neurons.attribution``) need a gradient pass."""

ATTRIBUTION_TOKENS: tuple[str, ...] = ("response", "all")
"""Tokens an attribution is summed over: after the pair's common token prefix, or every real token."""

PAPER_SCORE_METHODS: tuple[str, ...] = ("magnitude", "change", "random")
"""The methods a study scores by default, and the order reports list methods in."""

SCORE_POOLS: tuple[str, ...] = ("group-mean", "all", "chosen", "rejected")
"""Tokens a neuron score is taken over (``rmtension.neurons.scores``); group-mean is the paper's."""

SITES: tuple[str, ...] = ("act", "down_in")
"""Where in an MLP the neurons are read and ablated (``rmtension.neurons.sites``)."""

ABLATION_MODES: tuple[str, ...] = ("zero", "mean", "scale")
"""How ablated neurons are changed (``rmtension.ablation.ablate``); zero is the paper's."""

MEANS_POOLS: tuple[str, ...] = ("all", "chosen", "rejected")
"""Tokens the per-neuron means of mean-mode ablation are taken over."""

ABLATION_SETS: tuple[str, ...] = ("own", "shared", "helpful-only", "harmless-only", "random")
"""Neuron sets a study ablates, in the order reports list them."""

SET_OPS: tuple[str, ...] = ("shared", "a-only", "b-only", "union")
"""Set algebra on two neuron sets (``rmtension.neurons.sets.combine``)."""

RANDOM_MATCH: tuple[str, ...] = ("per-layer", "total")
"""What a size-matched random neuron set keeps equal: every layer's count, or only the total."""

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""Scoring precisions (``rmtension.evaluation.scorer``): float32, or bf16/fp16 autocast."""
