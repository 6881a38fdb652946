"""A deployment machine has only numpy, onnx and onnxruntime: the bundle re-verifies there, and a
changed byte is refused by name."""

import os
import shutil
import subprocess
import sys

from conftest import FIXTURES, ROOT, needs_torch, run_cli

BLOCKED = ("torch", "tensorflow", "keras", "tf2onnx", "safetensors", "torchvision", "onnxscript")


def sitecustomize(blocked=BLOCKED) -> str:
    """Importing a blocked package fails as it does where the package is not installed."""
    return f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {tuple(blocked)!r}:
            raise ModuleNotFoundError("No module named " + repr(name) + " (blocked on this deployment machine)",
                                      name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


SITECUSTOMIZE = sitecustomize()


def verify_without_frameworks(*args, site, blocked=BLOCKED):
    """`bridge verify` in processes (the CLI and its worker) where importing a framework fails."""
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(sitecustomize(blocked))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "verify", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_torch
def test_bundle_reverifies_with_only_onnxruntime(workdir, tmp_path):
    built = workdir / "deploy_src"
    res = run_cli(
        "export", f"{FIXTURES / 'torch_models.py'}:tuple_outputs", "-o", built, "--input", "x:float32[batch,4]"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    bundle = tmp_path / "shipped"
    shutil.copytree(built, bundle)

    site = tmp_path / "site"
    res = verify_without_frameworks(bundle, "--json", tmp_path / "r.json", site=site)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout

    # a changed byte anywhere is refused, naming the file and the hash mismatch
    for name in ("model.onnx", "golden.npz"):
        broken = tmp_path / f"broken_{name}"
        shutil.copytree(built, broken)
        data = bytearray((broken / name).read_bytes())
        data[len(data) // 2] ^= 0x40
        (broken / name).write_bytes(bytes(data))
        res = verify_without_frameworks(broken, site=site)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"{name} was changed: sha256" in res.stderr
        assert "PASS" not in res.stdout

    # the blocker really blocks: asking for the native model fails as a missing package, with the pip line
    res = verify_without_frameworks(bundle, "--source", f"{FIXTURES / 'torch_models.py'}:tuple_outputs", site=site)
    assert res.returncode == 4, res.stdout + res.stderr
    assert "needs the torch package" in res.stderr and "pip install 'bridge-onnx[torch]'" in res.stderr

    # without onnxruntime: exit 4 naming the extra, not an internal error
    res = verify_without_frameworks(bundle, site=tmp_path / "site_no_ort", blocked=(*BLOCKED, "onnxruntime"))
    assert res.returncode == 4, res.stdout + res.stderr
    assert "needs the onnxruntime package" in res.stderr and "pip install 'bridge-onnx[cpu]'" in res.stderr


@needs_torch
def test_cli_process_never_imports_a_framework(workdir, tmp_path):
    """The contained worker does the framework work; the CLI process only renders plain data."""
    built = workdir / "deploy_src"
    if not built.exists():
        assert (
            run_cli(
                "export", f"{FIXTURES / 'torch_models.py'}:tuple_outputs", "-o", built, "--input", "x:float32[batch,4]"
            ).returncode
            == 0
        )
    code = (
        f"import sys\nexec({SITECUSTOMIZE!r})\nfrom bridge.commands import main\n"
        f"sys.exit(main(['verify', {str(built)!r}, '--source', {str(FIXTURES / 'torch_models.py') + ':tuple_outputs'!r}]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
