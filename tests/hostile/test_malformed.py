"""Catalogue group M: malformed ONNX graphs and denial of service.

Every malformed file is served as a bare `model.onnx` (`bridge verify FILE.onnx`) and inside a bundle
with a consistent manifest (so that nothing but the graph itself stops verify before ONNX Runtime).
Malformed input is exit 2 with one line; a graph that runs forever is exit 7 under --timeout; a
graph that fails when run is a parity failure (exit 1) naming ONNX Runtime, never a pass.
"""

import time

import numpy as np
import pytest
from conftest import needs_torch
from onnx import TensorProto, helper, numpy_helper

from hostile.build import endless_loop, graph_bundle, malformed_models, model, spec, vi, write_bundle, write_model
from hostile.common import TORCH_FACTORIES, Call, assert_empty, assert_exit, assert_verdict, run_many, snapshot

X = np.array([0.5, -1.0, 2.0, 3.0], np.float32)

# what the one line must mention, per malformed file (lower case); "" = the category is enough
FRAGMENTS = {
    "garbage": "onnx",
    "truncated": "onnx",
    "empty": "onnx",
    "deep_nesting": "onnx",
    "future_opset_ir": "ir_version",
    "cycle": "",
    "dangling_input": "",
    "duplicate_output": "",
    "unproduced_output": "",
    "raw_data_size_mismatch": "",
    "huge_initializer_dims": "",
    "recursive_function": "",
    "duplicate_metadata_keys": "metadata",
    "sequence_output": "not a tensor",
}


@pytest.fixture(scope="module")
def malformed(tmp_path_factory):
    base = tmp_path_factory.mktemp("malformed")
    models = malformed_models()
    calls, layout = {}, {}
    for name, data in models.items():
        root = base / name
        bare = root / "bare"
        bare.mkdir(parents=True)
        write_model(data, bare / "model.onnx")
        bundle = write_bundle(
            root / "bundle",
            data,
            {"draw0/in/x": X, "draw0/out/y": X},
            [spec("x", "float32", [4])],
            [spec("y", "float32", [4])],
        )
        cwd = root / "cwd"
        cwd.mkdir()
        layout[name] = (root, cwd, snapshot(root))
        calls[f"{name}/bare"] = Call(("verify", bare / "model.onnx"), cwd)
        calls[f"{name}/bundle"] = Call(("verify", bundle), cwd)
    return layout, run_many(calls)


@pytest.mark.parametrize("name", sorted(FRAGMENTS))
def test_malformed_onnx_is_bad_input(malformed, name):
    layout, results = malformed
    root, cwd, before = layout[name]
    for route in ("bare", "bundle"):
        assert_exit(results[f"{name}/{route}"], 2, "bad input", FRAGMENTS[name])
    assert snapshot(root) == before
    assert_empty(cwd)


def _custom_domain():
    n = helper.make_node("Exfiltrate", ["x"], ["y"], domain="evil.corp")
    return model([n], [vi("x")], [vi("y")], extra_opsets=[helper.make_opsetid("evil.corp", 1)])


def _alloc_bomb():
    shape = numpy_helper.from_array(np.array([2**20, 2**20, 2**10], np.int64), "shape")
    return model(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
            helper.make_node("Add", ["x", "s"], ["y"]),
        ],
        [vi("x")],
        [vi("y")],
        [shape],
    )


def _expand_bomb():
    return model(
        [helper.make_node("Expand", ["x", "s"], ["big"]), helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0)],
        [vi("x", shape=(1,)), vi("s", TensorProto.INT64, (3,))],
        [vi("y", shape=())],
    )


def _random():
    return model(
        [helper.make_node("RandomUniformLike", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])],
        [vi("x")],
        [vi("y")],
    )


def _array_feature_extractor():
    n = helper.make_node("ArrayFeatureExtractor", ["x", "idx"], ["y"], domain="ai.onnx.ml")
    return model(
        [n],
        [vi("x", TensorProto.INT64, (10, 1)), vi("idx", TensorProto.INT64, (1,))],
        [vi("y", TensorProto.INT64, (10, 1))],
        extra_opsets=[helper.make_opsetid("ai.onnx.ml", 3)],
    )


