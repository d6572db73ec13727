"""Ablation (stage 5): the context manager, its modes, the shared-work sweep, and the commands.

Every family (GPT-2, Llama, Gemma 3, BERT) is checked on its tiny random model. Texts are real
HH-RLHF dialogues rendered with the RM template; long ones are cut to a few dozen tokens so
each test takes seconds on a busy 2-core machine.
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch

from rmtension.ablation import (
    ablate, ablation_from_file, apply_ablation, load_means, prepare, random_like, score_sweep, sweep,
)
from rmtension.bench.types import METRIC_PAIRWISE, Benchmark, BenchItem
from rmtension.cli.main import main
from rmtension.errors import RmtensionError
from rmtension.evaluation.evaluate import evaluate, read_items, read_results
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.neurons.sets import NeuronSet
from rmtension.neurons.setfile import save_set
from rmtension.neurons.sites import hook_sites, model_sites

FAMILIES = ("tiny-gpt2", "tiny-llama", "tiny-gemma", "tiny-bert")
CFG = ScorerConfig(batch_size=4, max_length=48, progress=False)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, oversubscribed CPU two spinning threads are 10-20× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_MODELS: dict[str, tuple] = {}


def _rm(name: str):
    """An RM on a tiny backbone with every weight nudged (a stand-in for a trained one), cached per module."""
    if name not in _MODELS:
        from rmtension.models.reward_model import build_reward_model

        model, tok = build_reward_model(name, seed=0)
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        _MODELS[name] = (model.eval(), tok)
    return _MODELS[name]


@pytest.fixture(scope="module")
def hh_pairs(data_dir) -> list:
    from rmtension.data.sources import load_preferences

    return load_preferences("hh-rlhf:harmless-base@test", data_dir).pairs[:5]


@pytest.fixture(scope="module")
def hh_texts(hh_pairs) -> list[str]:
    from rmtension.models.formatting import format_for_rm

    _model, tok = _rm("tiny-llama")
    return [format_for_rm(p.prompt, r, tok, "hh") for p in hh_pairs for r in (p.chosen, p.rejected)]


def _set(ms, layers: dict[int, list[int]], site: str = "act") -> NeuronSet:
    return NeuronSet.from_indices(ms.n_layers, ms.n_neurons, layers, {"site": site})


def _scores(model, tok, texts) -> np.ndarray:
    return RewardScorer(model, tok, CFG).score(texts)


def _no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and "forward" not in m.__dict__ for m in model.modules())


# ----------------------------------------------------------------------------- the context manager


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("site", ("act", "down_in"))
def test_zeroing_a_whole_layer_equals_zeroing_its_down_projection(name, site, hh_texts):
    """All neurons of layer i zeroed == down-projection weight of layer i zeroed (bias kept).

    Why that is "removing the MLP's output": the MLP writes down(a) = W·a + b into the residual
    stream; with every a_j = 0 that is exactly b — the same as W = 0 — whatever the activation
    function, gate or up projection computed. For the bias-free gated families (Llama, Gemma) b
    is absent, so the MLP's output is zero; a third check replaces the down module's output by
    its bias (or zeros) with a plain forward hook.
    """
    model, tok = _rm(name)
    ms = model_sites(model)
    layer = ms.n_layers - 1 if name != "tiny-gemma" else 1
    full = _set(ms, {layer: list(range(ms.n_neurons))}, site)
    with ablate(model, full):
        ablated = _scores(model, tok, hh_texts)
    surgery = copy.deepcopy(model)
    down, _ = model_sites(surgery).hook_module(layer, "down_in")
    with torch.no_grad():
        down.weight.zero_()
    expected = _scores(surgery, tok, hh_texts)
    np.testing.assert_allclose(ablated, expected, rtol=1e-5, atol=1e-6)

    down0, _ = ms.hook_module(layer, "down_in")
    bias = getattr(down0, "bias", None)
    handle = down0.register_forward_hook(lambda m, a, out: torch.zeros_like(out) + (0 if bias is None else bias))
    try:
        removed = _scores(model, tok, hh_texts)
    finally:
        handle.remove()
    np.testing.assert_allclose(ablated, removed, rtol=1e-5, atol=1e-6)
    assert np.abs(ablated - _scores(model, tok, hh_texts)).max() > 1e-6  # the ablation did something


@pytest.mark.parametrize("name", FAMILIES)
def test_empty_set_changes_nothing_bit_for_bit(name, hh_texts):
    model, tok = _rm(name)
    ms = model_sites(model)
    before = _scores(model, tok, hh_texts)
    with ablate(model, NeuronSet.empty(ms.n_layers, ms.n_neurons)) as ab:
        assert ab.layers == [] and ab.first_layer is None
        assert _no_hooks(model)  # nothing installed at all
        during = _scores(model, tok, hh_texts)
    assert np.array_equal(before, during)


def test_hooks_removed_after_block_and_after_error(hh_texts):
    model, tok = _rm("tiny-llama")
    ms = model_sites(model)
    s = _set(ms, {0: [1, 2, 3], 1: [4]})
    plain = _scores(model, tok, hh_texts)
    with ablate(model, s):
        assert not _no_hooks(model)
        changed = _scores(model, tok, hh_texts)
    assert _no_hooks(model)
    assert not np.array_equal(plain, changed)
    with pytest.raises(ZeroDivisionError), ablate(model, s):
        _ = 1 / 0
    assert _no_hooks(model)
    assert np.array_equal(plain, _scores(model, tok, hh_texts))


def _record(model, site, layer):
    got = {}

    def fn(i, a):
        if i == layer:
            got["a"] = a.detach().clone()

    return got, hook_sites(model, site, fn, layers=[layer])


@pytest.mark.parametrize("site", ("act", "down_in"))
def test_mean_and_scale_modes_do_what_they_say(site, hh_texts):
    """At the first ablated layer, chosen neurons become μ_j (mean) or factor·a_j (scale); others stay bit-equal."""
    model, tok = _rm("tiny-llama")
    ms = model_sites(model)
    sel = [0, 5, 17]
    s = _set(ms, {1: sel}, site)
    means = np.random.default_rng(0).normal(size=(ms.n_layers, ms.n_neurons))
    ids = tok(hh_texts[:2], return_tensors="pt", padding=True, truncation=True, max_length=32)
    got0, rec0 = _record(model, site, 1)
    with torch.no_grad(), rec0:
        model(**ids)
    original = got0["a"]
    for mode, kw in (("mean", {"means": means}), ("scale", {"factor": 0.25}), ("zero", {})):
        got, rec = _record(model, site, 1)
        with torch.no_grad(), ablate(model, s, mode, **kw), rec:  # recorder after the ablation hook sees its output
            model(**ids)
        a = got["a"]
        keep = [j for j in range(ms.n_neurons) if j not in sel]
        assert torch.equal(a[..., keep], original[..., keep])
        if mode == "mean":
            expect = torch.tensor(means[1, sel], dtype=a.dtype).expand_as(a[..., sel])
        elif mode == "scale":
            expect = original[..., sel] * 0.25
        else:
            expect = torch.zeros_like(a[..., sel])
        torch.testing.assert_close(a[..., sel], expect, rtol=0, atol=0)


def test_validation_errors_are_one_line(tmp_path):
    model, _tok = _rm("tiny-llama")
    ms = model_sites(model)
    cases = [
        (NeuronSet.empty(ms.n_layers + 1, ms.n_neurons), {}, "layers"),
        (NeuronSet.empty(ms.n_layers, ms.n_neurons + 3), {}, "another backbone"),
        (_set(ms, {0: [1]}, "down_in"), {"site": "act"}, "site"),
        (_set(ms, {0: [1]}), {"mode": "mean"}, "--means"),
        (_set(ms, {0: [1]}), {"mode": "scale"}, "factor"),
        (_set(ms, {0: [1]}), {"mode": "zero", "factor": 0.5}, "factor"),
        (_set(ms, {0: [1]}), {"mode": "drop"}, "unknown ablation mode"),
        (_set(ms, {0: [1]}), {"mode": "mean", "means": np.zeros((1, 2))}, "shape"),
        (NeuronSet(np.zeros((ms.n_layers, ms.n_neurons), bool), {"site": "act+down_in"}), {}, "one site"),
    ]
    for s, kw, needle in cases:
        with pytest.raises(RmtensionError) as err:
            prepare(model, s, **kw)
        msg = str(err.value)
        assert needle in msg and "\n" not in msg, msg
    assert _no_hooks(model)


def test_random_like_is_one_call_and_size_matched():
    model, _tok = _rm("tiny-gemma")
    ms = model_sites(model)
    s = _set(ms, {0: [1, 2], 2: [3, 4, 5]})
    r = random_like(s, seed=3)  # same count per layer by default
    assert r.per_layer() == s.per_layer() and not np.array_equal(r.mask, s.mask)
    t = random_like(s, seed=3, match="total")
    assert len(t) == len(s)
    assert prepare(model, r).count == len(s)


# ----------------------------------------------------------------------------- sweeps


def _sweep_sets(ms):
    """Sets starting at every layer, in all modes, with a duplicate and an empty set."""
    rng = np.random.default_rng(1)
    L, N = ms.n_layers, ms.n_neurons
    means = rng.normal(size=(L, N))
    out = []
    for start in range(L):
        mask = np.zeros((L, N), bool)
        mask[start:, rng.choice(N, N // 4, replace=False)] = True
        s = NeuronSet(mask, {"site": "act"})
        out.append(prepare(ms, s, name=f"zero-from-{start}"))
        out.append(prepare(ms, s, "mean", means=means, name=f"mean-from-{start}"))
        out.append(prepare(ms, s, "scale", factor=1.7, name=f"scale-from-{start}"))
    out.append(prepare(ms, NeuronSet(out[0].neurons.mask.copy(), {"site": "act"}), name="duplicate"))
    out.append(prepare(ms, NeuronSet.empty(L, N), name="empty"))
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_shared_sweep_equals_separate_runs(name, hh_texts):
    model, tok = _rm(name)
    ms = model_sites(model)
    ablations = _sweep_sets(ms)
    scorer = RewardScorer(model, tok, CFG)
    base, per_set, stats = score_sweep(scorer, hh_texts, ablations)
    assert stats.fallbacks == {}
    assert stats.starts["zero-from-1"] == 1 and stats.starts["empty"] is None
    assert stats.computed == len(ablations) - 2  # the duplicate and the empty set cost nothing
    assert stats.work_ratio < 1.0
    assert np.array_equal(base, _scores(model, tok, hh_texts))
    for ab, got in zip(ablations, per_set):
        with apply_ablation(model, ab):
            want = _scores(model, tok, hh_texts)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=ab.name)
    assert _no_hooks(model)
    assert np.array_equal(per_set[-1], base)


def test_sweep_falls_back_where_layers_cannot_be_resumed(hh_texts):
    """A model that changes hidden states between layers (here: a pre-hook scaling layer 1's input)."""
    model, tok = _rm("tiny-llama")
    ms = model_sites(model)
    quirk = ms.layers[1].register_forward_pre_hook(lambda m, args: (args[0] * 1.5, *args[1:]))
    try:
        ab = prepare(ms, _set(ms, {1: [0, 1, 2]}), name="late")
        base, (got,), stats = score_sweep(RewardScorer(model, tok, CFG), hh_texts, [ab])
        assert 1 in stats.fallbacks and stats.starts["late"] == 0
        with apply_ablation(model, ab):
            want = _scores(model, tok, hh_texts)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    finally:
        quirk.remove()


def test_sweep_results_have_the_eval_contract_and_deltas(hh_pairs):
    model, tok = _rm("tiny-gpt2")
    ms = model_sites(model)
    items = [BenchItem(id=str(i), subset="hh" if i < 3 else "other", group="harmless" if i < 3 else "helpful",
                       prompt=p.prompt, chosen=(p.chosen,), rejected=(p.rejected,)) for i, p in enumerate(hh_pairs)]
    bench = Benchmark("mini", items, METRIC_PAIRWISE)
    ab = prepare(ms, _set(ms, {1: list(range(40))}), name="late40")
    res = sweep(model, tok, [bench], [ab], template="hh", scorer_config=CFG)
    ref = evaluate(model, tok, [bench], template="hh", scorer_config=CFG)
    assert res.baseline.results["benchmarks"] == ref.results["benchmarks"]
    with apply_ablation(model, ab):
        ref_ab = evaluate(model, tok, [bench], template="hh", scorer_config=CFG)
    got = res.sets[0].result
    assert got.results["benchmarks"].keys() == ref_ab.results["benchmarks"].keys()
    for a, b in zip(got.items, ref_ab.items):
        np.testing.assert_allclose(a["chosen_scores"] + a["rejected_scores"], b["chosen_scores"] + b["rejected_scores"],
                                   rtol=1e-6, atol=1e-6)
    d = got.results["delta_vs_baseline"]["mini"]
    base_sub = res.baseline.results["benchmarks"]["mini"]["subsets"]
    for sub, v in got.results["benchmarks"]["mini"]["subsets"].items():
        assert d["subsets"][sub] == pytest.approx(v["score"] - base_sub[sub]["score"])
    assert got.results["ablation"]["start_layer"] == 1 and got.results["ablation"]["count"] == 40


# ----------------------------------------------------------------------------- commands


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def saved_rm(tmp_path_factory) -> str:
    from rmtension.models.reward_model import save_reward_model

    model, tok = _rm("tiny-llama")
    out = tmp_path_factory.mktemp("rm") / "tiny-llama-mixed-s0"
    # The split is what `rmtension train` records; hh-heldout is carved with it (an RM without one is refused).
    save_reward_model(model, tok, out, {"backbone": "tiny-llama", "seed": 0, "objective": "mixed", "template": "hh",
                                        "split": {"heldout_fraction": 0.2, "salt": "rmtension-split-v1"}})
    return str(out)


COMMON = ("--max-items", "2", "--max-length", "48", "--batch-size", "8", "--no-progress")


def test_eval_ablate_and_ablate_sweep_end_to_end(capsys, tmp_path, saved_rm, data_dir):
    model, _tok = _rm("tiny-llama")
    ms = model_sites(model)
    set_file = save_set(tmp_path / "late.json", _set(ms, {1: list(range(0, ms.n_neurons, 3))}))
    rc, _out, err = _run(capsys, "eval", "--rm", saved_rm, "--bench", "hh-heldout", "--bench", "rm-bench:chat",
                         "--ablate", set_file, "--out", tmp_path / "eval", "--data-dir", data_dir, *COMMON)
    assert rc == 0, err
    ev = read_results(tmp_path / "eval")
    assert ev["ablation"]["count"] == len(range(0, ms.n_neurons, 3)) and ev["ablation"]["mode"] == "zero"
    assert ev["ablation"]["file"] == str(set_file)
    # the other modes reach eval too: scaling by 0 is zeroing, scaling by 1 changes nothing
    for factor in ("0", "1"):
        rc, _out, err = _run(capsys, "eval", "--rm", saved_rm, "--bench", "hh-heldout", "--bench", "rm-bench:chat",
                             "--ablate", set_file, "--mode", "scale", "--factor", factor,
                             "--out", tmp_path / f"eval-x{factor}", "--data-dir", data_dir, *COMMON)
        assert rc == 0, err
        assert read_results(tmp_path / f"eval-x{factor}")["ablation"]["mode"] == "scale"
    flat = lambda d: np.array([s for r in read_items(d) for s in r["chosen_scores"] + r["rejected_scores"]])  # noqa: E731
    np.testing.assert_allclose(flat(tmp_path / "eval-x0"), flat(tmp_path / "eval"), rtol=1e-6, atol=1e-6)
    plain = tmp_path / "eval-plain"
    assert _run(capsys, "eval", "--rm", saved_rm, "--bench", "hh-heldout", "--bench", "rm-bench:chat",
                "--out", plain, "--data-dir", data_dir, *COMMON)[0] == 0
    np.testing.assert_allclose(flat(tmp_path / "eval-x1"), flat(plain), rtol=1e-6, atol=1e-6)
    assert not np.allclose(flat(tmp_path / "eval"), flat(plain))  # the set does change the scores

    rc, out, err = _run(capsys, "ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--bench", "rm-bench:chat",
                        "--sets", set_file, "--random-like", set_file, "--seeds", "0,1",  # the old spelling of --seed
                        "--out", tmp_path / "sweep", "--data-dir", data_dir, *COMMON)
    assert rc == 0, err
    sw = tmp_path / "sweep"
    summary = json.loads((sw / "sweep.json").read_text())
    names = [s["name"] for s in summary["sets"]]
    assert names == ["late", "late~random-per-layer-s0", "late~random-per-layer-s1"]
    assert summary["sharing"]["starts"]["late"] == 1
    # the sweep's set equals `eval --ablate` on the same items
    mine = read_items(sw / "sets" / "late")
    for a, b in zip(mine, read_items(tmp_path / "eval")):
        assert (a["id"], a["subset"]) == (b["id"], b["subset"])
        np.testing.assert_allclose(a["chosen_scores"] + a["rejected_scores"], b["chosen_scores"] + b["rejected_scores"],
                                   rtol=1e-6, atol=1e-6)
    base = read_results(sw / "baseline")
    assert base["ablation"] is None and set(base["benchmarks"]) == {"hh-heldout", "rm-bench:chat"}
    rows = list(csv.DictReader((sw / "sweep.csv").open()))
    assert {r["set"] for r in rows} == set(names)
    r = next(r for r in rows if r["set"] == "late" and r["level"] == "subset" and r["name"] == "chat")
    assert float(r["delta"]) == pytest.approx(float(r["score"]) - float(r["baseline"]))
    assert "late" in out and "work ratio" in out


def test_ablate_curve_mode_and_mean_mode(capsys, tmp_path, saved_rm, data_dir):
    scores = tmp_path / "scores.npz"
    rc, _o, err = _run(capsys, "neurons", "score", "--rm", saved_rm, "--data", "hh-rlhf:harmless-base@test",
                       "--data-dir", data_dir, "--max-pairs", "4", "--max-length", "48", "--out", scores)
    assert rc == 0, err
    rc, out, err = _run(capsys, "ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--scores", scores,
                        "--top-percent", "0,10,30", "--methods", "magnitude,random", "--seed", "5", "--mode", "mean",
                        "--means", scores, "--out", tmp_path / "curve", "--data-dir", data_dir, "--json", *COMMON)
    assert rc == 0, err
    info = json.loads(out)
    assert info["sets"] == 6
    summary = json.loads((tmp_path / "curve" / "sweep.json").read_text())
    by = {s["name"]: s for s in summary["sets"]}
    assert set(by) == {"magnitude-k0", "magnitude-k10", "magnitude-k30", "random-k0-s5", "random-k10-s5",
                       "random-k30-s5"}
    assert by["magnitude-k0"]["count"] == 0 and summary["sharing"]["starts"]["magnitude-k0"] is None
    assert by["magnitude-k0"]["delta"]["hh-heldout"]["groups"]["harmless"] == 0.0  # k = 0 is the baseline
    assert by["magnitude-k10"]["count"] == by["random-k10-s5"]["count"] > 0
    assert by["magnitude-k30"]["mode"] == "mean"
    means, src = load_means(scores, "act")
    assert src["site"] == "act" and means.shape == (2, model_sites(_rm("tiny-llama")[0]).n_neurons)


def test_cli_user_errors_are_one_line(capsys, tmp_path, saved_rm, data_dir):
    bad = save_set(tmp_path / "gpt2-shaped.json", NeuronSet.empty(5, 7))
    for argv in (
        ("eval", "--rm", saved_rm, "--bench", "hh-heldout", "--ablate", bad, "--out", tmp_path / "e"),
        ("eval", "--rm", saved_rm, "--bench", "hh-heldout", "--mode", "scale", "--factor", "0", "--out", tmp_path / "e"),
        ("ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--sets", bad, "--out", tmp_path / "a"),
        ("ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--out", tmp_path / "a"),
        ("ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--sets", tmp_path / "missing.json", "--out", tmp_path / "a"),
    ):
        rc, _out, err = _run(capsys, *argv, "--data-dir", data_dir, *COMMON)
        assert rc == 2
        # (transformers' own weight-loading progress bar may precede it on stderr)
        errors = [ln for ln in err.splitlines() if ln.startswith("rmtension: error:")]
        assert len(errors) == 1 and "Traceback" not in err, err


def test_ablate_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ablate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--sets", "--random-like", "--scores", "--top-percent", "--match", "--seed", "--mode", "--means",
                 "--factor"):
        assert flag in out


def test_ablation_from_file_validates_before_scoring(tmp_path):
    model, _tok = _rm("tiny-bert")
    ms = model_sites(model)
    f = save_set(tmp_path / "s.json", _set(ms, {0: [1]}))
    ctx, meta = ablation_from_file(model, f, mode="scale", factor=2.0)
    assert _no_hooks(model)  # nothing installed until the block is entered
    assert meta["mode"] == "scale" and meta["factor"] == 2.0 and meta["per_layer"] == [1, 0]
    with ctx:
        assert not _no_hooks(model)
    assert _no_hooks(model)
