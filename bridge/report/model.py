"""The report every command produces: verdict, per-output results, cases, policy, latency, environment."""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field

from bridge.verdict.compare import OutputResult, summarize
from bridge.verdict.status import FAIL, INCONCLUSIVE, PASS, verdict

REPORT_SCHEMA_VERSION = 1


@dataclass
class Report:
    kind: str  # "export" | "verify"
    target: str
    source: str | None = None
    framework: str | None = None
    exporter: dict | None = None
    devices: list = field(default_factory=lambda: ["cpu"])
    cases: list = field(default_factory=list)  # [{"label", "seed", "sizes", "origin"}]
    results: list[OutputResult] = field(default_factory=list)
    policy: dict | None = None
    latency: dict = field(default_factory=dict)  # device -> LatencyComparison.to_json()
    environment: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    forced_status: str | None = None  # a verdict reached outside the per-output checks
    forced_reason: str | None = None
    created: str = ""
    duration_s: float | None = None
    localize: dict | None = None  # where the first divergence is, when asked (bridge.localize)
    dataset: dict = field(default_factory=dict)  # device -> metrics over --inputs real samples
    # What was compared: {"kind": "native" | "golden" | "export", "policy_origin": ...}
    check: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)  # the case plan: cases with their purpose, notes, budget

    @property
    def summary(self) -> dict[str, OutputResult]:
        return summarize(self.results)

    @property
    def status(self) -> str:
        if self.forced_status:
            return self.forced_status
        return verdict(r.status for r in self.summary.values())

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def reason(self) -> str:
        if self.forced_reason:
            return self.forced_reason
        for r in self.summary.values():
            if r.status == FAIL:
                # The figures of the reason are this one case's; the table's are over every case.
                return f"{r.name}, case {r.case} ({r.device}): {r.reason}" if r.case else f"{r.name}: {r.reason}"
        for r in self.summary.values():
            if r.status == INCONCLUSIVE:
                return f"{r.name}: {r.reason}"
        if not self.summary:
            return "no outputs were compared"
        return ""

    def to_json(self) -> dict:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "kind": self.kind,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason,
            "verdict_source": "forced" if self.forced_status else "checks",
            "created": self.created,
            "duration_s": self.duration_s,
            "target": self.target,
            "source": self.source,
            "framework": self.framework,
            "exporter": self.exporter,
            "devices": list(self.devices),
            "cases": list(self.cases),
            "outputs": [r.to_json() for r in self.summary.values()],
            "checks": [r.to_json() for r in self.results],
            "policy": self.policy,
            "latency": self.latency,
            "environment": self.environment,
            "notes": list(self.notes),
            "localize": self.localize,
            "dataset": self.dataset,
            "check": dict(self.check),
            "plan": dict(self.plan),
        }


def timed(run, opts) -> Report:
    """Run a command's orchestration and stamp its report with the start time and duration."""
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    report = run(opts)
    report.created = created
    report.duration_s = round(time.perf_counter() - start, 3)
    return report
