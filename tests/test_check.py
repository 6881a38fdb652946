"""bridge check: strict config parsing, budgets and baselines on synthetic reports, JUnit/JSON output, and
end to end over a temporary config (each model's export and verify run as subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT, needs_torch

from bridge import check
from bridge.check import (
    Check,
    LatencyBudget,
    ModelResult,
    compare_baseline,
    evaluate_latency,
    load_config,
    parse_config,
    render_junit,
)
from bridge.commands import main as bridge_main
from bridge.errors import UsageError

MINIMAL = '[[models]]\nname = "m"\nsource = "net.py:build"\n'


def write(directory, text: str, name: str = "bridge.toml"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def config_error(tmp_path, text: str) -> str:
    with pytest.raises(UsageError) as info:
        load_config(write(tmp_path, text))
    return str(info.value) + " " + (info.value.hint or "")


# ------------------------------------------------------------------------------------------ config


def test_minimal_config_defaults_and_paths(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + 'weights = "w/net.pt"\nprepare = ["python", "-m", "train"]\n'))
    (m,) = cfg.models
    assert m.source == f"{tmp_path / 'net.py'}:build" and m.source_file == str(tmp_path / "net.py")
    assert m.export.weights == m.verify.weights == str(tmp_path / "w" / "net.pt")
    assert m.verify.devices == ("cpu",) and not m.verify.atol and m.latency is None and m.skip is None
    assert m.prepare == [[sys.executable, "-m", "train"]]  # one argv is wrapped, "python" replaced
    assert cfg.workdir == tmp_path / "build" / "bridge-check"


def test_module_source_stays_and_model_files_resolve(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """\
        [[models]]
        name = "a"
        source = "pkg.nets:build"
        [[models]]
        name = "b"
        source = "models/net.keras"
        atol = { logits = 1e-4 }
        rtol = 0
        latency = { max_ms = 5 }
        """,
        )
    )
    a, b = cfg.models
    assert a.source == "pkg.nets:build" and a.source_file is None
    assert b.source == str(tmp_path / "models" / "net.keras")
    assert b.verify.atol.outputs == {"logits": 1e-4} and b.verify.rtol.value == 0.0 and b.export.rtol.value == 0.0
    assert b.latency == LatencyBudget(runs=100, ort_not_slower=False, max_ms=5.0)


def test_unknown_key_names_model_key_and_suggestion(tmp_path):
    msg = config_error(tmp_path, MINIMAL + "atoll = 1e-5\n")
    assert "'m'" in msg and "'atoll'" in msg and "did you mean 'atol'" in msg and "allowed keys" in msg


def test_missing_source(tmp_path):
    msg = config_error(tmp_path, '[[models]]\nname = "m"\n')
    assert "model #1 'm'" in msg and "missing key 'source'" in msg


def test_duplicate_names(tmp_path):
    msg = config_error(tmp_path, MINIMAL + MINIMAL)
    assert "#1 and #2" in msg and "'m'" in msg and "unique" in msg


@pytest.mark.parametrize(
    "extra, expected",
    [
        ('devices = ["tpu"]', "key 'devices'"),
        ('atol = "tight"', "key 'atol'"),
        ("rtol = { out = -1 }", "key 'rtol.out'"),
        ('inputs = ["x:float32"]', "key 'inputs'"),
        ('input_ranges = { x = "1:0" }', "key 'input_ranges.x'"),
        ("min_top1 = 2", "key 'min_top1'"),
        ("latency = { max_ms = -1 }", "key 'latency.max_ms'"),
        ("latency = { runs = 0 }", "key 'latency.runs'"),
        ('latency = { ort_not_slower = "yes" }', "key 'latency.ort_not_slower'"),
        ("latency = { p50 = 1 }", "unknown key 'p50'"),
        ('skip = ""', "key 'skip'"),
        ("prepare = [[]]", "key 'prepare'"),
        ("weights = 3", "key 'weights'"),
    ],
)
def test_bad_values_say_model_key_and_expectation(tmp_path, extra, expected):
    msg = config_error(tmp_path, MINIMAL + extra + "\n")
    assert "model #1 'm'" in msg and expected in msg


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "no models"),
        ("models = []", "empty"),
        ('models = ["a"]', "array of tables"),
        ("jobs = 2\n" + MINIMAL, "unknown key 'jobs'"),
        ('[[models]]\nname = "a b"\nsource = "x.keras"\n', "key 'name'"),
        ("[[models\n", "not valid TOML"),
    ],
)
def test_bad_top_level(tmp_path, text, expected):
    assert expected in config_error(tmp_path, text)


def test_discovery_prefers_bridge_toml_then_pyproject(tmp_path):
    write(
        tmp_path,
        "[tool.bridge]\nworkdir = 'out'\n[[tool.bridge.models]]\nname = 'p'\nsource = 'n.keras'\n",
        "pyproject.toml",
    )
    cfg = load_config(cwd=tmp_path)
    assert [m.name for m in cfg.models] == ["p"] and cfg.workdir == tmp_path / "out"
    write(tmp_path, MINIMAL)
    assert [m.name for m in load_config(cwd=tmp_path).models] == ["m"]
    with pytest.raises(UsageError, match=r"tool.bridge.*atoll"):
        parse_config(
            {"models": [{"name": "p", "source": "n.keras", "atoll": 1}]},
            tmp_path,
            origin="pyproject.toml [tool.bridge]",
        )


def test_no_config_and_missing_config(tmp_path):
    with pytest.raises(UsageError, match="no bridge.toml"):
        load_config(cwd=tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    with pytest.raises(UsageError, match="no bridge.toml"):
        load_config(cwd=tmp_path)


def test_missing_baseline_is_a_config_error(tmp_path):
    cfg = write(tmp_path, MINIMAL + 'baseline = "gone.json"\n')
    assert bridge_main(["check", "--config", str(cfg), "--no-progress"]) == 2


# --------------------------------------------------------------------------- budgets and baselines


def _report(status="pass", max_abs=1e-6, ort=0.1, native=0.5, ref=1.0):
    return {
        "status": status,
        "reason": "",
        "outputs": [{"name": "y", "max_abs": max_abs, "ref_abs_max": ref}],
        "checks": [{"name": "y", "status": status, "max_abs": max_abs, "ref_abs_max": ref}],
        "latency": {"cpu": {"sides": {"native": {"p50_ms": native}, "onnxruntime": {"p50_ms": ort}}}},
    }


def test_latency_budgets():
    budget = LatencyBudget(runs=10, ort_not_slower=True, max_ms=0.2)
    checks, figures = evaluate_latency(budget, _report())
    assert [c.status for c in checks] == ["pass", "pass"] and figures["cpu"]["ort_p50_ms"] == 0.1
    checks, _ = evaluate_latency(budget, _report(ort=0.6))
    assert [(c.name, c.status) for c in checks] == [
        ("latency.ort_not_slower[cpu]", "fail"),
        ("latency.max_ms[cpu]", "fail"),
    ]
    assert "slower than native" in checks[0].message and "exceeds budget 0.2 ms" in checks[1].message
    checks, _ = evaluate_latency(budget, {"status": "inconclusive", "latency": {}})
    assert {c.status for c in checks} == {"inconclusive"}
    assert evaluate_latency(LatencyBudget(runs=5), _report())[0] == []  # measured, no budget


def test_baseline_growth_and_verdict():
    ok = compare_baseline(_report(max_abs=1e-6), _report(max_abs=9e-6))
    assert {c.status for c in ok} == {"pass"}
    grown = compare_baseline(_report(max_abs=1e-6), _report(max_abs=2e-5))
    assert [c.status for c in grown] == ["pass", "fail"] and "grew" in grown[1].message
    worse = compare_baseline(_report(), _report(status="fail"))
    assert worse[0].name == "baseline.verdict" and worse[0].status == "fail"
    exact = compare_baseline(_report(max_abs=0.0), _report(max_abs=3e-7))  # rounding above an exact baseline
    assert {c.status for c in exact} == {"pass"}
    gone = compare_baseline(_report(), {**_report(), "outputs": [], "checks": []})
    assert any(c.status == "fail" and "missing" in c.message for c in gone)


def test_exit_code_and_junit_for_error_skip_and_budget():
    results = [
        ModelResult(
            name="broken",
            status="fail",
            message="export failed (exit 5): bridge: conversion failed: x",
            error={"step": "export", "exit_code": 5, "message": "export failed (exit 5): x"},
            seconds=1.5,
        ),
        ModelResult(name="later", status="skipped", message="needs a GPU"),
        ModelResult(
            name="slow",
            status="fail",
            verdict="pass",
            report=_report(),
            export_report=_report(),
            budgets=[Check("latency.max_ms[cpu]", "fail", "ONNX Runtime p50 9 ms exceeds budget 1 ms")],
        ),
    ]
    assert check.exit_code(results) == 1
    assert check.exit_code([ModelResult(name="a"), ModelResult(name="b", status="inconclusive")]) == 3
    assert check.exit_code([ModelResult(name="a"), results[1]]) == 0
    root = ET.fromstring(render_junit(results))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["broken", "later", "slow"]
    assert suites["broken"].find("testcase/failure").get("message").startswith("export failed (exit 5)")
    assert suites["later"].get("skipped") == "1"
    slow = suites["slow"]
    assert slow.get("failures") == "1" and slow.find("testcase[@name='latency.max_ms[cpu]']/failure") is not None
    assert root.get("failures") == "2" and int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values())


# ------------------------------------------------------------------------------------ end to end


def run_check(*args) -> int:
    return bridge_main(["check", *map(str, args), "--no-progress"])


def test_export_error_fails_the_model_and_the_run_continues(tmp_path, capsys):
    (tmp_path / "notmodel.py").write_text("def build():\n    return 42\n")
    cfg = write(
        tmp_path,
        """\
        [[models]]
        name = "bad"
        source = "notmodel.py:build"
        [[models]]
        name = "later"
        source = "notmodel.py:build"
        skip = "not today"
        """,
    )
    code = run_check("--config", cfg, "--json", tmp_path / "s.json", "--junit", tmp_path / "j.xml")
    assert code == 1
    summary = json.loads((tmp_path / "s.json").read_text())
    bad, later = summary["models"]
    assert bad["status"] == "fail" and bad["error"]["step"] == "export" and bad["error"]["exit_code"] == 2
    assert "bridge: bad input:" in bad["message"] and "builtins.int" in bad["message"]
    assert later["status"] == "skipped" and later["message"] == "not today"
    assert summary["counts"] == {"pass": 0, "fail": 1, "inconclusive": 0, "skipped": 1}
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"
    assert "bad" in capsys.readouterr().out


def test_prepare_runs_once_when_a_file_is_missing(tmp_path):
    (tmp_path / "notmodel.py").write_text("def build():\n    return 42\n")
    cfg = write(
        tmp_path,
        """\
        [[models]]
        name = "a"
        source = "notmodel.py:build"
        weights = "made/w.pt"
        prepare = ["python", "-c", "import pathlib; p = pathlib.Path('made'); p.mkdir(exist_ok=True); (p / 'w.pt').write_text(''); print(open('count', 'a').write('x'))"]
        [[models]]
        name = "b"
        source = "notmodel.py:build"
        weights = "made/w.pt"
        prepare = ["python", "-c", "import pathlib; p = pathlib.Path('made'); p.mkdir(exist_ok=True); (p / 'w.pt').write_text(''); print(open('count', 'a').write('x'))"]
        [[models]]
        name = "c"
        source = "notmodel.py:build"
        weights = "never.pt"
        prepare = ["python", "-c", "raise SystemExit('cannot train')"]
        """,
    )
    assert run_check("--config", cfg, "--json", tmp_path / "s.json") == 1
    assert (tmp_path / "count").read_text() == "x"  # one distinct command, run once for a and b
    c = json.loads((tmp_path / "s.json").read_text())["models"][2]
    assert c["error"]["step"] == "prepare" and "cannot train" in c["message"]


def test_import_is_light():
    code = (
        "import sys, bridge.check, bridge.testing\n"
        "print(sorted(m for m in ('numpy', 'torch', 'tensorflow', 'onnx', 'onnxruntime', 'rich', 'pytest')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


NETS = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,4]"]


def linear():
    torch.manual_seed(0)
    return nn.Linear(4, 3)
"""

