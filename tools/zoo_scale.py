"""The deployment-scale zoo: run ``zoo/scale.toml`` through ``bridge check`` and write ``docs/zoo/scale.md``.

    .venv/bin/python tools/zoo_scale.py                         # every model (about an hour on 2 cores)
    .venv/bin/python tools/zoo_scale.py --models scale.bert_base  # a subset, merged into the kept summary
    .venv/bin/python tools/zoo_scale.py --render                # only rewrite the page from the summary
    .venv/bin/python tools/zoo_scale.py --config zoo/scale_gpu.toml --summary build/scale_gpu/summary.json \\
        --out docs/zoo/scale_gpu.md                             # the same zoo on CUDA, where a GPU is lent

Every model is exported with ``precision = "auto"`` (bridge/precision/auto.py): its candidates built,
verified and timed with the native model and PyTorch's own int8 in ONE bench, the fastest that passes
published and verified again by bridge check's verify step. This renderer only reads what bridge check
wrote: its summary, and each model's export report (``exporter.auto``: every candidate with its verdict,
error and timing; ``latency``: the bench) and verify report.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import zoo_run as Z

CONFIG, SUMMARY, OUT = "zoo/scale.toml", "build/scale/summary.json", "docs/zoo/scale.md"
COMMAND = ".venv/bin/python tools/zoo_scale.py"
GOAL = 2.5  # median chosen artifact against native float32 (issue 23)
COLUMNS = ("fp32", "fused", "int8", "fused+int8", "fp16")


def model_rows(summary: dict, workdir: Path) -> list[dict]:
    rows = []
    for record in summary.get("models", []):
        export, verify = Z.reports(record, workdir)
        a = Z.auto(export)
        bench = Z.auto_latency(export)
        cands = {c["name"]: c for c in a.get("candidates") or []}
        chosen = cands.get(a.get("chosen"))
        sides = bench.get("sides") or {}
        native = (sides.get("native") or {}).get("p50_ms")
        peer = (sides.get("native-int8") or {}).get("p50_ms")
        rows.append(
            {
                "name": record["name"],
                "short": record["name"].partition(".")[2] or record["name"],
                "status": record.get("status"),
                "message": record.get("message") or "",
                "export": export,
                "verify": verify,
                "auto": a,
                "bench": bench,
                "cands": cands,
                "chosen": chosen,
                "native_ms": native,
                "peer_ms": peer,
                "peer": (a.get("peers") or {}).get("native-int8") or {},
                "sizes": bench.get("sizes") or (a.get("peers") or {}).get("sizes") or {},
                "export_s": Z.log_seconds(workdir / f"{record['name']}.export.log"),
                "verify_s": Z.log_seconds(workdir / f"{record['name']}.verify.log"),
                "seconds": record.get("seconds"),
                "run_at": record.get("run_at") or "",
            }
        )
    return rows


def _cell(c: dict | None) -> str:
    if not c:
        return "-"
    verdict = c.get("status", "?").upper()
    if c.get("vs_native") is None:
        return verdict
    mark = "" if c.get("eligible") else " (not eligible)"
    return f"{c['vs_native']:.2f}x {verdict}{mark}"


def why_not(c: dict) -> str:
    """Why a candidate was not chosen: its verification's reason when it did not pass, else the rule."""
    if c.get("status") not in ("pass", None) and c.get("reason"):
        return c["reason"]
    return c.get("why_not") or c.get("reason") or ""


def candidate_cells(r: dict, c: dict, chosen: str) -> tuple[str, str, str]:
    """A candidate's top-1 on real samples (marked when they were its calibration samples), accuracy
    native / ONNX, and eligibility (``chosen`` for the published one), as table cells."""
    top1 = Z.num(c.get("top1_real"), ".1%") + (
        "" if r["auto"].get("held_out") or c.get("top1_real") is None else " (calib.)"
    )
    acc = (
        f"{100 * c['accuracy_native']:.1f}% / {100 * c['accuracy_onnx']:.1f}%"
        if c.get("accuracy_native") is not None
        else "-"
    )
    published = r["chosen"] and r["chosen"]["name"] == c["name"]
    return top1, acc, chosen if published else ("yes" if c.get("eligible") else "no")


