"""Catalogue group S: code execution and untrusted deserialisation.

Every payload, if it ran, would create a marker file (or write a checkpoint) under a `marks/`
directory; each case runs in its own empty working directory with its own empty output parent.
A refusal is exit 6 with one line, no marker, and nothing written.

Where bridge falls short, the test asserting the trustworthy behaviour is a strict xfail whose
reason starts with "bridge gap:" (see docs/security.md).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, needs_tf, needs_torch

from hostile.build import identity, linear_graph, object_array_npz, pair_bundle, write_model, zip_bomb_keras
from hostile.common import (
    TORCH_FACTORIES,
    Call,
    assert_empty,
    assert_exit,
    assert_no_marker,
    assert_verdict,
    build,
    case_dirs,
    run_many,
    shared_build,
    snapshot,
)

LINEAR = f"{TORCH_FACTORIES}:linear"
NO_WO = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


# -- PyTorch ---------------------------------------------------------------------------------------------

TORCH_WEIGHTS = {  # case -> (weights file, env, marker prefix)
    "S01_pickle_payload": ("evil.pt", {}, "pt_pickle"),
    "S02_pickle_payload_env_forces_unsafe": ("evil.pt", NO_WO, "pt_pickle"),
    "S01_payload_as_tensor_value": ("evil_value.pt", NO_WO, "pt_pickle_value"),
    "S03_whole_pickled_module": ("module.pt", NO_WO, None),
    "S04_torchscript_archive": ("torchscript.pt", NO_WO, None),
}
TORCH_PT2 = {  # case -> (program file, marker)
    "pt2_payload_in_sample_inputs": ("evil_sample_inputs.pt2", "pt2_sample_inputs"),
    "pt2_payload_as_pickled_weight": ("evil_pickled_weight.pt2", "pt2_pickled_weight"),
}


@pytest.fixture(scope="module")
def torch_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("torch_payloads")
    files, marks = shared_build("torch", tmp_path_factory)
    calls, dirs = {}, {}
    for name, (weights, env, _) in TORCH_WEIGHTS.items():
        out, cwd = dirs[name] = case_dirs(base, name)
        calls[name] = Call(("export", LINEAR, "--weights", files / weights, "-o", out / "bundle"), cwd, env)
    for name, (pt2, _) in TORCH_PT2.items():
        out, cwd = dirs[name] = case_dirs(base, name)
        calls[name] = Call(("export", files / pt2, "-o", out / "bundle"), cwd)
    # S06: a weights directory full of modules named like what bridge imports later: never on sys.path
    trap = base / "trapdir"
    trap.mkdir()
    (trap / "good.pt").write_bytes((files / "good.pt").read_bytes())
    for mod in ("onnx", "onnxscript", "onnxruntime", "numpy", "safetensors", "ml_dtypes", "bridge_user"):
        (trap / f"{mod}.py").write_text(f"open({str(marks / ('trap_' + mod))!r}, 'w').close()\n")
    with np.load(files / "good_linear.npz") as z:
        linear_onnx = write_model(linear_graph(z["weight"], z["bias"]), base / "linear.onnx")
    out, cwd = dirs["S06_weights_dir_modules"] = case_dirs(base, "S06_weights_dir_modules")
    calls["S06_weights_dir_modules"] = Call(
        ("verify", linear_onnx, "--source", LINEAR, "--weights", trap / "good.pt"), cwd, NO_WO
    )
    # S17: real samples as an .npz holding a pickled object array
    npz = object_array_npz(base / "inputs.npz", marks / "npz_pickle")
    onnx_path = write_model(identity(), base / "identity.onnx")
    out, cwd = dirs["S17_pickled_inputs_npz"] = case_dirs(base, "S17_pickled_inputs_npz")
    calls["S17_pickled_inputs_npz"] = Call(("verify", onnx_path, "--source", LINEAR, "--inputs", npz), cwd)
    return files, marks, dirs, run_many(calls)


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_WEIGHTS))
def test_pickled_weights_are_refused(torch_runs, name):
    _, marks, dirs, results = torch_runs
    weights, _, marker = TORCH_WEIGHTS[name]
    res = results[name]
    # safety first: no payload ran, nothing was written
    assert_no_marker(marks, marker or "pt_")
    assert_empty(*dirs[name])
    if name.startswith("S04"):
        assert res.returncode == 6 and "bridge: refused: " in res.stderr, res.stderr
        return  # the one-line check is test_torchscript_refusal_is_one_line (a gap)
    assert_exit(res, 6, "refused", weights, "unpickle")


@needs_torch
def test_torchscript_refusal_is_one_line(torch_runs):
    assert_exit(torch_runs[3]["S04_torchscript_archive"], 6, "refused", "TorchScript")


@needs_torch
def test_S06_weights_directory_is_not_importable(torch_runs):
    """The directory of --weights never joins sys.path (the good weights load and verify against their
    ONNX twin: the control for the refusals above)."""
    _, marks, dirs, results = torch_runs
    assert_verdict(results["S06_weights_dir_modules"], 0)
    assert_no_marker(marks, "trap_")
    assert_empty(*dirs["S06_weights_dir_modules"])


@needs_torch
def test_S17_pickled_inputs_npz_is_refused(torch_runs):
    _, marks, dirs, results = torch_runs
    assert_no_marker(marks, "npz_pickle")
    assert_exit(results["S17_pickled_inputs_npz"], 2, "bad input", "inputs.npz", "allow_pickle")
    assert_empty(*dirs["S17_pickled_inputs_npz"])


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_PT2))
def test_pt2_program_payload_safety(torch_runs, name):
    """A .pt2 archive (torch.export.save) can carry pickles; torch.export.load unpickles them with
    weights_only=False (pickled weights always; sample inputs after a weights_only=True attempt
    fails). The file must be refused before any of it is unpickled."""
    _, marks, dirs, results = torch_runs
    # what holds today: the run fails and writes no bundle
    assert results[name].returncode != 0
    assert_empty(*dirs[name])


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_PT2))
def test_pt2_program_payload_is_refused(torch_runs, name):
    _, marks, dirs, results = torch_runs
    assert_no_marker(marks, TORCH_PT2[name][1])
    assert_exit(results[name], 6, "refused")


# -- Keras and TensorFlow ----------------------------------------------------------------------------------

KERAS = {  # case -> (file, expected exit, category, marker prefix or None)
    "S07_lambda_keras": ("lambda.keras", 6, "refused", "keras_lambda_keras"),
    "S08_lambda_h5": ("lambda.h5", 6, "refused", "keras_lambda_h5"),
    "S09_lambda_os_system": ("lambda_os_system.keras", 6, "refused", None),
    "S10_lambda_unsafe_gadget": ("lambda_gadget.keras", 6, "refused", None),
    "S15_savedmodel_readfile": ("sm_readfile", 6, "refused", None),
    "S15_savedmodel_writefile": ("sm_writefile", 6, "refused", "sm_writefile"),
    "S15_savedmodel_savev2": ("sm_savev2", 6, "refused", "sm_savev2"),
    "S15_savedmodel_wholefilereader": ("sm_wholefilereader", 6, "refused", None),
}
# Keras' own refusals (bridge only reports them), and the controls: run with -m slow
KERAS_SLOW = {
    "S11_vocabulary_file_path": ("vocab_file.keras", 6, "refused", None),
    "S12_h5_external_storage": ("h5_external_storage.h5", 2, "bad input", None),
    "S12_h5_external_link": ("h5_external_link.h5", 2, "bad input", None),
}
KERAS_GAPS: dict = {}  # every Keras/SavedModel payload is refused (exit 6)
KERAS_CONTROL = {"savedmodel_plain": "sm_plain", "S14_zip_traversal_members": "zip_traversal.keras"}


def _keras_fixture(tmp_path_factory, label, cases):
    base = tmp_path_factory.mktemp(label)
    files, marks = shared_build("keras", tmp_path_factory)
    calls, dirs = {}, {}
    for name, fname in cases.items():
        out, cwd = dirs[name] = case_dirs(base, name)
        calls[name] = Call(("export", files / fname, "-o", out / "bundle"), cwd)
    before = snapshot(files)
    results = run_many(calls)
    return base, files, marks, dirs, results, before


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory):
    return _keras_fixture(tmp_path_factory, "keras_payloads", {k: v[0] for k, v in KERAS.items()})


@pytest.fixture(scope="module")
def keras_slow_runs(tmp_path_factory):
    return _keras_fixture(tmp_path_factory, "keras_slow", {**{k: v[0] for k, v in KERAS_SLOW.items()}, **KERAS_CONTROL})


def _keras_params():
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KERAS_GAPS[n])) if n in KERAS_GAPS else n
        for n in sorted(KERAS)
    ]


@needs_tf
@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_and_savedmodel_payloads_have_no_effect(keras_runs, name):
    """What must hold for every hostile Keras/SavedModel file: it fails, runs no payload, writes nothing."""
    _, _, marks, dirs, results, _ = keras_runs
    marker = KERAS[name][3]
    if marker:
        assert_no_marker(marks, marker)
    assert results[name].returncode != 0, results[name].stdout
    assert_empty(*dirs[name])


@needs_tf
@pytest.mark.parametrize("name", _keras_params())
def test_keras_and_savedmodel_payloads_are_refused(keras_runs, name):
    _, files, marks, dirs, results, before = keras_runs
    fname, code, category, marker = KERAS[name]
    if marker:
        assert_no_marker(marks, marker)
    assert_empty(*dirs[name])
    assert_exit(results[name], code, category)
    assert snapshot(files) == before  # the hostile files themselves are left as they were


@needs_tf
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_SLOW))
def test_keras_own_refusals_are_reported(keras_slow_runs, name):
    """Keras 3.15 refuses these itself (safe_mode, H5 external storage and links); bridge reports the
    refusal in one line and writes nothing."""
    _, files, _, dirs, results, before = keras_slow_runs
    _, code, category, _ = KERAS_SLOW[name]
    assert_exit(results[name], code, category)
    assert_empty(*dirs[name])


@needs_tf
@pytest.mark.slow
def test_control_plain_savedmodel_exports(keras_slow_runs):
    """A SavedModel without file ops exports: the refusals above are about the ops, not the format."""
    _, _, _, dirs, results, _ = keras_slow_runs
    assert_verdict(results["savedmodel_plain"], 0)
    assert_empty(dirs["savedmodel_plain"][1])


@needs_tf
@pytest.mark.slow
def test_S14_keras_zip_traversal_members_do_not_escape(keras_slow_runs):
    """Members named ../../../zip_escape.txt are skipped by the extraction (with a UserWarning on
    stderr); the model itself is valid, so it exports, and nothing lands outside."""
    base, _, _, dirs, results, _ = keras_slow_runs
    res = results["S14_zip_traversal_members"]
    assert res.returncode == 0, res.stdout + res.stderr
    out, cwd = dirs["S14_zip_traversal_members"]
    assert sorted(p.name for p in (out / "bundle").iterdir()) == ["golden.npz", "manifest.json", "model.onnx"]
    assert_empty(cwd)
    for where in (Path("/"), Path("/tmp"), base, base.parent, out, cwd.parent, ROOT):
        assert not list(where.glob("zip_escape*")), where


@needs_tf
@pytest.mark.slow
def test_S13_keras_zip_bomb_is_contained(tmp_path):
    """A 3 GiB config.json (3 MB on disk) stays below Keras' own 4 GiB bomb floor: bridge's memory
    limit is what stops it."""
    bomb = zip_bomb_keras(tmp_path / "bomb.keras", 3)
    out, cwd = case_dirs(tmp_path, "bomb")
    res = run_many({"bomb": Call(("export", bomb, "-o", out / "bundle", "--memory-limit", "1.5"), cwd)})["bomb"]
    assert_exit(res, 7, "crashed", "loading", "memory")
    assert_empty(out, cwd)


@needs_tf
@pytest.mark.slow
def test_S16_endless_savedmodel_times_out(tmp_path):
    files = tmp_path / "files"
    build("tf_loop", files)
    out, cwd = case_dirs(tmp_path, "loop")
    res = run_many({"loop": Call(("export", files / "sm_endless", "-o", out / "bundle", "--timeout", "40"), cwd)})[
        "loop"
    ]
    assert_exit(res, 7, "crashed", "still running after 40 s")
    assert_empty(out, cwd)


# -- the working directory ---------------------------------------------------------------------------------

CONSOLE_SCRIPT = Path(sys.executable).parent / "bridge"


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="the bridge console script is not installed")
def test_working_directory_modules_do_not_run(tmp_path):
    """`bridge verify` run from a directory an attacker controls (an unpacked download) must not import
    Python modules from it. The console script itself does not put the directory on sys.path."""
    bundle = pair_bundle(
        tmp_path / "bundle", {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.0], np.float32)}
    )
    cwd = tmp_path / "download"
    (cwd / "multiprocessing").mkdir(parents=True)
    marker = tmp_path / "cwd_module_ran"
    (cwd / "multiprocessing" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # PYTHONPATH does not add the working directory
    res = subprocess.run(
        [str(CONSOLE_SCRIPT), "verify", str(bundle)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert not marker.exists(), "a module from the working directory ran"
    assert_verdict(res, 0)
