"""A deployment machine has only numpy, onnx and onnxruntime: the bundle re-verifies there, and a
changed byte is refused by name."""

import shutil
import subprocess
import sys

from conftest import FIXTURES, ROOT, needs_torch, run_cli

BLOCKED = ("torch", "tensorflow", "keras", "tf2onnx", "safetensors", "torchvision", "onnxscript")

ONLY_ORT = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked on this deployment machine: " + name)
        return None
sys.meta_path.insert(0, Block())
from bridge.cli import main
code = main(sys.argv[1:])
leaked = [m for m in {BLOCKED!r} if m in sys.modules]
assert not leaked, leaked
sys.exit(code)
"""


def verify_without_frameworks(*args):
    return subprocess.run([sys.executable, "-c", ONLY_ORT, "verify", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@needs_torch
def test_bundle_reverifies_with_only_onnxruntime(workdir, tmp_path):
    built = workdir / "deploy_src"
    res = run_cli("export", f"{FIXTURES / 'torch_models.py'}:tuple_outputs", "-o", built, "--input", "x:float32[batch,4]")
    assert res.returncode == 0, res.stdout + res.stderr
    bundle = tmp_path / "shipped"
    shutil.copytree(built, bundle)

    res = verify_without_frameworks(bundle, "--json", tmp_path / "r.json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout

    # a changed byte anywhere is refused, naming the file and the hash mismatch
    for name in ("model.onnx", "golden.npz"):
        broken = tmp_path / f"broken_{name}"
        shutil.copytree(built, broken)
        data = bytearray((broken / name).read_bytes())
        data[len(data) // 2] ^= 0x40
        (broken / name).write_bytes(bytes(data))
        res = verify_without_frameworks(broken)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"{name} was changed: sha256" in res.stderr
        assert "PASS" not in res.stdout

    # the blocker really blocks: asking for the native model fails as a missing framework (exit 4)
    res = verify_without_frameworks(bundle, "--source", f"{FIXTURES / 'torch_models.py'}:tuple_outputs")
    assert res.returncode in (2, 4), res.stdout + res.stderr
