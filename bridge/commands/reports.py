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


WALK_LIMIT = 20000  # entries of an input directory searched for a hard link to a path about to be written


class Guard:
    """The one rule for every path a run writes: what the run reads (``inputs``: files and directories)
    and what it reads or writes as a whole (``containers``: the bundle verified, bundles and folders it
    writes). ``is_input`` decides whether writing a path would destroy one of them, through a symlink
    or a hard link too; ``check`` refuses such a path before any work, with every other rule of the
    module's doc. Every writer of every command goes through ``check``."""

    def __init__(self, inputs, containers) -> None:
        # Inputs that do not exist yet count by path: a check's prepare commands make them before they are read.
        self.inputs = [(str(p), Path(p).resolve(), _identity(Path(p))) for p in inputs if p]
        self.containers = [Path(p).resolve() for p in containers if p]
        self.claimed: dict[Path, str] = {}

    def is_input(self, path: str | os.PathLike) -> str | None:
        """What writing the file or directory ``path`` would destroy (an input: itself, through a symlink
        or a hard link, or a directory holding it; a path inside a container), or None."""
        path = Path(path)
        real, ident = path.resolve(), _identity(path)
        for text, rpath, rident in self.inputs:
            if real == rpath or (ident is not None and ident == rident):
                return f"is the input {'directory' if rpath.is_dir() else 'file'} {text}"
            if rpath in real.parents:
                return f"lies inside the input {text}"
        for g in self.containers:
            if real == g or g in real.parents:
                return f"lies inside {g}, which this run reads or writes"
        linked = self._hard_link(path)
        if linked:
            return linked
        return None

    def holds_input(self, directory: str | os.PathLike) -> str | None:
        """What replacing the whole of ``directory`` (an output folder) would destroy: an input or another
        container inside it, or None."""
        real = Path(directory).resolve()
        for text, rpath, _ in self.inputs:
            if real in rpath.parents or real == rpath:
                return f"holds the input {text}"
        for g in self.containers:
            if real in g.parents:
                return f"holds {g}, which this run reads or writes"
        return None

    def _hard_link(self, path: Path) -> str | None:
        """A regular file with more than one link at ``path`` may be a file inside an input directory or
        a container under another name: search those (bounded) for its inode."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_nlink < 2:
            return None
        ident = (st.st_dev, st.st_ino)
        roots = [(text, rpath) for text, rpath, _ in self.inputs if rpath.is_dir()]
        roots += [(str(g), g) for g in self.containers if g.is_dir()]
        for text, root in roots:
            seen = 0
            for base, dirs, files in os.walk(root):
                for name in files:
                    seen += 1
                    if _identity(Path(base) / name) == ident:
                        return f"is a hard link to {Path(base) / name}, inside {text}, which this run reads or writes"
                seen += len(dirs)
                if seen > WALK_LIMIT:
                    break
        return None

    def check(self, what: str, value: str, *, directory: bool = False) -> None:
        """Refuse ``value`` (named by ``what``, e.g. ``--json``) before any work; see the module doc.
        ``directory``: a folder written (or replaced) as a whole, which becomes one of the run's
        containers once checked (no later writer may write inside it)."""
        path = Path(value)
        if not directory and path.is_dir():
            raise UsageError(f"{what} {value} is a directory", hint="give a file path")
        problem = self.is_input(path) or (self.holds_input(path) if directory else None)
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
            self.containers.append(real)
            return
        ensure_directory(path.parent, f"{what} {value}")
        # A symlink at the path is replaced, never followed; anything else must be a regular file.
        if os.path.lexists(path) and not path.is_symlink() and not stat.S_ISREG(os.lstat(path).st_mode):
            raise UsageError(
                f"{what} {value} exists and is not a regular file",
                hint="reports replace regular files only; give a new file path",
            )
        _probe_writable(what, value, path.parent)


def writers(command: str) -> list[tuple]:
    """The options of ``command`` (export, verify, bench) that write: (option, whether a folder)."""
    from bridge.request import options_for

    out = []
    for o in options_for(command):
        if o.role == "output":
            out.append((o, False))
        elif o.role == "output-dir" or (o.role == "bundle" and command == "export"):
            out.append((o, True))
    return out


def guard_request(request) -> Guard:
    """Check every path a request writes (its bundle, its reports, its --localize folder) against what it
    reads, before any work."""
    written = writers(request.command)
    reads = [v for v in roles(request, "bundle") if not any(o.role == "bundle" for o, _ in written)]
    guard = Guard(roles(request, "input"), reads)
    # Folders first (each then a container of the run), then files, which may not land inside them.
    for o, folder in sorted(written, key=lambda w: not w[1]):
        value = getattr(request, o.name, None)
        if value:
            guard.check(o.short if o.name == "output" else (o.cli_flag or o.name), value, directory=folder)
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
    """Every report the request asked for, holding the error (once its paths were checked). Marks the
    error as reported, so that the command line's last resort (``write_failure``) leaves it."""
    exc.reported = True
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


