"""--precision auto (bridge/precision/auto.py): which candidates are built, how a seeded check's strength is
measured, which candidate is published; the fusion step's constant folding; PyTorch's own int8 peer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import HAS_TORCH, ROOT
from onnx import TensorProto, helper, numpy_helper

from bridge.errors import UsageError
from bridge.precision import auto as A
from bridge.request import API, build
from bridge.types import Case


def _c(name, precision="fp32", eligible=True, tf32=False):
    c = A.Candidate(name, precision, tf32=tf32)
    c.eligible = eligible
    return c


def _t(p50):
    return {"p50_ms": p50}


def test_the_fastest_eligible_candidate_is_chosen():
    cands = [_c("fp32"), _c("fused"), _c("int8", "int8"), _c("fused+int8", "int8", eligible=False)]
    timing = {"fp32": _t(10.0), "fused": _t(8.0), "int8": _t(4.0), "fused+int8": _t(3.0)}
    assert A.choose(cands, timing).name == "int8"  # fused+int8 is faster but not eligible


def test_noise_never_buys_lower_precision():
    cands = [_c("fp32"), _c("int8", "int8"), _c("fp16", "fp16")]
    timing = {"fp32": _t(10.0), "int8": _t(9.8), "fp16": _t(9.9)}  # within TIE of each other
    assert A.choose(cands, timing).name == "fp32"
    timing["int8"] = _t(5.0)
    assert A.choose(cands, timing).name == "int8"


def test_untimed_or_ineligible_candidates_are_never_chosen():
    assert A.choose([_c("fp32", eligible=False)], {"fp32": _t(1.0)}) is None
    assert A.choose([_c("fp32")], {}) is None


def test_requested_candidates_always_hold_fp32_and_fp16_only_where_it_pays():
    opts = build("export", {"source": "m.py:f", "output": "o", "precision": "auto"}, API)
    assert A.requested(opts, "cpu") == ["fp32", "fused", "int8"]
    assert A.requested(opts, "cuda") == ["fp32", "fused", "int8", "fp16"]
    opts = build("export", {"source": "m.py:f", "output": "o", "precision": "auto", "candidates": ["int8"]}, API)
    assert A.requested(opts, "cpu") == ["fp32", "int8"]


def test_candidates_and_latency_sizes_are_options_of_auto():
    opts = build(
        "export",
        {
            "source": "m.py:f",
            "output": "o",
            "precision": "auto",
            "candidates": "fp32,int8",
            "latency_dims": {"batch": 1},
        },
        API,
    )
    assert opts.candidates == ("fp32", "int8") and opts.latency_dims == {"batch": 1}
    assert "--candidates" in opts.to_argv() and "--latency-dim" in opts.to_argv()
    with pytest.raises(UsageError, match="applies to precision auto"):
        build("export", {"source": "m.py:f", "output": "o", "candidates": ["int8"]}, API)
    with pytest.raises(UsageError, match="not one of"):
        build("export", {"source": "m.py:f", "output": "o", "precision": "auto", "candidates": ["int4"]}, API)
    with pytest.raises(UsageError, match="needs"):
        build("export", {"source": "m.py:f", "output": "o", "precision": "auto", "labels": "l.npy"}, API)


def _run(label, sizes, out):
    return (Case(label, 0, sizes), {}, out)


def test_separation_measures_how_far_apart_two_draws_lie_in_units_of_the_error():
    a, b = np.zeros((2, 10), np.float32), np.ones((2, 10), np.float32)
    runs = [_run("draw0", {"batch": 2}, {"y": a}), _run("draw1", {"batch": 2}, {"y": b}), _run("batch=1", {}, {})]
    # the candidate is off by 0.1 everywhere on draw0 and exact on draw1: apart sqrt(20), error 0.1*sqrt(20)
    kept = {"draw0": {"y": a + 0.1}, "draw1": {"y": b}}
    assert A.separation(runs, kept) == pytest.approx(10.0, rel=1e-5)
    assert A.separation(runs, {"draw0": {"y": a}, "draw1": {"y": b}}) == float("inf")
    assert A.separation(runs[:1], kept) is None  # no pair of same-sized draws: not measurable
    ints = [_run("draw0", {}, {"k": np.zeros(3, np.int64)}), _run("draw1", {}, {"k": np.ones(3, np.int64)})]
    assert A.separation(ints, {"draw0": {"k": np.zeros(3)}, "draw1": {"k": np.ones(3)}}) is None


def _graph(tmp_path, conv: bool):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3) if conv else (3, 4), np.float32), "w")
    node = helper.make_node("Conv" if conv else "MatMul", ["x", "w"], ["y"])
    shape = [1, 3, 8, 8] if conv else [1, 3]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    path = tmp_path / ("conv.onnx" if conv else "mm.onnx")
    onnx.save(helper.make_model(graph), path)
    return path


def test_int8_method_follows_the_graph_static_for_convolutions_with_samples(tmp_path):
    conv, mm = _graph(tmp_path, True), _graph(tmp_path, False)
    assert A.int8_method(conv, "train.npz")[0] == "static-qdq"
    method, why = A.int8_method(conv, None)
    assert method == "dynamic" and "give --calibrate" in why
    assert A.int8_method(mm, "train.npz")[0] == "dynamic"  # GEMM-bound: dynamic even with samples
    assert A.weight_elements(conv) == (108, 0) and A.weight_elements(mm) == (0, 12)


def test_packed_weights_are_folded_into_initializers():
    from bridge.frameworks.ort_fusion import fold_constant_concats

    parts = [numpy_helper.from_array(np.full((2, 2), i, np.float32), f"w{i}") for i in range(3)]
    nodes = [
        helper.make_node("Concat", ["w0", "w1", "w2"], ["packed"], axis=1),
        helper.make_node("MatMul", ["x", "packed"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        parts,
    )
    model = helper.make_model(graph)
    assert fold_constant_concats(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul"]
    (packed,) = model.graph.initializer
    assert packed.name == "packed" and numpy_helper.to_array(packed).tolist() == [[0, 0, 1, 1, 2, 2]] * 2


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_pytorchs_own_int8_quantizes_linear_and_lstm_modules_only():
    import torch

    from bridge.frameworks.pt import TorchModel
    from bridge.frameworks.pt_quantize import dynamic_int8

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    torch.manual_seed(0)
    native = TorchModel("net", Net())
    twin, record = dynamic_int8(native)
    assert record["modules"] == {"LSTM": 1, "Linear": 1}
    x = {"x": np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)}
    ref, got = native.run(x)["output"], twin.run(x)["output"]
    assert got.shape == ref.shape and 0 < np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.1
    none, why = dynamic_int8(TorchModel("conv", torch.nn.Conv2d(1, 1, 3)))
    assert none is None and "nothing to quantize" in why["why"]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_auto_export_publishes_a_verified_candidate_with_the_table(tmp_path):
    """A small transformer through --precision auto: every candidate verified and timed, the chosen one
    published and verified again by bridge verify against the native model."""
    out, report = tmp_path / "bundle", tmp_path / "export.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    common = ["--threads", "2", "--search", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "export", "zoo/hf.py:bert", "-o", str(out), "--precision", "auto"]
        + ["--latency-runs", "5", "--latency-dim", "batch=1", "--json", str(report), *common],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text())
    auto = data["exporter"]["auto"]
    names = [c["name"] for c in auto["candidates"]]
    assert names == ["fp32", "fused", "int8", "fused+int8"]
    fused = auto["candidates"][1]
    assert fused["status"] == "pass" and fused["settings"]["fused"]["attention"] == 2
    assert set(data["latency"]["cpu"]["sides"]) >= {"native", "native-int8", "fp32"}
    assert auto["chosen"] in names and data["status"] == "pass"
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "verify", str(out), "--source", "zoo/hf.py:bert", "--precision", "auto"]
        + common,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_gemm_fed_by_fused_attention_becomes_matmul():
    from bridge.frameworks.ort_fusion import gemms_after_attention

    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    b = numpy_helper.from_array(np.ones(2, np.float32), "b")
    nodes = [
        helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["att"], domain="com.microsoft", num_heads=1),
        helper.make_node("Gemm", ["att", "w", "b"], ["proj"], name="g", transB=1),
        helper.make_node("Gemm", ["x", "w"], ["other"], name="h"),  # not after attention: left alone
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 3]) for n in ("q", "k", "v", "x")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("proj", "other")],
        [w, b],
        value_info=[helper.make_tensor_value_info("att", TensorProto.FLOAT, [4, 3])],
    )
    model = helper.make_model(graph)
    assert gemms_after_attention(model) == 1
    ops = [(n.op_type, list(n.input)) for n in model.graph.node]
    assert ops[1] == ("MatMul", ["att", "w__transposed"]) and ops[2] == ("Add", ["proj__matmul", "b"])
    assert ops[3] == ("Gemm", ["x", "w"])
    transposed = next(t for t in model.graph.initializer if t.name == "w__transposed")
    assert numpy_helper.to_array(transposed).shape == (2, 3)
    assert not [vi for vi in model.graph.value_info if vi.name == "att"]  # its 2-D shape was the Reshape's


def test_the_cuda_bench_times_every_candidate_with_io_binding(monkeypatch):
    """The GPU path without a GPU: candidates on CUDA are bound once (inputs on the device, outputs left
    there) and timed by run_bound; PyTorch's own int8 (CPU only) is not timed beside them."""
    import bridge.frameworks as frameworks
    from bridge.types import TensorSpec

    made = []

    class FakeRunner:
        def __init__(self, path, device, threads=None, spinning=False, tf32=False):
            self.device, self.tf32, self.bound, self.runs = device, tf32, None, 0
            made.append(self)

        def bind(self, feeds):
            self.bound = feeds

        def run_bound(self):
            self.runs += 1

        def synchronize(self):
            pass

        def close(self):
            pass

    class FakeModel:
        framework = "torch"

        def __init__(self):
            self.devices = []

        def to(self, device):
            self.devices.append(device)
            return device

        def set_tf32(self, on):
            pass

        def run(self, feeds):
            return {"y": feeds["x"]}

        def synchronize(self):
            pass

    monkeypatch.setattr(frameworks, "ort_runner_class", lambda: FakeRunner)
    opts = build("export", {"source": "m.py:f", "output": "o", "precision": "auto", "latency_runs": 5}, API)
    specs = [TensorSpec("x", "float32", ("batch", 4))]
    reference = [(Case("draw0", 0, {"batch": 2}), {}, {})]
    cands = [A.Candidate("fp32", "fp32", path="a.onnx"), A.Candidate("fp32@tf32", "fp32", path="a.onnx", tf32=True)]
    for c in cands:
        c.status = "pass"
    model = FakeModel()
    timing, bench, peers = A._bench(cands, model, specs, reference, opts, "cuda")
    assert set(bench["sides"]) == {"native", "fp32", "fp32@tf32"} and set(timing) == {"fp32", "fp32@tf32"}
    assert [r.tf32 for r in made] == [False, True] and all(r.bound is not None and r.runs for r in made)
    assert "CPU only" in peers["native-int8"]["why"] and model.devices == ["cuda", "cpu"]


