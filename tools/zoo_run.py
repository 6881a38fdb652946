"""What every zoo's renderer shares: run a zoo config through ``bridge check`` (in this process, as the
command line does), merge its summary by model name into the one kept under build/, and read each
model's export and verify reports from the check's workdir. Standard library only: the frameworks run in
bridge check's own subprocesses, one model at a time.

The zoos (each a ``bridge check`` config plus a renderer; nothing here writes export/verify/bench
command lines: every option is a config key):

    python tools/zoo.py             zoo/speed.toml      -> docs/zoo/cpu.md      float32 levels side by side
    python tools/zoo_precision.py   zoo/precision.toml  -> docs/zoo/cpu_int8.md int8 and fp16 beside fp32
    python tools/zoo_scale.py       zoo/scale.toml      -> docs/zoo/scale.md    deployment scale (issue 23)
    python tools/coverage.py        zoo/coverage.toml   -> docs/coverage.md     100 architectures
    python -m models.reference      zoo/reference.toml  -> the README's table   the four reference models
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fnmatch
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


# -- running ----------------------------------------------------------------------------------------
def config_models(config: Path) -> list[str]:
    with open(config, "rb") as fh:
        return [m["name"] for m in tomllib.load(fh)["models"]]


def config_workdir(config: Path) -> Path:
    with open(config, "rb") as fh:
        workdir = tomllib.load(fh).get("workdir", "build/bridge-check")
    return (config.parent / workdir).resolve()


def select(names: list[str], patterns: str | None, what: str = "zoo") -> list[str]:
    """The config's models matching comma-separated names or globs, in the config's order."""
    if not patterns:
        return list(names)
    chosen, unknown = [], []
    for pat in (p.strip() for p in patterns.split(",") if p.strip()):
        hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            unknown.append(pat)
        chosen += [h for h in hits if h not in chosen]
    if unknown:
        raise SystemExit(f"{what}: --models {','.join(unknown)}: not in the config")
    return [n for n in names if n in chosen]


def _limit_memory(gb: float | None) -> None:
    """An address-space limit for this process and every process it starts (RLIMIT_AS)."""
    if gb:
        import resource

        limit = int(gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_check(
    config: Path,
    models: list[str] | None = None,
    *,
    jobs: int = 1,
    timeout: float | None = None,
    memory_limit: float | None = None,
    threads: int | None = None,
    quiet: bool = False,
) -> dict:
    """One ``bridge check --config CONFIG`` over ``models`` (None: all), in this process; its JSON
    summary, with the run's wall seconds."""
    from bridge.commands import main as bridge_main

    _limit_memory(memory_limit)
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        out = Path(tmp) / "summary.json"
        argv = ["check", "--config", str(config), "--jobs", str(jobs), "--json", str(out), "--no-progress"]
        if timeout:
            argv += ["--timeout", str(timeout)]
        if threads:
            argv += ["--threads", str(threads)]
        argv += [a for n in models or [] for a in ("--model", n)]
        print("$ bridge " + " ".join(os.path.relpath(a, ROOT) if a.startswith(str(ROOT)) else a for a in argv))
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
            code = bridge_main(argv)
        wall = time.perf_counter() - start
        if code not in (0, 1, 3) or not out.is_file():
            raise SystemExit(f"bridge check ended with exit {code} and no summary")
        summary = json.loads(out.read_text())
    summary["wall_seconds"] = round(wall, 1)
    return summary


def merge(old: dict | None, new: dict, order: list[str]) -> dict:
    """New records replace old ones by name; the result follows the config's order."""
    records = {m["name"]: m for m in (old or {}).get("models", [])}
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for m in new["models"]:
        records[m["name"]] = {**m, "run_at": stamp}
    merged = {k: v for k, v in new.items() if k not in ("models", "counts", "status", "exit_code", "wall_seconds")}
    merged["models"] = [records[n] for n in order if n in records]
    counts = {"pass": 0, "fail": 0, "inconclusive": 0, "skipped": 0}
    for m in merged["models"]:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    merged["counts"] = counts
    merged["runs"] = [
        *(old or {}).get("runs", []),
        {"at": stamp, "models": len(new["models"]), "wall_seconds": new.get("wall_seconds")},
    ]
    return merged


def run_and_merge(config: Path, summary_path: Path, patterns: str | None, what: str, **check) -> dict:
    """Run the selected models of ``config`` and merge them into the summary kept at ``summary_path``."""
    names = config_models(config)
    chosen = select(names, patterns, what)
    new = run_check(config, None if not patterns else chosen, **check)
    summary = merge(load(summary_path), new, names)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def kept_summary(summary_path: Path, what: str) -> dict:
    summary = load(summary_path)
    if summary is None:
        raise SystemExit(f"{what}: no summary at {summary_path}; run without --render first")
    return summary