@pytest.fixture(scope="module")
def runtime_cases(tmp_path_factory):
    base = tmp_path_factory.mktemp("runtime")
    cases = {
        # M04: passes onnx.checker (custom domains are not checked), ONNX Runtime has no such op
        "M04_custom_domain": (graph_bundle(base / "custom", _custom_domain(), {"x": X}, {"y": X}), ()),
        # M07: 2**50 floats from a constant shape, and 2**52 from a runtime shape
        "M07_constant_of_shape": (graph_bundle(base / "cos", _alloc_bomb(), {"x": X}, {"y": X}), ()),
        "M07_expand": (
            graph_bundle(
                base / "expand",
                _expand_bomb(),
                {"x": np.ones(1, np.float32), "s": np.array([2**20, 2**20, 2**12], np.int64)},
                {"y": np.array(1.0, np.float32)},
            ),
            (),
        ),
        # M08: a Loop with 2**62 iterations
        "M08_endless_loop": (
            write_bundle(
                base / "loop",
                endless_loop(),
                {"draw0/in/x": X, "draw0/out/y": X},
                [spec("x", "float32", [4])],
                [spec("y", "float32", [4])],
            ),
            # The limit counts from the worker's start: under load (a shared CI machine) its imports and
            # the checker can take several seconds before ONNX Runtime runs the loop.
            ("--timeout", "20"),
        ),
        # M11: a random op in the graph; the golden outputs come from another draw
        "M11_random_op": (graph_bundle(base / "random", _random(), {"x": X}, {"y": X + 0.5}), ()),
        # M13: ArrayFeatureExtractor with a negative index (an out-of-bounds read in old ORT)
        "M13_array_feature_extractor": (
            graph_bundle(
                base / "afe",
                _array_feature_extractor(),
                {"x": np.arange(10, dtype=np.int64).reshape(10, 1), "idx": np.array([-10], np.int64)},
                {"y": np.zeros((10, 1), np.int64)},
            ),
            (),
        ),
    }
    calls, layout = {}, {}
    for name, (bundle, extra) in cases.items():
        cwd = base / f"{name}_cwd"
        cwd.mkdir()
        layout[name] = (bundle, cwd, snapshot(bundle))
        calls[name] = Call(("verify", bundle, *extra), cwd)
    start = time.monotonic()
    results = run_many(calls)
    return layout, results, time.monotonic() - start


def _clean(layout, name):
    bundle, cwd, before = layout[name]
    assert snapshot(bundle) == before
    assert_empty(cwd)


def test_M04_unknown_custom_domain_op(runtime_cases):
    layout, results, _ = runtime_cases
    assert_exit(results["M04_custom_domain"], 2, "bad input", "Exfiltrate")
    _clean(layout, "M04_custom_domain")


@pytest.mark.parametrize("name", ["M07_constant_of_shape", "M07_expand"])
def test_M07_allocation_bombs_fail_without_passing(runtime_cases, name):
    """ONNX Runtime refuses the allocation (BFC arena); bridge reports it as a failure of the run."""
    layout, results, _ = runtime_cases
    res = results[name]
    assert res.returncode in (1, 2, 7), res.stdout + res.stderr
    if res.returncode == 1:
        assert_verdict(res, 1, "ONNX Runtime failed")
    else:
        assert_exit(res, res.returncode)
    _clean(layout, name)


def test_M08_endless_loop_is_stopped_by_timeout(runtime_cases):
    layout, results, elapsed = runtime_cases
    line = assert_exit(
        results["M08_endless_loop"], 7, "crashed", "running ONNX Runtime (cpu)", "still running after 20 s"
    )
    assert "--timeout" in results["M08_endless_loop"].stderr  # the hint names the knob
    assert elapsed < 120, line
    _clean(layout, "M08_endless_loop")


def test_M11_random_op_in_graph_is_not_a_pass(runtime_cases):
    layout, results, _ = runtime_cases
    assert_verdict(results["M11_random_op"], 1, "values")
    _clean(layout, "M11_random_op")


def test_M13_negative_index_is_reported_not_read(runtime_cases):
    layout, results, _ = runtime_cases
    assert_verdict(results["M13_array_feature_extractor"], 1, "ONNX Runtime failed")
    assert "out of range" in results["M13_array_feature_extractor"].stdout
    _clean(layout, "M13_array_feature_extractor")


@needs_torch
def test_huge_declared_input_dims(tmp_path):
    """An ONNX file declaring x:float32[2**40, 4], verified against a native model whose factory declares
    x:float32[batch,4]: the factory's declaration is what bridge draws from, so the graph's fixed 2**40
    is a baked dynamic axis (exit 1), never a 32 TiB allocation or an internal error."""
    m = model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", shape=(2**40, 4))], [vi("y", shape=(2**40, 4))])
    path = write_model(m, tmp_path / "huge.onnx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = run_many(
        {"huge": Call(("verify", path, "--source", f"{TORCH_FACTORIES}:linear", "--memory-limit", "2"), cwd)}
    )["huge"]
    assert_verdict(res, 1, "baked into a constant", "1099511627776")
    assert_empty(cwd)
