"""The Python API as a notebook user meets it: a model object in, a bundle and reports out; a
changed model fails; `import bridge` stays light; assert_parity shows the reason once."""

import json
import subprocess
import sys

from conftest import ROOT, needs_torch, run_py

API_SCRIPT = """
import json, sys, torch
import bridge
from bridge.errors import BridgeError

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
out = sys.argv[1]
r1 = bridge.export(net, out + "/bundle", inputs=["x:float32[batch,4]"], threads=1)
r2 = bridge.verify(out + "/bundle", source=net, threads=1, atol=1e-5)
with torch.no_grad():
    net[2].bias += 0.5   # the model changed after export
r3 = bridge.verify(out + "/bundle", source=net, threads=1)
r4 = bridge.verify(out + "/bundle")  # golden check, no native model
try:
    bridge.verify(out + "/bundle", source=net, bogus=1)
    typo = None
except BridgeError as exc:  # an unknown keyword is a usage error, as an unknown flag is
    typo = f"{exc.exit_code} {exc}"
print(json.dumps({"export": r1.status, "verify": r2.status, "changed": r3.status, "changed_reason": r3.reason,
                  "golden": r4.check, "source": r2.source, "typo": typo}))
"""


@needs_torch
def test_export_and_verify_a_model_object(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["export"] == "pass" and got["verify"] == "pass"
    assert got["changed"] == "fail" and "values" in got["changed_reason"]
    assert got["golden"]["kind"] == "golden"
    assert got["source"].startswith("<torch.nn.modules.container.Sequential object>")
    assert got["typo"].startswith("2 ") and "unknown keyword argument 'bogus'" in got["typo"]
    assert (tmp_path / "bundle" / "manifest.json").is_file()


def test_import_bridge_imports_nothing_heavy():
    res = run_py(
        "import sys, bridge; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'torch', 'tensorflow', 'onnx', 'onnxruntime') or m.startswith('bridge.')))"
    )
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_bridge_export_stays_the_function_after_the_orchestration_module_is_imported():
    res = run_py(
        "import bridge, bridge.exporting, bridge.verifying; "
        "print(callable(bridge.export), callable(bridge.verify), type(bridge.export).__name__)"
    )
    assert res.stdout.split() == ["True", "True", "function"], res.stdout + res.stderr
