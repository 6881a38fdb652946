"""The run's outputs: the results table (plain or rich), the Markdown summary, one JUnit XML file for
all models, and the JSON summary. bridge.report and rich are imported only when used. Every renderer
but the JSON summary takes the results through bridge.report.text.clean first: a model's messages
quote its reports, whose names come from the model."""

from __future__ import annotations

from pathlib import Path

from bridge.check.config import CheckConfig
from bridge.check.verdicts import Check, ModelResult, fmt_num, run_status
from bridge.report.text import clean
from bridge.verdict.status import FAIL, INCONCLUSIVE, PASS, SKIPPED, mark

SUMMARY_SCHEMA_VERSION = 1

TABLE_HEADERS = ["model", "verdict", "max abs", "budgets", "baseline", "seconds"]


def _budget_cell(checks: list[Check]) -> str:
    if not checks:
        return "-"
    return ", ".join(f"{c.name.split('.', 1)[-1]} {'ok' if c.status == PASS else mark(c.status)}" for c in checks)


def _baseline_cell(checks: list[Check]) -> str:
    if not checks:
        return "-"
    bad = [c for c in checks if c.status != PASS]
    if not bad:
        return "ok"
    return f"{len(bad)} regressed: " + ", ".join(c.name.split(".", 1)[-1] for c in bad)


def _headers(with_node: bool) -> list[str]:
    return TABLE_HEADERS + ["node"] if with_node else list(TABLE_HEADERS)


def table_rows(results: list[ModelResult], with_node: bool = False) -> list[list[str]]:
    """One row per model; ``with_node`` adds the machine that ran it (a distributed run)."""
    results = clean(list(results))
    return [
        [
            r.name,
            mark(r.status),
            fmt_num(r.max_abs),
            _budget_cell(r.budgets),
            _baseline_cell(r.baseline),
            f"{r.seconds:.1f}",
        ]
        + ([r.node or "-"] if with_node else [])
        for r in results
    ]


def render_table(results: list[ModelResult], with_node: bool = False) -> str:
    rows, headers = table_rows(results, with_node), _headers(with_node)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def print_rich_table(console, results: list[ModelResult], with_node: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="bridge check")
    for h in _headers(with_node):
        table.add_column(h, justify="right" if h in ("max abs", "seconds") else "left")
    style = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow", SKIPPED: "dim"}
    for r, row in zip(results, table_rows(results, with_node)):
        table.add_row(*(Text(c) for c in row), style=None if r.status == PASS else style[r.status])  # no markup
    console.print(table)


def render_markdown(results: list[ModelResult], code: int, with_node: bool = False) -> str:
    """Summary for CI pages ($GITHUB_STEP_SUMMARY): one table, then each non-passing model's report."""
    from bridge.report.markdown import md_table
    from bridge.report.markdown import render_markdown as report_markdown

    results = clean(list(results))
    overall = mark(run_status(results))
    tally = counts(results)
    parts = [
        f"## bridge check: {overall}",
        ", ".join(f"{n} {mark(s).lower()}" for s, n in tally.items() if n) or "no models",
        md_table(
            _headers(with_node) + ["reason"],
            [row + [r.message if r.status != PASS else ""] for r, row in zip(results, table_rows(results, with_node))],
        ),
    ]
    for r in results:
        if r.status in (PASS, SKIPPED):
            continue
        parts.append(f"### {mark(r.status)}: {r.name}")
        bad = [c for c in r.budgets + r.baseline if c.status != PASS]
        if bad:
            parts.append("\n".join(f"- `{c.name}` {mark(c.status)}: {c.message}" for c in bad))
        if r.error:
            parts.append(f"{r.error['step']} failed: `{r.error['message']}`")
        if r.report:  # its own heading one level down
            parts.append("#" + report_markdown(dict(r.report, target=r.name)))
    return "\n\n".join(parts) + "\n"


def counts(results: list[ModelResult]) -> dict:
    counts = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0, SKIPPED: 0}
    for r in results:
        counts[r.status] += 1
    return counts


