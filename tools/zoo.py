"""The CPU benchmark zoo: export, verify and time real architectures with bridge's own commands.

For each model and each --optimize level, two subprocesses (torch and TensorFlow never share a
process, and each model's memory is returned to the system before the next one starts):

    python -m bridge export SOURCE -o BUNDLE --force --json ... --threads T --optimize LEVEL
    python -m bridge bench BUNDLE --source SOURCE --latency-runs N --threads T --dim batch=B --json ...

and records the exporter used, the parity verdict and largest errors, native and ONNX Runtime p50
latency, their ratio with the per-round spread, the export time, and the peak RSS of each subprocess
(``os.wait4``'s rusage). Results merge into OUT/cpu.json by (model, level), so models can be run one
at a time; OUT/cpu.md is regenerated from the JSON every time.

    .venv/bin/python tools/zoo.py                                   # every model, default levels
    .venv/bin/python tools/zoo.py --models resnet50 lstm --runs 30  # a subset
    .venv/bin/python tools/zoo.py --optimize none ort               # the same levels for every model
    .venv/bin/python tools/zoo.py --levels-only                     # levels side by side, existing bundles
    .venv/bin/python tools/zoo.py --render                          # only rewrite cpu.md from cpu.json
    .venv/bin/python tools/zoo.py --precision int8 fp16             # reduced precision beside fp32:
                                                                    # cpu_precision.json, cpu_int8.md

Run one zoo at a time: the subprocesses are sequential, and timings are only comparable as ratios
measured side by side in one bench run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

T = "tools/zoo_models.py"
K = "tools/zoo_keras.py"

PIXELS = ["--input-range", "x=0:255"]  # keras.applications models take pixels 0..255 and scale them

# name -> source, framework, and the --optimize levels compared by default ("none" first: the "before").
# "min_runs": models of a few ms or less get more timed runs per side than --runs (30 runs of a 2 ms
# model are 60 ms of timing: the LSTM's ratio then moved between 1.6x and 2.6x from bench to bench).
# "ort" is measured where it changes the graph that ONNX Runtime runs; elsewhere ORT applies the same
# fusions when the session loads (bridge's runner uses ORT_ENABLE_ALL), so "ort" only saves load time.
MODELS = {
    "resnet50": {"source": f"{T}:resnet50", "framework": "torch", "levels": ["none", "ort"]},
    "mobilenet_v3_large": {"source": f"{T}:mobilenet_v3_large", "framework": "torch", "levels": ["none"]},
    "efficientnet_b0": {"source": f"{T}:efficientnet_b0", "framework": "torch", "levels": ["none"]},
    "convnext_tiny": {"source": f"{T}:convnext_tiny", "framework": "torch", "levels": ["none"]},
    "vit_b_16": {"source": f"{T}:vit_b_16", "framework": "torch", "levels": ["none", "transformer"]},
    "swin_t": {"source": f"{T}:swin_t", "framework": "torch", "levels": ["none", "transformer"]},
    "transformer_encoder": {
        "source": f"{T}:transformer_encoder",
        "framework": "torch",
        "levels": ["none", "ort", "transformer"],
    },
    "lstm": {"source": f"{T}:lstm", "framework": "torch", "levels": ["none", "ort"], "min_runs": 500},
    "torch_cnn": {"source": f"{T}:torch_cnn", "framework": "torch", "levels": ["none"], "min_runs": 2000},
    "keras_resnet50": {"source": f"{K}:keras_resnet50", "framework": "tensorflow", "extra": PIXELS, "levels": ["none"]},
    "keras_mobilenet_v2": {
        "source": f"{K}:keras_mobilenet_v2",
        "framework": "tensorflow",
        "extra": PIXELS,
        "levels": ["none"],
    },
    "keras_efficientnet_b0": {
        "source": f"{K}:keras_efficientnet_b0",
        "framework": "tensorflow",
        "extra": PIXELS,
        "levels": ["none"],
    },
    # digits scaled to 0..1, as the torch twin declares (BRIDGE_INPUT_RANGES); a Keras model cannot declare it
    "keras_tf_cnn": {
        "source": f"{K}:keras_tf_cnn",
        "framework": "tensorflow",
        "extra": ["--input-range", "x=0:1"],
        "levels": ["none"],
        "min_runs": 2000,
    },
}


# --precision int8: what each model is calibrated on. "digits_nchw"/"digits_nhwc": the reference CNNs'
# real training digits (verified on the held-out digits with their labels); "seeded": seeded draws from
# the model's declared inputs, stated in the table (the zoo's models are randomly initialised: there is no
# real data for them); None: dynamic quantization (MatMul/Gemm, Attention, LSTM weights), no data.
INT8_CALIBRATION = {
    "resnet50": "seeded",
    "mobilenet_v3_large": "seeded",
    "efficientnet_b0": "seeded",
    "convnext_tiny": "seeded",
    "vit_b_16": None,
    "swin_t": None,
    "transformer_encoder": None,
    "lstm": None,
    "torch_cnn": "digits_nchw",
    "keras_resnet50": "seeded",
    "keras_mobilenet_v2": "seeded",
    "keras_efficientnet_b0": "seeded",
    "keras_tf_cnn": "digits_nhwc",
}
CALIBRATION_SAMPLES = 16  # seeded draws per model (the digits: all 1437 training digits)


def runs_for(name: str, args) -> int:
    return max(args.runs, MODELS[name].get("min_runs", 0))


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return float(sum(vals[:8]) - idle), float(sum(vals[:8]))


def wait_quiet(max_wait: float, busy_below: float = 0.15, window: float = 2.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine's CPUs are busy less than ``busy_below`` over a
    ``window``: other work on a shared machine hits the native side's OpenMP barriers much harder than
    ONNX Runtime's pool. Returns the busy fraction last seen."""
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = _cpu_times()
        time.sleep(window)
        b1, t1 = _cpu_times()
        busy = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        if busy < busy_below or time.monotonic() > deadline:
            return busy


