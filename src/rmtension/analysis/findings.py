"""The paper's five findings, each judged from a study's numbers: supported, not supported or inconclusive.

Why computed: a report's summary is what readers quote. Written by hand it drifts towards the
paper's story; computed by fixed rules from the intervals and the controls it says only what the
numbers allow at this n, and says it the same way for every study. The findings are those of
Tanwar & Atanasova (arXiv 2606.13209), as issue 11 lists them:

(a) each single-objective RM wins on its own objective;
(b) the mixed RM trails the single-objective RMs (each on its own objective);
(c) ablating an RM's own neurons hurts its own objective more than ablating random neurons;
(d) shared (helpful ∩ harmless) neurons matter most to the mixed RM;
(e) the oriented neurons sit in late layers.

Rules (pure functions of summary.json's lists, docs/STUDY_FORMAT.md):

- **Interval rule.** A comparison has a null (no difference; the uniform share) and a direction the
  paper predicts. It is *supported* when its 95% interval excludes the null on the paper's side,
  *not supported* when it excludes the null on the other side, and *inconclusive* otherwise.
- **Minimum n.** A comparison resting on fewer than :data:`MIN_ITEMS` items in any of its tasks
  (subsets of a group mean; for (c)/(d) items per seed, ``n_items`` / seeds), or (e) on fewer than
  :data:`MIN_SEEDS` seeds or :data:`MIN_ITEMS` neurons, is inconclusive whatever its interval.
- **Length check, (a) and (b).** Each comparison is a paired RM-vs-RM difference of a benchmark's
  group mean (summary ``contrasts``: two-way items × seeds bootstrap, :mod:`rmtension.analysis.pooled`).
  A decisive raw result (either way) must reappear once length is controlled. On pairwise benchmarks
  (HH, LLMBar) the check is the length-adjusted difference: a logistic fit of correctness on the relative
  length difference over every pair, read at equal length (:mod:`rmtension.analysis.pooled`); its interval
  must exclude 0 on the same side, and the length-matched pairs (chosen and rejected within 10% of each
  other's length) must not contradict it (an interval excluding 0 on the other side, where every subset
  has at least :data:`MIN_ITEMS` matched items). Why both: HH-RLHF has few equal-length pairs (28 of the
  429 held-out harmless-base pairs), so the model-free matched check alone can never decide there; the
  adjustment trades that for a model (a smooth, monotone dependence on length). Elsewhere (RM-Bench's
  3×3 items) the length-matched interval decides, with at least :data:`MIN_ITEMS` matched items in every
  subset. Otherwise the comparison is *inconclusive (length)*: what the raw numbers show may be a length
  preference. (Rule fixed on 2026-12-05 after the quickstart run, before the evidence run's numbers existed.)
- **Holm, (c) and (d).** Each comparison is an ``ablation_stats`` row (ablated set vs its size-matched
  random set, paired over items within seeds, Holm-corrected within its table). A row counts as
  decisive only when it *survives* Holm (``p_holm`` < 0.05) and its interval of ``diff`` = set − random
  excludes 0; negative ``diff`` means the set hurts more than random (the paper's direction).
  (c) uses the own-set rows of the helpful and harmless RMs on their own group's means (their own
  group's subsets when a table has no group-mean rows). (d) uses the mixed RM's shared rows on both
  groups' means: supported when the shared set hurts more than random (decisive) and at least as much
  as the helpful-only and harmless-only sets by point estimate (no paired test between sets exists);
  not supported when the shared set hurts significantly *less* than random, or another set's interval
  of ``diff`` lies wholly below the shared set's (it clearly hurts more); inconclusive otherwise.
- **(e) location.** Per RM objective × method × site × k, the share of the selected neurons in the
  late third (the paper's thirds: layer ℓ of L is late when ℓ ≥ 2L/3) over seeds, with a t interval
  over seeds (seeds are the replicates; neurons of one set are not independent), against the uniform
  share (late layers / L, = 1/3 when 3 divides L). With backbone-baseline rows (``objective:
  "backbone"``: the untrained backbone's set) a result supported against uniform must also exceed the
  backbone's late share (paired by seed, t interval of the difference); otherwise it is *inconclusive
  (backbone)*: the location is the backbone's, not the training's. The paper's method (magnitude) is
  judged when present, else every method but random.
- **Combining.** A finding rests on several comparisons (benchmarks, RMs, groups). It is *not
  supported* if any comparison is not supported (one clear contradiction at 95% is enough — with many
  benchmarks this errs towards "not supported"); *supported* only if every comparison is supported
  (an intersection–union rule, which needs no multiplicity correction); *inconclusive (length)* /
  *inconclusive (backbone)* when every comparison is supported or so qualified; otherwise
  *inconclusive*. With no comparison at all the finding was *not run* (e.g. a summary gathered before
  the key it needs existed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
INCONCLUSIVE_LENGTH = "inconclusive (length)"
INCONCLUSIVE_BACKBONE = "inconclusive (backbone)"
NOT_RUN = "not run"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, INCONCLUSIVE_LENGTH, INCONCLUSIVE_BACKBONE, NOT_RUN)

MIN_ITEMS = 10
MIN_SEEDS = 2
ALPHA = 0.05
PAPER_METHOD = "magnitude"
GROUP_SUFFIX = "(group mean)"

CLAIMS = {
    "a": "each single-objective RM wins on its own objective",
    "b": "the mixed RM trails the single-objective RMs",
    "c": "ablating an RM's own neurons hurts its own objective more than random neurons",
    "d": "shared neurons matter most to the mixed RM",
    "e": "the oriented neurons sit in late layers",
}

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal 1.960).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

Entry = Mapping[str, Any]


@dataclass
class Evidence:
    """One comparison a finding rests on: what was compared, its estimate and interval, n, its verdict."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    n: int | None
    verdict: str
    note: str = ""
    kind: str = "delta"          # how to print the numbers: "delta" (a difference of fractions) or "share"
    null: float = 0.0


