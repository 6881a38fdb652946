"""PyTorch end to end through the CLI, each command in its own process."""

import json

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, needs_torch, run_cli, run_py, without_stages
from onnx import numpy_helper

pytestmark = [needs_torch, pytest.mark.torch]

TWO = f"{FIXTURES / 'torch_two.py'}:two_in_two_out"


@pytest.fixture(scope="module")
def two_bundle(workdir):
    out = workdir / "torch_two"
    res = run_cli("export", TWO, "-o", out, "--json", workdir / "torch_two_export.json")
    assert res.returncode == 0, res.stdout + res.stderr
    (workdir / "torch_two_export.stderr").write_text(res.stderr)
    return out


def test_export_says_what_it_is_doing_as_it_goes(two_bundle, workdir):
    """Stage lines on stderr with elapsed time: loading, converting with which exporter, the cases,
    publishing; the first at once. The report stays on stdout. (Stages shorter than the 0.1 s poll
    may not show, except the last.)"""
    from bridge.progress import is_stage_line

    lines = (workdir / "torch_two_export.stderr").read_text().splitlines()
    stages = [ln for ln in lines if is_stage_line(ln)]
    assert stages and stages[0].startswith("bridge export: [   0.0 s] starting"), lines
    text = "\n".join(stages)
    # (checking and each case of this tiny model take milliseconds: they may fall between two polls)
    for what in ("loading", "converting", "to ONNX with ", "publishing the bundle"):
        assert what in text, (what, text)
    seconds = [float(ln.split("[")[1].split(" s]")[0]) for ln in stages]
    assert seconds == sorted(seconds)


