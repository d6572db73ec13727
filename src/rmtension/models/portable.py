"""What makes an RM folder portable: a chat template that renders our exact input text, a record
without local absolute paths, and the template / max-length defaults a scorer should use.

Why: tools of the ecosystem (RewardBench's ``scripts/run_rm.py``, TRL, plain transformers code) score
a reward model by ``tokenizer.apply_chat_template(messages, tokenize=False)`` followed by
``tokenizer(text)`` and ``AutoModelForSequenceClassification``. An RM trained on the HH transcript
form (template ``hh``, see :mod:`rmtension.models.formatting`) but shipped with its backbone's ChatML
template would be scored on a text it never saw. So the folder's chat template is replaced by one
that renders ``format_for_rm`` exactly, EOS rule included; ``save_reward_model`` checks the
equality on a probe conversation before writing anything.

The record (``rmtension.json``) is meant to be published with the weights, so every path in it is
written relative: data files relative to the data directory (and identified by their SHA-256), any
other local path relative to the RM folder. ``load_reward_model`` turns a relative backbone folder
back into a usable path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmtension.models.formatting import DEFAULT_TEMPLATE, eos_suffix, format_for_rm

log = logging.getLogger(__name__)

PROBE_TURNS = ({"role": "system", "content": "Be kind."},
               {"role": "user", "content": "Hi there, what's 2+2?"},
               {"role": "assistant", "content": "It is 4.\n\nAnything else?"},
               {"role": "user", "content": "No, thanks."},
               {"role": "assistant", "content": "You're welcome."})


def _jinja_string(text: str) -> str:
    """``text`` as a single-quoted Jinja string literal (Jinja decodes backslash escapes)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def hh_chat_template(eos: str) -> str:
    """A Jinja chat template that renders the ``hh`` text of ``format_for_rm`` exactly.

    Turns become ``"\\n\\nHuman: ..."``, ``"\\n\\nAssistant: ..."``, ``"\\n\\nSystem: ..."``; when the last
    message is the assistant's (the response being scored), ``eos`` (``formatting.eos_suffix`` of
    the tokenizer: its EOS text for decoders, "" for encoders) is appended unless the text already
    ends with it, as ``format_for_rm`` does. ``add_generation_prompt`` ends with ``"\\n\\nAssistant:"``.
    """
    eos_part = ""
    if eos:
        eos_part = ("{%- set eos = " + _jinja_string(eos) + " -%}"
                    "{%- if not add_generation_prompt and messages and messages[-1]['role'] == 'assistant' "
                    "and not ns.text.rstrip().endswith(eos) -%}{%- set ns.text = ns.text + eos -%}{%- endif -%}")
    return (
        "{#- rmtension 'hh' template: the HH-RLHF transcript this reward model was trained on -#}"
        "{%- set ns = namespace(text='') -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}{%- set label = 'Human' -%}"
        "{%- elif message['role'] == 'assistant' -%}{%- set label = 'Assistant' -%}"
        "{%- elif message['role'] == 'system' -%}{%- set label = 'System' -%}"
        "{%- else -%}{{- raise_exception('the hh template has no role ' + message['role']) -}}"
        "{%- endif -%}"
        "{%- set ns.text = ns.text + '\\n\\n' + label + ': ' + message['content'] -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{%- set ns.text = ns.text + '\\n\\nAssistant:' -%}{%- endif -%}"
        + eos_part +
        "{{- ns.text -}}"
    )


def render_matches(tokenizer: Any, template: str, chat_template: str | None = None) -> bool:
    """The tokenizer's chat template (or ``chat_template`` in its place) renders exactly
    ``format_for_rm(..., template)`` on the probe conversations."""
    if not (chat_template or getattr(tokenizer, "chat_template", None)):
        return False
    extra = {"chat_template": chat_template} if chat_template else {}
    from rmtension.data.types import Turn

    for turns in (PROBE_TURNS, PROBE_TURNS[1:]):  # without the system turn for templates that refuse one
        try:
            rendered = tokenizer.apply_chat_template(list(turns), tokenize=False, add_generation_prompt=False, **extra)
            prompt = tuple(Turn(t["role"], t["content"]) for t in turns[:-1])
            ours = format_for_rm(prompt, turns[-1]["content"], tokenizer, template)
        except Exception:  # jinja errors of any kind: try the next probe
            continue
        return rendered == ours
    return False


