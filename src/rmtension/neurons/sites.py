"""Where the MLP neurons of a transformer are, per architecture family, and how to hook them.

A *neuron* is one unit of an MLP's hidden layer. Two *sites* measure it:

``act`` — ``layers.{i}.mlp.act``
    The output of the activation function. GPT-2: GELU(c_fc(x)); gated MLPs (Llama, SmolLM2,
    Mistral, Qwen, Gemma): act(gate_proj(x)), which is what the paper's code hooks; BERT: the
    intermediate activation GELU(intermediate.dense(x)).
``down_in`` — ``layers.{i}.mlp.down_in``
    The input of the down projection. For gated MLPs this is act(gate_proj(x)) ⊙ up_proj(x),
    the exact amount each neuron writes (through its column of down_proj) into the residual
    stream; zeroing it removes the neuron's contribution exactly, zeroing ``act`` does too but
    measuring ``act`` ignores the up-projection's scaling. For GPT-2 and BERT there is no gate,
    so ``down_in`` *is* ``act`` (the same tensor; both names are accepted so that a study can
    use one site name across families).

Why adapters are data, not code: every supported family differs only in where the decoder
layers live and which module's output (or input) is the site, so an adapter is a small frozen
record of attribute paths (``MlpLayout``), registered by family name in ``ADAPTERS``. Adding an
architecture with a known layout is one ``register_model_type`` call; a new layout is one
``ADAPTERS.register`` call.

Hooks: ``hook_sites(model, site, fn)`` installs one PyTorch hook per layer — a forward hook on the
activation module's output (``act``) or a forward pre-hook on the down projection's input
(``down_in``) — and calls ``fn(layer_index, activations)`` with the (batch, seq, neurons)
tensor. Returning a tensor replaces the activations downstream (ablation); returning None leaves
them as they are (recording). The hooks are removed when the ``with`` block ends, also on error.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Literal

import torch
from torch import nn

from rmtension.errors import RmtensionError
from rmtension.names import SITES as SITES
from rmtension.registry import Registry

SiteKind = Literal["act", "down_in"]

# fn(layer_index, activations (batch, seq, neurons)) -> replacement activations or None.
SiteFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]


@dataclass(frozen=True)
class MlpLayout:
    """Where one architecture family keeps its layers and MLP sites (attribute paths).

    layer_paths: candidates for the list of decoder/encoder layers, relative to
        ``model.base_model`` (the first that exists is used; multimodal wrappers nest deeper).
    act_path: module inside a layer whose *output* is the activation function's output.
    down_path: module inside a layer whose *input* is the down projection's input.
    gated: whether ``down_in`` = act(gate) ⊙ up differs from ``act``.
    gate_path, up_path: the gate and up projections of a gated MLP (documentation and tests).
    mlp_path: the MLP module (its input is the normed residual stream; used by tests).
    """

    family: str
    model_types: tuple[str, ...]
    layer_paths: tuple[str, ...]
    act_path: str
    down_path: str
    gated: bool
    mlp_path: str
    gate_path: str | None = None
    up_path: str | None = None
    description: str = ""


ADAPTERS: Registry[MlpLayout] = Registry("architecture adapter")

ADAPTERS.register("gpt2", MlpLayout(
    family="gpt2", model_types=("gpt2",), layer_paths=("h",),
    act_path="mlp.act", down_path="mlp.c_proj", gated=False, mlp_path="mlp",
    description="GPT-2: GELU(c_fc(x)) → c_proj; down_in equals act",
))
ADAPTERS.register("llama", MlpLayout(
    family="llama",
    model_types=("llama", "mistral", "ministral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma3",
                 "olmo", "olmo2", "granite", "cohere", "stablelm", "smollm3", "helium"),
    layer_paths=("layers", "language_model.layers"),
    act_path="mlp.act_fn", down_path="mlp.down_proj", gated=True, mlp_path="mlp",
    gate_path="mlp.gate_proj", up_path="mlp.up_proj",
    description="gated MLP down_proj(act_fn(gate_proj(x)) * up_proj(x)): Llama/SmolLM2, Mistral, Qwen2/3, "
                "Gemma 1-3, OLMo, Granite, Cohere, StableLM, SmolLM3, Helium",
))
ADAPTERS.register("bert", MlpLayout(
    family="bert", model_types=("bert", "roberta", "xlm-roberta", "camembert", "electra"),
    layer_paths=("encoder.layer",),
    # BertIntermediate returns act(dense(x)); its intermediate_act_fn may be a plain function,
    # so the module whose output we hook is the whole BertIntermediate.
    act_path="intermediate", down_path="output.dense", gated=False, mlp_path="intermediate",
    description="BERT-style encoders: intermediate = act(dense(x)) → output.dense; down_in equals act",
))


def register_model_type(model_type: str, family: str) -> MlpLayout:
    """Declare that ``config.model_type == model_type`` uses the layout of an existing family.

    Example: ``register_model_type("my_llama_clone", "llama")``. Returns the new adapter, which
    is registered under the model type's own name.
    """
    base = ADAPTERS.get(family)
    layout = replace(base, model_types=(model_type,), description=f"{model_type} (layout of {family})")
    ADAPTERS.register(model_type, layout, overwrite=True)
    return layout


def _get_path(root: nn.Module, path: str) -> nn.Module | None:
    obj: object = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


def _in_width(module: nn.Module) -> int:
    """Input width of a linear-like module (nn.Linear or GPT-2's transposed Conv1D)."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return int(weight.shape[0])  # Conv1D stores (in, out)
    if weight is not None and weight.ndim == 2:
        return int(weight.shape[1])
    raise RmtensionError(f"cannot tell the input width of {type(module).__name__}")


def _supported() -> str:
    return "; ".join(f"{name}: {', '.join(ADAPTERS.get(name).model_types)}" for name in ADAPTERS.names())


@dataclass(frozen=True)
class ModelSites:
    """The neuron sites of one loaded model: adapter, layers and the modules to hook."""

    layout: MlpLayout
    model_type: str
    layers_path: str  # full dotted path from the model root, e.g. "model.layers"
    layers: tuple[nn.Module, ...]
    n_neurons: int

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def family(self) -> str:
        return self.layout.family

    def down_in_is_act(self) -> bool:
        """True where ``down_in`` and ``act`` are the same tensor (no gate: GPT-2, BERT)."""
        return not self.layout.gated

    def site_name(self, layer: int, site: str) -> str:
        """The stable, readable name of a site, e.g. ``layers.3.mlp.down_in``."""
        check_site(site)
        return f"layers.{layer}.mlp.{site}"

    def site_names(self, site: str) -> list[str]:
        return [self.site_name(i, site) for i in range(self.n_layers)]

    def module_path(self, layer: int, site: str) -> str:
        """The real module that ``site`` hooks in ``layer`` (for messages and reports)."""
        check_site(site)
        inner = self.layout.act_path if site == "act" else self.layout.down_path
        return f"{self.layers_path}.{layer}.{inner}"

    def hook_module(self, layer: int, site: str) -> tuple[nn.Module, Literal["output", "input"]]:
        """The module to hook for ``site`` in ``layer``, and whether its output or input is the site."""
        check_site(site)
        block = self.layers[layer]
        if site == "act":
            return _get_path(block, self.layout.act_path), "output"  # type: ignore[return-value]
        return _get_path(block, self.layout.down_path), "input"  # type: ignore[return-value]

    def describe(self) -> dict:
        return {
            "family": self.family, "model_type": self.model_type, "layers": self.n_layers,
            "neurons_per_layer": self.n_neurons, "gated": self.layout.gated,
            "sites": {s: self.module_path(0, s).replace(".0.", ".{i}.", 1) for s in SITES},
            "down_in_equals_act": self.down_in_is_act(),
        }


def check_site(site: str) -> None:
    if site not in SITES:
        raise RmtensionError(f"unknown neuron site {site!r}; use one of: {', '.join(SITES)} "
                             "(act = activation function output, down_in = input of the down projection)")


def _model_type(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "model_type", "") or type(model).__name__)