DEEP = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,64]"]


def build():  # float32 rounding differs between torch and ONNX Runtime: max abs error ~1e-7, not 0
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(3) for m in (nn.Linear(64, 64), nn.Tanh())])
"""


def torch_config(tmp_path, tolerance: str = "") -> str:
    return textwrap.dedent(f"""\
        workdir = "work"

        [[models]]
        name = "linear"
        source = "nets.py:linear"
        latency = {{ runs = 5, max_ms = 1000 }}
        {tolerance}

        [[models]]
        name = "deep"
        source = "deep.py:build"
        baseline = "baselines/deep.json"
        {tolerance}
        """)


@needs_torch
@pytest.mark.torch
def test_torch_config_passes_then_fails_at_tight_tolerance(tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    (tmp_path / "deep.py").write_text(DEEP)
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(torch_config(tmp_path))

    # pass: both models in parallel, the latency budget met, deep's report stored as its baseline
    junit, summary = tmp_path / "reports" / "bridge.xml", tmp_path / "reports" / "summary.json"
    code = run_check(
        "--config",
        cfg,
        "--jobs",
        "2",
        "--junit",
        junit,
        "--json",
        summary,
        "--markdown",
        tmp_path / "reports" / "summary.md",
        "--update-baselines",
    )
    data = json.loads(summary.read_text())
    assert code == 0, json.dumps(data["models"], indent=1)
    assert data["status"] == "pass" and [m["name"] for m in data["models"]] == ["linear", "deep"]
    linear, deep = data["models"]
    assert [b["name"] for b in linear["budgets"]] == ["latency.max_ms[cpu]"] and linear["budgets"][0][
        "status"
    ] == "pass"
    assert deep["max_abs"] > 0  # the failing run below needs a real, non-zero error
    assert (tmp_path / "baselines" / "deep.json").is_file() and (tmp_path / "work" / "deep" / "model.onnx").is_file()
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "0"
    assert [s.get("name") for s in root.findall("testsuite")] == ["linear", "deep"]
    assert all(len(s.findall("testcase")) >= 4 for s in root.findall("testsuite"))
    assert "| linear | PASS |" in (tmp_path / "reports" / "summary.md").read_text()

    # fail: tolerances of 1e-12 cannot hold float32 rounding; deep's verdict regressed from its baseline
    cfg.write_text(torch_config(tmp_path, "atol = 1e-12\nrtol = 1e-12"))
    code = run_check("--config", cfg, "--model", "deep", "--junit", junit, "--json", summary)
    data = json.loads(summary.read_text())
    assert code == 1
    (deep,) = data["models"]
    assert deep["status"] == "fail" and deep["verdict"] == "fail" and "outside atol=1e-12" in deep["message"]
    assert any(c["name"] == "baseline.verdict" and c["status"] == "fail" for c in deep["baseline"])
    root = ET.parse(junit).getroot()
    assert int(root.get("failures")) >= 2
    assert root.find(".//testcase[@name='baseline.verdict']/failure") is not None


NOISY = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,4]"]


class Noisy(nn.Module):
    def forward(self, x):
        return nn.functional.dropout(x, p=0.5, training=True)


def build():
    return Noisy()
"""


@needs_torch
@pytest.mark.torch
def test_nondeterministic_model_is_inconclusive_and_a_stale_bundle_is_not_verified(tmp_path):
    (tmp_path / "noisy.py").write_text(NOISY)
    cfg = write(
        tmp_path,
        'workdir = "work"\n[[models]]\nname = "noisy"\nsource = "noisy.py:build"\n'
        "latency = { ort_not_slower = true }\n",
    )
    stale = tmp_path / "work" / "noisy"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")  # an earlier run's bundle: export --force may replace it
    assert run_check("--config", cfg, "--json", tmp_path / "s.json", "--junit", tmp_path / "j.xml") == 3
    (noisy,) = json.loads((tmp_path / "s.json").read_text())["models"]
    assert noisy["status"] == "inconclusive" and noisy["verify_report"] is None and noisy["bundle"] is None
    assert "export:" in noisy["message"]
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.find("testsuite").get("name") == "noisy" and int(root.get("failures")) >= 1