def test_pytorchs_own_int8_that_cannot_run_the_model_is_left_out_with_its_reason(monkeypatch):
    """torch.ao swaps nn.Linear for a quantized module whose ``weight`` is a method: code that reads the
    weight itself (torchvision's Swin, nn.TransformerEncoder's fast-path check) fails on the twin. The
    peer is left out with the reason; the candidates are still timed."""
    import torch

    import bridge.frameworks as frameworks
    from bridge.frameworks.pt import TorchModel
    from bridge.types import TensorSpec

    class ReadsItsWeight(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.nn.functional.linear(x, self.fc.weight, self.fc.bias)

    class FakeRunner:
        def __init__(self, path, device, threads=None, spinning=False, tf32=False):
            pass

        def run(self, feeds):
            return {}

        def close(self):
            pass

    monkeypatch.setattr(frameworks, "ort_runner_class", lambda: FakeRunner)
    opts = build("export", {"source": "m.py:f", "output": "o", "precision": "auto", "latency_runs": 5}, API)
    specs = [TensorSpec("x", "float32", ("batch", 4))]
    reference = [(Case("draw0", 0, {"batch": 2}), {}, {})]
    cands = [A.Candidate("fp32", "fp32", path="a.onnx")]
    cands[0].status = "pass"
    timing, bench, peers = A._bench(cands, TorchModel("m", ReadsItsWeight()), specs, reference, opts, "cpu")
    assert set(bench["sides"]) == {"native", "fp32"} and set(timing) == {"fp32"}
    assert "fails to run" in peers["native-int8"]["why"], peers
