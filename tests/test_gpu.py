"""The CUDA path on a machine with an NVIDIA GPU (skipped elsewhere; run by tools/gpu_check.sh)."""

import json
import os

import pytest

from conftest import FIXTURES, needs_torch, run_cli

pytestmark = [pytest.mark.gpu, needs_torch,
              pytest.mark.skipif(not os.path.exists("/dev/nvidia0"), reason="no NVIDIA GPU on this machine")]

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
    res = run_cli("bench", bundle, "--source", SRC, "--device", "cuda", "--latency-runs", "30",
                  "--json", workdir / "b.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "b.json").read_text())
    assert report["status"] == "pass", report["reason"]
    sides = report["latency"]["cuda"]["sides"]
    assert {"native", "onnxruntime", "onnxruntime-iobinding"} <= set(sides)
    assert report["environment"]["native_devices"] == ["cuda"]
    assert all(o["tolerance"]["rtol"] >= 1e-3 for o in report["outputs"])  # the CUDA row of the policy


def test_hidden_gpu_is_an_environment_error_not_a_silent_cpu_run(bundle):
    res = run_cli("verify", bundle, "--device", "cuda", env={"CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 4, res.stdout + res.stderr
    assert res.stderr.startswith("bridge: environment:")
