"""JUnit XML for CI test reporters (GitLab, Jenkins, GitHub actions): one testsuite per report dict.

One testcase per check (output x case x device). Failing and inconclusive checks are both
<failure> (type "fail" / "inconclusive"): an inconclusive parity check proved nothing and must not
show green in CI. A report whose verdict is not pass but has no failing check (e.g. the reference was
nondeterministic, so nothing was compared) gets one extra testcase "verdict" carrying the reason.
Only the standard attributes are written: name, tests, failures, errors, skipped, time, classname,
message, type.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from bridge.report.markdown import (
    as_dict,
    as_list,
    mark,
    needed,
    num,
    pair,
    percent,
    records,
    shape,
    status_of,
    tolerance,
)

# Characters XML 1.0 cannot carry, even escaped.
_BAD_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text) -> str:
    """Text for an XML attribute or element: C1 controls and DEL made visible (bridge.report.text.safe
    keeps the line breaks bridge lays out itself), then what XML 1.0 cannot carry replaced."""
    from bridge.report.text import safe_lines

    return _BAD_XML.sub("?", safe_lines(text))


def failure_message(c: dict) -> str:
    """One line: the reason, then the numbers a reviewer needs to judge it."""
    bits = [f"{mark(c.get('status'))}: {c.get('reason') or 'no reason given'}"]
    if c.get("max_abs") is not None or c.get("max_rel") is not None:
        bits.append(
            f"max abs error {num(c.get('max_abs'))}, max rel error {num(c.get('max_rel'))}, "
            f"{c.get('fail_count', '-')} of {c.get('size', '-')} elements failing"
        )
    if c.get("tolerance"):
        bits.append(f"applied atol / rtol {tolerance(c['tolerance'], c.get('applied_atol'))}")
    if c.get("needed_atol") is not None or c.get("needed_rtol") is not None:
        bits.append(f"smallest passing atol / rtol {needed(c)}")
    return "; ".join(bits)


def failure_details(c: dict) -> str:
    lines = [
        f"output {c.get('name')}, case {c.get('case') or '-'}, device {c.get('device') or '-'}",
        f"shape {pair(c.get('ref_shape'), c.get('cand_shape'), shape)}, "
        f"dtype {pair(c.get('ref_dtype'), c.get('cand_dtype'))}",
        f"abs error: max {num(c.get('max_abs'))}, mean {num(c.get('mean_abs'))}, p99 {num(c.get('p99_abs'))}",
        f"rel error: max {num(c.get('max_rel'))}, mean {num(c.get('mean_rel'))}, p99 {num(c.get('p99_rel'))}, "
        f"norm {num(c.get('rel_norm'))}",
        f"failing elements: {c.get('fail_count', '-')} of {c.get('size', '-')} ({percent(c.get('fail_fraction'))})",
        f"tolerance applied (atol / rtol): {tolerance(c.get('tolerance'), c.get('applied_atol'))}",
        f"smallest passing atol at that rtol / rtol at that atol: {needed(c)}",
    ]
    if c.get("worst_index") is not None:
        lines.append(
            f"worst element {c['worst_index']}: reference {num(c.get('worst_ref'), '.7g')}, "
            f"ONNX {num(c.get('worst_cand'), '.7g')}"
        )
    if c.get("top1_agreement") is not None:
        lines.append(f"top-1 agreement {percent(c['top1_agreement'])}")
    return "\n".join(lines)


def _testsuite(report: dict) -> ET.Element:
    from bridge.report.text import clean

    report = clean(as_dict(report))  # control characters of names and reasons made visible
    target = str(report.get("target") or "model")
    status = status_of(report)
    suite = ET.Element("testsuite", name=_x(target))
    props = ET.SubElement(suite, "properties")
    for key in ("kind", "status", "reason", "source", "framework"):
        if report.get(key):
            ET.SubElement(props, "property", name=key, value=_x(report[key]))

    failures = 0
    checks = records(report.get("checks"))
    for c in checks:
        device, case, output = c.get("device") or "cpu", c.get("case") or "", c.get("name") or "?"
        tc = ET.SubElement(
            suite,
            "testcase",
            classname=_x(f"{target}.{device}"),
            name=_x(f"{output}[{case}]" if case else output),
            time=_seconds(c.get("seconds")),
        )
        if c.get("status") != "pass":
            failures += 1
            f = ET.SubElement(tc, "failure", message=_x(failure_message(c)), type=_x(c.get("status") or "unknown"))
            f.text = _x(failure_details(c))

    # The verdict must not look greener than the report: add it when no check carries it.
    if (status != "pass" and failures == 0) or not checks:
        tc = ET.SubElement(
            suite, "testcase", classname=_x(target), name="verdict", time=_seconds(report.get("duration_s"))
        )
        if status != "pass":
            failures += 1
            f = ET.SubElement(
                tc,
                "failure",
                message=_x(f"{mark(status)}: {report.get('reason') or 'no reason given'}"),
                type=_x(status),
            )
            f.text = _x(report.get("reason") or "")

    notes = [str(n) for n in as_list(report.get("notes"))]
    if notes:
        ET.SubElement(suite, "system-out").text = _x("\n".join(notes))
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    suite.set("time", _seconds(report.get("duration_s")))
    return suite


def _seconds(value) -> str:
    """JUnit's time attribute: seconds with millisecond precision, 0 when unknown."""
    try:
        return f"{max(0.0, float(value)):.3f}"
    except (TypeError, ValueError):
        return "0"


def render_junit(reports: list[dict], suite_name: str = "bridge") -> str:
    if isinstance(reports, dict):
        reports = [reports]
    root = ET.Element("testsuites", name=_x(suite_name))
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    for report in reports:
        suite = _testsuite(report)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{sum(float(s.get('time')) for s in root.findall('testsuite')):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
