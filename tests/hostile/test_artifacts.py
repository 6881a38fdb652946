"""Catalogue group A: artifact and command-line integrity.

Output paths that are symlinks, files, the input itself or someone else's directory; report paths
that are symlinks or cannot be written; bundles tampered with in every way the manifest should catch;
a write that fails part-way. Nothing may be written through a link, and nothing half-written may
remain.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, needs_torch

from hostile.build import DELETE, pair_bundle, pickled_golden
from hostile.common import (
    TORCH_FACTORIES,
    Call,
    assert_empty,
    assert_exit,
    assert_no_marker,
    assert_verdict,
    case_dirs,
    run_many,
    snapshot,
)

SOURCE = f"{TORCH_FACTORIES}:linear"  # never loaded below: the destination is refused first
Y = np.array([1.0, 2.0, 3.0], np.float32)


def _good_bundle(path):
    return pair_bundle(path, {"y": Y}, {"y": Y})


# -- output paths ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    victim_dir = base / "victim_dir"
    victim_dir.mkdir()
    (victim_dir / "precious.txt").write_text("precious")
    victim_file = base / "victim.txt"
    victim_file.write_text("precious")
    src_copy = base / "model_src.py"
    src_copy.write_text((TORCH_FACTORIES).read_text())
    existing_bundle = _good_bundle(base / "existing_bundle")
    cases = {}
    out, cwd = case_dirs(base, "A01_symlink_to_directory")
    os.symlink(victim_dir, out / "bundle")
    cases["A01_symlink_to_directory"] = (out / "bundle", cwd, "symlink")
    out, cwd = case_dirs(base, "A01_symlink_to_file")
    os.symlink(victim_file, out / "bundle")
    cases["A01_symlink_to_file"] = (out / "bundle", cwd, "symlink")
    out, cwd = case_dirs(base, "A01_dangling_symlink")
    os.symlink(base / "nowhere", out / "bundle")
    cases["A01_dangling_symlink"] = (out / "bundle", cwd, "symlink")
    cases["A10_existing_non_bundle_directory"] = (victim_dir, case_dirs(base, "A10_nonbundle")[1], "not a bundle")
    cases["A10_existing_file"] = (victim_file, case_dirs(base, "A10_file")[1], "not a directory")
    # the one rule for every writer (Security III) refuses these first: an input, a folder holding one
    cases["A10_the_source_file_itself"] = (src_copy, case_dirs(base, "A10_source")[1], "is the input file")
    cases["A10_root_directory"] = ("/", case_dirs(base, "A10_root")[1], "holds the input")
    out, cwd = case_dirs(base, "A10_dot_in_a_nonempty_cwd")
    (cwd / "train.py").write_text("# the user's code\n")
    cases["A10_dot_in_a_nonempty_cwd"] = (".", cwd, "not a bundle")
    cases["A10_existing_bundle_without_force"] = (existing_bundle, case_dirs(base, "A10_bundle")[1], "already holds")
    cases["A10_parent_is_a_file"] = (victim_file / "bundle", case_dirs(base, "A10_parent")[1], "cannot create")
    before = snapshot(base)
    calls = {}
    for name, (dest, cwd, _) in cases.items():
        source = f"{src_copy}:linear" if name == "A10_the_source_file_itself" else SOURCE
        calls[name] = Call(("export", source, "-o", dest, "--force" if "force" not in name else "--seed=0"), cwd)
    return base, cases, before, run_many(calls)


@pytest.mark.parametrize(
    "name",
    [
        "A01_symlink_to_directory",
        "A01_symlink_to_file",
        "A01_dangling_symlink",
        "A10_existing_non_bundle_directory",
        "A10_existing_file",
        "A10_the_source_file_itself",
        "A10_root_directory",
        "A10_dot_in_a_nonempty_cwd",
        "A10_existing_bundle_without_force",
        "A10_parent_is_a_file",
    ],
)
def test_dangerous_output_paths_are_refused(outputs, name):
    base, cases, before, results = outputs
    _, _, fragment = cases[name]
    assert_exit(results[name], 2, "usage", fragment)
    assert snapshot(base) == before  # no file changed, nothing written anywhere under the test tree


# -- report paths ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    base = tmp_path_factory.mktemp("reports")
    bundle = _good_bundle(base / "bundle")
    victim = base / "victim.txt"
    victim.write_text("precious")
    cwd = base / "cwd"
    cwd.mkdir()
    os.symlink(victim, cwd / "report.json")
    (cwd / "a_directory.json").mkdir()
    manifest_before = (bundle / "manifest.json").read_text()
    calls = {
        "json_symlink": Call(("verify", bundle, "--json", cwd / "report.json"), cwd),
        "json_missing_directory": Call(("verify", bundle, "--json", cwd / "no" / "dir" / "r.json"), cwd),
        "json_parent_is_a_file": Call(("verify", bundle, "--json", victim / "r.json"), cwd),
        "json_is_a_directory": Call(("verify", bundle, "--json", cwd / "a_directory.json"), cwd),
        "json_over_the_bundle_manifest": Call(("verify", bundle, "--json", bundle / "manifest.json"), cwd),
    }
    return base, bundle, victim, cwd, manifest_before, run_many(calls, workers=1)


def test_json_report_replaces_a_symlink_instead_of_following_it(reports):
    """--json PATH where PATH is a symlink to another file: the report is written to a temporary file
    and renamed over PATH, so the link is replaced and its target is left alone."""
    _, _, victim, cwd, _, results = reports
    assert_verdict(results["json_symlink"], 0)
    assert victim.read_text() == "precious"
    report = cwd / "report.json"
    assert not report.is_symlink() and json.loads(report.read_text())["status"] == "pass"
    assert not list(cwd.glob(".bridge-report-*"))


def test_missing_report_directories_are_created(reports):
    _, _, _, cwd, _, results = reports
    assert_verdict(results["json_missing_directory"], 0)
    assert json.loads((cwd / "no" / "dir" / "r.json").read_text())["status"] == "pass"


@pytest.mark.parametrize("name", ["json_parent_is_a_file", "json_is_a_directory"])
def test_unwritable_report_path_is_a_usage_error(reports, name):
    _, _, _, cwd, _, results = reports
    assert_exit(results[name], 2, "usage", "json")
    assert not list(cwd.glob(".bridge-report-*"))


def test_unwritable_report_path_leaves_no_temporary_file(reports):
    _, _, _, cwd, _, results = reports
    for name in ("json_parent_is_a_file", "json_is_a_directory"):
        assert results[name].returncode != 0
        assert "Traceback" not in results[name].stderr
    assert not list(cwd.rglob(".bridge-report-*"))


def test_report_cannot_overwrite_the_bundle_it_verifies(reports):
    _, bundle, _, cwd, manifest_before, results = reports
    assert (bundle / "manifest.json").read_text() == manifest_before
    assert_exit(results["json_over_the_bundle_manifest"], 2, "usage")


# -- tampered bundles ------------------------------------------------------------------------------------------


def _flip_golden(b):
    data = bytearray((b / "golden.npz").read_bytes())
    data[len(data) // 2] ^= 0x40
    (b / "golden.npz").write_bytes(bytes(data))


def _extra_file(b):
    (b / "extra.bin").write_bytes(b"unlisted")


def _symlinked_member(b):
    outside = b.parent / "golden_outside.npz"
    shutil.move(b / "golden.npz", outside)
    os.symlink(outside, b / "golden.npz")  # same bytes, same hash: only the link is wrong


def _missing_file(b):
    (b / "golden.npz").unlink()


def _manifest_not_json(b):
    (b / "manifest.json").write_text("{ this is not json")


def _patch(**kv):
    def apply(b):
        m = json.loads((b / "manifest.json").read_text())
        for k, v in kv.items():
            if v is DELETE:
                m.pop(k, None)
            else:
                m[k] = v
        (b / "manifest.json").write_text(json.dumps(m))

    return apply


def _listed_outside(b):
    outside = b.parent / "outside.bin"
    outside.write_bytes(b"outside")
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["../outside.bin"] = {"sha256": __import__("hashlib").sha256(b"outside").hexdigest(), "bytes": 7}
    (b / "manifest.json").write_text(json.dumps(m))


TAMPER = {  # case -> (change, fragment of the one line)
    "A06_changed_byte": (_flip_golden, "golden.npz was changed: sha256"),
    "A06_unlisted_extra_file": (_extra_file, "does not list: extra.bin"),
    "A06_symlink_inside_bundle": (_symlinked_member, "symlink"),
    "A06_missing_file": (_missing_file, "missing"),
    "A06_manifest_not_json": (_manifest_not_json, "cannot read"),
    "A06_schema_version_missing": (_patch(schema_version=DELETE), "schema_version"),
    "A06_schema_version_from_the_future": (_patch(schema_version=2), "schema_version"),
    "A06_manifest_is_a_list": (lambda b: (b / "manifest.json").write_text("[1, 2]"), "schema_version"),
    "A06_files_entry_outside_bundle": (_listed_outside, "outside the bundle"),
}
MALFORMED_MANIFEST = {  # well-formed JSON, wrong shapes: every one must be a bad bundle (exit 2)
    "files_is_a_list": _patch(files=["model.onnx", "golden.npz"]),
    "files_entry_is_a_string": lambda b: _patch(
        files={k: "0" * 64 for k in json.loads((b / "manifest.json").read_text())["files"]}
    )(b),
    "input_without_dtype": _patch(inputs=[{"name": "x", "dims": [1]}]),
    "cases_is_null": _patch(cases=None),
    "model_is_a_string": _patch(model="model.onnx"),
}
MODEL_ESCAPES = {  # the manifest's model file points outside the hashed files
    "model_file_parent": "../outside_model.onnx",
    "model_file_absolute": None,  # filled in with the absolute path
}


@pytest.fixture(scope="module")
def tampered(tmp_path_factory):
    base = tmp_path_factory.mktemp("tampered")
    calls, layout = {}, {}

    def register(name, bundle):
        """A clean working directory for the case, a snapshot of its tree, a `verify` call."""
        cwd = base / name / "cwd"
        cwd.mkdir()
        layout[name] = (base / name, cwd, snapshot(base / name))
        calls[name] = Call(("verify", bundle), cwd)
        return cwd

    for name, (change, _) in TAMPER.items():
        bundle = _good_bundle(base / name / "bundle")
        change(bundle)
        register(name, bundle)
    for name, change in MALFORMED_MANIFEST.items():
        bundle = _good_bundle(base / name / "bundle")
        change(bundle)
        cwd = register(name, bundle)
        calls[f"{name}/inspect"] = Call(("inspect", bundle), cwd)
    for name, location in MODEL_ESCAPES.items():
        bundle = _good_bundle(base / name / "bundle")
        # an unhashed model outside the bundle, giving other outputs than the golden file's
        _good_bundle(base / name / "other")
        other = pair_bundle(base / name / "evil", {"y": Y}, {"y": Y * 100})
        shutil.copy(other / "model.onnx", base / name / "outside_model.onnx")
        target = location or str(base / name / "outside_model.onnx")
        _patch(model={"file": target})(bundle)
        register(name, bundle)
    # a consistent bundle whose golden.npz holds a pickled object array
    marks = base / "marks"
    marks.mkdir()
    bundle = _good_bundle(base / "A06_pickled_golden" / "bundle")
    pickled_golden(bundle, marks / "golden_pickle")
    register("A06_pickled_golden", bundle)
    # the bundle directory itself a symlink
    real = _good_bundle(base / "A06_bundle_is_a_symlink" / "real")
    os.symlink(real, base / "A06_bundle_is_a_symlink" / "bundle")
    cwd = base / "A06_bundle_is_a_symlink" / "cwd"
    cwd.mkdir()
    layout["A06_bundle_is_a_symlink"] = (
        base / "A06_bundle_is_a_symlink",
        cwd,
        snapshot(base / "A06_bundle_is_a_symlink"),
    )
    calls["A06_bundle_is_a_symlink"] = Call(("verify", base / "A06_bundle_is_a_symlink" / "bundle"), cwd)
    return layout, marks, run_many(calls)


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_tampered_bundle_is_refused_before_anything_runs(tampered, name):
    layout, _, results = tampered
    assert_exit(results[name], 2, "bad bundle", TAMPER[name][1])
    root, cwd, before = layout[name]
    assert snapshot(root) == before
    assert_empty(cwd)


def test_pickled_golden_is_refused_without_unpickling(tampered):
    layout, marks, results = tampered
    assert_no_marker(marks)
    assert_exit(results["A06_pickled_golden"], 2, "bad bundle", "golden.npz", "allow_pickle")
    root, cwd, before = layout["A06_pickled_golden"]
    assert snapshot(root) == before
    assert_empty(cwd)


def test_bundle_path_that_is_a_symlink_is_refused(tampered):
    layout, _, results = tampered
    assert_exit(results["A06_bundle_is_a_symlink"], 2, "bad bundle", "symlink")


@pytest.mark.parametrize("name", sorted(MALFORMED_MANIFEST) + sorted(MODEL_ESCAPES))
def test_malformed_manifest_is_a_bad_bundle(tampered, name):
    """Well-formed JSON with the wrong shapes, or a model file outside the hashed files ('../x.onnx',
    an absolute path): a bad bundle for verify and for inspect, before any file is loaded."""
    layout, _, results = tampered
    assert_exit(results[name], 2, "bad bundle")
    if name in MALFORMED_MANIFEST:
        assert_exit(results[f"{name}/inspect"], 2, "bad bundle")
    root, cwd, before = layout[name]
    assert snapshot(root) == before
    assert_empty(cwd)


# -- a write that fails part-way ----------------------------------------------------------------------------


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory):
    """`bridge export` of 260 KB of weights where no file may grow past 100 000 bytes (RLIMIT_FSIZE,
    inherited by the worker): the write of model.onnx fails part-way."""
    base = tmp_path_factory.mktemp("disk_full")
    out, cwd = case_dirs(base, "A02")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "bridge", "export", f"{TORCH_FACTORIES}:wide", "-o", str(out / "bundle")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    return out, cwd, res


@needs_torch
def test_A02_failed_write_leaves_nothing(disk_full):
    out, cwd, res = disk_full
    assert res.returncode not in (0, 1, 3), res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert_empty(out, cwd)  # no bundle, no staging directory, no truncated model.onnx


@needs_torch
def test_A02_failed_write_is_not_blamed_on_the_model(disk_full):
    _, _, res = disk_full
    assert res.returncode in (2, 4), res.stderr
    assert_exit(res, res.returncode, None, "File too large")


# -- concurrent writers ------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.slow
def test_A05_concurrent_exports_to_one_destination(tmp_path):
    """Two exports with --force to the same path at once: each ends in a verdict or a one-line usage error,
    and what is left is one complete, consistent bundle and no staging or old directories."""
    out = tmp_path / "out"
    out.mkdir()
    calls = {}
    for i, factory in enumerate(("linear", "dict_out")):
        (tmp_path / f"cwd{i}").mkdir()
        calls[f"w{i}"] = Call(
            ("export", f"{TORCH_FACTORIES}:{factory}", "-o", out / "bundle", "--force"), tmp_path / f"cwd{i}"
        )
    results = run_many(calls, workers=2)
    for res in results.values():
        if res.returncode == 0:
            assert_verdict(res, 0)
        else:
            assert_exit(res, 2, "usage")
    assert any(r.returncode == 0 for r in results.values())
    assert sorted(p.name for p in out.iterdir()) == ["bundle"]
    (tmp_path / "cwd_v").mkdir()
    assert_verdict(run_many({"v": Call(("verify", out / "bundle"), tmp_path / "cwd_v")})["v"], 0)
