"""A newcomer's own PyTorch models through the command line and their own pytest file: an MLP, a model
with BatchNorm and Dropout, one whose code calls .cuda(), a float64 input spec, a bundle verified against
the wrong source, and a failing assert_parity read in pytest's output."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, needs_torch, run_cli, without_stages

pytestmark = [needs_torch, pytest.mark.torch]

MODELS = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,8]"]


class MLP(nn.Module):
    def __init__(self, act=torch.relu):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(8, 16), nn.Linear(16, 4), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def relu():
    torch.manual_seed(0)
    return MLP(torch.relu)  # in training mode, as nn.Module builds it: eval() changes nothing here


def sigmoid():
    torch.manual_seed(0)
    return MLP(torch.sigmoid)


def normed():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.1), nn.Linear(16, 4))


class OnCuda(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(x.cuda())


def on_cuda():
    torch.manual_seed(0)
    return OnCuda()
"""

USER_TEST = """
import torch
from torch import nn

import bridge
from bridge.testing import assert_parity


def test_parity(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    bridge.export(model, tmp_path / "b", inputs=["x:float32[batch,8]"])
    with torch.no_grad():
        model[2].bias += 0.01  # the model changed after its export
    assert_parity(tmp_path / "b", model)
"""


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    d = tmp_path_factory.mktemp("newcomer_torch")
    (d / "models.py").write_text(MODELS)
    res = run_cli("export", "models.py:relu", "-o", "relu", "--quiet", cwd=d)
    assert res.returncode == 0, res.stdout + res.stderr
    return d


def test_an_mlp_gets_no_training_mode_note_and_normalisation_gets_one(here):
    res = run_cli("verify", "relu", "--source", "models.py:relu", "--quiet", "--json", "r.json", cwd=here)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "training mode" not in res.stdout
    assert not any("training mode" in n for n in json.loads((here / "r.json").read_text())["notes"])
    res = run_cli("export", "models.py:normed", "-o", "normed", "--quiet", "--json", "n.json", cwd=here)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("training mode") == 1  # once
    note = next(n for n in json.loads((here / "n.json").read_text())["notes"] if "training mode" in n)
    assert "BatchNorm1d" in note and "Dropout" in note  # why the switch matters, kept in the report


def test_a_wrong_source_is_named_and_localize_blames_the_node_that_diverges(here):
    res = run_cli("verify", "relu", "--source", "models.py:sigmoid", "--localize", "repro", "--quiet", cwd=here)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "note: the bundle was exported from models.py:relu; this verification runs models.py:sigmoid" in res.stdout
    head = next(ln for ln in res.stdout.splitlines() if ln.startswith("first divergence"))
    assert "(Relu)" in head and "Gemm" not in head and "module fc2" not in head, head
    readme = (here / "repro" / "README.txt").read_text()
    assert "reproduces: yes" in readme and "(Relu)" in readme


def test_native_failures_get_the_hint_their_error_calls_for(here):
    res = run_cli("export", "models.py:relu", "-o", "f64", "--input", "x:float64[batch,8]", cwd=here)
    err = without_stages(res.stderr)
    assert res.returncode == 2, err
    assert "the model's weights are float32, its inputs float64 (x)" in err and "--dim-min" not in err
    res = run_cli("export", "models.py:on_cuda", "-o", "cuda", cwd=here)
    err = without_stages(res.stderr)
    assert res.returncode == 4, err
    assert "asks for CUDA" in err and "--device" in err and "--dim-min" not in err


def test_a_failing_assert_parity_reads_like_assert_close(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TEST)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    assert "torch.__trace" not in out  # no empty DEBUG records captured from the in-process export
    assert "training mode" not in out
    error = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("E ")]
    assert error[0].startswith("AssertionError: bridge parity FAIL: ") and " vs <torch.nn.modules" in error[0]
    reason = error[1]
    assert reason.startswith("output, case ") and sum(reason in ln for ln in error) == 1  # the reason once
    assert error[-1].startswith("next: bridge.verify(") and "localize='localize/'" in error[-1]
    assert len(out.splitlines()) < 40, out
