"""What a bundle may not decide for itself, and inputs that must end in their documented exit code.

* A bundle under test never chooses its own tolerance when the native model is there to compare
  with (`--source`): a trojaned graph with a lax stored policy fails.
* Every manifest field is checked against the graph and the golden arrays (exit 2).
* No report path may replace an input file, through a symlink or a hard link either (exit 2).
* Hostile sizes, names and special files end in exit 2 with one line, never exit 8.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from hostile.build import graph_bundle, linear_graph, pair_bundle, rehash, spec
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

LINEAR = f"{TORCH_FACTORIES}:linear"


def _trojan(dest, weights, policy):
    """The real Linear's graph with its bias moved by 1.0, golden outputs computed from the trojaned graph
    (so the golden check agrees), a lax stored policy, every hash consistent."""
    w, b = weights["weight"], weights["bias"] + 1.0
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}
    out = {"output": feeds["x"] @ w.T + b}
    bundle = graph_bundle(
        dest,
        linear_graph(w, b),
        feeds,
        out,
        inputs=[spec("x", "float32", ["batch", 4])],
        cases=[{"label": "draw0", "seed": 0, "sizes": {"batch": 2}}],
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["outputs"] = [spec("output", "float32", ["batch", 4])]
    manifest["policy"] = policy
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    rehash(bundle)
    return bundle


@pytest.fixture(scope="module")
def trojan_runs(tmp_path_factory):
    files, _ = shared_build("torch", tmp_path_factory)
    base = tmp_path_factory.mktemp("trojan")
    with np.load(files / "good_linear.npz") as z:
        weights = {k: z[k] for k in z.files}
    lax = _trojan(base / "lax", weights, {"atol": 0, "rtol": 1e6})
    honest = _trojan(
        base / "honest", {"weight": weights["weight"], "bias": weights["bias"] - 1.0}, {"atol": 0, "rtol": 1e6}
    )
    calls = {}
    for name, args in {
        "lax_with_source": ("verify", lax, "--source", LINEAR),
        "lax_golden_only": ("verify", lax),
        "lax_with_user_policy": ("verify", lax, "--source", LINEAR, "--rtol", "1e6", "--atol", "0"),
        "honest_with_source": ("verify", honest, "--source", LINEAR),
    }.items():
        _, cwd = case_dirs(base, name)
        calls[name] = Call(args, cwd)
    return run_many(calls)


def test_trojaned_bundle_with_lax_stored_policy_fails_against_the_source(trojan_runs):
    res = trojan_runs["lax_with_source"]
    assert_verdict(res, 1, "output")
    assert "stored tolerance is looser than bridge's defaults and was not applied" in res.stdout
    assert "rtol 1e+06 > 0.0001" in res.stdout


def test_golden_check_says_whose_tolerance_it_applied(trojan_runs):
    """Without --source the bundle can only be checked against itself: the verdict says so."""
    res = trojan_runs["lax_golden_only"]
    assert_verdict(res, 0, "golden check", "the bundle's own tolerance", "no native model ran")


def test_a_tolerance_so_lax_that_nothing_could_fail_is_inconclusive(trojan_runs):
    """The user may choose any tolerance, but one whose band holds a constant for every case proves nothing."""
    assert_verdict(trojan_runs["lax_with_user_policy"], 3, "vacuous", "a constant")


def test_an_honest_bundle_passes_whatever_its_stored_policy(trojan_runs):
    res = trojan_runs["honest_with_source"]
    assert_verdict(res, 0)
    assert "looser than bridge's defaults" in res.stdout  # still reported


# -- manifests checked against the graph and the golden arrays -----------------------------------------------


def _bundle(dest, **manifest_changes):
    b = pair_bundle(dest, {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.0], np.float32)})
    manifest = json.loads((b / "manifest.json").read_text())
    for key, value in manifest_changes.items():
        manifest[key] = value
    text = json.dumps(manifest)
    for token in ("NaN", "Infinity"):
        text = text.replace(f'"{token}"', token)  # JSON constants Python's json would accept
    (b / "manifest.json").write_text(text)
    return b


MANIFESTS = {
    "huge_dim": ({"inputs": [spec("x", "float32", [2**40])]}, "inputs"),
    "other_dim": ({"inputs": [spec("x", "float32", [2**30])]}, "does not match the graph"),
    "unsized_axis": ({"inputs": [spec("x", "float32", ["batch"])]}, "golden.npz"),
    "negative_dim": ({"inputs": [spec("x", "float32", [-3])]}, "inputs"),
    "nan_range": ({"inputs": [{**spec("x", "float32", [1]), "range": ["NaN", "Infinity"]}]}, "not a JSON number"),
    "inverted_range": ({"inputs": [{**spec("x", "float32", [1]), "range": [1.0, 0.0]}]}, "inputs"),
    "wrong_dtype": ({"inputs": [spec("x", "float64", [1])]}, "does not match the graph"),
    "wrong_rank": ({"inputs": [spec("x", "float32", [1, 1])]}, "does not match the graph"),
    "renamed_input": ({"inputs": [spec("z", "float32", [1])]}, "lacks array"),
    "rank_bomb": ({"inputs": [spec("x", "float32", [1] * 60000)]}, "inputs"),
    "long_name": ({"outputs": [spec("y" * 120000, "float32", [2])]}, "outputs"),
}


@pytest.fixture(scope="module")
def manifest_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("manifests")
    calls, bundles = {}, {}
    for name, (changes, _) in MANIFESTS.items():
        bundles[name] = _bundle(base / name / "bundle", **changes)
        _, cwd = case_dirs(base, name)
        calls[name] = Call(("verify", bundles[name]), cwd)
    zero = _bundle(base / "dev_zero" / "bundle")
    (zero / "manifest.json").unlink()
    os.symlink("/dev/zero", zero / "manifest.json")
    _, cwd = case_dirs(base, "dev_zero")
    calls["manifest_is_dev_zero"] = Call(("verify", zero, "--timeout", "60"), cwd)
    before = {n: snapshot(b) for n, b in bundles.items()}
    results = run_many(calls)
    return results, before, bundles


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_fields_are_checked_against_graph_and_golden(manifest_runs, name):
    results, before, bundles = manifest_runs
    assert_exit(results[name], 2, "bad bundle", MANIFESTS[name][1])
    assert snapshot(bundles[name]) == before[name]


def test_manifest_symlinked_to_a_device_is_refused_at_once(manifest_runs):
    assert_exit(manifest_runs[0]["manifest_is_dev_zero"], 2, "bad bundle", "symlink")


# -- report paths never replace an input -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def input_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("report_inputs")
    factory = base / "factory.py"
    factory.write_text((TORCH_FACTORIES).read_text())
    (base / "weights.pt").write_bytes(b"not really weights")
    np.savez(base / "samples.npz", x=np.zeros((2, 4), np.float32))
    np.save(base / "labels.npy", np.zeros(2, np.int64))
    (base / "policy.toml").write_text("atol = 1e-5\n")
    bundle = pair_bundle(base / "bundle", {"y": np.array([1.0], np.float32)}, {"y": np.array([1.0], np.float32)})
    return base, bundle


REPORT_TARGETS = {
    "source": "factory.py",
    "weights": "weights.pt",
    "inputs": "samples.npz",
    "labels": "labels.npy",
    "policy": "policy.toml",
}


@pytest.mark.parametrize("how", ["same_path", "symlink", "hard_link"])
@pytest.mark.parametrize("which", sorted(REPORT_TARGETS))
def test_report_path_never_replaces_an_input(input_files, which, how, tmp_path):
    base, bundle = input_files
    victim = base / REPORT_TARGETS[which]
    report = victim
    if how == "symlink":
        report = tmp_path / "report.json"
        os.symlink(victim, report)
    elif how == "hard_link":
        report = tmp_path / "report.json"
        os.link(victim, report)
    before = victim.read_bytes()
    args = [
        "verify",
        bundle,
        "--source",
        f"{base / 'factory.py'}:linear",
        "--weights",
        base / "weights.pt",
        "--inputs",
        base / "samples.npz",
        "--labels",
        base / "labels.npy",
        "--policy",
        base / "policy.toml",
    ]
    flag = {"same_path": "--json", "symlink": "--markdown", "hard_link": "--junit"}[how]
    res = run_many({"r": Call((*args, flag, report), tmp_path)})["r"]
    assert_exit(res, 2, "usage", "is the input file")
    assert victim.read_bytes() == before
    assert res.stdout == ""  # refused before any work


@pytest.mark.parametrize("path", ["/proc/self/status", "/dev/null"])
def test_special_report_paths_are_refused_up_front(input_files, path, tmp_path):
    _, bundle = input_files
    res = run_many({"r": Call(("verify", bundle, "--json", path), tmp_path)})["r"]
    assert_exit(res, 2, "usage", path)
    assert "verdict" not in res.stdout  # refused before the work, not after the verdict


# -- hostile sizes, names, special files --------------------------------------------------------------------------


def test_hostile_specs_and_special_files_end_in_exit_2(input_files, tmp_path):
    base, bundle = input_files
    out, cwd = case_dirs(tmp_path, "specs")
    dims = ",".join(["1"] * 60000)
    calls = {
        "rank": Call(("export", LINEAR, "--input", f"x:float32[{dims}]", "-o", out / "b1"), cwd),
        "name": Call(("export", LINEAR, "--input", f"{'x' * 120000}:float32[batch,4]", "-o", out / "b2"), cwd),
        "inputs_dev_zero": Call(("verify", bundle, "--source", LINEAR, "--inputs", "/dev/zero"), cwd),
        "policy_dev_zero": Call(("verify", bundle, "--policy", "/dev/zero"), cwd),
        "policy_bad_toml": Call(("verify", bundle, "--policy", base / "factory.py"), cwd),
    }
    res = run_many(calls)
    assert_exit(res["rank"], 2, "bad spec", "60000 dimensions")
    assert_exit(res["name"], 2, "bad spec", "120000 characters")
    assert_exit(res["inputs_dev_zero"], 2, "bad input", "/dev/zero", "not a regular file")
    assert_exit(res["policy_dev_zero"], 2, "usage", "policy file /dev/zero", "not a regular file")
    assert_exit(res["policy_bad_toml"], 2, "usage", "policy file", "not valid JSON")
    assert_empty(out, cwd)


def test_sigterm_ends_with_a_message_and_no_staging(tmp_path):
    """SIGTERM (a CI runner cancelling a job) stops the worker, removes its staging, says so."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "export", f"{TORCH_FACTORIES}:wide", "-o", str(out / "b")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".b.staging-") for p in out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker has created its staging directory
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    from bridge.progress import is_stage_line

    lines = [ln for ln in err.strip().splitlines() if not is_stage_line(ln)]
    assert lines[0] == "bridge: interrupted: stopped by SIGTERM", err
    assert any(is_stage_line(ln) for ln in err.splitlines()), err  # it said what it was doing until then
    assert sorted(p.name for p in out.iterdir()) == []
