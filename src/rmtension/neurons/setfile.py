"""The neuron-set file: one JSON object that names which MLP neurons of an RM were selected.

Written by ``rmtension neurons select`` / ``combine`` / ``random-like``, read by ``compare``, by
ablation (``rmtension eval --ablate FILE``) and by the report. Plain JSON so that any tool can
produce one (e.g. a hand-picked set for an experiment)::

    {
      "format": "rmtension.neuron-set/1",
      "meta": {
        "rm": "/runs/gpt2-helpful-s0",        # RM folder the scores came from
        "data": "hh-rlhf:helpful-base@test",  # data the statistics were computed on
        "method": "magnitude",                # score method (or "random")
        "pool": "group-mean",                 # tokens scored: group-mean | all | chosen | rejected
        "site": "act",                        # act | down_in (see rmtension.neurons.sites)
        "k": 10.0,                            # top percent
        "selection": "global",                # global | per-layer | random-like:<match> | combine:<op>
        "seed": null,                         # seed of random methods
        "created_by": "rmtension 0.1.0 neurons select",
        "created": "2025-01-01T00:00:00Z",
        ...                                   # producers may add keys (e.g. "a"/"b" for combinations)
      },
      "layers": 30,                           # layers of the model
      "neurons_per_layer": 1536,              # MLP width
      "count": 4608,                          # selected neurons in total
      "per_layer": {"0": 140, "1": 152, ...}, # selected per layer (every layer, zeros included)
      "neurons": {"0": [3, 17, ...], ...}     # selected indices per layer, ascending
    }

Only ``layers``, ``neurons_per_layer`` and ``neurons`` are required to read a file; ``count`` and
``per_layer``, when present, must agree with ``neurons``. Layer keys are decimal strings (JSON
object keys); missing layers have no selected neurons.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rmtension.errors import InputError, RmtensionError
from rmtension.data.io import read_json
from rmtension.files import write_atomic
from rmtension.neurons.sets import NeuronSet

SET_FORMAT = "rmtension.neuron-set/1"

# Sane bounds checked before any array is allocated: a typo or a hostile file saying
# "layers": 10**9 must be an error, not a MemoryError. The largest open models have about 130
# layers and 7 million MLP neurons in all (Llama 3.1 405B: 126 × 53248); these leave ample room.
MAX_LAYERS = 10_000
MAX_NEURONS_PER_LAYER = 10_000_000
MAX_NEURONS_TOTAL = 2**28

# Meta keys that readers use, and the JSON types they must have (null is always allowed).
_META_TYPES: dict[str, tuple[type, ...]] = {
    "rm": (str,), "data": (str,), "method": (str,), "pool": (str,), "site": (str,), "selection": (str,),
    "scores_file": (str,), "backbone": (str,), "objective": (str,), "created_by": (str,), "created": (str,),
    "k": (int, float), "seed": (int,),
}


def created_by(command: str) -> dict[str, str]:
    import rmtension

    return {"created_by": f"rmtension {rmtension.__version__} {command}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def to_json(s: NeuronSet) -> dict[str, Any]:
    meta = dict(s.meta)
    meta.setdefault("seed", None)
    return {
        "format": SET_FORMAT,
        "meta": meta,
        "layers": s.layers,
        "neurons_per_layer": s.neurons_per_layer,
        "count": len(s),
        "per_layer": {str(i): c for i, c in enumerate(s.per_layer())},
        "neurons": {str(i): idx for i, idx in s.by_layer().items()},
    }


def save_set(path: str | Path, s: NeuronSet) -> Path:
    """Write ``s`` to ``path`` atomically (temporary sibling, then rename)."""
    text = json.dumps(to_json(s), indent=1, sort_keys=False) + "\n"
    return write_atomic(path, lambda fh: fh.write(text))


def _int(path: Path, value: Any, what: str) -> int:
    """An integer, or a decimal string (JSON object keys are strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InputError(path, f"{what} must be an integer, got {value!r}")


def from_json(obj: Any, path: str | Path = "<neuron set>") -> NeuronSet:
    """Validate a parsed neuron-set object and build the set; errors name the file and the field."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise InputError(path, "a neuron-set file holds one JSON object")
    fmt = obj.get("format", SET_FORMAT)
    if fmt != SET_FORMAT:
        raise InputError(path, f"unsupported format {fmt!r}; expected {SET_FORMAT}")
    for key in ("layers", "neurons_per_layer", "neurons"):
        if key not in obj:
            raise InputError(path, f"missing field {key!r}")
    layers = _int(path, obj["layers"], "'layers'")
    width = _int(path, obj["neurons_per_layer"], "'neurons_per_layer'")
    if layers < 1 or width < 1:
        raise InputError(path, "'layers' and 'neurons_per_layer' must be positive")
    if layers > MAX_LAYERS or width > MAX_NEURONS_PER_LAYER or layers * width > MAX_NEURONS_TOTAL:
        raise InputError(path, f"{layers} layers × {width} neurons is beyond any model (at most {MAX_LAYERS} layers, "
                         f"{MAX_NEURONS_PER_LAYER} neurons per layer, {MAX_NEURONS_TOTAL} in all)")
    meta = _check_meta(path, obj.get("meta"))
    neurons = obj["neurons"]
    if not isinstance(neurons, dict):
        raise InputError(path, "'neurons' must be an object {layer: [indices]}")
    mask = np.zeros((layers, width), dtype=bool)
    for key, idx in neurons.items():
        layer = _int(path, key, "a layer key in 'neurons'")
        if not 0 <= layer < layers:
            raise InputError(path, f"layer {layer} out of range (the model has {layers} layers)")
        if not isinstance(idx, list):
            raise InputError(path, f"'neurons' of layer {layer} must be a list of indices")
        values = [_int(path, v, f"a neuron index of layer {layer}") for v in idx]
        bad = [v for v in values if not 0 <= v < width]
        if bad:
            raise InputError(path, f"layer {layer}: neuron index {bad[0]} out of range 0..{width - 1}")
        if len(set(values)) != len(values):
            raise InputError(path, f"layer {layer}: repeated neuron indices")
        mask[layer, values] = True
    s = NeuronSet(mask, meta)
    if "count" in obj and _int(path, obj["count"], "'count'") != len(s):
        raise InputError(path, f"'count' is {obj['count']} but 'neurons' lists {len(s)}")
    if isinstance(obj.get("per_layer"), dict):
        counts = s.per_layer()
        for key, c in obj["per_layer"].items():
            layer = _int(path, key, "a layer key in 'per_layer'")
            if 0 <= layer < layers and _int(path, c, "a per-layer count") != counts[layer]:
                raise InputError(path, f"'per_layer' says {c} neurons in layer {layer}, 'neurons' lists {counts[layer]}")
    return s


def _check_meta(path: Path, meta: Any) -> dict[str, Any]:
    """``meta`` is optional, but when present it is an object whose known keys have their types."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InputError(path, f"'meta' must be a JSON object, got {type(meta).__name__}")
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            want = "a string" if types == (str,) else "a number" if float in types else "an integer"
            raise InputError(path, f"'meta.{key}' must be {want} or null, got {value!r}")
    return dict(meta)


def load_set(path: str | Path) -> NeuronSet:
    path = Path(path)
    if not path.is_file():
        raise RmtensionError(f"neuron-set file {path} does not exist; make one with `rmtension neurons select`")
    obj = read_json(path)  # BOM tolerated; malformed or too deeply nested JSON is one InputError
    s = from_json(obj, path)
    return s.with_meta(file=str(path))
