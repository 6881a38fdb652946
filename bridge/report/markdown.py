"""Markdown summary of a report dict (``Report.to_json()``): for a GitHub step summary or a PR comment.

Also holds the small, defensive formatting helpers the JUnit and HTML renderers share: report dicts
come from JSON, so numbers may be None or the strings "inf", "-inf", "nan".
"""

from __future__ import annotations

import math

from bridge.report.text import OUTPUT_COLUMNS
from bridge.verdict.results import to_float
from bridge.verdict.status import mark

OUTPUT_HEADERS = [*OUTPUT_COLUMNS, "atol / rtol applied", "smallest passing atol / rtol (other kept)"]


def as_dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def as_list(x) -> list:
    return x if isinstance(x, list) else []


def records(x) -> list[dict]:
    """The dicts of a list (checks, outputs, cases); anything malformed is dropped."""
    return [r for r in as_list(x) if isinstance(r, dict)]


def status_of(report: dict) -> str:
    """The report's verdict; a report that does not say is not a pass."""
    status = report.get("status")
    if isinstance(status, str) and status:
        return status
    return "pass" if report.get("passed") is True else "fail"


def num(x, spec: str = ".3g") -> str:
    f = to_float(x)
    if f is None:
        return "-"
    if math.isnan(f) or math.isinf(f):
        return str(f)
    return format(f, spec)


def num_up(x, digits: int = 2) -> str:
    """A number rounded *up* to ``digits`` significant digits: a suggested tolerance that still passes."""
    f = to_float(x)
    if f is None or math.isnan(f) or math.isinf(f) or f <= 0:
        return num(x)
    step = 10.0 ** (math.floor(math.log10(f)) - digits + 1)
    return format(math.ceil(f / step - 1e-9) * step, f".{digits}g")


def percent(x) -> str:
    f = to_float(x)
    if f is None or math.isnan(f):
        return "-"
    return f"{100 * f:.3g}%"


def shape(s) -> str:
    if s is None:
        return "-"
    if isinstance(s, (list, tuple)):
        return "x".join(str(d) for d in s) if s else "scalar"
    return str(s)


def pair(ref, cand, fmt=str) -> str:
    """One value if both sides agree (or one is missing), else 'ref vs cand'."""
    a, b = (fmt(ref) if ref is not None else None), (fmt(cand) if cand is not None else None)
    if a == b or b is None:
        return a or "-"
    if a is None:
        return f"- vs {b}"
    return f"{a} vs {b}"


def tolerance(tol, applied_atol=None) -> str:
    from bridge.verdict.results import applied_tolerance

    return applied_tolerance(tol, applied_atol)


def needed(r: dict) -> str:
    if r.get("needed_atol") is None and r.get("needed_rtol") is None:
        return "-"
    return f"{num_up(r.get('needed_atol'))} / {num_up(r.get('needed_rtol'))}"


def output_row(r: dict) -> list[str]:
    """The cells of the verdict table, in OUTPUT_HEADERS order."""
    return [
        str(r.get("name", "?")),
        mark(r.get("status")),
        str(r.get("device") or "-"),
        pair(r.get("ref_shape"), r.get("cand_shape"), shape),
        pair(r.get("ref_dtype"), r.get("cand_dtype")),
        num(r.get("max_abs")),
        num(r.get("max_rel")),
        percent(r.get("fail_fraction")) + (f" (+{r['forgiven_count']} forgiven)" if r.get("forgiven_count") else ""),
        tolerance(r.get("tolerance"), r.get("applied_atol")),
        needed(r),
    ]


def output_groups(report: dict) -> list[dict]:
    """One record per output and device, over every case swept, by the rule of ``bridge.verdict.results``.
    Falls back to ``outputs`` when there are no checks."""
    from bridge.verdict.results import group

    checks = records(report.get("checks"))
    if not checks:
        return [
            dict(r, n_cases=r.get("n_cases", 1), hist_cases=r.get("hist_cases", 1))
            for r in records(report.get("outputs"))
        ]
    return group(checks)


def where(r: dict) -> str:
    bits = [f"case {r['case']}" if r.get("case") else "", r.get("device") or ""]
    return ", ".join(str(b) for b in bits if b)


def case_label(c: dict) -> str:
    if not isinstance(c, dict):
        return str(c)
    sizes = c.get("sizes") or {}
    extra = [f"{k}={v}" for k, v in sizes.items()] if isinstance(sizes, dict) else [str(sizes)]
    if c.get("seed") is not None:
        extra.append(f"seed {c['seed']}")
    if c.get("origin"):
        extra.append(str(c["origin"]))
    return f"{c.get('label', '?')} ({', '.join(extra)})" if extra else str(c.get("label", "?"))


