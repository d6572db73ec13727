"""Tiny random backbones (GPT-2, Llama, Gemma-3, BERT shapes) built from configs, for tests.

Why they exist: tests and the offline quickstart must exercise every architecture family the
study supports (absolute-position GPT-2 with Conv1D MLPs, gated-MLP Llama and Gemma, an encoder)
in milliseconds and without any download.

Why they are bit-identical everywhere: the neuron stage compares a trained RM with the
*untrained* backbone ("change" scores), so every machine must rebuild exactly the same base.
Library initialisers change between versions and draw from the global RNG in an order we do
not control, so after construction every matrix (ndim >= 2) is redrawn from N(0, 0.02) with its
own ``torch.Generator`` seeded from ``(TINY_SEED, parameter name)`` (``seeding.portable_normal``);
vectors keep the library's constant initialisation (LayerNorm ones, RMSNorm ones or zeros,
biases zeros), which involves no randomness. The result does not depend on the global seed or on parameter order.

Why a byte-level tokenizer: it needs no vocabulary file (nothing read from ../shared at run
time), covers every string losslessly (ids 0..255 are the bytes themselves), and is tiny.
Special tokens follow each family's conventions so that the pad/EOS/BOS code paths are really
exercised: GPT-2 has only ``<|endoftext|>`` and no pad; Llama (SmolLM2-style) has ChatML
markers, EOS ``<|im_end|>`` and no pad; Gemma prepends ``<bos>`` and has a pad distinct from
EOS; BERT wraps texts in ``[CLS] ... [SEP]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from rmtension.models.seeding import portable_normal

TINY_SEED = 1234
INIT_STD = 0.02
DECODER_MAX_POSITIONS = 2048  # byte-level tokens: real HH dialogues need more than 1024
ENCODER_MAX_POSITIONS = 1024

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def _byte_to_char() -> list[str]:
    """The printable stand-in for each byte that byte-level pre-tokenisation produces.

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points from 256
    upwards, in byte order. This is the mapping ``pre_tokenizers.ByteLevel`` applies, so the
    vocabulary entry of byte b is ``_byte_to_char()[b]`` and its id is b.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars: list[str] = []
    shift = 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


@dataclass(frozen=True)
class TokenizerSpec:
    """Special tokens (appended after the 256 byte ids, in order) and their roles."""

    specials: tuple[str, ...]
    roles: dict[str, str]  # "bos_token" -> "<bos>", ...
    prepend: tuple[str, ...] = ()  # special tokens the post-processor puts before a text
    append: tuple[str, ...] = ()  # ... and after it
    chat_template: str | None = None

    def token_id(self, token: str) -> int:
        return 256 + self.specials.index(token)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.specials)


def byte_level_tokenizer(spec: TokenizerSpec, model_max_length: int):
    """A ``PreTrainedTokenizerFast`` over bytes plus ``spec``'s special tokens, built in code."""
    from transformers import PreTrainedTokenizerFast

    chars = _byte_to_char()
    assert sorted(chars) == sorted(pre_tokenizers.ByteLevel.alphabet()), "byte alphabet mismatch"
    vocab = {c: b for b, c in enumerate(chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in spec.specials])
    if spec.prepend or spec.append:
        before = " ".join(spec.prepend)
        after = " ".join(spec.append)
        single = " ".join(x for x in (before, "$A", after) if x)
        pair = " ".join(x for x in (before, "$A", after, "$B:1", " ".join(f"{t}:1" for t in spec.append)) if x)
        used = sorted(set(spec.prepend) | set(spec.append))
        tok.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(t, spec.token_id(t)) for t in used]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        padding_side="right",
        chat_template=spec.chat_template,
        **spec.roles,
    )


def _param_seed(name: str) -> int:
    digest = hashlib.sha256(f"{TINY_SEED}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


@torch.no_grad()
def reinit_deterministically(model: torch.nn.Module) -> None:
    """Redraw every matrix from N(0, INIT_STD) with a generator keyed by the parameter's name."""
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            gen = torch.Generator(device="cpu").manual_seed(_param_seed(name))
            param.copy_(portable_normal(param.shape, gen, INIT_STD))


@dataclass(frozen=True)
class TinySpec:
    """How to build one tiny backbone: its tokenizer and a config factory given that tokenizer."""

    name: str
    family: str
    tokenizer: TokenizerSpec
    make_config: Callable[[TokenizerSpec], object]
    auto_class: str = "AutoModelForCausalLM"  # the class whose base weights are saved
    max_positions: int = DECODER_MAX_POSITIONS


def _gpt2_config(t: TokenizerSpec):
    from transformers import GPT2Config

    eot = t.token_id("<|endoftext|>")
    return GPT2Config(
        vocab_size=t.vocab_size, n_positions=DECODER_MAX_POSITIONS, n_embd=64, n_layer=2, n_head=4,
        n_inner=256, bos_token_id=eot, eos_token_id=eot, pad_token_id=None,
        tie_word_embeddings=True,
    )


def _llama_config(t: TokenizerSpec):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=t.vocab_size, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=DECODER_MAX_POSITIONS,
        bos_token_id=t.token_id("<|im_start|>"), eos_token_id=t.token_id("<|im_end|>"), pad_token_id=None,
        tie_word_embeddings=True, rms_norm_eps=1e-5,
    )


def _gemma_config(t: TokenizerSpec):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=t.vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
        max_position_embeddings=DECODER_MAX_POSITIONS, sliding_window=128,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        pad_token_id=t.token_id("<pad>"), eos_token_id=t.token_id("<eos>"), bos_token_id=t.token_id("<bos>"),
        tie_word_embeddings=True,
    )


def _bert_config(t: TokenizerSpec):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=t.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=ENCODER_MAX_POSITIONS,
        pad_token_id=t.token_id("[PAD]"), type_vocab_size=2,
    )


TINY_SPECS: dict[str, TinySpec] = {
    "tiny-gpt2": TinySpec(
        "tiny-gpt2", "gpt2",
        TokenizerSpec(
            ("<|endoftext|>",),
            {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
        ),
        _gpt2_config,
    ),
    "tiny-llama": TinySpec(
        "tiny-llama", "llama",
        TokenizerSpec(
            ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>"},
            chat_template=CHATML_TEMPLATE,
        ),
        _llama_config,
    ),
    "tiny-gemma": TinySpec(
        "tiny-gemma", "gemma3_text",
        TokenizerSpec(
            ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"},
            prepend=("<bos>",),
            chat_template=GEMMA_TEMPLATE,
        ),
        _gemma_config,
    ),
    "tiny-bert": TinySpec(
        "tiny-bert", "bert",
        TokenizerSpec(
            ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
            {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
             "mask_token": "[MASK]"},
            prepend=("[CLS]",), append=("[SEP]",),
        ),
        _bert_config,
        auto_class="AutoModel",  # BertModel, pooler included, so no head-side layer is left random
        max_positions=ENCODER_MAX_POSITIONS,
    ),
}


def build_tiny(name: str, folder: Path) -> None:
    """Write the tiny backbone ``name`` (model + tokenizer) into the empty ``folder``."""
    import transformers

    spec = TINY_SPECS[name]
    config = spec.make_config(spec.tokenizer)
    auto = getattr(transformers, spec.auto_class)
    # fork_rng: constructing the model draws from the global RNG; callers' streams stay untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = auto.from_config(config, dtype=torch.float32)
    reinit_deterministically(model)
    model.save_pretrained(folder)
    byte_level_tokenizer(spec.tokenizer, spec.max_positions).save_pretrained(folder)
