"""Attribution scores (activation × gradient of the pair margin) on tiny random RMs and real HH pairs.

What must hold, and why each check would fail on a wrong implementation:
- first order: a neuron's attribution equals the finite-difference change of the margin when the
  neuron is scaled by (1 − ε) — through the ablation code's own scale mode for ``tokens="all"``,
  and through a hook that scales only the response tokens for ``tokens="response"`` (a wrong sign,
  a missing token, a gradient of the wrong text or a prompt token counted would all show);
- integrated gradients are complete: the attributions of all neurons add up to the margin change
  of zeroing every neuron on the response tokens;
- the totals do not depend on batch size, chunking or shared-prompt packing (streaming is exact);
- the score methods, the file format and the CLI path carry the sums unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmtension.ablation.ablate import apply_ablation, prepare
from rmtension.cli.main import main
from rmtension.evaluation.scorer import RewardScorer, ScorerConfig
from rmtension.models.encoding import encode
from rmtension.models.formatting import format_for_rm
from rmtension.models.reward_model import build_reward_model
from rmtension.models.encoding import common_prefix
from rmtension.neurons.attribution import collect_attribution
from rmtension.neurons.scores import compute_scores, needs_attribution
from rmtension.neurons.sets import NeuronSet
from rmtension.neurons.sites import hook_sites, model_sites
from rmtension.neurons.stats import load_stats, save_stats

_MODELS: dict[str, tuple] = {}


def _rm(name: str, double: bool = True):
    """A tiny RM with every weight nudged (a stand-in for a trained one); float64 for exact finite differences."""
    key = f"{name}/{double}"
    if key not in _MODELS:
        model, tok = build_reward_model(name, seed=0)
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        if double:
            model = model.double()
        _MODELS[key] = (model.eval(), tok)
    return _MODELS[key]


@pytest.fixture(scope="module")
def hh(data_dir) -> list:
    """The shortest real HH harmless-base test pairs (short texts keep the tiny byte-level models fast)."""
    from rmtension.data.sources import load_preferences

    pairs = load_preferences("hh-rlhf:harmless-base@test", data_dir).pairs[:40]
    return sorted(pairs, key=lambda p: len(p.chosen) + len(p.rejected) + len(str(p.prompt)))[:4]


def _texts(pairs, tok) -> list[tuple[str, str]]:
    return [(format_for_rm(p.prompt, p.chosen, tok, "hh"), format_for_rm(p.prompt, p.rejected, tok, "hh")) for p in pairs]


def _scorer(model, tok, batch_size: int = 4, shared: bool = False) -> RewardScorer:
    return RewardScorer(model, tok, ScorerConfig(batch_size=batch_size, max_length=2048, progress=False,
                                                 shared_prompt=shared))


def _one_neuron(ms, layer: int, neuron: int) -> NeuronSet:
    return NeuronSet.from_indices(ms.n_layers, ms.n_neurons, {layer: [neuron]}, {"site": "act"})


def _top_neurons(a: np.ndarray, n: int = 3) -> list[tuple[int, int]]:
    flat = np.argsort(-np.abs(a).ravel())[:n]
    return [tuple(int(x) for x in np.unravel_index(i, a.shape)) for i in flat]  # type: ignore[misc]


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_attribution_is_the_first_order_effect_of_scaling_a_neuron_everywhere(name, hh):
    """tokens=all: A_p = dm/dg at g = 1, measured with the ablation code's scale mode (1 − ε) and (1 + ε)."""
    model, tok = _rm(name)
    pair = _texts(hh[:1], tok)
    sc = _scorer(model, tok)
    attr, scores = collect_attribution(sc, pair, tokens="all")
    a = attr.sum  # one pair: its attribution
    assert attr.pairs == 1 and np.abs(a).max() > 0
    np.testing.assert_allclose(scores[0], sc.score(list(pair[0])), rtol=1e-6)  # the scorer returns float32
    ms = model_sites(model)
    # ε = 1e-2: Llama's RMSNorm and rotary run in float32 even in a float64 model (margins carry ~1e-8 noise), so a
    # smaller ε measures noise; the O(ε) error of the one-sided quotient and the O(ε²) of the central one stay small
    eps = 1e-2
    with torch.no_grad():  # margins in float64 (the scorer rounds scores to float32)
        base = _margin(model, tok, pair[0])
        for layer, neuron in _top_neurons(a):
            margins = {}
            for f in (1 - eps, 1 + eps):
                with apply_ablation(model, prepare(ms, _one_neuron(ms, layer, neuron), "scale", factor=f)):
                    margins[f] = _margin(model, tok, pair[0])
            one_sided = (margins[1 - eps] - base) / -eps  # "remove ε of it"
            central = (margins[1 + eps] - margins[1 - eps]) / (2 * eps)
            assert one_sided == pytest.approx(a[layer, neuron], rel=5e-3)
            assert central == pytest.approx(a[layer, neuron], rel=1e-3)


