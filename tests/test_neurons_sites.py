"""Neuron sites per architecture: detection, names, and that hooked tensors are what they claim.

Each family is checked against a manual recomputation from the MLP input captured separately:
act = act_fn(gate_proj(x)) and down_in = act_fn(gate_proj(x)) * up_proj(x) for gated MLPs,
GELU(c_fc(x)) for GPT-2, act(intermediate.dense(x)) for BERT — so a hook on the wrong module
(or on the right module's wrong side) fails.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T

from rmtension.errors import RmtensionError
from rmtension.neurons.sites import ADAPTERS, hook_sites, model_sites, register_model_type

V = 97  # vocabulary of the config-built models


def _gated(cls, **extra):
    kw = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=V, num_labels=1, pad_token_id=0, max_position_embeddings=64)
    kw.update(extra)
    return cls(**kw)


CONFIGS = {
    "llama": lambda: _gated(T.LlamaConfig),
    "mistral": lambda: _gated(T.MistralConfig),
    "qwen2": lambda: _gated(T.Qwen2Config),
    "qwen3": lambda: _gated(T.Qwen3Config, head_dim=8),
    "gemma": lambda: _gated(T.GemmaConfig, head_dim=8),
    "gemma2": lambda: _gated(T.Gemma2Config, head_dim=8, query_pre_attn_scalar=8),
    "gemma3_text": lambda: _gated(T.Gemma3TextConfig, head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                                  layer_types=["sliding_attention", "full_attention"]),
    "gpt2": lambda: T.GPT2Config(n_layer=3, n_embd=32, n_head=4, n_inner=128, vocab_size=V, n_positions=64,
                                 num_labels=1, pad_token_id=0),
    "bert": lambda: T.BertConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                 vocab_size=V, num_labels=1, max_position_embeddings=64),
    "roberta": lambda: T.RobertaConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                       vocab_size=V, num_labels=1, max_position_embeddings=70, pad_token_id=1),
}
EXPECTED = {  # model type → (family, layers, neurons)
    "llama": ("llama", 2, 96), "mistral": ("llama", 2, 96), "qwen2": ("llama", 2, 96), "qwen3": ("llama", 2, 96),
    "gemma": ("llama", 2, 96), "gemma2": ("llama", 2, 96), "gemma3_text": ("llama", 2, 96),
    "gpt2": ("gpt2", 3, 128), "bert": ("bert", 2, 64), "roberta": ("bert", 2, 64),
}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return T.AutoModelForSequenceClassification.from_config(CONFIGS[name]()).eval()


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _capture(model, site):
    got: dict[int, torch.Tensor] = {}

    def fn(layer, a):
        got[layer] = a.detach().clone()

    return got, hook_sites(model, site, fn)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_detection_names_and_shapes(name):
    model = _model(name)
    ms = model_sites(model)
    family, layers, neurons = EXPECTED[name]
    assert (ms.family, ms.n_layers, ms.n_neurons) == (family, layers, neurons)
    assert ms.site_names("act") == [f"layers.{i}.mlp.act" for i in range(layers)]
    assert ms.site_name(1, "down_in") == "layers.1.mlp.down_in"
    assert ms.down_in_is_act() == (family != "llama")
    modules = dict(model.named_modules())
    for site in ("act", "down_in"):
        for i in range(layers):
            assert ms.module_path(i, site) in modules  # the readable path names a real module
    with torch.no_grad():
        for site in ("act", "down_in"):
            got, ctx = _capture(model, site)
            with ctx:
                model(**_inputs())
            assert sorted(got) == list(range(layers))
            assert all(t.shape == (2, 9, neurons) for t in got.values())


@pytest.mark.parametrize("name", ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"])
def test_gated_sites_equal_manual_recomputation(name):
    model = _model(name)
    ms = model_sites(model)
    mlp_in: dict[int, torch.Tensor] = {}
    handles = [layer.mlp.register_forward_pre_hook(lambda m, args, i=i: mlp_in.__setitem__(i, args[0].clone()))
               for i, layer in enumerate(ms.layers)]
    act, ctx_act = _capture(model, "act")
    down, ctx_down = _capture(model, "down_in")
    with torch.no_grad(), ctx_act, ctx_down:
        model(**_inputs())
    for h in handles:
        h.remove()
    with torch.no_grad():
        for i, layer in enumerate(ms.layers):
            x = mlp_in[i]
            a = layer.mlp.act_fn(layer.mlp.gate_proj(x))
            torch.testing.assert_close(act[i], a, rtol=0, atol=0)
            torch.testing.assert_close(down[i], a * layer.mlp.up_proj(x), rtol=1e-6, atol=1e-7)
            assert not torch.allclose(act[i], down[i])  # the two sites really differ for gated MLPs


def test_gpt2_site_is_gelu_after_c_fc_and_down_in_is_the_same_tensor():
    model = _model("gpt2")
    ms = model_sites(model)
    mlp_in: dict[int, torch.Tensor] = {}
    handles = [blk.mlp.register_forward_pre_hook(lambda m, args, i=i: mlp_in.__setitem__(i, args[0].clone()))
               for i, blk in enumerate(ms.layers)]
    act, ctx_act = _capture(model, "act")
    down, ctx_down = _capture(model, "down_in")
    with torch.no_grad(), ctx_act, ctx_down:
        model(**_inputs())
    for h in handles:
        h.remove()
    with torch.no_grad():
        for i, blk in enumerate(ms.layers):
            expected = blk.mlp.act(blk.mlp.c_fc(mlp_in[i]))
            torch.testing.assert_close(act[i], expected, rtol=0, atol=0)
            torch.testing.assert_close(down[i], act[i], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_bert_site_is_intermediate_activation(name):
    model = _model(name)
    ms = model_sites(model)
    dense_in: dict[int, torch.Tensor] = {}
    handles = [blk.intermediate.dense.register_forward_pre_hook(
        lambda m, args, i=i: dense_in.__setitem__(i, args[0].clone())) for i, blk in enumerate(ms.layers)]
    act, ctx_act = _capture(model, "act")
    down, ctx_down = _capture(model, "down_in")
    with torch.no_grad(), ctx_act, ctx_down:
        model(**_inputs())
    for h in handles:
        h.remove()
    with torch.no_grad():
        for i, blk in enumerate(ms.layers):
            expected = torch.nn.functional.gelu(blk.intermediate.dense(dense_in[i]))
            torch.testing.assert_close(act[i], expected, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(down[i], act[i], rtol=0, atol=0)


@pytest.mark.parametrize("name,site", [("llama", "act"), ("llama", "down_in"), ("gpt2", "act"), ("bert", "down_in")])
def test_returned_tensor_replaces_activations(name, site):
    """Zeroing neuron j of layer 0 through the hook == zeroing the down projection's column j."""
    model = _model(name)
    ms = model_sites(model)
    inputs = _inputs(1)
    j = 5

    def zero(layer, a):
        if layer == 0:
            a = a.clone()
            a[..., j] = 0
            return a
        return None

    with torch.no_grad():
        plain = model(**inputs).logits
        with hook_sites(model, site, zero):
            ablated = model(**inputs).logits
        down, _ = ms.hook_module(0, "down_in")
        w = down.weight
        col = (slice(None), j) if isinstance(down, torch.nn.Linear) else (j, slice(None))  # Conv1D is (in, out)
        saved = w[col].clone()
        w[col] = 0
        expected = model(**inputs).logits
        w[col] = saved
        after = model(**inputs).logits
    torch.testing.assert_close(ablated, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain, ablated)
    torch.testing.assert_close(after, plain)  # hooks are gone after the block


