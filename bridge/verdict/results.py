"""One rule for what a summary row shows, shared by every report format. Standard library only.

A verification compares each output on several cases (and devices). Per output and device, the row
shows one check, picked by one rule, and figures taken over all of its cases:

* the shown check: the worst failure (one without a value comparison, such as a shape or dtype
  mismatch, first; then the one needing the largest atol), else the passing check needing the
  largest atol, else the first check;
* max abs and max rel errors: the maximum over every case (NaN if any case had NaN);
* the smallest passing atol and rtol: the maximum over every case (a tolerance must pass them all),
  none when a failure had no value comparison;
* failing elements: summed over every failing case; elements outside the tolerance on a case that was
  not judged a failure (within the model's own rounding on that input: bridge/verdict/rounding.py) are
  counted apart, as forgiven, with their cases; error histograms: summed.

Records are report dicts (``OutputResult.to_json()``), so renderers of stored JSON reports use the
same rule as the report that wrote them.
"""

from __future__ import annotations

import math

from bridge.verdict.status import FAIL, PASS


def to_float(x) -> float | None:
    """A JSON number, or "inf"/"-inf"/"nan", as a float; anything else as None."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _worst(values) -> float | None:
    fs = [f for f in (to_float(v) for v in values) if f is not None]
    if not fs:
        return None
    return math.nan if any(math.isnan(f) for f in fs) else max(fs)


def _get(record, key):
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def shown(checks: list):
    """The check a summary row shows (see the module docstring). Checks are report dicts or result
    objects with the same fields."""
    fails = [c for c in checks if _get(c, "status") == FAIL]
    if fails:
        return max(
            fails,
            key=lambda c: math.inf if to_float(_get(c, "needed_atol")) is None else to_float(_get(c, "needed_atol")),
        )
    passes = [c for c in checks if _get(c, "status") == PASS]
    if passes:
        return max(passes, key=lambda c: to_float(_get(c, "needed_atol")) or 0.0)
    return checks[0]


def aggregate(checks: list) -> dict:
    """The figures a summary row takes over every check of its group (see the module docstring)."""
    out = {
        "n_cases": len(checks),
        "max_abs": _worst(_get(c, "max_abs") for c in checks),
        "max_rel": _worst(_get(c, "max_rel") for c in checks),
    }
    fails = [c for c in checks if _get(c, "status") == FAIL]
    for key in ("needed_atol", "needed_rtol"):
        out[key] = None if any(_get(c, key) is None for c in fails) else _worst(_get(c, key) for c in checks)
    if all(
        isinstance(_get(c, "size"), int)
        and isinstance(_get(c, "fail_count"), int)
        and to_float(_get(c, "fail_fraction")) is not None
        for c in checks
    ):
        out["fail_count"] = sum(_get(c, "fail_count") for c in checks if _get(c, "status") == FAIL)
        out["size"] = sum(_get(c, "size") for c in checks)
        out["fail_fraction"] = out["fail_count"] / out["size"] if out["size"] else None
    hists = [_get(c, "error_histogram") for c in checks if isinstance(_get(c, "error_histogram"), dict)]
    if hists and all(h.get("log10_edges") == hists[0].get("log10_edges") for h in hists):
        try:
            out["error_histogram"] = {
                "log10_edges": hists[0]["log10_edges"],
                "counts": [sum(col) for col in zip(*(h["counts"] for h in hists))],
                "zeros": sum(h.get("zeros") or 0 for h in hists),
            }
            out["hist_cases"] = len(hists)
        except (KeyError, TypeError):
            pass
    return out


def groups(checks: list) -> list[list]:
    """Checks grouped per (output, device), outputs in the order they first appear."""
    out: dict = {}
    for c in checks:
        if isinstance(c, dict) or hasattr(c, "status"):
            out.setdefault((str(_get(c, "name")), str(_get(c, "device"))), []).append(c)
    return list(out.values())


def forgiven(checks: list) -> dict:
    """Elements outside the tolerance on cases not judged a failure (inconclusive: within the model's own
    rounding on that input), counted apart from the failing ones: their count, cases and share."""
    cases = [c for c in checks if _get(c, "status") != FAIL and isinstance(_get(c, "fail_count"), int)]
    cases = [c for c in cases if _get(c, "fail_count") > 0]
    size = sum(_get(c, "size") for c in checks if isinstance(_get(c, "size"), int))
    return {
        "forgiven_count": sum(_get(c, "fail_count") for c in cases),
        "forgiven_cases": [str(_get(c, "case")) for c in cases],
        "forgiven_fraction": sum(_get(c, "fail_count") for c in cases) / size if size else None,
    }


def summary_row(checks: list[dict]) -> dict:
    """The shown check (a report dict) with its figures taken over every check of the group."""
    return {**shown(checks), **aggregate(checks), **forgiven(checks)}


def group(checks: list[dict]) -> list[dict]:
    """One summary row per (output, device), outputs in the order they first appear."""
    return [summary_row(cs) for cs in groups(checks)]


def json_safe(value):
    """A report value JSON can hold: non-finite floats become the strings "nan", "inf", "-inf"
    (JSON has no such numbers; reports are written with allow_nan=False)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(data) -> str:
    """A report as JSON text: valid JSON, whatever floats it holds."""
    import json

    return json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"


def applied_tolerance(tol, applied_atol=None) -> str:
    """The tolerance a check applied, with every term: ``atol[+scale_atol*max|ref|=applied] / rtol``."""
    if not isinstance(tol, dict):
        return "-"
    atol, rtol, scale = to_float(tol.get("atol")), to_float(tol.get("rtol")), to_float(tol.get("scale_atol")) or 0.0
    text = "-" if atol is None else f"{atol:g}"
    applied = to_float(applied_atol)
    if scale and applied is not None:
        text += f"+{scale:g}*max|ref|={applied:.3g}"
    return f"{text} / {'-' if rtol is None else f'{rtol:g}'}"


def check_label(check: dict) -> str:
    """What a verdict rests on, when it is not a comparison with the native model under the verifier's
    own terms: a golden check under the bundle's tolerance, or terms taken from the artifact under test."""
    if check.get("kind") == "golden":
        origin = check.get("policy_origin", "bundle")
        tol = "the bundle's own tolerance" if origin == "bundle" else f"a tolerance from the {origin}"
        return (
            f" (golden check: ONNX Runtime against the outputs stored in the bundle, under {tol}; no native model ran)"
        )
    taken = check.get("terms_from_artifact")
    if isinstance(taken, list) and taken:
        return (
            f" (terms from the artifact under test: {', '.join(map(str, taken[:4]))}"
            f"{' and more' if len(taken) > 4 else ''}; declare them yourself or use --strict-terms)"
        )
    return ""


def forgiven_note(name: str, figures: dict) -> str | None:
    """What an output's forgiven elements were (``forgiven``): how many, on which cases, and why they do not
    count as failing."""
    count = figures.get("forgiven_count")
    if not count:
        return None
    cases = figures.get("forgiven_cases") or []
    fraction = to_float(figures.get("forgiven_fraction"))
    share = f" ({100 * fraction:.2g}% of all cases' elements)" if fraction else ""
    return (
        f"{name}: {count} element{'s' if count != 1 else ''}{share} outside the tolerance on case"
        f"{'s' if len(cases) != 1 else ''} {', '.join(cases)} forgiven as rounding: the model differs from itself as "
        "much on that input (ONNX Runtime with graph optimizations off, or the native model under a 1e-6 nudge of "
        "its inputs), so the case is inconclusive there, not failing; these elements are not in the failing column"
    )
