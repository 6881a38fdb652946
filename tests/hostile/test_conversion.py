"""Catalogue group C: conversions that go wrong quietly.

The exports here are real (torch.onnx, tf2onnx); each must end in the documented exit code. A parity
failure at export still publishes the bundle as evidence (a decision recorded in docs/design.md): the
tests check that such a bundle says so in its manifest and fails again when re-verified.
"""

import json
import os

import numpy as np
import pytest
from conftest import needs_tf, needs_torch
from onnx import TensorProto, helper

from hostile.build import model, pair_bundle, spec, vi, write_bundle, write_model
from hostile.common import (
    TORCH_FACTORIES,
    Call,
    assert_empty,
    assert_exit,
    assert_verdict,
    case_dirs,
    run_many,
    shared_build,
    snapshot,
)

TORCH_CASES = {  # case -> (factory, extra args)
    "C01_batchnorm_forced_into_training": ("forced_train_bn", ()),
    "C02_declared_dynamic_axis_baked": ("baked_width", ()),
    "C10_generated_ids_out_of_range": ("embedding5", ()),
}


def _int32_graph():
    """ids:int32[batch,2] -> float64(ids) * 0.5, like torch_factories.int32_scale."""
    half = helper.make_tensor("half", TensorProto.DOUBLE, [], [0.5])
    return model(
        [
            helper.make_node("Cast", ["ids"], ["d"], to=TensorProto.DOUBLE),
            helper.make_node("Mul", ["d", "half"], ["output"]),
        ],
        [vi("ids", TensorProto.INT32, ("batch", 2))],
        [vi("output", TensorProto.DOUBLE, ("batch", 2))],
        [half],
    )


@pytest.fixture(scope="module")
def conversions(tmp_path_factory):
    base = tmp_path_factory.mktemp("conversion")
    calls, dirs = {}, {}
    for name, (factory, extra) in TORCH_CASES.items():
        out, cwd = dirs[name] = case_dirs(base, name)
        calls[name] = Call(("export", f"{TORCH_FACTORIES}:{factory}", "-o", out / "bundle", *extra), cwd)
    # C05: real samples given as int64 for an int32 input, with a value int32 cannot hold
    out, cwd = dirs["C05_int64_samples_for_int32_input"] = case_dirs(base, "C05_int64_samples_for_int32_input")
    onnx_path = write_model(_int32_graph(), base / "int32.onnx")
    np.savez(base / "samples.npz", ids=np.array([[2**40 + 3, 5]], np.int64))
    calls["C05_int64_samples_for_int32_input"] = Call(
        ("verify", onnx_path, "--source", f"{TORCH_FACTORIES}:int32_scale", "--inputs", base / "samples.npz"), cwd
    )
    results = run_many(calls)
    # a failing export's bundle, verified again on a machine with only ONNX Runtime
    for name in ("C02_declared_dynamic_axis_baked",):
        bundle = dirs[name][0] / "bundle.failed"  # a failed export is set aside, not published
        if bundle.exists():
            results[f"{name}/reverify"] = run_many({"r": Call(("verify", bundle), dirs[name][1])})["r"]
    return dirs, results


@needs_torch
def test_C01_reference_that_changes_its_state_is_inconclusive(conversions):
    dirs, results = conversions
    name = "C01_batchnorm_forced_into_training"
    assert_verdict(results[name], 3, "nondeterministic reference", "buffers changed", "bn.running_mean")
    assert_empty(*dirs[name])  # "no bundle written: golden outputs of a nondeterministic model prove nothing"


def _published_failure(results, dirs, name):
    assert_verdict(results[name], 1, "values")
    out, cwd = dirs[name]
    bundle = out / "bundle.failed"
    # not published where a script would ship it; set aside under a name that says so; no staging left
    assert sorted(p.name for p in out.iterdir()) == ["bundle.failed"]
    assert "no bundle published" in results[name].stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["verification"]["status"] == "fail"
    assert_verdict(results[f"{name}/reverify"], 1)
    assert_empty(cwd)
    # A07: a bundle is deployed by another user than the exporter: modes as the umask allows (onnx's own
    # external-data writer would give 0600, see docs/security.md)
    umask = os.umask(0o022)
    os.umask(umask)
    for p in bundle.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, (p.name, oct(p.stat().st_mode))
    assert bundle.stat().st_mode & 0o777 == 0o777 & ~umask


