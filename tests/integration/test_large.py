"""A model over protobuf's 2 GB limit, end to end: external data written, hashed, verified, and a
changed byte in it refused. Slow (about a minute, 10 GB of memory): `pytest -m slow`."""

import json
import resource

import pytest
from conftest import FIXTURES, needs_torch, run_cli

pytestmark = [pytest.mark.slow, needs_torch]


def test_external_data_end_to_end(tmp_path):
    bundle = tmp_path / "big"
    res = run_cli("export", f"{FIXTURES / 'large_model.py'}:big", "-o", bundle, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"]["model.onnx.data"]["bytes"] > 2**31
    assert manifest["files"]["model.onnx"]["bytes"] < 1 << 20
    res = run_cli("verify", bundle, timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"peak resident memory of a worker: {peak_gib:.1f} GiB")
    with open(bundle / "model.onnx.data", "r+b") as fh:
        fh.seek(1_000_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000_000)
        fh.write(bytes([byte[0] ^ 1]))
    res = run_cli("verify", bundle, timeout=1800)
    assert res.returncode == 2 and "model.onnx.data was changed" in res.stderr
