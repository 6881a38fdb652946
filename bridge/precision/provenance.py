"""Reduced precision proven as a derivation, not by a loose row alone.

An int8 bundle whose weight scales were multiplied by 1.15, or an fp16 bundle whose weights were
scaled by 1.008, stays inside the int8 or fp16 row of the policy: a loose row cannot tell a tampered
derivation from a faithful one. Provenance can. A reduced-precision bundle carries the float32 graph
it was derived from (``parent.onnx``), the parameters of the derivation (method, settings, the
operators kept in float32) and, for static int8, its calibration samples (``calibration.npz``, or
their sha256 when they were too large to keep). Verifying it against the native model then

1. verifies the float32 parent against the native model under the strict float32 row;
2. derives the reduced graph again from the parent with the recorded parameters and requires it to
   be the artifact: the same operators and tensors, float16 weights the exact casts of the parent's,
   int8 scales and zero points and quantized weights equal to what the recorded method produces,
   within one quantum;
3. compares the artifact with the native model under its reduced-precision row.

A reduced-precision graph with no verifiable parent can pass only on real samples (top-1 agreement,
the accuracy drop with labels); on random inputs alone it is inconclusive.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PARENT = "parent.onnx"
CALIBRATION = "calibration.npz"
KEEP_CALIBRATION_BYTES = 64 << 20  # calibration samples kept in the bundle up to this size
SCALE_RTOL = 1e-5  # recomputed scales agree to float32 rounding; a tampered scale is off by far more


def keep_parent(staging_dir: Path, fp32_file: Path) -> dict:
    """Move the verified float32 graph into the bundle as its parent; its record."""
    from bridge.precision.methods import sha256

    target = staging_dir / PARENT
    shutil.move(fp32_file, target)
    return {"file": PARENT, "sha256": sha256(target), "bytes": target.stat().st_size}


def keep_calibration(staging_dir: Path, feeds: dict) -> str | None:
    """Store the calibration samples in the bundle when they are small enough; the file name or None."""
    import numpy as np

    if sum(int(np.asarray(v).nbytes) for v in feeds.values()) > KEEP_CALIBRATION_BYTES:
        return None
    with open(staging_dir / CALIBRATION, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in feeds.items()})
    return CALIBRATION


def parent_of(bundle) -> Path | None:
    """The float32 parent a reduced-precision bundle carries (its hash was checked when it was opened)."""
    entry = (bundle.manifest.get("precision") or {}) if bundle is not None else {}
    parent = entry.get("parent") if isinstance(entry, dict) else None
    if not isinstance(parent, dict) or parent.get("file") != PARENT:
        return None
    path = bundle.path / PARENT
    return path if path.is_file() else None


def calibration_feeds(bundle, specs: list, given: str | None):
    """The calibration samples of a static int8 bundle: the ones it stores, else ``given`` (checked
    against the recorded sha256). Raises UsageError when they cannot be had."""
    from bridge.errors import UsageError
    from bridge.precision.methods import sha256
    from bridge.verdict.inputs import load_npz

    entry = bundle.manifest["precision"]
    calibration = entry.get("calibration") or {}
    if calibration.get("stored") == CALIBRATION and (bundle.path / CALIBRATION).is_file():
        return load_npz(bundle.path / CALIBRATION, specs)
    if given:
        if sha256(given) != calibration.get("sha256"):
            raise UsageError(
                f"--calibrate {given} is not the file this bundle was calibrated on (sha256 differs)",
                hint="give the calibration samples named in the bundle's manifest",
            )
        return load_npz(given, specs)
    raise UsageError(
        "the bundle's calibration samples are not stored in it (they were too large): the derivation "
        "cannot be checked without them",
        hint="pass --calibrate FILE.npz with the samples it names",
    )


def rederive(bundle, work: Path, specs: list, threads: int | None, calibrate: str | None) -> Path:
    """The reduced graph derived again from the bundle's parent with its recorded parameters."""
    from bridge.precision import methods

    entry = bundle.manifest["precision"]
    method = entry.get("method")
    feeds = calibration_feeds(bundle, specs, calibrate) if method == "static-qdq" else None
    work.mkdir(parents=True, exist_ok=True)
    out = work / "rederived.onnx"
    methods.derive(
        bundle.path / PARENT, out, entry["precision"], method, feeds, threads, replay=entry.get("settings") or {}
    )
    return out


def differences(expected_path: Path, actual_path: Path, precision: str, limit: int = 5) -> list[str]:
    """How the artifact differs from the derivation done again: [] when it is that derivation."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    expected, actual = onnx.load(str(expected_path)), onnx.load(str(actual_path))
    found: list[str] = []
    ops_e = [(n.op_type, n.domain) for n in expected.graph.node]
    ops_a = [(n.op_type, n.domain) for n in actual.graph.node]
    if ops_e != ops_a:
        return [
            f"its operators differ from the derivation's ({len(ops_a)} nodes against {len(ops_e)}; "
            f"first difference at node {next((i for i, (x, y) in enumerate(zip(ops_e, ops_a)) if x != y), min(len(ops_e), len(ops_a)))})"
        ]
    want = {t.name: t for t in expected.graph.initializer}
    have = {t.name: t for t in actual.graph.initializer}
    if set(want) != set(have):
        return [f"its tensors differ from the derivation's: {sorted(set(want) ^ set(have))[:5]}"]
    for name, t in want.items():
        a, b = numpy_helper.to_array(t), numpy_helper.to_array(have[name])
        if a.shape != b.shape or a.dtype != b.dtype:
            found.append(f"{name}: {b.dtype}{list(b.shape)}, the derivation gives {a.dtype}{list(a.shape)}")
        elif a.dtype.kind in "iu":  # quantized weights and zero points: within one quantum
            gap = int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max()) if a.size else 0
            if gap > 1:
                found.append(f"{name}: quantized values off by up to {gap} quanta from the derivation's")
        elif a.dtype == np.float16:  # the exact casts of the parent's weights
            if not np.array_equal(a.view(np.uint16), b.view(np.uint16)):
                diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                rel = diff / max(float(np.max(np.abs(a.astype(np.float64)))), 1e-30)
                found.append(
                    f"{name}: float16 values are not the casts of the parent's (off by up to {rel:.3g} of their scale)"
                )
        elif a.dtype.kind == "f":  # scales and the weights kept in float32
            scale = np.maximum(np.abs(a.astype(np.float64)), 1e-30)
            rel = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)) / scale)) if a.size else 0.0
            if rel > SCALE_RTOL:
                found.append(f"{name}: off by up to {rel:.3g} (relative) from the derivation's")
        if len(found) >= limit:
            break
    return found
