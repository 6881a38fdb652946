"""The CPU speed zoo: run ``zoo/speed.toml`` through ``bridge check`` and write ``docs/zoo/cpu.md``.

    .venv/bin/python tools/zoo.py                                   # every model (about 30 minutes on 2 cores)
    .venv/bin/python tools/zoo.py --models speed.lstm,speed.vit_b_16  # a subset, merged into the kept summary
    .venv/bin/python tools/zoo.py --render                          # only rewrite the page from the summary

Each model is exported with ``precision = "auto"`` over the float32 candidates (the export as it is, and
the graph with onnxscript's ONNX Runtime fusions where they fuse something): both verified over the full
case plan and timed beside the native model in ONE bench at batch 1; the faster one that passes is
published. "before" is the plain export, "after" the published artifact, both from that one bench.
This renderer only reads bridge check's summary and the reports in its workdir.
"""

from __future__ import annotations

import sys
from pathlib import Path

import zoo_run as Z
from zoo_scale import model_rows

CONFIG, SUMMARY, OUT = "zoo/speed.toml", "build/speed/summary.json", "docs/zoo/cpu.md"
COMMAND = ".venv/bin/python tools/zoo.py"


def _rounds(c: dict | None) -> str:
    rr = (c or {}).get("vs_native_rounds") or []
    return f" ({min(rr):.2f}..{max(rr):.2f})" if rr else ""


def render(summary: dict, workdir: Path, config_rel: str, configured: list[str]) -> str:
    rows = model_rows(summary, workdir)
    env = Z.environment(*(r["export"] for r in rows), *(r["verify"] for r in rows))
    lines = [
        "# bridge CPU zoo: native against ONNX Runtime, float32",
        "",
        "Reproduce (one model at a time, nothing else running; bundles, reports and logs in `build/speed/`):",
        "",
        "```bash",
        COMMAND,
        f"# the same run without the renderer: .venv/bin/python -m bridge check --config {config_rel} --jobs 1",
        "```",
        "",
        'Every model is exported with `precision = "auto"` over two float32 candidates: the export as it is '
        "(`fp32`) and the graph with onnxscript's ONNX Runtime fusions (`fused`, `--optimize transformer`), "
        "where they fuse something. Both are verified under bridge's strict float32 policy, then timed beside "
        "the native model in ONE bench (alternating rounds, waits between sides, other load measured: "
        "docs/benchmarks.md), at batch 1 with 2 threads on every side. ratio = native p50 / ONNX Runtime p50 "
        "(>1: the bundle is faster), per-round range in brackets. before: the plain export; after: the "
        "published artifact (the faster candidate that passed), from the same bench.",
        "",
        f"Machine: {Z.machine_line(env)}. Versions: {Z.versions_line(env)}.",
        "",
        *Z.not_run(configured, {r["name"] for r in rows}, COMMAND),
    ]
    body, before, after = [], [], []
    for r in rows:
        fp32, fused, chosen = r["cands"].get("fp32"), r["cands"].get("fused"), r["chosen"]
        if fp32 and isinstance(fp32.get("vs_native"), (int, float)):
            before.append(fp32["vs_native"])
        if chosen and isinstance(chosen.get("vs_native"), (int, float)) and r["status"] == "pass":
            after.append(chosen["vs_native"])
        fused_cell = (
            f"{Z.num(fused.get('p50_ms'), '.2f')} ({fused['status'].upper()})"
            if fused and fused.get("p50_ms")
            else (fused or {}).get("status", "-")
        )
        body.append(
            [
                r["short"],
                (r["export"] or {}).get("framework") or "-",
                ((r["export"] or {}).get("exporter") or {}).get("name") or "-",
                (r["status"] or "?").upper(),
                Z.num(r["native_ms"], ".2f"),
                Z.num((fp32 or {}).get("p50_ms"), ".2f"),
                fused_cell,
                Z.ratio((fp32 or {}).get("vs_native")) + _rounds(fp32),
                chosen["name"] if chosen else "-",
                f"**{Z.ratio(chosen.get('vs_native'))}**{_rounds(chosen)}" if chosen else "-",
                Z.num(
                    (r["verify"] or {}).get("outputs") and max(o.get("max_abs") or 0 for o in r["verify"]["outputs"])
                ),
                Z.num(r["bench"].get("others_cpu"), ".0%")
                + ("" if r["bench"].get("reliable") is not False else " (!)"),
            ]
        )
    lines += Z.table(
        [
            "model",
            "framework",
            "exporter",
            "verdict",
            "native p50 ms",
            "ORT fp32 ms",
            "fused ms",
            "before: ratio (per-round)",
            "after: artifact",
            "after: ratio (per-round)",
            "max abs (verify)",
            "others' CPU",
        ],
        body,
    )
    lines += [
        "",
        Z.median_line(before, "Before (plain export)"),
        "",
        Z.median_line(after, "After (published artifact)"),
        "",
        "(!): other processes used more than 5% of the machine's CPU during the bench: its ratios are inflated.",
        "",
        "## What the fusion level fused",
        "",
    ]
    for r in rows:
        fused = r["cands"].get("fused") or {}
        s = fused.get("settings") or {}
        what = ", ".join(f"{k} x{v}" for k, v in (s.get("fused") or {}).items()) or fused.get("reason") or "-"
        lines.append(f"- {r['short']}: {what}")
    lines += ["", "Time per model (export with both candidates verified and timed; verify):", ""]
    lines += Z.table(
        ["model", "export s", "verify s"],
        [[r["short"], Z.num(r["export_s"], ".0f"), Z.num(r["verify_s"], ".0f")] for r in rows],
    )
    lines += ["", f"Last model run {Z.last_run(summary)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    return Z.page(
        argv, __doc__, CONFIG, SUMMARY, OUT, "zoo", lambda s, w, c, m, _args: render(s, w, c, m), timeout=1800
    )


if __name__ == "__main__":
    sys.exit(main())
