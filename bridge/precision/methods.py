"""Reduced-precision artifacts: an int8 or float16 graph derived from the verified float32 export, and
a graph's precision read back when it is verified.

Export (``--precision int8|fp16``): the float32 export is made and verified first, as always; only
when it passes is the reduced graph derived from it (ONNX Runtime's tools, bridge/frameworks/
ort_quantize.py), checked, and verified again against the same native outputs under the row of its
precision (bridge/verdict/policy.py), plus the calibration samples when there are some. The bundle holds
the reduced graph as its ``model.onnx``; the manifest records the precision, the method and why,
the quantizer's settings, the calibration file's sha256 and the float32 artifact's hash and verdict.

Which int8 method: with ``--calibrate FILE.npz`` (real samples) static QDQ quantization calibrated
on them; without, dynamic quantization of MatMul/Gemm, Attention and LSTM weights, which needs no
data. Random inputs are never used to calibrate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bridge.errors import BundleError, ConversionError, UsageError
from bridge.frameworks.onnx_ops import FLOAT16, QUANT_OPS

PRECISIONS = ("fp32", "fp16", "int8")


def method_for(precision: str, calibrate: str | None, optimize: str) -> tuple[str, str]:
    """(method, why) for a reduced-precision export."""
    if precision == "int8" and calibrate:
        return "static-qdq", (
            f"--calibrate {calibrate} given: static QDQ quantization calibrated on those samples "
            "(MinMax ranges of every activation), int8 weights per output channel"
        )
    if precision == "int8":
        return "dynamic", (
            "no --calibrate: dynamic quantization of MatMul/Gemm, Attention and LSTM weights, "
            "activations quantized at run time, no data needed (suits transformers and LSTMs; "
            "convolutions stay float32: give --calibrate with real samples for those)"
        )
    if optimize == "transformer":
        return "fp16-transformer", (
            "--optimize transformer: onnxruntime.transformers' float16 path, which knows "
            "its fused operators; float32 inputs and outputs kept"
        )
    return "fp16", (
        "float16 conversion of the graph, float32 inputs and outputs kept, numerically sensitive "
        "operators (reductions, exponentials, normalisations) kept in float32"
    )


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def calibration_samples(path: str, specs: list) -> tuple[dict, dict]:
    """Real samples for calibration from an .npz (one array per input, batch axis first), and the
    record the manifest keeps of them."""
    from bridge.verdict.inputs import load_npz

    feeds = load_npz(path, specs)
    nonfinite_samples(path, feeds)
    rows = {int(v.shape[0]) for v in feeds.values() if v.ndim}
    if len(rows) != 1 or 0 in rows:
        raise UsageError(
            f"--calibrate {path}: every array needs the same number of samples along its first axis "
            f"(found {sorted(rows) or 'scalars'})"
        )
    return feeds, {
        "file": str(path),
        "sha256": sha256(path),
        "samples": rows.pop(),
        "arrays": {k: [str(v.dtype), list(v.shape)] for k, v in feeds.items()},
    }


def nonfinite_samples(path, feeds: dict) -> None:
    """Refuse calibration samples holding NaN or Inf (exit 2, naming the file, each array and its count):
    a quantizer derives its ranges from them and fails deep inside ONNX Runtime ("scale issue"), or
    worse, calibrates on an infinite range."""
    import numpy as np

    bad = []
    for name, array in feeds.items():
        if array.dtype.kind in "fc":
            count = int(array.size - np.count_nonzero(np.isfinite(array)))
            if count:
                nan = int(np.count_nonzero(np.isnan(array)))
                bad.append(
                    f"{name} holds {count} non-finite value{'s' if count != 1 else ''} ({nan} NaN, {count - nan} Inf) of {array.size}"
                )
    if bad:
        from bridge.errors import InputError

        raise InputError(
            f"--calibrate {path}: " + "; ".join(bad),
            hint="calibration ranges come from these samples: drop or repair the rows holding NaN or Inf",
        )


def derive(
    fp32_path: Path,
    out_path: Path,
    precision: str,
    method: str,
    feeds: dict | None,
    threads: int | None,
    replay: dict | None = None,
) -> dict:
    """Write the reduced graph of the float32 file at ``fp32_path`` to ``out_path``; the settings used.
    ``replay``: the settings a bundle recorded, to derive the same graph again (a verification of the
    derivation, bridge/precision/provenance.py): no choice is made afresh."""
    from bridge.frameworks import ort_quantize as q

    replay = replay or {}
    symbolic = (
        replay.get("symbolic_shape_inference") if isinstance(replay.get("symbolic_shape_inference"), bool) else None
    )
    if method == "static-qdq":
        pre = out_path.with_name("preprocessed.onnx")
        try:
            info = q.preprocess(str(fp32_path), str(pre), symbolic)
            info.update(q.quantize_static_qdq(str(pre), str(out_path), feeds, threads=threads))
        finally:
            pre.unlink(missing_ok=True)
        return info
    if method == "dynamic":
        pre = out_path.with_name("preprocessed.onnx")
        try:
            info = q.preprocess(str(fp32_path), str(pre), symbolic)
            info.update(q.quantize_dynamic_int8(str(pre), str(out_path)))
        finally:
            pre.unlink(missing_ok=True)
        return info
    if method in ("fp16", "fp16-transformer"):
        block = replay.get("op_block_list")
        return q.convert_fp16(
            str(fp32_path),
            str(out_path),
            transformer=method == "fp16-transformer",
            threads=threads,
            block_list=list(block) if isinstance(block, list) and all(isinstance(b, str) for b in block) else None,
        )
    raise UsageError(f"no method {method!r} for --precision {precision}")


def run_native_chunked(model, feeds: dict, max_bytes: int = 64 << 20) -> dict:
    """The native model's outputs on many samples, in chunks of at most ``max_bytes`` of inputs
    (outputs joined along their first axis)."""
    import numpy as np

    rows = int(next(iter(feeds.values())).shape[0])
    row_bytes = max(1, sum(int(v[:1].nbytes) for v in feeds.values()))
    step = max(1, min(rows, max_bytes // row_bytes))
    if step >= rows:
        return model.run(feeds)
    parts = [model.run({k: v[i : i + step] for k, v in feeds.items()}) for i in range(0, rows, step)]
    return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def graph_precision(proto) -> tuple[str, str]:
    """(precision, evidence) of an ONNX graph: int8 when it holds quantization operators, fp16 when
    its weights are stored in float16, else fp32."""
    ops: dict[str, int] = {}

    def walk(nodes):
        for n in nodes:
            if n.op_type in QUANT_OPS:
                ops[n.op_type] = ops.get(n.op_type, 0) + 1
            for a in n.attribute:
                for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(g.node)

    walk(proto.graph.node)
    if ops:
        return "int8", ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))
    half = sum(1 for t in proto.graph.initializer if t.data_type == FLOAT16)
    if half:
        return "fp16", f"{half} float16 initializers"
    return "fp32", ""


def target_precision(manifest: dict | None, found: tuple, where) -> tuple[str, str | None]:
    """The precision whose policy row a verification applies, and a note about where it came from.

    A bundle says what bridge derived (manifest ``precision``); the graph must show it, or the bundle
    is refused (a manifest claiming int8 for a float32 graph would only loosen the check). A graph that
    is reduced although its manifest says float32 is judged by the strict float32 row. A bare ONNX
    file's precision is read from its graph. ``found``: (precision, evidence) of the graph."""
    found, evidence = found
    if manifest is None:
        if found == "fp32":
            return "fp32", None
        return found, (
            f"precision {found} read from the graph ({evidence}): the float32 model is compared with it "
            f"under the {found} row"
        )
    claimed = (manifest.get("precision") or {}).get("precision", "fp32")
    if claimed == "fp32":
        note = (
            None
            if found == "fp32"
            else (f"the graph looks {found} ({evidence}) but the manifest says float32: the strict float32 row applies")
        )
        return "fp32", note
    if found != claimed:
        raise BundleError(
            f"{where}: the manifest says precision {claimed}, the graph is "
            f"{found}" + (f" ({evidence})" if evidence else ""),
            hint="the manifest does not describe the model; re-export",
        )
    return claimed, None


