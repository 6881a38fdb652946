"""On a GPU machine: export zoo models with bridge and time torch (CUDA) vs ONNX Runtime (CUDA EP,
numpy in/out and IO binding), and verify parity under the CUDA policy. Writes JSON per model and
prints one table last. Used by tools/gpu_check.sh.

    python tools/gpu_zoo.py --out DIR [--models resnet50 ...] [--budget-s 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["resnet50", "mobilenet_v3_large", "transformer_encoder", "efficientnet_b0", "vit_b_16"]


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="+", default=DEFAULT)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda", help="cpu only to dry-run this script on a machine without a GPU")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    rows = []
    for name in args.models:
        left = args.budget_s - (time.time() - start)
        if left < 30:
            rows.append([name, "skipped (time budget)"] + ["-"] * 8)
            continue
        src = f"tools/zoo_models.py:{name}"
        bundle = out / "bundles" / name
        bundle.parent.mkdir(exist_ok=True)
        t0 = time.time()
        res = run(
            [
                "export",
                src,
                "-o",
                str(bundle),
                "--force",
                "--dim",
                "batch=1",
                "--threads",
                str(args.threads),
                "--json",
                str(out / f"{name}.export.json"),
            ],
            timeout=left,
        )
        export_s = time.time() - t0
        if res.returncode not in (0, 1):
            rows.append(
                [
                    name,
                    f"export exit {res.returncode}: {res.stderr.strip().splitlines()[0][:80] if res.stderr.strip() else ''}",
                ]
                + ["-"] * 8
            )
            continue
        left = args.budget_s - (time.time() - start)
        res = run(
            [
                "bench",
                str(bundle),
                "--source",
                src,
                "--device",
                args.device,
                "--latency-runs",
                str(args.runs),
                "--threads",
                str(args.threads),
                "--dim",
                "batch=1",
                "--json",
                str(out / f"{name}.{args.device}.json"),
            ],
            timeout=max(left, 30),
        )
        if not (out / f"{name}.{args.device}.json").exists():
            rows.append([name, f"bench exit {res.returncode}: {res.stderr.strip()[-200:]}"] + ["-"] * 8)
            continue
        rep = json.loads((out / f"{name}.{args.device}.json").read_text())
        lat = rep["latency"][args.device]["sides"]
        fast = lat.get("onnxruntime-iobinding", lat["onnxruntime"])
        worst = max(rep["outputs"], key=lambda o: o.get("needed_atol") or 0)
        rows.append(
            [
                name,
                rep["status"],
                f"{worst.get('max_abs', 0):.1e}",
                f"{worst.get('rel_norm') or 0:.1e}",
                f"{worst.get('needed_atol') or 0:.1e}/{worst.get('needed_rtol') or 0:.1e}",
                f"{lat['native']['p50_ms']:.3f}",
                f"{lat['onnxruntime']['p50_ms']:.3f}",
                f"{fast['p50_ms']:.3f}",
                f"{lat['native']['p50_ms'] / fast['p50_ms']:.2f}x",
                f"{export_s:.0f}s",
            ]
        )
    headers = [
        "model",
        "verdict",
        "max abs",
        "rel norm",
        "min pass atol/rtol",
        "torch cuda p50 ms",
        "ORT cuda p50 ms",
        "ORT iobind p50 ms",
        "speedup (iobind)",
        "export",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    table = "\n".join(lines)
    (out / "gpu_zoo.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
