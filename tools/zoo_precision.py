"""The CPU precision zoo: run ``zoo/precision.toml`` through ``bridge check`` and write ``docs/zoo/cpu_int8.md``.

    .venv/bin/python tools/zoo_precision.py                            # every model (about 20 minutes)
    .venv/bin/python tools/zoo_precision.py --models precision.lstm    # a subset, merged into the summary
    .venv/bin/python tools/zoo_precision.py --render                   # only rewrite the page

Each model is exported with ``precision = "auto"`` over the candidates fp32, int8 and fp16: each derived
from the verified float32 export, verified against the native float32 model under its precision's row
(with the real held-out digits and their labels for the two reference CNNs), and timed beside the native
model in ONE bench. This renderer only reads bridge check's summary and the reports in its workdir.
"""

from __future__ import annotations

import sys
from pathlib import Path

import zoo_run as Z
from zoo_scale import candidate_cells, model_rows, why_not

CONFIG, SUMMARY, OUT = "zoo/precision.toml", "build/precision/summary.json", "docs/zoo/cpu_int8.md"
COMMAND = ".venv/bin/python tools/zoo_precision.py"
PRECISIONS = ("int8", "fp16")


def _calibrated(c: dict, real: str | None) -> str:
    cal = (c.get("settings") or {}).get("calibration_rows")
    if c.get("method") != "static-qdq":
        return "-"
    return f"{cal} rows" + (" (training digits)" if real else " (seeded draws: no real data)")


def render(summary: dict, workdir: Path, config_rel: str, configured: list[str]) -> str:
    rows = model_rows(summary, workdir)
    env = Z.environment(*(r["export"] for r in rows), *(r["verify"] for r in rows))
    lines = [
        "# bridge CPU zoo: reduced precision beside float32",
        "",
        "Reproduce (one model at a time, nothing else running; bundles, reports and logs in `build/precision/`):",
        "",
        "```bash",
        COMMAND,
        f"# the same run without the renderer: .venv/bin/python -m bridge check --config {config_rel} --jobs 1",
        "```",
        "",
        f"Machine: {Z.machine_line(env)}; threads 2 on every side, batch 1. Versions: {Z.versions_line(env)}.",
        "",
        *Z.not_run(configured, {r["name"] for r in rows}, COMMAND),
        "## Speed: native float32 against each artifact, in one bench",
        "",
        "Each model's native float32 model and its float32, int8 and fp16 candidates timed in ONE bench "
        "(alternating rounds over every side). ratio = native p50 / that artifact's p50 (>1: faster); per-round "
        "range in brackets. A candidate that failed its verification is not timed.",
        "",
    ]
    body, ratios = [], {p: [] for p in PRECISIONS}
    for r in rows:
        c = r["cands"]
        fp32 = (c.get("fp32") or {}).get("p50_ms")
        cells = [r["short"], Z.num(r["native_ms"], ".2f"), Z.num(fp32, ".2f")]
        cells += [Z.num((c.get(p) or {}).get("p50_ms"), ".2f") for p in PRECISIONS]
        cells.append(Z.ratio((c.get("fp32") or {}).get("vs_native")))
        for p in PRECISIONS:
            x = c.get(p) or {}
            rr = x.get("vs_native_rounds") or []
            if isinstance(x.get("vs_native"), (int, float)):
                ratios[p].append(x["vs_native"])
                cells.append(
                    f"**{x['vs_native']:.2f}x** ({min(rr):.2f}..{max(rr):.2f})" if rr else Z.ratio(x["vs_native"])
                )
            else:
                cells.append((x.get("status") or "-").upper())
        cells += [Z.ratio((c.get(p) or {}).get("vs_ort_fp32")) for p in PRECISIONS]
        cells += [
            (r["chosen"] or {}).get("name") or "-",
            Z.num(r["bench"].get("others_cpu"), ".0%") + ("" if r["bench"].get("reliable") is not False else " (!)"),
        ]
        body.append(cells)
    lines += Z.table(
        [
            "model",
            "native fp32 ms",
            "fp32 ORT ms",
            *(f"{p} ORT ms" for p in PRECISIONS),
            "fp32 ratio",
            *(f"{p} ratio (per-round)" for p in PRECISIONS),
            *(f"{p} vs fp32 ORT" for p in PRECISIONS),
            "published",
            "others' CPU",
        ],
        body,
    )
    for p in PRECISIONS:
        lines += ["", Z.median_line(ratios[p], f"{p} against native float32")]
    lines += [
        "",
        "## Agreement under each precision's policy row",
        "",
        "Every candidate against the native float32 model: the plan's seeded cases, plus the real held-out "
        "digits with their labels for the two reference CNNs (the other models are random-init and have no real "
        "data: only the element test and the error-norm bound apply, and a reduced-precision candidate may only "
        "be published where the seeded check is strong: separation, bridge/precision/auto.py). rel. error norm: "
        "the largest ||onnx - native|| / ||native||; max abs / max|ref|: the largest element error as a share of "
        "the output's scale.",
        "",
    ]
    detail = []
    for r in rows:
        # real data only where the model has held-out real samples (the digits CNNs, calibrated on their
        # training digits); the random-init models calibrate on seeded draws, which precision auto also
        # compares (real_samples names them too)
        real = r["auto"].get("held_out")
        for name, c in r["cands"].items():
            if name == "fp32":
                continue
            top1, acc, eligible = candidate_cells(r, c, "published")
            detail.append(
                [
                    r["short"],
                    name,
                    c.get("method") or "-",
                    _calibrated(c, real),
                    (c.get("status") or "?").upper(),
                    Z.num(c.get("rel_norm"), ".2e"),
                    Z.num(c.get("abs_over_scale"), ".2e"),
                    top1,
                    acc,
                    Z.num(c.get("separation"), ".3g"),
                    eligible,
                    Z.one_line(why_not(c), 200) or "-",
                ]
            )
    lines += Z.table(
        [
            "model",
            "precision",
            "method",
            "calibrated on",
            "verdict",
            "rel. error norm",
            "max abs / max\\|ref\\|",
            "top-1 held-out",
            "accuracy native / ONNX",
            "separation",
            "eligible",
            "why not / reason",
        ],
        detail,
    )
    lines += ["", f"Last model run {Z.last_run(summary)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    return Z.page(
        argv,
        __doc__,
        CONFIG,
        SUMMARY,
        OUT,
        "zoo_precision",
        lambda s, w, c, m, _args: render(s, w, c, m),
        timeout=1800,
    )


if __name__ == "__main__":
    sys.exit(main())
