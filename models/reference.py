"""The main job: train the four reference models natively, export each to an ONNX bundle, verify each
against its native model on seeded and real held-out data, and print one table.

    python -m models.reference [--only NAME ...] [--keep-trained]

It runs ``zoo/reference.toml`` through ``bridge check`` (the models' prepare commands train them; each
export and verify is a process of its own, so torch and TensorFlow never share one), then prints the
table from bridge check's reports. The trained models are removed first so that they are trained
again (``--keep-trained`` reuses them). Exit code: 0 when every model passes, else 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "zoo" / "reference.toml"
FRAMEWORK = {"torch_regression": "torch", "torch_cnn": "torch", "tf_regression": "tensorflow", "tf_cnn": "tensorflow"}


def _zoo_run():
    """tools/zoo_run.py (the zoos' shared harness; tools is not a package), loaded by path once."""
    key = "_bridge_zoo_run"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "tools" / "zoo_run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def trained_artifact(model) -> str:
    """The file training writes for a reference model of the config: its weights, else its model file."""
    return model.export.weights or model.source_file


def main(argv=None) -> int:
    from bridge.check.config import load_config

    parser = argparse.ArgumentParser(prog="python -m models.reference", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(FRAMEWORK), help="a subset of the models")
    parser.add_argument("--keep-trained", action="store_true", help="reuse trained models instead of retraining")
    args = parser.parse_args(argv)
    config = load_config(CONFIG)
    models = [m for m in config.models if not args.only or m.name in args.only]
    if not args.keep_trained:
        for m in models:
            for path in (trained_artifact(m), _metrics_path(trained_artifact(m))):
                if os.path.exists(path):
                    os.remove(path)
    Z = _zoo_run()
    summary = Z.run_check(CONFIG, [m.name for m in models] if args.only else None, quiet=True)
    workdir = Path(summary["workdir"])
    rows = [_row(m, record, workdir, Z) for m, record in zip(models, summary["models"])]
    table = "\n".join(Z.table(list(rows[0]), [list(r.values()) for r in rows])) if rows else ""
    print(table)
    (ROOT / "build" / "reference").mkdir(parents=True, exist_ok=True)
    (ROOT / "build" / "reference" / "summary.md").write_text(table + "\n")
    print(f"\nbundles in {workdir}, reports in {workdir}")
    failed = [r["model"] for r in rows if r["verdict"] != "PASS"]
    if failed:
        print(f"not passing: {', '.join(failed)}")
        return 1
    return 0


def _metrics_path(artifact: str) -> str:
    from models.train import metrics_path

    return metrics_path(artifact)


def _row(model, record: dict, workdir: Path, Z) -> dict:
    export, report = Z.reports(record, workdir)
    report = report or {}
    outs = report.get("outputs") or []
    max_abs = max((o["max_abs"] for o in outs if isinstance(o.get("max_abs"), (int, float))), default=None)
    max_rel = max((o["max_rel"] for o in outs if isinstance(o.get("max_rel"), (int, float))), default=None)
    data = next(iter((report.get("dataset") or {}).get("cpu", {}).get("outputs", {}).values()), None)
    lat = (report.get("latency") or {}).get("cpu")
    native = lat["sides"]["native"]["p50_ms"] if lat else None
    ort = lat["sides"]["onnxruntime"]["p50_ms"] if lat else None
    trained = Z.load(_metrics_path(trained_artifact(model))) or {}
    if "test_accuracy" in trained:
        quality = f"acc {trained['test_accuracy']:.3f}"
    elif "weight" in trained:
        quality = f"w={trained['weight']:.3f} b={trained['bias']:.3f} mse={trained['test_mse']:.4f}"
    else:
        quality = "-"
    return {
        "model": model.name,
        "framework": FRAMEWORK.get(model.name, (export or {}).get("framework") or "-"),
        "exporter": ((export or {}).get("exporter") or {}).get("name") or "-",
        "verdict": (record.get("status") or "error").upper(),
        "max abs": Z.num(max_abs),
        "max rel": Z.num(max_rel),
        "top-1 agree (held-out)": f"{100 * data['top1_agreement']:.1f}%" if data else "-",
        "held-out acc native / ONNX": (
            f"{data['accuracy_native']:.3f} / {data['accuracy_onnx']:.3f}"
            if data and "accuracy_native" in data
            else "-"
        ),
        "native p50 ms": Z.num(native, ".3f"),
        "ORT p50 ms": Z.num(ort, ".3f"),
        "ORT speedup": f"{native / ort:.2f}x" if native and ort else "-",
        "trained": quality,
        "seconds": f"{record.get('seconds') or 0:.0f}",
    }


if __name__ == "__main__":
    raise SystemExit(main())
