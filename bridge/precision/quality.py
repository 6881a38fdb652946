"""The agreement gate of reduced-precision artifacts: what applied, in words, and the accuracy check.

An int8 or float16 graph is compared with the float32 native model under the row of its precision
(bridge/verdict/policy.py). Per output and case: a loose element test and a bound on the relative error norm
``||onnx - ref|| / ||ref||`` (bridge/verdict/compare.py). On real samples (``--samples``, or ``--calibrate``
at export): top-1 agreement of classifier-shaped outputs (N, C) of at least the row's floor (99% by
default, ``--min-top1`` to change it); with ``--labels`` the accuracy of both sides is reported, and a
policy's ``max_accuracy_drop`` bounds how far the artifact's may fall below the native model's.
Without real samples only the element test and the error-norm bound applied, on seeded random
inputs: the report says that this is weak.
"""

from __future__ import annotations

from dataclasses import replace

from bridge.verdict.compare import FAIL, PASS, REAL_DATA, OutputResult


def row_text(tol) -> str:
    """A reduced-precision row in words."""
    text = (
        f"the {tol.row} row: element test atol {tol.atol:g} + {tol.scale_atol:g}*max|ref| + rtol {tol.rtol:g}*|ref|"
        f", relative error norm at most {tol.rel_norm:g}"
        if tol.rel_norm is not None
        else f"the {tol.row} row: element test atol {tol.atol:g} + {tol.scale_atol:g}*max|ref| + rtol {tol.rtol:g}*|ref|"
    )
    if tol.min_top1 is not None:
        text += f", top-1 agreement at least {100 * tol.min_top1:g}% on real samples"
    return text


def precision_notes(policy, results: list[OutputResult], samples: str | None, dataset: dict) -> list[str]:
    """What a reduced-precision verdict rests on, for the report's notes."""
    if policy.precision == "fp32":
        return []
    rows = {}
    for r in results:
        if r.tolerance is not None and r.tolerance.row:
            rows.setdefault(r.tolerance.row, r.tolerance)
    notes = (
        [
            f"precision {policy.precision}: compared with the float32 native model under "
            + "; ".join(row_text(t) for t in rows.values())
        ]
        if rows
        else []
    )
    if samples:
        classified = {name for data in dataset.values() for name in (data.get("outputs") or {})}
        if classified:
            notes.append(
                f"real samples {samples}: top-1 agreement with the float32 native model is the primary "
                f"gate for {', '.join(sorted(classified))}"
            )
        else:
            notes.append(
                f"real samples {samples}: no classifier-shaped output (N, C), so the relative error bound "
                "is the gate on them"
            )
    else:
        notes.append(
            f"no real samples (--samples FILE.npz): only the element test and the relative-error bound "
            f"applied to this {policy.precision} artifact, on seeded random inputs; they catch gross errors "
            "but say little about its accuracy: this check is weak"
        )
    return notes


def accuracy_gate(results: list[OutputResult], metrics: dict, policy, device: str) -> list[OutputResult]:
    """With labels and a policy ``max_accuracy_drop``: the real-samples result of an output whose
    accuracy fell further below the native model's fails."""
    limit = policy.max_accuracy_drop
    if limit is None:
        return results
    failing = {}
    for name, m in metrics.items():
        if "accuracy_native" in m and m["accuracy_native"] - m["accuracy_onnx"] > limit + 1e-12:
            failing[name] = (
                f"accuracy: {100 * m['accuracy_onnx']:.2f}% on the labels against the native model's "
                f"{100 * m['accuracy_native']:.2f}%, a drop above the policy's max_accuracy_drop "
                f"{100 * limit:g} points"
            )
    return [
        replace(r, status=FAIL, reason=failing[r.name])
        if r.name in failing and r.case == REAL_DATA and r.device == device and r.status == PASS
        else r
        for r in results
    ]
