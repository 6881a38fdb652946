"""Staging directories of bundle writers: their names, and removing those of writers that died.

A writer stages a bundle in ``.<name>.staging-<pid>-<random>`` next to the destination and renames it
into place. A writer killed before it could unwind (SIGKILL, a crash) leaves its staging behind; the
next writer to the same destination, or the CLI that saw its worker stopped, removes it. Standard
library only: the CLI process calls this on an interruption without importing numpy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def staging_prefix(dest: Path) -> str:
    return f".{dest.name}.staging-{os.getpid()}-"


def remove_stale_staging(dest: str | Path) -> None:
    """Remove the staging directories next to ``dest`` whose writer process no longer runs."""
    dest = Path(dest)
    prefix = f".{dest.name}.staging-"
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
