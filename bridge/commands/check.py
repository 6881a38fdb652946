"""``bridge check``: its own arguments, the run over the config's models (by an executor: a local
thread pool of subprocess runners, or Ray tasks), and its outputs, written under the one rule for
every writer (bridge/commands/reports.py). Every export/verify option is a config key
(bridge/request.py); this command keeps only its own flags."""

from __future__ import annotations

import argparse
import os

EPILOG = """exit codes:
  0  every model passes (parity, latency budgets, baseline)
  1  a model fails: parity, a budget, a baseline regression, or its export/verify errored
  2  bad config or usage     3  inconclusive and nothing failed
"""

DEFAULT_STEP_TIMEOUT_S = 3600.0  # per export/verify step, as `bridge export` and `bridge verify` default to


def add_arguments(p: argparse.ArgumentParser, command: str = "check") -> None:
    from bridge.check.config import DEFAULT_WORKDIR, EXECUTORS

    p.add_argument(
        "--config", metavar="PATH", help="config file (default: ./bridge.toml, else [tool.bridge] in ./pyproject.toml)"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="models checked in parallel (default 1; with --executor ray: at most N tasks in flight, "
        "default as many as the cluster holds)",
    )
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="check only this model (repeatable)")
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help=f"where bundles, reports and logs go (default: the config's workdir, else {DEFAULT_WORKDIR})",
    )
    p.add_argument("--junit", metavar="PATH", help="write one JUnit XML file for all models")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY)")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="intra-op threads per export/verify process where a model sets none (default: CPU count / "
        "--jobs; with --executor ray: 1), and the CPUs each model's Ray task asks for",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_STEP_TIMEOUT_S,
        metavar="SECONDS",
        help="limit per export/verify/prepare step where a model sets none, 0 for none (default 3600, "
        "as bridge export and verify)",
    )
    p.add_argument(
        "--update-baselines",
        action="store_true",
        help="write each passing model's verify report to its baseline path instead of comparing",
    )
    p.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="where models run: local (a process pool on this machine, the default) or ray (one Ray "
        "task per model; needs pip install 'bridge-onnx[ray]'); the config's 'executor' key "
        "sets the default",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to run on (auto, HOST:6379, ray://HOST:10001); default: start a local "
        "Ray instance and stop it at the end",
    )
    p.add_argument(
        "--ray-shared-fs",
        action="store_true",
        default=None,
        help="every Ray node sees the config's directory and the workdir at the same paths: ship "
        "nothing (default with a cluster: ship the config's directory, below 512 MiB)",
    )
    p.add_argument(
        "--ray-max-retries",
        type=int,
        metavar="N",
        help="retries of a model's Ray task after a system failure (worker or node died); never after "
        "a verdict or an error (default 2)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _executor_choice(args, config):
    """--executor and the --ray-* options over the config's executor and [ray] table."""
    from bridge.check.config import RaySettings
    from bridge.errors import UsageError

    kind = getattr(args, "executor", None) or config.executor
    ray_flags = [
        f
        for f, v in (
            ("--ray-address", getattr(args, "ray_address", None)),
            ("--ray-shared-fs", getattr(args, "ray_shared_fs", None)),
            ("--ray-max-retries", getattr(args, "ray_max_retries", None)),
        )
        if v is not None
    ]
    if kind != "ray" and ray_flags:
        raise UsageError(
            f"{', '.join(ray_flags)} applies to --executor ray, but the executor is {kind}",
            hint='add --executor ray, or set executor = "ray" in the config',
        )
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: expected 1 or more")
    retries = getattr(args, "ray_max_retries", None)
    if retries is not None and retries < 0:
        raise UsageError(f"--ray-max-retries {retries}: expected 0 or more")
    ray = RaySettings(
        address=getattr(args, "ray_address", None) or config.ray.address,
        shared_fs=bool(getattr(args, "ray_shared_fs", None) or config.ray.shared_fs),
        max_retries=config.ray.max_retries if retries is None else retries,
    )
    return kind, jobs, ray


# What this command's own options name on disk (export, verify and bench declare theirs in the option
# table of bridge/request.py): every writer goes through commands.reports.Guard; tests/hostile/
# test_writers.py enumerates these and fails on an option that is in neither table.
PATH_OPTIONS = {
    "--config": "input",
    "--workdir": "output-dir",
    "--junit": "output",
    "--json": "output",
    "--markdown": "output",
}
REPORT_FORMATS = ("json", "junit", "markdown")


def step_outputs(workdir, m) -> list[tuple[str, object, bool]]:
    """What running model ``m`` writes into the workdir: (what, path, whether a folder)."""
    out = [(f"model {m.name!r}: bundle", workdir / m.name, True)]
    out += [(f"model {m.name!r}: {kind}", workdir / f"{m.name}.{kind}", False) for kind in STEP_FILES]
    out += [
        (f"model {m.name!r}: log", workdir / f"{m.name}.prepare{i}.log", False) for i in range(len(m.prepare or []))
    ]
    return out


STEP_FILES = ("export.json", "verify.json", "export.log", "verify.log")


def guard(config, models, args, workdir, update: bool):
    """One rule for every path this run writes (commands/reports.py): its summaries (--json, --junit,
    --markdown), each model's bundle folder, reports and logs in the workdir and, with
    --update-baselines, each model's baseline: never an input of the run (the config, a model's source,
    weights, samples, labels, calibration data, policy, another model's baseline; by path, symlink or
    hard link), never inside a bundle, and a bundle folder never holding one."""
    from bridge.commands.reports import Guard

    inputs = [str(config.path)]
    for m in config.models:
        inputs += m.required_files()
        if m.baseline and not (update and m in models):
            inputs.append(m.baseline)
    check = Guard(inputs, [str(workdir / m.name) for m in config.models if m not in models or m.skip])
    written = [w for m in models if not m.skip for w in step_outputs(workdir, m)]
    for what, path, folder in sorted(written, key=lambda w: not w[2]):  # bundle folders first
        check.check(what, str(path), directory=folder)
    for flag in REPORT_FORMATS:
        value = getattr(args, flag, None)
        if value:
            check.check(f"--{flag}", value)
    if update:
        for m in models:
            if m.baseline and not m.skip:
                check.check(f"model {m.name!r}: baseline", m.baseline)
    return check


def write_failure(argv: list, args, exc, command: str = "check") -> None:
    """Every summary the command line asked for, holding the error (a config error, a refused path, a
    cluster that cannot be reached, an interrupt): a CI job collecting the JUnit file gets one."""
    from bridge.commands.reports import fallback_guard, write_all

    guard = getattr(args, "_bridge_guard", None) if args is not None else None
    config = getattr(args, "config", None) if args is not None else None
    if not any(getattr(args, f, None) for f in REPORT_FORMATS) and not any(
        str(t).startswith(tuple(f"--{f}" for f in REPORT_FORMATS)) for t in argv
    ):
        return
    guard, paths = fallback_guard("check", argv, REPORT_FORMATS, guard, extra_inputs=_config_inputs(config))
    from bridge.check.render import render_error

    write_all(paths, guard, lambda fmt: render_error(fmt, exc))


def _config_inputs(config_arg) -> list[str]:
    """What a config that may not load names: the config itself and every quoted string in it that is a
    path beside it (a fallback must never write over a model's file)."""
    import re
    from pathlib import Path

    from bridge.check.config import CONFIG_FILE

    candidates = [Path(config_arg)] if config_arg else [Path(CONFIG_FILE), Path("pyproject.toml")]
    out = []
    for path in candidates:
        if not path.is_file():
            continue
        out.append(str(path))
        try:
            text = path.read_text(errors="replace")[: 4 << 20]
        except OSError:
            continue
        for quoted in re.findall(r'"([^"\n]{1,4096})"|\'([^\'\n]{1,4096})\'', text):
            value = quoted[0] or quoted[1]
            for part in (value, value.rpartition(":")[0]):
                if part and os.path.lexists(path.parent / part):
                    out.append(str(path.parent / part))
    return out


def run(args, command: str = "check") -> int:
    import json
    import os
    from pathlib import Path

    from bridge.check.config import load_config
    from bridge.check.executor import RunSettings, make_executor
    from bridge.check.progress import make_progress
    from bridge.check.render import counts, print_rich_table, render_junit, render_markdown, render_table, summary_json
    from bridge.check.verdicts import exit_code
    from bridge.commands.reports import write_text
    from bridge.errors import UsageError
    from bridge.verdict.status import PASS, mark

    config = load_config(args.config)
    kind, jobs, ray = _executor_choice(args, config)
    if kind == "ray":
        threads = getattr(args, "threads", None) or 1
    else:
        threads = getattr(args, "threads", None) or max(1, (os.cpu_count() or 1) // (jobs or 1))
    if threads < 1:
        raise UsageError(f"--threads {threads}: expected 1 or more")
    timeout = getattr(args, "timeout", DEFAULT_STEP_TIMEOUT_S)
    if timeout is not None and timeout < 0:
        raise UsageError(f"--timeout {timeout:g}: expected 0 (none) or more seconds")
    models = config.models
    selected = getattr(args, "model", None) or []
    if selected:
        unknown = [n for n in selected if n not in {m.name for m in models}]
        if unknown:
            raise UsageError(
                f"--model {', '.join(unknown)}: not in {config.path}",
                hint="models there: " + ", ".join(m.name for m in models),
            )
        models = [m for m in models if m.name in selected]
    update = getattr(args, "update_baselines", False)
    if not update:
        for m in models:
            if m.baseline and not m.skip and not os.path.isfile(m.baseline):
                raise UsageError(
                    f"{config.path.name}: model {m.name!r}: baseline {m.baseline} does not exist",
                    hint="write it with --update-baselines, or remove the baseline key",
                )
    workdir = Path(args.workdir).resolve() if getattr(args, "workdir", None) else config.workdir
    args._bridge_guard = guard(config, models, args, workdir, update)
    workdir.mkdir(parents=True, exist_ok=True)
    executor = make_executor(
        kind,
        RunSettings(config=config, workdir=workdir, threads=threads, timeout=timeout or None, update_baselines=update),
        jobs=jobs,
        ray=ray,
    )

    progress, console = make_progress(not getattr(args, "no_progress", False))
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
        print_rich_table(console, ordered, with_node)
    else:
        print(render_table(ordered, with_node))
    if update:
        for m, r in zip(models, ordered):
            if m.baseline and r.report is not None and r.verdict == PASS:
                write_text(m.baseline, json.dumps(r.report, indent=2) + "\n")
                print(f"baseline written: {m.baseline}")
    if getattr(args, "junit", None):
        write_text(args.junit, render_junit(ordered))
    if getattr(args, "markdown", None):
        write_text(args.markdown, render_markdown(ordered, code, with_node))
    if getattr(args, "json", None):
        write_text(
            args.json, json.dumps(summary_json(config, ordered, code, workdir, executor.describe()), indent=2) + "\n"
        )
    overall = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[code]
    print(
        f"bridge check: {overall}: "
        + ", ".join(f"{n} {mark(s).lower()}" for s, n in counts(ordered).items() if n)
        + f" (bundles, reports and logs in {workdir})"
    )
    return code
