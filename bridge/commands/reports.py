"""Every file a command writes besides a bundle: which paths it may write, and writing them atomically.

One rule for every writer (reports of export, verify, bench and inspect, ``bridge check``'s summaries,
baselines, ``--localize`` folders): before any work, a path is refused (exit 2) when writing it could
destroy something the run reads or writes: one of its inputs (a SOURCE file, weights, samples,
labels, calibration data, a policy, a config, a baseline of another model; through a symlink or a
hard link too), a path inside a bundle or output directory of the run or inside an input directory,
something that is not a regular file (a device, a FIFO, ``/proc`` entries), a directory where no file
can be created, or a path another writer of the same run names. Missing parent directories are
created. Files are written as a temporary file renamed into place.

After the work every requested report is written, whatever the outcome: on an error each format
holds the error (a CI job collecting JUnit gets a file for a refused model too). Standard library
only at import.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from bridge.artifact.files import ensure_directory
from bridge.errors import BridgeError, UsageError

FORMATS = ("json", "junit", "markdown", "html")


def source_files(source: str | None) -> list[str]:
    """The files and directories a SOURCE string reads (``file.py:factory``: the .py file)."""
    if not source or not isinstance(source, str):
        return []
    left, sep, attr = source.rpartition(":")
    if sep and left.endswith(".py") and attr.isidentifier():
        return [left]
    return [source] if os.path.exists(source) else []


def roles(request, role: str) -> list[str]:
    """The paths a request's options of one role name: "input" (files it reads), "bundle", "output",
    "output-dir"."""
    from bridge.request import options_for

    out = []
    for o in options_for(request.command):
        value = getattr(request, o.name, None)
        if o.role == role and value:
            out += source_files(value) if o.name == "source" else [value]
    return out


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Guard:
    """What a run reads (``inputs``) and writes as a whole (``containers``: bundles, output folders);
    ``check`` refuses a path any writer of the run names that would destroy one of them."""

    def __init__(self, inputs, containers) -> None:
        self.inputs = [(p, Path(p).resolve(), _identity(Path(p))) for p in inputs if p and os.path.exists(p)]
        self.containers = [Path(p).resolve() for p in containers if p]
        self.claimed: dict[Path, str] = {}

    def is_input(self, path: str | os.PathLike) -> str | None:
        """The input ``path`` would destroy (itself, through a link, or a directory holding it), or None."""
        path = Path(path)
        real, ident = path.resolve(), _identity(path)
        for text, rpath, rident in self.inputs:
            if real == rpath or (ident is not None and ident == rident):
                return f"is the input file {text}"
            if rpath.is_dir() and rpath in real.parents:
                return f"lies inside the input {text}"
        for g in self.containers:
            if real == g or g in real.parents:
                return f"lies inside {g}, which this run reads or writes"
        return None

    def check(self, what: str, value: str, *, directory: bool = False) -> None:
        """Refuse ``value`` (named by ``what``, e.g. ``--json``) before any work; see the module doc."""
        path = Path(value)
        if not directory and path.is_dir():
            raise UsageError(f"{what} {value} is a directory", hint="give a file path")
        problem = self.is_input(path)
        if problem:
            raise UsageError(
                f"{what} {value} {problem}; writing it would replace it",
                hint="write it to a new path, outside the run's inputs and bundles",
            )
        real = path.resolve()
        if real in self.claimed:
            raise UsageError(f"{what} and {self.claimed[real]} name the same path {value}")
        self.claimed[real] = what
        if directory:
            return
        ensure_directory(path.parent, f"{what} {value}")
        # A symlink at the path is replaced, never followed; anything else must be a regular file.
        if os.path.lexists(path) and not path.is_symlink() and not stat.S_ISREG(os.lstat(path).st_mode):
            raise UsageError(
                f"{what} {value} exists and is not a regular file",
                hint="reports replace regular files only; give a new file path",
            )
        _probe_writable(what, value, path.parent)


def guard_request(request) -> Guard:
    """Check every path a request writes (its reports, its --localize folder) against what it reads."""
    guard = Guard(roles(request, "input"), roles(request, "bundle") + roles(request, "output-dir"))
    from bridge.request import options_for

    for o in options_for(request.command):
        value = getattr(request, o.name, None)
        if value and o.role == "output":
            guard.check(o.cli_flag, value)
        if value and o.role == "output-dir":
            guard.containers.remove(Path(value).resolve())
            guard.check(o.cli_flag, value, directory=True)
            guard.containers.append(Path(value).resolve())
    return guard


def _probe_writable(what: str, value: str, parent: Path) -> None:
    """Reports are written as a temporary file renamed into place: that file must be creatable."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bridge-report-", dir=parent)
    except OSError as exc:
        raise UsageError(
            f"{what} {value}: cannot create a file in {parent}: {exc.strerror}",
            hint="write it to a directory you can write to",
        ) from None
    os.close(fd)
    os.unlink(tmp)


def write_text(path: str, text: str) -> None:
    """Atomic: a temporary file next to PATH, renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bridge-report-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render(fmt: str, data: dict) -> str:
    """A report dict (``Report.to_json()`` or an error report) in one format."""
    if fmt == "json":
        from bridge.verdict.results import dumps

        return dumps(data)
    if fmt == "junit":
        from bridge.report.junit import render_junit

        return render_junit([data])
    if fmt == "markdown":
        from bridge.report.markdown import render_markdown

        return render_markdown(data)
    from bridge.report.html import render_html

    return render_html(data)


def finish(request, report) -> int:
    """Print a command's report on stdout and write every format it asked for; its exit code."""
    from bridge.report.terminal import render as terminal
    from bridge.verdict.status import exit_code

    print(terminal(report))
    data = report.to_json()
    for fmt in FORMATS:
        path = getattr(request, fmt, None)
        if path:
            write_text(path, render(fmt, data))
    return exit_code(report.status)


def error_report(command: str, exc: BridgeError, target=None, source=None) -> dict:
    """What a report says when its command ended in an error: every format can render it."""
    from bridge.report.model import REPORT_SCHEMA_VERSION

    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": command,
        "passed": False,
        "status": "error",
        "exit_code": exc.exit_code,
        "reason": f"{exc.category}: {exc.message}",
        "error": {"category": exc.category, "message": exc.message, "hint": exc.hint},
        "target": target,
        "source": source,
    }


def write_error(request, exc: BridgeError) -> None:
    """Every report the request asked for, holding the error (once its paths were checked)."""
    data = error_report(
        request.command,
        exc,
        getattr(request, "target", None) or getattr(request, "output", None),
        getattr(request, "source", None),
    )
    for fmt in FORMATS:
        path = getattr(request, fmt, None)
        if not path:
            continue
        try:
            write_text(path, render(fmt, data))
        except (OSError, BridgeError) as problem:  # the error itself is reported; say why a file is missing
            sys.stderr.write(f"bridge: could not write --{fmt} {path}: {problem}\n")