def test_layer_subset_and_hooks_removed_on_error():
    model = _model("llama")
    seen: list[int] = []
    with torch.no_grad(), hook_sites(model, "act", lambda i, a: seen.append(i), layers=[1]):
        model(**_inputs())
    assert seen == [1]
    with pytest.raises(ZeroDivisionError), torch.no_grad(), hook_sites(model, "act", lambda i, a: 1 / 0):
        model(**_inputs())
    seen.clear()
    with torch.no_grad():
        model(**_inputs())
    assert seen == []
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(RmtensionError, match="out of range"), hook_sites(model, "act", lambda i, a: None, layers=[7]):
        pass


def test_registered_tiny_backbones(tmp_path):
    from rmtension.models.reward_model import build_reward_model

    want = {"tiny-gpt2": ("gpt2", 2), "tiny-llama": ("llama", 2), "tiny-gemma": ("llama", 3), "tiny-bert": ("bert", 2)}
    for name, (family, layers) in want.items():
        model, _ = build_reward_model(name, seed=0)
        ms = model_sites(model)
        assert (ms.family, ms.n_layers) == (family, layers)
        assert ms.describe()["layers"] == layers


def test_unknown_architecture_lists_supported_and_how_to_register():
    config = T.Phi3Config(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                          num_key_value_heads=4, vocab_size=V, num_labels=1, pad_token_id=0)
    model = T.AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(RmtensionError) as err:
        model_sites(model)
    msg = str(err.value)
    assert "phi3" in msg and "gpt2" in msg and "llama" in msg and "bert" in msg
    assert "register_model_type" in msg and "ADAPTERS" in msg
    with pytest.raises(RmtensionError, match="unknown neuron site"):
        model_sites(_model("llama")).site_name(0, "mlp_out")


def test_register_model_type_adds_an_architecture():
    """A Llama-layout model under a new model type becomes supported with one call."""
    config = _gated(T.LlamaConfig)
    model = T.AutoModelForSequenceClassification.from_config(config)
    model.config.model_type = "my_llama_clone"
    with pytest.raises(RmtensionError):
        model_sites(model)
    try:
        register_model_type("my_llama_clone", "llama")
        assert model_sites(model).family == "llama"
    finally:
        ADAPTERS._items.pop("my_llama_clone", None)


def test_wrong_structure_is_a_clear_error():
    model = _model("llama")
    del model.model.layers[1].mlp.act_fn
    with pytest.raises(RmtensionError, match="layer 1 has no module 'mlp.act_fn'"):
        model_sites(model)
    model = _model("llama")
    model.model.layers[1].mlp.act_fn = model.model.layers[0].mlp.act_fn
    with pytest.raises(RmtensionError, match="share one activation module"):
        model_sites(model)
