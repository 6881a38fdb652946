"""bridge.localize: the first diverging ONNX node, chunked exposure of intermediates, the reproduction
folder, and (torch, in its own process) matching native module outputs."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import needs_torch, run_py
from onnx import TensorProto, helper, numpy_helper
from onnx.reference.op_run import OpRun

from bridge.errors import InputError, UsageError
from bridge.localize import REPRO_FILES, localize
from bridge.verdict.policy import Policy

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((8, 16)).astype(np.float32)
B1 = RNG.standard_normal(16).astype(np.float32)
W2 = RNG.standard_normal((16, 4)).astype(np.float32)
FEEDS = {"x": RNG.standard_normal((3, 8)).astype(np.float32)}


def chain(dropout: bool = False, gelu: bool = False, shuffle: bool = False):
    """MatMul -> Add -> Relu [-> Dropout in training mode] [-> com.microsoft.Gelu] -> MatMul -> Softmax."""
    inits = [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(B1, "b1"), numpy_helper.from_array(W2, "w2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["mm1"], name="mm1"),
        helper.make_node("Add", ["mm1", "b1"], ["add1"], name="add1"),
        helper.make_node("Relu", ["add1"], ["relu1"], name="relu1"),
    ]
    last = "relu1"
    if dropout:  # exported in training mode: ONNX Runtime and the reference draw different masks
        inits += [
            numpy_helper.from_array(np.array(0.5, np.float32), "ratio"),
            numpy_helper.from_array(np.array(True), "training"),
        ]
        nodes.append(helper.make_node("Dropout", [last, "ratio", "training"], ["drop"], name="drop", seed=3))
        last = "drop"
    if gelu:  # an ONNX Runtime contrib op the reference evaluator does not have
        nodes.append(helper.make_node("Gelu", [last], ["gelu"], name="gelu", domain="com.microsoft"))
        last = "gelu"
    nodes += [
        helper.make_node("MatMul", [last, "w2"], ["mm2"], name="mm2"),
        helper.make_node("Softmax", ["mm2"], ["y"], name="softmax", axis=-1),
    ]
    if shuffle:
        nodes = nodes[::-1]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if gelu else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


@pytest.fixture
def save(tmp_path):
    def _save(model, name="model.onnx", **kwargs):
        path = tmp_path / name
        onnx.save_model(model, str(path), **kwargs)
        return str(path)

    return _save


class BrokenMatMul(OpRun):
    """A faulty reference kernel: the 'corrupted' engine side, so the later MatMul must be named."""

    op_domain = ""

    def _run(self, a, b):
        out = np.matmul(a, b)
        return (out * np.float32(1.1) if a.shape[-1] == 16 else out,)  # only the second MatMul (16 -> 4)


def ort_session(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def test_clean_graph_no_divergence(save, tmp_path):
    out = tmp_path / "repro"
    r = localize(save(chain()), FEEDS, Policy(), str(out))
    assert r.status == "no divergence found"
    assert r.compared == 5 and r.node is None and r.repro_dir is None
    assert not out.exists()
    assert json.loads(json.dumps(r.to_json()))["status"] == "no divergence found"


def test_unsorted_graph_is_sorted_first(save):
    r = localize(save(chain(dropout=True, shuffle=True)), FEEDS, Policy(), None)
    assert (r.status, r.node, r.node_index, r.compared) == ("diverged", "drop", 3, 4)


def test_names_the_corrupted_node_and_writes_a_reproduction(save, tmp_path):
    out = tmp_path / "repro"
    r = localize(save(chain(dropout=True)), FEEDS, Policy(), str(out))
    assert r.status == "diverged" and r.engines == "ort-vs-reference"
    assert (r.node, r.op_type, r.output, r.node_index) == ("drop", "Dropout", "drop", 3)
    assert r.compared == 4  # mm1, add1, relu1 passed; drop failed; mm2 and y never compared
    assert r.max_abs > 0.1 and r.tolerance.atol == 1e-5 and r.reproduces is True
    assert r.repro_dir == str(out.absolute())
    assert sorted(os.listdir(out)) == sorted(REPRO_FILES)

    sub = onnx.load(str(out / "sub.onnx"))
    onnx.checker.check_model(sub)
    assert [n.op_type for n in sub.graph.node] == ["Dropout"]
    assert [i.name for i in sub.graph.input] == ["relu1"]
    inputs, expected = np.load(out / "inputs.npz"), np.load(out / "expected.npz")
    assert inputs.files == ["relu1"] and expected.files == ["drop"]
    got = ort_session(str(out / "sub.onnx")).run(None, {"relu1": inputs["relu1"]})[0]
    assert not np.allclose(got, expected["drop"], atol=1e-5, rtol=1e-4)  # the mismatch reproduces

    # README.txt's command, run as written in the folder, reports the mismatch.
    readme = (out / "README.txt").read_text()
    script = readme.split("python - <<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    res = subprocess.run([sys.executable, "-c", script], cwd=out, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "drop max abs error" in res.stdout and "MISMATCH" in res.stdout
    assert json.loads((out / "localize.json").read_text())["node"] == "drop"

    # A second run replaces an earlier reproduction folder; a folder holding anything else is refused.
    r2 = localize(save(chain(dropout=True)), FEEDS, Policy(), str(out))
    assert r2.repro_dir == r.repro_dir and sorted(os.listdir(out)) == sorted(REPRO_FILES)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds other files"):
        localize(save(chain(dropout=True)), FEEDS, Policy(), str(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".repro")] == []  # no temp dirs left


def test_later_faulty_kernel_named_not_an_earlier_node(save):
    r = localize(save(chain()), FEEDS, Policy(), None, reference_ops=[type("MatMul", (BrokenMatMul,), {})])
    assert (r.status, r.node, r.node_index, r.compared) == ("diverged", "mm2", 3, 4)
    assert r.reproduces is True


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_chunking_gives_the_same_answer(save, chunk_size):
    path = save(chain(dropout=True))
    big = localize(path, FEEDS, Policy(), None, chunk_size=64)
    small = localize(path, FEEDS, Policy(), None, chunk_size=chunk_size)
    keys = ("status", "engines", "node", "output", "compared", "max_abs", "max_rel", "reproduces")
    assert {k: getattr(small, k) for k in keys} == {k: getattr(big, k) for k in keys}
    clean = save(chain(), "clean.onnx")
    assert (
        localize(clean, FEEDS, Policy(), None, chunk_size=chunk_size).to_json()
        == localize(clean, FEEDS, Policy(), None, chunk_size=64).to_json()
    )


def test_op_the_reference_lacks_is_noted_and_bridged(save):
    r = localize(save(chain(gelu=True)), FEEDS, Policy(), None, chunk_size=2)
    assert r.status == "no divergence found"
    assert r.compared == 5  # 6 values; Gelu's could not be checked, ONNX Runtime's value fed the MatMul after it
    assert any("could not run op com.microsoft.Gelu" in n and "'gelu'" in n for n in r.notes)


def test_external_data_model(save):
    path = save(
        chain(dropout=True),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    r = localize(path, FEEDS, Policy(), None, chunk_size=2)
    assert (r.status, r.node, r.reproduces) == ("diverged", "drop", True)


def test_bad_arguments(save, tmp_path):
    path = save(chain())
    with pytest.raises(InputError, match="does not exist"):
        localize(str(tmp_path / "missing.onnx"), FEEDS, Policy(), None)
    with pytest.raises(UsageError, match="missing"):
        localize(path, {}, Policy(), None)
    with pytest.raises(UsageError, match="unknown"):
        localize(path, {**FEEDS, "z": FEEDS["x"]}, Policy(), None)
    with pytest.raises(UsageError, match="float64"):
        localize(path, {"x": FEEDS["x"].astype(np.float64)}, Policy(), None)
    with pytest.raises(UsageError, match="shape"):
        localize(path, {"x": FEEDS["x"][:, :4]}, Policy(), None)
    with pytest.raises(UsageError, match="chunk_size"):
        localize(path, FEEDS, Policy(), None, chunk_size=0)
    with pytest.raises(UsageError, match="Policy"):
        localize(path, FEEDS, {"atol": 1e-5}, None)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        localize(path, FEEDS, Policy(), str(tmp_path / "file"))
    dangling = chain()
    dangling.graph.node[1].input[0] = "nowhere"
    with pytest.raises(InputError, match="'nowhere', which no node produces"):
        localize(save(dangling, "dangling.onnx"), FEEDS, Policy(), None)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load"):
        localize(str(tmp_path / "junk.onnx"), FEEDS, Policy(), None)


def test_non_torch_native_is_noted(save):
    class Other:
        framework = "tensorflow"

    r = localize(save(chain()), FEEDS, Policy(), None, native=Other())
    assert r.status == "no divergence found"
    assert any("torch models only" in n for n in r.notes)


TORCH_SCRIPT = r"""
import contextlib, io, json, sys
import numpy as np, onnx, torch
from onnx import numpy_helper
from torch import nn
from bridge.frameworks.pt import TorchModel
from bridge.localize import localize
from bridge.verdict.policy import Policy

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.act = nn.ReLU()  # called twice

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))

