"""Stage 1 models: backbones by name, reward-model construction, the RM input text.

* ``backbones``: ``resolve_backbone`` (registered name / local folder / hub id → from_pretrained
  path), the ``BACKBONES`` registry, ``describe_backbone``.
* ``tiny``: tiny random GPT-2 / Llama / Gemma-3 / BERT backbones for tests, bit-identical everywhere.
* ``offline``: SmolLM2-135M-Instruct (GGUF) and all-MiniLM-L6-v2 from their PyPI packages.
* ``reward_model``: ``build_reward_model``, ``load_reward_model``, ``save_reward_model``.
* ``formatting``: ``format_for_rm`` and the ``TEMPLATES`` registry (``hh``, ``chat``), EOS rule.
* ``seeding``: portable N(0, σ) draws. (Model folders are built atomically by ``rmtension.files``.)

Names are imported lazily so that ``import rmtension.models`` (e.g. by ``rmtension --help``)
does not pay for torch and transformers.
"""

from __future__ import annotations

from rmtension.lazy import lazy_exports

_EXPORTS = {
    "BACKBONES": "backbones",
    "BackboneInfo": "backbones",
    "BackboneSpec": "backbones",
    "cache_root": "backbones",
    "describe_backbone": "backbones",
    "materialise_backbone": "backbones",
    "resolve_backbone": "backbones",
    "DEFAULT_TEMPLATE": "formatting",
    "TEMPLATES": "formatting",
    "eos_suffix": "formatting",
    "format_for_rm": "formatting",
    "format_pair": "formatting",
    "RECORD_FILE": "reward_model",
    "build_reward_model": "reward_model",
    "ensure_pad_token": "reward_model",
    "init_score_head": "reward_model",
    "load_reward_model": "reward_model",
    "save_reward_model": "reward_model",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