@needs_torch
def test_C02_declared_dynamic_axis_baked_by_the_tracer_fails(conversions):
    """int(x.shape[1]) on an axis declared dynamic: the dynamo exporter pins it (the attempt is
    recorded), the TorchScript fallback bakes it; right at the export sizes, wrong at size 1 and 2n+1.
    Exit 1; the bundle is published as evidence, records the failure, and fails again when re-verified."""
    dirs, results = conversions
    _published_failure(results, dirs, "C02_declared_dynamic_axis_baked")


@needs_torch
@pytest.mark.slow
def test_C03_data_dependent_branch_fails(tmp_path):
    """`if x.sum() > 0`: dynamo refuses, the TorchScript tracer keeps the branch the export input took;
    the sweep's other draws take the other branch."""
    name = "C03_data_dependent_branch"
    dirs = {name: case_dirs(tmp_path, name)}
    out, cwd = dirs[name]
    results = run_many({name: Call(("export", f"{TORCH_FACTORIES}:branchy", "-o", out / "bundle"), cwd)})
    results[f"{name}/reverify"] = run_many({"r": Call(("verify", out / "bundle.failed"), cwd)})["r"]
    _published_failure(results, dirs, name)
    # the exporter that refused names the line of the branch; the route that wrote the graph is named too
    assert "tried first: dynamo" in results[name].stdout and "torch_factories.py:" in results[name].stdout


@needs_torch
def test_C10_ids_are_drawn_over_the_table_they_index(conversions):
    """ids feeding an Embedding(5) without a declared range: bridge finds the table and draws 0..4
    (it drew 0..9 and crashed the native model before), and says where the range came from."""
    dirs, results = conversions
    name = "C10_generated_ids_out_of_range"
    assert_verdict(results[name], 0, "ids index 0:5 (emb.num_embeddings=5", "ids.high")


@needs_torch
def test_C05_lossy_integer_cast_of_real_samples_is_refused(conversions):
    dirs, results = conversions
    name = "C05_int64_samples_for_int32_input"
    assert_exit(results[name], 2, "bad input", "int32")
    assert_empty(*dirs[name])


def test_C02_bundle_declaring_a_dynamic_axis_the_graph_fixed(tmp_path):
    """verify fails a graph whose declared-dynamic input axis is a constant, even when every golden
    value matches."""
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    m = model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", shape=(2, 4))], [vi("y", shape=(2, 4))])
    bundle = write_bundle(
        tmp_path / "bundle",
        m,
        {"draw0/in/x": x, "draw0/out/y": x},
        [spec("x", "float32", ["batch", 4])],
        [spec("y", "float32", ["batch", 4])],
        cases=[{"label": "draw0", "seed": 0, "sizes": {"batch": 2}}],
    )
    (tmp_path / "cwd").mkdir()
    res = run_many({"v": Call(("verify", bundle), tmp_path / "cwd")})["v"]
    assert_verdict(res, 1, "baked into a constant")
    assert_empty(tmp_path / "cwd")


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="a GPU is present")
def test_C07_cuda_requested_without_a_gpu(tmp_path):
    bundle = pair_bundle(
        tmp_path / "bundle", {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.0], np.float32)}
    )
    (tmp_path / "cwd").mkdir()
    res = run_many({"v": Call(("verify", bundle, "--device", "cuda"), tmp_path / "cwd")})["v"]
    assert_exit(res, 4, "environment", "cuda")
    assert_empty(tmp_path / "cwd")


@needs_tf
def test_C06_converter_output_with_file_ops_is_not_published(tmp_path_factory, tmp_path):
    """With --trust-code the SavedModel that reads a file is loaded and run (the user vouched for it);
    its conversion must still not publish a graph ONNX Runtime cannot run."""
    files, _ = shared_build("keras", tmp_path_factory)
    before = snapshot(files / "sm_readfile")
    out, cwd = case_dirs(tmp_path, "c06")
    res = run_many({"c": Call(("export", files / "sm_readfile", "-o", out / "bundle", "--trust-code"), cwd)})["c"]
    assert_exit(res, 5, "conversion failed")
    assert_empty(out, cwd)
    assert snapshot(files / "sm_readfile") == before
