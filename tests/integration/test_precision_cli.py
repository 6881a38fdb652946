"""--precision int8 / fp16 end to end: the reduced bundle passes against its own model and fails against
another one. A tiny classifier in-process (fast), and the digits CNN through the command line (slow):
calibrated on its training digits, checked on the held-out ones, failed against the untrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, needs_torch, run_cli, run_py

pytestmark = [needs_torch, pytest.mark.torch]


def _classifier(seed: int):
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return model.eval()


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_tiny_classifier_reduced_bundle_passes_and_other_weights_fail(precision, tmp_path, monkeypatch):
    import bridge

    model, other = _classifier(0), _classifier(1)
    out = tmp_path / f"tiny.{precision}"
    monkeypatch.chdir(tmp_path)  # ONNX Runtime's quantization tools write scratch files into the cwd
    report = bridge.export(model, out, inputs=["x:float32[batch,16]"], precision=precision, threads=1)
    assert report.status == "pass", report.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # nothing else left behind
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["precision"]
    assert entry["precision"] == precision and entry["fp32"]["status"] == "pass"
    assert entry["method"] == ("dynamic" if precision == "int8" else "fp16")
    assert entry["calibration"] is None and manifest["policy"]["precision"] == precision
    # the reduced graph is the model; the float32 parent it was derived from travels with it
    assert set(manifest["files"]) == {"model.onnx", "golden.npz", "parent.onnx"}
    assert entry["parent"]["file"] == "parent.onnx"
    if precision == "int8":
        assert entry["settings"]["gemm_rewritten_as_matmul"] == 3
        assert entry["settings"]["quantized_ops"]
    assert any("this check is weak" in n for n in report.notes)  # no real samples at export

    # the verifier sets the terms: without --precision the graph is judged by the strict float32 row
    strict = bridge.verify(out, source=model, threads=1)
    assert any(f"verify with --precision {precision}" in n for n in strict.notes)
    assert {r.tolerance.row for r in strict.results} == {""}
    same = bridge.verify(out, source=model, precision=precision, threads=1)
    assert same.status == "pass", same.reason
    assert {r.tolerance.row for r in same.results if "[fp32 parent]" not in r.name} == {f"float32/cpu/{precision}"}
    assert any(r.name.endswith("[fp32 parent]") and r.status == "pass" for r in same.results)
    assert any(n.startswith("derivation:") for n in same.notes)
    assert bridge.verify(out, threads=1).status == "pass"  # golden check under the bundle's own row

    against_other = bridge.verify(out, source=other, precision=precision, threads=1)
    assert against_other.status == "fail"

    samples = tmp_path / "samples.npz"
    np.savez(samples, x=np.random.default_rng(3).standard_normal((200, 16)).astype(np.float32))
    on_data = bridge.verify(out, source=model, samples=samples, precision=precision, threads=1)
    assert on_data.status == "pass", on_data.reason
    assert on_data.dataset["cpu"]["outputs"]["output"]["top1_agreement"] >= 0.99
    assert bridge.verify(out, source=other, samples=samples, precision=precision, threads=1).status == "fail"


def test_calibrate_needs_int8(tmp_path):
    import bridge
    from bridge.errors import UsageError

    samples = tmp_path / "s.npz"
    np.savez(samples, x=np.zeros((4, 16), np.float32))
    with pytest.raises(UsageError):
        bridge.export(
            _classifier(0), tmp_path / "b", inputs=["x:float32[batch,16]"], precision="fp16", calibrate=str(samples)
        )


# -- the reference digits CNN through the command line --------------------------------------------

CNN = "models/torch_cnn.py:build"


@pytest.fixture(scope="module")
def digits(workdir) -> dict:
    """Trained weights (build/reference when `python -m models.reference` has run, else trained here),
    the training digits for calibration, the held-out digits and their labels."""
    weights = ROOT / "build" / "reference" / "torch_cnn.pt"
    if not weights.is_file():
        weights = workdir / "torch_cnn.pt"
        res = run_cli_module("models.train", "torch_cnn", weights)
        assert res.returncode == 0, res.stderr[-2000:]
    data = workdir / "digits"
    code = (
        "import numpy as np, pathlib; from models.data import digits_data; "
        f"d = pathlib.Path({str(data)!r}); d.mkdir(exist_ok=True); xtr, ytr, xte, yte = digits_data(0); "
        "np.savez(d / 'train.npz', x=np.ascontiguousarray(xtr[:, None], dtype=np.float32)); "
        "np.savez(d / 'held_out.npz', x=np.ascontiguousarray(xte[:, None], dtype=np.float32)); "
        "np.save(d / 'labels.npy', yte.astype(np.int64))"
    )
    res = run_py(code, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return {
        "weights": weights,
        "train": data / "train.npz",
        "held_out": data / "held_out.npz",
        "labels": data / "labels.npy",
    }


def run_cli_module(module: str, *args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_digits_cnn_reduced_bundle_end_to_end(precision, digits, workdir):
    out = workdir / f"digits.{precision}"
    calibrate = ["--calibrate", digits["train"]] if precision == "int8" else []
    res = run_cli(
        "export",
        CNN,
        "--weights",
        digits["weights"],
        "--precision",
        precision,
        *calibrate,
        "-o",
        out,
        "--json",
        workdir / f"{precision}.export.json",
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    exported = json.loads((workdir / f"{precision}.export.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    if precision == "int8":
        assert manifest["precision"]["method"] == "static-qdq"
        assert manifest["precision"]["calibration"]["samples"] == 1437
        assert len(manifest["precision"]["calibration"]["sha256"]) == 64
        assert exported["dataset"]["cpu"]["outputs"]["output"]["top1_agreement"] >= 0.99  # on the calibration digits

    verify = ["verify", out, "--source", CNN, "--samples", digits["held_out"], "--labels", digits["labels"]]
    verify += ["--precision", precision]  # the verifier accepts the reduced row; the bundle cannot choose it
    res = run_cli(*verify, "--weights", digits["weights"], "--json", workdir / f"{precision}.verify.json", cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / f"{precision}.verify.json").read_text())
    held_out = report["dataset"]["cpu"]["outputs"]["output"]
    assert held_out["top1_agreement"] >= 0.99 and held_out["rows"] == 360
    assert held_out["accuracy_native"] > 0.9 and held_out["accuracy_onnx"] > 0.9
    assert all(
        o["tolerance"]["row"] == f"float32/cpu/{precision}" for o in report["outputs"] if "parent" not in o["name"]
    )
    assert any(n.startswith("derivation:") and "what the recorded method makes" in n for n in report["notes"])
    assert "top-1 agreement" in res.stdout and "accuracy native" in res.stdout

    res = run_cli(*verify, "--json", workdir / f"{precision}.untrained.json", cwd=ROOT)  # no --weights
    assert res.returncode == 1, res.stdout + res.stderr
    untrained = json.loads((workdir / f"{precision}.untrained.json").read_text())
    assert untrained["status"] == "fail"
    assert untrained["dataset"]["cpu"]["outputs"]["output"]["top1_agreement"] < 0.5

    res = run_cli("verify", out, cwd=ROOT)  # ONNX Runtime only, against the golden float32 outputs
    assert res.returncode == 0, res.stdout + res.stderr
