"""TensorFlow/Keras end to end through the CLI: .keras, .h5, SavedModel, factory files."""

import json

import pytest
from conftest import FIXTURES, needs_tf, run_cli, run_py, without_stages

pytestmark = [needs_tf, pytest.mark.tensorflow]

KERAS = FIXTURES / "keras_models.py"


@pytest.fixture(scope="module")
def saved(workdir):
    """The fixture models saved as .keras, .h5 and a SavedModel, in one TensorFlow process."""
    code = f"""
import sys, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {str(FIXTURES)!r})
import keras_models, tensorflow as tf
m = keras_models.two_in_two_out()
m.save({str(workdir / "two.keras")!r})
s = keras_models.single()
s.save({str(workdir / "single.h5")!r})
s.export({str(workdir / "single_saved")!r})
keras_models.with_lambda().save({str(workdir / "lambda.keras")!r})
"""
    res = run_py(code)
    assert res.returncode == 0, res.stderr[-2000:]
    return workdir


def test_keras_file_two_inputs_two_outputs(saved):
    out = saved / "tf_two"
    res = run_cli("export", saved / "two.keras", "-o", out, "--input-range", "ids=0:20")
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["x", "ids"]
    assert manifest["inputs"][1]["dtype"] == "int64" and manifest["inputs"][1]["range"] == [0, 20]
    assert sorted(o["name"] for o in manifest["outputs"]) == ["logits", "score"]
    assert manifest["exporter"]["name"] == "tf2onnx.process_tf_graph(inlined, frozen)"
    res = run_cli("verify", out, "--source", saved / "two.keras", "--json", saved / "tf_two.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((saved / "tf_two.json").read_text())
    named = {c["sizes"].get("batch") for c in report["cases"] if not c.get("search")}
    assert report["passed"] and named == {1, 2, 3, 5, 7, 8, 16}  # the batch alone, odd and even, to 16
    assert any(c.get("search") for c in report["cases"])  # and the search's random rows


def test_h5_and_savedmodel(saved):
    for src, name in ((saved / "single.h5", "h5"), (saved / "single_saved", "sm")):
        out = saved / f"tf_{name}"
        res = run_cli("export", src, "-o", out)
        assert res.returncode == 0, res.stdout + res.stderr
        assert run_cli("verify", out, "--source", src).returncode == 0


def test_factory_file(saved):
    out = saved / "tf_factory"
    res = run_cli("export", f"{KERAS}:single", "-o", out, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert res.returncode == 0, res.stdout + res.stderr
    # TensorFlow's and absl's own logs (cuInit, cuda drivers, oneDNN) stay out of a passing run's stderr
    assert without_stages(res.stderr).strip() == "", res.stderr
    assert json.loads((out / "manifest.json").read_text())["source"]["framework"] == "tensorflow"


def test_lambda_layer_refused_without_running_it(saved):
    res = run_cli("export", saved / "lambda.keras", "-o", saved / "lam")
    assert res.returncode == 6, res.stdout + res.stderr
    assert without_stages(res.stderr).startswith("bridge: refused:") and "Lambda" in res.stderr
    assert not (saved / "lam").exists()


def test_captured_constants_are_frozen_not_leaked_into_inputs(saved):
    out = saved / "tf_norm"
    res = run_cli("export", f"{KERAS}:with_normalization", "-o", out)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["x"]
    # the inlined, frozen route makes captured tensors constants (or weights written from the model)
    assert manifest["exporter"]["name"] == "tf2onnx.process_tf_graph(inlined, frozen)"
    assert run_cli("verify", out, "--source", f"{KERAS}:with_normalization").returncode == 0
