"""Containment: run one command's orchestration in a child process with a time and a memory limit.

Model files are attack surface and runtimes crash on malformed input: a segfault, an abort, an
endless ONNX ``Loop`` or a runaway allocation in the child becomes a clean ``ContainedCrash``
(exit 7) naming the stage it happened in; the parent never hangs and prints no traceback.

The child is started with the ``spawn`` method (a fresh interpreter: no framework state inherited),
dies with its parent (PR_SET_PDEATHSIG), and reports the stage it is in through a shared buffer.
Memory is watched from the parent as the child's resident set size (an address-space rlimit would
break CUDA, which reserves far more virtual memory than it uses).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass

from bridge.errors import BridgeError, ContainedCrash, InternalError, exception_summary

DEFAULT_TIMEOUT_S = 3600.0
_STAGE_BYTES = 200
TRACKER_WARNING = "ignore:resource_tracker:UserWarning"  # multiprocessing's "leaked semaphore" warnings


@dataclass(frozen=True)
class Limits:
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    memory_bytes: int | None = None  # None: 80% of the machine's memory

    def resolved_memory(self) -> int:
        if self.memory_bytes:
            return int(self.memory_bytes)
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)
        except (ValueError, OSError):
            return 16 << 30


def run_in_process(target: str, request, on_stage=None):
    """Run ``module:function(request)`` here (``--no-contain``), stages going to ``on_stage``."""
    import importlib

    from bridge.progress import stages_to

    module, func = target.split(":")
    with stages_to(on_stage):
        return getattr(importlib.import_module(module), func)(request)


def _buffer_sink(buf):
    def write(name: str) -> None:
        data = name.encode("utf-8", "replace")[: _STAGE_BYTES - 1]
        buf[: len(data) + 1] = data + b"\0"

    return write


def _read_stage(buf) -> str:
    raw = bytes(buf[:])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "starting"


def _die_with_parent(parent: int | None) -> None:
    """SIGKILL this worker when its parent dies, and end it now if the parent is already gone.

    The death signal can only be asked for once the spawned interpreter has started and unpickled its
    task, a fraction of a second after the parent started it (seconds on a loaded machine); a parent
    killed in that window leaves an orphan that would run the whole export, publish over the next
    writer's bundle and leave its staging behind. The parent's pid, checked after the request, closes
    the window: an orphan has been given to another parent (init or a subreaper)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _child(
    target: str, request, conn, buf, debug: bool, stderr_path: str | None = None, parent: int | None = None
) -> None:
    _die_with_parent(parent)
    if (
        stderr_path
    ):  # libraries' own logs (TensorFlow, absl's cuInit, warnings) go to a file the parent reads on a crash
        try:
            fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
            os.dup2(fd, 2)
            os.close(fd)
        except OSError:
            pass
    try:
        module_name, func_name = target.rsplit(":", 1)
        import importlib

        from bridge.progress import stages_to

        func = getattr(importlib.import_module(module_name), func_name)
        with stages_to(_buffer_sink(buf)):
            result = func(request)
        conn.send(("ok", result))
    except BridgeError as exc:
        if debug:  # the library error a BridgeError was raised from (`from None` too), under bridge's own
            exc.__suppress_context__ = False
        conn.send(
            (
                "error",
                (
                    type(exc).__name__,
                    exc.exit_code,
                    exc.category,
                    exc.message,
                    exc.hint,
                    traceback.format_exc() if debug else None,
                ),
            )
        )
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as data
        conn.send(("crash", (exception_summary(exc), traceback.format_exc() if debug else None)))
    finally:
        conn.close()
    # The answer is with the parent, which waits for this process to end: skip the interpreter's
    # teardown (tearing down torch or TensorFlow takes 0.5 to 1 s and does no work for anyone).
    # Reached only when a message was sent; a failed send raises past this line instead.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not turn a result into a crash
            pass
    try:  # what multiprocessing's own exit would do: unlink semaphores libraries made (tqdm's lock),
        from multiprocessing import util  # which the resource tracker would otherwise report as leaked

        util._run_finalizers(0)
        util._run_finalizers()
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    os._exit(0)


class _Remote(BridgeError):
    """A BridgeError raised in the child, rebuilt with its exit code and category."""

    def __init__(self, exit_code: int, category: str, message: str, hint: str | None):
        super().__init__(message, hint)
        self.exit_code = exit_code
        self.category = category


def _rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of ``pid``; field "VmHWM" gives its peak so far (the kernel's high-water mark,
    which also counts what rose and fell between two polls)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _interrupt(proc) -> None:
    """Stop the worker at once: a worker asked politely can finish and publish after the user said
    stop (torch's exporters catch the KeyboardInterrupt and fall back). What it was staging is
    removed by the caller, which knows the destination."""
    if proc.is_alive():
        proc.kill()
        proc.join()


