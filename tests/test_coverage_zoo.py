"""The coverage zoo's configs (zoo/*.toml): parsed and cross-checked without importing a framework, and
(under -m slow) three representative models run through bridge check.

The full zoo is not part of any test run (about an hour on two cores): `python tools/coverage.py`.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import HAS_TF, HAS_TORCH, ROOT

from bridge.check.config import load_config

ZOO = ROOT / "zoo"
FAMILIES = {"transformers", "timm", "torchvision", "torchvision_seg", "torchvision_det", "keras_apps", "keras_rnn"}


def _toml(path: Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _declared_factories(tree: ast.Module) -> set[str]:
    """Names of the module's factories that get ``bridge_inputs``: assigned directly
    (``f.bridge_inputs = ...``), in a module-level ``for`` loop that assigns it, or passed to a helper
    of the module that assigns it (``_declare(INPUTS, bert, roberta)``)."""

    def assigns_inputs(node: ast.AST) -> bool:
        return any(
            isinstance(n, ast.Attribute) and n.attr == "bridge_inputs" and isinstance(n.ctx, ast.Store)
            for n in ast.walk(node)
        )

    helpers = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and assigns_inputs(n)}
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                if isinstance(t, ast.Attribute) and t.attr == "bridge_inputs" and isinstance(t.value, ast.Name):
                    names.add(t.value.id)
        elif isinstance(stmt, ast.For) and assigns_inputs(stmt):
            names |= {n.id for n in ast.walk(stmt.iter) if isinstance(n, ast.Name)}
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id in helpers
        ):
            names |= {a.id for a in stmt.value.args if isinstance(a, ast.Name)}
    return names


def _factories(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return defs, _declared_factories(tree)


def test_coverage_config_has_50_models_with_factories_that_exist():
    data = _toml(ZOO / "coverage.toml")
    models = data["models"]
    assert len(models) >= 50
    names = [m["name"] for m in models]
    assert len(set(names)) == len(names)
    cfg = load_config(ZOO / "coverage.toml")  # bridge's own strict validation (standard library only)
    assert cfg.workdir == ROOT / "build" / "coverage"
    modules: dict[str, tuple[set, set]] = {}
    for m in models:
        family = m["name"].partition(".")[0]
        assert family in FAMILIES, m["name"]
        file, _, attr = m["source"].rpartition(":")
        path = (ZOO / file).resolve()
        assert path.is_file(), m
        defs, declared = modules.setdefault(file, _factories(path))
        assert attr in defs, f"{m['name']}: {file} defines no function {attr}"
        assert attr in declared, f"{m['name']}: {file}:{attr} declares no bridge_inputs"
    families = {m["name"].partition(".")[0] for m in models}
    assert families == FAMILIES


def test_coverage_zoo_covers_the_required_architectures():
    names = {m["name"] for m in _toml(ZOO / "coverage.toml")["models"]}
    for required in (
        "transformers.bert",
        "transformers.distilbert",
        "transformers.roberta",
        "transformers.gpt2",
        "transformers.llama",
        "transformers.t5_encoder",
        "transformers.vit",
        "transformers.clip_vision",
        "transformers.whisper_encoder",
        "transformers.wav2vec2",
    ):
        assert required in names
    source = (ZOO / "hf.py").read_text()
    # the done criteria: ids and a mask, no hand-tuned mask; wav2vec2 swept from 400 samples on
    assert 'TEXT = ["input_ids:int64[batch,seq]", "attention_mask:int64[batch,seq]"]' in source
    assert 'dim_min={"samples": 400}' in source


def _resolved(cfg, keys=("source", "weights", "samples", "min_top1", "latency")) -> dict:
    return {
        m.name.rpartition(".")[2]: {
            k: getattr(m, k) if k in ("source", "latency") else getattr(m.verify, k) for k in keys
        }
        for m in cfg.models
    }


def test_reference_config_has_the_models_of_bridge_toml():
    ours, root = load_config(ZOO / "reference.toml"), load_config(ROOT / "bridge.toml")
    assert _resolved(ours) == _resolved(root)
    for a, b in zip(ours.models, root.models):  # the same prepare commands, paths resolved from each file
        assert [c[:4] for c in a.prepare] == [c[:4] for c in b.prepare]
        assert [os.path.normpath(ZOO / c[4]) for c in a.prepare] == [os.path.normpath(ROOT / c[4]) for c in b.prepare]


SPEED_MODELS = {
    "resnet50",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
    "transformer_encoder",
    "lstm",
    "torch_cnn",
    "keras_resnet50",
    "keras_mobilenet_v2",
    "keras_efficientnet_b0",
    "keras_tf_cnn",
}


def _factory_exists(source: str) -> None:
    file, _, attr = source.rpartition(":")
    defs, _ = _factories(Path(file))
    assert attr in defs, source


def test_speed_config_compares_the_float32_levels_of_the_benchmark_zoo_models():
    cfg = load_config(ZOO / "speed.toml")
    by_name = {m.name.partition(".")[2]: m for m in cfg.models}
    assert set(by_name) == SPEED_MODELS
    for name, m in by_name.items():
        _factory_exists(m.source)
        assert m.export.precision == "auto" and m.export.candidates == ("fp32", "fused"), name
        assert m.export.latency_dims == {"batch": 1}, name  # timed at batch 1, exported at the default size
        assert m.latency is not None and m.latency.runs >= 30, name
        if name.startswith("keras_") and name != "keras_tf_cnn":
            assert m.verify.input_ranges == m.export.input_ranges == {"x": (0.0, 255.0)}
    assert by_name["lstm"].latency.runs >= 500 and by_name["torch_cnn"].latency.runs >= 2000


def test_precision_config_judges_the_digits_on_real_data():
    cfg = load_config(ZOO / "precision.toml")
    for m in cfg.models:
        if m.source_file and m.source_file.endswith(".py"):
            _factory_exists(m.source)
        assert m.export.precision == "auto" and set(m.export.candidates) == {"fp32", "int8", "fp16"}, m.name
    digits = [m for m in cfg.models if "cnn" in m.name]
    assert len(digits) == 2
    for m in digits:  # calibrated on the training digits, judged on the held-out digits with labels
        assert "digits_train" in m.export.calibrate and "digits_test" in m.export.samples
        assert m.export.labels and m.export.labels == m.verify.labels
        assert m.prepare, m.name


def test_scale_config_is_the_deployment_scale_zoo():
    cfg = load_config(ZOO / "scale.toml")
    names = [m.name.partition(".")[2] for m in cfg.models]
    assert names == [
        "bert_base",
        "bert_base_b8",
        "vit_b_16",
        "resnet50",
        "whisper_base_encoder",
        "gpt2_decode_step",
        "lstm_lm",
        "torch_cnn",
        "tf_cnn",
    ]
    by_name = dict(zip(names, cfg.models))
    for name, m in by_name.items():
        assert m.export.precision == "auto", name
        assert not m.export.candidates, name  # the default set: fp32, fused, int8 (and fp16 on CUDA)
        assert m.latency is not None, name
        if m.source_file and m.source_file.endswith(".py"):
            _factory_exists(m.source)
    assert by_name["bert_base"].export.latency_dims == {"batch": 1}
    assert by_name["bert_base_b8"].export.latency_dims == {"batch": 8}
    assert by_name["resnet50"].export.calibrate  # convolutional: static int8 on stated seeded samples
    for name in ("torch_cnn", "tf_cnn"):
        m = by_name[name]
        assert m.export.samples and m.export.labels and m.export.calibrate, name
    tree = ast.parse((ZOO / "scale.py").read_text())
    declared = _declared_factories(tree)
    for name in ("bert_base", "vit_b_16", "resnet50", "whisper_base_encoder", "gpt2_decode_step", "lstm_lm"):
        assert name in declared, f"zoo/scale.py:{name} declares no bridge_inputs"
    gpu = load_config(ZOO / "scale_gpu.toml")
    assert [m.name.partition(".")[2] for m in gpu.models] == names[:7]
    for m in gpu.models:  # the same zoo on CUDA: strict fp32 and TF32 candidates, fp16
        assert m.export.devices == m.verify.devices == ("cuda",) and m.export.tf32, m.name
        assert "fp16" in m.export.candidates, m.name


def _candidate(name, precision, p50, native=10.0, status="pass", eligible=True, **extra):
    return {
        "name": name,
        "precision": precision,
        "method": extra.pop("method", "export"),
        "status": status,
        "eligible": eligible,
        "rel_norm": extra.pop("rel_norm", 1e-7),
        "separation": extra.pop("separation", 1e6),
        "why_not": extra.pop("why_not", ""),
        "settings": extra.pop("settings", {}),
        "p50_ms": p50,
        "vs_native": native / p50 if p50 else None,
        "vs_native_rounds": [native / p50] * 5 if p50 else [],
        "vs_ort_fp32": None,
        **extra,
    }


def _auto_workdir(tmp_path, name: str, candidates: list, chosen: str) -> dict:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    sides = {"native": {"p50_ms": 10.0}, "native-int8": {"p50_ms": 5.0}}
    sides.update({c["name"]: {"p50_ms": c["p50_ms"]} for c in candidates if c["p50_ms"]})
    export = {
        "framework": "torch",
        "exporter": {
            "name": "torch.onnx.dynamo",
            "auto": {
                "device": "cpu",
                "chosen": chosen,
                "candidates": candidates,
                "peers": {"native-int8": {"rel_norm": 0.02}, "sizes": {"batch": 1}},
                "separation_min": 10.0,
            },
        },
        "latency": {"cpu": {"sides": sides, "sizes": {"batch": 1}, "others_cpu": 0.01, "reliable": True}},
        "environment": {"versions": {"torch": "x", "onnxruntime": "y"}, "machine": {"cpus": 2}},
    }
    verify = {"status": "pass", "outputs": [{"max_abs": 1e-6}], "environment": export["environment"]}
    (work / f"{name}.export.json").write_text(json.dumps(export))
    (work / f"{name}.verify.json").write_text(json.dumps(verify))
    (work / f"{name}.export.log").write_text("$ python -m bridge export\n# exit 0, 42.0 s\n")
    return {"name": name, "status": "pass", "seconds": 50.0, "message": "", "error": None}


def _render(tool: str, tmp_path, records: list, config: str) -> str:
    summary = {"workdir": str(tmp_path / "work"), "models": records}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "page.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / tool),
            "--render",
            "--summary",
            str(tmp_path / "summary.json"),
            "--out",
            str(out),
            "--config",
            config,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def test_scale_renderer_reads_auto_records(tmp_path):
    """tools/zoo_scale.py renders every candidate, the chosen artifact, the peers and the goal from bridge
    check's reports alone (no framework, nothing run)."""
    cands = [
        _candidate("fp32", "fp32", 8.0),
        _candidate("fused", "fp32", 7.0, settings={"fused": {"attention": 12, "skip_layer_normalization": 24}}),
        _candidate(
            "int8", "int8", 4.0, method="dynamic", rel_norm=0.03, settings={"quantized_ops": {"MatMulInteger": 73}}
        ),
        _candidate("fused+int8", "int8", 3.0, eligible=False, separation=2.0, why_not="the seeded check is weak"),
    ]
    records = [_auto_workdir(tmp_path, "scale.bert_base", cands, "int8")]
    text = _render("zoo_scale.py", tmp_path, records, "zoo/scale.toml")
    assert "| bert_base | batch=1 | 10.00 | 2.00x (err 2.0e-02) | 1.25x PASS | 1.43x PASS | 2.50x PASS |" in text
    assert "3.33x PASS (not eligible)" in text and "| **int8** | 4.00 | **2.50x** |" in text
    assert "Goal (issue 23): median at least 2.5x: **met** (2.50x)" in text
    assert "fused: attention x12, skip_layer_normalization x24" in text
    assert "the seeded check is weak" in text
    assert "have no row here yet" in text  # the config's other models, named


