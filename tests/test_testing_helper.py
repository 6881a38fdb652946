"""bridge.testing: assert_parity and the bridge_parity fixture, as a user's own pytest suite uses them.

The verification runs in this test process (torch is imported here); the bundle is exported in a
subprocess as usual."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_torch, run_cli

pytestmark = [needs_torch, pytest.mark.torch]

pytest_plugins = ["bridge.testing"]

FACTORY = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,8]"]


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("testing_helper")
    (root / "net.py").write_text(FACTORY)
    out = root / "bundle"
    res = run_cli("export", f"{root / 'net.py'}:build", "-o", out, "--threads", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    return root, out


def test_assert_parity_passes_on_a_correct_bundle(bundle):
    from bridge.testing import assert_parity

    root, out = bundle
    report = assert_parity(out, f"{root / 'net.py'}:build", atol=1e-5, rtol={"output": 1e-4}, threads=1)
    assert report.status == "pass"
    assert assert_parity(out).status == "pass"  # golden outputs only


def test_assert_parity_raises_with_the_table_on_a_corrupted_onnx(bundle):
    import onnx
    from onnx import numpy_helper

    from bridge.testing import assert_parity

    root, out = bundle
    model = onnx.load(out / "model.onnx")
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 2:
            init.CopyFrom(numpy_helper.from_array(arr * np.float32(1.02), init.name))
            break
    else:
        pytest.fail("no float32 weight matrix to corrupt")
    bad = root / "scaled.onnx"
    onnx.save(model, bad)
    with pytest.raises(AssertionError) as info:
        assert_parity(bad, f"{root / 'net.py'}:build", threads=1)
    text = str(info.value)
    assert "bridge parity FAIL" in text
    for column in ("output", "verdict", "max abs", "atol/rtol", "would pass at"):  # the per-output table
        assert column in text
    reason = text.splitlines()[1]
    assert reason.startswith("output, case ") and text.count(reason) == 1  # the reason once
    assert text.splitlines()[-1].startswith("next: bridge verify ")  # the next step


def test_fixture_and_argument_checks(bridge_parity, bundle):
    from bridge.testing import assert_parity

    assert bridge_parity is assert_parity
    from bridge.errors import UsageError

    with pytest.raises(UsageError, match="unknown keyword argument 'tolerance'"):
        bridge_parity(bundle[1], tolerance=1e-3)
