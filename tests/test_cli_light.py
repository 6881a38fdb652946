"""The CLI's import cost: `bridge --help` must not import a framework or onnxruntime."""

import subprocess
import sys
import time

from conftest import ROOT, run_cli

HEAVY = ("torch", "tensorflow", "keras", "tf2onnx", "onnxruntime", "onnx", "numpy")


def test_help_imports_no_framework():
    code = (
        "import sys; from bridge.commands import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_commands_and_exit_codes():
    for args in (["--help"], ["export", "--help"], ["verify", "--help"], ["bench", "--help"]):
        out = run_cli(*args)
        assert out.returncode == 0
        assert "exit codes" in out.stdout or "COMMAND" in out.stdout
    out = run_cli("--help")
    for cmd in ("export", "verify", "bench", "inspect"):
        assert cmd in out.stdout


def test_help_is_fast():
    start = time.perf_counter()
    out = run_cli("--help")
    elapsed = time.perf_counter() - start
    assert out.returncode == 0
    assert elapsed < 5.0  # generous for a loaded CI machine; tools/startup.py measures the real figure


def test_usage_errors_exit_2_with_one_line():
    out = run_cli("export")
    assert out.returncode == 2 and "bridge: usage:" in out.stderr
    out = run_cli("frobnicate")
    assert out.returncode == 2
