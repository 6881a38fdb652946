"""Pure numpy comparison of reference outputs (the native framework) with candidate outputs (ONNX).

Fails closed: names, count, shapes (exactly, no broadcasting) and dtypes are checked before values;
NaN/Inf fail unless the policy allows them and their positions agree; integers and bools are
compared exactly as integers; a reference that cannot expose an error (all zeros, constant, below
the atol, empty) makes the comparison inconclusive, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bridge.verdict import detections
from bridge.verdict.policy import Policy, Tolerance
from bridge.verdict.status import FAIL, INCONCLUSIVE, PASS
from bridge.verdict.status import verdict as _verdict


@dataclass(frozen=True)
class OutputResult:
    name: str
    status: str  # pass | fail | inconclusive
    reason: str
    case: str = ""
    device: str = "cpu"
    ref_shape: tuple | None = None
    cand_shape: tuple | None = None
    ref_dtype: str | None = None
    cand_dtype: str | None = None
    tolerance: Tolerance | None = None
    size: int = 0
    fail_count: int = 0
    fail_fraction: float | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    p99_abs: float | None = None
    max_rel: float | None = None
    mean_rel: float | None = None
    p99_rel: float | None = None
    rel_norm: float | None = None
    applied_atol: float | None = None  # the absolute term applied: atol + scale_atol * max|reference|
    needed_atol: float | None = None  # smallest atol that passes at the applied rtol
    needed_rtol: float | None = None  # smallest rtol that passes at the applied atol
    ref_abs_max: float | None = None
    worst_index: tuple | None = None
    worst_ref: float | None = None
    worst_cand: float | None = None
    top1_agreement: float | None = None
    # Histogram of log10(abs error) for plots: bin edges (decades) and counts; exact zeros counted apart.
    error_histogram: dict | None = None
    ignored: int = 0  # elements not compared: padded positions of an attention mask
    rule: str = ""  # a comparison rule other than the element test (detections), for reports
    seconds: float | None = None  # ONNX Runtime's run of the case plus the comparison, shared by its outputs
    n_cases: int = 1  # in a summary: how many checks (cases) its figures were taken over
    hist_cases: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def kind(self) -> str:
        """What went wrong, for machines: values, shape, dtype, non-finite, missing, extra, vacuous,
        top-1, runtime, nondeterministic; '' for a pass. Every reason starts with it."""
        if self.status == PASS:
            return ""
        head = self.reason.split(":", 1)[0].strip()
        return "runtime" if head.startswith("ONNX Runtime failed") else head

    def to_json(self) -> dict:
        return {**fields_json(self), "passed": self.passed, "kind": self.kind}


def fields_json(obj) -> dict:
    """A result dataclass's fields as JSON values: nested results via their to_json, tuples as
    lists, inf/nan as strings."""
    out = {}
    for key, value in obj.__dict__.items():
        if hasattr(value, "to_json"):
            value = value.to_json()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, float):
            value = json_float(value)
        out[key] = value
    return out


def json_float(x: float | None):
    """JSON has no inf/nan: they are written as strings."""
    if x is None:
        return None
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dtype_name(a: np.ndarray) -> str:
    return a.dtype.name


def compare_outputs(
    reference: dict,
    candidate: dict,
    policy: Policy,
    device: str = "cpu",
    case: str = "",
    ignore: dict | None = None,
    structural: dict | None = None,
) -> list[OutputResult]:
    """One result per output name in either side, reference order first, then extras. ``ignore``:
    output name -> boolean array of its shape, True where an element is not compared (a padded
    position where the native model is undefined). ``structural``: detection groups recognised by
    shape over every case of the run (``detection_groups``), beside those recognised by name."""
    ignore = ignore or {}
    results: list[OutputResult] = []
    grouped = detections.groups([n for n in reference if n in candidate])
    grouped.update({k: trio for k, trio in (structural or {}).items() if all(n in candidate for n in trio)})
    for prefix, trio in grouped.items():
        results.append(compare_detections(prefix, trio, reference, candidate, policy, device, case))
    handled = {n for trio in grouped.values() for n in trio}
    for name, ref in reference.items():
        if name in handled:
            continue
        if name not in candidate:
            results.append(
                OutputResult(
                    name,
                    FAIL,
                    f"missing: the ONNX model has no output {name!r} (it has {sorted(candidate)})",
                    case,
                    device,
                    ref_shape=tuple(np.shape(ref)),
                    ref_dtype=_dtype_name(np.asarray(ref)),
                )
            )
            continue
        ref, cand = np.asarray(ref), np.asarray(candidate[name])
        skip = ignore.get(name)
        if skip is not None and skip.shape == ref.shape == cand.shape and skip.any():
            ref, cand = np.where(skip, 0, ref).astype(ref.dtype), np.where(skip, 0, cand).astype(cand.dtype)
            result = compare_one(name, ref, cand, policy, device, case)
            results.append(replace(result, ignored=int(skip.sum())))
            continue
        results.append(compare_one(name, ref, cand, policy, device, case))
    for name in candidate:
        if name not in reference:
            cand = np.asarray(candidate[name])
            results.append(
                OutputResult(
                    name,
                    FAIL,
                    f"extra: the ONNX model has an output {name!r} the reference does not produce "
                    f"(reference outputs: {sorted(reference)})",
                    case,
                    device,
                    cand_shape=tuple(cand.shape),
                    cand_dtype=_dtype_name(cand),
                )
            )
    return results


DETECTION_RULE = (
    f"order-insensitive matching of detections: same label, IoU >= {detections.MIN_IOU}, box and "
    "score within tolerance; a detection without a partner is excused only at the score cut-off"
)


def compare_detections(
    prefix: str, trio: tuple, reference: dict, candidate: dict, policy: Policy, device: str, case: str
) -> OutputResult:
    """One result for a group of detection outputs (boxes, scores, labels): see bridge/verdict/detections.py."""
    boxes, scores, labels = trio
    rb, cb = np.asarray(reference[boxes]), np.asarray(candidate[boxes])
    box_tol = policy.tolerance(boxes, rb.dtype.name, device)
    score_tol = policy.tolerance(scores, np.asarray(reference[scores]).dtype.name, device)
    got = detections.compare(
        {p: reference[n] for p, n in zip(detections.PARTS, trio)},
        {p: candidate[n] for p, n in zip(detections.PARTS, trio)},
        box_tol,
        score_tol,
    )
    name = f"{prefix}detections" if not prefix.endswith(":") else f"detections({', '.join(trio)})"
    return OutputResult(
        name,
        got["status"],
        got["reason"],
        case,
        device,
        ref_shape=tuple(rb.shape),
        cand_shape=tuple(cb.shape),
        ref_dtype=rb.dtype.name,
        cand_dtype=cb.dtype.name,
        tolerance=box_tol,
        size=int(rb.shape[0]) if rb.ndim else 0,
        fail_count=0 if got["status"] != "fail" else max(1, got.get("unpaired_ref", 0)),
        max_abs=got.get("max_box_err"),
        applied_atol=got.get("box_atol"),
        rule=DETECTION_RULE,
    )


def compare_one(
    name: str, ref: np.ndarray, cand: np.ndarray, policy: Policy, device: str = "cpu", case: str = ""
) -> OutputResult:
    tol = policy.tolerance(name, ref.dtype.name, device)
    head = dict(
        name=name,
        case=case,
        device=device,
        ref_shape=tuple(ref.shape),
        cand_shape=tuple(cand.shape),
        ref_dtype=_dtype_name(ref),
        cand_dtype=_dtype_name(cand),
        tolerance=tol,
        size=int(ref.size),
    )
    if ref.shape != cand.shape:
        return OutputResult(
            status=FAIL, reason=f"shape: reference {tuple(ref.shape)} vs ONNX {tuple(cand.shape)}", **head
        )
    if ref.dtype != cand.dtype:
        return OutputResult(status=FAIL, reason=f"dtype: reference {ref.dtype.name} vs ONNX {cand.dtype.name}", **head)
    if ref.size == 0:
        return OutputResult(status=INCONCLUSIVE, reason="vacuous: empty output, nothing to compare", **head)
    if ref.dtype.kind in "biu":
        return _compare_exact(ref, cand, policy, head)
    if ref.dtype.kind == "c":
        return OutputResult(status=FAIL, reason="dtype: complex outputs are not supported", **head)
    return _compare_float(ref.astype(np.float64), cand.astype(np.float64), tol, policy, head)


def _compare_exact(ref, cand, policy, head) -> OutputResult:
    # Never through float: 2**62 + 1 and 2**62 are different integers.
    bad = ref != cand
    n_bad = int(np.count_nonzero(bad))
    stats = dict(fail_count=n_bad, fail_fraction=n_bad / ref.size, needed_atol=0.0, needed_rtol=0.0)
    if ref.dtype.kind != "b":
        diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64)) if n_bad else np.zeros(1)
        stats.update(max_abs=float(diff.max()), ref_abs_max=float(np.abs(ref.astype(np.float64)).max()))
        if n_bad:
            stats["needed_atol"] = float(diff.max())
    if n_bad:
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), ref.shape))
        return OutputResult(
            status=FAIL,
            reason=f"values: {n_bad} of {ref.size} {ref.dtype.name} elements differ (exact match required); "
            f"first at {list(idx)}: reference {ref[idx].item()} vs ONNX {cand[idx].item()}",
            worst_index=idx,
            worst_ref=float(ref[idx]),
            worst_cand=float(cand[idx]),
            **stats,
            **head,
        )
    return OutputResult(
        status=PASS,
        reason="",
        max_abs=0.0 if ref.dtype.kind != "b" else None,
        **{k: v for k, v in stats.items() if k != "max_abs"},
        **head,
    )


def _compare_float(ref, cand, tol: Tolerance, policy: Policy, head) -> OutputResult:
    ref_bad = ~np.isfinite(ref)
    cand_bad = ~np.isfinite(cand)
    if ref_bad.any() or cand_bad.any():
        where = f"reference has {int(ref_bad.sum())} NaN/Inf, ONNX has {int(cand_bad.sum())}"
        if not tol.allow_nonfinite:
            return OutputResult(
                status=FAIL,
                reason=f"non-finite: {where} (allow with --allow-nonfinite if expected)",
                fail_count=int((ref_bad | cand_bad).sum()),
                **head,
            )
        same_place = np.array_equal(ref_bad, cand_bad)
        same_value = same_place and np.array_equal(ref[ref_bad], cand[cand_bad], equal_nan=True)
        if not same_value:
            return OutputResult(
                status=FAIL,
                reason=f"non-finite: {where}, at different positions or values",
                fail_count=int((ref_bad ^ cand_bad).sum()),
                **head,
            )
        keep = ~ref_bad
        ref, cand = ref[keep], cand[keep]
        if ref.size == 0:
            return OutputResult(
                status=INCONCLUSIVE, reason="non-finite: every element is NaN/Inf on both sides", **head
            )
    abs_err = np.abs(cand - ref)
    mag = np.abs(ref)
    atol = tol.atol + tol.scale_atol * float(mag.max())  # the absolute part, scaled to the output
    allowed = atol + tol.rtol * mag
    failing = abs_err > allowed
    n_fail = int(np.count_nonzero(failing))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(mag > 0, abs_err / np.where(mag > 0, mag, 1.0), np.where(abs_err > 0, np.inf, 0.0))
        over = abs_err - atol
        need_rtol_el = np.where(over > 0, np.where(mag > 0, over / np.where(mag > 0, mag, 1.0), np.inf), 0.0)
    ref_norm = float(np.linalg.norm(ref))
    err_norm = float(np.linalg.norm(cand - ref))
    worst = int(np.argmax(abs_err - allowed))
    worst_idx = tuple(int(i) for i in np.unravel_index(worst, ref.shape)) if ref.ndim else ()
    stats = dict(
        applied_atol=atol,
        fail_count=n_fail,
        fail_fraction=n_fail / ref.size,
        max_abs=float(abs_err.max()),
        mean_abs=float(abs_err.mean()),
        p99_abs=float(np.percentile(abs_err, 99)),
        max_rel=float(rel.max()),
        mean_rel=float(np.mean(rel)) if np.isfinite(rel).all() else math.inf,
        p99_rel=_percentile(rel, 99),
        rel_norm=err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else math.inf),
        needed_atol=float(max(0.0, (abs_err - tol.rtol * mag).max())),
        needed_rtol=float(need_rtol_el.max()),
        ref_abs_max=float(mag.max()),
        worst_index=worst_idx,
        worst_ref=float(ref.reshape(-1)[worst]),
        worst_cand=float(cand.reshape(-1)[worst]),
        top1_agreement=_top1(ref, cand),
        error_histogram=error_histogram(abs_err),
    )
    if n_fail:
        return OutputResult(
            status=FAIL,
            reason=f"values: {n_fail} of {ref.size} elements ({100 * n_fail / ref.size:.3g}%) outside "
            f"atol={atol:.3g}{_scale_note(tol, mag)} + rtol={tol.rtol:g}*|ref|; max abs error {stats['max_abs']:.3g} at "
            f"{list(worst_idx)} (reference {stats['worst_ref']:.6g}, ONNX {stats['worst_cand']:.6g})",
            **stats,
            **head,
        )
    if tol.rel_norm is not None and stats["rel_norm"] > tol.rel_norm:
        return OutputResult(
            status=FAIL,
            reason=f"values: relative error norm ||onnx - ref|| / ||ref|| = {stats['rel_norm']:.3g}, above the "
            f"{tol.row} bound {tol.rel_norm:g}",
            **stats,
            **head,
        )
    floor = top1_floor(tol, policy, head["case"])
    if floor is not None and stats["top1_agreement"] is not None and stats["top1_agreement"] < floor:
        where = " on the real samples" if tol.min_top1 is not None else ""
        return OutputResult(
            status=FAIL,
            reason=f"top-1: argmax agrees on {100 * stats['top1_agreement']:.2f}% of rows{where}, "
            f"the policy requires {100 * floor:.2f}%",
            **stats,
            **head,
        )
    vacuous = vacuous_reason(ref, tol)
    if vacuous:
        return OutputResult(status=INCONCLUSIVE, reason=vacuous, **stats, **head)
    return OutputResult(status=PASS, reason="", **stats, **head)


REAL_DATA = "data"  # the label of the real-samples case (--samples, or --calibrate at export)


def top1_floor(tol: Tolerance, policy: Policy, case: str) -> float | None:
    """The top-1 agreement an output must reach on this case. A reduced-precision row judges top-1 on
    the real samples only: seeded random inputs put near-ties between classes everywhere, which int8
    rounding flips without being wrong. Otherwise --min-top1 applies to every case."""
    if tol.min_top1 is not None or tol.row:
        return tol.min_top1 if case == REAL_DATA else None
    return policy.min_top1_agreement


def _rel_norm(diff: np.ndarray, ref: np.ndarray) -> float:
    ref_norm = float(np.linalg.norm(ref))
    err_norm = float(np.linalg.norm(diff))
    return err_norm / ref_norm if ref_norm > 0 else (0.0 if err_norm == 0 else math.inf)


def _scale_note(tol: Tolerance, mag: np.ndarray) -> str:
    if not tol.scale_atol:
        return ""
    return f" ({tol.atol:g} + {tol.scale_atol:g}*max|ref| {float(mag.max()):.3g})"


def _percentile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    if finite.size < values.size and (values.size - finite.size) / values.size > 1 - q / 100:
        return math.inf
    return float(np.percentile(finite, q)) if finite.size else math.inf


def error_histogram(abs_err: np.ndarray) -> dict:
    """Counts of abs errors per decade from 1e-12 to 1e2, plus exact zeros and anything larger."""
    edges = list(range(-12, 3))
    flat = abs_err.reshape(-1)
    zeros = int(np.count_nonzero(flat == 0))
    nz = flat[flat > 0]
    logs = np.log10(nz) if nz.size else np.zeros(0)
    counts = (
        np.histogram(np.clip(logs, edges[0], edges[-1] - 1e-9), bins=edges)[0] if nz.size else np.zeros(len(edges) - 1)
    )
    return {"log10_edges": edges, "counts": [int(c) for c in counts], "zeros": zeros}


def vacuous_reason(ref: np.ndarray, tol: Tolerance) -> str | None:
    """Why a passing comparison against this reference proves nothing, or None."""
    hint = HINT
    mag = float(np.abs(ref).max())
    if mag == 0.0:
        return f"vacuous: the reference output is all zeros, any candidate within atol={tol.atol:g} passes; {hint}"
    if mag <= tol.atol:
        return (
            f"vacuous: every reference value is at most {mag:.3g}, below atol={tol.atol:g}, "
            f"so any candidate near zero passes; {hint}"
        )
    if ref.size > 1 and float(ref.max()) == float(ref.min()):
        return f"vacuous: the reference output is constant ({float(ref.flat[0]):.6g}); {hint}"
    return None


HINT = "try other inputs (--input-range, --inputs real.npz) or trained weights"


def cross_case_vacuity(
    runs: list[tuple], results: list[OutputResult], policy: Policy, device: str
) -> list[OutputResult]:
    """Passing results of outputs that no comparison over these cases could have failed, turned
    inconclusive. ``runs`` are (case, feeds, reference outputs). Two rules, over every case:

    * the tolerance band covers the output's whole spread: some constant lies within tolerance of
      every reference value of every case, so a graph returning that constant would pass;
    * a float output moves less than the tolerance between different inputs of the same shape, so
      a graph that ignores its inputs would pass.
    """
    by_name: dict[str, list[tuple]] = {}
    for case, feeds, outs in runs:
        for name, arr in outs.items():
            by_name.setdefault(name, []).append((case.label, feeds, np.asarray(arr)))
    reasons = {}
    for name, refs in by_name.items():
        if any(a.size == 0 or (a.dtype.kind in "fc" and not np.isfinite(a).all()) for _, _, a in refs):
            continue
        reason = _constant_passes(name, refs, policy, device)
        if not reason and refs[0][2].dtype.kind in "fc":
            # Integer and bool outputs (class ids, masks) take few values: two draws agreeing is no sign
            # that the output ignores its input, while a float output that does not move is.
            reason = _input_independent(name, refs, policy, device)
        if reason:
            reasons[name] = reason
    return [
        replace(r, status=INCONCLUSIVE, reason=reasons[r.name]) if r.status == PASS and r.name in reasons else r
        for r in results
    ]


def _band(ref: np.ndarray, tol: Tolerance) -> np.ndarray:
    mag = np.abs(ref.astype(np.float64))
    return tol.atol + tol.scale_atol * float(mag.max()) + tol.rtol * mag


def _constant_passes(name: str, refs: list[tuple], policy: Policy, device: str) -> str | None:
    if len(refs) < 2:
        return None  # one case: the per-case rules (constant, all zeros, below atol) already apply
    lo, hi = -math.inf, math.inf
    for _, _, ref in refs:
        if ref.dtype.kind in "biu":
            values = ref.astype(np.float64)
            band = np.zeros_like(values)
        else:
            values = ref.astype(np.float64)
            band = _band(ref, policy.tolerance(name, ref.dtype.name, device))
        lo, hi = max(lo, float((values - band).max())), min(hi, float((values + band).min()))
        if lo > hi:
            return None
    bound = policy.tolerance(name, refs[0][2].dtype.name, device).rel_norm
    if bound is not None and refs[0][2].dtype.kind in "fc":
        constant = (lo + hi) / 2  # a reduced-precision row also bounds the error norm: could that fail it?
        if any(_rel_norm(r.astype(np.float64) - constant, r.astype(np.float64)) > bound for _, _, r in refs):
            return None
    low = min(float(r.min()) for _, _, r in refs)
    high = max(float(r.max()) for _, _, r in refs)
    return (
        f"vacuous: over all {len(refs)} cases the output spans only {low:.6g}..{high:.6g}, inside the tolerance "
        f"band: a constant {(lo + hi) / 2:.6g} would pass every comparison; {HINT}"
    )


def _input_independent(name: str, refs: list[tuple], policy: Policy, device: str) -> str | None:
    by_shape: dict[tuple, list[tuple]] = {}
    for item in refs:
        by_shape.setdefault(item[2].shape, []).append(item)
    compared, largest = 0, (0.0, "", "", 0.0)
    for group in by_shape.values():
        first_label, first_feeds, first = group[0]
        band = (
            np.zeros(first.shape)
            if first.dtype.kind in "biu"
            else _band(first, policy.tolerance(name, first.dtype.name, device))
        )
        for label, feeds, ref in group[1:]:
            if _same_feeds(first_feeds, feeds):
                continue
            diff = np.abs(ref.astype(np.float64) - first.astype(np.float64))
            if (diff > band).any():
                return None
            bound = policy.tolerance(name, ref.dtype.name, device).rel_norm
            if bound is not None and _rel_norm(diff, ref.astype(np.float64)) > bound:
                return None  # the error-norm bound of a reduced-precision row would fail such a graph
            compared += 1
            if float(diff.max()) >= largest[0]:
                largest = (float(diff.max()), first_label, label, float(band.max()))
    if not compared:
        return None
    change, a, b, band_max = largest
    return (
        f"vacuous: the output moves less than the tolerance between different inputs (largest change "
        f"{change:.3g}, between cases {a} and {b}; tolerance up to {band_max:.3g}): a graph that ignores its "
        f"inputs would pass; {HINT}"
    )


def _same_feeds(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).shape == np.asarray(b[k]).shape and np.array_equal(a[k], b[k]) for k in a
    )


def _top1(ref: np.ndarray, cand: np.ndarray) -> float | None:
    """Argmax agreement over rows, for classifier-shaped outputs (N, C) with C >= 2."""
    if ref.ndim != 2 or ref.shape[1] < 2:
        return None
    return float(np.mean(np.argmax(ref, axis=1) == np.argmax(cand, axis=1)))


def outputs_equal(a: dict, b: dict) -> list[str]:
    """Names whose arrays are not bit-identical between two runs of the same side (NaN equal)."""
    names = sorted(set(a) | set(b))
    diff = []
    for n in names:
        if n not in a or n not in b:
            diff.append(n)
            continue
        x, y = np.asarray(a[n]), np.asarray(b[n])
        if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
            diff.append(n)
    return diff


def summarize(results: list[OutputResult]) -> dict[str, OutputResult]:
    """One summary per output and device, by the rule of ``bridge.verdict.results``: the check shown, with
    errors, smallest passing tolerances, failing elements and histograms taken over every case.
    Keyed by output name (``name (device)`` when several devices were compared)."""
    from bridge.verdict.results import aggregate, groups, shown

    several = len({r.device for r in results}) > 1
    out = {}
    for checks in groups(results):
        row = replace(shown(checks), **aggregate(checks))
        out[f"{row.name} ({row.device})" if several else row.name] = row
    return out


def detection_groups(runs: list) -> dict:
    """Detection outputs recognised by their structure (detections.structural) on every case of a run,
    with more than one detection in at least one: decided once, not case by case, so that one lucky
    row of random numbers is never taken for a box."""
    found = None
    rows = 0
    for _, _, outs in runs:
        named = {n for trio in detections.groups(outs).values() for n in trio}
        here = detections.structural({n: a for n, a in outs.items() if n not in named})
        found = here if found is None else {k: v for k, v in found.items() if here.get(k) == v}
        rows = max([rows] + [int(np.asarray(outs[t[0]]).shape[0]) for t in here.values()])
        if not found:
            return {}
    return found if found and rows > 1 else {}


def verdict(results: list[OutputResult]) -> str:
    """The verdict over results: that of their summary rows (bridge/verdict/status.py)."""
    return _verdict(r.status for r in summarize(results).values())


def dataset_metrics(reference: dict, candidate: dict, labels: np.ndarray | None) -> dict:
    """Per classifier-shaped output (N, C): top-1 agreement between the sides and, with labels,
    the accuracy of each side. A regression that only shows over a dataset shows here."""
    out = {}
    for name, ref in reference.items():
        ref = np.asarray(ref)
        cand = np.asarray(candidate.get(name)) if name in candidate else None
        if cand is None or ref.ndim != 2 or ref.shape[1] < 2 or cand.shape != ref.shape or ref.dtype.kind != "f":
            continue
        r, c = np.argmax(ref, axis=1), np.argmax(cand, axis=1)
        entry = {
            "rows": int(ref.shape[0]),
            "top1_agreement": float(np.mean(r == c)),
            "disagreeing_rows": [int(i) for i in np.flatnonzero(r != c)[:20]],
        }
        if labels is not None and labels.shape == (ref.shape[0],):
            entry["accuracy_native"] = float(np.mean(r == labels))
            entry["accuracy_onnx"] = float(np.mean(c == labels))
        out[name] = entry
    return out
