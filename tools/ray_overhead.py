"""Ray's own cost in ``bridge check``: the models of the repository's bridge.toml (the four reference
models) plus a few zoo models (``tools/zoo_models.py``), checked with ``--executor ray`` (a local Ray
instance, started and stopped by the check, one CPU per model) and with ``--jobs 2`` (one thread per
model), alternating (local, ray, ray, local, ...), each run a fresh ``python -m bridge check`` process.

    python tools/ray_overhead.py [--zoo lstm mobilenet_v3_large transformer_encoder] [--rounds 2]
    python tools/ray_overhead.py --ray-address HOST:6379   # the Ray side on a running cluster

Prints each run's wall time, when its first step started and how long it ran after its last model
finished (Ray's start and stop show there), the sum of its models' seconds, the CPU seconds of the
run's own processes, the share of the machine's CPU that other processes used meanwhile, the ratio
ray / local per round and over all rounds (sum of walls), and whether both executors gave the same
JUnit testcases and verdicts. The goal is 1.10x at most. Needs the trained reference models
(``python -m models.reference``). Raw numbers: ``build/ray-overhead/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.check import load_config  # noqa: E402  (bridge's public API, from this checkout)

PATH_KEYS = ("weights", "inputs_npz", "baseline")
DEFAULT_ZOO = ["lstm", "mobilenet_v3_large", "transformer_encoder"]


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def write_config(out: Path, zoo: list[str]) -> Path:
    """The repository's models with absolute paths (no prepare: their files must exist), then the zoo's."""
    cfg = load_config(ROOT / "bridge.toml")
    missing = [p for m in cfg.models for p in m.required_files() if not os.path.exists(p)]
    if missing:
        raise SystemExit(
            f"ray_overhead: {missing[0]} is missing: train the reference models first "
            "(.venv/bin/python -m models.reference)"
        )
    raw = tomllib.loads((ROOT / "bridge.toml").read_text())
    lines = ['workdir = "work"', ""]
    for entry, m in zip(raw["models"], cfg.models):
        entry = {k: v for k, v in entry.items() if k != "prepare"}
        entry["source"] = m.source
        for key in PATH_KEYS:
            if key in entry:
                entry[key] = getattr(m, key)
        lines += ["[[models]]", *(f"{k} = {_toml(v)}" for k, v in entry.items()), ""]
    for name in zoo:
        lines += ["[[models]]", f"name = {_toml(name)}", f"source = {_toml(f'{ROOT}/tools/zoo_models.py:{name}')}", ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bridge.toml"
    path.write_text("\n".join(lines))
    return path


STEP = re.compile(r"^  \S+: (preparing|exporting|running on)")  # plain progress: a model's first step
DONE = re.compile(r"^\[\d+/\d+\] ")  # a model finished
MARK = "BRIDGE_RAY_OVERHEAD_RUN"  # in the environment of a run and of everything it starts (Ray's processes too)


class CpuSampler(threading.Thread):
    """CPU seconds of the run's processes and of every other process, from /proc every half second. A
    run's processes are those carrying its mark in their environment: the check, its steps, and the
    Ray processes it starts (orphaned Ray workers too, which rusage of children would miss)."""

    def __init__(self, mark: str) -> None:
        super().__init__(daemon=True)
        self.mark = f"{MARK}={mark}".encode()
        self.last: dict[int, float] = {}
        self.own = self.others = 0.0
        self.stopping = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(stat[11]) + int(stat[12])) / self.tick
                own = self.mark in Path(f"/proc/{pid}/environ").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            delta = cpu - self.last.get(pid, 0.0)  # a process born during the run: all of its CPU
            self.last[pid] = cpu
            if own:
                self.own += max(delta, 0.0)
            else:
                self.others += max(delta, 0.0)

    def run(self) -> None:
        self.sample()
        self.own = self.others = 0.0  # from here on: only what was spent during the run
        while not self.stopping.wait(0.5):
            self.sample()

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.sample()


def cases(junit: Path) -> dict:
    root = ET.parse(junit).getroot()
    return {
        s.get("name"): sorted((tc.get("name"), tc.find("failure") is not None) for tc in s.findall("testcase"))
        for s in root.findall("testsuite")
    }


def run_check(config: Path, out: Path, executor: str, index: int, ray_address: str | None = None) -> dict:
    work = out / f"work-{executor}"
    stem = out / f"{index}-{executor}"
    summary, junit, log = stem.with_suffix(".json"), stem.with_suffix(".xml"), stem.with_suffix(".log")
    argv = [
        sys.executable,
        "-m",
        "bridge",
        "check",
        "--config",
        str(config),
        "--workdir",
        str(work),
        "--no-progress",
        "--json",
        str(summary),
        "--junit",
        str(junit),
    ]
    argv += (
        ["--executor", "ray"] + (["--ray-address", ray_address] if ray_address else [])
        if executor == "ray"
        else ["--jobs", "2"]
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        MARK: f"{index}-{executor}",
    }
    sampler = CpuSampler(f"{index}-{executor}")
    sampler.start()
    t0 = time.perf_counter()
    first = last = None  # the first step started, the last model finished: what lies outside is start and stop
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            now = time.perf_counter() - t0
            fh.write(f"{now:8.2f} {line}")
            if first is None and STEP.match(line):
                first = now
            if DONE.match(line):
                last = now
        code = proc.wait()
    wall = time.perf_counter() - t0
    sampler.stop()
    cores = os.cpu_count() or 1
    data = json.loads(summary.read_text())
    return {
        "executor": executor,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "models_s": round(sum(m["seconds"] for m in data["models"]), 1),
        "first_step_s": round(first or 0.0, 1),
        "after_last_s": round(wall - (last or wall), 1),
        "own_cpu_s": round(sampler.own, 1),
        "others_cpu": round(sampler.others / (wall * cores), 3),
        "counts": data["counts"],
        "verdicts": {m["name"]: (m["status"], m["verdict"]) for m in data["models"]},
        "cases": cases(junit),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zoo", nargs="*", default=DEFAULT_ZOO, help=f"zoo factories to add (default {DEFAULT_ZOO})")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each runs both executors (default 2)")
    ap.add_argument("--gap", type=float, default=5.0, help="idle seconds between runs (default 5)")
    ap.add_argument("--out", default=str(ROOT / "build" / "ray-overhead"))
    ap.add_argument("--ray-address", help="run the Ray side on this running cluster instead of a local instance")
    args = ap.parse_args()
    out = Path(args.out)
    config = write_config(out, args.zoo)
    runs = []
    for r in range(args.rounds):
        for executor in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
            if runs:
                time.sleep(args.gap)
            run = run_check(config, out, executor, len(runs), args.ray_address)
            run["round"] = r + 1
            runs.append(run)
            print(
                f"round {r + 1} {executor:5s}: {run['wall_s']:7.1f} s wall, models {run['models_s']:7.1f} s, "
                f"first step at {run['first_step_s']:.1f} s, {run['after_last_s']:.1f} s after the last model, "
                f"own CPU {run['own_cpu_s']:.0f} s, others' CPU {run['others_cpu']:.0%}, exit {run['exit_code']}",
                flush=True,
            )

    same = all(run["cases"] == runs[0]["cases"] and run["verdicts"] == runs[0]["verdicts"] for run in runs)
    ratios = []
    print(
        "\n| round | executor | wall s | first step at s | after the last model s | models' seconds (sum) "
        "| CPU s of the run | others' CPU | exit |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        name = "--executor ray" if run["executor"] == "ray" else "--jobs 2"
        print(
            f"| {run['round']} | {name} | {run['wall_s']:.1f} | {run['first_step_s']:.1f} "
            f"| {run['after_last_s']:.1f} | {run['models_s']:.1f} | {run['own_cpu_s']:.0f} | {run['others_cpu']:.0%} "
            f"| {run['exit_code']} |"
        )
    for r in range(1, args.rounds + 1):
        wall = {run["executor"]: run["wall_s"] for run in runs if run["round"] == r}
        ratios.append(wall["ray"] / wall["local"])
    total = sum(run["wall_s"] for run in runs if run["executor"] == "ray") / sum(
        run["wall_s"] for run in runs if run["executor"] == "local"
    )
    models = ", ".join(runs[0]["verdicts"])
    print(f"\nmodels: {models}")
    print(
        "ray / local per round: "
        + ", ".join(f"{x:.3f}x" for x in ratios)
        + f"; over all rounds {total:.3f}x (median of rounds {statistics.median(ratios):.3f}x; goal <= 1.10x)"
    )
    print(f"same testcases and verdicts in every run: {'yes' if same else 'NO'}")
    (out / "result.json").write_text(
        json.dumps(
            {"runs": runs, "ratios": ratios, "overall": total, "same": same, "models": list(runs[0]["verdicts"])},
            indent=2,
        )
        + "\n"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
