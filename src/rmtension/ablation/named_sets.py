"""Which neuron sets a sweep ablates: set files, size-matched random controls, ablation curves over k.

Named sets are the unit of a sweep (one results folder each), so every builder here returns
``(name, NeuronSet)`` pairs with names that say what the set is:

* a set file → its file stem (``helpful-top10``);
* a random control → ``<stem>~random-<match>-s<seed>`` (``rmtension.neurons.sets.random_like``;
  ``per-layer`` keeps the count in every layer, ``total`` only the overall count);
* a curve point → ``<method>-k<k>`` for each k of the list, selected from one score/statistics
  file of ``rmtension neurons score`` (top k% over all layers × neurons, or per layer);
  ``random`` curves add ``-s<seed>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.neurons.sets import NeuronSet, random_like, select_top
from rmtension.neurons.setfile import load_set

NamedSet = tuple[str, NeuronSet]


def parse_k_list(text: str) -> list[float]:
    """"0,5,10,20,30" → [0.0, 5.0, 10.0, 20.0, 30.0]; each between 0 and 100 (``validate.percent_list``)."""
    from rmtension.validate import percent_list

    try:
        return percent_list.parse(text)
    except ValueError as exc:
        raise RmtensionError(f"--k: {exc}") from None


def sets_from_files(paths: Iterable[str | Path]) -> list[NamedSet]:
    return [(Path(p).stem, load_set(p)) for p in paths]


def random_controls(paths: Iterable[str | Path], seeds: Sequence[int], match: str = "per-layer") -> list[NamedSet]:
    """Size-matched random sets for each file and seed."""
    out = []
    for p in paths:
        s = load_set(p)
        for seed in seeds:
            r = random_like(s, int(seed), match=match)  # type: ignore[arg-type]
            out.append((f"{Path(p).stem}~random-{match}-s{seed}", r))
    return out


def curve_sets(scores_file: str | Path, ks: Sequence[float], methods: Sequence[str] | None = None,
               seeds: Sequence[int] = (0,), per_layer: bool = False) -> list[NamedSet]:
    """Top-k% sets for every k and method (default: the file's own method) of one score file."""
    from rmtension.neurons.scores import compute_scores
    from rmtension.neurons.stats import load_stats

    stats, stored = load_stats(scores_file)
    saved = stats.meta.get("scores") or {}
    pool = saved.get("pool", "all")
    wanted = list(methods or ([saved["method"]] if saved.get("method") else []))
    if not wanted:
        raise RmtensionError(f"{scores_file} holds statistics but no scores; name the methods (--methods magnitude,...)")
    out: list[NamedSet] = []
    for method in wanted:
        for seed in (seeds if method == "random" else (int(saved.get("seed", 0) or 0),)):
            same = (method, seed) == (saved.get("method"), int(saved.get("seed", 0) or 0))
            scores = stored if same and stored is not None else compute_scores(stats, method, pool, int(seed))
            meta = {key: stats.meta.get(key) for key in ("rm", "data", "backbone", "objective")}
            meta.update({"method": method, "pool": pool, "site": stats.site,
                         "seed": int(seed) if method == "random" else None, "scores_file": str(scores_file)})
            for k in ks:
                s = select_top(np.asarray(scores), k, per_layer=per_layer, meta=meta)
                name = f"{method}-k{k:g}" + (f"-s{seed}" if method == "random" else "")
                out.append((name, s))
    return out


def unique_names(named: Sequence[NamedSet]) -> list[NamedSet]:
    """Suffix repeated names (``a``, ``a-2``, ...) so every set gets its own folder."""
    seen: dict[str, int] = {}
    out = []
    for name, s in named:
        n = seen.get(name, 0) + 1
        seen[name] = n
        out.append((name if n == 1 else f"{name}-{n}", s))
    return out
