"""bridge's own cost: `bridge verify --source` wall time against a minimal hand-written script doing
the same work (load the model, ONNX Runtime session, compare once, the same timed runs), each in
a fresh process, alternating; plus `bridge --help` against a bare interpreter start.

bridge's worker skips the interpreter's teardown once its answer is sent (tearing down torch takes
0.5 to 1 s). The script is timed twice: as written (ending normally, as a user's script would) and
ending with os._exit(0) like bridge's worker, so the second ratio is the cost of bridge's own work.

    python tools/overhead.py [--model tools/zoo_models.py:torch_cnn] [--runs 100] [--repeats 3]

Prints the medians and their ratio; the goal is under 1.15x (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = r"""
import sys, time, importlib.util
import numpy as np, onnxruntime as ort, torch
path, attr = sys.argv[1].rsplit(":", 1)
spec = importlib.util.spec_from_file_location("m", path); mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
factory = getattr(mod, attr)
model = factory().eval()
torch.set_num_threads(int(sys.argv[4]))
spec_txt = factory.bridge_inputs[0] if hasattr(factory, "bridge_inputs") else mod.BRIDGE_INPUTS[0]
dims = [int(d) if d.isdigit() else 2 for d in spec_txt.split("[")[1].rstrip("]").split(",")]
x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[4])
sess = ort.InferenceSession(sys.argv[2], so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
with torch.inference_mode():
    ref = model(torch.from_numpy(x)).numpy()
out = sess.run(None, {name: x})[0]
assert np.allclose(out, ref, atol=1e-5, rtol=1e-4)
runs = int(sys.argv[3])
for side in ("torch", "ort"):
    ts = []
    for _ in range(runs + 10):
        t = time.perf_counter_ns()
        if side == "torch":
            with torch.inference_mode():
                model(torch.from_numpy(x)).numpy()
        else:
            sess.run(None, {name: x})
        ts.append(time.perf_counter_ns() - t)
    print(side, sorted(ts[10:])[runs // 2] / 1e6)
if len(sys.argv) > 5:
    import os
    sys.stdout.flush()
    os._exit(0)
"""


def wall(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tools/zoo_models.py:torch_cnn")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "b"
        subprocess.run(
            [py, "-m", "bridge", "export", args.model, "-o", str(bundle), "--threads", str(args.threads)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
        script = Path(tmp) / "minimal.py"
        script.write_text(MINIMAL)
        a, b, c = [], [], []
        minimal = [py, str(script), args.model, str(bundle / "model.onnx"), str(args.runs), str(args.threads)]
        for _ in range(args.repeats):
            a.append(
                wall(
                    [
                        py,
                        "-m",
                        "bridge",
                        "verify",
                        str(bundle),
                        "--source",
                        args.model,
                        "--latency-runs",
                        str(args.runs),
                        "--threads",
                        str(args.threads),
                    ]
                )
            )
            b.append(wall(minimal))
            c.append(wall(minimal + ["fast-exit"]))
        helps = [wall([py, "-m", "bridge", "--help"]) for _ in range(5)]
        bare = [wall([py, "-c", "pass"]) for _ in range(5)]
    ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
    print(f"model {args.model}, {args.runs} timed runs per side, {args.threads} threads, {args.repeats} repeats")
    print(f"bridge verify --source: median {ma:.2f} s  (all: {', '.join(f'{x:.2f}' for x in a)})")
    print(f"minimal script:         median {mb:.2f} s  (all: {', '.join(f'{x:.2f}' for x in b)})")
    print(f"minimal, no teardown:   median {mc:.2f} s  (all: {', '.join(f'{x:.2f}' for x in c)})")
    print(
        f"ratio bridge / minimal: {ma / mb:.2f}x; bridge / minimal without teardown (bridge's own work): {ma / mc:.2f}x"
    )
    print(f"bridge --help: median {statistics.median(helps):.3f} s; bare python start: {statistics.median(bare):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
