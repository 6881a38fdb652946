import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bridge.artifact.bundle import MANIFEST, Staging, check_destination, open_bundle
from bridge.errors import BundleError, UsageError


def tiny_model(path):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def make_bundle(dest, force=False):
    with Staging(dest) as st:
        tiny_model(st.dir / "model.onnx")
        st.write_golden({"draw0/in/x": np.ones((2, 3), np.float32), "draw0/out/y": np.ones((2, 3), np.float32)})
        st.write_manifest(
            {
                "schema_version": 1,
                "model": {"file": "model.onnx"},
                "inputs": [{"name": "x", "dtype": "float32", "dims": ["batch", 3]}],
                "outputs": [{"name": "y", "dtype": "float32", "dims": ["batch", 3]}],
                "cases": [{"label": "draw0", "seed": 0, "sizes": {"batch": 2}}],
            }
        )
        st.publish(force)


def test_publish_hash_and_read_back(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    b = open_bundle(dest)
    assert set(b.manifest["files"]) == {"model.onnx", "golden.npz"}
    ((case, feeds, outs),) = b.golden()
    assert feeds["x"].shape == (2, 3) and outs["y"].dtype == np.float32
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_changed_byte_is_refused_by_name(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    data = bytearray((dest / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (dest / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx was changed: sha256"):
        open_bundle(dest)


def test_unlisted_and_missing_files_refused(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    (dest / "model.onnx.data").write_bytes(b"x")
    with pytest.raises(BundleError, match="does not list"):
        open_bundle(dest)
    os.unlink(dest / "model.onnx.data")
    os.unlink(dest / "golden.npz")
    with pytest.raises(BundleError, match="missing"):
        open_bundle(dest)


def test_wrong_schema_refused(tmp_path):
    dest = tmp_path / "b"
    make_bundle(dest)
    m = json.loads((dest / MANIFEST).read_text())
    m["schema_version"] = 99
    (dest / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema_version"):
        open_bundle(dest)


def test_destinations_refused(tmp_path):
    target = tmp_path / "victim"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    with pytest.raises(UsageError, match="not a bundle"):
        check_destination(target, force=True)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symlink"):
        check_destination(link, force=True)
    dest = tmp_path / "b"
    make_bundle(dest)
    with pytest.raises(UsageError, match="already holds a bundle") as info:
        check_destination(dest, force=False)
    assert "--force" in info.value.hint
    make_bundle(dest, force=True)  # replaced whole
    assert open_bundle(dest).manifest["schema_version"] == 1
    assert (target / "precious.txt").read_text() == "keep"


def test_failed_write_leaves_nothing(tmp_path):
    dest = tmp_path / "b"
    with pytest.raises(RuntimeError):
        with Staging(dest) as st:
            tiny_model(st.dir / "model.onnx")
            raise RuntimeError("converter died")
    assert list(tmp_path.iterdir()) == []
