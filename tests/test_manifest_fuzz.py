"""Property tests: any manifest.json either opens as a bundle or is refused with a BundleError;
nothing else escapes (no KeyError/TypeError turning into an internal error)."""

import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.artifact.bundle import open_bundle
from bridge.errors import BundleError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)

CONTENT = b"not really onnx"
VALID = {
    "schema_version": 1,
    "model": {"file": "model.onnx"},
    "inputs": [{"name": "x", "dtype": "float32", "dims": ["batch", 3]}],
    "outputs": [{"name": "y", "dtype": "float32", "dims": ["batch", 3]}],
    "cases": [{"label": "draw0", "seed": 0, "sizes": {"batch": 2}}],
    "files": {"model.onnx": {"sha256": hashlib.sha256(CONTENT).hexdigest()}},
}


def check(tmp_path, manifest) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir(exist_ok=True)
    (bundle / "model.onnx").write_bytes(CONTENT)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    try:
        b = open_bundle(bundle)
    except BundleError:
        return
    b.inputs, b.outputs, b.cases, b.model_path  # what verify reads next must not raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(VALID)), value=json_values)
def test_one_entry_replaced_by_anything(tmp_path, key, value):
    check(tmp_path, {**VALID, key: value})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=json_values)
def test_any_json_document(tmp_path, manifest):
    check(tmp_path, manifest)


def test_the_valid_manifest_opens(tmp_path):
    check(tmp_path, VALID)
    assert open_bundle(tmp_path / "b").inputs[0].name == "x"


def test_traversal_in_file_names_refused(tmp_path):
    for files in ({"../outside": {"sha256": "0"}}, {"/etc/passwd": {"sha256": "0"}}):
        m = {**VALID, "files": {**VALID["files"], **files}}
        check(tmp_path, m)
        bundle = tmp_path / "b"
        try:
            open_bundle(bundle)
            raise AssertionError("opened a manifest that lists a file outside the bundle")
        except BundleError as exc:
            assert "outside the bundle" in str(exc)


def test_unknown_dtype_and_bad_sizes_refused(tmp_path):
    import pytest

    for bad in (
        {"inputs": [{"name": "x", "dtype": "float99", "dims": [1]}]},
        {"cases": [{"label": "draw0", "seed": 0, "sizes": {"batch": "two"}}]},
        {"cases": [{"label": "a/b", "seed": 0, "sizes": {}}]},
    ):
        check(tmp_path, {**VALID, **bad})
        with pytest.raises(BundleError):
            open_bundle(tmp_path / "b")