torch.manual_seed(0)
net = Net().eval()
x = torch.randn(3, 8)
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    proto = torch.onnx.export(net, (x,), None, dynamo=True, input_names=["x"], output_names=["output"]).model_proto
out = sys.argv[1]
onnx.save(proto, out + "/clean.onnx")
scopes = sorted({p.value for n in proto.graph.node for p in n.metadata_props if p.key == "pkg.torch.onnx.name_scopes"})
for init in proto.graph.initializer:
    if init.name == "fc2.weight":
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.05), init.name))
onnx.save(proto, out + "/scaled.onnx")
native = TorchModel("net", net)
feeds = {"x": x.numpy()}
res = {"scopes": scopes,
       "clean": localize(out + "/clean.onnx", feeds, Policy(), None, native=native).to_json(),
       "scaled": localize(out + "/scaled.onnx", feeds, Policy(), out + "/repro", native=native).to_json(),
       "scaled2": localize(out + "/scaled.onnx", feeds, Policy(), None, native=native, chunk_size=2).to_json()}
print("RESULT" + json.dumps(res))
"""


@needs_torch
@pytest.mark.torch
def test_torch_native_matching_names_the_scaled_module(tmp_path):
    (tmp_path / "script.py").write_text(TORCH_SCRIPT)
    res = run_py(
        f"import runpy, sys; sys.argv = ['x', {str(tmp_path)!r}]; "
        f"runpy.run_path({str(tmp_path / 'script.py')!r}, run_name='__main__')",
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.split("RESULT", 1)[1])
    assert "['', 'fc2', 'linear_1']" in out["scopes"]  # what the dynamo exporter writes per node

    clean = out["clean"]
    assert clean["status"] == "no divergence found" and clean["compared_native"] >= 4  # fc1, act x2, fc2, fc3

    scaled = out["scaled"]
    assert scaled["status"] == "diverged" and scaled["engines"] == "onnx-vs-native"
    assert (scaled["module"], scaled["module_call"], scaled["op_type"]) == ("fc2", 0, "Gemm")
    assert scaled["compared_native"] == 3  # fc1, act (first call) passed, fc2 failed
    assert scaled["reproduces"] is True and scaled["other"] == []
    repro = tmp_path / "repro"
    assert sorted(os.listdir(repro)) == sorted(REPRO_FILES)
    sub_inputs, expected = np.load(repro / "inputs.npz"), np.load(repro / "expected.npz")
    assert expected.files == [scaled["output"]]
    got = ort_session(str(repro / "sub.onnx")).run(None, {k: sub_inputs[k] for k in sub_inputs.files})[0]
    assert not np.allclose(got, expected[scaled["output"]], atol=1e-5, rtol=1e-4)

    scaled2 = out["scaled2"]
    for key in ("status", "engines", "module", "module_call", "node", "output", "compared", "compared_native"):
        assert scaled2[key] == scaled[key], key


def test_large_embedded_weights_go_to_a_temp_file_once(save, monkeypatch):
    import bridge.localize.model as loc

    monkeypatch.setattr(loc, "_EXTERNALIZE_ABOVE", 0)
    r = localize(save(chain(dropout=True)), FEEDS, Policy(), None, chunk_size=2)
    assert (r.status, r.node, r.compared, r.reproduces) == ("diverged", "drop", 4, True)


UNCOVERED_SCRIPT = r"""
import contextlib, io, json, sys
import numpy as np, onnx, torch
from torch import nn
from bridge.frameworks.pt import TorchModel
from bridge.localize import localize
from bridge.verdict.policy import Policy

