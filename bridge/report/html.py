"""One self-contained HTML page for a report dict (``Report.to_json()``): readable offline.

Inline CSS, inline SVG plots drawn here (no JavaScript, no external URL, no plotting library):
a verdict banner, the verdict table, an error histogram per output, latency distributions per
runner, every check, cases, policy and environment. All report text goes through html.escape.
"""

from __future__ import annotations

import math
from html import escape

from bridge.report.markdown import (
    LATENCY_HEADERS,
    NOTE,
    OUTPUT_HEADERS,
    as_dict,
    as_list,
    case_label,
    check_counts,
    latency_rows,
    mark,
    num,
    output_groups,
    output_row,
    pair,
    percent,
    records,
    shape,
    status_of,
    to_float,
    versions,
    where,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1150px;margin:0 auto;padding:0 20px 40px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.banner{padding:18px 20px;color:#fff}
.banner .verdict{font-size:28px;font-weight:700;letter-spacing:.04em}
.banner .target{font-size:16px;margin-left:12px}
.banner .reason{margin-top:6px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;word-break:break-word}
.banner.pass,td.status.pass{background:#1a7f37}.banner.fail,td.status.fail{background:#cf222e}
.banner.inconclusive,td.status.inconclusive{background:#9a6700}.banner.unknown,td.status.unknown{background:#57606a}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.status{font-weight:700;color:#fff;text-align:center}
tr.fail td:first-child{box-shadow:inset 3px 0 #cf222e}
tr.inconclusive td:first-child{box-shadow:inset 3px 0 #9a6700}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:12px 0}
dl.meta dt{color:#57606a}dl.meta dd{margin:0}
.plots{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px;width:min-content}
figcaption{font-size:12px;color:#57606a}
svg.plot text{font:11px system-ui,sans-serif;fill:#1f2328}svg.plot text.tick{font-size:9px}
svg.plot .axis{stroke:#57606a;stroke-width:1}
svg.plot .grid{stroke:#d0d7de;stroke-width:1}
svg.plot .bar{fill:#0969da}svg.plot .bar.zeros{fill:#8c959f}
svg.plot .limit{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:4 3}
svg.plot .box{fill:#ddf4ff;stroke:#0969da;stroke-width:1.2}
svg.plot .median{stroke:#0550ae;stroke-width:2.5}
svg.plot .whisker{stroke:#0969da;stroke-width:1.2}
svg.plot .dot{fill:#1f2328;fill-opacity:.45}
.muted{color:#57606a}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
details summary{cursor:pointer;margin:6px 0}
.next{border:1px solid #0969da;background:#ddf4ff;border-radius:6px;padding:10px 14px;margin:14px 0}
.failing{margin:14px 0}.failing li{margin:4px 0}
"""


def e(x) -> str:
    """Text for HTML: control characters made visible (bridge.report.text.safe), then HTML-escaped."""
    from bridge.report.text import safe

    return escape(safe(x), quote=True)


def _status_class(status) -> str:
    return status if status in ("pass", "fail", "inconclusive") else "unknown"


def table(
    headers: list[str],
    rows: list[list[str]],
    numeric: set[int] = frozenset(),
    status_col: int | None = None,
    row_status: list | None = None,
) -> str:
    """An HTML table of text cells (escaped here)."""
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{_status_class(row_status[i])}"' if row_status else ""
        out.append(f"<tr{cls}>")
        for j, c in enumerate(row):
            if j == status_col:
                out.append(f'<td class="status {_status_class(row_status[i] if row_status else None)}">{e(c)}</td>')
            else:
                out.append(f'<td class="num">{e(c)}</td>' if j in numeric else f"<td>{e(c)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def value_html(v) -> str:
    """Any JSON value as HTML: dicts as key/value tables, a dict of like records as one table."""
    if isinstance(v, dict):
        if not v:
            return '<span class="muted">(none)</span>'
        recs = list(v.values())
        keys = list(recs[0].keys()) if isinstance(recs[0], dict) else None
        if keys and all(
            isinstance(r, dict) and list(r.keys()) == keys and not any(isinstance(x, (dict, list)) for x in r.values())
            for r in recs
        ):
            return table(["", *keys], [[k, *(_scalar(r[c]) for c in keys)] for k, r in v.items()])
        rows = "".join(f"<tr><th>{e(k)}</th><td>{value_html(x)}</td></tr>" for k, x in v.items())
        return f"<table>{rows}</table>"
    if isinstance(v, list):
        if all(not isinstance(x, (dict, list)) for x in v):
            return e(", ".join(_scalar(x) for x in v)) if v else '<span class="muted">(none)</span>'
        return "".join(value_html(x) for x in v)
    return e(_scalar(v))


def _scalar(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


# --- plots ---------------------------------------------------------------------------------------


def el(name: str, text=None, **attrs) -> str:
    """An SVG element: floats rounded to 0.1, ``cls`` becomes class, ``text_anchor`` text-anchor."""
    parts = [name]
    for k, v in attrs.items():
        k = "class" if k == "cls" else k.replace("_", "-")
        parts.append(f'{k}="{e(f"{v:.1f}" if isinstance(v, float) else v)}"')
    head = " ".join(parts)
    return f"<{head}/>" if text is None else f"<{head}>{text}</{name}>"


def error_hist_svg(hist: dict, atol=None, title: str = "") -> str:
    """Bars: exact zeros, then one per decade of |onnx - ref|; a dashed line at atol. "" if malformed."""
    edges, counts = [to_float(x) for x in as_list(hist.get("log10_edges"))], as_list(hist.get("counts"))
    n = min(len(counts), max(len(edges) - 1, 0))
    if not n or not all(x is not None and math.isfinite(x) for x in edges[: n + 1]) or edges[n] <= edges[0]:
        return ""
    labels = ["0"] + [f"1e{int(edges[i])}" for i in range(n)]
    tips = ["exactly 0"] + [f"[1e{int(edges[i])}, 1e{int(edges[i + 1])})" for i in range(n)]
    values = [_int(hist.get("zeros"))] + [_int(c) for c in counts[:n]]
    w_bar, left, top, h_plot = 30, 40, 22, 150
    width, height, base = left + w_bar * len(values) + 12, top + h_plot + 44, top + h_plot
    peak = max(values) or 1
    y = lambda v: base - h_plot * v / peak  # noqa: E731
    out = [
        f'<svg class="plot error-hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(title)}"><title>{e(title)}</title>'
    ]
    for v in sorted({0, peak // 2, peak}):
        yy = float(y(v))
        out.append(el("line", cls="grid", x1=left, x2=width - 8, y1=yy, y2=yy))
        out.append(el("text", str(v), x=left - 4, y=yy + 4, text_anchor="end"))
    for i, (lab, tip, v) in enumerate(zip(labels, tips, values)):
        x = left + i * w_bar
        out.append(
            el(
                "rect",
                f"<title>{e(tip)}: {v}</title>",
                cls="bar zeros" if i == 0 else "bar",
                x=x + 3,
                y=float(y(v)),
                width=w_bar - 6,
                height=float(base - y(v)),
            )
        )
        if v:
            out.append(el("text", str(v), x=x + w_bar / 2, y=float(y(v)) - 3, text_anchor="middle"))
        out.append(el("text", e(lab), cls="tick", x=x + w_bar / 2, y=base + 14, text_anchor="middle"))
    out.append(el("line", cls="axis", x1=left, x2=width - 8, y1=base, y2=base))
    a = to_float(atol)
    if a and a > 0 and n and math.isfinite(a):
        pos = (math.log10(a) - edges[0]) / (edges[n] - edges[0])
        if 0 <= pos <= 1:
            x = float(left + w_bar + pos * n * w_bar)
            out.append(el("line", cls="limit", x1=x, x2=x, y1=top - 6, y2=base))
            out.append(el("text", e(f"atol {num(a, 'g')}"), x=x + 3, y=top - 8))
    out.append(
        el(
            "text",
            "|onnx - reference| per decade (elements)",
            x=left + (width - left) // 2,
            y=height - 8,
            text_anchor="middle",
        )
    )
    return "".join(out) + "</svg>"


def _int(x) -> int:
    f = to_float(x)
    return int(f) if f is not None and math.isfinite(f) and f > 0 else 0


def quantile(xs: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(math.floor(pos))
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        out = [m * 10.0**d for d in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
        return [t for t in out if lo <= t * (1 + 1e-9) and t <= hi * (1 + 1e-9)]
    raw = (hi - lo) / 5 or 1.0
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    return [i * step for i in range(int(hi / step) + 1)]


def _samples(s: dict) -> list[float]:
    """A runner's samples in ms, else the few percentiles it reported."""
    finite = lambda vals: [f for f in map(to_float, vals) if f is not None and math.isfinite(f)]  # noqa: E731
    return finite(as_list(s.get("samples_ms"))) or finite(s.get(k) for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms"))


def latency_svg(lat: dict, device: str = "") -> str:
    """One row per runner: samples as dots, box = p25..p75, thick line = median, whiskers = min..max."""
    rows = [
        (str(name), xs, to_float(as_dict(s).get("p50_ms")))
        for name, s in as_dict(lat.get("sides")).items()
        if (xs := _samples(as_dict(s)))
    ]
    if not rows:
        return ""
    lo, hi = min(min(xs) for _, xs, _ in rows), max(max(xs) for _, xs, _ in rows)
    log = lo > 0 and hi / lo > 20  # wide spreads (a 10x speedup) read better on a log axis
    if log:
        lo, hi = 10.0 ** math.floor(math.log10(lo)), 10.0 ** math.ceil(math.log10(hi))
    else:
        lo, hi = 0.0, max(_ticks(0.0, hi or 1.0, False)[-1], hi) or 1.0
    left, plot_w, row_h, top = 110, 560, 46, 12
    width, axis_y = left + plot_w + 90, top + row_h * len(rows)
    height = axis_y + 40

    def x(v: float) -> float:
        if log:
            return left + plot_w * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return left + plot_w * (v - lo) / (hi - lo)

    title = f"latency per runner{' on ' + device if device else ''} (ms{', log scale' if log else ''})"
    out = [
        f'<svg class="plot latency" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(title)}"><title>{e(title)}</title>'
    ]
    for t in _ticks(lo, hi, log):
        out.append(el("line", cls="grid", x1=x(t), x2=x(t), y1=top, y2=axis_y))
        out.append(el("text", e(format(t, "g")), x=x(t), y=axis_y + 14, text_anchor="middle"))
    out.append(el("line", cls="axis", x1=left, x2=left + plot_w, y1=axis_y, y2=axis_y))
    for i, (name, xs, p50) in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        q1, med, q3 = quantile(xs, 0.25), quantile(xs, 0.5), quantile(xs, 0.75)
        out.append(el("text", e(name), x=left - 8, y=cy + 4, text_anchor="end"))
        out.append(el("line", cls="whisker", x1=x(min(xs)), x2=x(max(xs)), y1=cy, y2=cy))
        for v in (min(xs), max(xs)):
            out.append(el("line", cls="whisker", x1=x(v), x2=x(v), y1=cy - 7, y2=cy + 7))
        out.append(el("rect", cls="box", x=x(q1), y=cy - 12, width=max(x(q3) - x(q1), 1.0), height=24))
        out.append(el("line", cls="median", x1=x(med), x2=x(med), y1=cy - 12, y2=cy + 12))
        for k, v in enumerate(xs[:: math.ceil(len(xs) / 1000)]):  # at most 1000 dots a runner
            out.append(el("circle", cls="dot", cx=x(v), cy=cy + ((k * 7) % 11 - 5) * 1.6, r=2.2))  # fixed jitter
        p50_label = f"p50 {num(p50 if p50 is not None else med, '.3g')} ms"
        out.append(el("text", e(p50_label), x=left + plot_w + 8, y=cy + 4))
    out.append(el("text", e(title), x=left + plot_w // 2, y=height - 6, text_anchor="middle"))
    return "".join(out) + "</svg>"


# --- page ----------------------------------------------------------------------------------------


def _meta(report: dict) -> str:
    items = [
        ("kind", report.get("kind")),
        ("target", report.get("target")),
        ("reference", report.get("source")),
        ("framework", report.get("framework")),
    ]
    exporter = report.get("exporter")
    if isinstance(exporter, dict):
        failed = [
            str(a.get("exporter", a)) if isinstance(a, dict) else str(a) for a in as_list(exporter.get("failed_first"))
        ]
        items.append(
            ("exporter", str(exporter.get("name") or "?") + (f" (after {', '.join(failed)} failed)" if failed else ""))
        )
    items.append(("devices", ", ".join(map(str, as_list(report.get("devices"))))))
    from bridge.verdict.results import check_label

    items.append(
        (
            "compared",
            check_label(as_dict(report.get("check"))).strip(" ()")
            or ("ONNX Runtime against the native model" if report.get("source") else ""),
        )
    )
    plan_inputs = records(as_dict(report.get("plan")).get("inputs"))
    if plan_inputs:
        from bridge.verdict.semantics import describe

        try:
            items.append(("inputs", "; ".join(describe(r) for r in plan_inputs)))
        except (KeyError, TypeError, IndexError):
            pass
    counts = check_counts(report)
    if counts:
        items.append(("checks", f"{sum(counts.values())}: " + ", ".join(f"{n} {mark(s)}" for s, n in counts.items())))
    vers = versions(report.get("environment"))
    if vers:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in vers.items())))
    items.append(("schema", f"version {report.get('schema_version', '?')}"))
    return '<dl class="meta">' + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items if v) + "</dl>"


def _verdicts(report: dict, groups: list[dict]) -> str:
    if not groups:
        return f"<h2>Verdict per output</h2><p>No output was compared. {e(report.get('reason') or '')}</p>"
    out = [
        "<h2>Verdict per output</h2>",
        table(
            OUTPUT_HEADERS,
            [output_row(r) for r in groups],
            numeric={5, 6, 7, 8, 9},
            status_col=1,
            row_status=[r.get("status") for r in groups],
        ),
        f'<p class="muted">{e(NOTE)}</p>',
    ]
    from bridge.verdict.results import forgiven_note

    out.extend(
        f'<p class="muted">Forgiven: {e(n)}</p>' for n in (forgiven_note(r.get("name", "?"), r) for r in groups) if n
    )
    return "".join(out)  # the outputs that did not pass, with their reasons, open the page (_failing)


def _histograms(groups: list[dict]) -> str:
    figs = []
    for r in groups:
        hist, tol = r.get("error_histogram"), r.get("tolerance")
        label = f"{r.get('name')} on {r.get('device') or '-'}"
        line = r.get("applied_atol") if r.get("applied_atol") is not None else as_dict(tol).get("atol")
        svg = error_hist_svg(hist, line, f"error histogram: {label}") if isinstance(hist, dict) else ""
        if not svg:
            figs.append(
                f"<figure><figcaption>{e(label)}: no error histogram "
                f"({e(r.get('reason') or 'values were not compared')})</figcaption></figure>"
            )
            continue
        n, m = r.get("hist_cases", 1), r.get("n_cases", 1)
        cap = (
            f"{label}: {mark(r.get('status'))}; {n if n == m else f'{n} of {m}'} case(s) plotted; "
            f"max abs {num(r.get('max_abs'))}; {percent(r.get('fail_fraction'))} of elements outside tolerance"
        )
        figs.append(f"<figure>{svg}<figcaption>{e(cap)}</figcaption></figure>")
    return '<h2>Error distribution</h2><div class="plots">' + "".join(figs) + "</div>" if figs else ""


def _checks(report: dict, status: str) -> str:
    checks = records(report.get("checks"))
    if not checks:
        return ""
    rows = [
        [
            c.get("name", "?"),
            c.get("case") or "-",
            c.get("device") or "-",
            mark(c.get("status")),
            pair(c.get("ref_shape"), c.get("cand_shape"), shape),
            num(c.get("max_abs")),
            num(c.get("max_rel")),
            percent(c.get("fail_fraction")),
            c.get("reason") or "",
        ]
        for c in checks
    ]
    headers = ["output", "case", "device", "verdict", "shape", "max abs", "max rel", "failing", "reason"]
    return (
        f"<h2>Checks</h2><details{' open' if status != 'pass' else ''}>"
        f"<summary>{len(checks)} checks (output x case x device)</summary>"
        + table(headers, rows, numeric={5, 6, 7}, status_col=3, row_status=[c.get("status") for c in checks])
        + "</details>"
    )


def _latency(report: dict) -> str:
    out = []
    for device, lat in as_dict(report.get("latency")).items():
        if not (isinstance(lat, dict) and lat.get("sides")):
            continue
        extra = [
            f"{lat['threads']} threads" if lat.get("threads") else "",
            f"{lat['rounds']} rounds" if lat.get("rounds") else "",
        ]
        extra = ", ".join(x for x in extra if x)
        out.append(f"<h3>{e(device)}{e(f' ({extra})' if extra else '')}</h3>")
        out.append(table(LATENCY_HEADERS, latency_rows(lat), numeric={1, 2, 3, 4, 5, 6}))
        out.append(latency_svg(lat, str(device)))
        for side, ratios in as_dict(lat.get("speedup_per_round")).items():
            fs = [f for f in map(to_float, as_list(ratios)) if f is not None]
            if fs:
                out.append(
                    f'<p class="muted">{e(side)} vs {e(lat.get("baseline"))}, speedup per round: '
                    f"{e(', '.join(f'{f:.2f}x' for f in fs))}</p>"
                )
        out.extend(f'<p class="muted">{e(note)}</p>' for note in as_list(lat.get("notes")))
    return "<h2>Latency</h2>" + "".join(out) if out else ""


def _cases(report: dict) -> str:
    rows = []
    for c in as_list(report.get("cases")):
        if not isinstance(c, dict):
            rows.append([case_label(c), "", "", ""])
            continue
        sizes = c.get("sizes")
        sizes = ", ".join(f"{k}={v}" for k, v in sizes.items()) if isinstance(sizes, dict) else _scalar(sizes)
        rows.append([c.get("label", "?"), _scalar(c.get("seed")), sizes, _scalar(c.get("origin"))])
    return "<h2>Cases swept</h2>" + table(["case", "seed", "sizes", "origin"], rows) if rows else ""


def _failing(groups: list[dict]) -> str:
    """The outputs that did not pass, each with its reason: the first thing under the verdict."""
    bad = [r for r in groups if r.get("status") != "pass"]
    if not bad:
        return ""
    return (
        '<ul class="failing">'
        + "".join(
            f"<li><b>{e(r.get('name'))}</b> {e(mark(r.get('status')))} ({e(where(r))}): "
            f"<code>{e(r.get('reason') or '')}</code></li>"
            for r in bad
        )
        + "</ul>"
    )


def _next_step(report: dict, status: str, groups: list[dict]) -> str:
    from bridge.report.advice import next_step

    error = as_dict(report.get("error"))
    step = error.get("hint") if status == "error" else None
    source = report.get("source")
    api = isinstance(source, str) and source.startswith("<")
    step = step or next_step(status, str(report.get("target") or "TARGET"), source, groups, api=api)
    return f'<div class="next"><b>Next step:</b> {e(step)}</div>' if step else ""


def render_html(report: dict) -> str:
    from bridge.report.text import clean

    report = clean(as_dict(report))
    status = status_of(report)
    title = f"{mark(status)}: bridge {report.get('kind') or 'report'} of {report.get('target') or 'model'}"
    reason = report.get("reason") if status != "pass" else ""
    reason = f'<div class="reason">{e(reason)}</div>' if reason else ""
    groups = output_groups(report)
    # What the reader needs first: the verdict (banner), the outputs that did not pass, the next step, the
    # table and the notes; then the evidence; the tolerance rows and the environment folded at the end.
    body = [
        f'<header class="banner {_status_class(status)}"><span class="verdict">{e(mark(status))}</span>'
        f'<span class="target">bridge {e(report.get("kind") or "report")} of {e(report.get("target") or "model")}'
        f"</span>{reason}</header>",
        "<main>",
        _failing(groups),
        _next_step(report, status, groups),
        _verdicts(report, groups),
    ]
    if as_list(report.get("notes")):
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    body += [_meta(report), _histograms(groups), _checks(report, status), _latency(report), _cases(report)]
    for key, title in (("policy", "Tolerance policy"), ("environment", "Environment")):
        if report.get(key):
            body.append(f"<h2>{title}</h2><details><summary>show</summary>{value_html(report[key])}</details>")
    body.append("</main>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )
