"""From a preference source to tokenised training pairs and a held-out set, with every count kept.

The steps, each counted in the run record: load (records, skips by reason) → split by prompt
hash into train / held-out → cap the training pairs with a seeded hashed sample → render each
side with the RM template → tokenise → drop or left-truncate over-long pairs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from rmtension.data.sources import OBJECTIVE_SOURCES, load_preferences
from rmtension.data.split import sample_pairs, split_pairs  # sample_pairs: also used by neuron scoring
from rmtension.data.types import PreferencePair
from rmtension.errors import RmtensionError
from rmtension.models.encoding import encode, truncate_left, truncate_pair_left
from rmtension.models.formatting import format_for_rm
from rmtension.training.config import TrainConfig


@dataclass
class PreparedData:
    """Tokenised training rows, the held-out pairs, and the numbers that describe them."""

    train_rows: list[dict[str, list[int]]]
    heldout: list[PreferencePair]
    counts: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)
    train_pairs: list[PreferencePair] = field(default_factory=list)
    """The pairs behind ``train_rows``, in the same order (what the RM is trained on)."""


def file_sha256(path: str) -> str:
    if path.startswith("hub:"):
        return "hub"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def training_source(cfg: TrainConfig) -> str:
    return cfg.train_data or OBJECTIVE_SOURCES[cfg.objective]


def prepare_data(cfg: TrainConfig, tokenizer) -> PreparedData:
    """Load, split, sample, render, tokenise; raise if nothing usable is left."""
    src = training_source(cfg)
    data = load_preferences(src, cfg.data_dir)
    train_pairs, heldout = split_pairs(data.pairs, cfg.heldout_fraction)
    chosen_pairs = sample_pairs(train_pairs, cfg.max_pairs, cfg.data_seed)
    heldout = sample_pairs(heldout, cfg.heldout_max_pairs, cfg.data_seed)

    texts: list[str] = []
    for p in chosen_pairs:
        texts.append(format_for_rm(p.prompt, p.chosen, tokenizer, cfg.template))
        texts.append(format_for_rm(p.prompt, p.rejected, tokenizer, cfg.template))
    ids = encode(tokenizer, texts)
    special = set(tokenizer.all_special_ids)
    rows: list[dict[str, list[int]]] = []
    used: list[PreferencePair] = []
    dropped = truncated = 0
    for k in range(0, len(ids), 2):
        c, r = ids[k], ids[k + 1]
        if len(c) > cfg.max_length or len(r) > cfg.max_length:
            if cfg.overlong == "drop":
                dropped += 1
                continue
            truncated += 1
            if cfg.overlong == "truncate-aligned":
                c, r = truncate_pair_left(c, r, cfg.max_length, special)
            else:
                c, r = truncate_left(c, cfg.max_length, special), truncate_left(r, cfg.max_length, special)
        rows.append({"chosen_ids": c, "rejected_ids": r})
        used.append(chosen_pairs[k // 2])
    if not data.pairs:  # say why: nothing to do with max_length when every record was skipped
        raise RmtensionError(f"no usable training pairs in {src!r}: {data.report.explain()}")
    if not train_pairs:
        raise RmtensionError(f"no training pairs left from {src!r}: all {len(data.pairs)} usable pairs fall in the "
                             f"held-out split (heldout_fraction={cfg.heldout_fraction})")
    if not rows:
        raise RmtensionError(
            f"no training pairs left from {src!r}: {len(chosen_pairs)} sampled, {dropped} dropped as longer than "
            f"max_length={cfg.max_length} tokens (use --overlong truncate or a larger --max-length)"
        )
    report = data.report
    counts = {
        "records": report.total,
        "usable": report.usable,
        "skipped": dict(report.skipped),
        "subsets": {name: rep.to_dict() for name, rep in data.subsets.items()},
        "split_train": len(train_pairs),
        "split_heldout": len(data.pairs) - len(train_pairs),
        "sampled": len(chosen_pairs),
        "dropped_overlong": dropped,
        "truncated_overlong": truncated,
        "used": len(rows),
        "heldout_scored": len(heldout),
        "train_tokens": sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows),
    }
    sources = [{"source": src, "file": f, "sha256": file_sha256(f)} for f in data.files]
    return PreparedData(rows, heldout, counts, sources, used)


