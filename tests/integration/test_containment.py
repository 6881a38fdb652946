"""Crashes, hangs and runaway memory in the worker become exit 7 naming the stage; the parent never
hangs, prints no traceback and writes nothing."""

import time

import numpy as np
import onnx
from conftest import FIXTURES, run_cli
from onnx import TensorProto, helper

from bridge.artifact.bundle import Staging

HOSTILE = FIXTURES / "hostile.py"


def _crash_line(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("bridge: ")]
    assert lines and lines[0].startswith("bridge: crashed: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_segfault_and_abort_in_user_code_are_contained(tmp_path):
    for factory, sig in (("segfault", "SIGSEGV"), ("abort", "SIGABRT")):
        res = run_cli("export", f"{HOSTILE}:{factory}", "-o", tmp_path / factory)
        assert res.returncode == 7, res.stdout + res.stderr
        line = _crash_line(res)
        assert f"loading {HOSTILE}:{factory}" in line and sig in line
        if factory == "abort":  # the worker's stderr is kept from the terminal, and shown when it dies
            assert "the worker's last messages on stderr" in res.stderr and "frobnicator" in res.stderr
        assert not (tmp_path / factory).exists()
    assert list(tmp_path.iterdir()) == []  # not even a staging directory


def test_memory_limit(tmp_path):
    res = run_cli("export", f"{HOSTILE}:hog_memory", "-o", tmp_path / "m", "--memory-limit", "1")
    assert res.returncode == 7, res.stdout + res.stderr
    assert "used more than 1.0 GiB" in _crash_line(res)


def test_timeout_of_user_code(tmp_path):
    start = time.monotonic()
    res = run_cli("export", f"{HOSTILE}:hang", "-o", tmp_path / "h", "--timeout", "3")
    assert res.returncode == 7 and time.monotonic() - start < 60
    assert "still running after 3 s" in _crash_line(res)


def endless_loop_bundle(dest):
    """A bundle whose graph is a Loop with trip count 2**62: ONNX Runtime would run it forever."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["batch", 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["batch", 4]),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor("trips", TensorProto.INT64, [], [2**62]),
            helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
        ],
    )
    with Staging(dest) as st:
        onnx.save(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), st.dir / "model.onnx"
        )
        x = np.ones((2, 4), np.float32)
        st.write_golden({"draw0/in/x": x, "draw0/out/y": x})
        st.write_manifest(
            {
                "schema_version": 1,
                "model": {"file": "model.onnx"},
                "inputs": [{"name": "x", "dtype": "float32", "dims": ["batch", 4]}],
                "outputs": [{"name": "y", "dtype": "float32", "dims": ["batch", 4]}],
                "cases": [{"label": "draw0", "seed": 0, "sizes": {"batch": 2}}],
            }
        )
        st.publish(False)


def test_endless_onnx_loop_times_out_naming_onnx_runtime(tmp_path):
    endless_loop_bundle(tmp_path / "loop")
    start = time.monotonic()
    res = run_cli("verify", tmp_path / "loop", "--timeout", "5")
    assert res.returncode == 7, res.stdout + res.stderr
    assert time.monotonic() - start < 60
    line = _crash_line(res)
    assert "running ONNX Runtime (cpu)" in line and "still running after 5 s" in line, line
