"""Verdicts on the paper's findings (rmtension.analysis.findings): each rule yields supported, not
supported and inconclusive on summaries built for it, including the length-qualified case, the
minimum-n rule, Holm survival for the ablation findings and the backbone baseline for layer location."""

from __future__ import annotations

from typing import Any

import pytest

from rmtension.analysis.findings import (INCONCLUSIVE, INCONCLUSIVE_BACKBONE, INCONCLUSIVE_LENGTH, MIN_ITEMS,
                                         NOT_RUN, NOT_SUPPORTED, SUPPORTED, combine, finding_a, finding_b, finding_c,
                                         finding_d, finding_e, findings, interval_verdict, uniform_late_share)
from rmtension.report.figures import third_bounds


def contrast(name: str, group: str, ci: tuple[float, float], lm_ci: tuple[float, float] | None = None,
             sizes: tuple[int, ...] = (40, 60), lm_items: int = 30, bench: str = "hh-heldout") -> dict[str, Any]:
    """A ``contrasts`` entry of a benchmark's group mean; the length-matched interval defaults to the raw one."""
    a, b = name.split("-vs-")
    lm = lm_ci if lm_ci is not None else ci
    return {"backbone": "bb", "task": f"{bench}/{group} (group mean)", "bench": bench, "group": group,
            "kind": "group", "a": a, "b": b, "name": name, "n_items": sum(sizes),
            "subsets": {f"{bench}/s{i}": n for i, n in enumerate(sizes)}, "diff": sum(ci) / 2,
            "ci95": {"low": ci[0], "high": ci[1]},
            "length_matched": {"diff": sum(lm) / 2, "ci95": {"low": lm[0], "high": lm[1]}, "n_cells": 3 * lm_items,
                               "n_items": lm_items, "min_subset_items": lm_items}}


UP, DOWN, ZERO = (0.05, 0.2), (-0.2, -0.05), (-0.05, 0.1)


def test_interval_rule_and_combination():
    assert interval_verdict(0.01, 0.2, +1) == SUPPORTED
    assert interval_verdict(-0.2, -0.01, +1) == NOT_SUPPORTED
    assert interval_verdict(-0.01, 0.2, +1) == INCONCLUSIVE
    assert interval_verdict(-0.2, -0.01, -1) == SUPPORTED
    assert interval_verdict(0.4, 0.45, +1, null=1 / 3) == SUPPORTED
    assert interval_verdict(None, None, +1) == INCONCLUSIVE
    assert combine([]) == NOT_RUN
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE]) == NOT_SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE_LENGTH]) == INCONCLUSIVE_LENGTH
    assert combine([INCONCLUSIVE_LENGTH, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, INCONCLUSIVE_BACKBONE]) == INCONCLUSIVE_BACKBONE


def test_finding_a_each_verdict():
    good = [contrast("helpful-vs-harmless", "helpful", UP), contrast("helpful-vs-harmless", "harmless", DOWN)]
    f = finding_a(good)
    assert f.verdict == SUPPORTED and len(f.evidence) == 2
    assert all("length-matched" in e.note for e in f.evidence)
    # the helpful RM also wins on harmless tasks: the paper's direction is contradicted there
    f = finding_a([good[0], contrast("helpful-vs-harmless", "harmless", UP)])
    assert f.verdict == NOT_SUPPORTED
    assert "not supported" in f.reason
    # an interval that includes 0
    assert finding_a([good[0], contrast("helpful-vs-harmless", "harmless", (-0.1, 0.02))]).verdict == INCONCLUSIVE
    # only one objective measured: never "supported"
    assert finding_a(good[:1]).verdict == INCONCLUSIVE
    assert finding_a([]).verdict == NOT_RUN


