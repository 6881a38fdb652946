"""A throwaway one-node Ray cluster for the tests that need a real one (``ray start --head``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a throwaway cluster on this machine


@contextlib.contextmanager
def ray_head(log: Path, temp_dir: str | None = None):
    """A cluster with 2 CPUs and no GPU on a free port, its output in ``log`` (and its sockets in
    ``temp_dir``, short, where given); yields its address, stops it at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = Path(sys.executable).with_name("ray")
    argv = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block", "--port", str(port)]
    argv += ["--temp-dir", temp_dir] if temp_dir else []
    argv += ["--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV}, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start --head did not come up:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: stops the processes it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
