"""The package's shape: no import cycle among bridge modules, frameworks/ importing nothing above it,
and the command line's path importing no numpy, torch or TensorFlow before a command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from design.imports import cycles, imports

HEAVY = ("numpy", "torch", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxscript", "ray")
BELOW_FRAMEWORKS = ("bridge", "bridge.errors", "bridge.types")


def _without_package_edges(edges: dict) -> dict:
    """A package's __init__ importing its own modules is not a cycle of the design."""
    return {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in edges.items()}


def test_no_import_cycle():
    assert cycles(_without_package_edges(imports())) == []


def test_frameworks_import_nothing_above_them():
    for module, targets in imports().items():
        if module.startswith("bridge.frameworks"):
            above = [t for t in targets if not t.startswith("bridge.frameworks") and t not in BELOW_FRAMEWORKS]
            assert not above, f"{module} imports {above}"


def test_few_modules_lie_flat_in_the_package():
    flat = [p.name for p in (ROOT / "bridge").glob("*.py")]
    assert len(flat) <= 15, sorted(flat)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["export", "--help"],
        ["verify", "--help"],
        ["check", "--help"],
        ["verify", "b", "--atol", "fast"],
        ["export", "m.py:f", "-o", "o", "--dim", "x=0"],
    ],
)
def test_the_command_line_imports_no_heavy_package_before_a_command_runs(argv):
    code = (
        "import sys\nfrom bridge.commands import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", (argv, out.stdout)
