"""The ``check`` subcommand: its arguments, the run over the config's models (by an executor: a local
thread pool of subprocess runners, or Ray tasks), the outputs written, and ``python -m bridge.check``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bridge.check.config import DEFAULT_WORKDIR, EXECUTORS, RaySettings, load_config
from bridge.check.executor import RunSettings, make_executor
from bridge.check.progress import _make_progress
from bridge.check.render import _counts, _print_rich_table, render_junit, render_markdown, render_table, summary_json
from bridge.check.verdicts import _MARK, PASS, exit_code
from bridge.errors import EXIT_INCONCLUSIVE, EXIT_PARITY, EXIT_PASS, UsageError


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)


EPILOG = """exit codes:
  0  every model passes (parity, latency budgets, baseline)
  1  a model fails: parity, a budget, a baseline regression, or its export/verify errored
  2  bad config or usage     3  inconclusive and nothing failed
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "check", help="export and verify every model of bridge.toml / [tool.bridge]: one CI exit code",
        description="Export and verify every model listed in a config file (bridge.toml, or [tool.bridge] in\n"
                    "pyproject.toml), each step in its own process, then apply latency budgets and baseline\n"
                    "regression checks. See docs/ci.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: ./bridge.toml, else [tool.bridge] in ./pyproject.toml)")
    p.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="models checked in parallel (default 1; with --executor ray: at most N tasks in flight, "
                        "default as many as the cluster holds)")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="check only this model (repeatable)")
    p.add_argument("--workdir", metavar="DIR",
                   help=f"where bundles, reports and logs go (default: the config's workdir, else {DEFAULT_WORKDIR})")
    p.add_argument("--junit", metavar="PATH", help="write one JUnit XML file for all models")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="intra-op threads per export/verify process (default: CPU count / --jobs; with "
                        "--executor ray: 1), and the CPUs each model's Ray task asks for")
    p.add_argument("--timeout", type=float, default=0, metavar="SECONDS",
                   help="limit per export/verify/prepare process, 0 for none (default 0)")
    p.add_argument("--update-baselines", action="store_true",
                   help="write each passing model's verify report to its baseline path instead of comparing")
    p.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where models run: local (a process pool on this machine, the default) or ray (one Ray "
                        "task per model; needs pip install 'bridge-onnx[ray]'); the config's 'executor' key "
                        "sets the default")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to run on (auto, HOST:6379, ray://HOST:10001); default: start a local "
                        "Ray instance and stop it at the end")
    p.add_argument("--ray-shared-fs", action="store_true", default=None,
                   help="every Ray node sees the config's directory and the workdir at the same paths: ship "
                        "nothing (default with a cluster: ship the config's directory, below 512 MiB)")
    p.add_argument("--ray-max-retries", type=int, metavar="N",
                   help="retries of a model's Ray task after a system failure (worker or node died); never after "
                        "a verdict or an error (default 2)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _executor_choice(args, config) -> tuple[str, int | None, RaySettings]:
    """--executor and the --ray-* options over the config's executor and [ray] table."""
    kind = getattr(args, "executor", None) or config.executor
    ray_flags = [f for f, v in (("--ray-address", getattr(args, "ray_address", None)),
                                ("--ray-shared-fs", getattr(args, "ray_shared_fs", None)),
                                ("--ray-max-retries", getattr(args, "ray_max_retries", None))) if v is not None]
    if kind != "ray" and ray_flags:
        raise UsageError(f"{', '.join(ray_flags)} applies to --executor ray, but the executor is {kind}",
                         hint="add --executor ray, or set executor = \"ray\" in the config")
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: expected 1 or more")
    retries = getattr(args, "ray_max_retries", None)
    if retries is not None and retries < 0:
        raise UsageError(f"--ray-max-retries {retries}: expected 0 or more")
    ray = RaySettings(address=getattr(args, "ray_address", None) or config.ray.address,
                      shared_fs=bool(getattr(args, "ray_shared_fs", None) or config.ray.shared_fs),
                      max_retries=config.ray.max_retries if retries is None else retries)
    return kind, jobs, ray


def cmd_check(args) -> int:
    config = load_config(args.config)
    kind, jobs, ray = _executor_choice(args, config)
    if kind == "ray":
        threads = getattr(args, "threads", None) or 1
    else:
        threads = getattr(args, "threads", None) or max(1, (os.cpu_count() or 1) // (jobs or 1))
    if threads < 1:
        raise UsageError(f"--threads {threads}: expected 1 or more")
    timeout = getattr(args, "timeout", 0) or 0
    if timeout < 0:
        raise UsageError(f"--timeout {timeout:g}: expected 0 (none) or more seconds")
    models = config.models
    selected = getattr(args, "model", None) or []
    if selected:
        unknown = [n for n in selected if n not in {m.name for m in models}]
        if unknown:
            raise UsageError(f"--model {', '.join(unknown)}: not in {config.path}",
                             hint="models there: " + ", ".join(m.name for m in models))
        models = [m for m in models if m.name in selected]
    update = getattr(args, "update_baselines", False)
    if not update:
        for m in models:
            if m.baseline and not m.skip and not os.path.isfile(m.baseline):
                raise UsageError(f"{config.path.name}: model {m.name!r}: baseline {m.baseline} does not exist",
                                 hint="write it with --update-baselines, or remove the baseline key")
    workdir = Path(args.workdir).resolve() if getattr(args, "workdir", None) else config.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    executor = make_executor(kind, RunSettings(config=config, workdir=workdir, threads=threads, timeout=timeout,
                                               update_baselines=update), jobs=jobs, ray=ray)

    progress, console = _make_progress(not getattr(args, "no_progress", False))
    progress.show_node = executor.show_node
    progress.start([m.name for m in models])
    try:
        results = executor.run(models, progress)
    finally:
        progress.stop()

    ordered = [results[m.name] for m in models]
    code = exit_code(ordered)
    with_node = executor.show_node
    if console is not None:
        _print_rich_table(console, ordered, with_node)
    else:
        print(render_table(ordered, with_node))
    if update:
        for m, r in zip(models, ordered):
            if m.baseline and r.report is not None and r.verdict == PASS:
                _write(m.baseline, json.dumps(r.report, indent=2) + "\n")
                print(f"baseline written: {m.baseline}")
    if getattr(args, "junit", None):
        _write(args.junit, render_junit(ordered))
    if getattr(args, "markdown", None):
        _write(args.markdown, render_markdown(ordered, code, with_node))
    if getattr(args, "json", None):
        _write(args.json, json.dumps(summary_json(config, ordered, code, workdir, executor.describe()), indent=2)
               + "\n")
    counts = _counts(ordered)
    overall = {EXIT_PASS: "PASS", EXIT_PARITY: "FAIL", EXIT_INCONCLUSIVE: "INCONCLUSIVE"}[code]
    print(f"bridge check: {overall}: " + ", ".join(f"{n} {_MARK[s].lower()}" for s, n in counts.items() if n)
          + f" (bundles, reports and logs in {workdir})")
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.check``: the same as ``bridge check`` (one parser, one error handler)."""
    from bridge.cli import main as bridge_main

    return bridge_main(["check", *(sys.argv[1:] if argv is None else argv)])