"""The coverage zoo's configs (zoo/*.toml): parsed and cross-checked without importing a framework, and
(under -m slow) three representative models run through bridge check.

The full zoo is not part of any test run (about an hour on two cores): `python tools/coverage.py`.
"""

from __future__ import annotations

import ast
import importlib.util
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
    assert 'dim_min={"samples": "400"}' in source


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


def test_speed_config_has_the_benchmark_zoo_models():
    spec = importlib.util.spec_from_file_location("zoo_bench", ROOT / "tools" / "zoo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # standard library only at import
    cfg = load_config(ZOO / "speed.toml")
    by_name = {m.name.partition(".")[2]: m for m in cfg.models}
    assert set(by_name) == set(bench.MODELS)
    for name, entry in bench.MODELS.items():
        assert by_name[name].source == str(ROOT / entry["source"]), name
        assert by_name[name].latency is not None and by_name[name].latency.runs >= entry.get("min_runs", 30)
        if "x=0:255" in entry.get("extra", []):
            assert by_name[name].verify.input_ranges == by_name[name].export.input_ranges == {"x": (0.0, 255.0)}


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