def test_speed_and_precision_renderers_read_auto_records(tmp_path):
    cands = [_candidate("fp32", "fp32", 8.0), _candidate("fused", "fp32", None, status="skipped", eligible=False)]
    records = [_auto_workdir(tmp_path, "speed.lstm", cands, "fp32")]
    text = _render("zoo.py", tmp_path, records, "zoo/speed.toml")
    assert "| lstm | torch | torch.onnx.dynamo | PASS | 10.00 | 8.00 | skipped | 1.25x (1.25..1.25) | fp32 |" in text
    cands = [
        _candidate("fp32", "fp32", 8.0),
        _candidate("int8", "int8", 2.0, method="static-qdq", settings={"calibration_rows": 1437}),
        _candidate("fp16", "fp16", None, status="fail", eligible=False, why_not="verification fail"),
    ]
    records = [_auto_workdir(tmp_path, "precision.torch_cnn", cands, "int8")]
    text = _render("zoo_precision.py", tmp_path, records, "zoo/precision.toml")
    assert "| torch_cnn | 10.00 | 8.00 | 2.00 | - | 1.25x | **5.00x** (5.00..5.00) | FAIL |" in text
    assert "| torch_cnn | int8 | static-qdq | 1437 rows (seeded draws: no real data) | PASS |" in text