def test_finding_a_length_check():
    """A raw win that vanishes (or has too few pairs) on length-matched pairs is 'inconclusive (length)'."""
    vanishes = [contrast("helpful-vs-harmless", "helpful", UP, lm_ci=ZERO),
                contrast("helpful-vs-harmless", "harmless", DOWN)]
    f = finding_a(vanishes)
    assert f.verdict == INCONCLUSIVE_LENGTH
    assert f.evidence[0].verdict == INCONCLUSIVE_LENGTH and "length-matched" in f.evidence[0].note
    few = [contrast("helpful-vs-harmless", "helpful", UP, lm_items=MIN_ITEMS - 1),
           contrast("helpful-vs-harmless", "harmless", DOWN)]
    assert finding_a(few).verdict == INCONCLUSIVE_LENGTH
    # a raw contradiction that vanishes on matched pairs is not a contradiction either
    reversed_by_length = [contrast("helpful-vs-harmless", "helpful", UP),
                          contrast("helpful-vs-harmless", "harmless", UP, lm_ci=ZERO)]
    assert finding_a(reversed_by_length).verdict == INCONCLUSIVE_LENGTH
    no_lengths = contrast("helpful-vs-harmless", "helpful", UP)
    no_lengths["length_matched"] = None
    assert finding_a([no_lengths, contrast("helpful-vs-harmless", "harmless", DOWN)]).verdict == INCONCLUSIVE_LENGTH


def test_minimum_n_per_task():
    """A decisive interval over a group with a task below MIN_ITEMS items does not count."""
    small = [contrast("helpful-vs-harmless", "helpful", UP, sizes=(MIN_ITEMS - 1, 200)),
             contrast("helpful-vs-harmless", "harmless", DOWN)]
    f = finding_a(small)
    assert f.verdict == INCONCLUSIVE
    assert f.evidence[0].verdict == INCONCLUSIVE and f"fewer than {MIN_ITEMS}" in f.evidence[0].note
    ok = [contrast("helpful-vs-harmless", "helpful", UP, sizes=(MIN_ITEMS, 200)),
          contrast("helpful-vs-harmless", "harmless", DOWN)]
    assert finding_a(ok).verdict == SUPPORTED


def test_finding_b_each_verdict():
    trails = [contrast("mixed-vs-helpful", "helpful", DOWN), contrast("mixed-vs-harmless", "harmless", DOWN)]
    assert finding_b(trails).verdict == SUPPORTED
    assert finding_b([trails[0], contrast("mixed-vs-harmless", "harmless", UP)]).verdict == NOT_SUPPORTED
    assert finding_b([trails[0], contrast("mixed-vs-harmless", "harmless", ZERO)]).verdict == INCONCLUSIVE
    # subset-level contrasts are not what (b) is judged on
    sub = contrast("mixed-vs-helpful", "helpful", UP)
    sub["task"], sub["kind"] = "hh-heldout/helpful-base", "subset"
    assert finding_b(trails + [sub]).verdict == SUPPORTED


def stat_row(rm: str, set_: str, group: str, diff: float, ci: tuple[float, float], p_holm: float,
             n: int = 200, task: str | None = None) -> dict[str, Any]:
    """An ``ablation_stats`` row as docs/STUDY_FORMAT.md and the controls helper define it."""
    return {"backbone": "bb", "rm_objective": rm, "set": set_, "method": "magnitude", "k": 10.0,
            "task": task or f"hh-heldout/{group} (group mean)", "group": group, "seeds": [0, 1, 2], "n_items": n,
            "set_delta": diff - 0.01, "random_delta": -0.01, "diff": diff, "ci95": {"low": ci[0], "high": ci[1]},
            "p": p_holm / 2, "test": "paired sign-flip", "family": f"bb/{rm}/{set_}", "p_holm": p_holm,
            "survives": p_holm < 0.05}