def find_adapter(model: nn.Module) -> MlpLayout:
    """The adapter whose model types include ``model.config.model_type``."""
    mt = _model_type(model)
    for name in ADAPTERS.names():
        layout = ADAPTERS.get(name)
        if mt in layout.model_types:
            return layout
    raise RmtensionError(
        f"unsupported architecture {mt!r} ({type(model).__name__}) for neuron sites; supported model types — "
        f"{_supported()}. If its MLP has the layout of one of these families, call "
        f"rmtension.neurons.sites.register_model_type({mt!r}, 'llama'); otherwise register an MlpLayout in "
        "rmtension.neurons.sites.ADAPTERS"
    )


def model_sites(model: nn.Module, adapter: MlpLayout | str | None = None) -> ModelSites:
    """Find the layers and neuron counts of ``model`` (a sequence-classification model or its base).

    The structure is checked, not assumed: every layer must hold the activation and down
    modules, with the same neuron count, and activation modules must not be shared between
    layers (a shared module's hook could not tell the layers apart).
    """
    layout = ADAPTERS.get(adapter) if isinstance(adapter, str) else (adapter or find_adapter(model))
    base = getattr(model, "base_model", model)
    prefix = getattr(model, "base_model_prefix", "") if base is not model else ""
    for path in layout.layer_paths:
        layers = _get_path(base, path)
        if layers is not None:
            break
    else:
        raise RmtensionError(f"{type(model).__name__}: no layer list at {' or '.join(layout.layer_paths)} "
                             f"(adapter {layout.family!r}); is this the right adapter?")
    layers_t: tuple[nn.Module, ...] = tuple(layers)  # type: ignore[arg-type]
    if not layers_t:
        raise RmtensionError(f"{type(model).__name__} has no layers")
    widths, acts = set(), set()
    for i, block in enumerate(layers_t):
        act, down = _get_path(block, layout.act_path), _get_path(block, layout.down_path)
        if act is None or down is None:
            missing = layout.act_path if act is None else layout.down_path
            raise RmtensionError(f"{type(model).__name__} layer {i} has no module {missing!r} "
                                 f"(adapter {layout.family!r}); register a matching MlpLayout")
        if id(act) in acts:
            raise RmtensionError(f"{type(model).__name__}: layers share one activation module; "
                                 "its hook could not tell the layers apart (use site down_in)")
        acts.add(id(act))
        widths.add(_in_width(down))
    if len(widths) != 1:
        raise RmtensionError(f"{type(model).__name__}: layers have different MLP widths {sorted(widths)}")
    full_path = ".".join(p for p in (prefix, path) if p)
    return ModelSites(layout, _model_type(model), full_path, layers_t, widths.pop())


