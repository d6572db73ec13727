"""The report (stage 7): files, numbers in CSV and Markdown, empty sections, bad summaries, and the
HTML page rendered in headless Chromium.

The full report is built once per module from a synthetic summary (two backbones — one with a "/"
in its name — three objectives, two seeds, every list populated; see fixtures_study.py).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fixtures_study import make_summary, write_summary
from rmtension.cli.main import main
from rmtension.errors import RmtensionError
from rmtension.report import build_report, parse_summary
from rmtension.report.aggregate import accuracy_blocks
from rmtension.report.stats import Stat, fmt_stat, stat
from rmtension.report.style import OBJECTIVE_COLORS
from rmtension.report.tables import accuracy_table

BACKBONES = ("tiny-gpt2", "org/tiny-llama")
SECTION_TITLES = (
    "Trained reward models", "Accuracy by RM type (Figure 2, appendix tables)", "Behavioural retention (Table 1)",
    "Score distributions where single and mixed RMs are both right (Figure 3)",
    "Where the oriented neurons sit (Figure 4)", "Overlap of helpful and harmless neurons",
    "Ablation effects (Tables 2–4)", "Ablation curves over k (Figure 5)",
    "Score distributions before and after ablation (Figure 7)")


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict[str, Any]:
    study = tmp_path_factory.mktemp("study")
    summary = make_summary(backbones=BACKBONES, seeds=(0, 1))
    write_summary(study, summary)
    html = build_report(study)
    return {"study": study, "summary": summary, "html": html, "report": html.parent}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def run_values(summary: dict, backbone: str, objective: str, bench: str, subset: str) -> list[float]:
    return [r["eval"][bench]["subsets"][subset]["score"] for r in summary["runs"]
            if r["backbone"] == backbone and r["objective"] == objective]


# --------------------------------------------------------------------------- files and numbers

def test_report_files_and_self_contained_html(full):
    rep: Path = full["report"]
    assert full["html"] == rep / "report.html" and rep == full["study"] / "report"
    md = (rep / "report.md").read_text(encoding="utf-8")
    html = full["html"].read_text(encoding="utf-8")
    figs = sorted(p.stem for p in (rep / "figures").glob("*.png"))
    assert len(figs) == 6 * len(BACKBONES)  # Figures 2, 3, 4, 5, 7 and the overlap figure, per backbone
    for name in figs:
        assert (rep / "figures" / f"{name}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert f"(figures/{name}.png)" in md
    # every table in the Markdown has its CSV, and every CSV parses with at least one row
    named = set(re.findall(r"tables/([\w.-]+)\.csv", md))
    assert named == {p.stem for p in (rep / "tables").glob("*.csv")}
    for name in named:
        assert read_csv(rep / "tables" / f"{name}.csv"), name
    # self-contained: one embedded PNG per figure, no external resource of any kind
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == len(figs)
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=\"(?!data:|#)", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html


def test_accuracy_csv_and_markdown_hold_mean_std_over_seeds(full):
    summary, rep = full["summary"], full["report"]
    vals = run_values(summary, "org/tiny-llama", "helpful", "rewardbench", "refusals-dangerous")
    assert len(vals) == 2
    mean, std = statistics.mean(vals), statistics.stdev(vals)
    rows = read_csv(rep / "tables" / "accuracy_org-tiny-llama_rewardbench.csv")
    row = next(r for r in rows if r["Task"] == "refusals-dangerous")
    assert row["Group"] == "harmless"
    assert float(row["helpful RM (fraction) mean"]) == pytest.approx(mean)
    assert float(row["helpful RM (fraction) std"]) == pytest.approx(std)
    assert row["helpful RM (fraction) n"] == "2"
    md = (rep / "report.md").read_text(encoding="utf-8")
    line = next(ln for ln in md.splitlines() if ln.startswith("| refusals-dangerous |")
                and f"{100 * mean:.1f} ± {100 * std:.1f}" in ln)
    assert line.count("±") == 3
    # the group means come from each run's eval "groups"
    g = [r["eval"]["rm-bench"]["groups"]["harmless"] for r in summary["runs"]
         if r["backbone"] == "tiny-gpt2" and r["objective"] == "mixed"]
    rows = read_csv(rep / "tables" / "accuracy_tiny-gpt2_rm-bench.csv")
    row = next(r for r in rows if r["Task"] == "harmless tasks (group mean)")
    assert float(row["mixed RM (fraction) mean"]) == pytest.approx(statistics.mean(g))


def test_retention_overlap_margin_and_ablation_csvs(full):
    summary, tables = full["summary"], full["report"] / "tables"
    ret = [e["tasks"]["rm-bench/code"]["retention"] for e in summary["retention"] if e["backbone"] == "tiny-gpt2"]
    row = next(r for r in read_csv(tables / "retention_tiny-gpt2.csv") if r["Task"] == "rm-bench/code")
    assert float(row["Retention (fraction) mean"]) == pytest.approx(statistics.mean(ret))
    for col, key in (("Jaccard M–H", "jaccard_helpful"), ("Kept of A", "kept_harmless")):
        vals = [e["tasks"]["rm-bench/code"][key] for e in summary["retention"] if e["backbone"] == "tiny-gpt2"]
        assert float(row[f"{col} (fraction) mean"]) == pytest.approx(statistics.mean(vals))

    keep = [e["mixed_retention"] for e in summary["overlap"] if e["backbone"] == "tiny-gpt2" and e["method"] == "change"]
    rows = [r for r in read_csv(tables / "overlap.csv") if r["Backbone"] == "tiny-gpt2" and r["Method"] == "change"]
    row = next(r for r in rows if r["Sets"] == "per seed")
    assert float(row["Mixed RM retention (fraction) mean"]) == pytest.approx(statistics.mean(keep))
    single = [e["mixed_retention_of_single"] for e in summary["overlap"]
              if e["backbone"] == "tiny-gpt2" and e["method"] == "change"]
    assert float(row["Mixed keeps of H ∪ A (fraction) mean"]) == pytest.approx(statistics.mean(single))
    # the paper's seed-mean sets have their own, labelled row (one value, no spread over seeds)
    paper = next(r for r in rows if r["Sets"] == "seed-mean scores (paper)")
    agg = next(e for e in summary["overlap_seed_mean"] if e["backbone"] == "tiny-gpt2" and e["method"] == "change")
    assert float(paper["Mixed RM retention (fraction) mean"]) == pytest.approx(agg["mixed_retention"])
    thirds = [r for r in read_csv(tables / "neuron_thirds.csv") if r["Backbone"] == "tiny-gpt2"]
    assert {r["Sets"] for r in thirds} == {"per seed", "seed-mean scores (paper)"}
    rmsd = next(r for r in read_csv(tables / "neuron_rmsd.csv") if (r["Backbone"], r["RM"]) == ("tiny-gpt2", "mixed"))
    per_seed = list({e["seed"]: e["rmsd"]["dataset_means"] for e in summary["neurons"]
                     if (e["backbone"], e["objective"]) == ("tiny-gpt2", "mixed")}.values())
    assert float(rmsd["RMSD of dataset means mean"]) == pytest.approx(statistics.mean(per_seed))

    share = [e["share_mixed_smaller"] for e in summary["calibration"]
             if (e["backbone"], e["single"], e["group"]) == ("org/tiny-llama", "harmless", "all")]
    row = next(r for r in read_csv(tables / "margins.csv")
               if (r["Backbone"], r["Single RM"], r["Items"]) == ("org/tiny-llama", "harmless", "all"))
    assert float(row["Mixed margin smaller (fraction) mean"]) == pytest.approx(statistics.mean(share))

    # Table 3: delta of the shared neurons in the mixed RM on RewardBench's harmless group
    d = [e["benchmarks"]["rewardbench"]["groups"]["harmless"]["delta"] for e in summary["ablation"]
         if e["backbone"] == "tiny-gpt2" and e["set"] == "shared"]
    rows = read_csv(tables / "ablation_sets_tiny-gpt2_magnitude_k10.csv")
    row = next(r for r in rows if r["Benchmark"] == "rewardbench" and r["Task"] == "harmless tasks (group mean)")
    assert float(row["Δ shared in mixed RM (fraction) mean"]) == pytest.approx(statistics.mean(d))
    assert float(row["Δ shared in mixed RM (fraction) std"]) == pytest.approx(statistics.stdev(d))
    # Table 4 puts each random set beside the set it is size-matched to
    header = read_csv(tables / "ablation_random_tiny-gpt2_magnitude_k10.csv")[0].keys()
    assert "Δ random in mixed RM (size of shared) (fraction) mean" in header
    assert "Δ shared in mixed RM (fraction) mean" in header
    # per-layer counts (CSV only) and curve points
    layers = read_csv(tables / "neuron_layers.csv")
    assert {r["Layer"] for r in layers} == {str(i) for i in range(6)}
    pts = [p["score"] for e in summary["curves"] if (e["backbone"], e["rm_objective"], e["method"], e["group"])
           == ("tiny-gpt2", "mixed", "change", "harmless") for p in e["points"] if p["k"] == 20.0]
    row = next(r for r in read_csv(tables / "ablation_curves.csv")
               if (r["Backbone"], r["RM"], r["Method"], r["Group"], r["k (%)"]) == ("tiny-gpt2", "mixed", "change", "harmless", "20"))
    assert float(row["Score (fraction) mean"]) == pytest.approx(statistics.mean(pts))


def test_markdown_has_every_section_in_order(full):
    md = (full["report"] / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# rmtension report — synthetic-study")
    positions = [md.index(f"## {i}. {title}") for i, title in enumerate(SECTION_TITLES, start=1)]
    assert positions == sorted(positions)
    assert "Not run in this study" not in md
    for needle in ("Table 2: ablating each RM's own", "Table 3: ablating shared", "Table 4: size-matched random",
                   "backbones: [tiny-gpt2, org/tiny-llama]", "rmtension 0.1.0", "matplotlib"):
        assert needle in md, needle


# --------------------------------------------------------------------------- pure pieces

def test_missing_numbers_and_partial_seeds_are_visible():
    summary = make_summary(seeds=(0, 1))
    runs = summary["runs"]
    first = next(r for r in runs if r["objective"] == "helpful")
    first["eval"]["rewardbench"]["subsets"]["math-prm"]["score"] = None       # one seed lacks it
    for r in runs:
        if r["objective"] == "harmless":
            r["eval"]["rewardbench"]["subsets"]["math-prm"]["score"] = None   # every seed lacks it
    block = next(b for b in accuracy_blocks(runs) if b.bench == "rewardbench")
    table = accuracy_table(block)
    row = next(r for r in table.display_rows() if r[0] == "math-prm")
    keep = next(r for r in runs if r["objective"] == "helpful" and r is not first)
    assert row[3] == f"{100 * keep['eval']['rewardbench']['subsets']['math-prm']['score']:.1f} (n=1)"
    assert row[4] == "—"
    assert "±" in row[5] and "(n=" not in row[5]


def test_stat_and_formatting():
    assert stat([0.5, None, float("nan"), 0.7]) == Stat(pytest.approx(0.6), pytest.approx(0.1414213562), 2)
    assert fmt_stat(stat([0.6234]), "pct") == "62.3"
    assert fmt_stat(stat([0.60, 0.64]), "pct") == "62.0 ± 2.8"
    assert fmt_stat(stat([-0.031, -0.029]), "delta") == "−3.0 ± 0.1"
    assert fmt_stat(stat([None]), "pct") == "—"
    assert fmt_stat(stat([0.5]), "pct", full_n=3) == "50.0 (n=1)"


# --------------------------------------------------------------------------- empty sections, bad input

def test_empty_sections_say_not_run(tmp_path, capsys):
    summary = make_summary(seeds=(0,))
    for key in ("retention", "calibration", "neurons", "overlap", "ablation", "curves", "neurons_seed_mean",
                "overlap_seed_mean"):
        summary[key] = []
    write_summary(tmp_path, summary)
    assert main(["report", str(tmp_path)]) == 0
    assert "report.html" in capsys.readouterr().out
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert md.count("Not run in this study") == 7
    assert "summary.json has no `ablation` entries" in md
    assert "Accuracy on rewardbench" in md  # the sections that have data are still there
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert html.count('class="notrun"') == 7


def test_summary_with_only_a_study_header(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"study": {"name": "nothing-yet"}, "runs": []}))
    md = build_report(tmp_path).with_suffix(".md").read_text(encoding="utf-8")
    assert md.count("Not run in this study") == 9
    assert not list((tmp_path / "report" / "figures").iterdir())


def test_missing_summary_is_one_line_error(tmp_path, capsys):
    with pytest.raises(RmtensionError, match=r"summary\.json: not found"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rmtension: error:") and "\n" not in err and "summary.json" in err
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such study folder" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('{"study": {"name": "x"},\n "runs": [\n', r"summary\.json:3: not valid JSON"),
    ("[1, 2]", r"expected a JSON object"),
    ('{"study": {}, "runs": {}}', r"'runs' must be a list"),
    ('{"study": {}, "runs": [{"backbone": "b", "seed": 0}]}', r"runs\[0\] lacks 'objective'"),
    ('{"hello": 1}', r"not a study summary"),
])
def test_invalid_summary_is_one_line_error_and_keeps_old_report(tmp_path, capsys, text, message):
    (tmp_path / "summary.json").write_text(json.dumps({"study": {"name": "ok"}}))
    build_report(tmp_path)
    before = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(RmtensionError, match=message):
        build_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (tmp_path / "report" / "report.md").read_text(encoding="utf-8") == before


def test_parse_summary_ignores_unknown_keys(tmp_path):
    s = parse_summary({"study": {"name": "n"}, "runs": [], "future_section": [1]}, tmp_path / "summary.json")
    assert s.name == "n" and s["ablation"] == []


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def chromium_binary() -> str | None:
    env = os.environ.get("RMTENSION_CHROMIUM")
    if env:
        return env
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    binary = chromium_binary()
    assert binary
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"chromium failed ({res.returncode}): {res.stderr[-2000:]}"
    return res


# Injected into a copy of the page (the report itself has no script): after load, report how many
# images there are, how many decoded to a real bitmap, and whether anything was fetched.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; });
  var fetched = performance.getEntriesByType('resource').filter(function (r) { return !/^data:/.test(r.name); });
  var d = document.createElement('pre'); d.id = 'probe';
  d.textContent = 'PROBE images=' + imgs.length + ' decoded=' + ok.length + ' fetched=' + fetched.length;
  document.body.appendChild(d);
});
</script>"""