def _margin(model, tok, pair, hook=None) -> float:
    """r(chosen) − r(rejected), each text run alone (no scorer): an independent path."""
    out = []
    for text in pair:
        ids = torch.tensor([encode(tok, [text])[0]])
        if hook is None:
            r = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, 0]
        else:
            with hook_sites(model, "act", hook(ids.shape[1])):
                r = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, 0]
        out.append(float(r.detach()))  # the model's own float64 logit
    return out[0] - out[1]


def _response_start(tok, pair) -> int:
    """The first token where the two texts differ, computed here (not with the module's own helper)."""
    c, r = encode(tok, list(pair))
    return next((i for i, (x, y) in enumerate(zip(c, r)) if x != y), min(len(c), len(r)))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_response_attribution_is_the_first_order_effect_on_the_response_tokens_only(name, hh):
    model, tok = _rm(name)
    pair = _texts(hh[1:2], tok)[0]
    start = _response_start(tok, pair)
    assert 10 < start < min(len(x) for x in encode(tok, list(pair)))  # a real prompt and two real responses
    attr, _ = collect_attribution(_scorer(model, tok), [pair], tokens="response")
    everywhere, _ = collect_attribution(_scorer(model, tok), [pair], tokens="all")
    assert not np.allclose(attr.sum, everywhere.sum)  # the prompt tokens' terms are really left out
    eps = 1e-2  # see the test above
    base = _margin(model, tok, pair)
    with torch.no_grad():
        for layer, neuron in _top_neurons(attr.sum):
            def scaler(_t, f):
                def fn(i, a):
                    if i != layer:
                        return None
                    a = a.clone()
                    a[:, start:, neuron] *= f
                    return a
                return fn
            up = _margin(model, tok, pair, lambda t: scaler(t, 1 + eps))
            down = _margin(model, tok, pair, lambda t: scaler(t, 1 - eps))
            assert (down - base) / -eps == pytest.approx(attr.sum[layer, neuron], rel=5e-3)
            assert (up - down) / (2 * eps) == pytest.approx(attr.sum[layer, neuron], rel=1e-3)


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4], own_token=False) == 2
    assert common_prefix([1, 2], [1, 2, 3], own_token=False) == 2
    assert common_prefix([5], [6], own_token=False) == 0 and common_prefix([], [1], own_token=False) == 0


def test_integrated_gradients_are_complete(hh):
    """Σ over all neurons of IG = m(intact) − m(every neuron zeroed on the response tokens), up to O(1/S²)."""
    model, tok = _rm("tiny-llama")
    pair = _texts(hh[2:3], tok)[0]
    start = _response_start(tok, pair)
    ig, _ = collect_attribution(_scorer(model, tok), [pair], tokens="response", ig_steps=32)
    assert ig.how() == {"tokens": "response", "ig_steps": 32}

    def zero_response(_t):
        def fn(_i, a):
            a = a.clone()
            a[:, start:, :] = 0
            return a
        return fn

    with torch.no_grad():
        gap = _margin(model, tok, pair) - _margin(model, tok, pair, zero_response)
    assert abs(gap) > 1e-3
    assert ig.sum.sum() == pytest.approx(gap, rel=2e-3, abs=1e-6)
    plain, _ = collect_attribution(_scorer(model, tok), [pair], tokens="response")
    assert not np.allclose(plain.sum, ig.sum)  # IG is a different number per neuron (a nonlinear path)