@dataclass
class Finding:
    key: str
    claim: str
    verdict: str
    reason: str
    evidence: list[Evidence] = field(default_factory=list)


# --------------------------------------------------------------------------- rules


def _f(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def interval_bounds(ci: Any) -> tuple[float | None, float | None]:
    """An interval given as ``{"low", "high"}`` (results.json) or ``[low, high]`` (length controls), as finite
    floats or None: the two spellings the summary uses, read in one place."""
    if isinstance(ci, Mapping):
        return _f(ci.get("low")), _f(ci.get("high"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return _f(ci[0]), _f(ci[1])
    return None, None


def interval_verdict(low: float | None, high: float | None, direction: int, null: float = 0.0) -> str:
    """The interval rule: ``direction`` +1 when the paper predicts a value above ``null``, −1 below."""
    if low is None or high is None:
        return INCONCLUSIVE
    if direction > 0:
        return SUPPORTED if low > null else NOT_SUPPORTED if high < null else INCONCLUSIVE
    return SUPPORTED if high < null else NOT_SUPPORTED if low > null else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A finding's verdict from its comparisons' (see the module docstring)."""
    if not verdicts:
        return NOT_RUN
    if NOT_SUPPORTED in verdicts:
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    for qualified in (INCONCLUSIVE_LENGTH, INCONCLUSIVE_BACKBONE):
        if all(v in (SUPPORTED, qualified) for v in verdicts):
            return qualified
    return INCONCLUSIVE


def _pp(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f} pp".replace("-", "−")


def _iv(low: float | None, high: float | None, scale: float = 100.0) -> str:
    if low is None or high is None:
        return "no interval"
    return f"[{scale * low:+.1f}, {scale * high:+.1f}]".replace("-", "−")


# --------------------------------------------------------------------------- (a), (b): contrasts


@dataclass
class LengthCheck:
    """What a contrast's equal-length controls say in the paper's direction, read once for the verdict rule
    (:func:`contrast_evidence`) and the report's plain sentences (:func:`equal_length_lines`).

    ``matched`` / ``adjusted`` are the summary's entries, None when the contrast has no such control;
    ``matched_verdict`` is None also when a subset has fewer than :data:`MIN_ITEMS` items with matched pairs.
    """

    matched: Entry | None
    adjusted: Entry | None
    matched_items: int            # the smallest subset's items with length-matched pairs
    matched_pairs: int
    matched_numbers: str          # "+x pp [lo, hi] pp"
    matched_verdict: str | None
    adjusted_numbers: str
    adjusted_verdict: str | None

    @property
    def matched_shown(self) -> str:
        if self.matched is None:
            return "no length-matched pairs"
        return f"length-matched {self.matched_numbers} ({self.matched_pairs} pairs)"

    @property
    def adjusted_shown(self) -> str:
        return f"length-adjusted {self.adjusted_numbers}"


def length_check(row: Entry, direction: int) -> LengthCheck:
    lm = row.get("length_matched") if isinstance(row.get("length_matched"), Mapping) else None
    la = row.get("length_adjusted") if isinstance(row.get("length_adjusted"), Mapping) else None
    lm_n = int(_f((lm or {}).get("min_subset_items")) or 0)
    m_low, m_high = interval_bounds((lm or {}).get("ci95"))
    matched = interval_verdict(m_low, m_high, direction) if lm is not None and lm_n >= MIN_ITEMS else None
    a_low, a_high = interval_bounds((la or {}).get("ci95"))
    return LengthCheck(
        lm, la, lm_n, int(_f((lm or {}).get("n_cells")) or 0),
        f"{_pp(_f((lm or {}).get('diff')))} {_iv(m_low, m_high)} pp", matched,
        f"{_pp(_f((la or {}).get('diff')))} {_iv(a_low, a_high)} pp",
        interval_verdict(a_low, a_high, direction) if la is not None else None)


def contrast_evidence(row: Entry, direction: int, label: str) -> Evidence:
    """One RM-vs-RM contrast of a group mean under the interval, minimum-n and length rules."""
    est = _f(row.get("diff"))
    low, high = interval_bounds(row.get("ci95"))
    subsets = row.get("subsets") if isinstance(row.get("subsets"), Mapping) else {}
    sizes = [int(v) for v in subsets.values()] or ([int(row["n_items"])] if _f(row.get("n_items")) is not None else [])
    n = int(row["n_items"]) if _f(row.get("n_items")) is not None else (sum(sizes) if sizes else None)

    def ev(verdict: str, note: str) -> Evidence:
        return Evidence(label, est, low, high, n, verdict, note)

    if not sizes or min(sizes) < MIN_ITEMS:
        return ev(INCONCLUSIVE, f"fewer than {MIN_ITEMS} items in a task (smallest: {min(sizes) if sizes else 0})")
    raw = interval_verdict(low, high, direction)
    if raw == INCONCLUSIVE:
        return ev(INCONCLUSIVE, f"interval {_iv(low, high)} pp includes 0")
    c = length_check(row, direction)
    matched, m_shown = c.matched_verdict, c.matched_shown
    if c.adjusted is not None:
        adjusted, a_shown = c.adjusted_verdict, c.adjusted_shown
        if adjusted != raw:
            return ev(INCONCLUSIVE_LENGTH, f"raw: {raw}, but {a_shown} ({adjusted}); {m_shown}")
        if matched is not None and matched not in (raw, INCONCLUSIVE):
            return ev(INCONCLUSIVE_LENGTH, f"raw: {raw} and {a_shown}, but {m_shown} ({matched})")
        return ev(raw, f"holds at equal length: {a_shown}; {m_shown}")
    if c.matched is None:
        return ev(INCONCLUSIVE_LENGTH, f"raw: {raw}; no length-matched pairs to check it on")
    if matched is None:
        return ev(INCONCLUSIVE_LENGTH, f"raw: {raw}; a subset has only {c.matched_items} items with length-matched "
                                       f"pairs (< {MIN_ITEMS}) to check it on")
    if matched != raw:
        return ev(INCONCLUSIVE_LENGTH, f"raw: {raw}, but {m_shown} ({matched})")
    return ev(raw, f"holds on {m_shown}")


def _group_contrasts(contrasts: Sequence[Entry], name: str, group: str) -> list[Entry]:
    return [c for c in contrasts if c.get("name") == name and c.get("group") == group
            and str(c.get("task", "")).endswith(GROUP_SUFFIX)]


def _contrast_finding(key: str, contrasts: Sequence[Entry], expected: Sequence[tuple[str, str, int, str]]) -> Finding:
    """Finding ``key`` from the contrasts that ``expected`` names: (contrast, group, sign the paper reports, what)."""
    if not contrasts:
        return Finding(key, CLAIMS[key], NOT_RUN, "summary.json has no `contrasts` (gathered before pooled "
                                                   "intervals existed, or without per-item files)")
    evidence: list[Evidence] = []
    missing: list[str] = []
    for name, group, direction, what in expected:
        rows = _group_contrasts(contrasts, name, group)
        if not rows:
            missing.append(what)
        for r in rows:
            paper = "> 0" if direction > 0 else "< 0"
            evidence.append(contrast_evidence(r, direction, f"{r.get('backbone')}: {r.get('task')}, "
                                                            f"{r.get('a')} − {r.get('b')} RM (paper: {paper})"))
    verdict = combine([e.verdict for e in evidence])
    if missing and verdict == SUPPORTED:
        verdict = INCONCLUSIVE
    return Finding(key, CLAIMS[key], verdict, _reason(verdict, evidence, missing), evidence)


def finding_a(contrasts: Sequence[Entry]) -> Finding:
    """(a): on each benchmark's helpful group the helpful RM beats the harmless RM, on the harmless group
    the harmless RM beats the helpful one (``helpful-vs-harmless`` contrasts: > 0 and < 0)."""
    return _contrast_finding("a", contrasts, (("helpful-vs-harmless", "helpful", +1, "helpful tasks"),
                                              ("helpful-vs-harmless", "harmless", -1, "harmless tasks")))


def finding_b(contrasts: Sequence[Entry]) -> Finding:
    """(b): the mixed RM is below the helpful RM on helpful groups and below the harmless RM on harmless ones."""
    return _contrast_finding("b", contrasts, (("mixed-vs-helpful", "helpful", -1, "helpful tasks"),
                                              ("mixed-vs-harmless", "harmless", -1, "harmless tasks")))


def equal_length_lines(contrasts: Sequence[Entry]) -> list[str]:
    """Plain sentences on what equal-length pairs say about finding (a), one per benchmark group.

    Why: the verdict table names the length-matched and length-adjusted numbers, but a reader of a small
    study (the quickstart) needs to be told outright whether the matched pairs *could* decide at this size:
    how many pairs are about equally long, and whether their interval confirms, contradicts or cannot tell.
    Only comparisons with length controls (pairwise benchmarks, RM-Bench) get a sentence.
    """
    out: list[str] = []
    for group, direction in (("helpful", +1), ("harmless", -1)):
        for r in _group_contrasts(contrasts, "helpful-vs-harmless", group):
            c = length_check(r, direction)
            if c.matched is None and c.adjusted is None:
                continue
            side = "helpful RM above the harmless RM" if direction > 0 else "harmless RM above the helpful RM"
            head = f"{r.get('backbone')}, {r.get('task')} (paper: {side}; raw {_pp(_f(r.get('diff')))} " \
                   f"{_iv(*interval_bounds(r.get('ci95')))} pp over {r.get('n_items')} items):"
            parts: list[str] = []
            if c.matched is None:
                parts.append("no pair has responses of about equal length")
            else:
                shown = f"{c.matched_pairs} length-matched pairs give {c.matched_numbers}"
                if c.matched_verdict is None:
                    parts.append(f"{shown}, too few to judge (a subset has {c.matched_items} items with such pairs, "
                                 f"fewer than {MIN_ITEMS})")
                elif c.matched_verdict == SUPPORTED:
                    parts.append(f"{shown}: they confirm the paper's direction at equal length")
                elif c.matched_verdict == NOT_SUPPORTED:
                    parts.append(f"{shown}: they contradict the paper's direction at equal length")
                else:
                    parts.append(f"{shown}: the interval includes 0, so these pairs can neither confirm nor "
                                 "refute the difference at this size")
            if c.adjusted is not None:
                reading = {SUPPORTED: "the difference survives at equal length",
                           NOT_SUPPORTED: "at equal length the difference points the other way"}.get(
                    str(c.adjusted_verdict), "at equal length the difference may be zero")
                parts.append(f"the length adjustment over all pairs gives {c.adjusted_numbers}: {reading}")
            out.append(f"{head} {'; '.join(parts)}.")
    return out


# --------------------------------------------------------------------------- (c), (d): ablation_stats


def ablation_evidence(row: Entry, label: str) -> Evidence:
    """One set-vs-random ablation row under the Holm, interval and minimum-n rules (paper: diff < 0)."""
    est, (low, high) = _f(row.get("diff")), interval_bounds(row.get("ci95"))
    # ``n_items`` counts items over all seeds (rmtension.analysis.ablation_stats sums its strata over seeds):
    # the minimum-n rule is about items, so it takes the items per seed
    seeds = row.get("seeds") if isinstance(row.get("seeds"), list) and row.get("seeds") else [None]
    n = int(row["n_items"]) // len(seeds) if _f(row.get("n_items")) is not None else None
    p_holm = _f(row.get("p_holm"))

    def ev(verdict: str, note: str) -> Evidence:
        return Evidence(label, est, low, high, n, verdict, note)

    if n is None or n < MIN_ITEMS:
        return ev(INCONCLUSIVE, f"fewer than {MIN_ITEMS} items per seed")
    survives = bool(row.get("survives")) if "survives" in row else (p_holm is not None and p_holm < ALPHA)
    ptxt = "p_holm " + ("—" if p_holm is None else f"{p_holm:.3g}")
    if not survives:
        return ev(INCONCLUSIVE, f"does not survive Holm ({ptxt})")
    v = interval_verdict(low, high, -1)
    if v == INCONCLUSIVE:
        return ev(INCONCLUSIVE, f"survives Holm ({ptxt}) but the interval includes 0")
    return ev(v, f"survives Holm ({ptxt}); set {_pp(_f(row.get('set_delta')))}, random "
                 f"{_pp(_f(row.get('random_delta')))}")


def _label(r: Entry) -> str:
    return (f"{r.get('backbone')}: {r.get('set')} in {r.get('rm_objective')} RM vs random, {r.get('task')} "
            f"({r.get('method')}, k={r.get('k')})")


def _own_rows(stats: Sequence[Entry], rm: str, group: str, sets: Iterable[str]) -> list[Entry]:
    """Rows of ``rm``'s sets on ``group``: its group-mean rows, or its subset rows where a table has none."""
    wanted = set(sets)
    rows = [r for r in stats if r.get("rm_objective") == rm and r.get("set") in wanted and r.get("group") == group]
    by_table: dict[Any, list[Entry]] = {}
    for r in rows:
        by_table.setdefault((r.get("backbone"), r.get("method"), r.get("k"), r.get("set")), []).append(r)
    out: list[Entry] = []
    for rs in by_table.values():
        means = [r for r in rs if str(r.get("task", "")).endswith(GROUP_SUFFIX)]
        out.extend(means or rs)
    return out


def finding_c(stats: Sequence[Entry]) -> Finding:
    """(c): the helpful (harmless) RM's own set hurts its helpful (harmless) tasks more than random."""
    if not stats:
        return Finding("c", CLAIMS["c"], NOT_RUN, "summary.json has no `ablation_stats` (own vs random "
                                                   "ablation statistics not gathered)")
    evidence = [ablation_evidence(r, _label(r)) for rm in ("helpful", "harmless")
                for r in _own_rows(stats, rm, rm, ("own",))]
    missing = [f"{rm} RM" for rm in ("helpful", "harmless") if not _own_rows(stats, rm, rm, ("own",))]
    verdict = combine([e.verdict for e in evidence])
    if missing and verdict == SUPPORTED:
        verdict = INCONCLUSIVE
    return Finding("c", CLAIMS["c"], verdict, _reason(verdict, evidence, missing), evidence)


def finding_d(stats: Sequence[Entry]) -> Finding:
    """(d): in the mixed RM, the shared set hurts more than random and at least as much as the one-sided sets."""
    if not stats:
        return Finding("d", CLAIMS["d"], NOT_RUN, "summary.json has no `ablation_stats` (shared vs random "
                                                   "ablation statistics not gathered)")
    evidence: list[Evidence] = []
    for group in ("helpful", "harmless"):
        rows = _own_rows(stats, "mixed", group, ("shared", "helpful-only", "harmless-only"))
        for s in (r for r in rows if r.get("set") == "shared"):
            same = [r for r in rows if r.get("set") != "shared" and all(
                r.get(k) == s.get(k) for k in ("backbone", "method", "k", "task"))]
            ev = ablation_evidence(s, _label(s))
            d, (lo, hi) = _f(s.get("diff")), interval_bounds(s.get("ci95"))
            clearly_more = [r for r in same if interval_bounds(r.get("ci95"))[1] is not None and lo is not None
                            and interval_bounds(r.get("ci95"))[1] < lo]  # type: ignore[operator]
            more_by_point = [r for r in same if _f(r.get("diff")) is not None and d is not None
                             and _f(r.get("diff")) < d]  # type: ignore[operator]
            if clearly_more:
                ev.verdict = NOT_SUPPORTED
                ev.note = (f"{clearly_more[0].get('set')} neurons clearly hurt more than shared ones "
                           f"({_pp(_f(clearly_more[0].get('diff')))} vs {_pp(d)} relative to random)")
            elif ev.verdict == SUPPORTED and more_by_point:
                ev.verdict = INCONCLUSIVE
                ev.note = (f"shared hurts more than random, but {more_by_point[0].get('set')} neurons hurt more by "
                           f"point estimate ({_pp(_f(more_by_point[0].get('diff')))} vs {_pp(d)} relative to random)")
            elif ev.verdict == SUPPORTED:
                ev.note += "; the most harmful of the three sets by point estimate" if same else \
                    "; helpful-only / harmless-only sets not tested"
            evidence.append(ev)
    verdict = combine([e.verdict for e in evidence])
    return Finding("d", CLAIMS["d"], verdict, _reason(verdict, evidence, [] if evidence else ["the mixed RM's shared set"]),
                   evidence)


# --------------------------------------------------------------------------- (e): layers


def _count(v: Any) -> float | None:
    """A third's count: a number, or the ``count`` of a ``{"count", "share", "layers"}`` object."""
    return _f(v.get("count") if isinstance(v, Mapping) else v)


def _late(row: Entry) -> tuple[float, int] | None:
    """(late share, selected) of one neuron row, or None when it lacks the numbers."""
    thirds = row.get("thirds") if isinstance(row.get("thirds"), Mapping) else {}
    late = _count(thirds.get("late"))
    selected = _f(row.get("selected"))
    if selected is None:
        counts = [_count(thirds.get(t)) for t in ("early", "middle", "late")]
        selected = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
    if late is None or not selected:
        return None
    return late / selected, int(selected)


def uniform_late_share(n_layers: int) -> float:
    """The late third's share of the layers (layer ℓ late when 3ℓ ≥ 2L): what a layer-blind set would hold."""
    return (n_layers - (-(-2 * n_layers // 3))) / n_layers


def t_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): the 95% Student-t interval of a mean over replicates (None below 2 values)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def finding_e(neurons: Sequence[Entry]) -> Finding:
    """(e): late share of each RM's per-seed sets vs the uniform share, and vs the backbone's sets if present."""
    rows = [r for r in neurons if r.get("method") != "random" and "seed" in r and r.get("aggregate") is None]
    if not any(r.get("objective") in ("helpful", "harmless", "mixed") for r in rows):
        return Finding("e", CLAIMS["e"], NOT_RUN, "summary.json has no per-seed `neurons` rows")
    if any(r.get("method") == PAPER_METHOD for r in rows):
        rows = [r for r in rows if r.get("method") == PAPER_METHOD]
    groups: dict[tuple[Any, ...], dict[Any, Entry]] = {}
    for r in rows:
        key = (r.get("backbone"), r.get("method"), r.get("site"), r.get("k"), r.get("objective"))
        groups.setdefault(key, {})[r.get("seed")] = r
    evidence: list[Evidence] = []
    for (bb, method, site, k, obj), by_seed in groups.items():
        if obj not in ("helpful", "harmless", "mixed"):
            continue
        label = f"{bb}: {obj} RM, {method} ({site}, k={k}), late share"
        shares = {s: _late(r) for s, r in by_seed.items()}
        shares = {s: v for s, v in shares.items() if v is not None}
        n_layers = max(int(_f(r.get("n_layers")) or 0) for r in by_seed.values())
        if not shares or n_layers < 3:
            why = "no thirds recorded" if not shares else f"{n_layers} layer(s): thirds need at least 3"
            evidence.append(Evidence(label, None, None, None, len(shares), INCONCLUSIVE, why, "share"))
            continue
        uniform = uniform_late_share(n_layers)
        vals = [v[0] for v in shares.values()]
        ti = t_interval(vals)
        mean = sum(vals) / len(vals)
        if ti is None or min(v[1] for v in shares.values()) < MIN_ITEMS:
            evidence.append(Evidence(label, mean, None, None, len(vals), INCONCLUSIVE,
                                     f"{len(vals)} seed(s): an interval over seeds needs {MIN_SEEDS}"
                                     if ti is None else f"fewer than {MIN_ITEMS} neurons selected", "share", uniform))
            continue
        _, lo, hi = ti
        verdict = interval_verdict(lo, hi, +1, uniform)
        note = f"uniform share {100 * uniform:.1f}%"
        base = groups.get((bb, method, site, k, "backbone"))
        if base:
            common = [s for s in shares if s in base and _late(base[s]) is not None]
            diffs = [shares[s][0] - _late(base[s])[0] for s in common]  # type: ignore[index]
            bt = t_interval(diffs)
            base_mean = [_late(b)[0] for b in base.values() if _late(b) is not None]  # type: ignore[index]
            btxt = f"backbone {100 * sum(base_mean) / len(base_mean):.1f}%" if base_mean else "backbone —"
            if verdict == SUPPORTED:
                bv = interval_verdict(bt[1], bt[2], +1) if bt else INCONCLUSIVE
                if bv != SUPPORTED:
                    verdict = INCONCLUSIVE_BACKBONE
                    note += (f"; not later than the untrained backbone's set ({btxt}; difference "
                             f"{_iv(bt[1], bt[2]) + ' pp' if bt else 'needs 2 paired seeds'})")
                else:
                    note += f"; later than the backbone's set ({btxt}; difference {_iv(bt[1], bt[2])} pp)"
            else:
                note += f"; {btxt}"
        else:
            note += "; no backbone baseline"
        evidence.append(Evidence(label, mean, lo, hi, len(vals), verdict, note, "share", uniform))
    verdict = combine([e.verdict for e in evidence])
    return Finding("e", CLAIMS["e"], verdict, _reason(verdict, evidence, []), evidence)


# --------------------------------------------------------------------------- all five


def _reason(verdict: str, evidence: Sequence[Evidence], missing: Sequence[str]) -> str:
    """One line: how many comparisons point which way, and the first one that decided the verdict."""
    if not evidence:
        return "no comparison could be made" + (f" (missing: {', '.join(missing)})" if missing else "")
    counts: dict[str, int] = {}
    for e in evidence:
        counts[e.verdict] = counts.get(e.verdict, 0) + 1
    tally = ", ".join(f"{n} {v}" for v, n in counts.items())
    lead = next((e for e in evidence if e.verdict == verdict), None) or next(
        (e for e in evidence if e.verdict != SUPPORTED), evidence[0])
    text = f"{len(evidence)} comparison{'s' if len(evidence) != 1 else ''} ({tally}); e.g. {lead.label}: {lead.note}"
    if missing:
        text += f"; missing: {', '.join(missing)}"
    return text


def findings(summary: Mapping[str, Any]) -> list[Finding]:
    """The five findings of a parsed ``summary.json`` (a dict of its lists; absent lists count as empty)."""
    def lst(key: str) -> list[Entry]:
        v = summary.get(key)
        return list(v) if isinstance(v, list) else []

    return [finding_a(lst("contrasts")), finding_b(lst("contrasts")), finding_c(lst("ablation_stats")),
            finding_d(lst("ablation_stats")), finding_e(lst("neurons"))]
