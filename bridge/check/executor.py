"""Where the models of a check run, behind one interface: ``local``, a pool of threads on this machine
(each model's steps are subprocesses), or ``ray``, one Ray task per model on a Ray cluster
(``bridge/check/ray_executor.py``, imported only when chosen, so ``bridge --help`` and local checks
never import ray). Both run the same Runner, so the same subprocess commands, and return the same
ModelResults; the command renders them."""

from __future__ import annotations

import abc
import concurrent.futures
import socket
from dataclasses import dataclass
from pathlib import Path

from bridge.check.config import EXECUTORS, CheckConfig, ModelConfig, RaySettings
from bridge.check.run import Runner
from bridge.check.verdicts import FAIL, ModelResult
from bridge.errors import EnvironmentProblem

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RunSettings", "internal_error", "make_executor"]


@dataclass(frozen=True)
class RunSettings:
    """What every executor needs besides the models: the config, where outputs go, and each step's limits."""

    config: CheckConfig
    workdir: Path
    threads: int
    timeout: float | None
    update_baselines: bool = False


class Executor(abc.ABC):
    """Runs models and calls ``progress.phase`` / ``progress.done`` as they go; returns name -> result."""

    kind = "local"
    show_node = False  # whether progress lines and tables name the node of each model

    def describe(self) -> dict:
        """The executor's settings, for the JSON summary."""
        return {"kind": self.kind}

    @abc.abstractmethod
    def run(self, models: list[ModelConfig], progress) -> dict[str, ModelResult]:
        """Check every model; one result per model name, whatever happened to the others."""


def internal_error(name: str, exc: BaseException, node: str | None = None) -> ModelResult:
    """A bug in bridge's own code around one model must not hide the other models' results."""
    message = f"internal error: {type(exc).__name__}: {exc}"
    return ModelResult(
        name=name,
        status=FAIL,
        message=message,
        node=node,
        error={"step": "check", "exit_code": None, "message": message},
    )


class LocalExecutor(Executor):
    """``--jobs N`` threads on this machine; prepare commands first, one at a time, each distinct one once."""

    kind = "local"

    def __init__(self, settings: RunSettings, jobs: int = 1) -> None:
        self.settings = settings
        self.jobs = jobs

    def describe(self) -> dict:
        return {"kind": self.kind, "jobs": self.jobs, "threads": self.settings.threads}

    def run(self, models: list[ModelConfig], progress) -> dict[str, ModelResult]:
        s = self.settings
        runner = Runner(
            s.config,
            workdir=s.workdir,
            threads=s.threads,
            timeout=s.timeout,
            update_baselines=s.update_baselines,
            progress=progress,
        )
        node = socket.gethostname()
        results: dict[str, ModelResult] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="bridge-check")
        try:
            runner.prepare(models)
            futures = {pool.submit(runner.run_model, m): m for m in models}
            for fut in concurrent.futures.as_completed(futures):
                m = futures[fut]
                try:
                    result = fut.result()
                except Exception as exc:
                    result = internal_error(m.name, exc)
                result.node = node
                results[m.name] = result
                progress.done(result)
        except BaseException:
            runner.children.kill_all()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results


def make_executor(
    kind: str, settings: RunSettings, *, jobs: int | None = None, ray: RaySettings | None = None
) -> Executor:
    if kind == "local":
        return LocalExecutor(settings, jobs or 1)
    try:
        import ray as _ray  # noqa: F401  (the check itself; ray_executor imports it for use)
    except ImportError:
        raise EnvironmentProblem(
            "--executor ray needs the ray package, which is not installed in this Python",
            hint="pip install 'bridge-onnx[ray]' (on this machine and on every Ray node), or run with --executor local",
        ) from None
    import importlib

    # by name, as the command table loads commands: ray_executor builds on this module, not the reverse
    module = importlib.import_module("bridge.check.ray_executor")
    return module.RayExecutor(settings, ray or RaySettings(), jobs=jobs)
