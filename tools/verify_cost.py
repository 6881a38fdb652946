"""What the case plan costs: `bridge verify --source` wall time of the reference models, this checkout
against an earlier commit, alternating in one run (a shared machine drifts; ratios of neighbours hold).

    git worktree add /tmp/bridge_before d1718e2
    .venv/bin/python tools/verify_cost.py --before /tmp/bridge_before --rounds 3

Needs the reference models trained and exported in each checkout (`python -m models.reference` run in
it): each side verifies the bundles its own bridge exported (a bundle's format moves between commits),
against the same trained weights (training is seeded). Prints, per model, the median wall time of each
checkout, the ratio and the number of cases each ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # name -> (source within a checkout, weights, samples)
    "torch_regression": ("models/torch_regression.py:build", "torch_regression.pt", "data/regression_test.npz"),
    "torch_cnn": ("models/torch_cnn.py:build", "torch_cnn.pt", "data/digits_test_nchw.npz"),
    "tf_regression": ("build/reference/tf_regression.keras", None, "data/regression_test.npz"),
    "tf_cnn": ("build/reference/tf_cnn.keras", None, "data/digits_test_nhwc.npz"),
}


def one(checkout: Path, name: str, threads: int) -> tuple[float, int, int]:
    source, weights, samples = MODELS[name]
    ref = checkout / "build" / "reference"
    if not (ref / "bundles" / name).is_dir():
        raise SystemExit(f"{ref / 'bundles' / name} is missing: run python -m models.reference in {checkout}")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        argv = [
            sys.executable,
            "-m",
            "bridge",
            "verify",
            str(ref / "bundles" / name),
            "--source",
            str(checkout / source),
            "--inputs",
            str(ref / samples),
            "--threads",
            str(threads),
            "--json",
            str(report),
        ]
        if weights:
            argv += ["--weights", str(ref / weights)]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        start = time.perf_counter()
        # run from the checkout itself, so that its own bridge package is the one imported
        res = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - start
        cases = len(json.loads(report.read_text()).get("cases", [])) if report.exists() else -1
    return seconds, res.returncode, cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="a checkout of the earlier commit (git worktree add ...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sides = {"before": Path(args.before).resolve(), "after": ROOT}
    rows = []
    for name in MODELS:
        times = {k: [] for k in sides}
        info = {}
        for _ in range(args.rounds):
            for side, checkout in sides.items():
                seconds, code, cases = one(checkout, name, args.threads)
                times[side].append(seconds)
                info[side] = (code, cases)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        rows.append((name, b, a, a / b, info["before"], info["after"]))
    print("| model | before s (cases, exit) | after s (cases, exit) | after / before |")
    print("| --- | --- | --- | --- |")
    for name, b, a, ratio, ib, ia in rows:
        print(f"| {name} | {b:.2f} ({ib[1]}, {ib[0]}) | {a:.2f} ({ia[1]}, {ia[0]}) | {ratio:.2f}x |")
    total_b, total_a = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(
        f"\ntotal: before {total_b:.1f} s, after {total_a:.1f} s, {total_a / total_b:.2f}x "
        f"({args.rounds} alternating rounds, {args.threads} threads)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