def render_junit(results: list[ModelResult], suite_name: str = "bridge") -> str:
    """One testsuite per model: the verify report's checks (bridge.report.junit), then one testcase per
    budget and baseline check; a model whose export or verify ended without a report is one failing
    testcase carrying the error; a skipped model is one skipped testcase."""
    import xml.etree.ElementTree as ET

    from bridge.report.junit import render_junit as report_junit

    root = ET.Element("testsuites", name=suite_name)
    results = clean(list(results))
    for r in results:
        if r.report is not None or r.export_report is not None:
            report = dict(r.report if r.report is not None else r.export_report, target=r.name)
            suite = ET.fromstring(report_junit([report], suite_name)).find("testsuite")
        else:
            suite = ET.Element("testsuite", name=r.name)
        suite.set("name", r.name)
        if r.node:  # the machine that ran the model: a property, first child as the JUnit schema wants
            props = suite.find("properties")
            if props is None:
                props = ET.Element("properties")
                suite.insert(0, props)
            ET.SubElement(props, "property", name="node", value=r.node)
        if r.status == SKIPPED:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name="skipped", time="0")
            ET.SubElement(tc, "skipped", message=r.message)
        if r.error:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name=r.error["step"], time=f"{r.seconds:.3f}")
            f = ET.SubElement(tc, "failure", message=r.error["message"], type="error")
            f.text = r.error["message"]
        fallback = exporter_fallback(r.export_report)
        if fallback:  # the route the bundle came by, and why the first one failed: often the decisive cause
            props = suite.find("properties")
            if props is None:
                props = ET.Element("properties")
                suite.insert(0, props)
            ET.SubElement(props, "property", name="exporter_fallback", value=fallback)
        if r.report is not None and r.export_report and r.export_report.get("status") != PASS:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name="export", time="0")
            status = r.export_report.get("status") or FAIL
            reason = r.export_report.get("reason") or ""
            text = f"{reason}\n{fallback}" if fallback else reason
            f = ET.SubElement(
                tc, "failure", message=f"{mark(status)}: {reason}" + (f" ({fallback})" if fallback else ""), type=status
            )
            f.text = text
        elif fallback and r.report is not None and r.verdict not in (PASS, SKIPPED):
            tc = ET.SubElement(suite, "testcase", classname=r.name, name="exporter", time="0")
            f = ET.SubElement(tc, "failure", message=fallback, type="exporter fallback")
            f.text = f"{fallback}\nthe bundle comes from the fallback route: its failure above may come from that route"
        for c in r.budgets + r.baseline:
            tc = ET.SubElement(suite, "testcase", classname=f"{r.name}.{c.name.split('.')[0]}", name=c.name, time="0")
            if c.status != PASS:
                ET.SubElement(tc, "failure", message=f"{mark(c.status)}: {c.message}", type=c.status).text = c.message
            else:
                ET.SubElement(tc, "system-out").text = c.message
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for tc in cases if tc.find("failure") is not None)))
        suite.set("errors", "0")
        suite.set("skipped", str(sum(1 for tc in cases if tc.find("skipped") is not None)))
        suite.set("time", f"{r.seconds:.3f}")
        root.append(suite)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in root.findall("testsuite"))))
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def exporter_fallback(export_report) -> str:
    """How the bundle was exported when the first route failed: ``exported by torch.onnx.torchscript after
    dynamo failed: <its error>``; "" when the first route worked (or there is no export report)."""
    exporter = (export_report or {}).get("exporter") if isinstance(export_report, dict) else None
    tried = (exporter or {}).get("failed_first") if isinstance(exporter, dict) else None
    if not tried or not isinstance(tried, list):
        return ""
    causes = "; ".join(f"{a.get('exporter')} failed: {a.get('error')}" for a in tried if isinstance(a, dict))
    return f"exported by {exporter.get('name')} after {causes}"


def summary_json(
    config: CheckConfig, results: list[ModelResult], code: int, workdir: Path, executor: dict | None = None
) -> dict:
    status = run_status(results)
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "kind": "check",
        "status": status,
        "exit_code": code,
        "config": str(config.path),
        "workdir": str(workdir),
        "executor": executor or {"kind": "local"},
        "counts": counts(results),
        "models": [r.to_json() for r in results],
    }


def render_error(fmt: str, exc) -> str:
    """A summary of a check that ended in an error before (or instead of) its table: the JSON summary's
    shape with ``status`` "error", a JUnit file with one failing testcase, a Markdown line."""
    import json
    import xml.etree.ElementTree as ET

    from bridge.report.text import safe

    category = getattr(exc, "category", "error")
    message = getattr(exc, "message", str(exc))
    hint = getattr(exc, "hint", None)
    code = getattr(exc, "exit_code", 2)
    if fmt == "json":
        data = {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "kind": "check",
            "status": "error",
            "exit_code": code,
            "error": {"category": category, "message": message, "hint": hint},
            "models": [],
        }
        return json.dumps(data, indent=2) + "\n"
    line = safe(f"{category}: {message}")
    if fmt == "junit":
        root = ET.Element("testsuites", name="bridge", tests="1", failures="1", errors="0", skipped="0", time="0")
        suite = ET.SubElement(
            root, "testsuite", name="bridge check", tests="1", failures="1", errors="0", skipped="0", time="0"
        )
        tc = ET.SubElement(suite, "testcase", classname="bridge check", name="check", time="0")
        ET.SubElement(tc, "failure", message=line, type="error").text = line + (f"\nhint: {safe(hint)}" if hint else "")
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    from bridge.report.markdown import cell

    return f"## bridge check: ERROR\n\n{cell(line)}\n" + (f"\n_hint: {cell(hint)}_\n" if hint else "")