def calibration_coverage(feeds: dict, runs: list) -> list[str]:
    """Float inputs whose generated cases go outside the span of the calibration samples: static
    quantization clips activations to what it saw, so such cases measure saturation, not the model's
    domain. One note per input, naming both spans and the declaration that would match."""
    import numpy as np

    notes = []
    for name, calib in feeds.items():
        calib = np.asarray(calib)
        if calib.dtype.kind != "f" or not calib.size:
            continue
        lo, hi = float(calib.min()), float(calib.max())
        values = [np.asarray(f[name]) for _, f, _ in runs if name in f and np.asarray(f[name]).size]
        if not values:
            continue
        g_lo, g_hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        margin = 0.05 * max(hi - lo, 1e-12)
        if g_lo < lo - margin or g_hi > hi + margin:
            notes.append(
                f"calibration: the samples of {name} span {lo:.4g}..{hi:.4g}, the generated cases "
                f"{g_lo:.4g}..{g_hi:.4g}; static int8 clips activations to the ranges it was calibrated on, so "
                f"cases outside them measure saturation: declare the input's real range "
                f"(--input-range {name}={lo:.4g}:{hi:.4g}) if that is its domain"
            )
    return notes


def manifest_entry(precision: str, method: str, why: str, settings: dict, calibration: dict | None, fp32: dict) -> dict:
    return {
        "precision": precision,
        "method": method,
        "why": why,
        "settings": settings,
        "calibration": calibration,
        "fp32": fp32,
    }


def check_manifest_entry(entry, bad) -> None:
    """Structure of a manifest's ``precision`` entry (bridge/artifact/bundle.py's validation)."""
    if entry is None:
        return
    if not isinstance(entry, dict) or entry.get("precision") not in PRECISIONS:
        raise bad(f"'precision' must be {{precision: {' | '.join(PRECISIONS)}, ...}}")
    cal = entry.get("calibration")
    if cal is not None and not (isinstance(cal, dict) and isinstance(cal.get("sha256"), str)):
        raise bad("'precision.calibration' must be {file, sha256, samples}")
    if cal is not None and cal.get("stored") not in (None, "calibration.npz"):
        raise bad("'precision.calibration.stored' names no file of the bundle")
    parent = entry.get("parent")
    if parent is not None and not (isinstance(parent, dict) and parent.get("file") == "parent.onnx"):
        raise bad("'precision.parent' must be {file: parent.onnx, sha256}")
    if not isinstance(entry.get("settings", {}), dict):
        raise bad("'precision.settings' must be a table")


def io_problem(fp32_io: tuple, reduced_io: tuple) -> str | None:
    """The reduced graph must take and return what the float32 one does (names, dtypes, ranks)."""
    for what, a, b in (("inputs", fp32_io[0], reduced_io[0]), ("outputs", fp32_io[1], reduced_io[1])):
        left = [(s.name, s.dtype, len(s.dims)) for s in a]
        right = [(s.name, s.dtype, len(s.dims)) for s in b]
        if left != right:
            return f"the reduced graph's {what} are {right}, the float32 graph's {left}"
    return None


def conversion_error(precision: str, problem: str) -> ConversionError:
    return ConversionError(f"--precision {precision}: {problem}", hint="export with --precision fp32")
