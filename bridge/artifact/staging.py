"""Staging directories of bundle writers: their names, their locks, and removing those of writers that died.

A writer stages a bundle in ``.<name>.staging-<pid>-<random>`` next to the destination, holds an
exclusive ``flock`` on that directory for as long as it lives, and renames it into place; an existing
bundle it replaces is first renamed to ``.<name>.old-<pid>-<random>`` and then removed. A writer killed
before it could unwind (SIGKILL, a crash, the machine's OOM killer) leaves these behind; the next writer
to the same destination, or the CLI that saw its worker stopped, removes them.

Whether the writer is gone is decided by its pid and by its lock: a pid that no longer runs is a dead
writer; a pid that runs while nobody holds the lock is another process that was given the same pid
(pids are reused, quickly on a busy machine), so the staging is a dead writer's too once it is older
than ``GRACE_S`` (a writer takes its lock right after creating the directory). The kernel drops a lock
with the last descriptor of its holder, however the process ended. Standard library only: the CLI
process calls this on an interruption without importing numpy.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

GRACE_S = 60.0  # an unlocked staging directory of a running pid younger than this may be just created


def staging_prefix(dest: Path) -> str:
    return f".{dest.name}.staging-{os.getpid()}-"


def old_prefix(dest: Path) -> str:
    """Where a replaced bundle waits for its removal: named like staging, collected like it."""
    return f".{dest.name}.old-{os.getpid()}-"


def hold_staging(path: str | Path) -> int | None:
    """Take the writer's lock on a staging directory; the descriptor to close when done (None: locks
    unsupported here; the pid alone then decides)."""
    return _flock(path)


def _flock(path: str | Path) -> int | None:
    """A descriptor holding an exclusive lock on the directory ``path``; None where another process holds
    it, the directory cannot be opened, or this platform has no flock."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def remove_stale_staging(dest: str | Path) -> list[str]:
    """Remove the staging (and replaced-bundle) directories next to ``dest`` whose writer is gone; the
    names removed."""
    dest = Path(dest)
    prefixes = (f".{dest.name}.staging-", f".{dest.name}.old-")
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None or entry.is_symlink() or not entry.is_dir():
            continue
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and writer_gone(entry, int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def writer_gone(entry: Path, pid: int) -> bool:
    """Whether the writer ``pid`` of the staging directory ``entry`` is gone (see the module's doc)."""
    if not _alive(pid):
        return True
    fd = _flock(entry)
    if fd is None:
        return False  # held (its writer runs), or no way to tell: kept
    os.close(fd)
    try:
        age = time.time() - entry.stat().st_mtime
    except OSError:
        return False
    return age > GRACE_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