def versions(env) -> dict:
    """Every ``versions`` mapping found anywhere in the environment, merged (package -> version)."""
    found: dict = {}

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "versions" and isinstance(v, dict):
                    found.update({str(a): str(b) for a, b in v.items()})
                elif k.endswith("_version") and isinstance(v, (str, int, float)):
                    found[k[: -len("_version")]] = str(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(env)
    return found


def check_counts(report: dict) -> dict:
    counts: dict = {}
    for c in records(report.get("checks")):
        status = c.get("status") if isinstance(c.get("status"), str) else "unknown"
        counts[status] = counts.get(status, 0) + 1
    return counts


def latency_rows(lat: dict) -> list[list[str]]:
    """side, p50, p90, p99, min, runs, speedup at p50 vs the baseline."""
    speedup = as_dict(lat.get("speedup_vs_baseline_p50"))
    rows = []
    for name, s in as_dict(lat.get("sides")).items():
        s = as_dict(s)
        if name == lat.get("baseline"):
            ratio = "baseline"
        else:
            ratio = f"{num(speedup.get(name), '.2f')}x" if speedup.get(name) is not None else "-"
        rows.append(
            [
                str(name),
                num(s.get("p50_ms"), ".3f"),
                num(s.get("p90_ms"), ".3f"),
                num(s.get("p99_ms"), ".3f"),
                num(s.get("min_ms"), ".3f"),
                str(s.get("runs", "-")),
                ratio,
            ]
        )
    return rows


LATENCY_HEADERS = ["runner", "p50 ms", "p90 ms", "p99 ms", "min ms", "runs", "speedup at p50"]


# --- markdown proper ---------------------------------------------------------------------------

NOTE = (
    "Element test: |onnx - ref| <= atol + scale_atol * max|ref| + rtol * |ref| (the applied atol column shows "
    "every term). Per output and device, over every case swept: the "
    "largest errors, the share of failing elements, and the smallest tolerance that passes them all "
    "(atol at the applied rtol, rtol at the applied atol, rounded up)."
)


def cell(x) -> str:
    """Text safe in a table cell: control characters visible, pipes escaped, one line, no raw HTML (GitHub
    would drop unknown tags)."""
    from bridge.report.text import safe

    text = safe(x).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(x) -> str:
    from bridge.report.text import safe

    return "`" + safe(x).replace("`", "'").replace("\n", " ") + "`"


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    from bridge.report.text import clean

    report = clean(as_dict(report))
    status = status_of(report)
    head = f"### {mark(status)}: bridge {cell(report.get('kind') or 'report')} of {code(report.get('target') or '?')}"
    parts = [head]
    meta = []
    if report.get("source"):
        meta.append(f"reference {code(report['source'])}")
    if report.get("framework"):
        meta.append(f"framework {cell(report['framework'])}")
    exporter = report.get("exporter")
    if isinstance(exporter, dict) and exporter.get("name"):
        failed = [
            str(a.get("exporter", "?")) if isinstance(a, dict) else str(a)
            for a in as_list(exporter.get("failed_first"))
        ]
        after = f" (after {cell(', '.join(failed))} failed)" if failed else ""
        meta.append(f"exporter {cell(exporter['name'])}{after}")
    if report.get("devices"):
        meta.append("devices " + cell(", ".join(map(str, as_list(report["devices"])))))
    counts = check_counts(report)
    if counts:
        meta.append(f"{sum(counts.values())} checks: " + ", ".join(f"{n} {mark(s)}" for s, n in counts.items()))
    if meta:
        parts.append(" · ".join(meta))
    from bridge.verdict.results import check_label

    what = check_label(as_dict(report.get("check"))).strip(" ()")
    if what:
        parts.append(f"**What was compared:** {cell(what)}")
    if status != "pass" and report.get("reason"):
        parts.append(f"**Reason:** {cell(report['reason'])}")

    outputs = output_groups(report)
    if outputs:
        parts.append(md_table(OUTPUT_HEADERS, [output_row(r) for r in outputs]))
        bad = [r for r in outputs if r.get("status") != "pass"]
        if bad:
            parts.append(
                "\n".join(
                    f"- **{cell(r.get('name', '?'))}** {mark(r.get('status'))}"
                    f" ({cell(where(r))}): {cell(r.get('reason') or '')}"
                    for r in bad
                )
            )
        parts.append(f"_{NOTE}_")
        from bridge.verdict.results import forgiven_note

        parts.extend(f"_Forgiven: {cell(n)}_" for n in (forgiven_note(r.get("name", "?"), r) for r in outputs) if n)

    for device, lat in as_dict(report.get("latency")).items():
        if isinstance(lat, dict) and lat.get("sides"):
            threads = f", {lat['threads']} threads" if lat.get("threads") else ""
            parts.append(f"**Latency on {cell(device)}**{threads}\n\n" + md_table(LATENCY_HEADERS, latency_rows(lat)))
            parts.extend(f"_Latency note ({cell(device)}): {cell(n)}_" for n in as_list(lat.get("notes")))

    plan_inputs = records(as_dict(report.get("plan")).get("inputs"))
    if plan_inputs:
        from bridge.verdict.semantics import describe

        try:
            parts.append("**Inputs:** " + cell("; ".join(describe(r) for r in plan_inputs)))
        except (KeyError, TypeError, IndexError):
            pass
    cases = as_list(report.get("cases"))
    if cases:
        parts.append("**Cases swept:** " + cell(", ".join(case_label(c) for c in cases)))
    vers = versions(report.get("environment"))
    if vers:
        parts.append("**Versions:** " + cell(", ".join(f"{k} {v}" for k, v in vers.items())))
    for note in as_list(report.get("notes")):
        parts.append(f"> {cell(note)}")
    return "\n\n".join(parts) + "\n"