# -- the last resort: reports of a command that ended before (or outside) its own report writing --------


def argv_reports(command: str, argv: list, formats) -> tuple[dict, list[str]]:
    """The report paths a command line asks for ({format: path}, from ``--json PATH`` or ``--json=PATH``
    after the command's name) and every other token that names something on disk: what the run would
    have read, as far as the raw command line tells (a SOURCE ``file.py:factory`` by its file)."""
    tokens = list(argv)
    if command in tokens:
        tokens = tokens[tokens.index(command) + 1 :]
    paths: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = str(tokens[i])
        fmt = next((f for f in formats if token == f"--{f}" or token.startswith(f"--{f}=")), None)
        if fmt is not None:
            if "=" in token:
                paths[fmt] = token.split("=", 1)[1]
            elif i + 1 < len(tokens):
                paths[fmt] = str(tokens[i + 1])
                i += 1
        else:
            rest.append(token.split("=", 1)[1] if token.startswith("--") and "=" in token else token)
        i += 1
    named = []
    for token in rest:
        for part in (token, *source_files(token)):
            if part and os.path.lexists(part):
                named.append(part)
    return {f: p for f, p in paths.items() if p}, named


def fallback_guard(command: str, argv: list, formats, guard: Guard | None = None, extra_inputs=()) -> tuple:
    """(guard, {format: path}) for writing a failed command's reports: the guard the command already
    validated its paths with, else one that takes every path the command line names (and
    ``extra_inputs``) as an input, so a report never replaces a file the run would have read."""
    paths, named = argv_reports(command, argv, formats)
    if guard is None:
        guard = Guard([*named, *extra_inputs], [])
    return guard, paths


def write_all(paths: dict, guard: Guard, render_one) -> None:
    """Write ``render_one(fmt)`` to each path of ``paths`` the guard allows (one it validated before,
    or one it accepts now); a refused path is left alone (the command's error already says why)."""
    for fmt, path in paths.items():
        try:
            if Path(path).resolve() not in guard.claimed:
                guard.check(f"--{fmt}", path)
            write_text(path, render_one(fmt))
        except (OSError, BridgeError):
            continue


def write_failure(argv: list, args, exc: BridgeError, command: str) -> None:
    """Export, verify and bench: every report asked for, holding the error, when the command ended
    before its request could write them (a value refused while the request was built, an argparse
    usage error, an interrupt, an internal error)."""
    guard, paths = fallback_guard(command, argv, FORMATS)
    if not paths:
        return
    target = getattr(args, "target", None) or getattr(args, "output", None) if args is not None else None
    source = getattr(args, "source", None) if args is not None else None
    data = error_report(command, exc, target, source)
    write_all(paths, guard, lambda fmt: render(fmt, data))
