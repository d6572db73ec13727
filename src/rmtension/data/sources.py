"""Named preference-data sources and their resolution: local data directory → hub → clear error.

Names look like ``hh-rlhf:helpful-base`` (one subset) or ``hh-rlhf:helpful`` (a bundle), with an
optional ``@train`` / ``@test`` suffix; without it every split found is loaded. A path to a local
file (JSONL, JSONL.gz, JSON, Parquet) or to a folder of such files loads as generic data.

Local layout (the same as ``../shared/data``)::

    <data_dir>/hh-rlhf/<subset>/{train,test}.jsonl[.gz]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rmtension.data.hh import parse_hh_pair
from rmtension.data.io import Located, is_record_file, iter_records
from rmtension.data.types import (
    SKIP_EMPTY,
    SKIP_IDENTICAL,
    LoadReport,
    PreferenceData,
    PreferencePair,
    Prompt,
    Turn,
    user_prompt,
)
from rmtension.errors import InputError, RmtensionError, SourceNotFoundError
from rmtension.hub import hub_available, hub_status
from rmtension.registry import Registry

DATA_DIR_ENV = "RMTENSION_DATA_DIR"
SPLITS = ("train", "test")
_EXTS = (".jsonl.gz", ".jsonl", ".json", ".json.gz", ".parquet")

HH_HUB_ID = "Anthropic/hh-rlhf"
HH_HELPFUL = ("helpful-base", "helpful-online", "helpful-rejection-sampled")
HH_HARMLESS = ("harmless-base",)


@dataclass(frozen=True)
class SourceSpec:
    """A named source: a family folder, its subsets, and where the hub keeps them."""

    name: str
    family: str  # folder under the data directory, e.g. "hh-rlhf"
    subsets: tuple[str, ...]
    hub_id: str
    description: str


SOURCES: Registry[SourceSpec] = Registry("data source")


def _register_hh() -> None:
    for sub in HH_HELPFUL + HH_HARMLESS:
        SOURCES.register(f"hh-rlhf:{sub}", SourceSpec(f"hh-rlhf:{sub}", "hh-rlhf", (sub,), HH_HUB_ID, f"HH-RLHF {sub}"))
    bundles = {
        "helpful": (HH_HELPFUL, "HH-RLHF helpfulness: helpful-base + helpful-online + helpful-rejection-sampled"),
        "harmless": (HH_HARMLESS, "HH-RLHF harmlessness: harmless-base"),
        "mixed": (HH_HELPFUL + HH_HARMLESS, "HH-RLHF helpful and harmless subsets together (all four)"),
    }
    for key, (subs, desc) in bundles.items():
        SOURCES.register(f"hh-rlhf:{key}", SourceSpec(f"hh-rlhf:{key}", "hh-rlhf", subs, HH_HUB_ID, desc))


_register_hh()

# The training data of each objective in the study.
OBJECTIVE_SOURCES = {"helpful": "hh-rlhf:helpful", "harmless": "hh-rlhf:harmless", "mixed": "hh-rlhf:mixed"}


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """``--data-dir`` wins, then ``$RMTENSION_DATA_DIR``; None when neither is set."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


def _split_name(src: str) -> tuple[str, str | None]:
    if "@" in src:
        name, split = src.rsplit("@", 1)
        if split not in SPLITS:
            raise RmtensionError(f"unknown split {split!r} in {src!r}; use one of {', '.join(SPLITS)}")
        return name, split
    return src, None


def local_split_files(base: Path, split: str | None) -> list[Path]:
    """Files of a subset folder for the requested split(s), in a fixed order."""
    found = []
    for sp in ([split] if split else list(SPLITS)):
        for ext in _EXTS:
            f = base / f"{sp}{ext}"
            if f.is_file():
                found.append(f)
                break
    return found


# ----------------------------------------------------------------------------- record parsing


def _prompt_from(loc: Located, value: Any) -> Prompt:
    if isinstance(value, str):
        return user_prompt(value)
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        roles = {"human": "user", "user": "user", "assistant": "assistant", "system": "system", "gpt": "assistant"}
        turns = []
        for m in value:
            role = roles.get(str(m.get("role", "user")).lower())
            if role is None or not isinstance(m["content"], str):
                raise loc.error("field 'prompt' has a message with an unknown role or non-string content")
            turns.append(Turn(role, m["content"]))
        return tuple(turns)
    raise loc.error("field 'prompt' must be a string or a list of {role, content} messages")


def _response_from(loc: Located, key: str) -> str:
    if key not in loc.record:
        raise loc.error(f"missing field {key!r}")
    value = loc.record[key]
    if isinstance(value, str):
        return value
    # TRL's conversational format: a list of messages whose last one is the response.
    if isinstance(value, list) and value and isinstance(value[-1], dict) and isinstance(value[-1].get("content"), str):
        return value[-1]["content"]
    raise loc.error(f"field {key!r} must be a string, got {type(value).__name__}")


