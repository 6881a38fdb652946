"""Catalogue group E: ONNX external data that points outside the model, at links, or out of bounds.

Each case is served twice: as a bundle whose manifest is consistent (the attacker wrote it: every
hash matches), so that verify gets past the hash check to the ONNX loader and would reach ONNX
Runtime; and as a bare model.onnx next to its data, the `bridge verify FILE.onnx` route. Both must
exit 2 with one line and without reading the outside file into a result.
"""

import os

import numpy as np
import pytest

from hostile.build import add_model, ext_tensor, rehash, spec, write_model
from hostile.common import Call, assert_empty, assert_exit, assert_verdict, run_many, snapshot

SECRET = np.array([101.0, 102.0, 103.0, 104.0], np.float32)  # what the attacker wants to read
X = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
ONES = np.ones(4, np.float32)


def _golden(w):
    return {"draw0/in/x": X, "draw0/out/y": X + w}


# name -> (location, extra keys, setup(model_dir, outside_dir), fragment of the expected message)
def _setup_none(d, outside):
    pass


def _setup_w(d, outside):
    ONES.tofile(d / "w.bin")


def _setup_sub(d, outside):
    (d / "sub").mkdir()
    ONES.tofile(d / "w.bin")


def _setup_symlink(d, outside):
    os.symlink(outside / "outside.bin", d / "link.bin")


def _setup_parent_symlink(d, outside):
    os.symlink(outside, d / "up")


def _setup_hardlink(d, outside):
    os.link(outside / "outside.bin", d / "hl.bin")


CASES = {
    "S18_parent_traversal": ("../outside.bin", {}, _setup_none, "outside"),
    "S19_nested_traversal": ("sub/../../outside.bin", {}, _setup_sub, "outside"),
    "S20_absolute_path": (None, {}, _setup_none, "relative"),
    "S21_symlink": ("link.bin", {}, _setup_symlink, ""),
    "S22_parent_dir_symlink": ("up/outside.bin", {}, _setup_parent_symlink, ""),
    "S23_hard_link": ("hl.bin", {}, _setup_hardlink, "hard link"),
    "S24_offset_beyond_file": ("w.bin", {"offset": 10**9}, _setup_w, ""),
    "S24_length_beyond_file": ("w.bin", {"length": 10**12}, _setup_w, ""),
    "S24_negative_offset": ("w.bin", {"offset": -1}, _setup_w, ""),
    "S24_negative_length": ("w.bin", {"length": -1}, _setup_w, ""),
    "S25_unknown_keys": ("w.bin", {"__class__": "x", "evil_attr": "y"}, _setup_w, ""),
    "S26_empty_location": ("", {}, _setup_none, ""),
    "S26_directory_location": ("sub", {}, _setup_sub, ""),
    "S26_missing_file": ("nope.bin", {}, _setup_none, ""),
}


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    base = tmp_path_factory.mktemp("external")
    calls, layout = {}, {}
    for name, (location, keys, setup, _) in CASES.items():
        root = base / name
        outside = root / "outside"
        outside.mkdir(parents=True)
        SECRET.tofile(outside / "outside.bin")
        loc = str(outside / "outside.bin") if location is None else location
        # bundle route: the hostile directory sits where the bundle is, outside.bin next to it
        bundle = root / "bundle"
        bundle.mkdir()
        setup(bundle, outside)
        write_model(
            add_model(ext_tensor("W", loc if location is None else _rebase(loc), **keys)), bundle / "model.onnx"
        )
        np.savez(bundle / "golden.npz", **_golden(SECRET))
        _manifest(bundle)
        # bare-file route
        bare = root / "bare"
        bare.mkdir()
        setup(bare, outside)
        write_model(add_model(ext_tensor("W", loc if location is None else _rebase(loc), **keys)), bare / "model.onnx")
        cwd = root / "cwd"
        cwd.mkdir()
        before = snapshot(root)
        layout[name] = (root, cwd, before)
        calls[f"{name}/bundle"] = Call(("verify", bundle), cwd)
        calls[f"{name}/bare"] = Call(("verify", bare / "model.onnx"), cwd)
    return layout, run_many(calls)


def _rebase(location: str) -> str:
    """Locations above are relative to the model directory, whose parent holds 'outside/'."""
    if location.startswith("../"):
        return "../outside/" + location[3:]
    if location.startswith("sub/../../"):
        return "sub/../../outside/" + location[len("sub/../../") :]
    return location


def _manifest(bundle):
    """A consistent manifest: every regular file in the bundle listed with its hash."""
    import json

    manifest = {
        "schema_version": 1,
        "model": {"file": "model.onnx"},
        "source": {},
        "exporter": {},
        "inputs": [spec("x", "float32", [4])],
        "outputs": [spec("y", "float32", [4])],
        "cases": [{"label": "draw0", "seed": 0, "sizes": {}}],
        "files": {},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    rehash(bundle)


@pytest.mark.parametrize("name", sorted(CASES))
def test_external_data_is_refused(external, name):
    layout, results = external
    root, cwd, before = layout[name]
    fragment = CASES[name][3]
    for route in ("bundle", "bare"):
        res = results[f"{name}/{route}"]
        line = assert_exit(res, 2, None, fragment)
        assert line.startswith(("bridge: bad input: ", "bridge: bad bundle: ")), line
        assert "101" not in res.stdout + res.stderr  # the outside bytes never reach a report
    assert snapshot(root) == before  # nothing written, nothing changed
    assert_empty(cwd)


def test_control_valid_external_data_passes(tmp_path):
    """The same graph with its data inside the bundle verifies: the refusals above are about the
    locations, not about external data as such."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    ONES.tofile(bundle / "w.bin")
    write_model(add_model(ext_tensor("W", "w.bin")), bundle / "model.onnx")
    np.savez(bundle / "golden.npz", **_golden(ONES))
    _manifest(bundle)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = run_many({"ok": Call(("verify", bundle), cwd)})["ok"]
    assert_verdict(res, 0)
    assert_empty(cwd)


def test_S29_tampered_external_data(tmp_path):
    """The `checksum` key is ignored by onnx and ONNX Runtime; the manifest's sha256 is not. An
    attacker who also rewrites the manifest is caught by the golden outputs instead."""
    calls = {}
    for name in ("tampered", "tampered_rehashed"):
        bundle = tmp_path / name
        bundle.mkdir()
        ONES.tofile(bundle / "w.bin")
        write_model(add_model(ext_tensor("W", "w.bin", checksum="0" * 64)), bundle / "model.onnx")
        np.savez(bundle / "golden.npz", **_golden(ONES))
        _manifest(bundle)
        np.full(4, 1e30, np.float32).tofile(bundle / "w.bin")
        if name == "tampered_rehashed":
            rehash(bundle)
        (tmp_path / f"{name}_cwd").mkdir()
        calls[name] = Call(("verify", bundle), tmp_path / f"{name}_cwd")
    res = run_many(calls)
    assert_exit(res["tampered"], 2, "bad bundle", "w.bin was changed: sha256")
    assert_verdict(res["tampered_rehashed"], 1, "values")


def test_S25_unknown_keys_refused_by_bridge(external):
    _, results = external
    for route in ("bundle", "bare"):
        assert_exit(results[f"S25_unknown_keys/{route}"], 2, "bad input", "external data key")
