"""``rmtension run``, ``plan`` and ``quickstart``: the whole study from one config."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rmtension import validate as V
from rmtension.cli.common import add_data_dir, add_json, check_out_dir, emit
from rmtension.errors import RmtensionError

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
    r.add_argument("--step", action="append", default=None, metavar="KIND:NAME",
                   help="run only this step (repeatable; the names `rmtension plan` prints); its dependencies "
                   "must be complete (used by the `plan --slurm` script)")
    r.add_argument("--executor", choices=("serial", "ray"), default="serial",
                   help="serial (default): the steps one after another in this process; ray: each step a Ray "
                   "task with its resource request, independent cells side by side (pip install -e \".[ray]\"); "
                   "the step cache is the same, so either can finish a study the other started")
    r.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="with --executor ray: the Ray cluster to join (auto: the one `ray start` made on this "
                   "machine); default: start a local cluster on this machine's CPUs")
    r.add_argument("--cpus", type=V.positive_int, default=None,
                   help="with --executor ray and no --address: CPUs of the local cluster (default: all)")
    r.add_argument("--gpus-per-train", type=V.positive_int, default=1,
                   help="with --executor ray: train each RM on N GPUs at once (N processes under accelerate; N "
                   "CPUs where the cluster has no GPUs); the config's batch_size stays the global batch")
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
    p.add_argument("--slurm", action="store_true",
                   help="print a bash script that submits the study as Slurm job arrays: one array per stage "
                   "(cells, per backbone × seed steps, report), each after the previous one succeeded (afterok)")
    p.add_argument("--gpus", type=V.nonneg_int, default=1,
                   help="with --slurm: GPUs per index of the model stages (default 1; 0 on CPU-only clusters)")
    p.add_argument("--cpus", type=V.positive_int, default=4, help="with --slurm: CPUs per index (default 4)")
    p.add_argument("--partition", default=None, help="with --slurm: the Slurm partition")
    p.add_argument("--time", default=None, metavar="D-HH:MM:SS", help="with --slurm: time limit per index")
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
    from rmtension.study.pipeline import describe, select_steps

    if args.cell is not None and args.step:
        raise RmtensionError("--cell and --step: give one of them")
    ray_opts = None
    if args.executor == "ray":
        from rmtension.study.ray_executor import RayOptions, require_ray

        require_ray()  # before anything is touched: without Ray, say how to install it
        ray_opts = RayOptions(address=args.address, num_cpus=args.cpus, gpus_per_train=args.gpus_per_train)
    elif args.address is not None or args.cpus is not None or args.gpus_per_train != 1:
        raise RmtensionError("--address, --cpus and --gpus-per-train go with --executor ray")
    # Ray's workers may run elsewhere (another directory, another node): they get absolute folders.
    path, cfg, plan = _load(args, str(Path(args.out).resolve()) if ray_opts else None)
    if args.dry_run:
        rows = describe(plan, args.cell)
        if args.step:
            chosen = {st.label for st in select_steps(plan, None, args.step)}
            rows = [r for r in rows if r["step"] in chosen]
        n = sum(r["status"] == "to run" for r in rows)
        emit(args, rows, lambda: "\n".join([*(f"{r['status']:8s} {r['step']:48s} {r['folder']}" for r in rows),
                                            f"{len(rows)} steps, {n} to run, {len(rows) - n} cached"]))
        return 0
    config_text = path.read_bytes()  # read before the study folder is touched
    result = _execute(plan, args.out, args.cell, report=not args.no_report and cfg.report.enabled,
                      config_text=config_text, verify=args.verify, quiet=args.quiet, labels=args.step,
                      ray=ray_opts)
    emit(args, result, lambda: _result_text(result))
    return 0


def _result_text(result: dict) -> str:
    lines = [f"{result['ran']} steps run, {result['cached']} cached"]
    lines += [f"{k}: {result[k]}" for k in ("summary", "report") if result.get(k)]
    return "\n".join(lines)


def _steps_lock(labels: list[str]) -> str:
    """The lock name of a ``--step`` run: like a cell, the same steps cannot run twice at once."""
    import hashlib

    return "steps-" + hashlib.sha256("\n".join(sorted(labels)).encode()).hexdigest()[:12]


def _execute(plan, out: str, cell: str | None, report: bool, config_text: bytes | None = None,
             verify: bool = False, quiet: bool = False, labels: list[str] | None = None, ray=None) -> dict:
    """Run the plan while holding the study folder's lock (see ``rmtension.study.lock``)."""
    from rmtension.study.lock import study_lock

    check_out_dir(out)  # a file or a path under a file: refused before the lock creates anything
    part = cell if cell is not None else (_steps_lock(labels) if labels else None)
    with study_lock(Path(out), part):
        return _execute_locked(plan, Path(out), cell, report, config_text, verify, quiet, labels, ray)


def _execute_locked(plan, root: Path, cell: str | None, report: bool, config_text: bytes | None,
                    verify: bool, quiet: bool, labels: list[str] | None = None, ray=None) -> dict:
    """Run the steps (their lines on stderr), then gather the summary and the report; return what was done."""
    from rmtension.cli.common import library_output_to_stderr
    from rmtension.files import write_atomic
    from rmtension.study.pipeline import execute, write_summary

    if config_text is not None:
        write_atomic(root / "config.yaml", lambda fh: fh.write(config_text), binary=True)
    echo = (lambda s: None) if quiet else _progress_line
    with library_output_to_stderr():  # HF Trainer's log dicts are progress, not the study's result
        if ray is not None:
            from rmtension.study.ray_executor import execute_ray

            counts = execute_ray(plan, cell, echo=echo, verify=verify, labels=labels, options=ray)
        else:
            counts = execute(plan, cell, echo=echo, verify=verify, labels=labels)
    result: dict = {"out": str(root), **counts, "summary": None, "report": None}
    if cell is not None or labels:
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
    if args.jobs and args.slurm:
        raise RmtensionError("--jobs and --slurm: give one of them")
    if args.slurm and args.out is None:
        raise RmtensionError("--slurm needs --out: the study folder every index works in")
    _, _, plan = _load(args, out)
    if args.slurm:
        return _print_slurm(args, plan, out)
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


def _print_slurm(args: argparse.Namespace, plan, out: str) -> int:
    """The Slurm script (``rmtension.study.slurm``) on stdout; with --json, its stages as data too."""
    import os

    from rmtension.study.presets import resolve_config
    from rmtension.study.slurm import SlurmOptions, slurm_script, stages

    config = args.config if not Path(args.config).is_file() else str(resolve_config(args.config).resolve())
    out_abs = str(Path(out).resolve())
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    opts = SlurmOptions(gpus=args.gpus, cpus=args.cpus, partition=args.partition, time=args.time)
    script = slurm_script(plan, config, out_abs, data_dir, opts, os.getcwd())
    emit(args, {"script": script, "stages": [{"name": st.name, "indexes": len(st.commands), "gpus": st.gpus,
                                              "cpus": st.cpus, "mem_gib": st.mem_gib, "commands": st.commands}
                                             for st in stages(plan, config, out_abs, data_dir, opts)]},
         lambda: script.rstrip("\n"))
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