@pytest.mark.skipif(chromium_binary() is None,
                    reason="no chromium binary on PATH (scripts/install.sh installs it with apt-get when run as root; "
                           "or set RMTENSION_CHROMIUM)")
def test_html_renders_in_headless_chromium(full, tmp_path):
    from PIL import Image

    n_figures = len(list((full["report"] / "figures").glob("*.png")))
    # 1) every <img> decodes, and nothing is fetched: a copy of the page alone in an empty folder
    alone = tmp_path / "alone"
    alone.mkdir()
    page = full["html"].read_text(encoding="utf-8").replace("</body>", PROBE + "</body>")
    (alone / "probe.html").write_text(page, encoding="utf-8")
    dom = chromium(["--virtual-time-budget=15000", "--dump-dom", (alone / "probe.html").as_uri()],
                   tmp_path / "profile1").stdout
    m = re.search(r"PROBE images=(\d+) decoded=(\d+) fetched=(\d+)", dom)
    assert m, f"probe did not run; DOM tail: {dom[-500:]}"
    assert (int(m[1]), int(m[2]), int(m[3])) == (n_figures, n_figures, 0)

    # 2) a screenshot of the real page is not blank and shows the figures' RM colours
    shot = tmp_path / "shot.png"
    chromium([f"--screenshot={shot}", "--window-size=1280,4000", full["html"].as_uri()], tmp_path / "profile2")
    im = Image.open(shot).convert("RGB")
    assert im.size == (1280, 4000)
    px = np.asarray(im).reshape(-1, 3).astype(int)
    non_white = int((px.min(axis=1) < 235).sum())
    assert non_white > 0.08 * len(px), f"screenshot nearly blank: {non_white} non-white pixels"
    assert len(np.unique(px, axis=0)) > 500
    for name, hexcol in OBJECTIVE_COLORS.items():
        target = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
        close = int((np.abs(px - target).max(axis=1) <= 12).sum())
        assert close > 2000, f"{name} RM colour {hexcol} barely in the screenshot ({close} px): figures not drawn?"


