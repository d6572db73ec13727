"""Re-running a model from layer ``s`` onward, reusing what the layers below computed.

Why this works for every family without per-family code: an ablation whose lowest hooked layer
is ``s`` cannot change anything computed *before* layer ``s`` runs — the embeddings, the masks,
the rotary/position embeddings, and layers ``0 .. s-1``. In the unablated (baseline) pass of a
batch we therefore keep the object that layer ``s-1`` returned, and in each ablated pass of the
same batch we make layers ``0 .. s-1`` return that object without computing anything (an
instance-level ``forward`` that ignores its inputs). Everything else runs as the model's own
code has it: embedding lookup, mask creation (causal, sliding-window, bidirectional, padding),
rotary tables, layers ``s ..`` with exactly the keyword arguments the model passes them
(position embeddings, per-layer-type masks, cache objects), the final norm, the pooling of the
last real token and the score head. Nothing of the decoder-layer call signatures — which differ
across GPT-2, Llama, Gemma 3 and BERT in transformers 5.x, and between transformers versions
(tensor vs. tuple returns) — has to be known or re-assembled.

The embedding and mask work is repeated per ablated pass; it is a small fraction of a layer.

Why it is checked, not assumed: the argument needs the model's layer loop to hand layer ``s``
exactly what layer ``s-1`` returned, once per forward pass. A pre-hook on layer ``s`` checks that
the hidden-state argument it receives *is* (object identity) the captured output, in the
baseline pass and in every replay. A model that transforms hidden states between layers (e.g.
per-layer scaling, AltUp-style stream mixing) or calls a layer twice fails the check; that start
layer is then marked unusable with the reason logged, and its sets fall back to full passes.

Copies: the captured output is cloned when captured and again for each replay, so that an
in-place operation inside a later layer (of the baseline or of one ablated pass) can never leak
into another pass; a copy of one hidden-state tensor is negligible next to a layer's matmuls.

Memory: one captured layer output per distinct start layer, for the current batch only
(batch × tokens × hidden floats each; e.g. 16 × 256 × 576 float32 ≈ 9.4 MB for SmolLM2-135M),
never per dataset.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from rmtension.neurons.sites import ModelSites

log = logging.getLogger(__name__)

_MISSING = object()


def _hidden_arg(args: tuple, kwargs: dict) -> Any:
    """The hidden-states argument of a layer call: first positional, or the ``hidden_states`` keyword."""
    if args:
        return args[0]
    return kwargs.get("hidden_states")


def _hidden_of(output: Any) -> Any:
    """The hidden states a layer returned: the tensor itself, or the first element of a tuple."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _copy(output: Any) -> Any:
    """A copy of a layer output (tensor, or tuple of tensors and others) that no later in-place op can touch."""
    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, (tuple, list)):
        return type(output)(_copy(x) for x in output)
    return output


@dataclass
class StartStatus:
    """Whether re-running from layer ``start`` reproduces a full pass on this model."""

    start: int
    usable: bool = True
    reason: str | None = None


@dataclass
class ReplayCheck:
    """Set by a replay: did layer ``start`` receive the captured hidden states, exactly once?"""

    calls: int = 0
    identical: bool = False

    @property
    def ok(self) -> bool:
        return self.calls == 1 and self.identical


class LayerResume:
    """Capture layer outputs in the baseline pass of a batch; replay them in ablated passes."""

    def __init__(self, sites: ModelSites, starts: Iterable[int]):
        self.layers: tuple[nn.Module, ...] = sites.layers
        self.status: dict[int, StartStatus] = {s: StartStatus(s) for s in sorted(set(starts)) if 0 < s < len(self.layers)}
        self.cached: dict[int, Any] = {}

    def usable(self, start: int | None) -> bool:
        st = self.status.get(start) if start is not None else None
        return bool(st and st.usable and start in self.cached)

    def disable(self, start: int, reason: str) -> None:
        st = self.status[start]
        if st.usable:
            log.warning("ablation sweep: cannot resume at layer %d (%s); its sets run full passes", start, reason)
        st.usable, st.reason = False, reason
        self.cached.pop(start, None)

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Around the baseline forward pass of one batch: keep layer ``s-1``'s output per start ``s``."""
        self.cached.clear()
        outputs: dict[int, list[Any]] = {}
        seen: dict[int, list[Any]] = {}
        handles = []
        try:
            for s, st in self.status.items():
                if not st.usable:
                    continue
                outputs[s], seen[s] = [], []

                def keep(_mod, _args, output, _s=s):
                    outputs[_s].append((output, _copy(output)))

                def look(_mod, args, kwargs, _s=s):
                    seen[_s].append(_hidden_arg(args, kwargs))

                handles.append(self.layers[s - 1].register_forward_hook(keep))
                handles.append(self.layers[s].register_forward_pre_hook(look, with_kwargs=True))
            yield
        finally:
            for h in handles:
                h.remove()
        for s in outputs:
            out, got = outputs[s], seen[s]
            if len(out) != 1 or len(got) != 1:
                self.disable(s, f"layers {s - 1}/{s} ran {len(out)}/{len(got)} times in one forward pass")
            elif got[0] is not _hidden_of(out[0][0]):
                self.disable(s, f"layer {s} does not receive layer {s - 1}'s output unchanged")
            else:
                self.cached[s] = out[0][1]

    @contextmanager
    def replay(self, start: int) -> Iterator[ReplayCheck]:
        """Inside the block, layers ``0 .. start-1`` return the captured output without computing.

        Each replay gets its own copy, so an in-place operation in a later layer of one ablated
        pass cannot leak into the next.
        """
        cached = _copy(self.cached[start])
        expected = _hidden_of(cached)
        check = ReplayCheck()

        def skip(*_args: Any, **_kwargs: Any) -> Any:
            return cached

        def look(_mod, args, kwargs):
            check.calls += 1
            check.identical = _hidden_arg(args, kwargs) is expected

        saved = []
        handle = None
        try:
            for layer in self.layers[:start]:
                saved.append((layer, layer.__dict__.get("forward", _MISSING)))
                layer.forward = skip  # instance attribute: nn.Module.__call__ looks it up first
            handle = self.layers[start].register_forward_pre_hook(look, with_kwargs=True)
            yield check
        finally:
            if handle is not None:
                handle.remove()
            for layer, previous in saved:
                if previous is _MISSING:
                    del layer.forward
                else:
                    layer.forward = previous
