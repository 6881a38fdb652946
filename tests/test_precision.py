"""Reduced-precision artifacts without a framework: policy rows, the agreement gate, a graph's precision,
the Gemm rewrite before dynamic quantization, and bench's record of other processes' CPU use."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bridge.bench import NOISY_SHARE, OtherLoad, Side, judge_load, measure
from bridge.errors import BundleError, UsageError
from bridge.precision.methods import check_manifest_entry, graph_precision, method_for, target_precision
from bridge.precision.quality import accuracy_gate, precision_notes
from bridge.request import TolSpec
from bridge.types import Case
from bridge.verdict.compare import FAIL, INCONCLUSIVE, PASS, compare_outputs, cross_case_vacuity
from bridge.verdict.policy import Policy, build_policy

RNG = np.random.default_rng(0)
LOGITS = (RNG.standard_normal((64, 10)) * 4).astype(np.float32)


def _noisy(ref: np.ndarray, rel: float, seed: int = 1) -> np.ndarray:
    """ref plus noise whose norm is ``rel`` of ref's."""
    noise = np.random.default_rng(seed).standard_normal(ref.shape)
    return (ref + noise * rel * np.linalg.norm(ref) / np.linalg.norm(noise)).astype(ref.dtype)


def _one(cand, policy, case="draw0", ref=LOGITS):
    (result,) = compare_outputs({"logits": ref}, {"logits": cand}, policy, "cpu", case)
    return result


# -- policy rows --------------------------------------------------------------------------------


def test_reduced_rows_apply_to_float_references_only():
    p = Policy(precision="int8")
    tol = p.tolerance("logits", "float32", "cpu")
    assert tol.row == "float32/cpu/int8" and tol.rel_norm is not None and tol.min_top1 == 0.99
    assert p.tolerance("logits", "float32", "cuda-tf32").row == "float32/cpu/int8"  # falls back to the CPU's row
    assert p.tolerance("ids", "int64", "cpu").atol == 0.0  # integers stay exact
    assert Policy().tolerance("logits", "float32", "cpu").row == ""  # float32 bundles: unchanged
    fp16 = Policy(precision="fp16").tolerance("logits", "float32", "cpu")
    assert fp16.rel_norm < tol.rel_norm and fp16.scale_atol < tol.scale_atol


def test_reduced_policy_round_trips_and_fp32_json_is_unchanged():
    assert "precision" not in Policy().to_json()
    data = json.loads(json.dumps(build_policy({}, min_top1=0.97).to_json() | {"precision": "int8"}))
    back = Policy.from_json(data)
    assert back.precision == "int8" and back.tolerance("y", "float32", "cpu").min_top1 == 0.97
    stored = Policy(precision="fp16").to_json()
    assert Policy.from_json(stored).tolerance("y", "float32", "cpu") == Policy(precision="fp16").tolerance(
        "y", "float32", "cpu"
    )


def test_policy_file_rows_for_a_precision():
    p = Policy.from_json(
        {
            "precision": "int8",
            "max_accuracy_drop": 0.01,
            "defaults": {
                "float32/cpu/int8": {"atol": 1e-3, "rtol": 0.2, "scale_atol": 0.1, "rel_norm": 0.05, "min_top1": 0.995}
            },
        }
    )
    tol = p.tolerance("y", "float32", "cpu")
    assert (tol.atol, tol.rel_norm, tol.min_top1, p.max_accuracy_drop) == (1e-3, 0.05, 0.995, 0.01)
    with pytest.raises(UsageError):
        Policy.from_json({"precision": "int4"})
    with pytest.raises(UsageError):
        Policy.from_json({"defaults": {"float32/cpu/int4": {"atol": 1, "rtol": 1}}})
    with pytest.raises(UsageError):
        Policy.from_json({"max_accuracy_drop": 5})


# -- the gate -----------------------------------------------------------------------------------


def test_int8_level_noise_passes_the_int8_row_and_fails_float32():
    cand = _noisy(LOGITS, 0.03)
    assert _one(cand, Policy(precision="int8")).status == PASS
    assert _one(cand, Policy()).status == FAIL


def test_error_norm_above_the_bound_fails_with_its_reason():
    p = Policy.from_json(
        {
            "precision": "int8",
            "defaults": {"float32/cpu/int8": {"atol": 1e-4, "rtol": 0.1, "scale_atol": 0.25, "rel_norm": 0.05}},
        }
    )
    result = _one(_noisy(LOGITS, 0.08), p)
    assert result.status == FAIL and "relative error norm" in result.reason and "float32/cpu/int8" in result.reason
    assert result.kind == "values"


