"""``rmtension run --executor ray``: every step of the study a Ray task, placed where its resources are.

Why Ray and not a home-made pool: users who outgrow one machine already run Ray clusters (or can start
one with ``ray start``); Ray brings placement by resources, retries when a worker or node dies, and
dependency-ordered execution, none of which a study should reimplement.

How the study maps onto it:

* Each step not already complete becomes one task with its resource request (``task_options``: a GPU
  for model steps where the cluster has GPUs, otherwise a CPU; a host-memory hint from the backbone's
  size, ``study.graph.memory_hint``). A step's unfinished dependencies are passed as the task's
  arguments, so Ray starts it only once they are done, and independent cells run side by side.
* The cache is the serial run's: a task runs ``Step.run`` in the same folder under ``OUT/steps``, whose
  ``step.json`` is written last and atomically (``study.steps``). A study started serially finishes on
  Ray and the other way round, and a driver killed mid-study resumes from the cache when rerun.
* Faults: a task whose worker process (or node) dies is retried by Ray (``max_retries``); the retry
  starts the step over from an empty folder (training resumes from its own checkpoints), and a retry
  that finds the step finished by the attempt that died reuses it. A step that *raises* is not retried
  (the same inputs would fail again); its dependents are skipped, the independent steps finish, and the
  run ends with an error that names the failed steps.
* Several GPUs per training (``gpus_per_train``): the train step's task holds them and runs the training
  on that many processes under accelerate (``study.launch``), the config's batch staying the global batch.
* OUT must be on storage that every node sees at the same path: ``check_shared_storage`` has a task on
  every node read a probe the driver wrote and write one back before any step is submitted.
* Progress: a task writes ``OUT/.ray/running/<step folder>.json`` (node, pid) while it runs; the driver
  prints when a step starts (and where) and when it finishes, with the counts done / running / queued.

The driver holds the study folder's lock (``study.lock``) for the whole run, like a serial run does.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rmtension.errors import RmtensionError
from rmtension.study.graph import MODEL_KINDS, backbone_of, memory_hint
from rmtension.study.launch import launched, per_process
from rmtension.study.pipeline import Plan, _stderr, reuse_state, select_steps
from rmtension.study.progress import duration_text
from rmtension.study.steps import MARKER, Step

INSTALL_HINT = ('--executor ray needs Ray, an optional extra: pip install -e ".[ray]" in a checkout of rmtension, '
                'or pip install "rmtension[ray]"; without it, run without --executor (serial) or use '
                '`rmtension plan CONFIG --out DIR --slurm`')
STATE_DIR = ".ray"  # under OUT: the running-step records and the storage probe
MAX_RETRIES = 3  # attempts after a worker or node died, per step
PROBE_TIMEOUT_S = 120.0


def require_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it (Ray is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise RmtensionError(INSTALL_HINT) from None
    return ray


@dataclass
class RayOptions:
    """How to reach (or start) the cluster and what each step asks for."""

    address: str | None = None  # None: start a local cluster on this machine; "auto" or HOST:PORT: join one
    num_cpus: int | None = None  # CPUs of the local cluster (None: all of this machine's)
    cpus_per_step: float = 1.0
    gpus_per_step: float = 1.0  # per model step, where the cluster has GPUs
    gpus_per_train: int = 1  # >1: each training on that many GPUs (processes, CPUs without GPUs), study.launch
    poll_s: float = 1.0  # how often the driver looks for steps that started (their running records)


def running_dir(root: Path) -> Path:
    return root / STATE_DIR / "running"


# ----------------------------------------------------------------------------- worker side


def run_step_task(step: Step, fresh: bool, cwd: str, *deps_done: Any) -> dict[str, Any]:
    """One step on a Ray worker (``deps_done``: the results of its unfinished dependencies' tasks; Ray
    starts this task only once they exist). Runs in the driver's working directory where this node has
    it, so relative paths in the config resolve as they do for a serial run."""
    import contextlib
    import sys

    from rmtension.files import write_json_atomic

    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    host = socket.gethostname()
    missing = [d.label for d in step.deps if not d.done()]
    if missing:
        raise RmtensionError(f"step {step.label} on {host}: its dependencies {', '.join(missing)} are not complete "
                             f"in {step.root} as this node sees it (is OUT on storage every node sees?)")
    if not fresh and step.done() and step.changes() is None:
        # An earlier attempt finished the step and its worker died before reporting back.
        return {"label": step.label, "status": "cached", "host": host, "seconds": 0.0}
    record = running_dir(step.root) / f"{step.folder.name}.json"
    write_json_atomic(record, {"label": step.label, "host": host, "pid": os.getpid(), "started": time.time()})
    t0 = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what libraries print is the worker's log, never a result
            step.run(fresh=fresh or (step.folder / MARKER).exists())
    finally:
        record.unlink(missing_ok=True)
    return {"label": step.label, "status": "ran", "host": host, "seconds": time.monotonic() - t0}


def probe_task(driver_file: str, token: str) -> dict[str, Any]:
    """Storage probe on one node: read the driver's token under OUT, write one back beside it."""
    host = socket.gethostname()
    path = Path(driver_file)
    try:
        seen = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return {"host": host, "ok": False, "why": f"cannot read {path}: {exc.strerror or exc}"}
    if seen != token:
        return {"host": host, "ok": False, "why": f"{path} holds another study's probe (a different folder at this path)"}
    back = path.with_name(f"{token}-{host}-{os.getpid()}")
    try:
        back.write_text(token, encoding="utf-8")
    except OSError as exc:
        return {"host": host, "ok": False, "why": f"cannot write {back}: {exc.strerror or exc}"}
    return {"host": host, "ok": True, "back": str(back)}


