"""Benchmark loaders, registered by name, each reading local files first and the hub second.

Local layouts under the data directory (the same as ``../shared/data``)::

    reward-bench/      filtered.{jsonl,json,parquet} (or any file named filtered*)   RewardBench
    reward-bench-2/    test.{jsonl,json,parquet} (or any file named test*)           RewardBench 2
    rm-bench/          {chat,code,math,safety-refuse,safety-response}_filtered.json  RM-Bench
    llmbar/Dataset/LLMBar/{Natural,Adversarial/{Neighbor,GPTInst,GPTOut,Manual}}/dataset.json

A name may carry a subset filter, ``rm-bench:chat,code``; any other argument is read as a generic
benchmark file (JSONL/JSON/Parquet of ``{"id", "subset", "group"?, "prompt", "chosen", "rejected"}``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Mapping

from rmtension.bench.groups import group_of
from rmtension.bench.types import (
    METRIC_BEST_OF_N,
    METRIC_PAIRWISE,
    METRIC_RM_BENCH,
    METRIC_STRICT,
    METRIC_TIES,
    BenchItem,
    Benchmark,
)
from rmtension.data.io import Located, is_record_file, iter_records, require_str, require_str_list
from rmtension.data.sources import resolve_data_dir
from rmtension.data.split import HeldoutSplit
from rmtension.data.types import user_prompt
from rmtension.errors import RmtensionError, SourceNotFoundError
from rmtension.hub import hub_available, hub_status
from rmtension.registry import Registry

Loader = Callable[[Path | None], Benchmark]
BENCHMARKS: Registry[Loader] = Registry("benchmark")

RM_BENCH_DOMAINS = ("chat", "code", "math", "safety-refuse", "safety-response")
LLMBAR_SETS = {
    "llmbar-natural": "Natural",
    "llmbar-adver-neighbor": "Adversarial/Neighbor",
    "llmbar-adver-GPTInst": "Adversarial/GPTInst",
    "llmbar-adver-GPTOut": "Adversarial/GPTOut",
    "llmbar-adver-manual": "Adversarial/Manual",
}


def _item(loc: Located, bench: str, subset: str, item_id: str, prompt: str, chosen: Iterable[str],
          rejected: Iterable[str], group: str | None = None, **meta) -> BenchItem:
    chosen_t, rejected_t = tuple(chosen), tuple(rejected)
    if not chosen_t or not rejected_t:
        raise loc.error("an item needs at least one chosen and one rejected response")
    try:
        item_group = group_of(subset, group)
    except RmtensionError as exc:  # name the file and line of the item whose group is wrong
        raise loc.error(str(exc)) from None
    return BenchItem(
        id=item_id,
        subset=subset,
        group=item_group,
        prompt=user_prompt(prompt),
        chosen=chosen_t,
        rejected=rejected_t,
        benchmark=bench,
        meta=tuple(sorted(meta.items())),
    )


def _not_found(name: str, looked: list[str], hub_id: str | None) -> SourceNotFoundError:
    where = "; ".join(looked) if looked else "no local data directory (set --data-dir or $RMTENSION_DATA_DIR)"
    hub = f"; {hub_status()} for {hub_id}" if hub_id else "; it has no hub fallback"
    return SourceNotFoundError(f"benchmark {name!r} not found: looked in {where}{hub}")


def _find_files(base: Path, stem: str) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob(f"{stem}*") if p.is_file() and is_record_file(p))


def _hub_rows(hub_id: str, split: str) -> Iterable[Located]:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as exc:
        raise SourceNotFoundError(f"could not load {hub_id} (split {split}) from the hub: {exc}") from None
    where = f"hub:{hub_id}/{split}"
    for i, rec in enumerate(ds):
        yield Located(dict(rec), where, index=i)


def _rows(name: str, root: Path | None, folder: str, stem: str, hub_id: str, split: str) -> tuple[Iterable[Located], list[str]]:
    looked = []
    if root is not None:
        files = _find_files(root / folder, stem)
        if files:
            return (loc for f in files for loc in iter_records(f)), [str(f) for f in files]
        looked.append(f"{root / folder}/{stem}*")
    if hub_available():
        return _hub_rows(hub_id, split), [f"hub:{hub_id}/{split}"]
    raise _not_found(name, looked, hub_id)


# ----------------------------------------------------------------------------- RewardBench


@BENCHMARKS.register("rewardbench")
def load_rewardbench(root: Path | None) -> Benchmark:
    """RewardBench (allenai/reward-bench, split ``filtered``): one chosen, one rejected per item."""
    rows, files = _rows("rewardbench", root, "reward-bench", "filtered", "allenai/reward-bench", "filtered")
    items = []
    for loc in rows:
        subset = require_str(loc, "subset")
        items.append(_item(loc, "rewardbench", subset, str(loc.record.get("id", loc.index)),
                           require_str(loc, "prompt"), [require_str(loc, "chosen")], [require_str(loc, "rejected")]))
    return Benchmark("rewardbench", items, METRIC_PAIRWISE, files=files)


@BENCHMARKS.register("rewardbench2")
def load_rewardbench2(root: Path | None) -> Benchmark:
    """RewardBench 2 (allenai/reward-bench-2, split ``test``): best-of-4; Ties has several correct."""
    rows, files = _rows("rewardbench2", root, "reward-bench-2", "test", "allenai/reward-bench-2", "test")
    items = []
    for loc in rows:
        subset = require_str(loc, "subset")
        meta = {}
        for key in ("num_correct", "num_incorrect", "total_completions"):
            if key in loc.record:
                meta[key] = loc.record[key]
        items.append(_item(loc, "rewardbench2", subset, str(loc.record.get("id", loc.index)),
                           require_str(loc, "prompt"), require_str_list(loc, "chosen"),
                           require_str_list(loc, "rejected"), **meta))
    return Benchmark("rewardbench2", items, METRIC_BEST_OF_N, subset_metrics={"Ties": METRIC_TIES}, files=files)


# ----------------------------------------------------------------------------- RM-Bench


@BENCHMARKS.register("rm-bench")
def load_rm_bench(root: Path | None) -> Benchmark:
    """RM-Bench: 3 chosen × 3 rejected style variants (concise, detailed plain, detailed markdown)."""
    items: list[BenchItem] = []
    files: list[str] = []
    notes: list[str] = []
    base = root / "rm-bench" if root is not None else None
    if base is not None and base.is_dir():
        for domain in RM_BENCH_DOMAINS:
            f = next((base / f"{domain}_filtered{ext}" for ext in (".json", ".jsonl", ".jsonl.gz", ".parquet")
                      if (base / f"{domain}_filtered{ext}").is_file()), None)
            if f is None:
                notes.append(f"domain {domain!r} missing: no {base}/{domain}_filtered.json")
                continue
            files.append(str(f))
            for loc in iter_records(f):
                items.append(_rm_bench_item(loc, domain))
        if items:
            return Benchmark("rm-bench", items, METRIC_RM_BENCH, files=files, notes=notes)
    if hub_available():
        for loc in _hub_rows("THU-KEG/RM-Bench", "train"):
            domain = loc.record.get("domain") or loc.record.get("subset")
            if not isinstance(domain, str):
                raise loc.error("missing field 'domain'")
            items.append(_rm_bench_item(loc, domain))
        return Benchmark("rm-bench", items, METRIC_RM_BENCH, files=["hub:THU-KEG/RM-Bench"])
    raise _not_found("rm-bench", [f"{base}/<domain>_filtered.json"] if base else [], "THU-KEG/RM-Bench")


def _rm_bench_item(loc: Located, domain: str) -> BenchItem:
    chosen = require_str_list(loc, "chosen")
    rejected = require_str_list(loc, "rejected")
    if len(chosen) != 3 or len(rejected) != 3:
        raise loc.error(f"RM-Bench items need 3 chosen and 3 rejected responses, got {len(chosen)} and {len(rejected)}")
    source = loc.record.get("subset", "")
    return _item(loc, "rm-bench", domain, f"{domain}:{loc.record.get('id', loc.index)}", require_str(loc, "prompt"),
                 chosen, rejected, source=source)


# ----------------------------------------------------------------------------- LLMBar


@BENCHMARKS.register("llmbar")
def load_llmbar(root: Path | None) -> Benchmark:
    """LLMBar's five sets, named as RewardBench names them; chosen = ``output_{label}``."""
    items: list[BenchItem] = []
    files: list[str] = []
    looked: list[str] = []
    if root is not None:
        base = root / "llmbar" / "Dataset" / "LLMBar"
        for subset, rel in LLMBAR_SETS.items():
            f = base / rel / "dataset.json"
            if not f.is_file():
                looked.append(str(f))
                continue
            files.append(str(f))
            for loc in iter_records(f):
                label = loc.record.get("label")
                if label not in (1, 2):
                    raise loc.error(f"field 'label' must be 1 or 2, got {label!r}")
                out1, out2 = require_str(loc, "output_1"), require_str(loc, "output_2")
                chosen, rejected = (out1, out2) if label == 1 else (out2, out1)
                items.append(_item(loc, "llmbar", subset, f"{subset}:{loc.index}", require_str(loc, "input"),
                                   [chosen], [rejected]))
        if items:
            notes = [f"missing: {p}" for p in looked]
            return Benchmark("llmbar", items, METRIC_PAIRWISE, files=files, notes=notes)
    if hub_available():
        rb = load_rewardbench(None)
        rb.items = [it for it in rb.items if it.subset in LLMBAR_SETS]
        rb.name = "llmbar"
        return rb
    raise _not_found("llmbar", looked, "allenai/reward-bench (llmbar-* subsets)")