def test_another_model_fails_every_reduced_row():
    other = (np.random.default_rng(7).standard_normal(LOGITS.shape) * 4).astype(np.float32)
    for precision in ("int8", "fp16"):
        assert _one(other, Policy(precision=precision), case="draw0").status == FAIL
        assert _one(other, Policy(precision=precision), case="data").status == FAIL


def test_top1_floor_applies_to_real_samples_only():
    cand = LOGITS.copy()
    flip = np.argsort(LOGITS, axis=1)
    rows = np.arange(3)  # 3 of 64 rows get another argmax: 95.3% agreement, tiny error norm
    cand[rows, flip[rows, -1]], cand[rows, flip[rows, -2]] = LOGITS[rows, flip[rows, -2]], LOGITS[rows, flip[rows, -1]]
    policy = Policy(precision="int8")
    assert _one(cand, policy, case="draw0").status == PASS  # seeded inputs: near-ties flip, not judged
    on_data = _one(cand, policy, case="data")
    assert on_data.status == FAIL and on_data.reason.startswith("top-1:") and "real samples" in on_data.reason
    assert _one(cand, build_policy({"precision": "int8"}, min_top1=0.9), case="data").status == PASS
    # float32: --min-top1 still applies to every case
    assert _one(cand, build_policy({}, TolSpec(10.0), min_top1=0.99), case="draw0").status == FAIL


def test_vacuity_judges_the_error_norm_too():
    """A loose element band must not make a moving output inconclusive when the error-norm bound
    would fail a constant or an input-ignoring graph; and must when neither could fail."""
    a = (np.full((4, 10), 10.0) + RNG.standard_normal((4, 10)) * 0.01).astype(np.float32)
    b = (a + 3.0 * np.sign(RNG.standard_normal((4, 10)))).astype(np.float32)  # every element moves by 3:
    # inside the int8 row's element band (0.25 * 13 + 0.1 * |ref|), 0.29 of the norm: above its bound
    runs = [(Case("draw0", 0, {}), {"x": np.zeros(1)}, {"y": a}), (Case("draw1", 1, {}), {"x": np.ones(1)}, {"y": b})]
    policy = Policy(precision="int8")
    results = [r for c, _, out in runs for r in compare_outputs(out, out, policy, "cpu", c.label)]
    assert {r.status for r in cross_case_vacuity(runs, results, policy, "cpu")} == {PASS}
    loose = Policy.from_json(
        {
            "precision": "int8",
            "defaults": {"float32/cpu/int8": {"atol": 1e-4, "rtol": 0.1, "scale_atol": 0.25, "rel_norm": 0.5}},
        }
    )
    results = [r for c, _, out in runs for r in compare_outputs(out, out, loose, "cpu", c.label)]
    assert {r.status for r in cross_case_vacuity(runs, results, loose, "cpu")} == {INCONCLUSIVE}


def test_accuracy_gate_and_notes():
    policy = Policy(precision="int8", max_accuracy_drop=0.01)
    results = compare_outputs({"logits": LOGITS}, {"logits": LOGITS}, policy, "cpu", "data")
    metrics = {"logits": {"rows": 64, "top1_agreement": 1.0, "accuracy_native": 0.9, "accuracy_onnx": 0.85}}
    gated = accuracy_gate(results, metrics, policy, "cpu")
    assert gated[0].status == FAIL and gated[0].reason.startswith("accuracy:")
    assert accuracy_gate(results, metrics, Policy(precision="int8"), "cpu")[0].status == PASS
    weak = precision_notes(policy, results, None, {})
    assert any("this check is weak" in n for n in weak)
    strong = precision_notes(policy, results, "held_out.npz", {"cpu": {"outputs": metrics}})
    assert any("primary gate" in n for n in strong) and not any("weak" in n for n in strong)
    assert precision_notes(Policy(), results, None, {}) == []


# -- requests, methods, a graph's precision -----------------------------------------------------


def test_requests_and_methods():
    from bridge.request import API, build

    def request(**given):
        return build("export", {"source": "m.py:f", "output": "out", **given}, API)

    assert request(precision="int8", calibrate="x.npz").calibrate == "x.npz"
    assert request(precision="fp16").precision == "fp16"
    with pytest.raises(UsageError):
        request(precision="fp16", calibrate="x.npz")
    with pytest.raises(UsageError):
        request(precision="int4")
    assert method_for("int8", "x.npz", "none")[0] == "static-qdq"
    assert method_for("int8", None, "none")[0] == "dynamic"
    assert method_for("fp16", None, "transformer")[0] == "fp16-transformer"


