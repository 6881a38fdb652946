"""SIGKILL at any moment of an export leaves the old state or the complete new bundle, never a half."""

import os
import signal
import subprocess
import sys
import time

from conftest import FIXTURES, ROOT, needs_torch

from bridge.artifact.bundle import open_bundle

SRC = f"{FIXTURES / 'torch_models.py'}:tuple_outputs"


def start_export(dest, tmpdir=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "export", SRC, "-o", str(dest), "--force", "--input", "x:float32[batch,4]"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@needs_torch
def test_sigkill_during_export(tmp_path):
    dest = tmp_path / "bundle"
    scratch = tmp_path / "tmp"  # the CLI's temporary folder: its worker's stderr file lives there
    scratch.mkdir()
    for delay in (0.5, 2.0, 3.5):
        proc = start_export(dest, scratch)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)  # the parent; its worker dies with it
        proc.wait()
        time.sleep(0.5)
        if dest.exists():
            open_bundle(dest)  # complete and consistent, or it raises
    proc = start_export(dest)
    assert proc.wait(timeout=300) == 0
    open_bundle(dest)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("bundle", "tmp")]
    assert leftovers == [], leftovers  # staging of killed writers was cleaned by the last export
    stray = [p.name for p in scratch.iterdir() if p.name.startswith("bridge-worker-")]
    assert stray == [], stray  # the worker's stderr file is unlinked as soon as it is made


def _alive_in_session(sid: int) -> list[str]:
    """Processes of session ``sid`` that still run (zombies excluded): the CLI started it."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append(f"{entry} {state} {cmd}")
    return out


@needs_torch
def test_a_worker_dies_with_a_parent_killed_while_it_starts(tmp_path):
    """The worker asks for its death signal only once its interpreter runs; a parent killed before then
    (a fraction of a second, seconds on a loaded machine) must not leave an orphan that exports on its
    own, publishes over the next writer and leaves its staging: the worker checks its parent's pid
    right after asking, and ends. Killed at moments across the start-up window, nothing of the
    session may run a few seconds later, and the next export leaves nothing behind."""
    dest = tmp_path / "bundle"
    for delay in (0.05, 0.15, 0.25, 0.35, 0.5, 0.8):
        proc = start_export(dest)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while _alive_in_session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive_in_session(proc.pid) == [], (delay, _alive_in_session(proc.pid))
    proc = start_export(dest)
    assert proc.wait(timeout=300) == 0
    open_bundle(dest)
    assert [p.name for p in tmp_path.iterdir() if p.name != "bundle"] == []