def render(summary: dict, workdir: Path, config_rel: str, configured: list[str], command: str) -> str:
    rows = model_rows(summary, workdir)
    env = Z.environment(*(r["export"] for r in rows), *(r["verify"] for r in rows))
    device = next((r["auto"].get("device") for r in rows if r["auto"].get("device")), "cpu")
    lines = [
        "# bridge at deployment scale: the fastest artifact that passes, proven",
        "",
        "Reproduce (one model at a time, nothing else running; bundles, reports and logs in "
        f"`{Z.one_line(str(workdir.relative_to(Z.ROOT)) if workdir.is_relative_to(Z.ROOT) else workdir)}/`):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"That is `bridge check --config {config_rel}` plus this page's renderer (`tools/zoo_scale.py`, which only "
        'reads bridge check\'s summary and reports). Every model is exported with `precision = "auto"`: bridge '
        "builds the candidates (float32 as exported, fused with onnxscript's ONNX Runtime fusions, int8 of both, "
        "fp16 where the device benefits), verifies each against the native model under its precision's policy "
        "row, times every candidate that passed beside native float32 and PyTorch's own int8 in ONE bench "
        "(alternating rounds, bridge/bench.py), and publishes the fastest that passes its policy; bridge check's "
        "verify step then verifies the published bundle against the native model again.",
        "",
        f"Machine: {Z.machine_line(env)}; device {device}; threads 2 on every side. Versions: {Z.versions_line(env)}.",
        "",
        *Z.not_run(configured, {r["name"] for r in rows}, command),
        "## Speed: every candidate beside native float32, in one bench per model",
        "",
        "Each cell: that side's p50 against native float32's p50 in the same bench (>1: faster), and the "
        "candidate's verdict under its policy row. native int8: `torch.ao.quantization.quantize_dynamic` of "
        "nn.Linear/nn.LSTM (PyTorch's own int8; Keras has none outside TF Lite). ORT fp32: the float32 export "
        "unfused. chosen: what the bundle holds; vs ORT fp32 / vs native int8: the chosen artifact against "
        "the best alternative a user has without bridge.",
        "",
    ]
    headers = [
        "model",
        "timed at",
        "native fp32 ms",
        "native int8",
        "ORT fp32",
        "fused",
        "int8",
        "fused+int8",
        "fp16",
        "chosen",
        "chosen ms",
        "vs native fp32",
        "vs ORT fp32",
        "vs native int8",
        "bundle verified",
        "others' CPU",
    ]
    body, chosen_ratios, beats_peer = [], [], []
    for r in rows:
        c = r["chosen"]
        peer = (
            f"{r['native_ms'] / r['peer_ms']:.2f}x (err {Z.num(r['peer'].get('rel_norm'), '.1e')})"
            if r["peer_ms"] and r["native_ms"]
            else "-"
        )
        vs_native = c.get("vs_native") if c else None
        if isinstance(vs_native, (int, float)) and r["status"] == "pass":
            chosen_ratios.append(vs_native)
        if c and c.get("vs_native_int8") is not None:
            beats_peer.append((r["short"], c["vs_native_int8"]))
        verified = (r["verify"] or {}).get("status") or r["status"] or "?"
        body.append(
            [
                r["short"],
                ", ".join(f"{k}={v}" for k, v in r["sizes"].items()) or "-",
                Z.num(r["native_ms"], ".2f"),
                peer,
                *(_cell(r["cands"].get(k)) for k in COLUMNS),
                f"**{c['name']}**" if c else "-",
                Z.num(c.get("p50_ms") if c else None, ".2f"),
                f"**{Z.ratio(vs_native)}**" if c else "-",
                Z.ratio(c.get("vs_ort_fp32") if c else None),
                Z.ratio(c.get("vs_native_int8") if c else None),
                str(verified).upper(),
                Z.num(r["bench"].get("others_cpu"), ".0%")
                + ("" if r["bench"].get("reliable") is not False else " (!)"),
            ]
        )
    lines += Z.table(headers, body)
    lines += ["", Z.median_line(chosen_ratios, "Chosen artifact against native float32")]
    if chosen_ratios:
        med = statistics.median(chosen_ratios)
        lines.append(
            f"Goal (issue 23): median at least {GOAL}x: **{'met' if med >= GOAL else 'not met'}** ({med:.2f}x)."
        )
    if beats_peer:
        faster = [n for n, x in beats_peer if x > 1]
        lines.append(
            f"Against PyTorch's own int8: the chosen artifact is faster on {len(faster)} of {len(beats_peer)} models "
            f"that have one ({', '.join(f'{n} {x:.2f}x' for n, x in beats_peer)})."
        )
    lines += [
        "",
        "(!): the bench measured other processes above 5% of the machine's CPU (`reliable: false`): its ratios "
        "are inflated; read them beside the others' CPU column.",
        "",
        "## Every candidate: error, verdict, and why it was or was not chosen",
        "",
        "rel. error norm: the largest ||onnx - native|| / ||native|| over outputs and cases; separation: how far "
        "apart the native outputs of two seeded draws lie, in units of the candidate's error (bridge/precision/"
        "auto.py: without real samples a reduced-precision candidate needs at least "
        f"{next((r['auto'].get('separation_min') for r in rows if r['auto']), 10):g} to be chosen); "
        "top-1 / accuracy: on the real held-out samples, where the model has them.",
        "",
    ]
    detail = []
    for r in rows:
        for c in r["cands"].values():
            top1, acc, eligible = candidate_cells(r, c, "chosen")
            detail.append(
                [
                    r["short"],
                    c["name"],
                    c.get("method") or "-",
                    c.get("status", "?").upper(),
                    Z.num(c.get("rel_norm"), ".2e"),
                    Z.num(c.get("separation"), ".3g"),
                    top1,
                    acc,
                    eligible,
                    Z.one_line(why_not(c), 220) or "-",
                ]
            )
    lines += Z.table(
        [
            "model",
            "candidate",
            "method",
            "verdict",
            "rel. error norm",
            "separation",
            "top-1 held-out",
            "accuracy native / ONNX",
            "eligible",
            "why not / reason",
        ],
        detail,
    )
    lines += ["", "## What was fused and quantized", ""]
    for r in rows:
        parts = []
        for name in ("fused", "int8", "fused+int8", "fp16"):
            c = r["cands"].get(name)
            if not c:
                continue
            s = c.get("settings") or {}
            if name == "fused" and s.get("fused"):
                parts.append("fused: " + ", ".join(f"{k} x{v}" for k, v in s["fused"].items()))
            elif name == "fused" and c.get("reason"):
                parts.append(f"fused: {c['reason']}")
            elif s.get("quantized_ops"):
                parts.append(
                    f"{name} ({c.get('method')}): " + ", ".join(f"{k} x{v}" for k, v in s["quantized_ops"].items())
                )
        lines.append(f"- {r['short']}: " + ("; ".join(parts) or "-"))
    lines += ["", "## Where the goal is not reached, and run time", ""]
    for r in rows:
        c = r["chosen"]
        if r["status"] != "pass":
            lines.append(f"- {r['short']}: {r['status'].upper()}: {Z.one_line(r['message'], 400)}")
        elif c and isinstance(c.get("vs_native"), (int, float)) and c["vs_native"] < GOAL:
            blocked = [
                f"{x['name']} {x.get('status', '?').upper()}"
                + (f" at {x['vs_native']:.2f}x" if isinstance(x.get("vs_native"), (int, float)) else "")
                + f" ({Z.one_line(why_not(x), 260)})"
                for x in r["cands"].values()
                if x.get("precision") != "fp32" and not x.get("eligible")
            ]
            lines.append(
                f"- {r['short']}: {c['name']} at {c['vs_native']:.2f}x"
                + (f"; not eligible: {'; '.join(blocked)}" if blocked else "")
            )
    total = sum(r["seconds"] or 0 for r in rows)
    lines += [
        "",
        "Time per model (export with every candidate built, verified and timed; then bridge check's verify), and "
        "when it ran: a model whose bench was disturbed by other work is run again alone (`--models NAME`) and "
        "merged into the summary, so each row's figures come from one bench of its own run:",
        "",
    ]
    lines += Z.table(
        ["model", "export s", "verify s", "total s", "run finished (UTC)"],
        [
            [
                r["short"],
                Z.num(r["export_s"], ".0f"),
                Z.num(r["verify_s"], ".0f"),
                Z.num(r["seconds"], ".0f"),
                r["run_at"][:19].replace("T", " ") or "-",
            ]
            for r in rows
        ],
    )
    lines += [
        "",
        f"Total: {total / 60:.0f} min over {len(rows)} models. Last model run {Z.last_run(summary)}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    def page(summary, workdir, config_rel, configured, args) -> str:
        command = (
            COMMAND
            if args.config == CONFIG
            else f"{COMMAND} --config {args.config} --summary {args.summary} --out {args.out}"
        )
        return render(summary, workdir, config_rel, configured, command)

    return Z.page(argv, __doc__, CONFIG, SUMMARY, OUT, "zoo_scale", page)


if __name__ == "__main__":
    sys.exit(main())
