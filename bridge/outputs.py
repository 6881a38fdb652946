"""Report files: checked before any work, written atomically after it. Standard library only.

Missing parent directories of a report are created. A report path is refused (exit 2) when writing
it could destroy something the command reads or
writes: a path inside a bundle or output directory involved, the same file as any input (the SOURCE
file, weights, real samples, labels, policy; through a symlink or a hard link too), a path that
exists but is not a regular file (a device, a FIFO, ``/proc`` entries), or a directory where no file
can be created. Two reports may not name the same file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from bridge.errors import UsageError


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def source_files(source: str | None) -> list[str]:
    """The files and directories a SOURCE string reads (``file.py:factory``: the .py file)."""
    if not source:
        return []
    left, sep, attr = source.rpartition(":")
    if sep and left.endswith(".py") and attr.isidentifier():
        return [left]
    return [source] if os.path.exists(source) else []


def check_report_paths(reports: dict[str, str | None], containers: list[str | None],
                       inputs: list[str | None]) -> None:
    """``reports``: flag -> path. ``containers``: directories (or files) the command reads or writes
    as a whole (bundles, the ONNX target, the localize directory). ``inputs``: files or directories
    the command reads."""
    guarded = [Path(p).resolve() for p in containers if p]
    read = [(p, Path(p).resolve(), _identity(Path(p))) for p in inputs if p and os.path.exists(p)]
    read_dirs = [(p, r) for p, r, _ in read if r.is_dir()]
    seen: dict[Path, str] = {}
    for flag, value in reports.items():
        if not value:
            continue
        path = Path(value)
        if path.is_dir():
            raise UsageError(f"--{flag} {value} is a directory", hint="give a file path")
        parent = path.parent
        ensure_directory(parent, f"--{flag} {value}")
        real = path.resolve()
        for g in guarded:
            if real == g or g in real.parents:
                raise UsageError(f"--{flag} {value} lies inside {g}, which this command reads or writes",
                                 hint="write reports outside the bundle")
        ident = _identity(path)
        for text, rpath, rident in read:
            if real == rpath or (ident is not None and ident == rident):
                raise UsageError(f"--{flag} {value} is the input file {text}; writing the report would replace it",
                                 hint="write the report to a new file")
        for text, rdir in read_dirs:
            if rdir in real.parents:
                raise UsageError(f"--{flag} {value} lies inside the input {text}", hint="write reports elsewhere")
        # A symlink at the path is replaced, never followed; anything else must be a regular file.
        if os.path.lexists(path) and not path.is_symlink() and not stat.S_ISREG(os.lstat(path).st_mode):
            raise UsageError(f"--{flag} {value} exists and is not a regular file",
                                 hint="reports replace regular files only; give a new file path")
        _probe_writable(flag, value, parent)
        if real in seen:
            raise UsageError(f"--{flag} and --{seen[real]} name the same file {value}")
        seen[real] = flag


def ensure_directory(parent: Path, what: str) -> None:
    """Create a missing directory for an output (and its parents), as ``mkdir -p`` would."""
    if parent.is_dir():
        return
    if os.path.lexists(parent):
        raise UsageError(f"{what}: cannot create the directory {parent}: something that is not a directory is there",
                         hint="choose another path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what}: cannot create the directory {parent}: {exc.strerror}",
                         hint="write it where you can create files") from None


def _probe_writable(flag: str, value: str, parent: Path) -> None:
    """Reports are written as a temporary file renamed into place: that file must be creatable."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bridge-report-", dir=parent)
    except OSError as exc:
        raise UsageError(f"--{flag} {value}: cannot create a file in {parent}: {exc.strerror}",
                         hint="write the report to a directory you can write to") from None
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
