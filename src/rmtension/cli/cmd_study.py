"""``rmtension run``, ``plan`` and ``quickstart``: the whole study from one config."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rmtension.cli.common import add_data_dir, check_out_dir, print_json


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a whole study (grid of backbones × objectives × seeds) from a YAML config",
                       description="Train, evaluate, score and select neurons, ablate, compare and report, for every "
                       "cell of the grid. Each step's output is cached under OUT/steps/ keyed by its inputs: an "
                       "interrupted study resumes where it stopped, and an unchanged one finishes in seconds. "
                       "Cached outputs are checked against the sizes and hashes recorded when their step finished. "
                       "One run at a time works in OUT (OUT/.lock; cells of `plan --jobs` may run side by side).")
    r.add_argument("config", help="study YAML file (see configs/)")
    r.add_argument("--out", required=True, help="study folder")
    add_data_dir(r)
    r.add_argument("--dry-run", action="store_true", help="print the plan (what will run, what is cached) and stop")
    r.add_argument("--cell", default=None, metavar="BACKBONE/OBJECTIVE/SEED",
                   help="run only this grid cell's steps (for parallel jobs; see `rmtension plan --jobs`)")
    r.add_argument("--no-report", action="store_true", help="skip the report at the end")
    r.add_argument("--verify", action="store_true",
                   help="check the SHA-256 of every cached output before reusing it (by default only sizes, and "
                   "hashes of files under 16 MiB); a step whose outputs changed is run again")
    r.add_argument("--json", action="store_true", help="with --dry-run, print the plan as JSON")
    r.set_defaults(func=run_study)

    p = sub.add_parser("plan", help="print a study's steps, or one command per independent grid cell (--jobs)")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="study folder")
    add_data_dir(p)
    p.add_argument("--jobs", action="store_true",
                   help="print one `rmtension run --cell` command per grid cell, for a scheduler (SLURM array, "
                   "accelerate on several GPUs, ...); a final plain `rmtension run` then gathers")
    p.set_defaults(func=run_plan)

    q = sub.add_parser("quickstart", help="a small built-in study that runs offline on a 2-core CPU (≤30 min)",
                       description="Trains helpful, harmless and mixed RMs from smollm2-135m-instruct on a few hundred "
                       "offline HH-RLHF pairs, evaluates them on RM-Bench, LLMBar and held-out HH data, finds and "
                       "ablates their neurons, and writes the report. See configs/quickstart.yaml for the sizes.")
    q.add_argument("--out", default="rmtension-quickstart", help="study folder (default: ./rmtension-quickstart)")
    add_data_dir(q)
    q.add_argument("--backbone", default=None, help="override the backbone (e.g. tiny-llama for a 1-minute smoke run)")
    q.set_defaults(func=run_quickstart)


def _load(args: argparse.Namespace):
    from rmtension.study.config import load_study_config
    from rmtension.study.pipeline import build_plan

    cfg = load_study_config(args.config)
    return cfg, build_plan(cfg, args.out, args.data_dir)


def run_study(args: argparse.Namespace) -> int:
    from rmtension.study.pipeline import describe

    cfg, plan = _load(args)
    if args.dry_run:
        rows = describe(plan, args.cell)
        if args.json:
            print_json(rows)
        else:
            for row in rows:
                print(f"{row['status']:8s} {row['step']:48s} {row['folder']}")
            n = sum(r["status"] == "to run" for r in rows)
            print(f"{len(rows)} steps, {n} to run, {len(rows) - n} cached")
        return 0
    config_text = Path(args.config).read_bytes()  # read before the study folder is touched
    return _execute(plan, args.out, args.cell, report=not args.no_report and cfg.report.enabled,
                    config_text=config_text, verify=args.verify)


def _execute(plan, out: str, cell: str | None, report: bool, config_text: bytes | None = None,
             verify: bool = False) -> int:
    """Run the plan while holding the study folder's lock (see ``rmtension.study.lock``)."""
    from rmtension.study.lock import study_lock

    check_out_dir(out)  # a file or a path under a file: refused before the lock creates anything
    with study_lock(Path(out), cell):
        return _execute_locked(plan, Path(out), cell, report, config_text, verify)


def _execute_locked(plan, root: Path, cell: str | None, report: bool, config_text: bytes | None,
                    verify: bool) -> int:
    from rmtension.files import write_atomic
    from rmtension.study.pipeline import execute, write_summary

    if config_text is not None:
        write_atomic(root / "config.yaml", lambda fh: fh.write(config_text), binary=True)
    counts = execute(plan, cell, echo=lambda s: print(s, flush=True), verify=verify)
    print(f"{counts['ran']} steps run, {counts['cached']} cached", flush=True)
    if cell is not None:
        return 0
    summary = write_summary(plan)
    print(f"summary: {summary}")
    if report:
        from rmtension.report import build_report

        path = build_report(root)
        print(f"report: {path}")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from rmtension.study.pipeline import describe

    _, plan = _load(args)
    if not args.jobs:
        for row in describe(plan):
            print(f"{row['status']:8s} {row['step']}")
        return 0
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    for cell in plan.cells():
        print(shlex.join(["rmtension", "run", args.config, "--out", args.out, "--cell", cell, *extra]))
    print("# then, once every cell has finished (shared-neuron ablation, comparisons and the report):", file=sys.stderr)
    print("# " + shlex.join(["rmtension", "run", args.config, "--out", args.out, *extra]), file=sys.stderr)
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
    print(f"rmtension quickstart: the report will be at {out.resolve() / 'report' / 'report.html'} "
          f"(and report.md beside it)", flush=True)
    plan = build_plan(cfg, out, args.data_dir)
    import yaml

    return _execute(plan, str(out), None, report=True, config_text=yaml.safe_dump(raw, sort_keys=False).encode())