# ----------------------------------------------------------------------------- driver side


def check_shared_storage(ray: Any, root: Path) -> list[str]:
    """Check that every alive node reads and writes ``root`` at the same path; return the hosts checked.

    Raises an error naming each node that cannot, and what to do: a study's steps read each other's
    folders, so a node with its own private OUT would recompute (or miss) its dependencies' outputs.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe_dir = root / STATE_DIR / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    driver_file = probe_dir / token
    driver_file.write_text(token, encoding="utf-8")
    task = ray.remote(probe_task)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [task.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(str(driver_file), token) for n in nodes]
    try:
        results = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a node that cannot even run the probe is a failed check
        raise RmtensionError(f"storage check of {root}: the probe tasks did not finish on every Ray node "
                             f"({type(exc).__name__}: {exc})") from None
    bad = []
    for node, res in zip(nodes, results):
        where = f"{res['host']} ({node.get('NodeManagerAddress', '?')})"
        if not res["ok"]:
            bad.append(f"{where}: {res['why']}")
        elif not Path(res["back"]).is_file():
            bad.append(f"{where}: wrote {res['back']}, which this driver does not see")
    for path in probe_dir.glob(f"{token}*"):
        path.unlink(missing_ok=True)
    if bad:
        raise RmtensionError(f"the study folder {root} is not on storage every Ray node sees at the same path; "
                             + "; ".join(bad) + ". Put --out on a shared file system (NFS, Lustre, CephFS, ...) "
                             "mounted at the same path on every node, or run on one machine (no --address)")
    return [r["host"] for r in results]


def task_options(step: Step, backbone: str | None, cluster_gpus: float, opts: RayOptions,
                 max_node_memory: float | None, warn: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Ray options of one step's task: name, CPUs, a GPU for model steps where there are GPUs, memory."""
    on_gpu = cluster_gpus > 0 and step.kind in MODEL_KINDS
    out: dict[str, Any] = {"name": step.label, "num_cpus": opts.cpus_per_step, "max_retries": MAX_RETRIES,
                           "retry_exceptions": False}
    if on_gpu:
        out["num_gpus"] = min(opts.gpus_per_step, cluster_gpus)
    if step.kind == "train" and opts.gpus_per_train > 1:  # one process per GPU (per CPU without GPUs)
        if on_gpu:
            out["num_gpus"] = opts.gpus_per_train
        else:
            out["num_cpus"] = max(opts.cpus_per_step, opts.gpus_per_train)
    mem = memory_hint(backbone, step.kind, on_gpu) if backbone else None
    if mem is not None:
        if max_node_memory is not None and mem > max_node_memory:
            warn(f"step {step.label}: its memory hint ({mem / 2**30:.1f} GiB) exceeds every node's memory; "
                 f"asking for {max_node_memory / 2**30:.1f} GiB")
            mem = max_node_memory
        out["memory"] = int(mem)
    return out


@dataclass
class _Progress:
    """What the driver knows: steps submitted, finished (with where), running (from the workers' records)."""

    total: int
    done: int = 0
    running: dict[str, str] = field(default_factory=dict)  # step folder name -> "host (pid N)"
    announced: set[str] = field(default_factory=set)


def _poll_running(root: Path, unfinished: dict[str, Step], progress: _Progress, echo: Callable[[str], None]) -> None:
    """Read the running records of unfinished steps; announce each step once when it starts (or restarts)."""
    import json

    now: dict[str, str] = {}
    for path in running_dir(root).glob("*.json"):
        name = path.name[: -len(".json")]
        if name not in unfinished:
            continue
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        now[name] = f"{rec.get('host', '?')} (pid {rec.get('pid', '?')})"
    for name, where in now.items():
        tag = f"{name}@{where}"
        if tag not in progress.announced:
            progress.announced.add(tag)
            echo(f"[{progress.done}/{progress.total}] {unfinished[name].label} running on {where}")
    progress.running = now


