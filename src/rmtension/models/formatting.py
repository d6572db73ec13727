"""The one way a (prompt, response) pair becomes the reward model's input text.

Training, evaluation and neuron scoring must all see exactly the same text for the same pair,
otherwise a trained RM is evaluated on a distribution it never saw. So every stage calls
``format_for_rm`` with the template name stored in the RM's ``rmtension.json`` record.

Templates (``TEMPLATES``, looked up by name):

* ``hh`` (default): the HH-RLHF transcript form the training data is written in,
  ``"\\n\\nHuman: {user}\\n\\nAssistant: {assistant}...\\n\\nAssistant: {response}"``, system turns as
  ``"\\n\\nSystem: {text}"``. For an HH record this reproduces the original transcript.
* ``chat``: the tokenizer's own chat template with the response as the final assistant message.

The returned text is meant to be tokenised with ``add_special_tokens=True`` (the default), so
BOS/CLS/SEP come from the tokenizer, and on top of that the **EOS rule** applies (see
``eos_suffix``): decoders get their EOS token text appended, encoders do not.

Why append EOS, and what transformers actually does with it (checked in transformers 5.24):
``GPT2ForSequenceClassification`` and ``GenericForSequenceClassification`` (Llama, Gemma,
Qwen, Mistral, ...) score a row at the *rightmost position whose token id differs from
``config.pad_token_id``* (``(arange(L) * (ids != pad)).argmax(-1)``); the attention mask is not
consulted. Appending EOS gives the head a fixed "end of response" position to read that has
attended to the whole text, instead of whatever the last response token happens to be.

* When the backbone has a pad token distinct from EOS (Gemma), that is what happens: the head
  reads the EOS position.
* When pad == EOS (GPT-2, SmolLM2/Llama tokenizers without a pad token, where rmtension sets
  pad = EOS as the paper does), transformers cannot tell the appended EOS from padding: the head
  reads the token *before* it, the last response token, and because attention is causal the EOS
  changes nothing before it. The appended EOS is then a no-op for the score (it costs one token
  of the length budget). We still append it so that one rule holds for every decoder and the
  text does not depend on pad settings; ``tests/test_models.py`` checks both cases.
* Pads may sit on either side: the rightmost non-pad rule works for left and right padding, and
  an EOS inside the text (e.g. from a chat template) is harmless because only the rightmost
  non-pad position counts.

Encoders (BERT and friends) pool the first token, and their tokenizer already wraps the text in
``[CLS] ... [SEP]``; adding EOS text there would only add a literal string.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from rmtension.data.types import Prompt, user_prompt
from rmtension.errors import RmtensionError
from rmtension.registry import Registry

DEFAULT_TEMPLATE = "hh"
HH_LABELS = {"user": "Human", "assistant": "Assistant", "system": "System"}

TemplateFn = Callable[[Prompt, str, Any], str]
TEMPLATES: Registry[TemplateFn] = Registry("text template")


def _as_prompt(prompt: Prompt | str) -> Prompt:
    return user_prompt(prompt) if isinstance(prompt, str) else tuple(prompt)


@TEMPLATES.register("hh")
def hh_template(prompt: Prompt, response: str, tokenizer: Any = None) -> str:
    """The HH-RLHF transcript; the tokenizer is not used."""
    parts = []
    for turn in prompt:
        label = HH_LABELS.get(turn.role)
        if label is None:
            raise RmtensionError(f"template 'hh' cannot write a turn with role {turn.role!r}")
        parts.append(f"\n\n{label}: {turn.content}")
    parts.append(f"\n\nAssistant: {response}")
    return "".join(parts)


@TEMPLATES.register("chat")
def chat_template(prompt: Prompt, response: str, tokenizer: Any) -> str:
    """The tokenizer's chat template with ``response`` as the final assistant message.

    A leading BOS that the template writes is dropped when the tokenizer adds BOS itself, so that
    tokenising the text (with special tokens) does not give two BOS tokens.
    """
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise RmtensionError(f"template 'chat' needs a tokenizer with a chat template; {name!r} has none (use template 'hh')")
    messages = [{"role": t.role, "content": t.content} for t in prompt]
    messages.append({"role": "assistant", "content": response})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    except Exception as exc:  # jinja templates raise their own errors, e.g. "system role not supported"
        raise RmtensionError(f"the chat template of {name!r} failed on this prompt: {exc} (use template 'hh')") from None
    if not isinstance(text, str):
        raise RmtensionError(f"the chat template of {name!r} did not render to text")
    bos = getattr(tokenizer, "bos_token", None)
    if bos and _special_behaviour(tokenizer)[0] and text.startswith(bos):
        text = text[len(bos):]
    return text


_PROBE_CACHE: "weakref.WeakKeyDictionary[Any, tuple[bool, bool]]" = weakref.WeakKeyDictionary()


def _special_behaviour(tokenizer: Any) -> tuple[bool, bool]:
    """(adds BOS in front, adds special tokens at the end) when tokenising with special tokens.

    Found by tokenising a probe text both ways rather than from class names, so it holds for
    any tokenizer (BERT's [SEP], RoBERTa's </s>, Llama tokenizers configured with add_eos_token).
    """
    try:
        return _PROBE_CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    probe = "a b"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), 0)
    bos_id = getattr(tokenizer, "bos_token_id", None)
    adds_bos = bos_id is not None and bos_id in full[:start]
    adds_suffix = len(full) > start + len(plain)
    result = (adds_bos, adds_suffix)
    try:
        _PROBE_CACHE[tokenizer] = result
    except TypeError:
        pass
    return result


def eos_suffix(tokenizer: Any) -> str:
    """The text appended after the template: the EOS token for decoders, "" otherwise.

    Empty when there is no tokenizer, when it has no EOS token (BERT), or when the tokenizer
    itself appends special tokens at the end (encoders' [SEP]/</s>, add_eos_token tokenizers).
    """
    if tokenizer is None:
        return ""
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        return ""
    if _special_behaviour(tokenizer)[1]:
        return ""
    return str(eos)


def format_for_rm(prompt: Prompt | str, response: str, tokenizer: Any, template: str = DEFAULT_TEMPLATE) -> str:
    """The RM input text for ``prompt`` (turns, or a plain user message) and ``response``.

    Applies the named template, then the EOS rule (``eos_suffix``); an EOS the template already
    wrote at the end (chat templates often end with ``<|im_end|>\\n``) is not doubled.
    """
    text = TEMPLATES.get(template)(_as_prompt(prompt), response, tokenizer)
    eos = eos_suffix(tokenizer)
    if eos and not text.rstrip().endswith(eos):
        text += eos
    return text


def format_pair(prompt: Prompt | str, chosen: str, rejected: str, tokenizer: Any,
                template: str = DEFAULT_TEMPLATE) -> tuple[str, str]:
    """Both texts of a preference pair, formatted identically."""
    return (format_for_rm(prompt, chosen, tokenizer, template),
            format_for_rm(prompt, rejected, tokenizer, template))


__all__ = [
    "DEFAULT_TEMPLATE", "TEMPLATES", "chat_template", "eos_suffix", "format_for_rm", "format_pair",
    "hh_template",
]
