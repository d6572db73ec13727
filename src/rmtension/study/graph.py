"""The study's step graph as a scheduler sees it: which backbone a step runs, what it needs, how it groups.

Why a module of its own: the Ray executor (``study.ray_executor``), the Slurm script (``study.slurm``) and
the critical-path estimate (``benchmarks/step_graph.py``) all place the same steps of ``build_plan`` on
machines; they read the plan's role tables here instead of parsing step names, and none of this changes
a step's key or folder (it only reads the plan).

Resources are *requests*, not measurements: a step that runs a model (training, evaluation, neuron
passes, ablations) asks for a GPU where the cluster has GPUs, the two table steps (compare, overlap) only
for a CPU; the host memory hint grows with the backbone's parameter count (see ``memory_hint``).
"""

from __future__ import annotations

import heapq
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from rmtension.study.dial_steps import DIAL_KIND
from rmtension.study.pipeline import Plan
from rmtension.study.steps import Step

# Steps that load a model and run it: the ones a GPU speeds up. compare and overlap read JSON and sets.
MODEL_KINDS = frozenset({"train", "eval", "neurons", "neurons-backbone", "neuron-length", "ablate-own",
                         "ablate-mixed", "curves", DIAL_KIND})
GIB = 2**30
# Host memory of a Python process with torch, transformers and a tokenizer loaded, before any weights.
BASE_PROCESS_BYTES = 1 * GIB
# Parameters of the paper's hub backbones (from their model cards: openai-community/gpt2*,
# HuggingFaceTB/SmolLM2-*), for names whose size is not written in them as "135M" / "1.7B".
KNOWN_PARAMS: dict[str, int] = {
    "openai-community/gpt2": 124_000_000, "gpt2": 124_000_000,
    "openai-community/gpt2-medium": 355_000_000, "gpt2-medium": 355_000_000,
    "openai-community/gpt2-large": 774_000_000, "gpt2-large": 774_000_000,
    "openai-community/gpt2-xl": 1_558_000_000, "gpt2-xl": 1_558_000_000,
}
_SIZE_IN_NAME = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)([mMbB])(?![a-zA-Z])")


def backbone_of(plan: Plan) -> dict[str, str]:
    """``{step label: backbone}`` for every step of the plan (from its role tables, keyed by backbone)."""
    out: dict[str, str] = {}
    tables: list[Mapping[tuple, Step]] = [plan.train, plan.eval, plan.neurons, plan.own_ablation, plan.curves,
                                          plan.mixed_ablation, plan.compare, plan.overlap, plan.backbone,
                                          plan.neuron_length, plan.dial]
    for table in tables:
        for key, st in table.items():
            out[st.label] = key[0]
    return out


def group_steps(plan: Plan) -> dict[tuple[str, int], list[Step]]:
    """The steps of each backbone × seed that belong to no cell (mixed ablation, compare, overlap, the
    backbone baseline and its neuron-length step, the optional tension dial), in plan order: one scheduler job per backbone × seed."""
    labels: dict[tuple[str, int], set[str]] = {}
    for table in (plan.mixed_ablation, plan.compare, plan.overlap, plan.backbone, plan.dial):
        for (b, s), st in table.items():
            labels.setdefault((b, s), set()).add(st.label)
    for (b, o, s), st in plan.neuron_length.items():
        if st.cell is None:
            labels.setdefault((b, s), set()).add(st.label)
    return {bs: [st for st in plan.steps if st.label in names] for bs, names in labels.items()}


def backbone_params(backbone: str) -> int | None:
    """Parameter count of a backbone without loading or downloading it; None when it cannot be told.

    From, in order: a local folder's (or an already materialised registered backbone's) config.json,
    the paper's hub names (``KNOWN_PARAMS``), a size written in the name ("SmolLM2-135M", "Qwen-1.5B").
    """
    from rmtension.models.backbones import describe_backbone

    try:
        info = describe_backbone(backbone, materialise=False)
    except Exception:  # noqa: BLE001 - a hint: an unknown name just gets no memory request
        info = None
    if info is not None and info.folder and (Path(info.folder) / "config.json").is_file():
        n = _params_from_config(json.loads((Path(info.folder) / "config.json").read_text()))
        if n:
            return n
    if backbone in KNOWN_PARAMS:
        return KNOWN_PARAMS[backbone]
    m = _SIZE_IN_NAME.search(backbone.rsplit("/", 1)[-1])
    if m:
        return int(float(m.group(1)) * (1e6 if m.group(2) in "mM" else 1e9))
    return None


