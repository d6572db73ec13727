"""Neuron scoring of a trained RM on a preference source: the edge where files and models are read.

``score_rm`` loads the RM and its record, renders each pair with the RM's own text template (the
one it was trained with), builds the untrained base model when the change score is wanted, and
runs one statistics pass through the shared scorer. Everything it computes lands in the
returned ``NeuronStats`` metadata so that a score file says what it was made from.

The *backbone baseline* (``ScoreRequest.backbone_baseline``, issue 11) scores the untrained
backbone, with a fresh score head seeded with ``head_seed``, exactly like an RM: same pairs, same
template, same statistics. Its top-k% set is what a method selects without any training, so an
RM's set is read against it (a high Jaccard with the backbone's set says the method mostly picks
neurons that are large whatever the objective). The head sits after the MLPs, so the backbone's
neuron statistics do not depend on ``head_seed`` (only its pair accuracy does); the change score
is undefined for it (the backbone is its own base) and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmtension.errors import RmtensionError
from rmtension.neurons.recorder import collect_stats
from rmtension.neurons.scores import compute_scores, needs_attribution, needs_base
from rmtension.neurons.sites import check_site
from rmtension.neurons.stats import NeuronStats


@dataclass
class ScoreRequest:
    """Options of one ``neurons score`` run (the CLI flags)."""

    rm: str | None  # RM folder; None only for the backbone baseline (then ``base`` names the backbone)
    data: str
    method: str = "magnitude"
    site: str = "act"
    pool: str = "group-mean"  # the paper: chosen and rejected scored apart, then averaged
    data_dir: str | None = None
    max_pairs: int | None = None
    split: str = "all"  # all | train | heldout: side of the prompt-hash split (see rmtension.data.split)
    sample_seed: int = 0  # which max_pairs pairs: a seeded hash sample over the whole source
    batch_size: int = 16
    max_length: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    seed: int = 0
    with_change: bool = False
    # Attribution sums (``neurons.attribution``): a gradient pass after the statistics pass, run when the method
    # needs it or ``with_attribution`` asks for it; ``attr_tokens`` response | all, ``ig_steps`` 0 = plain a × ∇.
    with_attribution: bool = False
    attr_tokens: str = "response"
    ig_steps: int = 0
    base: str | None = None  # backbone name/folder of the untrained base; default: the RM's record
    chunk_pairs: int = 512
    progress: bool = False
    shared_prompt: bool = True  # compute a pair's shared prompt once (same statistics; see evaluation/scorer.py)
    # The backbone baseline: score the untrained backbone (``base``, else the backbone in ``rm``'s record) with a
    # fresh head seeded ``head_seed``. ``rm`` may then be None; the pairs' split is then ``heldout`` (the split the
    # RMs are trained with) and the template ``template``.
    backbone_baseline: bool = False
    head_seed: int = 0
    heldout: Any = None  # rmtension.data.split.HeldoutSplit, for split train/heldout without an RM record
    template: str | None = None


def _base_model(req: ScoreRequest, info: dict[str, Any]):
    from rmtension.models.reward_model import build_reward_model

    backbone = req.base or info.get("backbone")
    if not backbone:
        raise RmtensionError(f"the change score needs the RM's untrained base model, but {req.rm} has no "
                             "backbone in rmtension.json; pass --base BACKBONE")
    model, _tok = build_reward_model(str(backbone), seed=int(info.get("seed", 0) or 0))
    return model, str(backbone)


def _select_pairs(pairs: list, req: ScoreRequest) -> list:
    """The pairs to score: one side of the prompt-hash split, then a seeded hashed sample.

    The split is the one the RM was trained with (its record), so "heldout" never holds a prompt
    it was trained on; an RM without a recorded split is refused for train/heldout. A hashed
    sample (not the first N) keeps every subset of a bundle represented: the first N pairs of
    ``hh-rlhf:mixed`` would all be helpful-base.
    """
    from rmtension.models.reward_model import heldout_split_of, read_record
    from rmtension.data.split import sample_pairs

    if req.split not in ("all", "train", "heldout"):
        raise RmtensionError(f"split must be all, train or heldout, got {req.split!r}")
    if req.split != "all":
        split = req.heldout if req.heldout is not None else heldout_split_of(read_record(req.rm), req.rm)
        train, held = split.apply(pairs)
        pairs = train if req.split == "train" else held
    return sample_pairs(pairs, req.max_pairs, req.sample_seed)


@dataclass
class Prepared:
    """What a scoring pass needs: the model to score, its tokenizer and record, and the rendered pairs."""

    model: Any
    tokenizer: Any
    info: dict[str, Any]
    pairs: list
    texts: list[tuple[str, str]]
    data: Any


def _backbone_model(req: ScoreRequest) -> tuple[Any, Any, dict[str, Any]]:
    """The untrained backbone with a fresh seeded head, and a record that says so (the backbone baseline)."""
    from rmtension.models.formatting import DEFAULT_TEMPLATE
    from rmtension.models.reward_model import build_reward_model, read_record

    record = read_record(req.rm) if req.rm else {}
    backbone = req.base or record.get("backbone")
    if not backbone:
        raise RmtensionError("the backbone baseline needs a backbone: pass --base BACKBONE (or an RM whose "
                             "rmtension.json names its backbone)")
    model, tokenizer = build_reward_model(str(backbone), seed=int(req.head_seed))
    info = {"path": f"backbone:{backbone}", "backbone": str(backbone), "objective": "backbone",
            "seed": int(req.head_seed), "template": req.template or record.get("template") or DEFAULT_TEMPLATE,
            "baseline_of": str(Path(req.rm).resolve()) if req.rm else None}
    return model, tokenizer, info


def prepare(req: ScoreRequest) -> Prepared:
    """Load the data and the model of ``req`` and render its pairs with the model's template (shared
    by ``score_rm`` and the neuron–length correlation, which must see exactly the same texts)."""
    from rmtension.data.sources import load_preferences
    from rmtension.models.formatting import format_for_rm
    from rmtension.models.reward_model import load_reward_model

    check_site(req.site)
    needs_base(req.method)  # unknown method names fail before any model is loaded
    if req.backbone_baseline and (req.with_change or needs_base(req.method)):
        raise RmtensionError("the change score is undefined for the backbone baseline: the untrained backbone is "
                             "its own base model")
    if not req.backbone_baseline and not req.rm:
        raise RmtensionError("no reward model to score (pass --rm)")
    data = load_preferences(req.data, req.data_dir)  # bad data fails before a model is loaded
    pairs = _select_pairs(data.pairs, req)
    if not pairs:
        why = data.report.explain() if not data.pairs else f"none of its {len(data.pairs)} usable pairs is in the {req.split} split"
        raise RmtensionError(f"{req.data} holds no usable preference pairs: {why}")
    if req.backbone_baseline:
        model, tokenizer, info = _backbone_model(req)
    else:
        model, tokenizer, info = load_reward_model(req.rm)
    template = info.get("template", "hh")
    texts = [(format_for_rm(p.prompt, p.chosen, tokenizer, template), format_for_rm(p.prompt, p.rejected, tokenizer, template))
             for p in pairs]
    return Prepared(model, tokenizer, info, pairs, texts, data)


def score_rm(req: ScoreRequest) -> tuple[NeuronStats, np.ndarray]:
    """Statistics (with metadata) and the requested method's (layers, neurons) scores."""
    from rmtension.evaluation.scorer import RewardScorer, ScorerConfig

    prep = prepare(req)
    model, tokenizer, info, pairs, texts, data = prep.model, prep.tokenizer, prep.info, prep.pairs, prep.texts, prep.data
    template = info.get("template", "hh")
    base, base_name = None, None
    if req.with_change or needs_base(req.method):
        base, base_name = _base_model(req, info)
    scorer = RewardScorer(model, tokenizer, ScorerConfig(batch_size=req.batch_size, max_length=req.max_length,
                                                         dtype=req.dtype, device=req.device, progress=req.progress,
                                                         shared_prompt=req.shared_prompt))
    meta = {
        "rm": info.get("path") or str(Path(str(req.rm)).resolve()), "backbone": info.get("backbone"),
        "objective": info.get("objective"), "rm_seed": info.get("seed"), "template": template,
        "data": req.data, "data_files": list(data.files), "pairs": len(pairs), "pairs_available": len(data.pairs),
        "split": req.split, "sample_seed": req.sample_seed,
        "base": base_name, "dtype": req.dtype, "max_length": scorer.max_length,
    }
    if req.backbone_baseline:
        meta.update({"backbone_baseline": True, "head_seed": int(req.head_seed), "baseline_of": info.get("baseline_of")})
    stats, pair_scores = collect_stats(scorer, texts, site=req.site, base_model=base, chunk_pairs=req.chunk_pairs,
                                       meta=meta)
    if req.with_attribution or needs_attribution(req.method):
        import time

        from rmtension.neurons.attribution import DEFAULT_CHUNK_PAIRS, collect_attribution

        t0 = time.perf_counter()
        stats.attr, attr_scores = collect_attribution(scorer, texts, site=req.site, tokens=req.attr_tokens,
                                                      ig_steps=req.ig_steps,
                                                      chunk_pairs=min(req.chunk_pairs, DEFAULT_CHUNK_PAIRS))
        # the gradient pass scores the plain (unpacked) texts: the same scores to float tolerance
        stats.meta["attribution_seconds"] = round(time.perf_counter() - t0, 3)
        stats.meta["attribution_max_score_diff"] = float(abs(attr_scores - pair_scores).max())
    margins = pair_scores[:, 0] - pair_scores[:, 1]
    stats.meta.update({"tokens": stats.tokens, "accuracy": float(np.mean(margins > 0)),
                       "mean_margin": float(np.mean(margins))})
    return stats, compute_scores(stats, req.method, req.pool, req.seed)