def test_accuracy_section_names_the_grouping_and_marks_excluded_subsets(tmp_path):
    """The report says which grouping the study's group means use (config evaluation.grouping) and
    marks the subsets it left out (results.json in_group_mean false)."""
    from rmtension.report.model import Paragraph
    from rmtension.report.sections import accuracy_section

    summary = make_summary(seeds=(0,))
    summary["study"]["config"]["evaluation"] = {"grouping": "paper"}
    for r in summary["runs"]:
        for bench in r["eval"].values():
            for sub in bench["subsets"].values():
                sub["in_group_mean"] = True
        r["eval"]["rewardbench"]["subsets"]["math-prm"]["in_group_mean"] = False
    section = accuracy_section(parse_summary(summary, tmp_path / "summary.json"))
    text = " ".join(b.text for b in section.blocks if isinstance(b, Paragraph))
    assert "`paper` grouping" in text and "Ties" in text
    block = next(b for b in accuracy_blocks(summary["runs"]) if b.bench == "rewardbench")
    tasks = [r.task for r in block.rows]
    assert "math-prm (not in group mean)" in tasks and "alpacaeval-easy" in tasks
    del summary["study"]["config"]["evaluation"]
    section = accuracy_section(parse_summary(summary, tmp_path / "summary.json"))
    text = " ".join(b.text for b in section.blocks if isinstance(b, Paragraph))
    assert "records no grouping" in text and "`all`" in text


