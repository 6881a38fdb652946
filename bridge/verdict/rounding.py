"""ONNX Runtime's own rounding, measured on a failing case: is the error larger than the runtime's
disagreement with itself?

A deep float32 network (fifty convolutions) or a random-init one driven to extreme activations
(constant images) can be ill-conditioned: tiny rounding differences grow through the layers. There a
correct export can fail the element test, and so can ONNX Runtime against itself. When an output
fails the element test on a case, the case is run again in ONNX Runtime with its graph optimizations
off (no fusions, no reordered arithmetic: the same graph, rounded differently). If every failing
element's error is within the element test's allowance plus twice the largest difference between
the two runs of that output (the native side rounds too), the difference from the native model is no larger than the runtime's own
rounding on that input: the result becomes inconclusive, with both figures, never a pass. A wrong
graph stays a failure: its error is far above its own rounding.

Measured (docs/coverage.md): keras.applications ResNet50, draw0: error 1.51e-4 of the output's scale,
ONNX Runtime against itself 1.39e-4; EfficientNetB0 on alternating 0/255 pixels: 12.0% and 12.7%.
Pure numpy here; the second session comes from the runner (``OrtRunner.unoptimized``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bridge.verdict.compare import FAIL, INCONCLUSIVE, OutputResult

ROUNDING_FACTOR = 2.0  # the native side's rounding as large as ONNX Runtime's: see judge()
VALUE_FAILURE = "values:"  # the element test's reason; other failures (shape, NaN, top-1) are not rounding


def candidates(results: list[OutputResult]) -> list[OutputResult]:
    """The results a rounding check could change: element-test failures of float outputs."""
    return [
        r
        for r in results
        if r.status == FAIL
        and r.reason.startswith(VALUE_FAILURE)
        and r.applied_atol is not None
        and r.tolerance is not None
        and not r.tolerance.row
    ]


def judge(result: OutputResult, ref, cand, other) -> OutputResult:
    """``result`` (an element-test failure of ``cand`` against ``ref``) given ``other``, the same
    graph's output with ONNX Runtime's optimizations off."""
    ref, cand, other = (np.asarray(a, dtype=np.float64) for a in (ref, cand, other))
    if not (ref.shape == cand.shape == other.shape) or not np.isfinite(other).all():
        return result
    spread = float(np.abs(cand - other).max()) if cand.size else 0.0
    if spread == 0.0:
        return replace(
            result,
            reason=result.reason + "; ONNX Runtime with graph optimizations off gives the same "
            "values, so this is not its rounding",
        )
    # Twice the spread: the native side rounds too. If ONNX Runtime's two runs are each within about
    # ``spread`` of the exact value, and the native model's rounding is of the same size, the two sides
    # can differ by about twice that (triangle inequality) without either being wrong.
    allowance = result.applied_atol + result.tolerance.rtol * np.abs(ref) + ROUNDING_FACTOR * spread
    scale = result.ref_abs_max or float(np.abs(ref).max()) or 1.0
    if (np.abs(cand - ref) <= allowance).all():
        return replace(
            result,
            status=INCONCLUSIVE,
            reason=(
                f"{result.reason}; but ONNX Runtime disagrees with itself as much on this input: with graph "
                f"optimizations off its output differs by up to {spread:.3g} ({spread / scale:.2g} of max|ref|), and "
                f"every failing element is within the tolerance plus twice that. The output is ill-conditioned here (rounding "
                f"grows through the network): not shown wrong, not shown right; try real inputs (--inputs) or "
                f"trained weights"
            ),
        )
    return replace(
        result,
        reason=result.reason + f"; ONNX Runtime against itself (graph optimizations off) differs "
        f"by at most {spread:.3g} ({spread / scale:.2g} of max|ref|): the "
        f"error is beyond its rounding",
    )


def recheck(
    results: list[OutputResult], first: int, feeds: dict, ref_out: dict, cand: dict, unoptimized
) -> dict | None:
    """Rejudge, in place, the element-test failures among ``results[first:]`` (one case's) against a run
    of ``unoptimized()`` (a runner of the same graph without graph optimizations, made on first use).
    Returns that run's outputs (None when nothing needed it or it could not be made)."""
    todo = {id(r) for r in candidates(results[first:])}
    other = _second_run(unoptimized, feeds) if todo else None
    if other is None:
        return None
    for i in range(first, len(results)):
        r = results[i]
        if id(r) in todo and r.name in other and r.name in cand and r.name in ref_out:
            results[i] = judge(r, ref_out[r.name], cand[r.name], other[r.name])
    return other


def native_noise(model, feeds: dict, out: dict) -> dict:
    """How far the native model's own outputs move when its float inputs move by about 1e-6 of their
    size (a few float32 ulps, a random sign per element): per output, an array of that movement. An ill-conditioned input (a
    deep network driven to extreme activations) moves its outputs far for such a nudge; there a
    difference from ONNX Runtime of the same size shows nothing about the export."""
    rng = np.random.default_rng(0)
    nudged = {}
    for k, v in feeds.items():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            step = np.float32(2.0**-20) if v.dtype == np.float32 else np.finfo(v.dtype).eps * 8
            v = (v * (1 + step * rng.choice([-1.0, 1.0], size=v.shape))).astype(v.dtype)
        nudged[k] = v
    if all(np.array_equal(nudged[k], np.asarray(feeds[k])) for k in feeds):
        return {}
    again = model.run(nudged)
    return {
        k: np.abs(np.asarray(out[k], dtype=np.float64) - np.asarray(again[k], dtype=np.float64))
        for k in out
        if k in again
        and np.asarray(out[k]).dtype.kind == "f"
        and np.asarray(out[k]).shape == np.asarray(again[k]).shape
    }


def recheck_noise(results: list[OutputResult], first: int, ref_out: dict, cand: dict, noise: dict) -> None:
    """Rejudge, in place, the element-test failures among ``results[first:]`` against the native model's
    own movement under a nudge of its inputs by 1e-6 of their size (``native_noise``): a failure within the tolerance
    plus four times that movement is inconclusive (the input is ill-conditioned), never a pass."""
    todo = {id(r) for r in candidates(results[first:])}
    for i in range(first, len(results)):
        r = results[i]
        if id(r) not in todo or r.name not in noise or r.name not in cand:
            continue
        ref = np.asarray(ref_out[r.name], dtype=np.float64)
        got = np.asarray(cand[r.name], dtype=np.float64)
        spread = noise[r.name]
        if spread.shape != ref.shape or not spread.any():
            continue
        allowance = r.applied_atol + r.tolerance.rtol * np.abs(ref) + 4.0 * spread
        if (np.abs(got - ref) <= allowance).all():
            results[i] = replace(
                r,
                status=INCONCLUSIVE,
                reason=(
                    f"{r.reason}; but the native model moves as much when its inputs move by 1e-6 of their size (up to "
                    f"{float(spread.max()):.3g}): the input is ill-conditioned, not evidence either way"
                ),
            )


# ONNX Runtime within this many times float32's own rounding on a row: ill-conditioned. On chaotic rows
# (random-init EfficientNet-B0's search rows) ONNX Runtime's distance from float64 measured up to 4.2x
# the largest of the other measures; a wrong graph is also wrong on the case's well-conditioned rows.
EXACT_FACTOR = 8.0
# On a row where float32's own rounding already reaches the float32 row's tolerance scale (1e-4 of the
# row's largest float64 value), the native model amplifies rounding about a thousandfold: there kernels
# less exact than the native ones (ONNX Runtime's approximate Sigmoid/Tanh/Erf) are amplified alike. A
# random-init EfficientNet-B0 on a constant image: native float32 0.035 off float64, ONNX Runtime 1.74
# (50x), its two runs 0.016 apart; the output's scale 315.
CHAOTIC_FACTOR = 64.0
CHAOTIC_SCALE = 1e-4
# A row is ill-conditioned only where float32's own rounding reaches this share of its scale (about a
# hundred float32 ulps): on a well-conditioned row a tolerance tighter than float32 can meet fails as asked.
ILL_SCALE = 1e-5


class ExactRun:
    """The native model's outputs in float64 on one case's inputs (``NativeModel.run_exact``), computed on
    the first call: only a case with an element-test failure pays for it."""

    def __init__(self, model, feeds: dict):
        self._model, self._feeds, self._out, self._done = model, feeds, None, False

    def __call__(self) -> dict | None:
        if not self._done:
            self._done = True
            try:
                self._out = self._model.run_exact(self._feeds)
            except Exception:  # noqa: BLE001 - optional evidence: without it the verdict stands as it is
                self._out = None
            self._feeds = None
        return self._out


def _rows(a: np.ndarray) -> np.ndarray:
    """The largest value of each row (the first axis: one input row of a batch), or of the whole array."""
    if a.ndim == 0 or a.shape[0] == 0:
        return a.reshape(1, -1).max(axis=1) if a.size else np.zeros(1)
    return a.reshape(a.shape[0], -1).max(axis=1) if a.size else np.zeros(a.shape[0])


def judge_exact(result: OutputResult, ref, cand, truth, other=None) -> OutputResult:
    """``result`` (an element-test failure of ``cand`` against ``ref``, the native float32 output) given
    ``truth``, the native model's output in float64, and ``other``, ONNX Runtime's run of the same graph
    with optimizations off (or None). Float32 rounding on a row is measured twice: how far the native
    float32 run is from float64, and how far ONNX Runtime moves against itself, both on the same inputs.
    (Not the movement under a nudge of the inputs: on a model with a step, Round or a threshold, a nudge
    jumps across it, and a row's largest jump would excuse a wrong step: the mutation suite's ties kind.)
    Where, on every failing row, ONNX Runtime is within the tolerance plus EXACT_FACTOR times the larger
    measure of the float64 result (CHAOTIC_FACTOR where that measure reaches CHAOTIC_SCALE of the row), and
    that measure reaches ILL_SCALE of the row (a tolerance tighter than float32 is not ill-conditioning),
    the input is ill-conditioned (rounding grows through the network): the difference shows nothing
    about the export, inconclusive, never a pass. Otherwise the failure stands, with the distances from
    the float64 result."""
    ref, cand, truth = (np.asarray(a, dtype=np.float64) for a in (ref, cand, truth))
    if not (ref.shape == cand.shape == truth.shape) or not np.isfinite(truth).all() or not ref.size:
        return result
    native, onnx = _rows(np.abs(ref - truth)), _rows(np.abs(cand - truth))
    spread = np.zeros_like(native)
    if other is not None:
        other = np.asarray(other, dtype=np.float64)
        if other.shape == cand.shape and np.isfinite(other).all():
            spread = _rows(np.abs(cand - other))
    rounding = np.maximum(native, spread)
    limit = result.applied_atol + result.tolerance.rtol * np.abs(ref)
    failing = _rows((np.abs(cand - ref) > limit).astype(np.float64)) > 0
    if not failing.any():
        return result
    scale = _rows(np.abs(truth))
    factor = np.where(rounding >= CHAOTIC_SCALE * scale, CHAOTIC_FACTOR, EXACT_FACTOR)
    allowance = result.applied_atol + result.tolerance.rtol * scale + factor * rounding
    worst_native, worst_onnx = float(native[failing].max()), float(onnx[failing].max())
    worst_spread = float(spread[failing].max())
    ill = rounding >= ILL_SCALE * scale
    if (onnx[failing] <= allowance[failing]).all() and ill[failing].all() and float(rounding[failing].min()) > 0:
        itself = (
            f", ONNX Runtime against itself (optimizations off) by up to {worst_spread:.3g}" if worst_spread else ""
        )
        return replace(
            result,
            status=INCONCLUSIVE,
            reason=(
                f"{result.reason}; but float32 itself is that far from exact arithmetic here: run in float64, the "
                f"native model differs from its own float32 result by up to {worst_native:.3g}{itself}, and on "
                f"every failing row ONNX Runtime is within {float(factor[failing].max()):g}x float32's own rounding "
                f"there of the float64 result (up to {worst_onnx:.3g}). The input is ill-conditioned (rounding "
                f"grows through the network): not shown wrong, not shown right"
            ),
        )
    return replace(
        result,
        reason=result.reason + f"; against the native model run in float64, ONNX Runtime is off by up to "
        f"{worst_onnx:.3g} and the native float32 run by {worst_native:.3g}: the error is the export's",
    )


def recheck_exact(
    results: list[OutputResult],
    first: int,
    ref_out: dict,
    cand: dict,
    exact,
    other: dict | None = None,
) -> None:
    """Rejudge, in place, the element-test failures among ``results[first:]`` (one case's) against the
    native model's float64 outputs (``exact``: an ExactRun, called only when there is a failure) and
    ONNX Runtime's run without optimizations (``other``, from ``recheck``)."""
    todo = {id(r) for r in candidates(results[first:])}
    truth = exact() if todo and exact is not None else None
    if not truth:
        return
    other = other or {}
    for i in range(first, len(results)):
        r = results[i]
        if id(r) in todo and r.name in truth and r.name in cand and r.name in ref_out:
            results[i] = judge_exact(r, ref_out[r.name], cand[r.name], truth[r.name], other.get(r.name))


def recheck_detections(results: list, first: int, feeds: dict, cand: dict, unoptimized, policy, device: str) -> None:
    """Rejudge, in place, failing detection groups among ``results[first:]``: when ONNX Runtime's own two
    runs of the graph (optimizations on and off) disagree on the same detections as much (a box or a
    score set moved, a detection in or out at the cut-off), the difference from the native model is
    within the runtime's own rounding on this input: inconclusive, never a pass. A wrong detection
    head stays a failure: the runtime agrees with itself on it."""
    from bridge.verdict.compare import DETECTION_RULE, compare_detections

    todo = [i for i in range(first, len(results)) if results[i].rule == DETECTION_RULE and results[i].status == FAIL]
    other = _second_run(unoptimized, feeds) if todo else None
    if other is None:
        return
    for i in todo:
        r = results[i]
        trio = _trio(r.name)
        if trio is None or not all(n in cand and n in other for n in trio):
            continue
        prefix = r.name[: -len("detections")] if r.name.endswith("detections") else ":"
        itself = compare_detections(prefix, trio, cand, other, policy, device, r.case)
        if itself.status == FAIL:
            results[i] = replace(
                r,
                status=INCONCLUSIVE,
                reason=(
                    f"{r.reason}; but ONNX Runtime disagrees with itself as much on these detections (graph optimizations "
                    f"off: {itself.reason[:160]}): a cut-off or a near tie decided by rounding, not shown wrong"
                ),
            )


def _trio(name: str):
    """The (boxes, scores, labels) outputs a detection result is about, from its name."""
    if name.startswith("detections(") and name.endswith(")"):
        parts = [p.strip() for p in name[len("detections(") : -1].split(",")]
        return tuple(parts) if len(parts) == 3 else None
    if name.endswith("detections"):
        prefix = name[: -len("detections")]
        return tuple(prefix + p for p in ("boxes", "scores", "labels"))
    return None


def _second_run(unoptimized, feeds: dict) -> dict | None:
    """The same graph's outputs with ONNX Runtime's optimizations off, or None when that run cannot be
    made (the verdict then stands as it was)."""
    try:
        return unoptimized().run(feeds)
    except Exception:  # noqa: BLE001
        return None
