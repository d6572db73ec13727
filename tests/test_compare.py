"""`rmtension compare`: retention and calibration on hand-made eval folders whose answers are worked
out below, the over-seed summary, role/item mismatches, and one end-to-end run on three tiny RMs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rmtension.analysis.compare import compare
from rmtension.analysis.eval_runs import load_eval_run, triples_from_records
from rmtension.cli.main import main
from rmtension.evaluation.evaluate import read_items
from rmtension.models.reward_model import build_reward_model, save_reward_model

# Task "b/help" (pairwise, helpful), items i0..i4: (chosen, rejected) score of each RM.
#   correct  M: 1 1 0 0 1   H: 1 0 1 0 0   A: 0 1 1 0 0
#   C_H ∪ C_A = {i0,i1,i2}; C_M ∩ it = {i0,i1} → retention 2/3; vs H: {i0}/{i0,i2} = 1/2; vs A: {i1}/{i1,i2} = 1/2
#   calibration H–M on {i0}: margins H 1.0, M 0.2; A–M on {i1}: A 0.8, M 0.5
HELP = {
    "mixed": [(0.3, 0.1), (0.5, 0.0), (0.0, 0.2), (0.0, 0.1), (0.4, 0.1)],
    "helpful": [(1.0, 0.0), (0.0, 1.0), (2.0, 0.5), (0.0, 1.0), (0.0, 1.0)],
    "harmless": [(0.0, 1.0), (0.9, 0.1), (3.0, 1.0), (0.0, 1.0), (0.0, 1.0)],
}
# Seed 1 differs only in the mixed RM on b/help: right on i0 alone → retention 1/3, vs H 1/2, vs A 0.
HELP_SEED1_MIXED = [(0.3, 0.1), (0.0, 0.5), (0.0, 0.2), (0.0, 0.1), (0.0, 0.1)]
# Task "b/harm" (best-of-n, 1 chosen vs 2 rejected, harmless), items j0..j2; a tie at the top scores 1/2.
#   correct  M: 1 ½ 1   H: 0 1 1   A: 1 1 0
#   threshold 1: C_M = {j0,j2}, C_H = {j1,j2}, C_A = {j0,j1} → retention 2/3, vs H 1/2, vs A 1/2
#   threshold ½: C_M = everything → retention 1, vs H 1, vs A 1
#   calibration H–M on {j2}: H 2.0, M 0.2; A–M on {j0}: A 1.5, M 0.5
HARM = {
    "mixed": [([1.0], [0.5, 0.2]), ([1.0], [1.0, 0.0]), ([0.6], [0.4, 0.3])],
    "helpful": [([0.0], [1.0, 0.5]), ([2.0], [0.0, 1.0]), ([3.0], [1.0, 0.0])],
    "harmless": [([2.0], [0.0, 0.5]), ([1.0], [0.5, 0.0]), ([0.0], [1.0, 1.0])],
}


def _correct_pairwise(c: float, r: float) -> float:
    return float(c > r)


def _correct_bon(c: list[float], r: list[float]) -> float:
    allv = c + r
    top = max(allv)
    return 1.0 / allv.count(top) if c[0] == top else 0.0


def make_eval_dir(path: Path, objective: str | None, seed: int | None, help_scores=None, harm_scores=None,
                  backbone: str | None = "tb", drop_item: bool = False) -> Path:
    """An eval folder in the `rmtension eval` format with the scores above."""
    help_scores = help_scores or HELP[objective]
    harm_scores = harm_scores or HARM[objective]
    rows = []
    for k, (c, r) in enumerate(help_scores):
        if drop_item and k == 4:
            continue
        rows.append({"benchmark": "b", "subset": "help", "id": f"i{k}", "group": "helpful", "metric": "pairwise",
                     "chosen_scores": [c], "rejected_scores": [r], "correct": _correct_pairwise(c, r)})
    for k, (c, r) in enumerate(harm_scores):
        rows.append({"benchmark": "b", "subset": "harm", "id": f"j{k}", "group": "harmless", "metric": "best-of-n",
                     "chosen_scores": c, "rejected_scores": r, "correct": _correct_bon(c, r)})
    subsets = {}
    for sub, metric, group in (("help", "pairwise", "helpful"), ("harm", "best-of-n", "harmless")):
        mine = [r["correct"] for r in rows if r["subset"] == sub]
        subsets[sub] = {"metric": metric, "score": float(np.mean(mine)), "n": len(mine), "group": group}
    rm = {k: v for k, v in (("objective", objective), ("backbone", backbone), ("seed", seed)) if v is not None}
    results = {"benchmarks": {"b": {"subsets": subsets, "groups": {"helpful": subsets["help"]["score"],
                                                                   "harmless": subsets["harm"]["score"]},
                                    "aggregate": {}}},
               "rm": rm, "ablation": None}
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def two_seeds(tmp_path) -> list[Path]:
    dirs = [make_eval_dir(tmp_path / f"s0-{o}", o, 0) for o in ("mixed", "helpful", "harmless")]
    dirs.append(make_eval_dir(tmp_path / "s1-mixed", "mixed", 1, help_scores=HELP_SEED1_MIXED))
    dirs += [make_eval_dir(tmp_path / f"s1-{o}", o, 1) for o in ("helpful", "harmless")]
    return dirs


def test_hand_made_retention_calibration_and_seeds(two_seeds, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", *map(str, reversed(two_seeds)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "b/help" in printed and "mean ± std over seeds 0, 1" in printed and "calibration" in printed
    data = json.loads(out.read_text())
    assert [(c["backbone"], c["seed"]) for c in data["comparisons"]] == [("tb", 0), ("tb", 1)]
    s0, s1 = data["comparisons"]
    help0, harm0 = s0["tasks"]["b/help"], s0["tasks"]["b/harm"]
    assert (help0["retention"], help0["kept_helpful"], help0["kept_harmless"]) == pytest.approx((2 / 3, 1 / 2, 1 / 2))
    assert (help0["n"], help0["n_union"], help0["n_helpful"], help0["n_harmless"], help0["n_mixed_only"]) == (5, 3, 2, 2, 1)
    assert help0["accuracy"] == pytest.approx({"mixed": 0.6, "helpful": 0.4, "harmless": 0.4})
    assert (harm0["retention"], harm0["kept_helpful"], harm0["kept_harmless"]) == pytest.approx((2 / 3, 1 / 2, 1 / 2))
    assert harm0["group"] == "harmless" and harm0["metric"] == "best-of-n"
    ch = help0["calibration"]["helpful"]
    assert ch["n"] == 1 and ch["single_margin"]["mean"] == pytest.approx(1.0) and ch["mixed_margin"]["mean"] == pytest.approx(0.2)
    assert ch["share_mixed_smaller"] == 1.0 and "hist" not in ch
    ca = harm0["calibration"]["harmless"]
    assert ca["n"] == 1 and ca["single_margin"]["mean"] == pytest.approx(1.5) and ca["mixed_margin"]["mean"] == pytest.approx(0.5)
    pooled = {(e["single"], e["group"]): e for e in s0["calibration"]}
    assert set(pooled) == {(s, g) for s in ("helpful", "harmless") for g in ("helpful", "harmless", "all")}
    all_h = pooled[("helpful", "all")]  # {b/help#i0, b/harm#j2}: single 1.0 and 2.0, mixed 0.2 and 0.2
    assert all_h["n"] == 2 and all_h["single_margin"]["mean"] == pytest.approx(1.5)
    assert all_h["mixed_margin"]["mean"] == pytest.approx(0.2) and all_h["share_mixed_smaller"] == 1.0
    assert len(all_h["hist"]["bins"]) == 21 and sum(all_h["hist"]["single"]) == sum(all_h["hist"]["mixed"]) == 2
    assert pooled[("harmless", "helpful")]["n"] == 1  # {b/help#i1}
    assert s0["groups"]["helpful"]["retention"] == pytest.approx(2 / 3) and s0["groups"]["helpful"]["tasks"] == 1

    help1 = s1["tasks"]["b/help"]
    assert (help1["retention"], help1["kept_helpful"], help1["kept_harmless"]) == pytest.approx((1 / 3, 1 / 2, 0.0))
    seeds = data["over_seeds"]["tb"]
    assert seeds["seeds"] == [0, 1]
    r = seeds["tasks"]["b/help"]["retention"]
    assert r["mean"] == pytest.approx(0.5) and r["std"] == pytest.approx(math.sqrt(2 * (1 / 6) ** 2)) and r["n"] == 2
    assert seeds["tasks"]["b/harm"]["retention"]["std"] == pytest.approx(0.0)
    assert seeds["groups"]["helpful"]["kept_harmless"]["mean"] == pytest.approx(0.25)
    cal = {(e["single"], e["group"]): e for e in seeds["calibration"]}
    assert cal[("helpful", "all")]["single_margin.mean"]["values"] == pytest.approx([1.5, 1.5])


def test_threshold_json_stdout_and_summary_entries(two_seeds, capsys):
    assert main(["compare", *map(str, two_seeds[:3]), "--retention-unit", "item", "--threshold", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    harm = data["comparisons"][0]["tasks"]["b/harm"]
    assert data["threshold"] == 0.5 and harm["retention"] == 1.0 and harm["kept_helpful"] == 1.0
    triples = triples_from_records([load_eval_run(d) for d in two_seeds])
    entries = compare(triples).summary_entries()
    ret, cal = entries["retention"], entries["calibration"]
    assert [(e["backbone"], e["seed"]) for e in ret] == [("tb", 0), ("tb", 1)]
    task = ret[0]["tasks"]["b/help"]  # the keys docs/STUDY_FORMAT.md asks for
    assert {"group", "n", "retention", "kept_helpful", "kept_harmless", "n_union", "n_helpful", "n_harmless"} <= set(task)
    for e in cal:
        assert {"backbone", "seed", "single", "group", "n", "single_margin", "mixed_margin", "share_mixed_smaller",
                "hist"} <= set(e)
        assert {"mean", "median", "std"} <= set(e["single_margin"]) and {"bins", "single", "mixed"} <= set(e["hist"])


def test_explicit_roles_for_folders_without_records(tmp_path, capsys):
    dirs = {o: make_eval_dir(tmp_path / o, o, None, backbone=None) for o in ("mixed", "helpful", "harmless")}
    for d in dirs.values():  # as if the RMs were trained elsewhere: no rm record at all
        res = json.loads((d / "results.json").read_text())
        res.pop("rm")
        (d / "results.json").write_text(json.dumps(res))
    rc = main(["compare", *map(str, dirs.values())])
    err = capsys.readouterr().err
    assert rc == 2 and "--mixed/--helpful/--harmless" in err and err.count("\n") == 1
    assert main(["compare", "--mixed", str(dirs["mixed"]), "--helpful", str(dirs["helpful"]),
                 "--harmless", str(dirs["harmless"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["comparisons"][0]["tasks"]["b/help"]["retention"] == pytest.approx(2 / 3)
    # Roles given explicitly override a record that says otherwise, with a note.
    swapped = main(["compare", "--mixed", str(dirs["mixed"]), "--helpful", str(dirs["harmless"]),
                    "--harmless", str(dirs["helpful"]), "--json"])
    assert swapped == 0
    data = json.loads(capsys.readouterr().out)
    assert data["comparisons"][0]["tasks"]["b/help"]["kept_helpful"] == pytest.approx(1 / 2)


def _one_line_error(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("rmtension: error: ") and "\n" not in err, err
    return err


def test_mismatches_are_one_line_errors(two_seeds, tmp_path, capsys):
    s0 = [str(d) for d in two_seeds[:3]]
    assert "no eval folder for the harmless RM" in _one_line_error(capsys, "compare", *s0[:2])
    dup = make_eval_dir(tmp_path / "again-mixed", "mixed", 0)
    assert "two eval folders for the mixed RM" in _one_line_error(capsys, "compare", *s0, str(dup))
    short = make_eval_dir(tmp_path / "short-mixed", "mixed", 7, drop_item=True)
    others = [str(make_eval_dir(tmp_path / f"s7-{o}", o, 7)) for o in ("helpful", "harmless")]
    err = _one_line_error(capsys, "compare", str(short), *others)
    assert "task b/help" in err and "--intersect" in err
    assert main(["compare", str(short), *others, "--intersect", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["comparisons"][0]["tasks"]["b/help"]["n"] == 4
    assert any("1 items not scored by all three" in n for n in data["comparisons"][0]["notes"])
    assert "equally often" in _one_line_error(capsys, "compare", "--mixed", s0[0], "--helpful", s0[1])
    assert "not an eval output folder" in _one_line_error(capsys, "compare", str(tmp_path), *s0[1:])
    bad = make_eval_dir(tmp_path / "bad-mixed", "mixed", 9)
    with open(bad / "items.jsonl", "a") as fh:
        fh.write("{oops\n")
    assert f"{bad / 'items.jsonl'}:9" in _one_line_error(capsys, "compare", str(bad), *s0[1:])


# ----------------------------------------------------------------------------- end to end


def test_end_to_end_three_tiny_rms(data_dir, tmp_path, capsys):
    bench = tmp_path / "toy.jsonl"
    rows = [{"id": f"q{k}", "subset": "toy-chat", "group": "helpful", "prompt": f"Say something nice #{k}.",
             "chosen": f"You are great, {k}!", "rejected": f"Go away {k}."} for k in range(6)]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dirs = []
    for head_seed, objective in enumerate(("mixed", "helpful", "harmless")):
        model, tok = build_reward_model("tiny-gpt2", seed=100 + head_seed)  # different heads, different answers
        rm = save_reward_model(model, tok, tmp_path / f"rm-{objective}",
                               {"backbone": "tiny-gpt2", "template": "hh", "objective": objective, "seed": 0})
        out = tmp_path / f"eval-{objective}"
        assert main(["eval", "--rm", str(rm), "--bench", "rm-bench:chat,safety-refuse", "--bench", str(bench),
                     "--max-items", "3", "--max-length", "128", "--data-dir", str(data_dir), "--out", str(out),
                     "--no-progress"]) == 0
        dirs.append(out)
    capsys.readouterr()
    assert main(["compare", *map(str, dirs), "--out", str(tmp_path / "cmp.json")]) == 0
    printed = capsys.readouterr().out
    assert "tiny-gpt2 seed 0" in printed
    assert "length controls (tokens)" in printed and "longer-wins" in printed  # issue 11: beside the scores
    data = json.loads((tmp_path / "cmp.json").read_text())
    tasks = data["comparisons"][0]["tasks"]
    # the length columns are those each eval wrote for the same items (one baseline, one ρ per RM)
    for objective, d in zip(("mixed", "helpful", "harmless"), dirs):
        res = json.loads((d / "results.json").read_text())
        for key, t in tasks.items():
            bench, subset = key.rsplit("/", 1)
            stored = res["benchmarks"][bench]["subsets"][subset]
            assert t["length"]["length_baseline"] == stored["length_baseline"]
            assert t["length"]["margin_length_spearman"][objective] == stored["margin_length_spearman"]
            assert t["length"]["length_matched"][objective] == stored["length_matched"]
            assert t["length"]["accuracy_ci95"][objective] == stored["ci95"]
    assert set(tasks) == {"rm-bench:chat,safety-refuse/chat", "rm-bench:chat,safety-refuse/safety-refuse", "toy/toy-chat"}
    # Expected sets written out independently of rmtension.analysis.retention. Default unit, the
    # paper's (EshaanT/RM-alignment_tension @ 96efa92: dataset.py::get_rm_bench zips chosen[s] with
    # rejected[s]; evaluation.py::rm_acc: min(chosen) > max(rejected)): an RM-Bench item is three
    # same-style pairs. --retention-unit item: whole items at correctness 1 (RM-Bench: all nine cells).
    right: dict[str, dict[str, set[str]]] = {}
    right_item: dict[str, dict[str, set[str]]] = {}
    for objective, d in zip(("mixed", "helpful", "harmless"), dirs):
        for row in read_items(d):
            key = f"{row['benchmark']}/{row['subset']}"
            units = right.setdefault(key, {}).setdefault(objective, set())
            items = right_item.setdefault(key, {}).setdefault(objective, set())
            c, r = row["chosen_scores"], row["rejected_scores"]
            if row["metric"] == "rm-bench":
                units.update(f"{row['id']}#{s}" for s in range(3) if c[s] > r[s])
            elif min(c) > max(r):
                units.add(row["id"])
            if row["correct"] >= 1.0:
                items.add(row["id"])
    for key, t in tasks.items():
        m, h, a = right[key]["mixed"], right[key]["helpful"], right[key]["harmless"]
        union = h | a
        want = len(m & union) / len(union) if union else None
        assert t["retention"] == (pytest.approx(want) if want is not None else None), key
        jh = len(m & h) / len(m | h) if m | h else None
        assert t["jaccard_helpful"] == (pytest.approx(jh) if jh is not None else None), key
        assert t["n_union"] == len(union) and t["n"] == 3  # --max-items 3 per subset
        assert t["n_units"] == (9 if key.startswith("rm-bench") else 3)
    assert data["retention_unit"] == "paper"
    assert main(["compare", *map(str, dirs), "--retention-unit", "item", "--json"]) == 0
    item_tasks = json.loads(capsys.readouterr().out)["comparisons"][0]["tasks"]
    for key, t in item_tasks.items():
        m, h, a = right_item[key]["mixed"], right_item[key]["helpful"], right_item[key]["harmless"]
        union = h | a
        want = len(m & union) / len(union) if union else None
        assert t["retention"] == (pytest.approx(want) if want is not None else None), key
        assert t["n_units"] == t["n"] == 3
    # calibration always works on whole items, whatever the retention unit
    for key, t in tasks.items():
        m, h = right_item[key]["mixed"], right_item[key]["helpful"]
        assert t["calibration"]["helpful"]["n"] == len(m & h)