# -- reading -------------------------------------------------------------------------------------------
def load(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return None


def reports(record: dict, workdir: Path) -> tuple[dict | None, dict | None]:
    """A summary record's export and verify reports (a verify report older than a failed export is not
    this run's)."""
    name = record["name"]
    export = load(record.get("export_report") or workdir / f"{name}.export.json")
    verify = load(record.get("verify_report") or workdir / f"{name}.verify.json")
    if record.get("error") and record["error"].get("step") == "export":
        verify = None
    return export, verify


def log_seconds(path: Path) -> float | None:
    """Wall seconds of a step, from the header bridge check writes into its log ("# exit 0, 38.5 s")."""
    try:
        with open(path) as fh:
            for line in (next(fh, ""), next(fh, "")):
                m = re.match(r"# exit -?\d+.*?, ([0-9.]+) s", line)
                if m:
                    return float(m.group(1))
    except OSError:
        pass
    return None


def environment(*reports_) -> dict:
    """The first report's environment, with versions merged over every report (torch from one model's,
    TensorFlow from another's)."""
    env = next((r.get("environment") for r in reports_ if r and r.get("environment")), None) or {}
    versions = dict(env.get("versions") or {})
    for r in reports_:
        for k, v in (((r or {}).get("environment") or {}).get("versions") or {}).items():
            versions.setdefault(k, v)
    versions.pop("bridge", None)
    return {**env, "versions": versions}


def machine_line(env: dict) -> str:
    """The machine the reports were made on: their platform and CPU count, and this machine's CPU model
    and vector extensions when the platform is the same (the reports do not record them)."""
    import platform

    m = env.get("machine") or {}
    parts = [m.get("processor"), f"{m.get('cpus')} CPUs" if m.get("cpus") else None]
    if m.get("platform") == platform.platform():
        parts.insert(0, _cpu_model())
    return ", ".join(str(p) for p in parts if p) or "unknown machine"


def _cpu_model() -> str | None:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), None)
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name} ({' '.join(isa)})" if name else None


def versions_line(env: dict, keys=("torch", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "onnxscript")) -> str:
    v = env.get("versions") or {}
    return ", ".join(f"{k} {v[k]}" for k in keys if k in v)


def auto(report: dict | None) -> dict:
    """The ``--precision auto`` record of an export report (candidates, peers, chosen), or {}."""
    return ((report or {}).get("exporter") or {}).get("auto") or {}


def auto_latency(report: dict | None) -> dict:
    """The one bench of an auto export (native, peers, candidates side by side), or {}."""
    latency = (report or {}).get("latency") or {}
    return latency.get(auto(report).get("device") or "cpu") or {}


# -- formatting -------------------------------------------------------------------------------------
def num(x, fmt: str = ".1e") -> str:
    return "-" if not isinstance(x, (int, float)) else format(x, fmt)


def ratio(x) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{x:.2f}x"


def one_line(text, limit: int = 300) -> str:
    text = " ".join(str(text or "").split()).replace(str(ROOT) + os.sep, "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(headers: list[str], rows: list[list]) -> list[str]:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return [
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
        *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows),
    ]


def median_line(values: list[float], what: str) -> str:
    if not values:
        return f"{what}: no model timed."
    return (
        f"{what}: median {statistics.median(values):.2f}x over {len(values)} models, smallest {min(values):.2f}x, "
        f"largest {max(values):.2f}x; {sum(v < 1.0 for v in values)} below 1.0x."
    )


def not_run(configured: list[str], ran: set, command: str) -> list[str]:
    """The config's models a page has no row for, named, so that a table never looks complete when it is not."""
    missing = [n for n in configured if n not in ran]
    if not missing:
        return []
    return [
        f"The config holds {len(configured)} models; {len(missing)} have no row here yet (not run for this "
        f"page, not failed): {', '.join(f'`{n}`' for n in missing)}. Run them with `{command} --models NAME,...`.",
        "",
    ]


def write(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {os.path.relpath(out, ROOT)}")


def arguments(parser, config: str, summary: str, out: str, timeout: float = 3600) -> None:
    """The options every zoo renderer takes."""
    parser.add_argument("--config", default=config, help=f"the zoo config (default {config})")
    parser.add_argument("--summary", default=summary, help=f"the merged check summary (default {summary})")
    parser.add_argument("--out", default=out, help=f"the Markdown page (default {out})")
    parser.add_argument("--models", help="comma-separated model names or globs; merged into the summary")
    parser.add_argument("--render", action="store_true", help="run nothing; render the kept summary")
    parser.add_argument("--jobs", type=int, default=1, help="models checked in parallel (default 1: timings)")
    parser.add_argument(
        "--timeout", type=float, default=timeout, help=f"seconds per export/verify step (default {timeout:g})"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads on every side (default 2)")
    parser.add_argument(
        "--memory-limit", type=float, metavar="GB", help="address-space limit of every process of the run (RLIMIT_AS)"
    )


def summary_for(args, what: str) -> dict:
    """Run (unless --render) and return the merged summary the renderer reads."""
    summary_path = ROOT / args.summary
    if args.render:
        return kept_summary(summary_path, what)
    return run_and_merge(
        (ROOT / args.config).resolve(),
        summary_path,
        args.models,
        what,
        jobs=args.jobs,
        timeout=args.timeout,
        memory_limit=args.memory_limit,
        threads=args.threads,
    )


def last_run(summary: dict) -> str:
    """When the newest model of a summary finished (ISO time), or 'unknown'."""
    return max((m.get("run_at") or "" for m in summary.get("models", [])), default="") or "unknown"


def page(argv, doc: str, config: str, summary: str, out: str, what: str, render, timeout: float = 3600) -> int:
    """A renderer's main: its options, the run (unless --render), then ``render(summary, workdir,
    config relative to the repository, the config's model names, args)`` written to --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    arguments(parser, config, summary, out, timeout=timeout)
    args = parser.parse_args(argv)
    merged = summary_for(args, what)
    config_path = (ROOT / args.config).resolve()
    workdir = Path(merged.get("workdir") or config_workdir(config_path))
    rel = str(config_path.relative_to(ROOT))
    write(ROOT / args.out, render(merged, workdir, rel, config_models(config_path), args))
    return 0
