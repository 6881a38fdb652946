"""The worker side of ``bridge check --executor ray``: one model's prepare, export and verify on a Ray
node, through the same Runner, so the same subprocess commands, as a local check.

The job a task gets is a plain dict built by the driver (bridge/check/ray_executor.py). Its paths are
the driver's; a task whose files were shipped (Ray's working_dir) runs in the unpacked copy and maps
them onto it. Its outputs go to a fresh directory on the node and come back to the driver as one tar
archive; with a shared filesystem they are written to the driver's workdir directly.

Prepare commands of the models on one node run one at a time (a file lock) and each distinct one once
per check (a record beside the lock), as a local check runs them, since two models may share one.
Ray imports this module on each worker; ray itself is imported only to name the node."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from bridge.check.config import CheckConfig, ModelConfig
from bridge.check.progress import NullProgress
from bridge.check.run import Runner, StepResult
from bridge.check.verdicts import FAIL, ModelResult

PREPARE_LOCK = ".bridge-check-prepare.lock"
PREPARE_RECORD = ".bridge-check-prepared-{run_id}.json"  # the prepare commands run on this node in one check


def node_name() -> str:
    """``HOST (IP)``: the host name users know, and the address Ray's own logs and dashboard use."""
    host = socket.gethostname()
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # not on a Ray worker
        ip = None
    return f"{host} ({ip})" if ip else host


class EventProgress(NullProgress):
    """Phases go to the driver's event collector (a Ray actor), fire and forget."""

    def __init__(self, events, node: str) -> None:
        self.events = events
        self.node = node

    def phase(self, name: str, phase: str) -> None:
        if self.events is not None:
            self.events.put.remote(name, phase, self.node)


def _parent_death_signal():
    """A function for Popen's preexec_fn that makes the child die with this worker (Linux), or None.

    A Ray worker can die without running any cleanup (killed, its node's memory monitor); its steps
    run in sessions of their own and would live on, writing into the workdir a retry writes to. The
    libc function is looked up here, before any fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)
    return lambda: prctl(1, kill)  # PR_SET_PDEATHSIG


def rebase(text: str, old: str, new: str) -> str:
    """``text`` with a leading path ``old`` replaced by ``new`` (whole components only)."""
    if old == new or not text.startswith(old):
        return text
    rest = text[len(old) :]
    if rest and rest[0] not in (os.sep, "/", ":"):
        return text
    return new + rest


def rebase_all(value, pairs: list[tuple[str, str]]):
    """Every string in a JSON-like value with each path ``old`` replaced by ``new``, wherever it occurs
    (reports name files in their messages too). Worker paths are long and unique, so this is safe."""
    if isinstance(value, str):
        for old, new in pairs:
            if old and old != new:
                value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [rebase_all(v, pairs) for v in value]
    if isinstance(value, dict):
        return {k: rebase_all(v, pairs) for k, v in value.items()}
    return value


def localize(m: ModelConfig, driver_base: str, base: str, driver_python: str) -> ModelConfig:
    """The model's config with the driver's paths mapped onto this node's copy of the config's directory,
    and "python" in prepare commands as this worker's interpreter (it was the driver's)."""
    path = lambda p: rebase(p, driver_base, base) if p else p  # noqa: E731
    prepare = [
        [sys.executable if i == 0 and a == driver_python else path(a) for i, a in enumerate(cmd)] for cmd in m.prepare
    ]
    return replace(
        m,
        source=path(m.source),
        source_file=path(m.source_file),
        export=relocated(m.export, path),
        verify=relocated(m.verify, path),
        baseline=path(m.baseline),
        prepare=prepare,
    )


def relocated(request, path):
    """A request with every path it names (its SOURCE, weights, samples, ... : the options of the table
    whose values are paths) mapped by ``path``."""
    from bridge.request import PathText, SourceText, options_for

    changes = {
        o.name: path(getattr(request, o.name))
        for o in options_for(request.command)
        if isinstance(o.kind, (PathText, SourceText)) and getattr(request, o.name)
    }
    return request.replace(**changes)


def _lock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: prepare commands of one node may overlap
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)


def _unlock(fh) -> None:
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def prepare_on_node(runner: Runner, m: ModelConfig, lock_dir: Path, run_id: str) -> None:
    """runner.prepare([m]) under the node's lock, skipping the commands another model of this check
    already ran there (and reusing their failures, as a local check does)."""
    if m.skip or not m.prepare or all(os.path.exists(p) for p in m.required_files()):
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    record = lock_dir / PREPARE_RECORD.format(run_id=run_id)
    with open(lock_dir / PREPARE_LOCK, "a+") as fh:
        _lock(fh)
        try:
            done = json.loads(record.read_text()) if record.is_file() else []
            for entry in done:
                argv = entry["argv"]
                runner.prepared[tuple(argv)] = StepResult(
                    argv, entry["returncode"], "", entry["stderr"], 0.0, entry["timed_out"]
                )
            before = set(runner.prepared)
            runner.prepare([m])
            new = [
                {"argv": list(k), "returncode": s.returncode, "stderr": s.stderr[-4000:], "timed_out": s.timed_out}
                for k, s in runner.prepared.items()
                if k not in before
            ]
            if new:
                tmp = record.with_name(record.name + f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(done + new))
                os.replace(tmp, record)
        finally:
            _unlock(fh)


def pack(directory: Path) -> bytes:
    """Everything a model's steps wrote (bundle, reports, logs), as one uncompressed tar archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(os.listdir(directory)):
            tar.add(directory / entry, arcname=entry)
    return buf.getvalue()