def _child(cmd: list[str], log: Path, timeout: float) -> dict:
    """Run ``cmd`` with its output in ``log``; its exit code, wall seconds, peak RSS (MiB), and the CPU
    share the rest of the machine used meanwhile (``others_cpu``: 0 on a quiet machine, 1 = a full core
    per core busy with other work)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    ticks = os.sysconf("SC_CLK_TCK")
    b0, tot0 = _cpu_times()
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                timed_out = True
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
    b1, tot1 = _cpu_times()
    own = (usage.ru_utime + usage.ru_stime) * ticks
    others = max(0.0, (b1 - b0) - own) / (tot1 - tot0) if tot1 > tot0 else None
    return {
        "rc": proc.returncode,
        "wall_s": round(time.perf_counter() - t0, 2),
        "timed_out": timed_out,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "others_cpu": None if others is None else round(others, 3),
    }


def _worst(report: dict) -> dict:
    checks = report.get("checks") or report.get("outputs") or []
    if not checks:
        return {}
    return {
        "max_abs": max(c.get("max_abs") or 0.0 for c in checks),
        "max_rel": max(c.get("max_rel") or 0.0 for c in checks),
        "needed_atol": max(c.get("needed_atol") or 0.0 for c in checks),
        "outputs": sorted({c["name"] for c in checks}),
        "tolerance": checks[0].get("tolerance"),
    }


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_one(name: str, level: str, args, work: Path) -> dict:
    spec = MODELS[name]
    tag = f"{name}.{level}"
    bundle = work / tag
    # export at the default dynamic size (2): exporters specialise a size-1 axis (dynamo pins batch=1,
    # and bridge then falls back to TorchScript); bench at --batch (the verification sweep adds 1 and 3)
    common = ["--threads", str(args.threads), *spec.get("extra", [])]
    if spec.get("atol"):
        common += ["--atol", str(spec["atol"])]
        row_tol = {"atol": spec["atol"], "why": spec.get("why", "")}
    else:
        row_tol = None
    exp_json, bench_json = work / f"{tag}.export.json", work / f"{tag}.bench.json"
    for p in (exp_json, bench_json):
        if p.exists():
            p.unlink()
    export_cmd = [
        PY,
        "-m",
        "bridge",
        "export",
        spec["source"],
        "-o",
        str(bundle),
        "--force",
        "--json",
        str(exp_json),
        "--optimize",
        level,
        *common,
    ]
    bench_cmd = [
        PY,
        "-m",
        "bridge",
        "bench",
        str(bundle),
        "--source",
        spec["source"],
        "--latency-runs",
        str(runs_for(name, args)),
        "--json",
        str(bench_json),
        "--dim",
        f"batch={args.batch}",
        *common,
    ]
    row = {
        "model": name,
        "level": level,
        "framework": spec["framework"],
        "source": spec["source"],
        "batch": args.batch,
        "threads": args.threads,
        "runs": runs_for(name, args),
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "atol_override": row_tol,
    }
    print(f"[zoo] {tag}: export ...", flush=True)
    ex = _child(export_cmd, work / f"{tag}.export.log", args.timeout)
    exp = _load(exp_json) or {}
    exporter = exp.get("exporter") or {}
    row["export"] = {
        "rc": ex["rc"],
        "wall_s": ex["wall_s"],
        "report_s": exp.get("duration_s"),
        "peak_rss_mib": ex["peak_rss_mib"],
        "timed_out": ex["timed_out"],
        "status": exp.get("status"),
        "reason": exp.get("reason"),
        "exporter": exporter.get("name"),
        "fallback_from": [
            a.get("exporter") + ": " + (a.get("error") or "")[:200] for a in exporter.get("failed_first") or []
        ],
        "graph_optimization": (exporter.get("settings") or {}).get("graph_optimization"),
        **{f"worst_{k}": v for k, v in _worst(exp).items() if k in ("max_abs", "max_rel")},
    }
    if ex["rc"] not in (0, 1) or not bundle.is_dir() or not exp:  # 1: parity failed, bundle published
        row["error"] = _tail(work / f"{tag}.export.log")
        print(f"[zoo] {tag}: export failed rc={ex['rc']}: {row['error'][-300:]}", flush=True)
        return row
    print(
        f"[zoo] {tag}: exported in {ex['wall_s']}s ({exporter.get('name')}, {exp.get('status')}); bench ...", flush=True
    )
    for attempt in range(1 + max(0, args.retries)):
        quiet = wait_quiet(args.quiet_wait)
        be = _child(bench_cmd, work / f"{tag}.bench.log", args.timeout)
        if be["others_cpu"] is None or be["others_cpu"] <= args.noisy or attempt == args.retries:
            break
        print(
            f"[zoo] {tag}: other processes used {be['others_cpu']:.0%} of the CPU during the bench; again", flush=True
        )
    rep = _load(bench_json) or {}
    row["bench"] = {
        "rc": be["rc"],
        "wall_s": be["wall_s"],
        "peak_rss_mib": be["peak_rss_mib"],
        "attempts": attempt + 1,
        "timed_out": be["timed_out"],
        "others_cpu": be["others_cpu"],
        "busy_before": round(quiet, 3),
    }
    row["status"] = rep.get("status")
    row["reason"] = rep.get("reason")
    row.update(_worst(rep))
    lat = (rep.get("latency") or {}).get("cpu")
    if lat:
        sides = lat["sides"]
        nat, ort = sides.get("native", {}), sides.get("onnxruntime", {})
        rounds = (lat.get("speedup_per_round") or {}).get("onnxruntime", [])
        row["latency"] = {
            "native_p50_ms": nat.get("p50_ms"),
            "native_p90_ms": nat.get("p90_ms"),
            "ort_p50_ms": ort.get("p50_ms"),
            "ort_p90_ms": ort.get("p90_ms"),
            "native_first_ms": nat.get("first_run_ms"),
            "ort_first_ms": ort.get("first_run_ms"),
            "ratio_p50": (lat.get("speedup_vs_baseline_p50") or {}).get("onnxruntime"),
            "ratio_rounds": rounds,
            "rounds": lat.get("rounds"),
            "idle_gap_ms": lat.get("idle_gap_ms"),
            "idle_wait_ms": lat.get("idle_wait_ms"),
            "notes": lat.get("notes") or [],
        }
    env = rep.get("environment") or {}
    row["versions"] = env.get("versions")
    row["ort_settings"] = ((env.get("onnxruntime") or {}).get("cpu") or {}).get("settings")
    if be["rc"] != 0 or not lat:
        row["error"] = _tail(work / f"{tag}.bench.log")
    lt = row.get("latency") or {}
    print(
        f"[zoo] {tag}: {row.get('status')} native {lt.get('native_p50_ms', float('nan')):.2f} ms, "
        f"ORT {lt.get('ort_p50_ms', float('nan')):.2f} ms, ratio {lt.get('ratio_p50', float('nan')):.2f}x "
        f"(bench {be['wall_s']}s, peak RSS {be['peak_rss_mib']} MiB, others' CPU {be['others_cpu']})",
        flush=True,
    )
    return row


# Native beside ONNX Runtime sessions in one bench. Arguments after the first five: LABEL=BUNDLE_DIR,
# with "@off" appended for a session whose idle threads do not spin.
SIDES_SCRIPT = r"""
import json, sys
from bridge.bench import Side, measure
from bridge.artifact.bundle import open_bundle
from bridge.frameworks.ort import OrtRunner
from bridge.verdict.inputs import make_feeds
from bridge.native.loading import load_native
from bridge.types import Case
source, runs, threads, batch, out = sys.argv[1:6]
threads, runs, batch = int(threads), int(runs), int(batch)
specs = [(label, path.removesuffix("@off"), not path.endswith("@off"))
         for label, path in (a.split("=", 1) for a in sys.argv[6:])]
