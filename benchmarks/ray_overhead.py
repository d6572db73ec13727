"""What the Ray executor costs per step, apart from the steps' own work (issue 17).

Every step of a study's plan gets a no-op action (it writes one small file), so what is left is the
executor: for the serial run, the cache bookkeeping (step.json, output manifest); for Ray, that plus
pickling the step, submitting the task, a worker picking it up, its running record, and the driver
learning that it finished. Ray's start-up and the shared-storage probe are timed apart: they are paid
once per run, not per step.

    python benchmarks/ray_overhead.py --config configs/tiny.yaml --cpus 1
    python benchmarks/ray_overhead.py --config configs/tiny.yaml --cpus 2

With ``--cpus 1`` the tasks run one at a time, so (Ray time − serial time) / steps is the overhead per step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rmtension.study.config import load_study_config
from rmtension.study.pipeline import build_plan, execute
from rmtension.study.presets import resolve_config


def noop(step) -> dict:
    """The stand-in for a step's work: one small output file."""
    (step.folder / "out.txt").write_text(step.label)
    return {}


def plan_of(config: str, root: Path, data_dir: str | None):
    plan = build_plan(load_study_config(resolve_config(config)), root, data_dir)
    for st in plan.steps:
        st.action = noop
    return plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cpus", type=int, default=1)
    args = ap.parse_args()
    import ray

    from rmtension.study.ray_executor import RayOptions, check_shared_storage, execute_ray

    with tempfile.TemporaryDirectory() as tmp:
        serial = plan_of(args.config, Path(tmp) / "serial", args.data_dir)
        t0 = time.perf_counter()
        execute(serial, echo=lambda s: None)
        t_serial = time.perf_counter() - t0
        n = len(serial.steps)

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
        t_init = time.perf_counter() - t0
        try:
            root = Path(tmp) / "ray"
            root.mkdir()
            t0 = time.perf_counter()
            check_shared_storage(ray, root)
            t_probe = time.perf_counter() - t0
            plan = plan_of(args.config, root, args.data_dir)
            t0 = time.perf_counter()
            execute_ray(plan, echo=lambda s: None, options=RayOptions(poll_s=0.2))
            t_ray = time.perf_counter() - t0  # includes its own storage probe and cluster query
        finally:
            ray.shutdown()
    print(f"{n} steps of {args.config} with no-op actions; local Ray cluster of {args.cpus} CPU(s)")
    print(f"serial executor: {t_serial:.2f} s ({t_serial / n * 1000:.0f} ms per step: cache bookkeeping)")
    print(f"Ray start-up (ray.init): {t_init:.1f} s; storage probe: {t_probe:.2f} s (once per run)")
    print(f"Ray executor: {t_ray:.2f} s ({t_ray / n * 1000:.0f} ms per step; "
          f"{(t_ray - t_probe - t_serial) / n * 1000:.0f} ms per step more than serial, probe excluded)")


if __name__ == "__main__":
    main()