@contextmanager
def hook_sites(model: nn.Module, site: str, fn: SiteFn, *, layers: Iterable[int] | None = None,
               sites: ModelSites | None = None) -> Iterator[ModelSites]:
    """Call ``fn(layer, activations)`` at ``site`` of every (or the given) layer during forward passes.

    ``activations`` is the (batch, seq, neurons) tensor as the model computes it (its dtype under
    autocast). If ``fn`` returns a tensor of the same shape, it replaces the activations for the
    rest of the forward pass. Yields the ``ModelSites`` description.

    Hooks compose in installation order: a recorder installed inside an ablation's ``with``
    block sees the ablated activations; one installed outside (earlier) sees the originals.
    """
    ms = sites or model_sites(model)
    chosen = range(ms.n_layers) if layers is None else sorted(set(int(i) for i in layers))
    handles = []
    try:
        for i in chosen:
            if not 0 <= i < ms.n_layers:
                raise RmtensionError(f"layer {i} out of range: the model has {ms.n_layers} layers")
            module, where = ms.hook_module(i, site)
            if where == "output":
                def out_hook(_mod, _args, output, _i=i):
                    new = fn(_i, output)
                    return new  # None keeps the output
                handles.append(module.register_forward_hook(out_hook))
            else:
                def in_hook(_mod, args, _i=i):
                    new = fn(_i, args[0])
                    return None if new is None else (new, *args[1:])
                handles.append(module.register_forward_pre_hook(in_hook))
        yield ms
    finally:
        for h in handles:
            h.remove()