def test_totals_do_not_depend_on_batch_size_chunking_or_packing(hh):
    model, tok = _rm("tiny-llama", double=False)
    pairs = _texts(hh, tok)
    pairs = pairs + [pairs[0], (pairs[1][0], pairs[2][1])]  # a repeated pair, and texts that occur in two pairs
    one, s1 = collect_attribution(_scorer(model, tok, batch_size=1), pairs, chunk_pairs=1)
    four, s4 = collect_attribution(_scorer(model, tok, batch_size=4, shared=True), pairs, chunk_pairs=64)
    assert one.pairs == four.pairs == len(pairs)
    for m in ("sum", "abs_sum", "sq_sum"):
        ref = getattr(one, m)
        np.testing.assert_allclose(getattr(four, m), ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(s1, s4, rtol=1e-5, atol=1e-6)
    # the scores are the scorer's own (packed or not)
    np.testing.assert_allclose(s4.ravel(), _scorer(model, tok, shared=True).score([t for p in pairs for t in p]),
                               rtol=1e-5, atol=1e-6)


def test_score_methods_and_the_file_format(tmp_path, hh):
    from rmtension.neurons.recorder import collect_stats

    model, tok = _rm("tiny-gpt2", double=False)
    pairs = _texts(hh[:3], tok)
    sc = _scorer(model, tok)
    stats, _ = collect_stats(sc, pairs)
    with pytest.raises(Exception, match="attribution pass"):
        compute_scores(stats, "attribution")
    stats.attr, _ = collect_attribution(sc, pairs)
    a = stats.attr
    assert needs_attribution("attribution") and needs_attribution("attribution-abs") and not needs_attribution("rms")
    for pool in ("group-mean", "all", "chosen"):
        np.testing.assert_allclose(compute_scores(stats, "attribution", pool), a.sum / 3)
    np.testing.assert_allclose(compute_scores(stats, "attribution-abs"), a.abs_sum / 3)
    assert np.all(a.abs_sum >= np.abs(a.sum) - 1e-12)  # |Σ| ≤ Σ|·|
    path = save_stats(tmp_path / "s.npz", stats, compute_scores(stats, "attribution"), {"method": "attribution"})
    back, scores = load_stats(path)
    assert back.attr is not None and back.attr.pairs == 3 and back.attr.how() == a.how()
    np.testing.assert_array_equal(back.attr.sq_sum, a.sq_sum)
    np.testing.assert_array_equal(compute_scores(back, "magnitude"), compute_scores(stats, "magnitude"))
    merged = back.merge(back)
    assert merged.attr.pairs == 6 and np.allclose(compute_scores(merged, "attribution"), a.sum / 3)
    back.attr = None  # a file without attribution sums reads as before, and says so if asked for them
    plain, _ = load_stats(save_stats(tmp_path / "p.npz", back))
    assert plain.attr is None and "has_attr" not in plain.meta


@pytest.fixture(scope="module")
def saved_rm(tmp_path_factory) -> str:
    from rmtension.models.reward_model import save_reward_model

    model, tok = _rm("tiny-llama", double=False)
    out = tmp_path_factory.mktemp("rm") / "tiny-llama-harmless-s0"
    save_reward_model(model, tok, out, {"backbone": "tiny-llama", "seed": 0, "objective": "harmless", "template": "hh",
                                        "split": {"heldout_fraction": 0.2, "salt": "rmtension-split-v1"}})
    return str(out)


def _cli(capsys, *argv) -> dict:
    rc = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_cli_score_select_and_ablate_take_attribution(capsys, tmp_path, saved_rm, data_dir):
    common = ("--data-dir", data_dir, "--max-pairs", "3", "--max-length", "256", "--batch-size", "4", "--no-progress")
    f = tmp_path / "attr.npz"
    _cli(capsys, "neurons", "score", "--rm", saved_rm, "--data", "hh-rlhf:harmless-base@test", "--method",
         "attribution", "--out", f, *common)
    stats, scores = load_stats(f)
    assert stats.attr is not None and stats.attr.pairs == 3 and stats.meta["scores"]["method"] == "attribution"
    np.testing.assert_allclose(scores, stats.attr.sum / 3)
    assert stats.meta["attribution_max_score_diff"] < 1e-4  # the gradient pass scored what the statistics pass did
    sel = _cli(capsys, "neurons", "select", "--scores", f, "--method", "attribution-abs", "--top-percent", "10",
               "--out", tmp_path / "abs.json")
    assert sel["selected"] > 0
    from rmtension.neurons.setfile import load_set

    s = load_set(tmp_path / "abs.json")
    top = np.sort((stats.attr.abs_sum / 3).ravel())[::-1][len(s) - 1]
    assert np.all((stats.attr.abs_sum / 3)[s.mask] >= top)
    out = tmp_path / "curve"
    rc = main([str(a) for a in ("ablate", "--rm", saved_rm, "--bench", "hh-heldout", "--scores", f, "--methods",
                                "attribution,attribution-abs", "--top-percent", "0,10", "--out", out,
                                "--data-dir", data_dir, "--max-items", "2", "--max-length", "64", "--no-progress")])
    assert rc == 0, capsys.readouterr().err
    assert (out / "sweep.json").is_file()


def test_study_config_accepts_attribution_and_requests_the_pass():
    from rmtension.names import SCORE_METHODS
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import _neuron_request, build_plan

    assert {"attribution", "attribution-abs"} <= set(SCORE_METHODS)
    cfg = config_from_dict({"neurons": {"methods": ["magnitude", "change", "random", "attribution"]},
                            "ablation": {"method": "attribution"}})
    assert cfg.neurons.methods[-1] == "attribution"
    plan = build_plan(cfg, "/nonexistent-study")
    key, train = next(iter(plan.train.items()))
    assert _neuron_request(plan.neurons[key].params, train, None).with_attribution
    plain = build_plan(config_from_dict({}), "/x")
    key, train = next(iter(plain.train.items()))
    assert not _neuron_request(plain.neurons[key].params, train, None).with_attribution