def _matmul_model(weight_dtype=np.float32, quant=False) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3), weight_dtype), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    if quant:
        nodes = [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "s", "z"]),
            helper.make_node("Identity", ["x"], ["y"]),
            *nodes[:0],
        ]
    return helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3] if not quant else ["batch", 4])],
            [w],
        )
    )


def test_graph_precision_and_the_manifest_cross_check():
    assert graph_precision(_matmul_model())[0] == "fp32"
    assert graph_precision(_matmul_model(np.float16))[0] == "fp16"
    assert graph_precision(_matmul_model(quant=True))[0] == "int8"
    assert (
        target_precision(None, graph_precision(_matmul_model(quant=True)), "m.onnx")[0] == "int8"
    )  # a bare file: its graph
    manifest = {"precision": {"precision": "int8"}}
    assert target_precision(manifest, graph_precision(_matmul_model(quant=True)), "b") == ("int8", None)
    with pytest.raises(BundleError):  # claiming int8 for a float32 graph would only loosen the check
        target_precision(manifest, graph_precision(_matmul_model()), "b")
    precision, note = target_precision(
        {}, graph_precision(_matmul_model(quant=True)), "b"
    )  # reduced, manifest says float32
    assert precision == "fp32" and "strict float32" in note


def test_manifest_precision_entry_is_validated():
    def bad(msg):
        return BundleError(msg)

    check_manifest_entry(None, bad)
    check_manifest_entry({"precision": "int8", "calibration": {"sha256": "ab"}}, bad)
    for entry in ("int8", {"precision": "int4"}, {"precision": "int8", "calibration": "x"}):
        with pytest.raises(BundleError):
            check_manifest_entry(entry, bad)


def test_gemm_rewritten_as_matmul_computes_the_same():
    pytest.importorskip("onnxruntime")
    from onnx.reference import ReferenceEvaluator

    from bridge.frameworks.ort_quantize import gemm_to_matmul

    w = RNG.standard_normal((5, 4)).astype(np.float32)
    b = RNG.standard_normal(5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    before = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert gemm_to_matmul(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    np.testing.assert_allclose(ReferenceEvaluator(model).run(None, {"x": x})[0], before, rtol=1e-6, atol=1e-6)


# -- bench: other processes' CPU ----------------------------------------------------------------


def test_bench_records_other_processes_cpu_per_side_and_round():
    lat = measure([Side("native", lambda: None), Side("onnxruntime", lambda: None)], runs=10, rounds=5).to_json()
    assert lat["others_cpu_threshold"] == NOISY_SHARE
    assert set(lat["others_cpu_per_round"]) == {"native", "onnxruntime"}
    assert all(len(v) == 5 for v in lat["others_cpu_per_round"].values())
    assert lat["reliable"] in (True, False, None)
    assert (lat["reliable"] is False) == any("unreliable" in n for n in lat["notes"])


def test_judge_load_flags_a_busy_machine():
    load = OtherLoad()
    load.available = True
    load.windows = {"native": [(0.4, 2.0, 1.0)], "onnxruntime": [(0.0, 2.0, 1.0)]}
    reliable, note = judge_load(load, ["native", "onnxruntime"], 0.10)
    assert reliable is False and "native 20%" in note and "unreliable" in note
    load.windows = {"native": [(0.01, 2.0, 1.0)], "onnxruntime": [(0.0, 2.0, 1.0)]}
    assert judge_load(load, ["native", "onnxruntime"], 0.01) == (True, "")
    # a side too short to measure (a few ms of a small model) is not judged on its own
    load.windows = {"native": [(0.05, 0.02, 0.01)]}
    assert judge_load(load, ["native"], 0.01) == (True, "")
    load.available = False
    assert judge_load(load, ["native"], None) == (None, "")


def test_cases_outside_the_calibration_span_are_named():
    from bridge.precision.methods import calibration_coverage

    calib = {
        "x": np.random.default_rng(0).uniform(0, 1, (32, 4)).astype(np.float32),
        "ids": np.zeros((32, 4), np.int64),
    }
    inside = [(None, {"x": np.full((2, 4), 0.5, np.float32)}, {})]
    outside = inside + [(None, {"x": np.full((2, 4), -3.0, np.float32)}, {})]
    assert calibration_coverage(calib, inside) == []
    (note,) = calibration_coverage(calib, outside)
    assert "x span" in note and "-3..0.5" in note and "--input-range x=" in note
