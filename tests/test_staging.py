"""Staging directories of bundle writers (bridge/artifact/staging.py): a dead writer's staging is always
collectable, a live writer's never, even when the dead writer's pid was given to another process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bridge.artifact.staging import GRACE_S, hold_staging, release, remove_stale_staging


def _staging(parent: Path, pid: int, age: float = 0.0, name: str = "b", kind: str = "staging") -> Path:
    d = parent / f".{name}.{kind}-{pid}-abc"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"x")
    if age:
        t = time.time() - age
        os.utime(d, (t, t))
    return d


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_writers_staging_and_replaced_bundle_are_removed(tmp_path):
    pid = _dead_pid()
    staging, old = _staging(tmp_path, pid), _staging(tmp_path, pid, kind="old")
    other = _staging(tmp_path, pid, name="other")  # another destination's: not this writer's business
    assert sorted(remove_stale_staging(tmp_path / "b")) == sorted([staging.name, old.name])
    assert not staging.exists() and not old.exists() and other.exists()


def test_a_live_writers_staging_is_kept(tmp_path):
    d = _staging(tmp_path, os.getpid(), age=10 * GRACE_S)
    fd = hold_staging(d)
    try:
        assert remove_stale_staging(tmp_path / "b") == [] and d.exists()
    finally:
        release(fd)


def test_a_reused_pid_does_not_keep_a_dead_writers_staging(tmp_path):
    """The pid runs (it was given to this test process) but nobody holds the staging's lock: the writer
    is gone. Only a staging older than the grace period is taken (a writer locks right after creating)."""
    fresh = _staging(tmp_path, os.getpid())
    assert remove_stale_staging(tmp_path / "b") == [] and fresh.exists()
    os.utime(fresh, (time.time() - 2 * GRACE_S,) * 2)
    assert remove_stale_staging(tmp_path / "b") == [fresh.name] and not fresh.exists()


def test_the_lock_goes_with_a_killed_holder(tmp_path):
    d = _staging(tmp_path, os.getpid(), age=10 * GRACE_S)
    code = f"import os, time, sys\nsys.path.insert(0, {str(Path(__file__).parents[1])!r})\nfrom bridge.artifact.staging import hold_staging\nfd = hold_staging({str(d)!r})\nprint(fd is not None, flush=True)\ntime.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        assert remove_stale_staging(tmp_path / "b") == []  # held: its writer lives
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_staging(tmp_path / "b") == [d.name]
