"""The main job: train the four reference models natively, export each to an ONNX bundle, verify each
against its native model on seeded and real held-out data, and print one table.

    python -m models.reference [--out build/reference] [--latency-runs 100]

Every step runs in its own process (torch and TensorFlow never share one), through the same
`python -m bridge` command line a user runs. Exit code: 0 when every model passes, else 1.
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

# name -> how to train it, the SOURCE bridge exports, and the real data to verify on
REFERENCE = {
    "torch_regression": {
        "framework": "torch",
        "artifact": "torch_regression.pt",
        "source": "models/torch_regression.py:build",
        "weights": True,
        "data": "regression_test.npz",
    },
    "torch_cnn": {
        "framework": "torch",
        "artifact": "torch_cnn.pt",
        "source": "models/torch_cnn.py:build",
        "weights": True,
        "data": "digits_test_nchw.npz",
        "classifier": True,
    },
    "tf_regression": {
        "framework": "tensorflow",
        "artifact": "tf_regression.keras",
        "source": None,
        "data": "regression_test.npz",
    },
    "tf_cnn": {
        "framework": "tensorflow",
        "artifact": "tf_cnn.keras",
        "source": None,
        "data": "digits_test_nhwc.npz",
        "classifier": True,
    },
}


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1, 3):
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"reference: {what} failed with exit code {proc.returncode}")
    return proc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/reference", help="where artifacts, bundles and reports go")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--only", nargs="+", choices=list(REFERENCE), help="a subset of the models")
    args = parser.parse_args(argv)
    out = (ROOT / args.out).resolve() if not os.path.isabs(args.out) else Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "bundles").mkdir(exist_ok=True)
    py = sys.executable
    _run([py, "-m", "models.train", "digits-npz", str(out / "data")], "writing the held-out data")
    rows = []
    for name in args.only or REFERENCE:
        spec = REFERENCE[name]
        artifact = out / spec["artifact"]
        start = time.perf_counter()
        trained = json.loads(
            _run([py, "-m", "models.train", name, str(artifact)], f"training {name}").stdout.splitlines()[-1]
        )
        source = spec["source"] or str(artifact)
        weights = ["--weights", str(artifact)] if spec.get("weights") else []
        bundle = out / "bundles" / name
        _run(
            [
                py,
                "-m",
                "bridge",
                "export",
                source,
                *weights,
                "-o",
                str(bundle),
                "--force",
                "--json",
                str(out / f"{name}.export.json"),
            ],
            f"exporting {name}",
        )
        verify_cmd = [
            py,
            "-m",
            "bridge",
            "verify",
            str(bundle),
            "--source",
            source,
            *weights,
            "--inputs",
            str(out / "data" / spec["data"]),
            "--latency-runs",
            str(args.latency_runs),
            "--json",
            str(out / f"{name}.verify.json"),
        ]
        if spec.get("classifier"):
            verify_cmd += ["--min-top1", "1.0", "--labels", str(out / "data" / "digits_test_labels.npy")]
        proc = _run(verify_cmd, f"verifying {name}")
        (out / f"{name}.verify.txt").write_text(proc.stdout)
        export = json.loads((out / f"{name}.export.json").read_text())
        report = json.loads((out / f"{name}.verify.json").read_text())
        rows.append(_row(name, spec, trained, export, report, time.perf_counter() - start))
    table = _table(rows)
    print(table)
    (out / "summary.md").write_text(table + "\n")
    failed = [r["model"] for r in rows if r["verdict"] != "PASS"]
    print(f"\nbundles in {out / 'bundles'}, reports in {out}")
    if failed:
        print(f"not passing: {', '.join(failed)}")
        return 1
    return 0


def _row(name, spec, trained, export, report, seconds) -> dict:
    outs = report["outputs"]
    max_abs = max((o["max_abs"] for o in outs if isinstance(o.get("max_abs"), (int, float))), default=None)
    max_rel = max((o["max_rel"] for o in outs if isinstance(o.get("max_rel"), (int, float))), default=None)
    data = next(iter((report.get("dataset") or {}).get("cpu", {}).get("outputs", {}).values()), None)
    lat = report.get("latency", {}).get("cpu")
    native = lat["sides"]["native"]["p50_ms"] if lat else None
    ort = lat["sides"]["onnxruntime"]["p50_ms"] if lat else None
    quality = (
        f"acc {trained['test_accuracy']:.3f}"
        if "test_accuracy" in trained
        else f"w={trained['weight']:.3f} b={trained['bias']:.3f} mse={trained['test_mse']:.4f}"
    )
    return {
        "model": name,
        "framework": spec["framework"],
        "exporter": export["exporter"]["name"] if export.get("exporter") else "-",
        "verdict": report["status"].upper(),
        "max abs": f"{max_abs:.1e}" if max_abs is not None else "-",
        "max rel": f"{max_rel:.1e}" if max_rel is not None else "-",
        "top-1 agree (held-out)": f"{100 * data['top1_agreement']:.1f}%" if data else "-",
        "held-out acc native / ONNX": (
            f"{data['accuracy_native']:.3f} / {data['accuracy_onnx']:.3f}"
            if data and "accuracy_native" in data
            else "-"
        ),
        "native p50 ms": f"{native:.3f}" if native else "-",
        "ORT p50 ms": f"{ort:.3f}" if ort else "-",
        "ORT speedup": f"{native / ort:.2f}x" if native and ort else "-",
        "trained": quality,
        "seconds": f"{seconds:.0f}",
    }


def _table(rows: list[dict]) -> str:
    headers = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(r[h]) for h in headers) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
