"""A newcomer's own Keras models: a functional model with a custom layer class saved to .keras, a text
model taking strings, an output layer the user named. Every failure names its cause and its fix."""

import json

import pytest
from conftest import needs_tf, run_cli, run_py, without_stages

pytestmark = [needs_tf, pytest.mark.tensorflow]

LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="custom")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kw):
        super().__init__(**kw)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
"""

FACTORY = """
import keras
import layers  # registers Scale


def build():
    return keras.models.load_model("custom.keras")
"""

SAVE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, os.getcwd())
import keras, numpy as np
import layers
exec(compile(open("layers.py").read(), "layers.py", "exec"))  # Scale defined here, in __main__, too
for name, cls in (("custom.keras", Scale), ("imported.keras", layers.Scale)):
    keras.utils.set_random_seed(0)
    x = keras.Input((8,), name="x")
    h = cls(3.0)(keras.layers.Dense(16, activation="relu")(x))
    keras.Model(x, keras.layers.Dense(4, activation="softmax", name="probs")(h)).save(name)
text = keras.Input((1,), dtype="string", name="text")
tv = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
tv.adapt(np.array(["hello world", "the cat sat on the mat"]))
h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(tv(text)))
keras.Model(text, keras.layers.Dense(2, name="logits")(h)).save("text.keras")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """custom.keras (a registered custom layer, output layer named probs) and text.keras (a string input),
    written by a process that knows the layer; the tests' bridge processes do not."""
    d = tmp_path_factory.mktemp("newcomer_keras")
    (d / "layers.py").write_text(LAYERS)
    (d / "load_custom.py").write_text(FACTORY)
    res = run_py(SAVE, cwd=d)
    assert res.returncode == 0, res.stderr[-2000:]
    return d


def test_a_missing_custom_layer_is_named_with_both_ways_to_fix_it(models):
    res = run_cli("export", "custom.keras", "-o", "out_missing", cwd=models)
    err = without_stages(res.stderr)
    assert res.returncode == 2, err
    assert "it uses the custom class Scale (saved as 'custom>Scale'), which is not registered" in err
    assert "--custom-objects FILE.py" in err and '@keras.saving.register_keras_serializable(package="custom")' in err
    assert "keras.models.load_model('custom.keras')" in err  # the factory route
    assert "could not be deserialized properly" not in err
    assert not (models / "out_missing").exists()


def test_a_layer_saved_from_a_module_is_refused_with_the_same_fix(models):
    """Keras records the module of a layer class imported from one (here layers.py); bridge refuses to
    load a class from a module outside Keras (exit 6), and says how to supply it."""
    res = run_cli("export", "imported.keras", "-o", "out_imported", cwd=models)
    err = without_stages(res.stderr)
    assert res.returncode == 6, err
    assert "an object of class Scale from module layers" in err
    assert "pass --custom-objects layers.py" in err and "--trust-code" not in err
    res = run_cli(
        "export", "imported.keras", "--custom-objects", "layers.py", "-o", "out_imported", "--quiet", cwd=models
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_debug_shows_the_workers_own_cause(models):
    res = run_cli("export", "custom.keras", "-o", "out_debug", "--debug", cwd=models)
    assert res.returncode == 2
    assert "Could not locate class 'Scale'" in res.stderr  # Keras's own exception, from the worker
    assert 'File "' in res.stderr and "keras" in res.stderr


def test_custom_objects_load_the_layer_and_the_user_named_output_keeps_its_name(models):
    out = models / "bundle"
    res = run_cli("export", "custom.keras", "--custom-objects", "layers.py", "-o", out, "--quiet", cwd=models)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["probs"]  # Dense(..., name="probs"), not "output"
    res = run_cli("inspect", out)
    assert res.returncode == 0, res.stderr
    assert "outputs:   probs:float32[batch,4]" in res.stdout and "inputs:    x:float32[batch,8]" in res.stdout
    assert "unk__" not in res.stdout and "None" not in res.stdout  # tf2onnx's "1.17.0 None", its axis names
    res = run_cli("verify", out, "--source", "custom.keras", "--custom-objects", "layers.py", "--quiet", cwd=models)
    assert res.returncode == 0, res.stdout + res.stderr
    # the way that works without the option: a factory that imports the layer and loads the file
    res = run_cli("verify", out, "--source", "load_custom.py:build", "--quiet", cwd=models)
    assert res.returncode == 0, res.stdout + res.stderr


def test_custom_objects_on_a_factory_is_a_usage_error(models):
    res = run_cli("export", "load_custom.py:build", "--custom-objects", "layers.py", "-o", "out_f", cwd=models)
    assert res.returncode == 2 and "--custom-objects applies to .keras and .h5 files" in res.stderr, res.stderr


def test_a_string_input_says_what_to_export_instead(models):
    res = run_cli("export", "text.keras", "-o", "out_text", cwd=models)
    err = without_stages(res.stderr)
    assert res.returncode == 5, err
    assert "input 'text' is a string tensor (read by TextVectorization layer 'text_vectorization')" in err
    assert "export the model after it" in err and "model.get_layer('text_vectorization').output" in err
