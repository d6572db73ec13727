"""Benchmark loaders on the real offline files, groups, generic files and subset filters."""

from __future__ import annotations

import json

import pytest

from rmtension.bench.groups import GROUPINGS, group_of, get_grouping, set_group_overrides
from rmtension.bench.loaders import load_benchmark, subsample
from rmtension.bench.types import METRIC_BEST_OF_N, METRIC_PAIRWISE, METRIC_RM_BENCH, METRIC_STRICT
from rmtension.errors import InputError, RmtensionError, SourceNotFoundError

RM_BENCH = {"chat": 129, "code": 228, "safety-refuse": 284, "safety-response": 157}
LLMBAR = {"llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
          "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46}


def test_rm_bench_real_counts_and_groups(data_dir):
    bench = load_benchmark("rm-bench", data_dir)
    s = bench.to_summary()
    assert {k: v["items"] for k, v in s["subsets"].items()} == RM_BENCH
    assert s["subsets"]["safety-refuse"]["group"] == "harmless"
    assert s["subsets"]["code"]["group"] == "helpful"
    assert s["groups"] == {"helpful": 129 + 228, "harmless": 284 + 157}
    assert all(len(it.chosen) == 3 and len(it.rejected) == 3 for it in bench.items)
    assert bench.metric == METRIC_RM_BENCH
    assert any("math" in n for n in s["notes"])  # the missing domain is reported, not hidden
    raw = json.loads((data_dir / "rm-bench" / "chat_filtered.json").read_text())
    first = next(it for it in bench.items if it.subset == "chat")
    assert first.prompt[0].content == raw[0]["prompt"] and list(first.chosen) == raw[0]["chosen"]


def test_llmbar_real_counts_and_labels(data_dir):
    bench = load_benchmark("llmbar", data_dir)
    s = bench.to_summary()
    assert {k: v["items"] for k, v in s["subsets"].items()} == LLMBAR
    assert s["groups"] == {"helpful": sum(LLMBAR.values()), "harmless": 0}
    raw = json.loads((data_dir / "llmbar/Dataset/LLMBar/Natural/dataset.json").read_text())
    for rec, item in zip(raw, [it for it in bench.items if it.subset == "llmbar-natural"]):
        want = rec[f"output_{rec['label']}"]
        other = rec[f"output_{3 - rec['label']}"]
        assert item.chosen == (want,) and item.rejected == (other,)


def test_subset_filter(data_dir):
    bench = load_benchmark("rm-bench:chat,safety-refuse", data_dir)
    assert set(bench.subsets()) == {"chat", "safety-refuse"}
    with pytest.raises(RmtensionError, match="no subset 'nope'"):
        load_benchmark("rm-bench:nope", data_dir)


def test_hub_only_benchmarks_fail_clearly_offline(data_dir):
    for name in ("rewardbench", "rewardbench2"):
        with pytest.raises(SourceNotFoundError, match="offline"):
            load_benchmark(name, data_dir)


def test_rewardbench_schemas_from_local_files(tmp_path):
    rb = tmp_path / "reward-bench"
    rb.mkdir()
    (rb / "filtered.jsonl").write_text(
        json.dumps({"prompt": "p", "chosen": "c", "rejected": "r", "subset": "xstest-should-refuse", "id": 7}) + "\n"
        + json.dumps({"prompt": "p2", "chosen": "c", "rejected": "r", "subset": "hep-go", "id": 8}) + "\n")
    bench = load_benchmark("rewardbench", tmp_path)
    assert [(it.subset, it.group) for it in bench.items] == [("xstest-should-refuse", "harmless"), ("hep-go", "helpful")]
    rb2 = tmp_path / "reward-bench-2"
    rb2.mkdir()
    (rb2 / "test.json").write_text(json.dumps([
        {"id": "a", "prompt": "p", "chosen": ["c"], "rejected": ["r1", "r2", "r3"], "subset": "Focus", "num_correct": 1},
        {"id": "b", "prompt": "p", "chosen": ["c1", "c2"], "rejected": ["r1"], "subset": "Ties", "num_correct": 2},
    ]))
    bench2 = load_benchmark("rewardbench2", tmp_path)
    assert bench2.metric_for("Focus") == METRIC_BEST_OF_N and bench2.metric_for("Ties") == "ties"
    assert bench2.items[0].rejected == ("r1", "r2", "r3") and bench2.items[1].meta_dict()["num_correct"] == 2


def test_generic_benchmark_file_with_groups_and_shapes(tmp_path):
    path = tmp_path / "mybench.jsonl"
    rows = [
        {"id": "1", "subset": "kindness", "group": "harmless", "prompt": "p", "chosen": "a", "rejected": "b"},
        {"id": "2", "subset": "kindness", "group": "harmless", "prompt": "p", "chosen": "a", "rejected": "c"},
        {"id": "3", "subset": "trivia", "group": "helpful", "prompt": "p", "chosen": ["a"], "rejected": ["b", "c", "d"]},
        {"id": "4", "subset": "math", "prompt": "p", "chosen": ["a", "b"], "rejected": ["c", "d"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = load_benchmark(str(path))
    s = bench.to_summary()
    assert s["subsets"]["kindness"] == {"items": 2, "group": "harmless", "metric": METRIC_PAIRWISE}
    assert s["subsets"]["trivia"]["metric"] == METRIC_BEST_OF_N
    assert s["subsets"]["math"] == {"items": 1, "group": "helpful", "metric": METRIC_STRICT}
    assert s["groups"] == {"helpful": 2, "harmless": 2}


def test_generic_benchmark_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subset": "x", "group": "helpful", "prompt": "p", "chosen": "a", "rejected": "b"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON"):
        load_benchmark(str(bad))
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"subset": "x", "group": "helpful", "prompt": "p", "chosen": "a"}\n')
    with pytest.raises(InputError, match=r"missing.jsonl:1: missing field 'rejected'"):
        load_benchmark(str(missing))
    nogroup = tmp_path / "nogroup.jsonl"
    nogroup.write_text('{"subset": "zzz", "prompt": "p", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(RmtensionError, match="no helpful/harmless group"):
        load_benchmark(str(nogroup))


def test_group_table_and_override():
    assert group_of("donotanswer") == "harmless"
    assert group_of("Precise IF") == "helpful"
    assert group_of("my-safety-set") == "harmless"  # keyword rule
    try:
        set_group_overrides({"chat": "harmless"})
        assert group_of("chat") == "harmless"
    finally:
        set_group_overrides({})
    assert group_of("chat") == "helpful"


def test_paper_grouping_excludes_code_and_ties_and_merges_math():
    """The paper's task table (EshaanT/RM-alignment_tension notebooks/plotsNresults.ipynb, 96efa92,
    cell 3): hep-*, RM-Bench code and RewardBench 2 Ties out; RM-Bench math + RB2 Math = "Math"."""
    paper, full = get_grouping("paper"), get_grouping("all")
    for lang in ("cpp", "go", "java", "js", "python", "rust"):
        assert not paper.includes("rewardbench", f"hep-{lang}") and full.includes("rewardbench", f"hep-{lang}")
    assert not paper.includes("rm-bench", "code") and not paper.includes("rm-bench:code,chat", "code")
    assert not paper.includes("rewardbench2", "Ties") and full.includes("rewardbench2", "Ties")
    assert paper.includes("rewardbench", "math-prm") and paper.task_of("rewardbench", "math-prm") == "Math PRM"
    assert paper.task_of("rm-bench", "math") == paper.task_of("rewardbench2", "Math") == "Math"
    assert full.task_of("rm-bench", "math") == "rm-bench/math" != full.task_of("rewardbench2", "Math")
    # the paper's benchmarks are closed (a subset its table does not name is dropped, as the
    # notebook's dropna does); other benchmarks keep every subset as a task of its own
    assert not paper.includes("rewardbench", "anthropic_helpful")
    assert paper.includes("hh-heldout", "harmless-base") and paper.task_of("llmbar", "llmbar-natural") == "llmbar/llmbar-natural"
    # names on the exclusion list in another benchmark are not excluded: the table is per benchmark
    assert paper.includes("mybench", "code") and paper.includes("mybench", "Ties")


def test_grouping_registry():
    assert set(GROUPINGS) == {"paper", "all"}
    with pytest.raises(RmtensionError, match="unknown grouping 'nope'.*paper, all"):
        get_grouping("nope")


def test_subsample_is_stable_and_bounded(data_dir):
    bench = load_benchmark("llmbar", data_dir)
    a = subsample(bench, 10, seed=1)
    b = subsample(load_benchmark("llmbar", data_dir), 10, seed=1)
    assert [it.id for it in a.items] == [it.id for it in b.items]
    assert all(len(v) == 10 for v in a.subsets().values())
    assert [it.id for it in subsample(bench, 10, seed=2).items] != [it.id for it in a.items]


def test_subsample_caps_one_subset_and_nests(data_dir):
    """A per-subset cap ({subset: N, None: N}, from a study's `benchmark/subset` key) sizes one subset apart
    from the rest; a smaller sample is part of a larger one; an unknown subset is refused, not ignored."""
    from rmtension.study.pipeline import _limit

    bench = load_benchmark("llmbar", data_dir)
    caps = _limit({"llmbar": 5, "llmbar/llmbar-natural": 40, "rm-bench": 3}, "llmbar")
    assert caps == {"llmbar-natural": 40, None: 5}
    assert _limit({"llmbar": 5, "rm-bench/chat": 3}, "llmbar") == 5
    sizes = {k: len(v) for k, v in subsample(bench, caps).subsets().items()}
    assert sizes["llmbar-natural"] == 40 and all(n == 5 for k, n in sizes.items() if k != "llmbar-natural")
    small = {it.id for it in subsample(bench, {"llmbar-natural": 20, None: 5}).items if it.subset == "llmbar-natural"}
    large = {it.id for it in subsample(bench, caps).items if it.subset == "llmbar-natural"}
    assert small < large
    whole = subsample(bench, {"llmbar-natural": 7, None: None}).subsets()
    assert len(whole["llmbar-natural"]) == 7 and len(whole["llmbar-adver-neighbor"]) == len(bench.subsets()["llmbar-adver-neighbor"])
    with pytest.raises(RmtensionError, match="no subset 'Nope'"):
        subsample(bench, {"Nope": 3, None: 5})
