"""Reading files given by a user or found in a bundle: regular files only, and bounded in size.

A device (``/dev/zero``), a FIFO or a ``/proc`` entry never ends or never answers; a file far larger
than its kind can be is an attack on memory. Each reader names what it expected. Standard library
only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bridge.errors import InputError, UsageError

# Upper bounds by kind: far above anything bridge writes or a user needs.
MANIFEST_BYTES = 16 << 20
POLICY_BYTES = 1 << 20
CONFIG_BYTES = 4 << 20


def require_regular(path: str | Path, what: str, error=InputError) -> Path:
    """``path`` as a Path when it is a regular file (symlinks followed), else ``error``."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise error(f"{what} {path} is {kind}", hint=f"give the {what} as a regular file")
    return path


def read_bounded(path: str | Path, limit: int, what: str, error=InputError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    path = require_regular(path, what, error)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise error(
            f"{what} {path} is larger than {limit >> 20} MiB, far more than a {what} holds",
            hint=f"check that {path} is the {what} you meant",
        )
    return data


def ensure_directory(parent: Path, what: str) -> None:
    """Create a missing directory for an output (and its parents), as ``mkdir -p`` would."""
    if parent.is_dir():
        return
    if os.path.lexists(parent):
        raise UsageError(
            f"{what}: cannot create the directory {parent}: something that is not a directory is there",
            hint="choose another path",
        )
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{what}: cannot create the directory {parent}: {exc.strerror}", hint="write it where you can create files"
        ) from None
