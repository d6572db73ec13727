"""The model card (``README.md``) written into every RM folder.

Why: an RM folder is meant to be shared (a hub upload publishes the folder as it is); a reader must
see without running anything what the model is (backbone, objective, data and its hash), which text
it scores (template, max length) and how good it is on its held-out pairs, and must be able to
score it with plain transformers. The card is generated from the record alone, so it never
disagrees with ``rmtension.json``; it names no local path.
"""

from __future__ import annotations

import re
from typing import Any

from rmtension.evaluation.aggregate import wilson_interval

CARD_FILE = "README.md"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

OBJECTIVE_TEXT = {
    "helpful": "helpfulness (Anthropic HH-RLHF helpful pairs)",
    "harmless": "harmlessness (Anthropic HH-RLHF harmless pairs)",
    "mixed": "helpfulness and harmlessness together (HH-RLHF helpful and harmless pairs mixed)",
}
TEMPLATE_TEXT = {
    "hh": "the HH-RLHF transcript, `\"\\n\\nHuman: {prompt}\\n\\nAssistant: {response}\"`, then the EOS token "
          "(decoders); the folder's chat template renders exactly this text",
    "chat": "the backbone's own chat template with the response as the final assistant message, then the "
            "EOS token unless the template already wrote it; the folder's chat template renders this text (a BOS "
            "the tokenizer adds itself is not written twice)",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short_number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _fmt(value)


def heldout_line(metrics: dict[str, Any]) -> str:
    """Held-out accuracy with its 95% Wilson interval (pairs are independent Bernoulli trials)."""
    n, acc = metrics.get("heldout_n"), metrics.get("heldout_accuracy")
    if not n or acc is None:
        return "not measured (no held-out pairs)"
    iv = wilson_interval(round(float(acc) * int(n)), int(n))
    margin = metrics.get("heldout_mean_margin")
    extra = f"; mean margin {margin:+.3f}" if isinstance(margin, (int, float)) else ""
    return f"{acc:.3f} (95% Wilson interval [{iv.low:.3f}, {iv.high:.3f}], n = {n} pairs{extra})"


def _data_lines(record: dict[str, Any]) -> list[str]:
    files = record.get("data_files") or []
    if not files:
        return [f"- source: `{record.get('train_data', 'unknown')}`"]
    lines = [f"- source: `{record.get('train_data', files[0].get('source', 'unknown'))}`"]
    for f in files:
        sha = f.get("sha256", "unknown")
        lines.append(f"- `{f.get('file', '?')}` (sha256 `{sha}`)")
    return lines


def _where_text(record: dict[str, Any]) -> str:
    places = {f.get("relative_to") for f in record.get("data_files") or []}
    where = {"data_dir": "the data directory", "rm_dir": "this folder"}
    named = " or ".join(where[p] for p in sorted(places) if p in where)
    return f"Paths are relative to {named}; the SHA-256 identifies each file." if named else \
        "The SHA-256 identifies each file."


def model_card(record: dict[str, Any], name: str = "PATH/TO/THIS/FOLDER") -> str:
    """The card's Markdown for an RM with this (portable) record; ``name`` is how the snippet loads it."""
    backbone = record.get("backbone")
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    template = str(record.get("template") or "hh")
    max_length = config.get("max_length")
    objective = record.get("objective")
    split = record.get("split") or {}
    pairs = record.get("pairs") or {}
    trainer = record.get("trainer") or {}
    versions = record.get("versions") or {}
    front = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             "tags:", "- reward-model", "- rmtension"]
    if isinstance(backbone, str) and HUB_ID.match(backbone):
        front.append(f"base_model: {backbone}")
    front.append("---")
    overlong = config.get("overlong")
    truncation = ""
    if max_length:
        done = "left out of training" if overlong == "drop" else "cut from the left in training (the last turns kept)"
        truncation = (f"Pairs with a side longer than {max_length} tokens were {done}; `rmtension eval` scores at "
                      f"most {max_length} tokens by default, keeping the last ones.")
    lines = [
        *front, "",
        f"# Reward model: {objective or 'unknown objective'} on {backbone or 'unknown backbone'}",
        "",
        "A Bradley-Terry reward model (loss −log σ(r_chosen − r_rejected), TRL `RewardTrainer`) trained with "
        "[rmtension](https://arxiv.org/abs/2606.13209). It outputs one unbounded score per text; only "
        "differences between scores of responses to the same prompt are meaningful.",
        "",
        "| | |", "|---|---|",
        f"| backbone | `{_fmt(backbone)}` |",
        f"| objective | {OBJECTIVE_TEXT.get(str(objective), _fmt(objective))} |",
        f"| seed | {_fmt(record.get('seed'))} |",
        f"| text template | `{template}`: {TEMPLATE_TEXT.get(template, 'see rmtension.models.formatting')} |",
        f"| max length | {_fmt(max_length)} tokens |",
        f"| training pairs | {_fmt(pairs.get('used'))} (of {_fmt(pairs.get('split_train'))} in the training split) |",
        f"| epochs / steps | {_short_number(config.get('effective_epochs'))} / {_fmt(trainer.get('global_steps'))} |",
        f"| learning rate, batch | {_short_number(config.get('lr'))}, {_fmt(config.get('batch_size'))} pairs per step |",
        f"| held-out accuracy | {heldout_line(record.get('metrics') or {})} |",
        f"| held-out split | prompts hashed with salt `{_fmt(split.get('salt'))}`, fraction "
        f"{_fmt(split.get('heldout_fraction'))} (no held-out prompt was trained on) |",
        f"| libraries | transformers {_fmt(versions.get('transformers'))}, trl {_fmt(versions.get('trl'))}, "
        f"torch {_fmt(versions.get('torch'))} |",
        "",
        "## Training data", "",
        *_data_lines(record), "",
        _where_text(record), "",
        "## Score a response with plain transformers", "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        f"tok = AutoTokenizer.from_pretrained(\"{name}\")",
        f"rm = AutoModelForSequenceClassification.from_pretrained(\"{name}\")",
        "text = tok.apply_chat_template([{\"role\": \"user\", \"content\": \"How do I boil an egg?\"}, "
        "{\"role\": \"assistant\", \"content\": \"Put it in boiling water for 8 minutes.\"}], tokenize=False)",
        "score = rm(**tok(text, return_tensors=\"pt\")).logits[0, 0].item()",
        "```", "",
        "`apply_chat_template(..., tokenize=False)` renders exactly the text this model was trained on; tokenize "
        "it with the tokenizer's special tokens (the default), as above. " + truncation, "",
        "Everything about the run (configuration, counts, losses, versions) is in `rmtension.json`.", "",
    ]
    return "\n".join(lines)


__all__ = ["CARD_FILE", "heldout_line", "model_card"]
