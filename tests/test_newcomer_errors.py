"""Every message leads to the fix: a model file given where a bundle belongs names its format and the
export to run, a misspelt factory gets the close match, a native failure gets the hint that fits its
error (CUDA on a machine without it, a dtype the weights do not take, an axis size)."""

import json
import zipfile

import numpy as np
from conftest import run_cli, without_stages

from bridge.artifact.formats import not_onnx, recognise
from bridge.errors import EnvironmentProblem
from bridge.native.failures import cuda_missing, dtype_hint, size_hint
from bridge.native.names import factory_hint
from bridge.types import Case


def _keras_file(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional"}))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def test_formats_are_recognised_by_their_bytes(tmp_path):
    assert recognise(_keras_file(tmp_path / "func.keras")) == "a Keras model"
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert recognise(tmp_path / "old.h5") == "a Keras model (HDF5)"
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\0")
    assert recognise(sm) == "a TensorFlow SavedModel directory"
    with zipfile.ZipFile(tmp_path / "w.pt", "w") as zf:
        zf.writestr("w/data.pkl", b"\x80\x02}q\x00.")
    assert "PyTorch checkpoint" in recognise(tmp_path / "w.pt")
    (tmp_path / "net.py").write_text("def build(): pass\n")
    assert recognise(tmp_path / "net.py") == "Python code"
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    assert recognise(tmp_path / "junk.onnx") is None and not_onnx(tmp_path / "junk.onnx") is None


def test_inspect_and_verify_on_a_keras_file_say_to_export_it_first(tmp_path):
    model = _keras_file(tmp_path / "func.keras")
    for command in ("inspect", "verify"):
        res = run_cli(command, model)
        err = without_stages(res.stderr)
        assert res.returncode == 2, err
        assert "func.keras is a Keras model, not an ONNX file or a bundle" in err
        assert "run bridge export " in err and "func.keras -o bundles/func first" in err
        assert "onnx.checker" not in err and "Unable to parse proto" not in err
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\0")
    res = run_cli("verify", sm)
    assert res.returncode == 2 and "is a TensorFlow SavedModel directory" in res.stderr, res.stderr
    assert "has no manifest.json" not in res.stderr


def test_a_misspelt_factory_gets_the_close_match_or_the_list(tmp_path):
    src = tmp_path / "torch_models.py"
    src.write_text("import os\n\ndef double():\n    pass\n\ndef single():\n    pass\n\nclass Net:\n    pass\n")
    res = run_cli("export", f"{src}:doubel", "-o", tmp_path / "out")
    err = without_stages(res.stderr)
    assert res.returncode == 2 and "has no attribute 'doubel'" in err
    assert "did you mean 'double'?" in err, err
    res = run_cli("export", f"{src}:build", "-o", tmp_path / "out")
    err = without_stages(res.stderr)
    assert res.returncode == 2 and "the module defines: Net, double, single" in err, err
    assert not (tmp_path / "out").exists()


def test_factory_hint_lists_only_what_the_module_defines():
    import types

    module = types.ModuleType("m")
    exec("import os\nfrom json import dumps\ndef build():\n    pass\ndef _private():\n    pass\n", module.__dict__)
    assert factory_hint(module, "bild", "m.py:bild") == "did you mean 'build'? (m.py:build)"
    assert factory_hint(module, "xyz", "m.py:xyz").startswith("the module defines: build;")
    empty = types.ModuleType("e")
    assert "defines no function or class" in factory_hint(empty, "x", "e.py:x")


def test_cuda_in_the_model_code_is_an_environment_problem():
    exc = RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU")
    problem = cuda_missing(exc, "the native model")
    assert isinstance(problem, EnvironmentProblem) and problem.exit_code == 4
    assert ".cuda()" in problem.message and "--device" in problem.hint
    assert cuda_missing(AssertionError("Torch not compiled with CUDA enabled"), "x") is not None
    assert cuda_missing(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), "x") is None


def test_a_dtype_mismatch_names_the_dtype_the_weights_want():
    feeds = {"x": np.zeros((2, 8), np.float64)}
    torch_msg = RuntimeError("mat1 and mat2 must have the same dtype, but got Double and Float")
    hint = dtype_hint(torch_msg, feeds)
    assert hint.startswith("the model's weights are float32, its inputs float64 (x)")
    assert "--input 'x:float32[...]'" in hint
    conv = RuntimeError("Input type (double) and bias type (float) should be the same")
    assert "weights are float32" in dtype_hint(conv, feeds)
    tf_msg = ValueError(
        "cannot compute MatMul as input #1(zero-based) was expected to be a double tensor but is a float tensor"
    )
    assert "weights are float32" not in (dtype_hint(tf_msg, {"x": np.zeros(2, np.float32)}) or "")
    assert "weights are float64" in dtype_hint(tf_msg, {"x": np.zeros(2, np.float32)})
    assert dtype_hint(RuntimeError("shape '[2, 3]' is invalid for input of size 5"), feeds) is None


def test_the_size_hint_names_the_axis_a_draw_case_runs():
    hint = size_hint(Case("draw0", 0, {"samples": 2}))
    assert "--dim-min samples=SIZE" in hint
    assert "--dim-min AXIS=SIZE" in size_hint(Case("draw0", 0, {"batch": 2, "seq": 2}))
    assert "--dim-min seq=SIZE" in size_hint(Case("seq=1", 0, {"batch": 2, "seq": 1}))


def test_a_source_other_than_the_manifests_gets_a_note(tmp_path, monkeypatch):
    from bridge.native.names import source_note

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp.py").write_text("def relu(): pass\n")
    manifest = {"text": "mlp.py:relu", "framework": "torch", "weights": None}
    note = source_note(manifest, "mlp.py:sigmoid", None)
    assert note.startswith("the bundle was exported from mlp.py:relu; this verification runs mlp.py:sigmoid")
    assert note.endswith("verify with --source mlp.py:relu")
    assert source_note(manifest, str(tmp_path / "mlp.py") + ":relu", None) is None  # the same file, absolute
    trained = {"text": "mlp.py:relu", "framework": "torch", "weights": "cnn.pt"}
    assert "none were given here" in source_note(trained, "mlp.py:relu", None)
    assert source_note(trained, "mlp.py:relu", "cnn.pt") is None
    assert source_note({"text": "<net.MLP object>"}, "<net.MLP object>", None) is None


def test_keras_missing_class_messages_of_both_loaders_are_read():
    from bridge.frameworks.tf_load import load_error, missing_custom_object

    inner = TypeError(
        "Could not locate class 'Scale'. Make sure custom classes ... 'registered_name': 'custom>Scale', ..."
    )
    outer = TypeError("<class 'Functional'> could not be deserialized properly.")
    outer.__context__ = inner
    assert missing_custom_object(outer) == ("class", "Scale", "custom>Scale")
    h5 = ValueError("Unknown layer: 'custom>Scale'. Please ensure you are using a `keras.utils.custom_object_scope`")
    assert missing_custom_object(h5) == ("class", "Scale", "custom>Scale")
    err = load_error("m.h5", h5, None)
    assert "custom class Scale" in err.message and '(package="custom")' in err.hint
    given = load_error("m.keras", outer, {"Gain": object})
    assert "--custom-objects defines Gain, but not Scale" in given.hint
    assert missing_custom_object(ValueError("File format not supported")) is None