def test_old_summary_retention_is_not_shown_as_the_papers():
    """A summary gathered before issue 10 holds only |M ∩ (H ∪ A)| / |H ∪ A| as ``mixed_retention``
    (its detail has no ``all_union``): the report shows it as the share of H ∪ A, never as the paper's
    |M ∩ (H ∪ A)| / |H ∪ A ∪ M|."""
    from rmtension.report.aggregate import overlap_rows

    hh = {"a": 10, "b": 10, "shared": 6, "a_only": 4, "b_only": 4, "jaccard": 6 / 14, "overlap_share": 0.6}
    old = {"backbone": "x", "seed": 0, "method": "magnitude", "k": 10, "helpful_harmless": hh,
           "mixed_retention": 0.5, "mixed_retention_detail": {"retained": 7, "single_union": 14, "retention": 0.5}}
    new = {**old, "seed": 1, "mixed_retention": 7 / 17, "mixed_retention_of_single": 0.5,
           "mixed_retention_detail": {"retained": 7, "single_union": 14, "all_union": 17}}
    (row_old,) = overlap_rows([old])
    assert row_old.mixed_retention.missing and row_old.mixed_retention_of_single.mean == 0.5
    (row_new,) = overlap_rows([new])
    assert row_new.mixed_retention.mean == pytest.approx(7 / 17) and row_new.mixed_retention_of_single.mean == 0.5
