"""Reward models: a backbone with a one-output sequence-classification head.

``build_reward_model`` makes the untrained RM every objective starts from; the head is drawn
explicitly from a ``torch.Generator`` seeded with the run's seed, so that the head depends on the
seed alone and the same seed gives bit-identical weights on any device.

What the paper's code did with its seed (EshaanT/RM-alignment_tension, train_new.py and
RM_interpretation/training_dataset/dataset.py at 96efa92): ``torch.manual_seed(seed)`` and
``transformers.set_seed(seed)`` run before the model is loaded and its head re-drawn with
``nn.init.normal_(std=0.02)``, so the head did vary by seed; the helpful and harmless training sets
are ``.shuffle(seed)``-ed (the mixed one is not); but ``RewardConfig`` gets no ``seed``, so the
trainer itself ran with TrainingArguments' default seed 42 (transformers 5.0.0, its lock file's
version): ``Trainer.__init__`` calls ``set_seed(42)``, and its sampler's permutation is seeded from
it. Dropout, which also draws from that seed, was off (TRL 0.27.1 ``disable_dropout=True``). Here
the run's seed reaches the head, the trainer's sampler and everything else. ``save_reward_model``/``load_reward_model`` write and read a folder that plain
``transformers`` also loads, plus ``rmtension.json``: the record of how the RM was made, of
which the evaluation side needs at least the text ``template``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from rmtension.data.io import read_json
from rmtension.data.split import DEFAULT_SALT, HeldoutSplit
from rmtension.errors import InputError, RmtensionError
from rmtension.files import publish_replacing, temp_sibling
from rmtension.models.backbones import NO_REMOTE_CODE, check_model_folder, resolve_backbone
from rmtension.models.formatting import DEFAULT_TEMPLATE, TEMPLATES
from rmtension.models.portable import resolve_backbone_path
from rmtension.models.seeding import portable_normal

RECORD_FILE = "rmtension.json"
HEAD_STD = 0.02
REWARD_LABEL = "reward"


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report while loading a backbone whose head is missing by design."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise RmtensionError(f"unknown dtype {dtype!r}; use e.g. float32 or bfloat16")
    return value


def ensure_pad_token(tokenizer: Any) -> None:
    """Pad = EOS when the tokenizer has no pad token (GPT-2, Llama): the paper's convention.

    No new token is added, so the embedding matrix keeps its size; see ``formatting`` for what
    pad == EOS means for which position the head reads.
    """
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is None:
        name = getattr(tokenizer, "name_or_path", "")
        raise RmtensionError(f"tokenizer {name!r} has neither a pad nor an EOS token; cannot pad batches")
    tokenizer.pad_token = tokenizer.eos_token


def _set_reward_config(config: Any, pad_token_id: int | None) -> None:
    config.num_labels = 1
    config.id2label = {0: REWARD_LABEL}
    config.label2id = {REWARD_LABEL: 0}
    # One unbounded score: if anyone passes labels, transformers should use a regression loss.
    config.problem_type = "regression"
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        text_config.pad_token_id = pad_token_id


def head_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters outside the backbone (``base_model_prefix``): the score/classifier head."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    head = [(n, p) for n, p in model.named_parameters() if not n.startswith(prefix)]
    if not head:
        raise RuntimeError(f"{type(model).__name__} has no parameters outside {prefix!r}; cannot find its head")
    return sorted(head)


@torch.no_grad()
def init_score_head(model: torch.nn.Module, seed: int) -> None:
    """Matrices ~ N(0, 0.02), biases 0 (norm weights 1), drawn from a generator seeded with ``seed``.

    Parameters are visited in name order and the values drawn on the CPU (``portable_normal``),
    so the head depends only on ``seed`` and the head's shapes — not on the global RNG, the model
    dtype, the device or the processor.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    for name, param in head_parameters(model):
        if name.endswith("bias"):
            param.zero_()
        elif param.ndim >= 2:
            param.copy_(portable_normal(param.shape, gen, HEAD_STD))
        else:
            param.fill_(1.0)


def build_reward_model(backbone: str, seed: int, dtype: torch.dtype | str = torch.float32) -> tuple[Any, Any]:
    """An untrained RM on ``backbone`` (registered name, local folder or hub id), head from ``seed``."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = resolve_backbone(backbone)  # a local folder has passed check_model_folder here
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **NO_REMOTE_CODE)
        ensure_pad_token(tokenizer)
        config = AutoConfig.from_pretrained(folder, **NO_REMOTE_CODE)
        _set_reward_config(config, tokenizer.pad_token_id)
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, config=config, dtype=_as_dtype(dtype), use_safetensors=True, **NO_REMOTE_CODE)
    except (OSError, ValueError) as exc:
        raise RmtensionError(f"cannot load backbone {backbone!r} from {folder}: {_first_line(exc)}") from None
    init_score_head(model, seed)
    return model, tokenizer


def _read_record(folder: Path) -> dict:
    path = folder / RECORD_FILE
    if not path.is_file():
        return {}
    record = read_json(path)
    if not isinstance(record, dict):
        raise InputError(path, "expected a JSON object")
    return record


def read_record(folder: str | Path) -> dict:
    """The ``rmtension.json`` record of an RM folder ({} when it has none), without loading the model."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise RmtensionError(f"reward-model folder {path} does not exist")
    return _read_record(path)


