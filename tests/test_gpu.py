"""The CUDA path on a machine with an NVIDIA GPU (skipped elsewhere; run by tools/gpu_check.sh)."""

import json
import os

import pytest
from conftest import FIXTURES, needs_torch, run_cli, without_stages

pytestmark = [
    pytest.mark.gpu,
    needs_torch,
    pytest.mark.skipif(not os.path.exists("/dev/nvidia0"), reason="no NVIDIA GPU on this machine"),
]

SRC = f"{FIXTURES / 'torch_two.py'}:two_in_two_out"


@pytest.fixture(scope="module")
def bundle(workdir):
    out = workdir / "gpu_two"
    res = run_cli("export", SRC, "-o", out)
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def test_golden_on_cuda_ep_runs_on_cuda(bundle, workdir):
    res = run_cli("verify", bundle, "--device", "cuda", "--json", workdir / "g.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "g.json").read_text())
    assert report["environment"]["onnxruntime"]["cuda"]["providers"][0] == "CUDAExecutionProvider"
    assert report["environment"]["machine"]["gpu"]


def test_native_torch_on_cuda_with_io_binding_latency(bundle, workdir):
    res = run_cli(
        "bench", bundle, "--source", SRC, "--device", "cuda", "--latency-runs", "30", "--json", workdir / "b.json"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "b.json").read_text())
    assert report["status"] == "pass", report["reason"]
    sides = report["latency"]["cuda"]["sides"]
    assert {"native", "onnxruntime", "onnxruntime-iobinding"} <= set(sides)
    assert report["environment"]["native_devices"] == ["cuda"]
    # verified in strict fp32: TF32 off on both sides, the strict CUDA row of the policy
    assert report["environment"]["onnxruntime"]["cuda"]["settings"]["cuda_options"] == {"use_tf32": "0"}
    assert report["environment"]["native"]["precision"]["cudnn.allow_tf32"] is False
    assert all(o["device"] == "cuda" and o["tolerance"]["rtol"] == 1e-4 for o in report["outputs"])


def test_tf32_mode_uses_its_own_policy_row(bundle, workdir):
    res = run_cli("verify", bundle, "--source", SRC, "--device", "cuda", "--tf32", "--json", workdir / "t.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "t.json").read_text())
    assert all(o["device"] == "cuda-tf32" for o in report["outputs"])
    assert report["environment"]["onnxruntime"]["cuda"]["settings"]["cuda_options"] == {"use_tf32": "1"}


def test_hidden_gpu_is_an_environment_error_not_a_silent_cpu_run(bundle):
    res = run_cli("verify", bundle, "--device", "cuda", env={"CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 4, res.stdout + res.stderr
    assert without_stages(res.stderr).startswith("bridge: environment:")
