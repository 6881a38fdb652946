"""Catalogue group N: comparisons that pass silently in naive comparators.

Most cases are bundles whose graph outputs fixed constants (the candidate) while golden.npz claims
the reference produced something else, so `bridge verify BUNDLE` (ONNX Runtime only, no framework)
puts exactly that pair through the comparator and the CLI. Two end-to-end cases run the native
model (torch) against a hand-written ONNX file.
"""

import numpy as np
import pytest
from conftest import needs_torch
from onnx import TensorProto, helper

from hostile.build import model, pair_bundle, vi, write_model
from hostile.common import TORCH_FACTORIES, Call, assert_empty, assert_verdict, run_many, snapshot

f32 = np.float32
NAN, INF = np.nan, np.inf

# case -> (reference outputs, ONNX outputs, extra CLI args, expected exit, fragments of the report)
CASES = {
    "N01_nan_both_sides": (
        {"y": np.array([NAN, 1, 2], f32)},
        {"y": np.array([NAN, 1, 2], f32)},
        (),
        1,
        ("non-finite",),
    ),
    "N01_nan_both_sides_allowed": (
        {"y": np.array([NAN, 1, 2], f32)},
        {"y": np.array([NAN, 1, 2], f32)},
        ("--allow-nonfinite",),
        0,
        (),
    ),
    "N02_nan_one_side": ({"y": np.array([1, 2, 3], f32)}, {"y": np.array([1, NAN, 3], f32)}, (), 1, ("non-finite",)),
    "N02_nan_one_side_allowed": (
        {"y": np.array([1, 2, 3], f32)},
        {"y": np.array([1, NAN, 3], f32)},
        ("--allow-nonfinite",),
        1,
        ("non-finite",),
    ),
    "N02_nan_moved_allowed": (
        {"y": np.array([NAN, 2, 3], f32)},
        {"y": np.array([1, NAN, 3], f32)},
        ("--allow-nonfinite",),
        1,
        ("different positions",),
    ),
    "N03_inf_both_sides": (
        {"y": np.array([INF, 1, 2], f32)},
        {"y": np.array([INF, 1, 2], f32)},
        (),
        1,
        ("non-finite",),
    ),
    "N03_inf_vs_minus_inf_allowed": (
        {"y": np.array([INF, 1, 2], f32)},
        {"y": np.array([-INF, 1, 2], f32)},
        ("--allow-nonfinite",),
        1,
        ("non-finite",),
    ),
    "N03_inf_vs_finite_allowed": (
        {"y": np.array([INF, 1, 2], f32)},
        {"y": np.array([3e38, 1, 2], f32)},
        ("--allow-nonfinite",),
        1,
        ("non-finite",),
    ),
    "N04_broadcast_3x1_vs_1x3": (
        {"y": np.ones((3, 1), f32) * [[1], [2], [3]]},
        {"y": np.ones((1, 3), f32) * [1, 2, 3]},
        (),
        1,
        ("shape",),
    ),
    "N04_empty_vs_1x3": ({"y": np.array([[1, 2, 3]], f32)}, {"y": np.zeros((0, 3), f32)}, (), 1, ("shape",)),
    "N04_scalar_vs_vector": ({"y": np.array(2, f32)}, {"y": np.full(5, 2, f32)}, (), 1, ("shape",)),
    "N05_onnx_lacks_an_output": (
        {"y": np.array([1, 2], f32), "aux": np.array([3, 4], f32)},
        {"y": np.array([1, 2], f32)},
        (),
        1,
        ("missing",),
    ),
    "N05_onnx_has_an_extra_output": (
        {"y": np.array([1, 2], f32)},
        {"y": np.array([1, 2], f32), "extra": np.array([3, 4], f32)},
        (),
        1,
        ("extra",),
    ),
    "N06_swapped_output_names": (
        {"logits": np.array([1, 2], f32), "aux": np.array([5, 7], f32)},
        {"logits": np.array([5, 7], f32), "aux": np.array([1, 2], f32)},
        (),
        1,
        ("values",),
    ),
    "N07_float64_vs_float32": ({"y": np.array([1, 2], np.float64)}, {"y": np.array([1, 2], f32)}, (), 1, ("dtype",)),
    "N07_int32_vs_int64": ({"y": np.array([1, 2], np.int32)}, {"y": np.array([1, 2], np.int64)}, (), 1, ("dtype",)),
    "N08_int64_near_2_62": (
        {"y": np.array([2**62, 5], np.int64)},
        {"y": np.array([2**62 + 1, 5], np.int64)},
        (),
        1,
        ("exact match",),
    ),
    "N08_int64_near_2_62_even_with_atol": (
        {"y": np.array([2**62, 5], np.int64)},
        {"y": np.array([2**62 + 1, 5], np.int64)},
        ("--atol", "10"),
        1,
        ("exact match",),
    ),
    "N08_bool": ({"y": np.array([True, False])}, {"y": np.array([False, False])}, (), 1, ("exact match",)),
    "N09_near_zero_within_atol": ({"y": np.array([0.0, 1.0], f32)}, {"y": np.array([5e-6, 1.000001], f32)}, (), 0, ()),
    "N09_relative_error_beyond_rtol": (
        {"y": np.array([1.0, 2.0], f32)},
        {"y": np.array([1.001, 2.0], f32)},
        (),
        1,
        ("values",),
    ),
    "vacuous_all_zero_reference": ({"y": np.zeros(4, f32)}, {"y": np.zeros(4, f32)}, (), 3, ("vacuous", "all zeros")),
    "vacuous_zero_reference_wrong_onnx": ({"y": np.zeros(4, f32)}, {"y": np.full(4, 1e-6, f32)}, (), 3, ("vacuous",)),
    "vacuous_constant_reference": ({"y": np.full(4, 3.0, f32)}, {"y": np.full(4, 3.0, f32)}, (), 3, ("constant",)),
    "vacuous_below_atol": (
        {"y": np.array([1e-7, -2e-7, 0, 3e-7], f32)},
        {"y": np.zeros(4, f32)},
        (),
        3,
        ("below atol",),
    ),
    "vacuous_empty_output": ({"y": np.zeros((0, 3), f32)}, {"y": np.zeros((0, 3), f32)}, (), 3, ("empty",)),
}