def heldout_split_of(record: dict, folder: str | Path) -> HeldoutSplit:
    """The train / held-out split the RM in ``folder`` was trained with, from its record.

    Records written since the split was recorded hold ``split``; older ``rmtension train``
    records hold ``config.heldout_fraction``, and their salt is ``DEFAULT_SALT`` (the only salt
    the code has ever used). An RM with neither (a hub model, a folder saved by other code) has no
    known held-out prompts: anything that needs them refuses rather than guess.
    """
    where = Path(folder) / RECORD_FILE
    split = record.get("split")
    if isinstance(split, dict):
        fraction, salt = split.get("heldout_fraction"), split.get("salt")
    else:
        config = record.get("config")
        fraction = config.get("heldout_fraction") if isinstance(config, dict) else None
        salt = DEFAULT_SALT
    if fraction is None:
        raise RmtensionError(
            f"{where} records no train/held-out split (not an RM from `rmtension train`), so its held-out "
            "prompts are unknown; score it on other benchmarks"
        )
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0 \
            or not isinstance(salt, str):
        raise InputError(where, f"split: expected heldout_fraction in [0, 1) and a salt string, got {split or fraction!r}")
    if fraction == 0.0:
        raise RmtensionError(f"{where}: the RM was trained with heldout_fraction 0 (no prompt held out), "
                             "so there is no held-out data to score it on")
    return HeldoutSplit(float(fraction), salt)


def _check_rm_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise RmtensionError(f"reward-model folder {folder} does not exist")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise RmtensionError(f"{folder} is not a reward-model folder (no config.json); train one with `rmtension train`")
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise InputError(config_path, "expected a JSON object")
    archs = config.get("architectures") or []
    labels = len(config.get("id2label") or {}) or config.get("num_labels", 0)
    if not any(str(a).endswith("ForSequenceClassification") for a in archs) or labels != 1:
        raise RmtensionError(
            f"{folder} holds {'/'.join(archs) or 'a model'} with {labels or 'no'} labels, not a reward model "
            "(a sequence-classification model with one output); train one with `rmtension train`"
        )


def load_reward_model(path: str | Path, dtype: torch.dtype | str = torch.float32) -> tuple[Any, Any, dict]:
    """Model, tokenizer and info (the ``rmtension.json`` record; ``template`` defaults to "hh")."""
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(path).expanduser()
    _check_rm_folder(folder)
    info = _read_record(folder)
    info.setdefault("template", DEFAULT_TEMPLATE)
    TEMPLATES.get(info["template"])  # an unknown template name fails here, not mid-evaluation
    info["path"] = str(folder.resolve())
    if "backbone" in info:  # recorded relative to the folder when it was a local folder (models.portable)
        info["backbone"] = resolve_backbone_path(info["backbone"], folder)
    check_model_folder(folder)  # no custom code, no pickles: before transformers reads anything
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **NO_REMOTE_CODE)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), dtype=_as_dtype(dtype), use_safetensors=True, **NO_REMOTE_CODE)
    except (OSError, ValueError, SafetensorError) as exc:  # SafetensorError: a truncated or corrupt weights file
        raise RmtensionError(f"cannot load reward model from {folder}: {_first_line(exc)}") from None
    if tokenizer.pad_token is None and model.config.pad_token_id is not None:
        tokenizer.pad_token_id = model.config.pad_token_id
    ensure_pad_token(tokenizer)
    if model.config.pad_token_id is None:
        _set_reward_config(model.config, tokenizer.pad_token_id)
    return model, tokenizer, info


def save_reward_model(model: Any, tokenizer: Any, out_dir: str | Path, record: dict,
                      data_dir: str | Path | None = None) -> Path:
    """Write model (safetensors), tokenizer, ``rmtension.json`` and a model card to ``out_dir``, atomically.

    The folder is a portable artifact (:mod:`rmtension.models.portable`): its tokenizer's chat
    template renders exactly the text the RM scores (checked here on a probe conversation), the
    record holds no absolute path (data files relative to ``data_dir``, default the record's
    ``config.data_dir`` or $RMTENSION_DATA_DIR, with their SHA-256), and ``README.md`` is generated
    from the record (:mod:`rmtension.models.card`).

    An existing RM folder at ``out_dir`` is replaced as a whole (old and new are never mixed);
    a non-empty folder that is not a model folder is refused rather than deleted.
    """
    from rmtension.data.sources import resolve_data_dir
    from rmtension.models.card import CARD_FILE, model_card
    from rmtension.models.portable import portable_chat_template, portable_record, render_matches

    out = Path(out_dir).expanduser()
    if out.exists():
        if not out.is_dir():
            raise RmtensionError(f"cannot save a reward model to {out}: it is a file")
        entries = {p.name for p in out.iterdir()}
        if entries and not entries & {"config.json", RECORD_FILE}:
            raise RmtensionError(f"refusing to replace {out}: it is a non-empty folder that holds no model")
    full = dict(record)
    full.setdefault("template", DEFAULT_TEMPLATE)
    TEMPLATES.get(full["template"])
    config = full.get("config") if isinstance(full.get("config"), dict) else {}
    full = portable_record(full, out, data_dir or resolve_data_dir(config.get("data_dir")))
    text = json.dumps(full, indent=2, sort_keys=True) + "\n"  # fails before any file is written
    card = model_card(full)
    shipped = portable_chat_template(tokenizer, full["template"])
    original = getattr(tokenizer, "chat_template", None)
    try:
        if shipped is not None:
            tokenizer.chat_template = shipped
            if not render_matches(tokenizer, full["template"]):  # a bug here would mis-score in every other tool
                raise RmtensionError(f"internal error: the chat template written for template {full['template']!r} "
                                     "does not render the text rmtension scores")
        with temp_sibling(out) as tmp:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            (tmp / RECORD_FILE).write_text(text, encoding="utf-8")
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
            publish_replacing(tmp, out)
    finally:
        tokenizer.chat_template = original  # the caller's tokenizer is left as it was
    return out