def execute_ray(plan: Plan, cell: str | None = None, echo: Callable[[str], None] = print, verify: bool = False,
                warn: Callable[[str], None] = _stderr, labels: list[str] | None = None,
                options: RayOptions | None = None) -> dict[str, int]:
    """Run every step not already complete as Ray tasks (same selection and cache rule as the serial
    ``pipeline.execute``); return the same counts. ``plan.root`` must be absolute (workers may run
    elsewhere)."""
    opts = options or RayOptions()
    ray = require_ray()
    if not plan.root.is_absolute():
        raise RmtensionError(f"the Ray executor needs an absolute study folder, not {plan.root}")
    todo = select_steps(plan, cell, labels)
    counts = {"cached": 0, "ran": 0}
    fresh: dict[str, bool] = {}
    for st in todo:
        cached, again = reuse_state(st, verify, warn)
        if cached:
            counts["cached"] += 1
        else:
            fresh[st.folder.name] = again
    to_run = [st for st in todo if st.folder.name in fresh]
    for st in to_run:
        missing = [d.label for d in st.deps if d.folder.name not in fresh and not d.done()]
        if missing:
            raise RmtensionError(f"step {st.label} needs {', '.join(missing)} first (run those cells, or run "
                                 "without --cell)")
    if not to_run:
        return counts
    if opts.gpus_per_train > 1:  # a batch that does not split fails now, not after hours of other steps
        for st in to_run:
            if st.kind == "train" and hasattr(st.action, "tcfg"):
                per_process(st.action.tcfg, opts.gpus_per_train)
    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if opts.address is None:
            # A local cluster for this run only: small object store (steps pass file paths, not data), and no
            # usage statistics sent anywhere unless the user opted in (RAY_USAGE_STATS_ENABLED=1).
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            init.update(num_cpus=opts.num_cpus, object_store_memory=200 * 2**20)
        else:
            init["address"] = opts.address
        ray.init(**init)
    pending: dict[Any, Step] = {}
    try:
        hosts = check_shared_storage(ray, plan.root)
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        node_mem = [n.get("Resources", {}).get("memory") for n in ray.nodes() if n.get("Alive")]
        max_mem = max((m for m in node_mem if m), default=None)
        echo(f"ray: {len(hosts)} node{'s' if len(hosts) != 1 else ''} ({', '.join(sorted(set(hosts)))}), "
             f"{resources.get('CPU', 0):g} CPUs, {gpus:g} GPUs; {plan.root} is visible to all of them; "
             f"{len(to_run)} steps to run, {counts['cached']} cached")
        backbones = backbone_of(plan)
        remote = ray.remote(run_step_task)
        refs: dict[str, Any] = {}
        cwd = os.getcwd()
        for st in to_run:  # plan order: a step's dependencies are submitted before it
            deps = [refs[d.folder.name] for d in st.deps if d.folder.name in refs]
            ref = remote.options(**task_options(st, backbones.get(st.label), gpus, opts, max_mem, warn)).remote(
                launched(st, opts.gpus_per_train), fresh[st.folder.name], cwd, *deps)
            refs[st.folder.name] = ref
            pending[ref] = st
        counts["ran"] = _wait_all(ray, plan.root, pending, len(to_run), echo, opts.poll_s)
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        raise
    finally:
        if started_here:
            ray.shutdown()
    return counts


def _wait_all(ray: Any, root: Path, pending: dict[Any, Step], total: int, echo: Callable[[str], None],
              poll_s: float = 1.0) -> int:
    """Wait for every task, printing progress; raise at the end if any step failed. Returns steps run."""
    progress = _Progress(total)
    failed: list[str] = []
    ran = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
        _poll_running(root, {st.folder.name: st for st in pending.values()}, progress, echo)
        order = {id(st): i for i, st in enumerate(pending.values())}
        for ref in sorted(ready, key=lambda r: order[id(pending[r])]):  # dependencies before dependents
            st = pending.pop(ref)
            progress.done += 1
            progress.running.pop(st.folder.name, None)
            queued = len(pending) - len(progress.running)
            try:
                res = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - reported with the step's name, the rest go on
                cause = _root_cause(exc)
                upstream = [d.label for d in st.deps if d.label in failed]
                if upstream:  # Ray fails a task whose argument failed: name the step it waited for
                    echo(f"[{progress.done}/{total}] {st.label} not run: {upstream[0]} failed")
                else:
                    echo(f"[{progress.done}/{total}] {st.label} FAILED: {cause}")
                failed.append(st.label)
                continue
            ran += res["status"] == "ran"
            echo(f"[{progress.done}/{total}] {st.label} done in {duration_text(res['seconds'])} on {res['host']}; "
                 f"{len(progress.running)} running, {max(queued, 0)} queued")
    if failed:
        raise RmtensionError(f"{len(failed)} step{'s' if len(failed) != 1 else ''} failed or could not run "
                             f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); the others are cached: "
                             "fix the cause and run the same command again")
    return ran


def _root_cause(exc: BaseException) -> str:
    """One line for a failed task: the step's own exception, not Ray's wrapper with its traceback."""
    cause = getattr(exc, "cause", None)
    inner = cause if isinstance(cause, BaseException) else exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[-1] if text else ''}"