# ----------------------------------------------------------------------------- HH-RLHF held-out pairs


HH_HELDOUT = "hh-heldout"


@BENCHMARKS.register(HH_HELDOUT)
def load_hh_heldout(root: Path | None, split: HeldoutSplit | None = None) -> Benchmark:
    """The held-out side of the prompt-hash split of each HH-RLHF subset, as pairwise items.

    ``split`` must be the split the evaluated RM was trained with (``heldout_split_of`` its record):
    only then is no item's prompt one it was trained on. Callers that score an RM always pass it;
    without one (browsing with ``bench show``) the default split is used and the notes say so.
    Subsets keep their HH names; their group follows the name (helpful-* → helpful,
    harmless-base → harmless).
    """
    from rmtension.data.sources import load_preferences

    data = load_preferences("hh-rlhf:mixed", root)
    chosen = split or HeldoutSplit()
    _, held = chosen.apply(data.pairs)
    items = [BenchItem(id=p.id, subset=p.subset, group=group_of(p.subset), prompt=p.prompt, chosen=(p.chosen,),
                       rejected=(p.rejected,), benchmark=HH_HELDOUT) for p in held]
    whose = "the RM's recorded training split" if split is not None else "the default split, not tied to any RM"
    notes = [f"held-out {chosen.fraction:.1%} of prompts (first user turn hash, salt {chosen.salt!r}) of hh-rlhf:mixed: "
             f"{whose}"]
    return Benchmark(HH_HELDOUT, items, METRIC_PAIRWISE, files=list(data.files), notes=notes)