def run_model(job: dict, events=None) -> dict:
    """One Ray task: the model's prepare commands (when its files are missing), export, verify.

    Returns {"result": ModelResult, "node", "files": tar bytes or None, "workdir", "base_dir"}: the last
    two are this node's paths, which the driver maps back onto its own."""
    node = node_name()
    m: ModelConfig = job["model"]
    if events is not None:  # waited for: a worker killed right after must still count as an attempt
        import ray

        try:
            ray.get(events.put.remote(m.name, "start", node), timeout=30)
        except Exception:  # progress only: the model's result does not depend on it
            pass
    shared = job["shared_fs"]
    base = job["base_dir"] if shared else os.getcwd()  # Ray runs the task in the unpacked working_dir
    m = localize(m, job["base_dir"], base, job["python"])
    workdir = Path(job["workdir"]) if shared else Path(tempfile.mkdtemp(prefix=f"bridge-check-{m.name}-"))
    try:
        config = CheckConfig(path=Path(base) / job["config_name"], base_dir=Path(base), workdir=workdir, models=[m])
        runner = Runner(
            config,
            workdir=workdir,
            threads=job["threads"],
            timeout=job["timeout"],
            update_baselines=job["update_baselines"],
            progress=EventProgress(events, node),
            compare_baselines=False,
        )  # baselines are the driver's files: it compares them
        die_with_worker = _parent_death_signal()
        if die_with_worker is not None:
            runner.popen_kwargs = {"preexec_fn": die_with_worker}
        unshipped = [rebase(p, job["base_dir"], base) for p in job["driver_files"]]
        unshipped = [p for p in unshipped if not os.path.exists(p)]
        if unshipped and not m.prepare:
            message = (
                f"{', '.join(unshipped)} exists on the driver but not on {node}: it was not shipped "
                "(outside the config's directory, or excluded by .gitignore or .rayignore)"
            )
            result = ModelResult(
                name=m.name,
                status=FAIL,
                message=message,
                error={"step": "prepare", "exit_code": None, "message": message},
            )
        else:
            prepare_on_node(runner, m, workdir if shared else Path(base), job["run_id"])
            result = runner.run_model(m)
        result.node = node
        return {
            "result": result,
            "node": node,
            "files": None if shared else pack(workdir),
            "workdir": str(workdir),
            "base_dir": str(base),
        }
    finally:
        if not shared:
            shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["EventProgress", "localize", "node_name", "pack", "prepare_on_node", "rebase", "rebase_all", "run_model"]
