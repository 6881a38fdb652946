"""Helpers shared by the hostile-input tests: running many CLI calls at once, and the assertions every
hostile test makes (exit code, one `bridge: <category>: ...` line, no traceback, no side effect,
nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conftest import ROOT, run_cli

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build.py"
TORCH_FACTORIES = HERE / "torch_factories.py"

# CLI calls are mostly waiting on imports and on the worker process: a few at a time finish sooner,
# even on two cores.
WORKERS = int(os.environ.get("BRIDGE_HOSTILE_WORKERS", "4"))


@dataclass
class Call:
    """One CLI invocation in its own empty working directory (so that any file it drops is seen)."""

    args: tuple
    cwd: Path
    env: dict = field(default_factory=dict)
    timeout: int = 300


def case_dirs(base: Path, name: str) -> tuple[Path, Path]:
    """(out_parent, cwd) for one case: both empty, both checked afterwards."""
    out = base / name / "out"
    cwd = base / name / "cwd"
    out.mkdir(parents=True)
    cwd.mkdir(parents=True)
    return out, cwd


def run_many(calls: dict[str, Call], workers: int = WORKERS) -> dict[str, subprocess.CompletedProcess]:
    def one(item):
        name, call = item
        return name, run_cli(*call.args, cwd=call.cwd, env=call.env, timeout=call.timeout)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, calls.items()))


def build(what: str, out: Path, marks: Path | None = None, timeout: int = 300) -> None:
    """Run a torch/TensorFlow builder of build.py in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, str(BUILD), what, str(out)] + ([str(marks)] if marks is not None else [])
    res = subprocess.run(args, cwd=out.parent, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def error_line(res: subprocess.CompletedProcess) -> str:
    """The one error line. stderr must hold exactly one `bridge: ` line, optional `  hint:` lines, and
    nothing else: no traceback, no library warning, no log spam."""
    from bridge.progress import is_stage_line

    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not is_stage_line(ln)]
    assert "Traceback" not in res.stderr, res.stderr
    bridge_lines = [ln for ln in lines if ln.startswith("bridge: ")]
    assert len(bridge_lines) == 1, res.stderr
    assert lines[0].startswith("bridge: "), f"stderr does not start with the bridge line:\n{res.stderr}"
    others = [ln for ln in lines[1:] if not ln.startswith("  hint: ")]
    assert not others, f"stderr holds more than the bridge line and its hint:\n{res.stderr}"
    return lines[0]


def assert_exit(res: subprocess.CompletedProcess, code: int, category: str | None = None, *fragments: str) -> str:
    """Exit code, then the one-line message with its category and the fragments it must contain."""
    assert res.returncode == code, (
        f"exit {res.returncode}, expected {code}\nstdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-2000:]}"
    )
    line = error_line(res)
    if category is not None:
        assert line.startswith(f"bridge: {category}: "), line
    for frag in fragments:
        assert frag.lower() in line.lower(), (frag, line)
    return line


def assert_verdict(res: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """A verdict (exit 0, 1 or 3) comes with a report on stdout and nothing on stderr."""
    assert res.returncode == code, (
        f"exit {res.returncode}, expected {code}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-2000:]}"
    )
    assert "Traceback" not in res.stderr, res.stderr
    verdict = {0: "verdict: PASS", 1: "verdict: FAIL", 3: "verdict: INCONCLUSIVE"}[code]
    assert verdict in res.stdout, res.stdout
    for frag in fragments:
        assert frag.lower() in res.stdout.lower(), (frag, res.stdout[-3000:])


def assert_empty(*dirs: Path) -> None:
    """Nothing was written: no bundle, no staging directory, no dropped file."""
    for d in dirs:
        left = sorted(p.name for p in Path(d).iterdir())
        assert left == [], f"{d} should be empty, holds {left}"


def assert_no_marker(marks: Path, *names: str) -> None:
    """The payload's side effect did not happen: no marker file (all of them, or the ones named)."""
    present = sorted(p.name for p in marks.iterdir())
    if names:
        present = [p for p in present if any(p.startswith(n) for n in names)]
    assert present == [], f"payload side effects happened: {present} in {marks}"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root with its type, size and mtime: to prove a command changed nothing."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (p.is_symlink(), p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


_BUILT: dict[str, tuple[Path, Path]] = {}


def shared_build(what: str, tmp_path_factory) -> tuple[Path, Path]:
    """(files, marks) of a torch/keras builder, built once per test session and shared by modules."""
    if what not in _BUILT:
        base = tmp_path_factory.mktemp(f"built_{what}")
        files, marks = base / "files", base / "marks"
        marks.mkdir()
        build(what, files, marks)
        assert list(marks.iterdir()) == [], "a payload ran while it was built"
        _BUILT[what] = (files, marks)
    return _BUILT[what]