def parse_preference_record(loc: Located, subset: str, pair_id: str) -> PreferencePair | str:
    """One record of either generic shape → a pair, or the reason it is skipped.

    Missing fields and wrong types are errors (the file is wrong); empty or identical responses
    are counted skips (the data is merely unusable).
    """
    rec = loc.record
    chosen = _response_from(loc, "chosen")
    rejected = _response_from(loc, "rejected")
    if "prompt" in rec and rec["prompt"] is not None:
        prompt = _prompt_from(loc, rec["prompt"])
        chosen_s, rejected_s = chosen.strip(), rejected.strip()
        if not chosen_s or not rejected_s:
            return SKIP_EMPTY
        if chosen_s == rejected_s:
            return SKIP_IDENTICAL
        return PreferencePair(prompt, chosen_s, rejected_s, subset=subset, id=pair_id)
    parsed = parse_hh_pair(chosen, rejected)
    if isinstance(parsed, str):
        return parsed
    prompt, c, r = parsed
    return PreferencePair(prompt, c, r, subset=subset, id=pair_id)


def load_pair_file(path: Path, subset: str, id_prefix: str) -> tuple[list[PreferencePair], LoadReport]:
    pairs: list[PreferencePair] = []
    rep = LoadReport()
    for loc in iter_records(path):
        rep.total += 1
        n = loc.line if loc.line is not None else loc.index
        rec_subset = loc.record.get("subset") if isinstance(loc.record.get("subset"), str) else subset
        out = parse_preference_record(loc, rec_subset, f"{id_prefix}:{n}")
        if isinstance(out, str):
            rep.skipped[out] += 1
        else:
            pairs.append(out)
            rep.usable += 1
    return pairs, rep


# ----------------------------------------------------------------------------- resolution


def load_preferences(src: str, data_dir: str | Path | None = None) -> PreferenceData:
    """Load a named source, a file or a folder of files. See the module docstring."""
    path = Path(src)
    if path.is_dir() or path.is_file() or is_record_file(src):
        return _load_local_path(path)
    name, split = _split_name(src)
    spec = SOURCES.get(name) if name in SOURCES else None
    if spec is None:
        raise SourceNotFoundError(
            f"unknown data source {src!r}: not a file, and not a registered name "
            f"({', '.join(SOURCES.names())}); a local file must be JSONL, JSONL.gz, JSON or Parquet"
        )
    root = resolve_data_dir(data_dir)
    pairs: list[PreferencePair] = []
    subsets: dict[str, LoadReport] = {}
    files: list[str] = []
    for sub in spec.subsets:
        sub_pairs, rep, sub_files = _load_subset(spec, sub, split, root)
        pairs.extend(sub_pairs)
        subsets[sub] = rep
        files.extend(sub_files)
    return PreferenceData(src, pairs, subsets, files)


def _load_local_path(path: Path) -> PreferenceData:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_record_file(p))
        if not files:
            raise InputError(path, "folder holds no JSONL, JSON or Parquet files")
    else:
        files = [path]
    pairs: list[PreferencePair] = []
    subsets: dict[str, LoadReport] = {}
    for f in files:
        stem = f.name.split(".")[0]
        fp, rep = load_pair_file(f, stem, stem)
        pairs.extend(fp)
        # A file may carry its own per-record subsets; the report stays per file.
        if stem in subsets:
            subsets[stem].add(rep)
        else:
            subsets[stem] = rep
    return PreferenceData(str(path), pairs, subsets, [str(f) for f in files])


def _load_subset(
    spec: SourceSpec, sub: str, split: str | None, root: Path | None
) -> tuple[list[PreferencePair], LoadReport, list[str]]:
    looked: list[str] = []
    if root is not None:
        base = root / spec.family / sub
        files = local_split_files(base, split)
        if files:
            pairs: list[PreferencePair] = []
            rep = LoadReport()
            for f in files:
                sp = f.name.split(".")[0]
                fp, frep = load_pair_file(f, sub, f"{sub}:{sp}")
                pairs.extend(fp)
                rep.add(frep)
            return pairs, rep, [str(f) for f in files]
        looked.append(f"{base}/{{{','.join([split] if split else SPLITS)}}}.jsonl[.gz]")
    else:
        looked.append(f"no local data directory (set --data-dir or ${DATA_DIR_ENV})")
    if hub_available():
        return _load_subset_from_hub(spec, sub, split)
    raise SourceNotFoundError(
        f"data source {spec.name!r} (subset {sub}) not found: looked in {'; '.join(looked)}; "
        f"{hub_status()} for {spec.hub_id}. Put the files at "
        f"<data-dir>/{spec.family}/{sub}/test.jsonl.gz (or train.jsonl.gz) and pass --data-dir."
    )


def _load_subset_from_hub(spec: SourceSpec, sub: str, split: str | None) -> tuple[list[PreferencePair], LoadReport, list[str]]:
    import datasets

    pairs: list[PreferencePair] = []
    rep = LoadReport()
    for sp in [split] if split else list(SPLITS):
        try:
            ds = datasets.load_dataset(spec.hub_id, data_dir=sub, split=sp)
        except Exception as exc:  # network, auth or schema problems all end here
            raise SourceNotFoundError(f"could not load {spec.hub_id} (data_dir={sub}, split={sp}) from the hub: {exc}") from None
        where = f"hub:{spec.hub_id}/{sub}/{sp}"
        for i, rec in enumerate(ds):
            rep.total += 1
            out = parse_preference_record(Located(dict(rec), where, index=i), sub, f"{sub}:{sp}:{i}")
            if isinstance(out, str):
                rep.skipped[out] += 1
            else:
                pairs.append(out)
                rep.usable += 1
    return pairs, rep, [f"hub:{spec.hub_id}/{sub}"]


def iter_source_names() -> Iterable[str]:
    return SOURCES.names()