def _params_from_config(cfg: dict) -> int | None:
    """A transformer's parameter count from its config: embeddings + per layer attention (4h²) and MLP
    (2·h·inner, 3·h·inner when gated). Good to a few percent, enough for a memory request."""
    cfg = cfg.get("text_config", cfg)
    h = cfg.get("hidden_size", cfg.get("n_embd", cfg.get("d_model")))
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer", cfg.get("num_layers")))
    vocab = cfg.get("vocab_size")
    if not all(isinstance(x, int) for x in (h, layers, vocab)):
        return None
    inner = cfg.get("intermediate_size", cfg.get("n_inner")) or 4 * h
    gated = cfg.get("model_type") not in ("gpt2", "gpt_neox", "bert", "roberta", "distilbert")
    return int(vocab * h + layers * (4 * h * h + (3 if gated else 2) * h * inner))


def memory_hint(backbone: str, kind: str, on_gpu: bool) -> int | None:
    """Host memory (bytes) one step asks the scheduler for; None when the backbone's size is unknown.

    Training on a CPU holds fp32 weights, gradients and two Adam moments (16 bytes per parameter) plus
    activations (×1.5); a forward-only step holds the weights (4 bytes per parameter; change-based neuron
    scores load the base model too, hence ×2 for neuron steps). On a GPU the host only stages the weights
    while loading (4 bytes per parameter). Plus ``BASE_PROCESS_BYTES`` for the process itself.
    """
    if kind not in MODEL_KINDS:
        return BASE_PROCESS_BYTES
    n = backbone_params(backbone)
    if n is None:
        return None
    if on_gpu:
        per = 4.0
    elif kind == "train":
        per = 16 * 1.5
    else:
        per = 4 * 1.5 * (2 if kind in ("neurons", "neuron-length") else 1)
    return int(BASE_PROCESS_BYTES + n * per)


@dataclass(frozen=True)
class PathReport:
    """The longest chain of dependent steps (``path``, labels) and its length in the estimate's seconds."""

    seconds: float
    path: list[str]
    total_seconds: float  # the sum over all steps: the serial run's length


def critical_path(steps: Iterable[Step], seconds: Mapping[str, float]) -> PathReport:
    """Longest path through the step graph with ``seconds[label]`` per step (steps in dependency order).

    Why: with unlimited workers a study takes at least this long whatever the scheduler does; the serial
    total divided by it is the most parallelism the graph offers.
    """
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    steps = list(steps)
    for st in steps:
        prev = max(st.deps, key=lambda d: finish.get(d.label, 0.0), default=None)
        start = finish.get(prev.label, 0.0) if prev is not None else 0.0
        finish[st.label] = start + seconds[st.label]
        before[st.label] = prev.label if prev is not None else None
    if not finish:
        return PathReport(0.0, [], 0.0)
    last: str | None = max(finish, key=lambda x: finish[x])
    length = finish[last]
    path = []
    while last is not None:
        path.append(last)
        last = before[last]
    return PathReport(length, path[::-1], sum(seconds[st.label] for st in steps))


def list_schedule(steps: Iterable[Step], seconds: Mapping[str, float], workers: int) -> float:
    """Makespan of a greedy list schedule on ``workers`` identical workers: whenever a worker is free it
    takes the earliest (in plan order) step whose dependencies are done. Roughly what Ray's scheduler
    does with the steps submitted in plan order and one GPU (or CPU) per step."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    steps = list(steps)
    index = {st.label: i for i, st in enumerate(steps)}
    waiting = {st.label: {d.label for d in st.deps if d.label in index} for st in steps}
    dependents: dict[str, list[str]] = {st.label: [] for st in steps}
    for st in steps:
        for d in waiting[st.label]:
            dependents[d].append(st.label)
    ready = [index[x] for x, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now, free, end = 0.0, workers, 0.0
    while ready or running:
        while free and ready:
            i = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[steps[i].label], i))
            free -= 1
        now, i = heapq.heappop(running)
        free += 1
        end = max(end, now)
        for nxt in dependents[steps[i].label]:
            waiting[nxt].discard(steps[i].label)
            if not waiting[nxt]:
                heapq.heappush(ready, index[nxt])
    return end


def gib(nbytes: int | None) -> int | None:
    """Bytes rounded up to whole GiB (what Slurm's --mem and a person read), None stays None."""
    return None if nbytes is None else max(1, math.ceil(nbytes / GIB))