def portable_chat_template(tokenizer: Any, template: str) -> str | None:
    """The chat template to ship in the RM folder so that it renders our input text, or None to keep
    the tokenizer's own (template ``chat`` whose own rendering already equals ours, or cannot be made to).

    ``hh``: :func:`hh_chat_template` with the tokenizer's EOS rule. ``chat``: the backbone's template is
    the training format; it is kept when it renders our text already (ChatML templates that end with
    EOS), else wrapped (:func:`wrapped_chat_template`: the BOS it writes and the tokenizer adds again is
    dropped, EOS appended) when that renders our text, else kept with a warning.
    """
    if template == DEFAULT_TEMPLATE:
        return hh_chat_template(eos_suffix(tokenizer))
    if render_matches(tokenizer, template):
        return None
    original = getattr(tokenizer, "chat_template", None)
    if isinstance(original, str) and original:
        from rmtension.models.formatting import _special_behaviour

        bos = getattr(tokenizer, "bos_token", None) if _special_behaviour(tokenizer)[0] else None
        wrapped = wrapped_chat_template(original, bos or "", eos_suffix(tokenizer))
        if render_matches(tokenizer, template, chat_template=wrapped):
            return wrapped
    log.warning("the tokenizer's chat template does not render exactly the %r text this RM was trained on "
                "(BOS/EOS handling); tools that apply it score a slightly different text", template)
    return None


def wrapped_chat_template(original: str, bos: str, eos: str) -> str:
    """``original`` with ``format_for_rm``'s rules for template ``chat`` applied to its output: a leading
    ``bos`` dropped (the tokenizer adds BOS itself) and ``eos`` appended after a final assistant message
    unless the text already ends with it. Why: tools render, then tokenize with special tokens."""
    parts = ["{% set rmtension_rendered %}", original, "{% endset %}",
             "{%- set rmtension = namespace(text=rmtension_rendered) -%}"]
    if bos:
        parts.append("{%- if rmtension.text.startswith(" + _jinja_string(bos) + ") -%}"
                     "{%- set rmtension.text = rmtension.text[" + str(len(bos)) + ":] -%}{%- endif -%}")
    if eos:
        parts.append("{%- if not add_generation_prompt and messages and messages[-1]['role'] == 'assistant' and not "
                     "rmtension.text.rstrip().endswith(" + _jinja_string(eos) + ") -%}"
                     "{%- set rmtension.text = rmtension.text + " + _jinja_string(eos) + " -%}{%- endif -%}")
    parts.append("{{- rmtension.text -}}")
    return "".join(parts)



# ----------------------------------------------------------------------------- record paths


def _relative(path: str, base: Path) -> str:
    return Path(os.path.relpath(Path(path).expanduser(), base)).as_posix()


def _is_abs(value: str) -> bool:
    return value.startswith("~") or os.path.isabs(value)


PATH_KEYS = ("backbone", "data_dir", "train_data", "resumed_from")
"""Record keys (top level, ``config`` and ``trainer``) whose value may be a local path relative to the
working directory of the run; such a value is rewritten relative to the RM folder."""


def _local_path(key: str, value: Any) -> Path | None:
    """The local file/folder ``value`` names (absolute, or relative to the working directory), if any."""
    if not isinstance(value, str) or not value or (":" in value and not _is_abs(value)):
        return None  # "hh-rlhf:helpful" and other source names
    if key == "backbone" and not (_is_abs(value) or value.startswith(".")):
        return None  # a registered name or a hub id (resolve_backbone tries those first)
    p = Path(value).expanduser()
    return p.resolve() if (_is_abs(value) or p.exists()) else None


