"""The CUDA path's logic, checked on the CPU: the no-GPU error, ONNX Runtime's silent fallback to the
CPU refused, node placement per provider, the precision switches recorded."""

from __future__ import annotations

import numpy as np
import pytest
from hostile.build import model, vi, write_model
from onnx import TensorProto, helper

from bridge.errors import EnvironmentProblem
from bridge.frameworks import ort as ort_mod
from bridge.frameworks.ort import OrtRunner
from bridge.frameworks.providers import cuda


def cuda_problem():
    return cuda.problem(ort_mod.ort)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    m = model(
        [helper.make_node("Mul", ["x", "w"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
        [vi("x", shape=("batch", 4))],
        [vi("y", shape=("batch", 4))],
        [w],
    )
    return str(write_model(m, tmp_path_factory.mktemp("ort") / "tiny.onnx"))


def test_cpu_session_runs_and_records_its_settings(tiny_model):
    runner = OrtRunner(tiny_model, "cpu", threads=2, spinning=True)
    out = runner.run({"x": np.array([[1, -1, 2, -2]], dtype=np.float32)})
    np.testing.assert_array_equal(out["y"], [[1, 0, 6, 0]])
    assert runner.providers == ["CPUExecutionProvider"]
    assert runner.settings["intra_op_num_threads"] == 2 and runner.settings["allow_spinning"] is True
    assert runner.precision() == {}


def test_node_placement_counts_nodes_per_provider(tiny_model):
    runner = OrtRunner(tiny_model, "cpu")
    assert runner.node_placement({"x": np.ones((3, 4), np.float32)}) == {"CPUExecutionProvider": 2}


def test_hidden_gpu_is_named(monkeypatch):
    monkeypatch.setattr(
        ort_mod.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_problem() == "no NVIDIA GPU is visible on this machine"


def test_cpu_only_build_is_named(monkeypatch):
    monkeypatch.setattr(ort_mod.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "has no CUDA execution provider" in cuda_problem()


def test_cuda_without_gpu_stops_before_a_session(monkeypatch, tiny_model):
    monkeypatch.setattr(cuda, "problem", lambda ort: "no NVIDIA GPU is visible on this machine")
    monkeypatch.setattr(ort_mod.ort, "InferenceSession", lambda *a, **k: pytest.fail("no session may be created"))
    with pytest.raises(EnvironmentProblem) as err:
        OrtRunner(tiny_model, "cuda")
    assert err.value.exit_code == 4 and "--device cuda" in err.value.message


class _FellBack:
    """What onnxruntime-gpu does when the CUDA EP cannot start: a working session on the CPU."""

    def __init__(self, path, sess_options=None, providers=None):
        self.asked = providers

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_silent_fallback_to_the_cpu_is_refused(monkeypatch, tiny_model):
    monkeypatch.setattr(cuda, "problem", lambda ort: None)
    monkeypatch.setattr(ort_mod.ort, "preload_dlls", lambda: None, raising=False)
    monkeypatch.setattr(ort_mod.ort, "InferenceSession", _FellBack)
    with pytest.raises(EnvironmentProblem) as err:
        OrtRunner(tiny_model, "cuda", tf32=False)
    assert err.value.exit_code == 4
    assert "fell back" in err.value.message and "CPUExecutionProvider" in err.value.message


def test_cuda_session_asks_for_cuda_first_and_records_tf32(monkeypatch, tiny_model):
    class _OnCuda(_FellBack):
        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def get_outputs(self):
            return []

        def get_inputs(self):
            return []

    monkeypatch.setattr(cuda, "problem", lambda ort: None)
    monkeypatch.setattr(ort_mod.ort, "preload_dlls", lambda: None, raising=False)
    monkeypatch.setattr(ort_mod.ort, "InferenceSession", _OnCuda)
    runner = OrtRunner(tiny_model, "cuda", tf32=False)
    assert runner.session.asked[0] == ("CUDAExecutionProvider", {"use_tf32": "0"})
    assert runner.precision() == {"cuda.use_tf32": "0"}
    assert runner.settings["cuda_options"] == {"use_tf32": "0"}


def test_unknown_device_is_an_environment_error(tiny_model):
    with pytest.raises(EnvironmentProblem):
        OrtRunner(tiny_model, "tpu")
