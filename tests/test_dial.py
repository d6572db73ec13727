"""The tension dial: the trade-off verdict on constructed data, the dial on a tiny RM, the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmtension.analysis.tradeoff import tradeoff_verdict
from rmtension.cli.main import main


def _pt(help_acc: float, harm_acc: float, half: float | None = 0.02, factor: float | None = None) -> dict:
    p: dict = {"groups": {"helpful": help_acc, "harmless": harm_acc}}
    if half is not None:
        p["groups_ci95"] = {"helpful": {"low": help_acc - half, "high": help_acc + half},
                            "harmless": {"low": harm_acc - half, "high": harm_acc + half}}
    if factor is not None:
        p["factor"] = factor
    return p


H, A = _pt(0.80, 0.50), _pt(0.60, 0.70)  # the helpful RM is better at helpful, the harmless RM at harmless


def test_tradeoff_geometry_weights_and_position():
    v = tradeoff_verdict(H, A, [_pt(0.70, 0.60, factor=1.0)])  # the midpoint of the segment
    w = v["weights"]
    assert w["helpful"] == pytest.approx(0.5) and w["harmless"] == pytest.approx(0.5)  # the two RMs tie at 0.65
    row = v["points"][0]
    assert row["delta"] == pytest.approx(0.0, abs=1e-12) and row["t"] == pytest.approx(0.5)
    assert row["verdict"] == "undetermined" and v["verdict"] == "undetermined"
    far = tradeoff_verdict(H, A, [_pt(0.75, 0.70, factor=2.0)])["points"][0]
    assert far["delta"] == pytest.approx(0.5 * 0.75 + 0.5 * 0.70 - 0.65)


def test_each_verdict():
    beyond = tradeoff_verdict(H, A, [_pt(0.70, 0.60, factor=1.0), _pt(0.80, 0.72, factor=1.5)])
    assert [r["verdict"] for r in beyond["points"]] == ["undetermined", "beyond"]
    assert beyond["verdict"] == "beyond" and "1.5" in beyond["reason"]
    short = tradeoff_verdict(H, A, [_pt(0.60, 0.50, factor=0.0), _pt(0.62, 0.52, factor=1.0)])
    assert short["verdict"] == "short" and all(r["high"] < 0 for r in short["points"])
    mixed = tradeoff_verdict(H, A, [_pt(0.60, 0.50, factor=0.0), _pt(0.70, 0.61, factor=1.0)])
    assert mixed["verdict"] == "undetermined"
    no_trade = tradeoff_verdict(_pt(0.80, 0.75), _pt(0.60, 0.70), [_pt(0.90, 0.90, factor=1.0)])
    assert no_trade["verdict"] == "no-tradeoff"  # the helpful RM is better at both: there is no segment to beat
    no_iv = tradeoff_verdict(H, A, [_pt(0.9, 0.9, half=None, factor=1.0)])
    assert no_iv["verdict"] == "no-interval" and no_iv["points"][0]["low"] is None
    assert tradeoff_verdict(H, H, [_pt(0.7, 0.6, factor=1.0)])["verdict"] == "degenerate"


def test_intervals_are_simultaneous_over_factors_and_widen_with_noise():
    one = tradeoff_verdict(H, A, [_pt(0.72, 0.64, factor=1.0)])["points"][0]
    many = tradeoff_verdict(H, A, [_pt(0.72, 0.64, factor=f) for f in (0.0, 0.5, 1.0, 1.5, 2.0)])["points"][2]
    assert many["delta"] == pytest.approx(one["delta"])
    assert (many["high"] - many["low"]) > (one["high"] - one["low"])  # Bonferroni over 5 factors
    noisy = tradeoff_verdict(_pt(0.8, 0.5, 0.1), _pt(0.6, 0.7, 0.1), [_pt(0.72, 0.64, 0.1, 1.0)])["points"][0]
    assert (noisy["high"] - noisy["low"]) > (one["high"] - one["low"])
    # a point exactly 1.96 standard errors beyond, with only its own error, is the boundary of "beyond"
    exact = tradeoff_verdict(_pt(0.8, 0.5, 0.0), _pt(0.6, 0.7, 0.0), [_pt(0.75, 0.70, 0.02, 1.0)])["points"][0]
    se = 0.02 / 1.959963984540054
    assert exact["high"] - exact["low"] == pytest.approx(2 * 1.959963984540054 * se * np.sqrt(0.5), rel=1e-9)


# ----------------------------------------------------------------------------- the dial on a tiny RM

COMMON = ("--max-items", "3", "--max-length", "64", "--batch-size", "4", "--no-progress")


def _nudged(name: str, seed: int):
    from rmtension.models.reward_model import build_reward_model

    model, tok = build_reward_model(name, seed=0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval(), tok


@pytest.fixture(scope="module")
def rms(tmp_path_factory) -> dict[str, str]:
    from rmtension.models.reward_model import save_reward_model

    out = {}
    for k, objective in enumerate(("mixed", "helpful", "harmless")):
        model, tok = _nudged("tiny-llama", 20 + k)
        d = tmp_path_factory.mktemp("rm") / f"tiny-llama-{objective}-s0"
        save_reward_model(model, tok, d, {"backbone": "tiny-llama", "seed": 0, "objective": objective, "template": "hh",
                                          "split": {"heldout_fraction": 0.2, "salt": "rmtension-split-v1"}})
        out[objective] = str(d)
    return out


def _set_file(tmp_path, rm_dir: str):
    from rmtension.models.reward_model import load_reward_model
    from rmtension.neurons.setfile import save_set
    from rmtension.neurons.sets import NeuronSet
    from rmtension.neurons.sites import model_sites

    model, _tok, _info = load_reward_model(rm_dir)
    ms = model_sites(model)
    s = NeuronSet.from_indices(ms.n_layers, ms.n_neurons, {0: list(range(0, ms.n_neurons, 4)), 1: [1, 2, 3]},
                               {"site": "act", "method": "magnitude"})
    return save_set(tmp_path / "shared.json", s), s


def test_run_dial_factor_one_is_the_unablated_rm_and_zero_is_the_ablation(tmp_path, rms, data_dir):
    from rmtension.ablation.ablate import ablate
    from rmtension.ablation.dial import run_dial
    from rmtension.bench.loaders import load_benchmark, rm_heldout_split, subsample
    from rmtension.evaluation.evaluate import evaluate
    from rmtension.evaluation.scorer import ScorerConfig
    from rmtension.models.reward_model import load_reward_model

    _f, s = _set_file(tmp_path, rms["mixed"])
    model, tok, _info = load_reward_model(rms["mixed"])
    benches = [subsample(load_benchmark("hh-heldout", str(data_dir), rm_heldout_split(rms["mixed"], ["hh-heldout"])), 3)]
    cfg = ScorerConfig(batch_size=4, max_length=64, progress=False)
    run = run_dial(model, tok, benches, s, [0.0, 1.0, 2.0], scorer_config=cfg)
    d = run.dial
    assert d["factors"] == [0.0, 1.0, 2.0] and [p["factor"] for p in d["points"]] == d["factors"]
    assert d["factor_one_exact"] is True
    plain = evaluate(model, tok, benches, scorer_config=cfg)
    one = d["points"][1]
    assert one["groups"] == plain.results["groups"] and one["groups_ci95"] == plain.results["groups_ci95"]
    assert [r["chosen_scores"] for r in run.sweep.sets[1].result.items] == [r["chosen_scores"] for r in plain.items]
    with ablate(model, s, "zero"):
        zero = evaluate(model, tok, benches, scorer_config=cfg)
    np.testing.assert_allclose([x for r in run.sweep.sets[0].result.items for x in r["chosen_scores"] + r["rejected_scores"]],
                               [x for r in zero.items for x in r["chosen_scores"] + r["rejected_scores"]], rtol=1e-6, atol=1e-6)
    two = [x for r in run.sweep.sets[2].result.items for x in r["chosen_scores"]]
    assert not np.allclose(two, [x for r in plain.items for x in r["chosen_scores"]])  # the dial does turn
    assert {"helpful", "harmless"} <= set(one["groups"]) and "tradeoff" not in d


def test_dial_command_writes_dial_json_in_the_issue_shape(capsys, tmp_path, rms, data_dir):
    f, _s = _set_file(tmp_path, rms["mixed"])
    out = tmp_path / "dial"
    rc = main([str(a) for a in ("dial", "--rm", rms["mixed"], "--set", f, "--factors", "0,0.5,1,1.5,2",
                                "--bench", "hh-heldout", "--helpful-rm", rms["helpful"], "--harmless-rm", rms["harmless"],
                                "--out", out, "--data-dir", data_dir, *COMMON, "--json")])
    printed, err = capsys.readouterr()
    assert rc == 0, err
    assert json.loads(printed)["factor_one_exact"] is True
    d = json.loads((out / "dial.json").read_text())
    assert d["factors"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    for p, f_ in zip(d["points"], d["factors"]):
        assert p["factor"] == f_ and set(p["groups"]) >= {"helpful", "harmless"}
        assert set(p["groups_ci95"]) >= {"helpful", "harmless"}
        assert p["groups_ci95"]["helpful"]["low"] <= p["groups"]["helpful"] <= p["groups_ci95"]["helpful"]["high"]
    assert set(d["references"]) == {"helpful", "harmless"}
    assert d["tradeoff"]["verdict"] in ("beyond", "short", "undetermined", "no-tradeoff", "degenerate")
    assert len(d["tradeoff"]["points"]) in (0, 5)
    assert (out / "tradeoff.png").stat().st_size > 1000
    assert (out / "sets" / "x1" / "results.json").is_file() and (out / "references" / "helpful" / "results.json").is_file()
    # one reference RM alone is refused (a one-line error)
    rc = main([str(a) for a in ("dial", "--rm", rms["mixed"], "--set", f, "--bench", "hh-heldout", "--helpful-rm",
                                rms["helpful"], "--out", tmp_path / "d2", "--data-dir", data_dir, *COMMON)])
    assert rc == 2 and "both reference RMs" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the study's optional section


def test_the_dial_section_is_off_by_default_and_adds_steps_without_changing_keys():
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import build_plan

    off = build_plan(config_from_dict({}), "/x")
    on = build_plan(config_from_dict({"dial": {"enabled": True, "sets": ["shared", "helpful-only"]}}), "/x")
    keys_off = {(s.kind, s.name): s.key for s in off.steps}
    keys_on = {(s.kind, s.name): s.key for s in on.steps}
    assert not any(kind == "dial" for kind, _ in keys_off) and not off.dial
    added = {k: v for k, v in keys_on.items() if k not in keys_off}
    assert [kind for kind, _ in added] == ["dial"] and len(on.dial) == 1
    assert {k: keys_on[k] for k in keys_off} == keys_off  # every existing step keeps its key
    with pytest.raises(Exception, match="dial.sets"):
        config_from_dict({"dial": {"sets": ["own"]}})
    with pytest.raises(Exception, match="dial.factors"):
        config_from_dict({"dial": {"enabled": True, "factors": [1, 1]}})


@pytest.mark.slow
def test_tiny_study_with_attribution_and_a_dial_reports_the_tradeoff(tmp_path, data_dir):
    import yaml

    cfg = {
        "name": "dial", "backbones": ["tiny-gpt2"], "seeds": [0],
        "training": {"preset": "cpu", "overrides": {"max_pairs": 16, "batch_size": 8, "max_length": 128, "bf16": False,
                                                    "heldout_max_pairs": 8, "lr": 1e-3}},
        "evaluation": {"benchmarks": ["hh-heldout"], "max_items": 4, "max_length": 128},
        "neurons": {"max_pairs": 6, "max_length": 128, "methods": ["magnitude", "attribution", "random"],
                    "length_correlation": False},
        "ablation": {"method": "attribution", "benchmarks": ["hh-heldout"], "max_items": 3,
                     "curves": {"k": [0, 10], "methods": ["attribution", "magnitude"], "benchmarks": ["hh-heldout"],
                                "max_items": 3}},
        "dial": {"enabled": True, "sets": ["shared", "harmless-only"], "factors": [0, 1, 2], "max_items": 3},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "study"
    assert main(["run", str(path), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {r["set"] for r in summary["dial"]} == {"shared", "harmless-only"}
    for r in summary["dial"]:
        assert r["dial"]["factors"] == [0.0, 1.0, 2.0] and r["dial"]["factor_one_exact"] is True
        assert "verdict" in r["dial"]["tradeoff"]
    assert any(e["method"] == "attribution" for e in summary["neurons"])
    report = (out / "report" / "report.md").read_text()
    assert "tension dial" in report.lower()
    assert list((out / "report" / "figures").glob("dial_tradeoff_*.png"))


def test_with_references_adds_the_points_and_the_verdict():
    from rmtension.analysis.tradeoff import with_references

    dial = {"factors": [0.0, 1.0], "points": [_pt(0.6, 0.5, factor=0.0), _pt(0.8, 0.72, factor=1.0)]}
    out = with_references(dial, {"helpful": {**H, "benchmarks": {}}, "harmless": {**A, "benchmarks": {}}})
    assert out["references"]["helpful"]["groups"] == H["groups"] and out["tradeoff"]["verdict"] == "beyond"
    assert "tradeoff" not in dial  # the input is not changed
    broken = with_references(dial, {"helpful": {"groups": {"helpful": 0.7}}, "harmless": A})
    assert broken["tradeoff"]["verdict"] == "unavailable"
    with pytest.raises(Exception, match="both reference RMs"):
        with_references(dial, {"helpful": H})