def rm_heldout_split(rm_dir: str | Path, names: Iterable[str]) -> HeldoutSplit | None:
    """The split the RM in ``rm_dir`` was trained with when one of ``names`` is hh-heldout, else None.

    Read from the RM's record alone (no model is loaded); an RM without a recorded split is refused
    with a one-line error naming its record, since its held-out prompts are unknown.
    """
    from rmtension.models.backbones import check_model_folder
    from rmtension.models.reward_model import heldout_split_of, read_record

    if not any(str(n).partition(":")[0] == HH_HELDOUT for n in names):
        return None
    check_model_folder(rm_dir)  # custom code or pickles are refused before anything in the folder is read
    return heldout_split_of(read_record(rm_dir), rm_dir)


# ----------------------------------------------------------------------------- generic files


def load_generic(path: Path) -> Benchmark:
    """A benchmark file anyone can write: one item per record.

    The metric follows the item shape unless the record names one: 1 chosen × 1 rejected →
    pairwise; 1 × N → best-of-N (RewardBench 2's rule); 3 × 3 → RM-Bench's matrix; other M × N →
    best-of-N with the strict rule (every chosen above every rejected).
    """
    items: list[BenchItem] = []
    shapes: dict[str, set[tuple[int, int]]] = {}
    name = path.name.split(".")[0]
    for loc in iter_records(path):
        subset = loc.record.get("subset", name)
        if not isinstance(subset, str) or not subset:
            raise loc.error("field 'subset' must be a non-empty string")
        group = loc.record.get("group")
        if group is not None and not isinstance(group, str):
            raise loc.error("field 'group' must be 'helpful' or 'harmless'")
        item_id = loc.record.get("id", loc.line if loc.line is not None else loc.index)
        item = _item(loc, name, subset, str(item_id), require_str(loc, "prompt"), require_str_list(loc, "chosen"),
                     require_str_list(loc, "rejected"), group=group)
        items.append(item)
        shapes.setdefault(subset, set()).add((len(item.chosen), len(item.rejected)))
    subset_metrics = {sub: _metric_for_shapes(s) for sub, s in shapes.items()}
    return Benchmark(name, items, METRIC_PAIRWISE, subset_metrics=subset_metrics, files=[str(path)])