def test_coverage_renderer_reads_a_summary(tmp_path):
    """tools/coverage.py renders a summary and reports without running anything (no framework)."""
    work = tmp_path / "work"
    work.mkdir()
    report = {
        "exporter": {
            "name": "torch.onnx.torchscript",
            "failed_first": [{"name": "torch.onnx.dynamo", "error": "boom"}],
        },
        "cases": [{"sizes": {"batch": 2}}, {"sizes": {"batch": 1}}, {"sizes": {"batch": 8}}],
        "checks": [
            {
                "name": "output",
                "status": "inconclusive",
                "case": "draw0",
                "ref_abs_max": 1e-12,
                "max_abs": 0.0,
                "applied_atol": 1e-5,
                "reason": "vacuous",
            }
        ],
        "environment": {"versions": {"torch": "x"}, "machine": {"cpus": 2}},
    }
    (work / "a.m.export.json").write_text(json.dumps(report))
    (work / "a.m.verify.json").write_text(json.dumps(report))
    (work / "a.m.export.log").write_text("$ python -m bridge export\n# exit 0, 12.5 s\n")
    summary = {
        "workdir": str(work),
        "models": [
            {
                "name": "a.m",
                "status": "inconclusive",
                "max_abs": 0.0,
                "seconds": 20.0,
                "message": "vacuous",
                "error": None,
                "export_report": str(work / "a.m.export.json"),
                "verify_report": str(work / "a.m.verify.json"),
            }
        ],
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "notes.toml").write_text('[models."a.m"]\nclass = "inherent"\nwhy = "a zero head"\n')
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "coverage.py"),
            "--render",
            "--summary",
            str(tmp_path / "summary.json"),
            "--notes",
            str(tmp_path / "notes.toml"),
            "--out",
            str(tmp_path / "coverage.md"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "coverage.md").read_text()
    assert "| a | m | torch.onnx.torchscript (after torch.onnx.dynamo failed) | INCONCLUSIVE |" in text
    assert "batch 1,2,8" in text and "| 12 |" in text
    assert "judgment: inherent: a zero head" in text
    assert "1 models: 0 pass, 0 fail, 1 inconclusive" in text


# three models, one per kind of path: a transformers encoder with ids and a mask (torch), a torchvision
# CNN with calibrated BatchNorm (torch), a Keras recurrent model (tf2onnx)
REPRESENTATIVE = ("transformers.bert", "torchvision.resnet18", "keras_rnn.lstm")


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_TORCH and HAS_TF), reason="needs torch and tensorflow")
def test_representative_zoo_models_pass_bridge_check(tmp_path):
    summary = tmp_path / "summary.json"
    cmd = [
        sys.executable,
        "-m",
        "bridge",
        "check",
        "--config",
        str(ZOO / "coverage.toml"),
        "--workdir",
        str(tmp_path / "work"),
        "--jobs",
        "1",
        "--no-progress",
        "--json",
        str(summary),
        "--timeout",
        "900",
    ]
    cmd += [a for name in REPRESENTATIVE for a in ("--model", name)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=2700)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = json.loads(summary.read_text())["models"]
    assert [(m["name"], m["status"]) for m in models] == [(n, "pass") for n in REPRESENTATIVE]