class Net(nn.Module):  # the activation is a function, not a module: no native module covers it
    def __init__(self, act):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(8, 16), nn.Linear(16, 4), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

torch.manual_seed(0)
exported = Net(torch.relu).eval()
native = Net(torch.sigmoid).eval()
native.load_state_dict(exported.state_dict())
x = torch.randn(5, 8)
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    proto = torch.onnx.export(exported, (x,), None, dynamo=True, input_names=["x"], output_names=["output"]).model_proto
out = sys.argv[1]
onnx.save(proto, out + "/relu.onnx")
with torch.no_grad():
    fc1 = native.fc1(x).numpy()
    fc2_in = torch.sigmoid(native.fc1(x)).numpy()
np.savez(out + "/native.npz", fc1=fc1, fc2_in=fc2_in)
res = localize(out + "/relu.onnx", {"x": x.numpy()}, Policy(), out + "/repro", native=TorchModel("net", native))
print("RESULT" + json.dumps(res.to_json()))
"""


@needs_torch
@pytest.mark.torch
def test_divergence_outside_every_module_names_that_node_and_feeds_it_native_values(tmp_path):
    """An export with ReLU where the native model has a sigmoid (a function call, no module): fc2 fails,
    but fc2 is innocent. The first divergence is the Relu node; its reproduction feeds it fc1's native
    output and expects fc2's native input, so it shows only what the Relu gets wrong."""
    (tmp_path / "script.py").write_text(UNCOVERED_SCRIPT)
    res = run_py(
        f"import runpy, sys; sys.argv = ['x', {str(tmp_path)!r}]; "
        f"runpy.run_path({str(tmp_path / 'script.py')!r}, run_name='__main__')",
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    r = json.loads(res.stdout.split("RESULT", 1)[1])
    assert (r["status"], r["engines"], r["op_type"], r["module"]) == ("diverged", "onnx-vs-native", "Relu", None)
    assert r["reproduces"] is True
    assert any("module fc2 (call 0) fails, but its input" in n and "(Relu)" in n for n in r["notes"]), r["notes"]
    repro = tmp_path / "repro"
    native = np.load(tmp_path / "native.npz")
    sub_inputs, expected = np.load(repro / "inputs.npz"), np.load(repro / "expected.npz")
    assert len(sub_inputs.files) == 1 and np.array_equal(sub_inputs[sub_inputs.files[0]], native["fc1"])
    assert expected.files == [r["output"]] and np.array_equal(expected[r["output"]], native["fc2_in"])
    sub = onnx.load(str(repro / "sub.onnx"))
    assert [n.op_type for n in sub.graph.node] == ["Relu"]  # fc2's Gemm is not in the reproduction
    got = ort_session(str(repro / "sub.onnx")).run(None, {k: sub_inputs[k] for k in sub_inputs.files})[0]
    assert np.array_equal(got, np.maximum(native["fc1"], 0))  # the Relu itself computes what it should
    readme = (repro / "README.txt").read_text()
    assert "diverging:  node " in readme and "(Relu)" in readme and "module fc2 (call 0), last node" not in readme
