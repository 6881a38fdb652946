"""The working directory is attacker-controlled (an unpacked download): no module in it may run,
whichever documented way bridge is started (`bridge`, `python -m bridge`)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from hostile.build import pair_bundle
from hostile.common import assert_verdict

# Modules the CLI, the worker start-up or the verify path import: each one planted in the working
# directory as a module that leaves a marker when imported.
TRAPS = (
    "argparse",
    "json",
    "tempfile",
    "traceback",
    "pathlib",
    "dataclasses",
    "multiprocessing",
    "numpy",
    "onnx",
    "onnxruntime",
    "hashlib",
    "shutil",
    "signal",
    "zipfile",
    "textwrap",
    "gettext",
)


def _plant(cwd: Path, marks: Path) -> None:
    for name in TRAPS:
        body = f"open({str(marks / name)!r}, 'w').close()\nraise ImportError('planted')\n"
        if name in ("multiprocessing", "numpy", "onnx", "onnxruntime"):
            (cwd / name).mkdir()
            (cwd / name / "__init__.py").write_text(body)
        else:
            (cwd / f"{name}.py").write_text(body)


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    base = tmp_path_factory.mktemp("entry")
    bundle = pair_bundle(
        base / "bundle", {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.0], np.float32)}
    )
    cwd, marks = base / "download", base / "marks"
    cwd.mkdir()
    marks.mkdir()
    _plant(cwd, marks)
    return bundle, cwd, marks


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = str(ROOT)  # explicit entries stay; only the implicit working directory goes
    return env


@pytest.mark.parametrize("argv", [("--help",), ("verify", "{bundle}")], ids=["help", "verify"])
def test_python_dash_m_ignores_modules_in_the_working_directory(download, argv):
    bundle, cwd, marks = download
    args = [a.format(bundle=bundle) for a in argv]
    res = subprocess.run(
        [sys.executable, "-m", "bridge", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )
    ran = sorted(p.name for p in marks.iterdir())
    assert ran == [], f"modules from the working directory ran: {ran}\n{res.stderr[-2000:]}"
    if argv[0] == "--help":
        assert res.returncode == 0 and "usage: bridge" in res.stdout, res.stderr
    else:
        assert_verdict(res, 0)


def test_the_trap_is_real(download):
    """Control: the same directory does shadow the standard library for a plain `python -c` there."""
    _, cwd, marks = download
    code = "import textwrap"  # -c puts the working directory first on sys.path
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, timeout=60)
    assert (marks / "textwrap").exists(), "the planted module did not shadow the standard library"
    (marks / "textwrap").unlink()
