"""``bridge check --executor ray``: each model's prepare/export/verify sequence is one Ray task
(``bridge/check/ray_task.py``), running the subprocess commands a local check runs. Imported only
when the Ray executor is chosen.

- Connection: without an address a local Ray instance is started (its workers see this machine's
  files) and shut down at the end; with ``--ray-address`` the driver joins that cluster.
- Files: on a cluster, the config's directory goes to the workers as Ray's job ``working_dir``
  (Ray's limit: 512 MiB packed; .gitignore and .rayignore are honoured; the workdir is left out;
  checked first by bridge/check/ship.py: no symbolic link out of the tree or looping, within the limit),
  and bridge itself as a ``py_modules`` entry, so every node runs the driver's bridge. Each task's
  bundle, reports and logs come back as a tar archive and are unpacked into the driver's workdir.
  With ``--ray-shared-fs`` nothing is shipped: every node must see the same paths.
- Resources: CPUs equal to ``--threads``, and one GPU for a model verified on ``cuda``. A model that
  no live node can hold fails at once instead of waiting forever.
- Retries: ``max_retries`` (default 2) after system failures, a worker or node that died;
  ``retry_exceptions=False``, so neither a verdict (a return value) nor an exception in bridge's code
  is ever retried. A task that still fails is that model's error, naming the reason and the node.
- Progress: tasks report their node and phase to a small actor the driver polls.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import ray

import bridge
from bridge.check import ray_task
from bridge.check.config import ModelConfig, RaySettings
from bridge.check.executor import Executor, RunSettings, internal_error
from bridge.check.run import judge
from bridge.check.ship import check_shipped_tree
from bridge.check.verdicts import FAIL, SKIPPED, ModelResult
from bridge.errors import EnvironmentProblem, UsageError

# Ray's limit on a shipped working_dir (GCS_STORAGE_MAX_SIZE): its gRPC message size
WORKING_DIR_LIMIT = "512 MiB, unless RAY_max_grpc_message_size sets another"
PHASE_STEPS = {"preparing": "prepare", "exporting": "export", "verifying": "verify"}
POLL_SECONDS = 1.0  # how often the driver takes the tasks' events while it waits


class _Events:
    """What tasks report (started on a node, each phase), kept until the driver takes it."""

    def __init__(self) -> None:
        self.items: list = []

    def put(self, name: str, what: str, node: str) -> None:
        self.items.append((name, what, node))

    def take(self) -> list:
        items, self.items = self.items, []
        return items


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def _reason(exc: BaseException) -> str:
    """Why a task ended without a result, in words."""
    rx = ray.exceptions
    if isinstance(exc, rx.RayTaskError):
        cause = getattr(exc, "cause", None)
        text = f"{type(cause).__name__}: {first_line(cause)}" if cause is not None else first_line(exc)
        return f"raised an exception in bridge's own code ({text})"
    if isinstance(exc, rx.OutOfMemoryError):
        return "was killed by Ray's memory monitor (the node ran low on memory)"
    if isinstance(exc, rx.NodeDiedError):
        return "lost its node (the node died or left the cluster)"
    if isinstance(exc, rx.WorkerCrashedError):
        return "lost its worker process (killed or crashed)"
    if isinstance(exc, rx.TaskCancelledError):
        return "was cancelled"
    if isinstance(exc, rx.RuntimeEnvSetupError):
        return f"could not set up its runtime environment ({first_line(exc)})"
    if isinstance(exc, rx.TaskUnschedulableError):
        return f"could not be scheduled ({first_line(exc)})"
    return f"failed ({type(exc).__name__}: {first_line(exc)})"


def _connect_error(exc: BaseException, where: str, base: Path) -> Exception:
    """The bridge error for a failed ray.init: the working_dir over Ray's limit (a usage error), a cluster
    that cannot be reached, or anything else Ray reports."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    too_big = next((ln for ln in lines if "exceeds the maximum size" in ln), None)
    if too_big:
        size = too_big.split(": ", 1)[-1].split(". ")[0]  # "Package size (612.40MiB) exceeds the maximum ..."
        return UsageError(
            f"cannot ship {base} to the Ray workers: {size}",
            hint=f"Ray ships a working_dir below {WORKING_DIR_LIMIT}: list large files in "
            ".rayignore (or .gitignore) and let prepare commands make them on the nodes, or put the "
            "directory on a filesystem every node mounts and pass --ray-shared-fs",
        )
    generic = len(lines) > 1 and lines[0].startswith("Failed to set up")  # RuntimeEnvSetupError's first line
    detail = (lines[1] if generic else lines[0] if lines else "")[:300]
    if isinstance(exc, (ConnectionError, TimeoutError)):
        token = (
            ""
            if os.environ.get("RAY_AUTH_MODE")
            else (
                "; a cluster with token authentication (ray start's default) also needs RAY_AUTH_MODE=token and its "
                "token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        )
        return EnvironmentProblem(
            f"cannot connect to {where}: {detail}",
            hint="start it with 'ray start --head' or fix --ray-address (docs/ci.md)" + token,
        )
    return EnvironmentProblem(
        f"cannot start {where}: {type(exc).__name__}: {detail}",
        hint="check --ray-address (auto, HOST:6379, ray://HOST:10001) and 'ray status'; "
        "docs/ci.md lists what each node needs",
    )


def unpack(data: bytes, workdir: Path) -> None:
    """A task's outputs into the workdir, each top-level entry replacing an earlier run's."""
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=workdir))
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:  # Python < 3.10.12: the archive is our own task's
                tar.extractall(staging)
        for entry in os.listdir(staging):
            target = workdir / entry
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(staging / entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class RayExecutor(Executor):
    kind = "ray"
    show_node = True

    def __init__(self, settings: RunSettings, ray_settings: RaySettings, *, jobs: int | None = None) -> None:
        self.settings = settings
        self.ray = ray_settings
        self.jobs = jobs  # at most this many tasks in flight; None: as many as the cluster holds
        self.local = ray_settings.address is None
        self.shared = self.local or ray_settings.shared_fs
        self.owned = False  # whether this driver connected (and so disconnects or stops the instance)
        self.nodes: list[dict] = []
        self.state: dict[str, dict] = {}
        self.run_id = uuid.uuid4().hex[:12]

    def describe(self) -> dict:
        cpus = sum(n.get("Resources", {}).get("CPU", 0) for n in self.nodes)
        gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in self.nodes)
        return {
            "kind": self.kind,
            "address": self.ray.address or "local",
            "shared_fs": self.shared,
            "max_retries": self.ray.max_retries,
            "threads": self.settings.threads,
            "jobs": self.jobs,
            "nodes": len(self.nodes),
            "cpus": cpus,
            "gpus": gpus,
        }

    # -- connection ---------------------------------------------------------------------------
    def _excludes(self) -> list[str]:
        base, workdir = self.settings.config.base_dir, self.settings.workdir
        try:
            rel = workdir.resolve().relative_to(base.resolve())
        except ValueError:
            return []
        return [f"/{rel.as_posix()}"] if str(rel) != "." else []

    def _connect(self) -> None:
        if ray.is_initialized():  # called from Python with a connection already made: use it as it is
            self.shared = True  # a job's runtime_env is fixed at ray.init: nothing can be shipped now
            return
        pkg = Path(bridge.__file__).resolve().parent
        common = {"logging_level": logging.WARNING, "log_to_driver": False, "namespace": "bridge-check"}
        where = "a local Ray instance" if self.local else f"the Ray cluster at {self.ray.address}"
        try:
            if self.local:
                # this machine's files and this bridge: no runtime_env to build (it costs seconds per worker).
                # Not the raylet's subreaper: with it, a worker's subprocess.wait() reads every exit code as 0.
                ray.init(
                    address="local",
                    include_dashboard=False,
                    job_config=ray.job_config.JobConfig(code_search_path=[str(pkg.parent)]),
                    **common,
                )
            else:
                env: dict = {"py_modules": [str(pkg)]}
                if not self.shared:
                    env["working_dir"] = str(self.settings.config.base_dir)
                    env["excludes"] = self._excludes()
                    # Ray's packer follows symbolic links: refuse a link out of the tree or a loop, and a
                    # package over Ray's limit, before anything is packed or sent (exit 2).
                    check_shipped_tree(env["working_dir"], env["excludes"])
                ray.init(address=self.ray.address, runtime_env=env, **common)
        except UsageError:
            raise
        except Exception as exc:
            raise _connect_error(exc, where, self.settings.config.base_dir) from None
        self.owned = True

    def _disconnect(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()  # stops the local instance; on a cluster, ends this driver's job only
        self.owned = False

    # -- the run ------------------------------------------------------------------------------
    def run(self, models: list[ModelConfig], progress) -> dict[str, ModelResult]:
        self._connect()
        try:
            self.nodes = [n for n in ray.nodes() if n.get("Alive")]
            d = self.describe()
            note = getattr(progress, "note", None)
            if note:
                note(
                    f"on Ray ({d['address']}): {d['nodes']} node{'s' if d['nodes'] != 1 else ''}, "
                    f"{d['cpus']:g} CPUs, {d['gpus']:g} GPUs; files {'shared' if self.shared else 'shipped'}; "
                    f"{self.settings.threads} CPU{'s' if self.settings.threads != 1 else ''} per model"
                )
            return self._run(models, progress)
        finally:
            self._disconnect()

    def _run(self, models: list[ModelConfig], progress) -> dict[str, ModelResult]:
        results: dict[str, ModelResult] = {}
        queue: deque = deque()
        for m in models:
            problem = None if m.skip else self._infeasible(m)
            if m.skip:
                results[m.name] = ModelResult(name=m.name, status=SKIPPED, message=m.skip)
            elif problem:
                results[m.name] = ModelResult(
                    name=m.name,
                    status=FAIL,
                    message=problem,
                    error={"step": "ray", "exit_code": None, "message": problem},
                )
            else:
                queue.append(m)
                continue
            progress.done(results[m.name])
        self.task = ray.remote(ray_task.run_model)
        self.events = ray.remote(num_cpus=0)(_Events).remote()
        pending: dict = {}
        try:
            while queue or pending:
                while queue and (self.jobs is None or len(pending) < self.jobs):
                    m = queue.popleft()
                    pending[self._submit(m)] = m
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                self._drain(progress)
                for ref in ready:
                    m = pending.pop(ref)
                    result = self._collect(m, ref, progress)
                    results[m.name] = result
                    progress.done(result)
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            raise
        finally:
            if self.shared:
                record = self.settings.workdir / ray_task.PREPARE_RECORD.format(run_id=self.run_id)
                record.unlink(missing_ok=True)
        return results

    def _infeasible(self, m: ModelConfig) -> str | None:
        cpus, gpus = self.settings.threads, 1 if "cuda" in m.verify.devices else 0
        have = [n.get("Resources", {}) for n in self.nodes]
        if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in have):
            return None
        need = f"{cpus} CPU{'s' if cpus != 1 else ''}" + (" and 1 GPU (devices include cuda)" if gpus else "")
        most_cpu = max((r.get("CPU", 0) for r in have), default=0)
        most_gpu = max((r.get("GPU", 0) for r in have), default=0)
        return (
            f"needs {need} on one Ray node, but the cluster's nodes have at most {most_cpu:g} CPUs and "
            f"{most_gpu:g} GPUs: lower --threads or add such a node"
        )

    def _submit(self, m: ModelConfig):
        s = self.settings
        job = {
            "model": m,
            "base_dir": str(s.config.base_dir),
            "workdir": str(s.workdir),
            "shared_fs": self.shared,
            "python": sys.executable,
            "config_name": s.config.path.name,
            "threads": s.threads,
            "timeout": s.timeout,
            "update_baselines": s.update_baselines,
            "run_id": self.run_id,
            "driver_files": [] if self.shared else [p for p in m.required_files() if os.path.exists(p)],
        }
        self.state[m.name] = {"node": None, "attempts": 0, "phase": None, "submitted": time.perf_counter()}
        options = {
            "num_cpus": s.threads,
            "num_gpus": 1 if "cuda" in m.verify.devices else 0,
            "max_retries": self.ray.max_retries,
            "retry_exceptions": False,
            "name": f"bridge check {m.name}",
        }
        return self.task.options(**options).remote(job, self.events)

    def _drain(self, progress) -> None:
        try:
            items = ray.get(self.events.take.remote(), timeout=30)
        except Exception:  # progress only: the results do not depend on it
            return
        for name, what, node in items:
            st = self.state.get(name)
            if st is None:
                continue
            if what == "start":
                st["attempts"] += 1
                st["node"], st["phase"] = node, None
                again = f" (attempt {st['attempts']})" if st["attempts"] > 1 else ""
                progress.phase(name, f"running on {node}{again}")
            else:
                st["phase"] = what
                progress.phase(name, what)

    def _collect(self, m: ModelConfig, ref, progress) -> ModelResult:
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._drain(progress)  # the last events name the node and the step it died in
            return self._task_failed(m, exc)
        try:
            return self._bring_back(m, out)
        except Exception as exc:
            return internal_error(m.name, exc, out.get("node"))

    def _task_failed(self, m: ModelConfig, exc: BaseException) -> ModelResult:
        st = self.state[m.name]
        step = PHASE_STEPS.get(st["phase"], "ray")
        where = f"on {st['node']}" if st["node"] else "before it started on any node"
        during = f" during {step}" if step != "ray" else ""
        message = (
            f"the Ray task {_reason(exc)} {where}{during}; attempts: {st['attempts']}, retries after "
            f"system failures: {self.ray.max_retries}"
        )
        return ModelResult(
            name=m.name,
            status=FAIL,
            message=message,
            node=st["node"],
            seconds=time.perf_counter() - st["submitted"],
            error={"step": step, "exit_code": None, "message": message},
        )

    def _bring_back(self, m: ModelConfig, out: dict) -> ModelResult:
        result: ModelResult = out["result"]
        result.node = out["node"]
        workdir = self.settings.workdir
        if not self.shared:
            pairs = [(out["workdir"], str(workdir)), (out["base_dir"], str(self.settings.config.base_dir))]
            swap = lambda v: ray_task.rebase_all(v, pairs)  # noqa: E731
            for suffix in (".export.json", ".verify.json"):  # an earlier run's reports must not stand beside
                (workdir / f"{m.name}{suffix}").unlink(missing_ok=True)
            unpack(out["files"], workdir)
            result.bundle, result.export_json, result.verify_json = (
                swap(result.bundle),
                swap(result.export_json),
                swap(result.verify_json),
            )
            result.message, result.error = swap(result.message), swap(result.error)
            result.report, result.export_report = swap(result.report), swap(result.export_report)
            for suffix in (".export.json", ".verify.json"):  # the reports on disk name the driver's paths too
                path = workdir / f"{m.name}{suffix}"
                try:
                    path.write_text(json.dumps(swap(json.loads(path.read_text())), indent=2) + "\n")
                except (OSError, ValueError):
                    pass
        if result.report is not None and result.error is None:
            judge(m, result, baseline=not self.settings.update_baselines)
        return result
