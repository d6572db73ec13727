"""A study's train step on several processes (GPUs) under accelerate, inside one executor task.

Why: a cell whose training needs several GPUs still is one step of the graph (one Ray task holding N GPUs);
inside it, ``accelerate launch`` starts N processes that train together, as ``accelerate launch -m
rmtension train`` does by hand. The config's ``batch_size`` stays the *global* batch (what the step's key
says): each process gets ``batch_size / N`` pairs per step (the trainer's batch is per process, and N
processes × B/N pairs equals one process × B pairs, tests/test_training.py). The step's folder, its
``step.json`` (written by the task's own process after every training process has finished) and its
resume-from-checkpoint behaviour are those of a one-process training.

    python -m accelerate.commands.launch --multi_gpu --num_processes N -m rmtension.study.launch WORK RM_DIR
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rmtension.errors import RmtensionError
from rmtension.study.pipeline import Step, TrainAction, train_outcome

RECORD = "rmtension.json"  # the RM folder's training record (rmtension.training.trainer)


def per_process(tcfg: Any, processes: int) -> Any:
    """The training config of one of ``processes`` processes: the global batch split evenly."""
    if tcfg.batch_size % processes:
        raise RmtensionError(f"training batch_size {tcfg.batch_size} does not split evenly over {processes} "
                             "processes (GPUs per training); choose a divisor")
    return replace(tcfg, batch_size=tcfg.batch_size // processes)


@dataclass(frozen=True)
class LaunchedTrain:
    """A train step's action that trains on ``processes`` processes (one per GPU) under accelerate."""

    train: TrainAction
    processes: int

    def __call__(self, step: Step) -> dict:
        work = step.folder.parent / f".{step.folder.name}.launch"  # beside the folder: not one of its outputs
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "config.json").write_text(json.dumps(asdict(per_process(self.train.tcfg, self.processes))))
        rm = step.folder / "rm"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(self.processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "rmtension.study.launch", str(work), str(rm)]
        done = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
        if done.returncode != 0:
            raise RmtensionError(f"training on {self.processes} processes failed (exit {done.returncode}); "
                                 "its output is in this worker's log")
        shutil.rmtree(work, ignore_errors=True)
        return train_outcome(json.loads((rm / RECORD).read_text(encoding="utf-8")))


def launched(step: Step, processes: int) -> Step:
    """``step`` with its training spread over ``processes`` processes (same kind, params and key)."""
    if processes <= 1 or not isinstance(step.action, TrainAction):
        return step
    return replace(step, action=LaunchedTrain(step.action, processes))


def main(argv: list[str]) -> int:
    """One training process: the per-process config from WORK, the RM folder, resume like the step does."""
    from rmtension.training.config import TrainConfig
    from rmtension.training.trainer import train

    work, rm = Path(argv[0]), Path(argv[1])
    tcfg = TrainConfig(**json.loads((work / "config.json").read_text(encoding="utf-8")))
    train(tcfg, rm, resume=True, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
