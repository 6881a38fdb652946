"""Plain-text rendering of a Report for the terminal (no colour codes; readable in CI logs). Every string
of the report passes through bridge.report.text.clean first: names, reasons and notes from a hostile
bundle cannot steer the terminal."""

from __future__ import annotations

from bridge.report.model import Report
from bridge.report.text import OUTPUT_COLUMNS, clean
from bridge.verdict.results import applied_tolerance, check_label
from bridge.verdict.status import mark


def fmt(x, spec: str = ".2e") -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return format(x, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def case_text(c: dict) -> str:
    """A case as a reader wants it: its label, with its sizes unless the label says them."""
    sizes = c.get("sizes") or {}
    if not sizes or "=" in c["label"]:
        return c["label"]
    return f"{c['label']}[{','.join(f'{k}={v}' for k, v in sizes.items())}]"


def render(report: Report) -> str:
    report = clean(report)
    parts = []
    head = f"bridge {report.kind}: {report.target}"
    if report.source:
        head += f"  vs  {report.source}"
    parts.append(head)
    if report.exporter:
        parts.append(f"exporter: {report.exporter.get('name')}")
        for a in report.exporter.get("failed_first") or []:
            parts.append(f"  tried first: {a.get('exporter')}: {a.get('error')}")
    if report.cases:
        parts.append(f"cases ({len(report.cases)}): " + ", ".join(case_text(c) for c in report.cases))
    if (report.plan or {}).get("inputs"):
        from bridge.verdict.semantics import describe

        parts.append("inputs: " + "; ".join(describe(row) for row in report.plan["inputs"]))
    from bridge.verdict.plan import summary_lines

    parts.extend(summary_lines(report.plan or {}))
    from bridge.verdict.results import forgiven, forgiven_note, groups

    spared = {key: forgiven(g) for key, g in zip(report.summary, groups(report.results))}
    rows = []
    for key, r in report.summary.items():
        tol = r.tolerance
        rows.append(
            [
                r.name,
                mark(r.status),
                r.device,
                "x".join(map(str, r.ref_shape)) if r.ref_shape is not None else "-",
                r.ref_dtype or r.cand_dtype or "-",
                fmt(r.max_abs),
                fmt(r.max_rel),
                (fmt(r.fail_fraction, ".2%") if r.fail_fraction is not None else "-")
                + (f" +{spared[key]['forgiven_count']} forgiven" if spared[key]["forgiven_count"] else ""),
                applied_tolerance(tol.to_json(), r.applied_atol).replace(" / ", "/") if tol else "-",
                f"{fmt(r.needed_atol, '.1e')}/{fmt(r.needed_rtol, '.1e')}",
            ]
        )
    if rows:
        parts.append(
            table(
                [*OUTPUT_COLUMNS, "atol/rtol applied", "would pass at (other kept)"],
                rows,
            )
        )
        parts.extend(
            f"forgiven: {n}" for n in (forgiven_note(r.name, spared[k]) for k, r in report.summary.items()) if n
        )
    for device, lat in report.latency.items():
        sides = lat["sides"]
        lrows = [
            [
                name,
                device,
                f"{s['p50_ms']:.3f}",
                f"{s['p90_ms']:.3f}",
                f"{s['p99_ms']:.3f}",
                f"{s['min_ms']:.3f}",
                str(s["runs"]),
                fmt(s.get("first_run_ms"), ".1f"),
                fmt(s.get("setup_ms"), ".0f"),
                fmt(s.get("rss_growth_mb"), ".0f"),
            ]
            for name, s in sides.items()
        ]
        parts.append(
            table(
                [
                    "latency",
                    "device",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "min ms",
                    "runs",
                    "first ms",
                    "setup ms",
                    "memory MiB",
                ],
                lrows,
            )
        )
        for side, ratio in lat["speedup_vs_baseline_p50"].items():
            rounds = lat["speedup_per_round"][side]
            parts.append(
                f"{side} vs {lat['baseline']}: {ratio:.2f}x at p50 "
                f"(per round {min(rounds):.2f}x..{max(rounds):.2f}x, threads={lat['threads']})"
            )
        parts.extend(f"latency note [{device}]: {note}" for note in lat.get("notes") or [])
    for device, data in report.dataset.items():
        for name, m in data["outputs"].items():
            line = f"real data [{device}] {name}: top-1 agreement {100 * m['top1_agreement']:.2f}% of {m['rows']} rows"
            if "accuracy_native" in m:
                line += f"; accuracy native {100 * m['accuracy_native']:.2f}%, ONNX {100 * m['accuracy_onnx']:.2f}%"
            parts.append(line)
    loc = report.localize
    if loc:
        if loc.get("status") == "diverged":
            where = f"node {loc.get('node')} ({loc.get('op_type')}), output {loc.get('output')}"
            if loc.get("module") is not None:
                where += f", module {loc.get('module') or '(root)'}"
            parts.append(
                f"first divergence [{loc.get('engines')}, case {loc.get('case')}]: {where}; "
                f"max abs {fmt(loc.get('max_abs'))}; reproduction in {loc.get('repro_dir')}"
            )
        else:
            parts.append(f"localize: {loc.get('status')}")
        for note in loc.get("notes") or []:
            parts.append(f"  localize note: {note}")
    for note in report.notes:
        parts.append(f"note: {note}")
    verdict = mark(report.status)
    parts.append(f"verdict: {verdict}" + (f": {report.reason}" if report.reason else "") + check_label(report.check))
    return "\n".join(parts)
