"""SIGKILL at any moment of an export leaves the old state or the complete new bundle, never a half."""

import os
import signal
import subprocess
import sys
import time

from conftest import FIXTURES, ROOT, needs_torch

from bridge.artifact.bundle import open_bundle

SRC = f"{FIXTURES / 'torch_models.py'}:tuple_outputs"


def start_export(dest):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
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
    for delay in (0.5, 2.0, 3.5):
        proc = start_export(dest)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)  # the parent; its worker dies with it
        proc.wait()
        time.sleep(0.5)
        if dest.exists():
            open_bundle(dest)  # complete and consistent, or it raises
    proc = start_export(dest)
    assert proc.wait(timeout=300) == 0
    open_bundle(dest)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "bundle"]
    assert leftovers == [], leftovers  # staging of killed writers was cleaned by the last export