def _metric_for_shapes(shapes: set[tuple[int, int]]) -> str:
    if shapes == {(1, 1)}:
        return METRIC_PAIRWISE
    if all(c == 1 for c, _ in shapes):
        return METRIC_BEST_OF_N
    if shapes == {(3, 3)}:
        return METRIC_RM_BENCH
    return METRIC_STRICT


# ----------------------------------------------------------------------------- entry point


def load_benchmark(name_or_file: str, data_dir: str | Path | None = None,
                   heldout_split: HeldoutSplit | None = None) -> Benchmark:
    """Resolve a registered name (optionally ``name:subset,subset``) or a generic file.

    ``heldout_split``: the evaluated RM's training split, used by ``hh-heldout`` (see there).
    """
    base, sep, filt = name_or_file.partition(":")
    if base in BENCHMARKS:
        wanted = [s.strip() for s in filt.split(",") if s.strip()]
        if sep and not wanted:  # `rm-bench:` or `rm-bench:,,` would silently select nothing
            raise RmtensionError(f"benchmark {name_or_file!r}: no subset named after ':'; give NAME:subset[,subset] "
                                 f"(see `rmtension bench show {base}`)")
        root = resolve_data_dir(data_dir)
        bench = load_hh_heldout(root, heldout_split) if base == HH_HELDOUT else BENCHMARKS.get(base)(root)
        if wanted:
            known = set(bench.subsets())
            unknown = [s for s in wanted if s not in known]
            if unknown:
                raise RmtensionError(f"benchmark {base!r} has no subset {', '.join(map(repr, unknown))}; "
                                     f"it has: {', '.join(sorted(known))}")
            bench.items = [it for it in bench.items if it.subset in wanted]
            bench.name = name_or_file
        return bench
    path = Path(name_or_file)
    if path.exists() or is_record_file(name_or_file):
        return load_generic(path)
    raise SourceNotFoundError(
        f"unknown benchmark {name_or_file!r}: not a file and not a registered name ({', '.join(BENCHMARKS.names())})"
    )


def subsample(bench: Benchmark, per_subset: int | Mapping[str | None, int | None] | None, seed: int = 0) -> Benchmark:
    """Keep at most ``per_subset`` items of each subset, chosen by a seeded hash of the id.

    ``per_subset`` is one cap for every subset, or ``{subset: N, None: N}`` (``None``: the other subsets;
    a missing or None cap keeps the whole subset). A hash (not the file order) keeps the sample stable when
    files are re-ordered, and spreads it over the whole subset rather than its first lines; an item's rank
    does not depend on the cap, so a smaller sample is a subset of a larger one.
    """
    caps = per_subset if isinstance(per_subset, Mapping) else {None: per_subset}
    if not any(caps.values()):
        return bench
    unknown = sorted(k for k in caps if k is not None and k not in bench.subsets())
    if unknown:
        raise RmtensionError(f"benchmark {bench.name!r} has no subset {', '.join(map(repr, unknown))} to cap; "
                             f"it has: {', '.join(sorted(bench.subsets()))}")
    kept: list[BenchItem] = []
    for subset, items in bench.subsets().items():
        cap = caps.get(subset, caps.get(None))
        ranked = sorted(items, key=lambda it: hashlib.sha256(f"{seed}\x00{it.id}".encode()).digest())
        keep = {id(it) for it in (ranked[:cap] if cap else ranked)}
        kept.extend(it for it in items if id(it) in keep)
    if isinstance(per_subset, Mapping):
        said = ", ".join(f"{k or 'other subsets'}: {v or 'all'}" for k, v in per_subset.items())
        note = f"subsampled per subset ({said}; seed {seed})"
    else:
        note = f"subsampled to at most {per_subset} items per subset (seed {seed})"
    return Benchmark(bench.name, kept, bench.metric, dict(bench.subset_metrics), list(bench.files),
                     list(bench.notes) + [note])
