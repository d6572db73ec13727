"""``rmtension run``, ``plan`` and ``quickstart``: the whole study from one config."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rmtension.cli.common import add_data_dir, add_json, check_out_dir, emit

CONFIG_HELP = ("study config: a YAML file, or the name of a built-in one (tiny, paper, smollm2-cpu, evidence-cpu, "
               "quickstart; `rmtension plan NAME` shows its steps)")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a whole study (grid of backbones × objectives × seeds) from a config: a built-in name "
                       "(tiny, paper, ...) or a YAML file",
                       description="Train, evaluate, score and select neurons, ablate, compare and report, for every "
                       "cell of the grid. Each step's output is cached under OUT/steps/ keyed by its inputs: an "
                       "interrupted study resumes where it stopped, and an unchanged one finishes in seconds. "
                       "Cached outputs are checked against the sizes and hashes recorded when their step finished. "
                       "One run at a time works in OUT (OUT/.lock; cells of `plan --jobs` may run side by side).")
    r.add_argument("config", help=CONFIG_HELP)
    r.add_argument("--out", required=True, help="study folder")
    add_data_dir(r)
    r.add_argument("--dry-run", action="store_true", help="print the plan (what will run, what is cached) and stop")
    r.add_argument("--cell", default=None, metavar="BACKBONE/OBJECTIVE/SEED",
                   help="run only this grid cell's steps (for parallel jobs; see `rmtension plan --jobs`)")
    r.add_argument("--no-report", action="store_true", help="skip the report at the end")
    r.add_argument("--verify", action="store_true",
                   help="check the SHA-256 of every cached output before reusing it (by default only sizes, and "
                   "hashes of files under 16 MiB); a step whose outputs changed is run again")
    add_json(r)
    r.set_defaults(func=run_study)

    p = sub.add_parser("plan", help="print a study's steps, or one command per independent grid cell (--jobs)",
                       description="Print every step of a study config (to run or cached in OUT) without running "
                       "anything, or with --jobs one `rmtension run --cell` command per grid cell for a scheduler.")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--out", default=None, help="study folder whose cached steps to show (default: none, all to run)")
    add_data_dir(p)
    p.add_argument("--jobs", action="store_true",
                   help="print one `rmtension run --cell` command per grid cell, for a scheduler (SLURM array, "
                   "accelerate on several GPUs, ...); a final plain `rmtension run` then gathers")
    add_json(p)
    p.set_defaults(func=run_plan)

    q = sub.add_parser("quickstart", help="a small built-in study that runs offline on a 2-core CPU (≤30 min)",
                       description="Trains helpful, harmless and mixed RMs from smollm2-135m-instruct on a few hundred "
                       "offline HH-RLHF pairs, evaluates them on RM-Bench, LLMBar and held-out HH data, finds and "
                       "ablates their neurons, and writes the report. The sizes, and why, are in the built-in "
                       "config (`rmtension plan quickstart` lists its steps; src/rmtension/configs/quickstart.yaml in a checkout).")
    q.add_argument("--out", default="rmtension-quickstart", help="study folder (default: ./rmtension-quickstart)")
    add_data_dir(q)
    q.add_argument("--backbone", default=None, help="override the backbone (e.g. tiny-llama for a 1-minute smoke run)")
    add_json(q)
    q.set_defaults(func=run_quickstart)


def _load(args: argparse.Namespace, out: str | None = None):
    """The study config (a file or a built-in name) and its plan in ``out`` (default: ``--out``)."""
    from rmtension.study.config import load_study_config
    from rmtension.study.pipeline import build_plan
    from rmtension.study.presets import resolve_config

    path = resolve_config(args.config)
    cfg = load_study_config(path)
    return path, cfg, build_plan(cfg, out if out is not None else args.out, args.data_dir)


def _progress_line(line: str) -> None:
    """A study's step lines (what runs, how long it took, the ETA) are progress: stderr, not the result."""
    print(line, file=sys.stderr, flush=True)


