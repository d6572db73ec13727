"""``rmtension plan --slurm``: the study as Slurm job arrays, for clusters without Ray.

One array per stage, each stage submitted with ``--dependency=afterok`` on the one before it:

1. ``cells``: one index per grid cell (backbone/objective/seed): ``rmtension run CONFIG --out OUT --cell C``
   trains that RM, evaluates it, scores its neurons and ablates them (the command ``plan --jobs`` prints);
2. ``groups``: one index per backbone × seed: ``rmtension run ... --step ...`` runs the steps that need
   several cells (the mixed RM's shared-neuron ablation, the comparisons, the overlap, the untrained
   backbone's baseline);
3. ``report``: one index: a plain ``rmtension run`` finds every step cached, gathers summary.json and
   writes the report.

Every index works on the same study folder and its step cache, so a failed index is fixed by submitting
the script again: finished steps are skipped. Resources are per stage (a GPU each for the model stages
unless ``gpus=0``; host memory from the largest backbone, ``study.graph.memory_hint``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from rmtension.study.graph import backbone_of, gib, group_steps, memory_hint
from rmtension.study.pipeline import Plan

END = "RMTENSION_STAGE"  # the here-document delimiter of each stage's batch script


@dataclass(frozen=True)
class Stage:
    """One job array: its name, one shell command per index, and what each index asks for."""

    name: str
    what: str
    commands: list[str]
    gpus: int
    cpus: int
    mem_gib: int | None


@dataclass(frozen=True)
class SlurmOptions:
    gpus: int = 1  # per index of the model stages; 0 for CPU-only clusters
    cpus: int = 4  # per index
    partition: str | None = None
    time: str | None = None  # per index, Slurm's format (e.g. 12:00:00)
    exe: tuple[str, ...] = ("rmtension",)  # the command each index runs (e.g. python -m rmtension)


def stages(plan: Plan, config: str, out: str, data_dir: str | None, opts: SlurmOptions) -> list[Stage]:
    """The study's stages: cells, then the per backbone × seed steps (if any), then the report."""
    base = [*opts.exe, "run", config, "--out", out, *(["--data-dir", data_dir] if data_dir else [])]
    on_gpu = opts.gpus > 0
    backbones = backbone_of(plan)

    def mem(kinds: set[str], steps=plan.steps) -> int | None:
        hints = [memory_hint(backbones[st.label], st.kind, on_gpu) for st in steps if st.kind in kinds]
        known = [h for h in hints if h is not None]
        return gib(max(known)) if known else None

    cell_kinds = {st.kind for st in plan.steps if st.cell is not None}
    out_stages = [Stage("cells", "train, evaluate, score neurons and ablate one RM per index (a grid cell)",
                        [shlex.join([*base, "--cell", c]) for c in plan.cells()], opts.gpus, opts.cpus,
                        mem(cell_kinds))]
    groups = group_steps(plan)
    if groups:
        steps = [st for sts in groups.values() for st in sts]
        out_stages.append(Stage(
            "groups", "per backbone × seed: shared-neuron ablation of the mixed RM, comparisons, overlap, "
            "the untrained backbone's baseline",
            [shlex.join([*base, *(a for st in sts for a in ("--step", st.label))]) for sts in groups.values()],
            opts.gpus, opts.cpus, mem({st.kind for st in steps}, steps)))
    out_stages.append(Stage("report", "every step cached: gather summary.json and write the report",
                            [shlex.join(base)], 0, min(opts.cpus, 2), 4))
    return out_stages


def slurm_script(plan: Plan, config: str, out: str, data_dir: str | None, opts: SlurmOptions,
                 workdir: str) -> str:
    """A bash script that submits one ``sbatch --array`` per stage, each after the previous one succeeded."""
    all_stages = stages(plan, config, out, data_dir, opts)
    logs = str(Path(out) / "slurm-logs")
    lines = [
        "#!/usr/bin/env bash",
        f"# rmtension study {plan.cfg.name!r} as Slurm job arrays: {len(all_stages)} stages, "
        f"{len(plan.cells())} cells, {len(plan.steps)} steps.",
        "# Submit with: bash THIS_FILE  (one `sbatch --array` per stage; each waits for the previous stage to",
        "# succeed, afterok). Every index runs `rmtension run` on the same study folder and its step cache:",
        "# after a failure, fix the cause and submit again; finished steps are skipped.",
        "# The compute nodes need this environment (sbatch exports it by default) and the study folder",
        "# at the same path (shared storage).",
        "set -euo pipefail",
        f"cd {shlex.quote(workdir)}",
        f"mkdir -p {shlex.quote(logs)}",
    ]
    prev: str | None = None
    for i, st in enumerate(all_stages, 1):
        var = f"jid_{st.name}"
        dep = f" --dependency=afterok:${prev} --kill-on-invalid-dep=yes" if prev else ""
        lines += ["", f"# stage {i}/{len(all_stages)}: {st.name} ({len(st.commands)} "
                      f"index{'es' if len(st.commands) != 1 else ''}): {st.what}",
                  f"{var}=$(sbatch --parsable{dep} <<'{END}'", "#!/usr/bin/env bash",
                  f"#SBATCH --job-name={re.sub(r'[^A-Za-z0-9._-]', '_', plan.cfg.name)}-{st.name}", f"#SBATCH --array=0-{len(st.commands) - 1}",
                  f"#SBATCH --cpus-per-task={st.cpus}"]
        if st.mem_gib is not None:
            lines.append(f"#SBATCH --mem={st.mem_gib}G")
        if st.gpus > 0:
            lines.append(f"#SBATCH --gres=gpu:{st.gpus}")
        if opts.partition:
            lines.append(f"#SBATCH --partition={opts.partition}")
        if opts.time:
            lines.append(f"#SBATCH --time={opts.time}")
        lines += [f"#SBATCH --output={logs}/%x-%A_%a.out", "set -euo pipefail", f"cd {shlex.quote(workdir)}",
                  'case "$SLURM_ARRAY_TASK_ID" in']
        lines += [f"  {j}) exec {cmd} ;;" for j, cmd in enumerate(st.commands)]
        lines += ['  *) echo "no command for index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac", END, ")",
                  f"{var}=${{{var}%%;*}}", f'echo "stage {st.name}: job ${var} ({len(st.commands)} indexes)"']
        prev = var
    return "\n".join(lines) + "\n"
