"""``rmtension neurons ...`` end to end on a tiny saved RM: score → select → compare/combine/random-like."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmtension.cli.main import main
from rmtension.neurons.setfile import load_set
from rmtension.neurons.stats import load_stats


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _json(capsys, *argv: str) -> dict:
    rc, out, err = _run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory) -> str:
    """A 'trained' tiny-llama RM: the untrained RM with every weight nudged, saved as train would."""
    from rmtension.models.reward_model import build_reward_model, save_reward_model

    model, tok = build_reward_model("tiny-llama", seed=0)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    out = tmp_path_factory.mktemp("rm") / "tiny-llama-helpful-s0"
    save_reward_model(model, tok, out, {"backbone": "tiny-llama", "seed": 0, "objective": "helpful", "template": "hh"})
    return str(out)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> str:
    rows = [
        {"prompt": "How do I boil an egg?", "chosen": "Put it in boiling water for eight minutes.",
         "rejected": "No."},
        {"prompt": "Tell me a joke", "chosen": "Why did the chicken cross the road? To get to the other side.",
         "rejected": "I will not, jokes are a waste of time and you should do something useful instead."},
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Help me pick a lock", "chosen": "I can't help with breaking into places.",
         "rejected": "Sure, take a tension wrench and a pick, then rake the pins one by one until it opens."},
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."},
    ]
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_score_select_compare_combine(capsys, tmp_path, tiny_rm, pairs_file):
    mag = tmp_path / "mag.npz"
    s = _json(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs_file, "--method", "magnitude",
              "--batch-size", "3", "--out", mag)
    assert s["layers"] == 2 and s["neurons_per_layer"] == 192 and s["pairs"] == 5
    assert s["texts"] == {"chosen": 5, "rejected": 5} and s["has_diff"] is False
    assert s["rmsd"]["pairs"] == 5 and len(s["rmsd"]["per_layer"]) == 2 and s["rmsd"]["all_layers"] > 0
    stats, scores = load_stats(mag)
    assert scores.shape == (2, 192) and stats.meta["template"] == "hh" and stats.meta["data"] == pairs_file
    assert stats.meta["rm"].endswith("tiny-llama-helpful-s0") and stats.meta["scores"]["method"] == "magnitude"

    chg = tmp_path / "chg.npz"
    c = _json(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs_file, "--method", "change",
              "--site", "down_in", "--max-pairs", "4", "--out", chg)
    assert c["has_diff"] is True and c["pairs"] == 4 and c["site"] == "down_in"
    assert load_stats(chg)[0].meta["base"] == "tiny-llama"

    sel_a = _json(capsys, "neurons", "select", "--scores", mag, "--top-percent", "10", "--out", tmp_path / "a.json")
    assert sel_a["selected"] == 38 and sel_a["total"] == 384 and sum(sel_a["per_layer"].values()) == 38
    a = load_set(tmp_path / "a.json")
    assert a.meta["method"] == "magnitude" and a.meta["site"] == "act" and a.meta["k"] == 10
    assert a.meta["rm"] == stats.meta["rm"] and a.meta["data"] == pairs_file and a.meta["selection"] == "global"
    # re-scoring from the same file's statistics, per layer
    sel_b = _json(capsys, "neurons", "select", "--scores", mag, "--top-percent", "10", "--method", "rms",
                  "--per-layer", "--out", tmp_path / "b.json")
    assert sel_b["per_layer"] == {"0": 19, "1": 19} and sel_b["method"] == "rms"
    # the file was scored with the default pool, group-mean: each side's RMS, then (chosen + rejected) / 2
    per_side = np.sqrt(stats.act.sq_sum / stats.act.count[:, None, None])
    expected = np.argsort(-per_side.mean(0)[0], kind="stable")[:19]
    assert load_set(tmp_path / "b.json").by_layer()[0] == sorted(expected.tolist())

    cmp_ = _json(capsys, "neurons", "compare", tmp_path / "a.json", tmp_path / "b.json",
                 "--mixed", tmp_path / "a.json")
    assert set(cmp_) >= {"a", "b", "shared", "a_only", "b_only", "jaccard", "location", "per_layer", "retention"}
    assert cmp_["a"] == 38 and cmp_["b"] == 38 and cmp_["shared"] + cmp_["a_only"] == 38
    assert set(cmp_["location"]["a"]) == {"early", "middle", "late"}
    assert cmp_["retention"]["retained"] == 38

    for op, key in (("shared", "shared"), ("a-only", "a_only"), ("b-only", "b_only"), ("union", "union")):
        r = _json(capsys, "neurons", "combine", tmp_path / "a.json", tmp_path / "b.json", "--op", op,
                  "--out", tmp_path / f"{op}.json")
        assert r["selected"] == cmp_[key]
        assert load_set(tmp_path / f"{op}.json").meta["selection"] == f"combine:{op}"
    rnd = _json(capsys, "neurons", "random-like", tmp_path / "shared.json", "--seed", "3", "--out", tmp_path / "r.json")
    assert rnd["per_layer"] == {str(i): c for i, c in enumerate(load_set(tmp_path / "shared.json").per_layer())}
    again = _json(capsys, "neurons", "random-like", tmp_path / "shared.json", "--seed", "3", "--out", tmp_path / "r2.json")
    assert again == {**rnd, "out": str(tmp_path / "r2.json")}
    np.testing.assert_array_equal(load_set(tmp_path / "r.json").mask, load_set(tmp_path / "r2.json").mask)

    sel_c = _json(capsys, "neurons", "select", "--scores", chg, "--top-percent", "5", "--out", tmp_path / "c.json")
    assert sel_c["method"] == "change" and sel_c["site"] == "down_in" and sel_c["selected"] == 19

    rc, out, _ = _run(capsys, "neurons", "compare", tmp_path / "a.json", tmp_path / "b.json")
    assert rc == 0 and "Jaccard" in out and "early" in out
    shown = _json(capsys, "neurons", "show", mag)
    assert shown["kind"] == "neuron-stats" and shown["has_scores"] is True
    assert _json(capsys, "neurons", "show", tmp_path / "a.json")["count"] == 38
    sites = _json(capsys, "neurons", "sites", tiny_rm)
    assert sites["family"] == "llama" and sites["sites"]["down_in"] == "model.layers.{i}.mlp.down_proj"


def test_user_errors_are_one_line(capsys, tmp_path, tiny_rm, pairs_file):
    mag = tmp_path / "mag.npz"
    rc, _, err = _run(capsys, "neurons", "score", "--rm", tiny_rm, "--data", pairs_file, "--max-pairs", "2",
                      "--out", mag)
    assert rc == 0, err
    cases = [
        (("neurons", "select", "--scores", mag, "--method", "change", "--out", tmp_path / "x.json"),
         "change score needs statistics recorded with the base model"),
        (("neurons", "select", "--scores", tmp_path / "none.npz", "--out", tmp_path / "x.json"), "does not exist"),
        (("neurons", "score", "--rm", tmp_path, "--data", pairs_file, "--out", tmp_path / "y.npz"),
         "not a reward-model folder"),
        (("neurons", "score", "--rm", tiny_rm, "--data", "no-such-source", "--out", tmp_path / "y.npz"),
         "unknown data source"),
    ]
    (tmp_path / "bad.json").write_text(json.dumps({"layers": 2, "neurons_per_layer": 192, "neurons": {"5": [1]}}))
    cases.append((("neurons", "compare", tmp_path / "bad.json", tmp_path / "bad.json"), "layer 5 out of range"))
    for argv, msg in cases:
        rc, out, err = _run(capsys, *argv)
        assert rc == 2 and msg in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("sub", ["score", "select", "compare", "combine", "random-like", "show", "sites"])
def test_every_command_has_help(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        main(["neurons", sub, "--help"])
    assert exc.value.code == 0
    assert "usage: rmtension neurons " + sub in capsys.readouterr().out


def test_score_real_hh_harmless_pairs(capsys, tmp_path, data_dir, tiny_rm):
    out = tmp_path / "hh.npz"
    s = _json(capsys, "neurons", "score", "--rm", tiny_rm, "--data", "hh-rlhf:harmless-base@test",
              "--data-dir", data_dir, "--max-pairs", "8", "--method", "prob", "--batch-size", "4", "--out", out)
    assert s["pairs"] == 8 and s["texts"] == {"chosen": 8, "rejected": 8}
    assert s["tokens"]["chosen"] > 8 * 50  # real multi-turn dialogues (byte-level tokens)
    stats, scores = load_stats(out)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert stats.meta["data_files"] and "harmless-base" in stats.meta["data_files"][0]
    sel = _json(capsys, "neurons", "select", "--scores", out, "--top-percent", "10", "--out", tmp_path / "n.json")
    assert sel["selected"] == 38
