"""The worker's end: its answer reaches the parent, its buffered output is flushed, and the
interpreter's teardown (0.5 to 1 s for torch) is skipped."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import FIXTURES, ROOT

SCRIPT = """
import sys
from bridge.contain import Limits, run_contained
try:
    print("result", run_contained(sys.argv[1], sys.argv[2], Limits(timeout_s=60)))
except Exception as exc:
    print("error", type(exc).__name__, exc)
"""


def _run(target: str, arg: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers stdout
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(FIXTURES)])
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, target, arg], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_worker_flushes_its_output_and_skips_teardown(tmp_path):
    marker = tmp_path / "teardown-ran"
    out = _run("worker_targets:prints_then_returns", str(marker))
    assert "from-worker" in out
    assert "result 42" in out
    assert not marker.exists()


def test_an_answer_that_cannot_be_sent_is_an_error_not_a_hang():
    out = _run("worker_targets:returns_unpicklable", "x")
    assert out.startswith("error"), out