def test_finding_c_uses_holm_and_the_own_group():
    own = [stat_row("helpful", "own", "helpful", -0.1, (-0.15, -0.05), 0.001),
           stat_row("harmless", "own", "harmless", -0.08, (-0.12, -0.03), 0.01),
           # the other group's rows are not what (c) is about, even when they contradict it
           stat_row("helpful", "own", "harmless", 0.1, (0.05, 0.15), 0.001)]
    assert finding_c(own).verdict == SUPPORTED
    not_holm = [own[0], stat_row("harmless", "own", "harmless", -0.08, (-0.12, -0.03), 0.2)]
    f = finding_c(not_holm)
    assert f.verdict == INCONCLUSIVE and "Holm" in f.evidence[1].note
    helps = [own[0], stat_row("harmless", "own", "harmless", 0.06, (0.02, 0.1), 0.01)]
    assert finding_c(helps).verdict == NOT_SUPPORTED
    # n_items counts items over the three seeds (as rmtension.analysis.ablation_stats sums them): the rule
    # asks MIN_ITEMS items per seed
    small = [own[0], stat_row("harmless", "own", "harmless", -0.3, (-0.4, -0.2), 0.001, n=3 * MIN_ITEMS - 1)]
    assert finding_c(small).verdict == INCONCLUSIVE and "per seed" in finding_c(small).evidence[1].note
    enough = [own[0], stat_row("harmless", "own", "harmless", -0.3, (-0.4, -0.2), 0.001, n=3 * MIN_ITEMS)]
    assert finding_c(enough).verdict == SUPPORTED
    # no group-mean rows: the own group's subset rows stand in
    subs = [stat_row("helpful", "own", "helpful", -0.1, (-0.15, -0.05), 0.001, task="llmbar/natural"),
            stat_row("harmless", "own", "harmless", -0.1, (-0.15, -0.05), 0.001, task="hh-heldout/harmless-base")]
    assert finding_c(subs).verdict == SUPPORTED
    assert finding_c([]).verdict == NOT_RUN
    assert finding_c(own[:1]).verdict == INCONCLUSIVE  # the harmless RM's own set was never tested


def test_finding_d_each_verdict():
    def rows(shared: tuple[float, tuple[float, float], float], other: tuple[float, tuple[float, float], float]):
        out = []
        for g in ("helpful", "harmless"):
            out.append(stat_row("mixed", "shared", g, *shared))
            out.append(stat_row("mixed", "helpful-only", g, *other))
            out.append(stat_row("mixed", "harmless-only", g, 0.0, (-0.02, 0.02), 0.9))
        return out

    assert finding_d(rows((-0.1, (-0.14, -0.06), 0.001), (-0.03, (-0.06, 0.0), 0.2))).verdict == SUPPORTED
    # shared beats random, but helpful-only hurts more by point estimate: not the most
    f = finding_d(rows((-0.1, (-0.14, -0.06), 0.001), (-0.12, (-0.2, -0.04), 0.01)))
    assert f.verdict == INCONCLUSIVE and "point estimate" in f.evidence[0].note
    # helpful-only's interval lies wholly below shared's: it clearly matters more
    f = finding_d(rows((-0.02, (-0.05, 0.01), 0.5), (-0.2, (-0.25, -0.15), 0.001)))
    assert f.verdict == NOT_SUPPORTED and "clearly hurt more" in f.evidence[0].note
    assert finding_d(rows((-0.02, (-0.05, 0.01), 0.5), (-0.03, (-0.06, 0.0), 0.2))).verdict == INCONCLUSIVE


def neuron(obj: str, seed: int, late: int, selected: int = 60, n_layers: int = 6, method: str = "magnitude"):
    early = (selected - late) // 2
    return {"backbone": "bb", "objective": obj, "seed": seed, "method": method, "site": "mlp.act", "k": 10.0,
            "selected": selected, "total": 600, "n_layers": n_layers,
            "thirds": {"early": early, "middle": selected - late - early, "late": late}}


def test_uniform_late_share_matches_the_thirds_rule():
    for n in range(3, 40):
        assert uniform_late_share(n) == pytest.approx((n - third_bounds(n)[2]) / n)
    assert uniform_late_share(6) == pytest.approx(1 / 3)
    assert uniform_late_share(7) == pytest.approx(2 / 7)  # layers 5 and 6: 3ℓ ≥ 2L