def run_study(args: argparse.Namespace) -> int:
    from rmtension.study.pipeline import describe

    path, cfg, plan = _load(args)
    if args.dry_run:
        rows = describe(plan, args.cell)
        n = sum(r["status"] == "to run" for r in rows)
        emit(args, rows, lambda: "\n".join([*(f"{r['status']:8s} {r['step']:48s} {r['folder']}" for r in rows),
                                            f"{len(rows)} steps, {n} to run, {len(rows) - n} cached"]))
        return 0
    config_text = path.read_bytes()  # read before the study folder is touched
    result = _execute(plan, args.out, args.cell, report=not args.no_report and cfg.report.enabled,
                      config_text=config_text, verify=args.verify, quiet=args.quiet)
    emit(args, result, lambda: _result_text(result))
    return 0


def _result_text(result: dict) -> str:
    lines = [f"{result['ran']} steps run, {result['cached']} cached"]
    lines += [f"{k}: {result[k]}" for k in ("summary", "report") if result.get(k)]
    return "\n".join(lines)


def _execute(plan, out: str, cell: str | None, report: bool, config_text: bytes | None = None,
             verify: bool = False, quiet: bool = False) -> dict:
    """Run the plan while holding the study folder's lock (see ``rmtension.study.lock``)."""
    from rmtension.study.lock import study_lock

    check_out_dir(out)  # a file or a path under a file: refused before the lock creates anything
    with study_lock(Path(out), cell):
        return _execute_locked(plan, Path(out), cell, report, config_text, verify, quiet)


def _execute_locked(plan, root: Path, cell: str | None, report: bool, config_text: bytes | None,
                    verify: bool, quiet: bool) -> dict:
    """Run the steps (their lines on stderr), then gather the summary and the report; return what was done."""
    from rmtension.cli.common import library_output_to_stderr
    from rmtension.files import write_atomic
    from rmtension.study.pipeline import execute, write_summary

    if config_text is not None:
        write_atomic(root / "config.yaml", lambda fh: fh.write(config_text), binary=True)
    echo = (lambda s: None) if quiet else _progress_line
    with library_output_to_stderr():  # HF Trainer's log dicts are progress, not the study's result
        counts = execute(plan, cell, echo=echo, verify=verify)
    result: dict = {"out": str(root), **counts, "summary": None, "report": None}
    if cell is not None:
        return result
    result["summary"] = str(write_summary(plan))
    if report:
        from rmtension.report import build_report

        with library_output_to_stderr():
            result["report"] = str(build_report(root))
    return result


def run_plan(args: argparse.Namespace) -> int:
    from rmtension.study.pipeline import describe

    # Without --out nothing is cached: the plan of a fresh folder (its name only shows in --jobs commands).
    out = args.out if args.out is not None else "OUT"
    _, _, plan = _load(args, out)
    if not args.jobs:
        rows = describe(plan) if args.out is not None else [{**r, "status": "to run"} for r in describe(plan)]
        emit(args, rows, lambda: "\n".join(f"{r['status']:8s} {r['step']}" for r in rows))
        return 0
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    jobs = [shlex.join(["rmtension", "run", args.config, "--out", out, "--cell", cell, *extra]) for cell in plan.cells()]
    final = shlex.join(["rmtension", "run", args.config, "--out", out, *extra])
    emit(args, {"jobs": jobs, "then": final}, lambda: "\n".join(jobs))
    if not args.json and not args.quiet:
        print("# then, once every cell has finished (shared-neuron ablation, comparisons and the report):",
              file=sys.stderr)
        print("# " + final, file=sys.stderr)
    return 0


def run_quickstart(args: argparse.Namespace) -> int:
    from rmtension.study.config import config_from_dict
    from rmtension.study.pipeline import build_plan
    from rmtension.study.presets import quickstart_config

    raw = quickstart_config()
    if args.backbone:
        raw["backbones"] = [args.backbone]
    cfg = config_from_dict(raw, source="quickstart")
    out = check_out_dir(args.out)
    if not args.quiet:
        _progress_line(f"rmtension quickstart: the report will be at {out.resolve() / 'report' / 'report.html'} "
                       f"(and report.md beside it)")
    plan = build_plan(cfg, out, args.data_dir)
    import yaml

    result = _execute(plan, str(out), None, report=True, config_text=yaml.safe_dump(raw, sort_keys=False).encode(),
                      quiet=args.quiet)
    emit(args, result, lambda: _result_text(result))
    return 0