@pytest.fixture(scope="module")
def numeric(tmp_path_factory):
    base = tmp_path_factory.mktemp("numeric")
    calls, layout = {}, {}
    for name, (ref, cand, extra, _, _) in CASES.items():
        bundle = pair_bundle(base / name / "bundle", ref, cand)
        cwd = base / name / "cwd"
        cwd.mkdir()
        layout[name] = (bundle, cwd, snapshot(bundle))
        calls[name] = Call(("verify", bundle, *extra), cwd)
    return layout, run_many(calls)


@pytest.mark.parametrize("name", sorted(CASES))
def test_comparison_fails_closed(numeric, name):
    layout, results = numeric
    _, _, extra, code, fragments = CASES[name]
    assert_verdict(results[name], code, *fragments)
    bundle, cwd, before = layout[name]
    assert snapshot(bundle) == before
    assert_empty(cwd)


def _log_graph():
    return model(
        [helper.make_node("Log", ["x"], ["output"])],
        [vi("x", TensorProto.FLOAT, ("batch", 4))],
        [vi("output", TensorProto.FLOAT, ("batch", 4))],
    )


def _swapped_dict_graph():
    """The native model returns {"logits": 2x+1, "aux": 3x-1}; this graph computes them under each
    other's names (what a wrong output_names list does)."""
    two, three, one = (
        helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("two", 2.0), ("three", 3.0), ("one", 1.0))
    )
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Add", ["x2", "one"], ["aux"]),
        helper.make_node("Mul", ["x", "three"], ["x3"]),
        helper.make_node("Sub", ["x3", "one"], ["logits"]),
    ]
    return model(
        nodes,
        [vi("x", TensorProto.FLOAT, ("batch", 4))],
        [vi("logits", TensorProto.FLOAT, ("batch", 4)), vi("aux", TensorProto.FLOAT, ("batch", 4))],
        [two, three, one],
    )


@needs_torch
def test_end_to_end_against_torch(tmp_path):
    """NaN on both sides at the same places (torch.log of negative inputs) fails unless allowed; outputs
    under swapped names fail although every value exists on both sides."""
    log_onnx = write_model(_log_graph(), tmp_path / "log.onnx")
    swapped = write_model(_swapped_dict_graph(), tmp_path / "swapped.onnx")
    calls = {}
    for name, args in {
        "nan": ("verify", log_onnx, "--source", f"{TORCH_FACTORIES}:log"),
        "nan_allowed": ("verify", log_onnx, "--source", f"{TORCH_FACTORIES}:log", "--allow-nonfinite"),
        "swapped": ("verify", swapped, "--source", f"{TORCH_FACTORIES}:dict_out"),
    }.items():
        (tmp_path / name).mkdir()
        calls[name] = Call(args, tmp_path / name)
    res = run_many(calls)
    assert_verdict(res["nan"], 1, "non-finite")
    assert_verdict(res["nan_allowed"], 0)
    assert_verdict(res["swapped"], 1, "logits", "aux", "values")
    for name in calls:
        assert_empty(tmp_path / name)