def run_contained(target: str, request, limits: Limits, debug: bool = False, poll_s: float = 0.1, on_stage=None):
    """Run ``module:function(request)`` in a child and return its result. The result must pickle.
    ``on_stage`` is called with each stage the child enters, as it enters it (to within ``poll_s``)."""
    ctx = mp.get_context("spawn")
    # The worker (and multiprocessing's resource tracker) start as `python -c ...`, which would put
    # the working directory first on sys.path: a multiprocessing/ or numpy/ folder there would run.
    saved = {k: os.environ.get(k) for k in ("PYTHONSAFEPATH", "PYTHONWARNINGS")}
    os.environ["PYTHONSAFEPATH"] = "1"
    # The resource tracker starts here too (with this environment) and outlives the worker. A worker
    # stopped by SIGKILL (a limit, Ctrl-C) cannot unregister the semaphores its libraries made; the tracker
    # unlinks them when this process ends, as it should, but also warns about each kind on stderr, after
    # bridge's own last line. Its cleanup stays; its warning goes.
    os.environ["PYTHONWARNINGS"] = ",".join(w for w in (saved["PYTHONWARNINGS"], TRACKER_WARNING) if w)
    stderr_path, handle = None, None
    if not debug:  # with --debug the worker's stderr is the terminal, as it is
        stderr_path, handle = _worker_stderr()
    try:
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        buf = ctx.Array("c", _STAGE_BYTES, lock=False)
        proc = ctx.Process(
            target=_child, args=(target, request, child_conn, buf, debug, stderr_path, os.getpid()), daemon=True
        )
        proc.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    child_conn.close()
    try:
        return _watch(proc, parent_conn, buf, limits, poll_s, on_stage, stderr_path)
    finally:
        if handle is not None:
            os.close(handle)  # the file was unlinked at once: nothing is left behind
        elif stderr_path:
            try:
                os.unlink(stderr_path)
            except OSError:
                pass


def _worker_stderr() -> tuple[str, int | None]:
    """A file for the worker's stderr, and the descriptor this process holds it by. Where /proc shows
    this process's descriptors (Linux), the file is unlinked at once and both sides open it as
    /proc/PID/fd/N: a parent killed with SIGKILL leaves nothing in the temporary folder. Elsewhere the
    file keeps its name until the run ends (and a SIGKILL leaves it)."""
    import tempfile

    handle, path = tempfile.mkstemp(prefix="bridge-worker-", suffix=".stderr")
    by_fd = f"/proc/{os.getpid()}/fd/{handle}"
    if os.path.exists(by_fd):
        os.unlink(path)
        return by_fd, handle
    os.close(handle)
    return path, None


def _last_lines(path: str | None, count: int = 6, limit: int = 8192) -> str:
    """The worker's last stderr lines, for the hint of a crash (its libraries may have said why)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-count:]
    return ("; the worker's last messages on stderr: " + " | ".join(ln[:300] for ln in lines)) if lines else ""


def _watch(proc, parent_conn, buf, limits: Limits, poll_s: float, on_stage, stderr_path):
    memory = limits.resolved_memory()
    start = time.monotonic()
    peak = 0
    message = None
    seen = None
    try:
        while True:
            if on_stage is not None:
                now = _read_stage(buf)
                if now != seen:
                    seen = now
                    on_stage(now)
            if parent_conn.poll(poll_s):
                try:
                    message = parent_conn.recv()
                except EOFError:
                    message = None
                peak = max(peak, _rss_bytes(proc.pid, "VmHWM"))  # 0 once the worker has exited
                if on_stage is not None and _read_stage(buf) != seen:
                    on_stage(_read_stage(buf))  # the last stage, entered less than a poll ago
                break
            if not proc.is_alive():
                break
            peak = max(peak, _rss_bytes(proc.pid, "VmHWM"))
            if peak > memory:
                proc.kill()
                proc.join()
                raise ContainedCrash(
                    f"{_read_stage(buf)}: used more than {memory / 2**30:.1f} GiB of memory and was stopped",
                    hint="raise the limit with --memory-limit GB if the model really needs it",
                )
            if limits.timeout_s and time.monotonic() - start > limits.timeout_s:
                proc.kill()
                proc.join()
                raise ContainedCrash(
                    f"{_read_stage(buf)}: still running after {limits.timeout_s:g} s and was stopped",
                    hint="raise the limit with --timeout SECONDS, or check the model for unbounded loops",
                )
        proc.join(timeout=30)
    except KeyboardInterrupt:
        _interrupt(proc)  # SIGINT or SIGTERM of the CLI
        raise
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent_conn.close()
    if message is None:
        code = proc.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
        raise ContainedCrash(
            f"{_read_stage(buf)}: the worker process {how}",
            hint="the model or a runtime crashed on it; rerun with --debug to see its output, or "
            "--no-contain --debug to investigate" + _last_lines(stderr_path),
        )
    kind, payload = message
    if kind == "ok":
        environment = getattr(payload, "environment", None)
        if isinstance(environment, dict) and peak:  # a Report: it carries the worker's peak memory
            environment["peak_rss_mb"] = round(peak / 2**20, 1)
        return payload
    if kind == "error":
        _, exit_code, category, text, hint, trace = payload
        if trace:
            sys.stderr.write(_safe_lines(trace))
        raise _Remote(exit_code, category, text, hint)
    text, trace = payload
    if trace:
        sys.stderr.write(_safe_lines(trace))
    raise _InternalError(f"{_read_stage(buf)}: {text}")


def _safe_lines(text: str) -> str:
    """A worker's traceback (--debug) quotes exception messages, which may quote a model's names."""
    from bridge.report.text import safe_lines

    return safe_lines(text)


class _InternalError(InternalError):
    """An unexpected exception in the child: the CLI reports it as an internal error (exit 8)."""