def portable_record(record: dict[str, Any], rm_dir: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """``record`` with no local path that only makes sense on this machine or from this working directory:
    data files relative to ``data_dir`` (marked ``"relative_to": "data_dir"``; their ``sha256`` identifies
    them), other local paths (``PATH_KEYS``, and any remaining absolute path) relative to the RM folder
    ``rm_dir``. Registered names, hub ids and source names are left as they are."""
    base = Path(rm_dir).expanduser().resolve()
    data_base = Path(data_dir).expanduser().resolve() if data_dir else None

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and _is_abs(value):
            return _relative(value, base)
        return value

    def local_paths(section: dict[str, Any]) -> dict[str, Any]:
        out = dict(section)
        for key in PATH_KEYS:
            p = _local_path(key, out.get(key))
            if p is not None:
                out[key] = _relative(str(p), base)
        return out

    out = local_paths(record)
    for name in ("config", "trainer"):
        if isinstance(out.get(name), dict):
            out[name] = local_paths(out[name])
    files = []
    for entry in record.get("data_files") or []:
        entry = dict(entry)
        f = entry.get("file")
        p = Path(f).expanduser().resolve() if isinstance(f, str) and not f.startswith("hub:") else None
        if p is not None and data_base is not None and p.is_relative_to(data_base):
            entry["file"] = p.relative_to(data_base).as_posix()
            entry["relative_to"] = "data_dir"
        elif p is not None and (p.exists() or _is_abs(f)):
            entry["file"] = _relative(str(p), base)
            entry["relative_to"] = "rm_dir"
        files.append(entry)
    if files:
        out["data_files"] = files
    return walk(out)


def absolute_paths(value: Any, where: str = "") -> list[str]:
    """Every string in ``value`` (nested dicts/lists) that is an absolute path, as ``where: value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += absolute_paths(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += absolute_paths(v, f"{where}[{i}]")
    elif isinstance(value, str) and _is_abs(value):
        found.append(f"{where}: {value}")
    return found


def resolve_backbone_path(backbone: Any, rm_dir: Path) -> Any:
    """A backbone recorded as a folder relative to the RM folder → that folder's absolute path
    (registered names and hub ids unchanged)."""
    if not isinstance(backbone, str) or not backbone or _is_abs(backbone):
        return backbone
    candidate = rm_dir / backbone
    if ("/" in backbone or backbone.startswith(".")) and (candidate / "config.json").is_file():
        return str(candidate.resolve())
    return backbone


# ----------------------------------------------------------------------------- scoring defaults


@dataclass
class ScoringDefaults:
    """The template and max length to score an RM with, and why (``notes``, one line each)."""

    template: str
    max_length: int | None
    notes: list[str] = field(default_factory=list)
    foreign: bool = False
    """The folder has no rmtension.json: the template is a guess the caller should hear about."""


def training_max_length(record: dict[str, Any]) -> int | None:
    """The longest input the RM was trained on (``config.max_length`` of its record), or None."""
    config = record.get("config")
    value = config.get("max_length") if isinstance(config, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def scoring_defaults(rm: str | Path, record: dict[str, Any], tokenizer: Any, template: str | None = None,
                     max_length: int | None = None) -> ScoringDefaults:
    """Which template and max length to score the RM in ``rm`` with (explicit values win).

    An RM from ``rmtension train`` is scored with the template and max length it was trained with
    (its record). A folder without a record (a hub RM, one saved by other code) gets template
    ``hh``, the study's convention, and a note that says so and how to use the model's own chat
    template (``--template chat``, what RewardBench does); its max length stays the model's limit.
    """
    notes: list[str] = []
    has_record = (Path(rm).expanduser() / "rmtension.json").is_file()
    if template is None:
        if has_record:
            template = str(record.get("template") or DEFAULT_TEMPLATE)
        else:
            template = DEFAULT_TEMPLATE
            own = "its tokenizer has a chat template: pass --template chat to score with it (what RewardBench does)" \
                if getattr(tokenizer, "chat_template", None) else "its tokenizer has no chat template"
            notes.append(f"{rm} has no rmtension.json (not trained by rmtension): scoring with template "
                         f"'{DEFAULT_TEMPLATE}' (the HH-RLHF transcript, rmtension's default); {own}")
    if max_length is None and has_record:
        max_length = training_max_length(record)
        if max_length is not None:
            notes.append(f"max length {max_length} tokens (the RM's training max length; --max-length overrides)")
    return ScoringDefaults(template, max_length, notes, foreign=not has_record)


__all__ = ["ScoringDefaults", "absolute_paths", "hh_chat_template", "portable_chat_template", "portable_record",
           "render_matches", "resolve_backbone_path", "scoring_defaults", "training_max_length"]
