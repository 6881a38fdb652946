"""Verdicts: per-model results, latency budgets and baseline regression checks on verify reports (as
JSON), and the run's exit code. Standard library only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bridge.check.config import LatencyBudget, is_number
from bridge.verdict.status import FAIL, INCONCLUSIVE, PASS, RANK, SKIPPED, worst
from bridge.verdict.status import exit_code as status_exit

BASELINE_GROWTH = 10.0  # an output's max_abs may grow at most this factor over the baseline's
FLOAT32_EPS = 2.0**-23  # one float32 ulp at magnitude 1: the floor of an exact (0) baseline error


@dataclass
class Check:
    """One budget or baseline check of a model: a JUnit testcase of its own."""

    name: str
    status: str
    message: str

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message}


@dataclass
class ModelResult:
    name: str
    status: str = PASS  # pass | fail | inconclusive | skipped: parity, budgets and baseline together
    verdict: str | None = None  # the parity verdict alone (export and verify reports), None if none was reached
    message: str = ""
    max_abs: float | None = None
    seconds: float = 0.0
    budgets: list = field(default_factory=list)
    baseline: list = field(default_factory=list)
    latency: dict = field(default_factory=dict)  # device -> {"native_p50_ms", "ort_p50_ms"}
    error: dict | None = None  # {"step", "exit_code", "message"} when a step ended without a verdict
    bundle: str | None = None
    export_json: str | None = None
    verify_json: str | None = None
    report: dict | None = None  # the verify report (Report.to_json())
    export_report: dict | None = None
    node: str | None = None  # the machine that ran the model: "HOST" locally, "HOST (IP)" on a Ray node

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "verdict": self.verdict,
            "message": self.message,
            "max_abs": self.max_abs,
            "seconds": round(self.seconds, 3),
            "budgets": [b.to_json() for b in self.budgets],
            "baseline": [b.to_json() for b in self.baseline],
            "latency": self.latency,
            "error": self.error,
            "bundle": self.bundle,
            "export_report": self.export_json,
            "verify_report": self.verify_json,
            "node": self.node,
        }


def run_status(results: list[ModelResult]) -> str:
    """The run's status: its worst model's (every model skipped: pass)."""
    found = worst(*(r.status for r in results))
    return PASS if found == SKIPPED else found


def exit_code(results: list[ModelResult]) -> int:
    return status_exit(run_status(results))


def _float(value) -> float | None:
    """A JSON number, or the strings "inf", "-inf", "nan" reports write for non-finite floats."""
    if is_number(value):
        value = float(value)
    elif isinstance(value, str) and value in ("inf", "-inf", "nan"):
        value = float(value)
    else:
        return None
    return None if math.isnan(value) else value


def report_max_abs(report: dict | None) -> float | None:
    values = [c.get("max_abs") for c in (report or {}).get("checks") or []]
    values += [o.get("max_abs") for o in (report or {}).get("outputs") or []]
    values = [v for v in map(_float, values) if v is not None]
    return max(values) if values else None


def evaluate_latency(budget: LatencyBudget | None, report: dict | None) -> tuple[list[Check], dict]:
    """Budgets from the verify report's latency section: ONNX Runtime's p50 against native's p50
    (ort_not_slower) and against max_ms. Not measured (e.g. the reference was nondeterministic, so
    verify stopped early) is inconclusive."""
    if budget is None:
        return [], {}
    latency = (report or {}).get("latency") or {}
    figures = {}
    for device, lat in latency.items():
        sides = (lat or {}).get("sides") or {}
        figures[device] = {
            "native_p50_ms": (sides.get("native") or {}).get("p50_ms"),
            "ort_p50_ms": (sides.get("onnxruntime") or {}).get("p50_ms"),
        }
    if not budget.has_budget:
        return [], figures
    checks = []
    if not figures:
        why = "latency was not measured" + (f" (verdict {report.get('status')})" if report else " (no verify report)")
        if budget.ort_not_slower:
            checks.append(Check("latency.ort_not_slower", INCONCLUSIVE, why))
        if budget.max_ms is not None:
            checks.append(Check("latency.max_ms", INCONCLUSIVE, why))
        return checks, figures
    for device, f in figures.items():
        native, ort = f["native_p50_ms"], f["ort_p50_ms"]
        if budget.ort_not_slower:
            name = f"latency.ort_not_slower[{device}]"
            if not is_number(native) or not is_number(ort):
                checks.append(Check(name, INCONCLUSIVE, "native or ONNX Runtime p50 missing from the report"))
            elif ort <= native:
                checks.append(Check(name, PASS, f"ONNX Runtime p50 {ort:.3f} ms <= native p50 {native:.3f} ms"))
            else:
                checks.append(
                    Check(
                        name,
                        FAIL,
                        f"ONNX Runtime p50 {ort:.3f} ms is slower than native p50 "
                        f"{native:.3f} ms ({ort / native:.2f}x)",
                    )
                )
        if budget.max_ms is not None:
            name = f"latency.max_ms[{device}]"
            if not is_number(ort):
                checks.append(Check(name, INCONCLUSIVE, "ONNX Runtime p50 missing from the report"))
            elif ort <= budget.max_ms:
                checks.append(Check(name, PASS, f"ONNX Runtime p50 {ort:.3f} ms <= budget {budget.max_ms:g} ms"))
            else:
                checks.append(Check(name, FAIL, f"ONNX Runtime p50 {ort:.3f} ms exceeds budget {budget.max_ms:g} ms"))
    return checks, figures


def _per_output(report: dict) -> dict[str, dict]:
    """name -> {"max_abs", "ref_abs_max"}, the largest over every case and device."""
    out: dict[str, dict] = {}
    for c in list(report.get("checks") or []) + list(report.get("outputs") or []):
        name = c.get("name")
        if name is None:
            continue
        entry = out.setdefault(name, {"max_abs": None, "ref_abs_max": None})
        for key in ("max_abs", "ref_abs_max"):
            v = _float(c.get(key))
            if v is not None:
                entry[key] = v if entry[key] is None else max(entry[key], v)
    return out


def compare_baseline(baseline: dict, report: dict, source: str = "baseline") -> list[Check]:
    """Regression checks against a stored report: the verdict must not be worse, and no output's max abs
    error may grow more than BASELINE_GROWTH times. A baseline error below one float32 ulp of the
    output's magnitude counts as that ulp, so an exact (0) baseline does not turn rounding into a
    regression."""
    checks = []
    old, new = baseline.get("status"), report.get("status")
    if old not in RANK or new not in RANK:
        checks.append(Check("baseline.verdict", FAIL, f"cannot compare verdicts: baseline {old!r}, now {new!r}"))
    elif RANK[new] > RANK[old]:
        checks.append(Check("baseline.verdict", FAIL, f"verdict regressed: {old} in {source}, {new} now"))
    else:
        checks.append(Check("baseline.verdict", PASS, f"verdict {new} (baseline {old})"))
    before, after = _per_output(baseline), _per_output(report)
    for name, b in before.items():
        check = f"baseline.max_abs[{name}]"
        if name not in after:
            checks.append(Check(check, FAIL, f"output {name!r} of the baseline is missing now"))
            continue
        old_abs, new_abs = b["max_abs"], after[name]["max_abs"]
        if old_abs is None or new_abs is None:
            checks.append(
                Check(
                    check,
                    INCONCLUSIVE if new_abs is None else PASS,
                    f"max abs error {fmt_num(new_abs)} now, {fmt_num(old_abs)} in the baseline",
                )
            )
            continue
        scale = b["ref_abs_max"] or after[name]["ref_abs_max"] or 1.0
        floor = max(old_abs, FLOAT32_EPS * scale, 1e-30)
        limit = BASELINE_GROWTH * floor
        if new_abs > limit:
            checks.append(
                Check(
                    check,
                    FAIL,
                    f"max abs error grew from {fmt_num(old_abs)} to {fmt_num(new_abs)} "
                    f"({new_abs / floor:.1f}x, limit {BASELINE_GROWTH:g}x)",
                )
            )
        else:
            checks.append(
                Check(
                    check,
                    PASS,
                    f"max abs error {fmt_num(new_abs)} (baseline {fmt_num(old_abs)}, limit {fmt_num(limit)})",
                )
            )
    return checks


def fmt_num(x, spec: str = ".2e") -> str:
    return "-" if x is None else format(x, spec)