def test_finding_e_against_uniform_and_backbone():
    late = [neuron(o, s, n) for o in ("helpful", "harmless", "mixed") for s, n in ((0, 40), (1, 42), (2, 38))]
    assert finding_e(late).verdict == SUPPORTED
    early = [neuron(o, s, n) for o in ("helpful", "harmless", "mixed") for s, n in ((0, 5), (1, 7), (2, 6))]
    assert finding_e(early).verdict == NOT_SUPPORTED
    noisy = [neuron(o, s, n) for o in ("helpful", "harmless", "mixed") for s, n in ((0, 10), (1, 40), (2, 25))]
    assert finding_e(noisy).verdict == INCONCLUSIVE
    one_seed = [neuron(o, 0, 50) for o in ("helpful", "harmless", "mixed")]
    f = finding_e(one_seed)
    assert f.verdict == INCONCLUSIVE and "seed" in f.evidence[0].note
    # the untrained backbone's set is just as late: the location is the backbone's
    as_late = late + [neuron("backbone", s, n) for s, n in ((0, 41), (1, 40), (2, 39))]
    f = finding_e(as_late)
    assert f.verdict == INCONCLUSIVE_BACKBONE and "backbone" in f.evidence[0].note
    earlier = late + [neuron("backbone", s, n) for s, n in ((0, 20), (1, 22), (2, 21))]
    assert finding_e(earlier).verdict == SUPPORTED
    # the paper's method is judged when present; random sets never are
    other = late + [neuron("helpful", s, 5, method="change") for s in range(3)] + \
        [neuron("helpful", s, 5, method="random") for s in range(3)]
    assert finding_e(other).verdict == SUPPORTED
    assert finding_e([]).verdict == NOT_RUN


def test_findings_of_an_old_summary_are_not_run():
    """A summary without contrasts/ablation_stats (gathered before them) gives 'not run', never a guess."""
    out = findings({"runs": [], "neurons": []})
    assert [f.key for f in out] == list("abcde")
    assert all(f.verdict == NOT_RUN for f in out)


def test_equal_length_lines_say_whether_matched_pairs_can_decide():
    """The report's plain sentences on (a) at equal length: confirm, contradict, cannot tell, too few."""
    from rmtension.analysis.findings import equal_length_lines

    confirm = contrast("helpful-vs-harmless", "helpful", UP)
    confirm["length_adjusted"] = {"diff": 0.1, "ci95": {"low": 0.02, "high": 0.18}}
    undecided = contrast("helpful-vs-harmless", "harmless", DOWN, lm_ci=(-0.12, 0.3))
    undecided["length_adjusted"] = {"diff": -0.04, "ci95": {"low": -0.1, "high": 0.02}}
    lines = equal_length_lines([confirm, undecided])
    assert len(lines) == 2
    assert "confirm the paper's direction" in lines[0] and "survives at equal length" in lines[0]
    assert "90 length-matched pairs" in lines[0]
    assert "neither confirm nor refute" in lines[1] and "may be zero" in lines[1]
    # the harmless group's paper direction is negative: a positive matched interval contradicts it
    against = contrast("helpful-vs-harmless", "harmless", DOWN, lm_ci=(0.05, 0.3))
    assert "contradict" in equal_length_lines([against])[0]
    few = contrast("helpful-vs-harmless", "helpful", UP, lm_items=MIN_ITEMS - 1)
    assert "too few to judge" in equal_length_lines([few])[0]
    # no length controls (e.g. a benchmark without pairs): no sentence; other contrasts are not (a)'s
    bare = contrast("helpful-vs-harmless", "helpful", UP)
    bare["length_matched"] = None
    assert equal_length_lines([bare, contrast("mixed-vs-helpful", "helpful", DOWN)]) == []