bundles = [(label, open_bundle(path), spin) for label, path, spin in specs]
first = bundles[0][1]
feeds = make_feeds(first.inputs, Case("levels", 1, {**(first.cases[0].sizes if first.cases else {}), "batch": batch}))
native = load_native(source, threads=threads).model
sides = [Side("native", lambda: native.run(feeds), native.synchronize)]
for label, bundle, spin in bundles:
    runner = OrtRunner(str(bundle.model_path), "cpu", threads=threads, spinning=spin)
    sides.append(Side(label, lambda runner=runner: runner.run(feeds)))
res = measure(sides, runs=runs, warmup=max(2, runs // 10), rounds=5, batch=batch, threads=threads).to_json()
for side in res["sides"].values():
    side.pop("samples_ms", None)
open(out, "w").write(json.dumps(res, indent=1))
"""


def _bench_sides(name: str, stem: str, sessions: list[str], args, work: Path) -> tuple[dict | None, dict, Path]:
    """SIDES_SCRIPT in a subprocess on a quiet machine: the bench JSON (None if it failed), the
    subprocess's record (``_child``) and its log, both named after ``stem``."""
    out, log = work / f"{stem}.json", work / f"{stem}.log"
    if out.exists():
        out.unlink()
    wait_quiet(args.quiet_wait)
    ch = _child(
        [
            PY,
            "-c",
            SIDES_SCRIPT,
            MODELS[name]["source"],
            str(runs_for(name, args)),
            str(args.threads),
            str(args.batch),
            str(out),
            *sessions,
        ],
        log,
        args.timeout,
    )
    return _load(out), ch, log


def run_spin(name: str, level: str, args, work: Path) -> dict | None:
    """allow_spinning=0 vs bridge's default 1, timed in one run with the native side: what
    ONNX Runtime's spinning is worth (a spinning pool keeps cores busy between calls)."""
    tag = f"{name}.{level}"
    res, ch, log = _bench_sides(
        name, f"{tag}.spin", [f"ort-spin-off={work / tag}@off", f"ort-spin-on={work / tag}"], args, work
    )
    if not res:
        return {"error": _tail(log)}
    sides = res["sides"]
    return {
        "native_p50_ms": sides["native"]["p50_ms"],
        "spin_off_p50_ms": sides["ort-spin-off"]["p50_ms"],
        "spin_on_p50_ms": sides["ort-spin-on"]["p50_ms"],
        "ratio_off": res["speedup_vs_baseline_p50"]["ort-spin-off"],
        "ratio_on": res["speedup_vs_baseline_p50"]["ort-spin-on"],
        "others_cpu": ch["others_cpu"],
    }


def run_levels(name: str, levels: list[str], args, work: Path) -> dict:
    """Every level's bundle timed in ONE bench beside the native model: the before/after of an
    --optimize level without the run-to-run drift of separate benches."""
    res, ch, log = _bench_sides(name, f"{name}.levels", [f"{lv}={work / f'{name}.{lv}'}" for lv in levels], args, work)
    if not res:
        return {"error": _tail(log)}
    sides = res["sides"]
    return {
        "levels": levels,
        "native_p50_ms": sides["native"]["p50_ms"],
        "ort_p50_ms": {lv: sides[lv]["p50_ms"] for lv in levels},
        "ratio_p50": {lv: res["speedup_vs_baseline_p50"][lv] for lv in levels},
        "ratio_rounds": {lv: res["speedup_per_round"][lv] for lv in levels},
        "others_cpu": ch["others_cpu"],
        "runs": runs_for(name, args),
        "idle_wait_ms": res.get("idle_wait_ms"),
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


DATA_SCRIPT = r"""
import sys, numpy as np
from pathlib import Path
kind, bundle, out_dir, name, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
out_dir.mkdir(parents=True, exist_ok=True)
if kind.startswith("digits"):
    sys.path.insert(0, ".")
    from models.data import digits_data
    xtr, ytr, xte, yte = digits_data(0)
    shape = (lambda x: x[:, None]) if kind == "digits_nchw" else (lambda x: x[..., None])
    np.savez(out_dir / f"{name}.calibrate.npz", x=np.ascontiguousarray(shape(xtr), dtype=np.float32))
    np.savez(out_dir / f"{name}.held_out.npz", x=np.ascontiguousarray(shape(xte), dtype=np.float32))
    np.save(out_dir / f"{name}.labels.npy", yte.astype(np.int64))
else:
    from bridge.artifact.bundle import open_bundle
    from bridge.verdict.inputs import make_feeds
    from bridge.types import Case
    b = open_bundle(bundle)
    sizes = {**(b.cases[0].sizes if b.cases else {}), "batch": n}
    np.savez(out_dir / f"{name}.calibrate.npz", **make_feeds(b.inputs, Case("calibration", 1000, sizes)))
"""


def _precision_data(name: str, work: Path, args) -> dict:
    """Calibration samples (and held-out samples with labels, for the digits) for --precision int8."""
    kind = INT8_CALIBRATION.get(name)
    if kind is None:
        return {"kind": None}
    data = work / "data"
    calib = data / f"{name}.calibrate.npz"
    if not calib.is_file():
        ch = _child(
            [PY, "-c", DATA_SCRIPT, kind, str(work / f"{name}.none"), str(data), name, str(CALIBRATION_SAMPLES)],
            work / f"{name}.data.log",
            args.timeout,
        )
        if ch["rc"] != 0:
            return {"kind": kind, "error": _tail(work / f"{name}.data.log")}
    out = {"kind": kind, "calibrate": str(calib)}
    if kind.startswith("digits"):
        out.update(samples=str(data / f"{name}.held_out.npz"), labels=str(data / f"{name}.labels.npy"))
    return out


def _ensure_fp32(name: str, args, work: Path) -> dict | None:
    """The plain float32 bundle the reduced ones are timed beside (build/zoo/NAME.none), exported if missing."""
    bundle = work / f"{name}.none"
    if (bundle / "manifest.json").is_file():
        return None
    spec = MODELS[name]
    cmd = [
        PY,
        "-m",
        "bridge",
        "export",
        spec["source"],
        "-o",
        str(bundle),
        "--force",
        "--threads",
        str(args.threads),
        "--json",
        str(work / f"{name}.none.export.json"),
        *spec.get("extra", []),
    ]
    print(f"[zoo] {name}.none: export (float32, for the precision rows) ...", flush=True)
    return _child(cmd, work / f"{name}.none.export.log", args.timeout)


def run_precision(name: str, precision: str, args, work: Path, data: dict) -> dict:
    """Export NAME at ``precision`` (derived from its verified float32 export and verified again), then
    verify it against the native float32 model with latency: the agreement under its policy row."""
    spec = MODELS[name]
    tag = f"{name}.{precision}"
    bundle = work / tag
    common = ["--threads", str(args.threads), *spec.get("extra", [])]
    calibrate = ["--calibrate", data["calibrate"]] if precision == "int8" and data.get("calibrate") else []
    exp_json, ver_json = work / f"{tag}.export.json", work / f"{tag}.verify.json"
    for path in (exp_json, ver_json):
        path.unlink(missing_ok=True)
    export_cmd = [
        PY,
        "-m",
        "bridge",
        "export",
        spec["source"],
        "-o",
        str(bundle),
        "--force",
        "--publish-failed",
        "--precision",
        precision,
        *calibrate,
        "--json",
        str(exp_json),
        *common,
    ]
    samples = ["--samples", data["samples"], "--labels", data["labels"]] if data.get("samples") else []
    # timings come from the one bench of every precision beside native (run_precision_sides)
    verify_cmd = [
        PY,
        "-m",
        "bridge",
        "verify",
        str(bundle),
        "--source",
        spec["source"],
        *samples,
        "--json",
        str(ver_json),
        *common,
    ]
    row = {
        "model": name,
        "precision": precision,
        "framework": spec["framework"],
        "source": spec["source"],
        "calibration": (
            "real training digits"
            if (data.get("kind") or "").startswith("digits")
            else f"{CALIBRATION_SAMPLES} seeded draws (stated: random-init model, no real data)"
        )
        if calibrate
        else None,
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commands": [shlex.join(_relative(c[3:])) for c in (export_cmd, verify_cmd)],
    }
    print(f"[zoo] {tag}: export ...", flush=True)
    ex = _child(export_cmd, work / f"{tag}.export.log", args.timeout)
    exp = _load(exp_json) or {}
    entry = (exp.get("exporter") or {}).get("precision") or {}
    row["export"] = {
        "rc": ex["rc"],
        "wall_s": ex["wall_s"],
        "peak_rss_mib": ex["peak_rss_mib"],
        "status": exp.get("status"),
        "reason": exp.get("reason"),
        "method": entry.get("method"),
        "settings": entry.get("settings"),
        "fp32": entry.get("fp32"),
        "calibration_top1": _data_top1(exp),
    }
    if ex["rc"] not in (0, 1) or not (bundle / "manifest.json").is_file():
        row["error"] = _tail(work / f"{tag}.export.log")
        print(f"[zoo] {tag}: export failed rc={ex['rc']}: {row['error'][-300:]}", flush=True)
        return row
    wait_quiet(args.quiet_wait)
    print(
        f"[zoo] {tag}: exported ({entry.get('method')}, {exp.get('status')}); verify against native fp32 ...",
        flush=True,
    )
    ve = _child(verify_cmd, work / f"{tag}.verify.log", args.timeout)
    rep = _load(ver_json) or {}
    row["status"], row["reason"] = rep.get("status"), rep.get("reason")
    row["verify"] = {"rc": ve["rc"], "wall_s": ve["wall_s"], "others_cpu": ve["others_cpu"], **_agreement(rep)}
    lat = (rep.get("latency") or {}).get("cpu")
    if lat:
        row["latency"] = {
            "native_p50_ms": lat["sides"]["native"]["p50_ms"],
            "ort_p50_ms": lat["sides"]["onnxruntime"]["p50_ms"],
            "ratio_p50": lat["speedup_vs_baseline_p50"].get("onnxruntime"),
            "ratio_rounds": lat["speedup_per_round"].get("onnxruntime"),
            "reliable": lat.get("reliable"),
            "others_cpu": lat.get("others_cpu"),
        }
    if ve["rc"] not in (0, 1):
        row["error"] = _tail(work / f"{tag}.verify.log")
    print(f"[zoo] {tag}: {row.get('status')} {row['verify']}", flush=True)
    return row


def _relative(args: list[str]) -> list[str]:
    return [a.replace(str(ROOT) + os.sep, "") for a in args]


def _data_top1(report: dict):
    outs = ((report.get("dataset") or {}).get("cpu") or {}).get("outputs") or {}
    return min((m["top1_agreement"] for m in outs.values()), default=None)


def _agreement(report: dict) -> dict:
    """The figures a reduced-precision row is judged by: error norm and element error relative to the
    output's scale (worst over outputs and cases), top-1 agreement on the real samples (and on the seeded
    draws, for information), accuracy of both sides."""
    checks = report.get("checks") or []
    real = [c for c in checks if c.get("case") == "data"]
    seeded = [c for c in checks if c.get("case") != "data"]

    def worst(cs, key):
        vals = [c[key] for c in cs if isinstance(c.get(key), (int, float))]
        return max(vals) if vals else None

    scale = [
        c["max_abs"] / c["ref_abs_max"]
        for c in checks
        if isinstance(c.get("max_abs"), (int, float)) and c.get("ref_abs_max")
    ]
    top1_seeded = [c["top1_agreement"] for c in seeded if isinstance(c.get("top1_agreement"), (int, float))]
    outs = ((report.get("dataset") or {}).get("cpu") or {}).get("outputs") or {}
    first = next(iter(outs.values()), {})
    tol = next((c.get("tolerance") for c in checks if c.get("tolerance")), None) or {}
    return {
        "rel_norm": worst(checks, "rel_norm"),
        "rel_norm_real": worst(real, "rel_norm"),
        "abs_over_scale": max(scale) if scale else None,
        "top1_real": first.get("top1_agreement"),
        "top1_seeded_min": min(top1_seeded) if top1_seeded else None,
        "accuracy_native": first.get("accuracy_native"),
        "accuracy_onnx": first.get("accuracy_onnx"),
        "row": tol.get("row"),
        "rel_norm_bound": tol.get("rel_norm"),
    }


def run_precision_sides(name: str, precisions: list[str], args, work: Path) -> dict:
    """Native float32 beside the float32 bundle and every reduced one, in ONE bench."""
    labels = ["fp32", *[p for p in precisions if p != "fp32"]]
    dirs = {p: work / (f"{name}.none" if p == "fp32" else f"{name}.{p}") for p in labels}
    labels = [p for p in labels if (dirs[p] / "manifest.json").is_file()]
    res, ch, log = _bench_sides(name, f"{name}.precision", [f"{p}={dirs[p]}" for p in labels], args, work)
    if not res:
        return {"error": _tail(log)}
    sides = res["sides"]
    return {
        "precisions": labels,
        "native_p50_ms": sides["native"]["p50_ms"],
        "ort_p50_ms": {p: sides[p]["p50_ms"] for p in labels},
        "ratio_p50": {p: res["speedup_vs_baseline_p50"][p] for p in labels},
        "ratio_rounds": {p: res["speedup_per_round"][p] for p in labels},
        "others_cpu": res.get("others_cpu"),
        "others_cpu_child": ch["others_cpu"],
        "reliable": res.get("reliable"),
        "runs": runs_for(name, args),
        "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text()[-n:]
    except OSError:
        return ""


def machine() -> dict:
    cpu = platform.processor() or "?"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(
                    f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in have
                )
    except OSError:
        pass
    try:
        mem = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(mem / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        mem_gib = None
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": flags, "memory_gib": mem_gib, "platform": platform.platform()}


# -- rendering -------------------------------------------------------------------------------------
def _f(x, fmt="{:.2f}", dash="-"):
    return dash if x is None else fmt.format(x)


NOISY = 0.10


def best_rows(rows: list[dict]) -> dict:
    """Per model: the "before" row (level none) and the level whose verified artifact ran fastest (lowest
    ONNX Runtime p50: the artifact's own latency, far less noisy on a shared machine than the ratio),
    among the runs that other processes disturbed by at most NOISY."""
    out = {}
    for r in rows:
        if r["level"] == "none":
            out.setdefault(r["model"], {"before": None, "after": None})["before"] = r
    for name in {r["model"] for r in rows}:
        m = out.setdefault(name, {"before": None, "after": None})
        ok = [
            r
            for r in rows
            if r["model"] == name and r.get("status") == "pass" and (r.get("latency") or {}).get("ratio_p50")
        ]
        clean = [r for r in ok if ((r.get("bench") or {}).get("others_cpu") or 0.0) <= NOISY]
        pick = clean or ok  # a run disturbed by other processes only when no clean one exists
        m["after"] = min(pick, key=lambda r: r["latency"]["ort_p50_ms"]) if pick else None
    return out


def render(data: dict) -> str:
    rows = data["rows"]
    order = {n: i for i, n in enumerate(MODELS)}
    rows = sorted(rows, key=lambda r: (order.get(r["model"], 99), r["level"] != "none", r["level"]))
    m = data.get("machine", {})
    lines = [
        "# bridge CPU benchmark zoo",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores ({m.get('isa')}), {m.get('memory_gib')} GiB; "
        f"{m.get('platform')}.",
        f"Threads: {data.get('threads')} on every side (ONNX Runtime intra-op {data.get('threads')}, inter-op 1, "
        "idle threads spinning, as OpenMP's do by default; torch intra-op threads; TensorFlow intra-op pool). Batch 1. "
        f"{data.get('runs')} timed runs per side ("
        + ", ".join(f"{n} {m['min_runs']}" for n, m in MODELS.items() if m.get("min_runs"))
        + ": models of a few ms or less) in 5 alternating rounds (bridge bench); whenever the side "
        "changes, bench waits until the previous side's threads have stopped spinning.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (data.get("versions") or {}).items()) + ".",
        "",
        "Reproduce (one model at a time, nothing else running):",
        "",
        "```bash",
        data.get("command", ""),
        "```",
        "",
        "## Summary: before (plain export) and after (best verified --optimize level)",
        "",
        "ratio = native p50 / ONNX Runtime p50, both measured in the same bench run (>1: the bundle is faster). "
        "Per-round range: the smallest and largest of the 5 per-round ratios.",
        "",
        "| model | framework | exporter | before: ratio | after: level | after: ratio (per-round range) | native p50 ms | "
        "ORT p50 ms | others' CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    best = best_rows(rows)
    ratios = []
    for name in sorted(best, key=lambda n: order.get(n, 99)):
        b, a = best[name]["before"], best[name]["after"]
        bl = (b or {}).get("latency") or {}
        if a is None:
            lines.append(
                f"| {name} | {(b or {}).get('framework', '-')} | {(b or {}).get('export', {}).get('exporter') or '-'} "
                f"| {_f(bl.get('ratio_p50'), '{:.2f}x')} | (none passed) | - | - | - | - |"
            )
            continue
        al = a["latency"]
        before, level, ratio = bl.get("ratio_p50"), a["level"], al["ratio_p50"]
        rr, native_ms, ort_ms = al.get("ratio_rounds") or [], al["native_p50_ms"], al["ort_p50_ms"]
        others = (a.get("bench") or {}).get("others_cpu")
        sbs = (data.get("levels") or {}).get(name) or {}
        passed = {r["level"] for r in rows if r["model"] == name and r.get("status") == "pass"}
        if sbs.get("ort_p50_ms") and "none" in sbs["ort_p50_ms"] and set(sbs["levels"]) <= passed:
            # every level in one bench: before/after without the drift between separate benches
            level = min(sbs["levels"], key=lambda lv: sbs["ort_p50_ms"][lv])
            before, ratio, rr = sbs["ratio_p50"]["none"], sbs["ratio_p50"][level], sbs["ratio_rounds"][level]
            native_ms, ort_ms, others = sbs["native_p50_ms"], sbs["ort_p50_ms"][level], sbs.get("others_cpu")
            level += " *"
        ratios.append(ratio)
        lines.append(
            f"| {name} | {a['framework']} | {a['export'].get('exporter')} | {_f(before, '{:.2f}x')} "
            f"| {level} | **{ratio:.2f}x** ({_f(min(rr) if rr else None)}..{_f(max(rr) if rr else None)}) "
            f"| {native_ms:.2f} | {ort_ms:.2f} | {_f(others, '{:.0%}')} |"
        )
    if any(((data.get("levels") or {}).get(n) or {}).get("ort_p50_ms") for n in best):
        lines += [
            "",
            "\\* before and after from one bench of every level side by side (below), not from separate benches.",
        ]
    if ratios:
        lines += [
            "",
            f"After: median ratio {statistics.median(ratios):.2f}x over {len(ratios)} models, "
            f"smallest {min(ratios):.2f}x, largest {max(ratios):.2f}x; "
            f"{sum(r < 1.0 for r in ratios)} model(s) below 1.0x.",
        ]
    lines += [
        "",
        "## Every run",
        "",
        "| model | level | exporter | verdict | max abs | max rel | native p50 ms | ORT p50 ms | ratio | per-round | "
        "export s | nodes | peak RSS export / bench MiB | others' CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lt = r.get("latency") or {}
        ex = r.get("export") or {}
        rr = lt.get("ratio_rounds") or []
        go = ex.get("graph_optimization") or {}
        nodes = f"{go['nodes_before']}->{go['nodes_after']}" if "nodes_after" in go else "-"
        verdict = (r.get("status") or ex.get("status") or "error").upper()
        if r.get("error") and not lt:
            verdict += " (see log)"
        lines.append(
            f"| {r['model']} | {r['level']} | {ex.get('exporter') or '-'} | {verdict} | {_f(r.get('max_abs'), '{:.1e}')} "
            f"| {_f(r.get('max_rel'), '{:.1e}')} | {_f(lt.get('native_p50_ms'))} | {_f(lt.get('ort_p50_ms'))} "
            f"| {_f(lt.get('ratio_p50'), '{:.2f}x')} | {_f(min(rr) if rr else None)}..{_f(max(rr) if rr else None)} "
            f"| {_f(ex.get('wall_s'), '{:.0f}')} | {nodes} "
            f"| {_f(ex.get('peak_rss_mib'), '{:.0f}')} / {_f((r.get('bench') or {}).get('peak_rss_mib'), '{:.0f}')} "
            f"| {_f((r.get('bench') or {}).get('others_cpu'), '{:.0%}')} |"
        )
    side_by_side = {n: v for n, v in (data.get("levels") or {}).items() if v.get("ratio_p50")}
    if side_by_side:
        lines += [
            "",
            "## Optimization levels side by side",
            "",
            "Each model's bundles, one per --optimize level, timed in ONE bench beside the native model "
            "(alternating rounds over all sides), so levels compare without the drift between separate "
            "benches. ratio = native p50 / that bundle's p50; \"vs none\" = the none bundle's p50 / that "
            "level's p50 (>1: the level is faster).",
            "",
            "| model | native p50 ms | level | ORT p50 ms | ratio (per-round range) | vs none | others' CPU |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name in sorted(side_by_side, key=lambda n: order.get(n, 99)):
            v = side_by_side[name]
            base = v["ort_p50_ms"].get("none")
            for lv in v["levels"]:
                rr = v["ratio_rounds"].get(lv) or []
                lines.append(
                    f"| {name} | {v['native_p50_ms']:.2f} | {lv} | {v['ort_p50_ms'][lv]:.2f} "
                    f"| {v['ratio_p50'][lv]:.2f}x ({_f(min(rr) if rr else None)}..{_f(max(rr) if rr else None)}) "
                    f"| {_f(base / v['ort_p50_ms'][lv] if base else None, '{:.2f}x')} "
                    f"| {_f(v.get('others_cpu'), '{:.0%}')} |"
                )
    spins = [r for r in rows if (r.get("spin") or {}).get("spin_on_p50_ms")]
    if spins:
        lines += [
            "",
            "## ONNX Runtime thread spinning",
            "",
            "`session.intra_op.allow_spinning` 0 vs 1 (bridge's default, symmetric with OpenMP's spinning "
            "on the native side), both timed in one run beside native (3 sides, alternating rounds). "
            "Spinning keeps ONNX Runtime's pool busy-waiting between calls: lower latency, cores held.",
            "",
            "| model | level | native p50 ms | ORT spin off p50 ms | ORT spin on p50 ms | ratio off | ratio on | "
            "spin on / off |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in spins:
            sp = r["spin"]
            lines.append(
                f"| {r['model']} | {r['level']} | {sp['native_p50_ms']:.2f} | {sp['spin_off_p50_ms']:.2f} "
                f"| {sp['spin_on_p50_ms']:.2f} | {sp['ratio_off']:.2f}x | {sp['ratio_on']:.2f}x "
                f"| {sp['spin_off_p50_ms'] / sp['spin_on_p50_ms']:.2f}x faster |"
            )
    overrides = {r["model"]: r["atol_override"] for r in rows if r.get("atol_override")}
    if overrides:
        lines += [
            "",
            "Tolerance overrides (every other model: bridge's default float32 policy, atol 1e-5, rtol 1e-4):",
            "",
        ]
        lines += [f"- {m}: `--atol {o['atol']}`: {o.get('why', '')}" for m, o in overrides.items()]
    fallbacks = [(r["model"], r["level"], f) for r in rows for f in (r.get("export") or {}).get("fallback_from") or []]
    if fallbacks:
        lines += ["", "Exporter fallbacks (dynamo failed, TorchScript used):", ""]
        lines += [f"- {m} ({lv}): {f}" for m, lv, f in fallbacks]
    lines += [
        "",
        "max abs / max rel: the largest errors over every output and case of the bench's verification "
        "(seeded draws at batch 1, then batch 1 and 3), under bridge's default float32 CPU policy. "
        "export s: wall time of `bridge export` (load, export, optimize, verify). "
        "Peak RSS: `ru_maxrss` of each subprocess. others' CPU: the share of the machine's CPU time "
        "that other processes used while the bench ran (from /proc/stat less the bench's own rusage); "
        "above a few percent the native side's timings are inflated (its OpenMP barriers wait on "
        "descheduled threads) and the ratio overstates ONNX Runtime's lead.",
        "",
    ]
    return "\n".join(lines)


def render_precision(data: dict) -> str:
    """docs/zoo/cpu_int8.md: int8 and fp16 artifacts beside fp32, speed and agreement."""
    order = {n: i for i, n in enumerate(MODELS)}
    m = data.get("machine", {})
    sides = data.get("sides") or {}
    rows = sorted(data.get("rows") or [], key=lambda r: (order.get(r["model"], 99), r["precision"]))
    precisions = sorted(
        {r["precision"] for r in rows}, key=lambda p: ["int8", "fp16"].index(p) if p in ("int8", "fp16") else 9
    )
    lines = [
        "# bridge CPU zoo: reduced precision beside float32",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores ({m.get('isa')}), {m.get('memory_gib')} GiB; {m.get('platform')}.",
        f"Threads: {data.get('threads')} on every side, batch {data.get('batch')}, {data.get('runs')} timed runs per side "
        "(more for models of a few ms) in 5 alternating rounds.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (data.get("versions") or {}).items()) + ".",
        "",
        "Reproduce (one model at a time, nothing else running; bundles, reports and logs in build/zoo/):",
        "",
        "```bash",
        data.get("command", ""),
        "```",
        "",
        "## Speed: native float32 against each artifact, in one bench",
        "",
        "Each model's native float32 model and its float32, " + ", ".join(precisions) + " bundles timed in ONE bench "
        "(alternating rounds over every side). ratio = native p50 / that bundle's p50 (>1: the bundle is faster); "
        "per-round range in brackets. others' CPU: the share of the machine's CPU other processes used while timing "
        "(bridge bench's own measurement); above 5% a bench is marked unreliable.",
        "",
        "| model | native fp32 p50 ms | fp32 ORT ms | "
        + " | ".join(f"{p} ORT ms" for p in precisions)
        + " | fp32 ratio | "
        + " | ".join(f"{p} ratio (per-round)" for p in precisions)
        + " | "
        + " | ".join(f"{p} vs fp32 ORT" for p in precisions)
        + " | others' CPU | reliable |",
        "|" + " --- |" * (6 + 3 * len(precisions)),
    ]
    ratios: dict[str, list[float]] = {p: [] for p in precisions}
    for name in sorted(sides, key=lambda n: order.get(n, 99)):
        sd = sides[name]
        if not sd.get("ratio_p50"):
            lines.append(f"| {name} | (bench failed) |" + " - |" * (4 + 3 * len(precisions)))
            continue
        o, r = sd["ort_p50_ms"], sd["ratio_p50"]
        cells = [name, f"{sd['native_p50_ms']:.2f}", _f(o.get("fp32"))]
        cells += [_f(o.get(p)) for p in precisions]
        cells.append(_f(r.get("fp32"), "{:.2f}x"))
        for p in precisions:
            rr = (sd.get("ratio_rounds") or {}).get(p) or []
            cells.append(f"**{r[p]:.2f}x** ({min(rr):.2f}..{max(rr):.2f})" if p in r and rr else "-")
            if p in r:
                ratios[p].append(r[p])
        cells += [_f(o["fp32"] / o[p] if o.get("fp32") and o.get(p) else None, "{:.2f}x") for p in precisions]
        cells += [_f(sd.get("others_cpu"), "{:.0%}"), {True: "yes", False: "**no**", None: "-"}[sd.get("reliable")]]
        lines.append("| " + " | ".join(cells) + " |")
    for p in precisions:
        if ratios[p]:
            lines += [
                "",
                f"{p}: median ratio against native float32 {statistics.median(ratios[p]):.2f}x over "
                f"{len(ratios[p])} models, smallest {min(ratios[p]):.2f}x, largest {max(ratios[p]):.2f}x; "
                f"{sum(x < 1.0 for x in ratios[p])} model(s) below 1.0x.",
            ]
    lines += [
        "",
        "## Agreement under each precision's policy row",
        "",
        "`bridge verify BUNDLE --source SOURCE` against the native float32 model: seeded cases of the plan, plus the "
        "held-out digits with their labels for the two reference CNNs (the zoo's other models are randomly "
        "initialised and have no real data: only the error-norm bound and the element test apply to them, and bridge "
        "says that this is weak). rel. error norm: the largest ||onnx - native|| / ||native|| over outputs and cases, "
        "against the row's bound; max abs / max|ref|: the largest element error as a share of the output's scale; "
        "top-1 seeded: the lowest argmax agreement over the seeded cases, for information (not judged: random inputs "
        "put near-ties everywhere).",
        "",
        "| model | precision | method | calibrated on | verdict | rel. error norm (bound) | max abs / max\\|ref\\| "
        "| top-1 held-out | accuracy native / ONNX | top-1 seeded | export s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        v = r.get("verify") or {}
        ex = r.get("export") or {}
        verdict = (r.get("status") or ex.get("status") or "error").upper()
        if r.get("error") and not v:
            verdict += " (see log)"
        acc = (
            f"{100 * v['accuracy_native']:.1f}% / {100 * v['accuracy_onnx']:.1f}%"
            if v.get("accuracy_native") is not None
            else "-"
        )
        lines.append(
            f"| {r['model']} | {r['precision']} | {ex.get('method') or '-'} | {r.get('calibration') or '-'} | {verdict} "
            f"| {_f(v.get('rel_norm'), '{:.2e}')} ({_f(v.get('rel_norm_bound'), '{:g}')}) "
            f"| {_f(v.get('abs_over_scale'), '{:.2e}')} | {_f(v.get('top1_real'), '{:.1%}')} | {acc} "
            f"| {_f(v.get('top1_seeded_min'), '{:.0%}')} | {_f(ex.get('wall_s'), '{:.0f}')} |"
        )
    reasons = [
        (r["model"], r["precision"], r.get("reason") or (r.get("export") or {}).get("reason"))
        for r in rows
        if (r.get("status") or "") != "pass"
    ]
    if reasons:
        lines += ["", "Not passing:", ""] + [f"- {m} {p}: {why}" for m, p, why in reasons if why]
    lines += ["", "Commands per model (export, then verify against the native model), as run:", "", "```bash"]
    lines += [f".venv/bin/python -m bridge {c}" for r in rows for c in r.get("commands") or []]
    lines += ["```", ""]
    return "\n".join(lines)


def main_precision(args, out: Path, work: Path) -> int:
    path = out / "cpu_precision.json"
    data = (None if args.fresh else _load(path)) or {"rows": [], "sides": {}}
    reduced = [p for p in args.precision if p != "fp32"]
    if not args.render:
        for name in args.models or list(MODELS):
            ch = None if args.levels_only else _ensure_fp32(name, args, work)
            if ch is not None and ch["rc"] not in (0, 1):
                print(f"[zoo] {name}: float32 export failed rc={ch['rc']}", flush=True)
                continue
            prepared = _precision_data(name, work, args) if "int8" in reduced and not args.levels_only else {}
            for precision in [] if args.levels_only else reduced:
                row = run_precision(name, precision, args, work, prepared if precision == "int8" else {})
                data["rows"] = [r for r in data["rows"] if (r["model"], r["precision"]) != (name, precision)] + [row]
                data.update(
                    machine=machine(),
                    threads=args.threads,
                    runs=args.runs,
                    batch=args.batch,
                    command=_precision_command(),
                )
                path.write_text(json.dumps(data, indent=1) + "\n")
            print(f"[zoo] {name}: fp32 and {' '.join(reduced)} side by side ...", flush=True)
            data.setdefault("sides", {})[name] = got = run_precision_sides(name, reduced, args, work)
            print(f"[zoo] {name}: {got.get('ratio_p50') or got.get('error', '')[-300:]}", flush=True)
            for r in data["rows"]:
                data.setdefault("versions", {}).update(
                    ((_load(work / f"{r['model']}.{r['precision']}.verify.json") or {}).get("environment") or {}).get(
                        "versions"
                    )
                    or {}
                )
            data.get("versions", {}).pop("bridge", None)
            path.write_text(json.dumps(data, indent=1) + "\n")
            (out / "cpu_int8.md").write_text(render_precision(data))
    (out / "cpu_int8.md").write_text(render_precision(data))
    print(f"[zoo] wrote {path} and {out / 'cpu_int8.md'}")
    return 0


def _precision_command() -> str:
    return ".venv/bin/python tools/zoo.py --precision int8 fp16 --runs 30 --threads 2 --batch 1 --out docs/zoo"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", choices=list(MODELS), metavar="MODEL", help=f"subset (default: all): {' '.join(MODELS)}"
    )
    ap.add_argument(
        "--optimize",
        nargs="+",
        metavar="LEVEL",
        help="levels to compare for every model (default: each model's own list, 'none' first)",
    )
    ap.add_argument("--runs", type=int, default=30, help="timed runs per side (default 30)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", default="docs/zoo", help="output directory (default docs/zoo)")
    ap.add_argument("--work", default="build/zoo", help="bundles, reports and logs (default build/zoo)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="seconds to wait for other work on the machine to stop before each bench (default 120)",
    )
    ap.add_argument(
        "--noisy",
        type=float,
        default=0.10,
        help="rerun a bench when other processes used more than this share of the CPU (default 0.10)",
    )
    ap.add_argument("--retries", type=int, default=2, help="bench reruns on a noisy machine (default 2)")
    ap.add_argument(
        "--spin",
        action="store_true",
        help="also time ONNX Runtime with allow_spinning=1 beside the default (0) and native",
    )
    ap.add_argument(
        "--no-levels",
        action="store_true",
        help="skip the side-by-side bench of a model's --optimize levels (one bench, every level)",
    )
    ap.add_argument(
        "--levels-only",
        action="store_true",
        help="only the side-by-side bench of each model's levels (with --precision: of its float32 and "
        "reduced bundles), on the bundles already in --work",
    )
    ap.add_argument("--fresh", action="store_true", help="discard earlier rows in cpu.json instead of merging")
    ap.add_argument("--render", action="store_true", help="only regenerate cpu.md from cpu.json")
    ap.add_argument(
        "--precision",
        nargs="+",
        choices=["fp32", "int8", "fp16"],
        metavar="PRECISION",
        help="reduced-precision artifacts (int8, fp16) beside the float32 bundle: each exported with "
        "bridge export --precision, verified against the native float32 model, and timed with it "
        "in one bench; results in OUT/cpu_precision.json and OUT/cpu_int8.md",
    )
    args = ap.parse_args(argv)

    out = ROOT / args.out
    work = ROOT / args.work
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if args.precision:
        return main_precision(args, out, work)
    path = out / "cpu.json"
    data = (None if args.fresh else _load(path)) or {"rows": []}
    if not args.render:
        for name in args.models or list(MODELS):
            levels = args.optimize or MODELS[name]["levels"]
            for level in [] if args.levels_only else levels:
                row = run_one(name, level, args, work)
                if args.spin and row.get("latency"):
                    row["spin"] = run_spin(name, level, args, work)
                    print(f"[zoo] {name}.{level}: spinning {row['spin']}", flush=True)
                data["rows"] = [r for r in data["rows"] if (r["model"], r["level"]) != (name, level)] + [row]
                data.update(
                    machine=machine(), threads=args.threads, runs=args.runs, batch=args.batch, command=_command()
                )
                for r in data["rows"]:
                    data.setdefault("versions", {}).update(
                        {k: v for k, v in (r.get("versions") or {}).items() if k not in ("bridge",)}
                    )
                path.write_text(json.dumps(data, indent=1) + "\n")
                (out / "cpu.md").write_text(render(data))
            if (
                len(levels) > 1
                and not args.no_levels
                and all((work / f"{name}.{lv}" / "manifest.json").is_file() for lv in levels)
            ):
                print(f"[zoo] {name}: levels {' '.join(levels)} side by side ...", flush=True)
                data.setdefault("levels", {})[name] = got = run_levels(name, levels, args, work)
                print(f"[zoo] {name}: {got.get('ratio_p50') or got.get('error', '')[-300:]}", flush=True)
                path.write_text(json.dumps(data, indent=1) + "\n")
                (out / "cpu.md").write_text(render(data))
    (out / "cpu.md").write_text(render(data))
    print(f"[zoo] wrote {path} and {out / 'cpu.md'}")
    return 0


def _command() -> str:
    return ".venv/bin/python tools/zoo.py --runs 30 --threads 2 --batch 1 --out docs/zoo"


if __name__ == "__main__":
    raise SystemExit(main())