def test_export_two_inputs_two_outputs_dynamic_batch(two_bundle, workdir):
    manifest = json.loads((two_bundle / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["x", "ids"]
    assert manifest["inputs"][1]["range"] == [0, 50]
    assert sorted(o["name"] for o in manifest["outputs"]) == ["logits", "score"]
    assert manifest["inputs"][0]["dims"] == ["batch", 6]
    assert manifest["exporter"]["name"].startswith("torch.onnx.")
    assert manifest["verification"]["status"] == "pass"
    assert set(manifest["files"]) == {"model.onnx", "golden.npz"}
    assert {c["sizes"]["batch"] for c in manifest["cases"]} == {1, 2, 3, 5, 7, 8, 16}  # golden: the named cases
    report = json.loads((workdir / "torch_two_export.json").read_text())
    assert report["passed"] is True and len(report["outputs"]) == 2


def test_verify_against_source_and_golden(two_bundle, workdir):
    res = run_cli("verify", two_bundle, "--source", TWO, "--json", workdir / "v.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "v.json").read_text())
    assert report["passed"] is True and report["status"] == "pass"
    assert {o["name"] for o in report["outputs"]} == {"logits", "score"}
    assert all(o["tolerance"]["atol"] > 0 for o in report["outputs"])
    res = run_cli("verify", two_bundle, "--quiet")  # golden outputs only: no torch needed
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout
    assert res.stderr.strip() == "", res.stderr  # --quiet: no stage lines


def test_scaled_weight_fails_with_exit_1(two_bundle, workdir):
    model = onnx.load(two_bundle / "model.onnx")
    scaled = None
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 2 and arr.size > 10:
            init.CopyFrom(numpy_helper.from_array(arr * np.float32(1.02), init.name))
            scaled = init.name
            break
    bad = workdir / "scaled.onnx"
    onnx.save(model, bad)
    res = run_cli("verify", bad, "--source", TWO, "--json", workdir / "bad.json", "--localize", workdir / "repro")
    assert res.returncode == 1, res.stdout + res.stderr
    report = json.loads((workdir / "bad.json").read_text())
    assert report["passed"] is False
    assert any(o["status"] == "fail" for o in report["outputs"])
    assert "outside atol" in report["reason"]
    # the localizer names the module that owns the scaled weight and leaves a reproduction
    loc = report["localize"]
    assert loc["status"] == "diverged" and scaled.startswith(loc["module"] + ".")
    assert {"sub.onnx", "inputs.npz", "expected.npz"} <= {p.name for p in (workdir / "repro").iterdir()}


def test_tuple_outputs_get_stable_names(workdir):
    out = workdir / "tuple"
    src = f"{FIXTURES / 'torch_models.py'}:tuple_outputs"
    res = run_cli("export", src, "-o", out, "--input", "x:float32[batch,4]")
    assert res.returncode == 0, res.stdout + res.stderr
    names = [o["name"] for o in json.loads((out / "manifest.json").read_text())["outputs"]]
    assert names == ["output_0", "output_1", "output_2"]
    assert run_cli("verify", out, "--source", src).returncode == 0


def test_weights_pt_and_safetensors_and_module_factory(workdir):
    code = f"""
import sys, torch
sys.path.insert(0, {str(FIXTURES)!r})
import torch_models
from safetensors.torch import save_file
m = torch_models.tuple_outputs()
with torch.no_grad():
    m.a.weight.mul_(3.0)
torch.save(m.state_dict(), {str(workdir / "w.pt")!r})
save_file(m.state_dict(), {str(workdir / "w.safetensors")!r})
"""
    assert run_py(code).returncode == 0
    env = {"PYTHONPATH": str(FIXTURES)}
    for weights in ("w.pt", "w.safetensors"):
        out = workdir / f"weighted_{weights.split('.')[1]}"
        res = run_cli(
            "export",
            "torch_models:tuple_outputs",
            "--weights",
            workdir / weights,
            "-o",
            out,
            "--input",
            "x:float32[batch,4]",
            env=env,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        # the same weights pass, the factory's own weights fail: --weights really was applied
        assert (
            run_cli(
                "verify", out, "--source", "torch_models:tuple_outputs", "--weights", workdir / weights, env=env
            ).returncode
            == 0
        )
        assert run_cli("verify", out, "--source", "torch_models:tuple_outputs", env=env).returncode == 1


def test_pickled_weights_refused_without_running_them(workdir):
    marker = workdir / "pwned"
    code = f"""
import os, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"a.weight": Evil()}}, {str(workdir / "evil.pt")!r})
"""
    assert run_py(code).returncode == 0
    res = run_cli(
        "export",
        f"{FIXTURES / 'torch_models.py'}:tuple_outputs",
        "--weights",
        workdir / "evil.pt",
        "-o",
        workdir / "evil_bundle",
        "--input",
        "x:float32[batch,4]",
        env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
    )
    assert res.returncode == 6, res.stdout + res.stderr
    assert not marker.exists()
    assert not (workdir / "evil_bundle").exists()
    assert without_stages(res.stderr).startswith("bridge: refused:")


def test_pt2_program(workdir):
    code = f"""
import sys, torch
sys.path.insert(0, {str(FIXTURES)!r})
import torch_models
m = torch_models.tuple_outputs().eval()
batch = torch.export.Dim("batch")
ep = torch.export.export(m, (torch.randn(3, 4),), dynamic_shapes=({{0: batch}},))
torch.export.save(ep, {str(workdir / "prog.pt2")!r})
"""
    res = run_py(code)
    assert res.returncode == 0, res.stderr
    out = workdir / "pt2"
    res = run_cli("export", workdir / "prog.pt2", "-o", out)
    assert res.returncode == 0, res.stdout + res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert isinstance(manifest["inputs"][0]["dims"][0], str)  # the program's dynamic batch
    assert run_cli("verify", out, "--source", workdir / "prog.pt2").returncode == 0


def test_nondeterministic_reference_is_named(workdir):
    res = run_cli(
        "export",
        f"{FIXTURES / 'torch_models.py'}:always_dropout",
        "-o",
        workdir / "nd",
        "--input",
        "x:float32[batch,4]",
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "nondeterministic reference" in res.stdout
    assert not (workdir / "nd").exists()


def test_all_zero_model_is_inconclusive(workdir):
    res = run_cli(
        "export", f"{FIXTURES / 'torch_models.py'}:zeros", "-o", workdir / "z", "--input", "x:float32[batch,4]"
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "vacuous" in res.stdout and "all zeros" in res.stdout
    # an inconclusive export is not published where a script would ship it, but kept aside, named so
    assert not (workdir / "z").exists() and (workdir / "z.inconclusive" / "manifest.json").is_file()


def test_graph_right_only_at_export_batch_fails(workdir):
    src = f"{FIXTURES / 'torch_models.py'}:baked_batch"
    res = run_cli("export", src, "-o", workdir / "baked", "--input", "x:float32[batch,4]")
    # either the exporters refuse the dynamic axis, or the sweep at batch 1 and 5 catches the baked size
    assert res.returncode in (1, 5), res.stdout + res.stderr
    if res.returncode == 1:
        assert "batch=1" in res.stdout or "batch=5" in res.stdout
        assert not (workdir / "baked").exists() and (workdir / "baked.failed" / "manifest.json").is_file()
        assert "no bundle published" in res.stdout


def test_missing_input_spec_is_explained(workdir):
    res = run_cli("export", f"{FIXTURES / 'torch_models.py'}:zeros", "-o", workdir / "nospec")
    assert res.returncode == 2
    assert "--input" in res.stderr and not (workdir / "nospec").exists()


def test_float16_model_uses_the_float16_row(workdir):
    out = workdir / "fp16"
    res = run_cli("export", f"{FIXTURES / 'torch_models.py'}:mlp_fp16", "-o", out, "--json", workdir / "fp16.json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads((workdir / "fp16.json").read_text())
    (output,) = report["outputs"]
    assert output["ref_dtype"] == "float16" and output["tolerance"]["rtol"] == 1e-2
    assert 0 < output["max_abs"] < 1e-2


def test_bench_prints_both_sides_and_writes_json(two_bundle, workdir):
    out = workdir / "bench.json"
    res = run_cli("bench", two_bundle, "--source", TWO, "--latency-runs", "20", "--threads", "1", "--json", out)
    assert res.returncode == 0, res.stdout + res.stderr
    for column in ("p50 ms", "p90 ms", "p99 ms", "threads=1"):
        assert column in res.stdout
    assert "onnxruntime vs native" in res.stdout
    lat = json.loads(out.read_text())["latency"]["cpu"]
    assert set(lat["sides"]) == {"native", "onnxruntime"} and lat["threads"] == 1
    for side in lat["sides"].values():
        assert side["runs"] == 20 and side["p50_ms"] <= side["p90_ms"] <= side["p99_ms"]
        assert len(side["samples_ms"]) == 20 and side["first_run_ms"] is not None
    assert len(lat["speedup_per_round"]["onnxruntime"]) == lat["rounds"] == 5
    assert lat["idle_wait_ms"]["count"] >= 2  # the side changed at least twice
    assert lat["speedup_vs_baseline_p50"]["onnxruntime"] > 0
