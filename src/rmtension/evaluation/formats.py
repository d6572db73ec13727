"""Evaluation results in the community's formats, written beside ``results.json``.

``rewardbench``: ``OUT/rewardbench.json``, the per-model results file RewardBench's tooling reads.
What RewardBench writes (allenai/reward-bench, newest commit 05a9005efb607249822c193590c8ecab87c77052):
``scripts/run_rm.py`` builds ``results_grouped`` = ``{"model": args.model, "model_type": model_type
("Seq. Classifier" for an ``AutoModelForSequenceClassification`` RM, rewardbench/models/__init__.py
REWARD_MODEL_CONFIG["default"]), "chat_template": "tokenizer" when the tokenizer has a chat template
(else the fastchat template name), <subset>: accuracy for every subset present}`` and saves it with
``rewardbench/utils.py::save_to_hub`` as ``results/eval-set/<model>.json`` (``json.dumps(...,
indent=4, sort_keys=True)``). The leaderboard (``analysis/get_benchmark_results.py::load_results`` and
``get_average_over_rewardbench``) reads those flat files into a DataFrame, drops ``chat_template``,
and computes the section scores (Chat, Chat Hard, Safety, Reasoning) from the subset columns with
EXAMPLE_COUNTS weights; ``run_rm.py`` prints the same sections (``utils.calculate_scores_per_section``).

We write the same flat object, plus the section scores under their section names (computed by
:func:`rmtension.evaluation.aggregate.rewardbench_section_scores`, the function behind our own
``results.json`` sections, so the numbers are ours; the leaderboard recomputes them from the
subsets and gets the same values). Sections with no subset present are left out (RewardBench's
helper would write 0, which reads as a score). Subsets come from every benchmark whose subsets are
RewardBench's: ``rewardbench`` and ``llmbar`` (RewardBench's five ``llmbar-*`` subsets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rmtension.errors import RmtensionError
from rmtension.evaluation.aggregate import REWARDBENCH_EXAMPLE_COUNTS, rewardbench_section_scores
from rmtension.files import write_atomic
from rmtension.registry import Registry

REWARDBENCH_FILE = "rewardbench.json"
REWARDBENCH_MODEL_TYPE = "Seq. Classifier"
REWARDBENCH_BENCHMARKS = ("rewardbench", "llmbar")
REWARDBENCH_META_KEYS = ("model", "model_type", "chat_template")

Writer = Callable[[Path, dict[str, Any], dict[str, Any]], Path]
FORMATS: Registry[Writer] = Registry("results format")


def rewardbench_subsets(results: dict[str, Any]) -> dict[str, float]:
    """RewardBench subset accuracies found in ``results.json``'s benchmarks (NaN/None scores left out)."""
    out: dict[str, float] = {}
    for name, entry in (results.get("benchmarks") or {}).items():
        if name.split(":")[0] not in REWARDBENCH_BENCHMARKS:
            continue
        for subset, s in entry.get("subsets", {}).items():
            score = s.get("score")
            if subset in REWARDBENCH_EXAMPLE_COUNTS and isinstance(score, (int, float)) and score == score:
                if subset in out and out[subset] != score:
                    raise RmtensionError(f"RewardBench subset {subset!r} is scored twice with different results "
                                         f"(benchmarks {', '.join(results['benchmarks'])}); evaluate it once")
                out[subset] = float(score)
    return out


def rewardbench_results(results: dict[str, Any], model: str, chat_template: str) -> dict[str, Any]:
    """The flat RewardBench results object (see the module docstring) for one evaluation."""
    subsets = rewardbench_subsets(results)
    if not subsets:
        raise RmtensionError("--format rewardbench needs RewardBench subsets: evaluate on rewardbench or llmbar")
    sections = rewardbench_section_scores(subsets)
    return {"model": model, "model_type": REWARDBENCH_MODEL_TYPE, "chat_template": chat_template,
            **dict(sorted(subsets.items())), **sections}


@FORMATS.register("rewardbench")
def write_rewardbench(out_dir: Path, results: dict[str, Any], about: dict[str, Any]) -> Path:
    """``OUT/rewardbench.json``; ``about``: ``model`` (a name, not a path) and ``chat_template``."""
    import json

    obj = rewardbench_results(results, str(about.get("model", "rm")), str(about.get("chat_template", "tokenizer")))
    path = Path(out_dir) / REWARDBENCH_FILE
    # RewardBench's own serialisation: indent 4, keys sorted (rewardbench/utils.py::save_to_hub)
    write_atomic(path, lambda fh: fh.write(json.dumps(obj, indent=4, sort_keys=True)))
    return path


def rewardbench_chat_template(tokenizer: Any, template: str) -> str:
    """RewardBench's ``chat_template`` value: "tokenizer" when the RM folder's own chat template renders
    exactly the text that was scored (any RM saved by rmtension, or ``--template chat`` on a template that
    ends with EOS), else ``rmtension-<template>``."""
    from rmtension.models.portable import render_matches

    return "tokenizer" if render_matches(tokenizer, template) else f"rmtension-{template}"


def check_formats(formats: list[str] | tuple[str, ...], benchmarks: list[str]) -> None:
    """Fail before any scoring when a format cannot be written from these benchmarks."""
    for f in formats:
        FORMATS.get(f)
        if f == "rewardbench" and not any(b.split(":")[0] in REWARDBENCH_BENCHMARKS for b in benchmarks):
            raise RmtensionError("--format rewardbench needs RewardBench subsets: evaluate on rewardbench or llmbar")


def write_formats(out_dir: str | Path, formats: list[str] | tuple[str, ...], results: dict[str, Any],
                  about: dict[str, Any]) -> list[Path]:
    """Write every requested format beside results.json; unknown names fail before anything is written."""
    writers = [FORMATS.get(f) for f in dict.fromkeys(formats)]
    return [w(Path(out_dir), results, about) for w in writers]


def model_name(rm: str | Path) -> str:
    """The name RewardBench's files carry for a local RM: its folder's name (never a local path)."""
    return Path(rm).expanduser().resolve().name or "rm"


__all__ = ["FORMATS", "check_formats", "REWARDBENCH_FILE", "model_name", "rewardbench_chat_template", "rewardbench_results",
           "rewardbench_subsets", "write_formats", "write_rewardbench"]
