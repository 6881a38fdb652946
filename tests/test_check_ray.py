"""bridge check --executor ray: the config keys that came with it, the worker-side helpers (paths mapped
onto a node's copy, outputs packed and brought back, prepare commands once per node), and end to end
on a Ray cluster of one 2-CPU node started once for this module (``ray start --head --block``): a Ray
run against a local run of the same config (same models, cases and verdicts), and a task whose worker
dies (on a local Ray instance, as a new user runs it). About 2 minutes on 2 cores, most of it Ray
starting and torch exporting."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import needs_torch, run_cli
from ray_head import RAY_ENV, ray_head
from test_check import MINIMAL, config_error, write

from bridge import check
from bridge.check import ModelConfig, load_config
from bridge.check.run import Runner, StepResult
from bridge.commands import main as bridge_main

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'bridge-onnx[ray]')")

# ------------------------------------------------------------------------ config: new keys


def test_dims_bounds_and_input_kinds_reach_export_and_verify(tmp_path, monkeypatch):
    cfg = load_config(
        write(
            tmp_path,
            MINIMAL
            + """\
        dims = { batch = 3, seq = 16 }
        dim_min = { seq = 8 }
        dim_max = { seq = 64 }
        input_kinds = { attention_mask = "mask", ids = "index" }
        """,
        )
    )
    (m,) = cfg.models
    for r in (m.export, m.verify):
        assert r.dims == {"batch": 3, "seq": 16} and r.dim_min == {"seq": 8} and r.dim_max == {"seq": 64}
        assert r.input_kinds == {"attention_mask": "mask", "ids": "index"}
    argv = m.verify.to_argv()
    pairs = set(zip(argv, argv[1:]))
    assert {
        ("--input-kind", "attention_mask=mask"),
        ("--input-kind", "ids=index"),
        ("--dim", "batch=3"),
        ("--dim", "seq=16"),
        ("--dim-min", "seq=8"),
        ("--dim-max", "seq=64"),
    } <= pairs
    bare = load_config(write(tmp_path / "bare", MINIMAL)).models[0]
    assert bare.verify.to_argv() == ["verify", "--source", bare.source]  # nothing unless set

    seen = {}

    def fake_run(self, argv, log, timeout=None):  # export writes a bundle and a report, verify a report
        step = argv[3]
        seen[step] = argv
        out = Path(argv[argv.index("--json") + 1])
        if step == "export":
            bundle = Path(argv[argv.index("--output") + 1])
            bundle.mkdir(parents=True, exist_ok=True)
            (bundle / "manifest.json").write_text("{}")
        out.write_text(json.dumps({"status": "pass", "reason": ""}))
        return StepResult(argv, 0, "", "", 0.0)

    monkeypatch.setattr(Runner, "_run", fake_run)
    result = Runner(cfg, workdir=tmp_path / "work", threads=1, timeout=None).run_model(m)
    assert result.status == "pass"
    for step in ("export", "verify"):
        argv = seen[step]
        assert argv[argv.index("--input-kind") + 1] == "attention_mask=mask" and "--dim-min" in argv, step
        assert [argv[i + 1] for i, a in enumerate(argv) if a == "--dim"] == ["batch=3", "seq=16"]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("dims = { batch = 0 }", "key 'dims.batch'"),
        ('dims = { batch = "4" }', "key 'dims.batch'"),
        ("dims = [4]", "key 'dims'"),
        ("dim_min = { seq = 9 }\ndim_max = { seq = 8 }", "key 'dim_min.seq'"),
        ('input_kinds = { mask = "boolean" }', "key 'input_kinds.mask'"),
        ('input_kinds = "mask"', "key 'input_kinds'"),
    ],
)
def test_bad_new_model_keys(tmp_path, extra, expected):
    msg = config_error(tmp_path, MINIMAL + extra + "\n")
    assert "model #1 'm'" in msg and expected in msg
    if "input_kinds." in expected:
        assert "values, index, mask, positions" in msg  # the kinds allowed


def test_executor_keys(tmp_path):
    cfg = load_config(
        write(tmp_path, 'executor = "ray"\n[ray]\naddress = "auto"\nshared_fs = true\nmax_retries = 0\n' + MINIMAL)
    )
    assert cfg.executor == "ray" and cfg.ray == check.RaySettings(address="auto", shared_fs=True, max_retries=0)
    assert load_config(write(tmp_path / "d", MINIMAL)).ray == check.RaySettings(None, False, 2)
    assert "key 'executor'" in config_error(tmp_path, 'executor = "slurm"\n' + MINIMAL)
    assert "'max_retries'" in config_error(tmp_path, "[ray]\nmax_retries = -1\n" + MINIMAL)
    assert "unknown key 'adress'" in config_error(tmp_path, '[ray]\nadress = "auto"\n' + MINIMAL)


def test_ray_options_need_the_ray_executor(tmp_path, capsys):
    cfg = write(tmp_path, MINIMAL)
    assert bridge_main(["check", "--config", str(cfg), "--ray-address", "auto", "--no-progress"]) == 2
    assert "--ray-address applies to --executor ray" in capsys.readouterr().err


def test_missing_ray_is_an_environment_problem_with_the_pip_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    cfg = write(tmp_path, MINIMAL)
    assert bridge_main(["check", "--config", str(cfg), "--executor", "ray", "--no-progress"]) == 4
    err = capsys.readouterr().err
    assert "needs the ray package" in err and "pip install 'bridge-onnx[ray]'" in err


def test_the_node_in_tables_markdown_and_junit():
    from bridge.check import ModelResult, render_junit, render_markdown, render_table

    results = [
        ModelResult(name="a", seconds=1.0, node="n1 (10.0.0.1)"),
        ModelResult(
            name="b",
            status="fail",
            message="x",
            node="n2 (10.0.0.2)",
            error={"step": "export", "exit_code": 5, "message": "x"},
        ),
    ]
    assert "node" not in render_table(results).splitlines()[0]  # a local run's table is as it was
    table = render_table(results, with_node=True)
    assert table.splitlines()[0].split()[-1] == "node" and "n2 (10.0.0.2)" in table
    assert "| n1 (10.0.0.1) |" in render_markdown(results, 1, with_node=True)
    suites = ET.fromstring(render_junit(results)).findall("testsuite")
    assert [s.find("properties/property[@name='node']").get("value") for s in suites] == [r.node for r in results]
    assert all(list(s)[0].tag == "properties" for s in suites)  # first child, as the JUnit schema wants


# -------------------------------------------------------------------------- worker helpers


def test_paths_map_onto_the_node_copy_and_python_onto_its_interpreter():
    from bridge.check.ray_task import localize, rebase, rebase_all
    from bridge.request import API, build

    export = build("export", {"source": "/cfg/nets.py:build", "weights": "/cfg/w/a.pt"}, API)
    verify = build(
        "verify", {"source": "/cfg/nets.py:build", "weights": "/cfg/w/a.pt", "samples": "/elsewhere/x.npz"}, API
    )
    m = ModelConfig(
        name="a",
        source="/cfg/nets.py:build",
        source_file="/cfg/nets.py",
        export=export,
        verify=verify,
        prepare=[["/driver/python", "-m", "train", "/cfg/w/a.pt"]],
    )
    n = localize(m, "/cfg", "/node/pkg", "/driver/python")
    assert n.source == n.export.source == n.verify.source == "/node/pkg/nets.py:build"
    assert n.export.weights == n.verify.weights == "/node/pkg/w/a.pt"
    assert n.verify.samples == "/elsewhere/x.npz"  # outside the config's directory: not shipped, kept
    assert n.prepare == [[sys.executable, "-m", "train", "/node/pkg/w/a.pt"]]
    assert rebase("/cfgx/a", "/cfg", "/n") == "/cfgx/a"  # whole components only
    report = {"target": "/tmp/w1/a", "outputs": [{"reason": "see /tmp/w1/a/model.onnx"}], "n": 3}
    assert rebase_all(report, [("/tmp/w1", "/drv/work")]) == {
        "target": "/drv/work/a",
        "outputs": [{"reason": "see /drv/work/a/model.onnx"}],
        "n": 3,
    }


@needs_ray
def test_outputs_come_back_replacing_an_earlier_run(tmp_path):
    from bridge.check.ray_executor import unpack
    from bridge.check.ray_task import pack

    node = tmp_path / "node"
    (node / "a").mkdir(parents=True)
    (node / "a" / "model.onnx").write_bytes(b"new")
    (node / "a.verify.json").write_text("{}")
    work = tmp_path / "work"
    (work / "a").mkdir(parents=True)
    (work / "a" / "stale.txt").write_text("old")
    unpack(pack(node), work)
    assert sorted(os.listdir(work)) == ["a", "a.verify.json"]
    assert os.listdir(work / "a") == ["model.onnx"] and (work / "a" / "model.onnx").read_bytes() == b"new"


def test_prepare_commands_run_once_per_node_and_check(tmp_path):
    from bridge.check.ray_task import prepare_on_node

    count = "import pathlib; p = pathlib.Path('made'); p.mkdir(exist_ok=True); open('count', 'a').write('x')"
    text = "".join(
        f'[[models]]\nname = "{n}"\nsource = "net.py:build"\nweights = "made/{n}.pt"\n'
        f'prepare = [["python", "-c", "{count}"], ["python", "-c", "open(\'made/{n}.pt\', \'w\')"]]\n'
        for n in ("a", "b")
    )
    cfg = load_config(write(tmp_path, text))
    (tmp_path / "net.py").write_text("")
    for m in cfg.models:  # two tasks on one node: each its own Runner, one lock and one record
        runner = Runner(cfg, workdir=tmp_path, threads=1, timeout=60)
        prepare_on_node(runner, m, tmp_path / "lock", "run1")
        assert m.name not in runner.prepare_failures
    assert (tmp_path / "count").read_text() == "x"  # the shared command ran once
    assert (tmp_path / "made" / "a.pt").is_file() and (tmp_path / "made" / "b.pt").is_file()


# ------------------------------------------------------------------- end to end on a cluster


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster with 2 CPUs, as `ray start --head` makes it; its address."""
    if not HAS_RAY:
        pytest.skip("ray is not installed")
    with ray_head(tmp_path_factory.mktemp("ray") / "head.log") as address:
        yield address


NETS = """
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,4]"]


def linear():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


"""


def _cases(junit: Path) -> dict:
    root = ET.parse(junit).getroot()
    return {
        s.get("name"): sorted((tc.get("name"), tc.find("failure") is not None) for tc in s.findall("testcase"))
        for s in root.findall("testsuite")
    }


@needs_ray
@needs_torch
@pytest.mark.torch
def test_ray_run_matches_a_local_run(tmp_path, ray_cluster):
    proj = tmp_path / "proj"  # shipped to the workers; the baseline beside it is not, the driver compares it
    proj.mkdir()
    (proj / "nets.py").write_text(NETS)
    (proj / "notmodel.py").write_text("def build():\n    return 42\n")
    (tmp_path / "baseline.json").write_text(json.dumps({"status": "pass"}))
    cfg = write(
        proj,
        """\
        workdir = "work"

        [[models]]
        name = "linear"
        source = "nets.py:linear"
        latency = { runs = 5, max_ms = 1000 }
        dims = { batch = 3 }
        baseline = "../baseline.json"

        [[models]]
        name = "bad"
        source = "notmodel.py:build"

        [[models]]
        name = "later"
        source = "nets.py:linear"
        skip = "not today"
        """,
    )
    runs = {}
    for kind, extra in (("local", ["--jobs", "2"]), ("ray", ["--executor", "ray", "--ray-address", ray_cluster])):
        out = tmp_path / kind
        proc = run_cli(
            "check",
            "--config",
            cfg,
            "--workdir",
            out / "work",
            "--no-progress",
            "--json",
            out / "s.json",
            "--junit",
            out / "j.xml",
            *extra,
            env=RAY_ENV,
            timeout=600,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr  # "bad" fails; the run reports every model
        runs[kind] = (json.loads((out / "s.json").read_text()), _cases(out / "j.xml"), proc.stdout)

    (local, local_cases, _), (ray, ray_cases, stdout) = runs["local"], runs["ray"]

    def key(m):
        return (
            m["name"],
            m["status"],
            m["verdict"],
            (m["error"] or {}).get("step"),
            [b["name"] for b in m["budgets"]],
            [(b["name"], b["status"]) for b in m["baseline"]],
        )

    assert [key(m) for m in ray["models"]] == [key(m) for m in local["models"]]
    assert ray["counts"] == local["counts"] == {"pass": 1, "fail": 1, "inconclusive": 0, "skipped": 1}
    assert [b["name"] for b in ray["models"][0]["baseline"]] == ["baseline.verdict"]
    assert ray_cases == local_cases and len(ray_cases["linear"]) >= 4
    assert ray["executor"]["kind"] == "ray" and ray["executor"]["shared_fs"] is False

    # the outputs are in the driver's workdir, and name its paths, not the node's
    linear = ray["models"][0]
    work = tmp_path / "ray" / "work"
    assert linear["bundle"] == str(work / "linear") and (work / "linear" / "model.onnx").is_file()
    assert Path(linear["verify_report"]).is_file() and "/tmp/ray" not in Path(linear["verify_report"]).read_text()
    assert (work / "linear.verify.log").is_file() and (work / "bad.export.log").is_file()
    # each model names its node: JSON, JUnit property, progress line
    node = linear["node"]
    assert node and node.startswith(socket.gethostname())
    suite = ET.parse(tmp_path / "ray" / "j.xml").getroot().find("testsuite[@name='linear']")
    assert suite.find("properties/property[@name='node']").get("value") == node
    assert "linear: PASS" in stdout and f"on {node}" in stdout


@needs_ray
def test_the_shipped_directory_leaves_out_the_workdir_and_has_a_size_limit(tmp_path, ray_cluster):
    (tmp_path / "notmodel.py").write_text("def build():\n    return 42\n")
    cfg = write(tmp_path, 'workdir = "work"\n[[models]]\nname = "bad"\nsource = "notmodel.py:build"\n')
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "old.bin").write_bytes(os.urandom(3_000_000))  # an earlier run's output: not shipped
    env = {**RAY_ENV, "RAY_max_grpc_message_size": "2500000"}  # Ray's 512 MiB limit, made small
    argv = ("check", "--config", cfg, "--executor", "ray", "--ray-address", ray_cluster, "--no-progress")
    proc = run_cli(*argv, env=env, timeout=300)
    assert proc.returncode == 1 and "bad: FAIL" in proc.stdout, proc.stdout + proc.stderr
    (tmp_path / "work" / "old.bin").rename(tmp_path / "data.bin")
    proc = run_cli(*argv, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"bridge: usage: cannot ship {tmp_path} to the Ray workers: what Ray would pack exceeds" in proc.stderr
    assert ".rayignore" in proc.stderr and "--ray-shared-fs" in proc.stderr


DIES = """\
    workdir = "work"

    [[models]]
    name = "dies"
    source = "notmodel.py:build"
    weights = "made/w.pt"
    prepare = ["python", "-c", "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"]

    [[models]]
    name = "bad"
    source = "notmodel.py:build"
    """


@needs_ray
def test_a_task_whose_worker_dies_is_that_models_error(tmp_path):
    """Also the path a new user takes: no address, so a local Ray instance on this machine's files."""
    (tmp_path / "notmodel.py").write_text("def build():\n    return 42\n")
    cfg = write(tmp_path, DIES)  # the prepare command kills the Ray worker running it, on every attempt
    proc = run_cli(
        "check",
        "--config",
        cfg,
        "--executor",
        "ray",
        "--ray-max-retries",
        "1",
        "--no-progress",
        "--json",
        tmp_path / "s.json",
        "--junit",
        tmp_path / "j.xml",
        env=RAY_ENV,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["executor"]["address"] == "local" and summary["executor"]["shared_fs"] is True
    dies, bad = summary["models"]
    assert dies["status"] == "fail" and dies["error"]["step"] == "prepare" and dies["node"]
    assert "lost its worker process" in dies["message"] and f"on {dies['node']}" in dies["message"]
    assert "attempts: 2" in dies["message"]  # one retry after the system failure
    assert bad["status"] == "fail" and bad["error"]["step"] == "export"  # the other model is still reported
    assert "bridge: bad input" in bad["message"] and (tmp_path / "work" / "bad.export.log").is_file()
    failure = ET.parse(tmp_path / "j.xml").getroot().find("testsuite[@name='dies']/testcase[@name='prepare']/failure")
    assert "lost its worker process" in failure.get("message")
    assert "[2/2] dies: FAIL" in proc.stdout or "[1/2] dies: FAIL" in proc.stdout


def test_precision_and_calibrate_reach_export(tmp_path, monkeypatch):
    cfg = load_config(write(tmp_path, MINIMAL + 'precision = "int8"\ncalibrate = "calib.npz"\n'))
    (m,) = cfg.models
    assert m.export.precision == m.verify.precision == "int8" and m.export.calibrate == str(tmp_path / "calib.npz")
    assert str(tmp_path / "calib.npz") in m.required_files()  # a missing file triggers the prepare commands
    seen = {}

    def fake_run(self, argv, log, timeout=None):
        seen[argv[3]] = argv
        if argv[3] == "export":
            bundle = Path(argv[argv.index("--output") + 1])
            bundle.mkdir(parents=True, exist_ok=True)
            (bundle / "manifest.json").write_text("{}")
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps({"status": "pass", "reason": ""}))
        return StepResult(argv, 0, "", "", 0.0)

    monkeypatch.setattr(Runner, "_run", fake_run)
    assert Runner(cfg, workdir=tmp_path / "work", threads=1, timeout=None).run_model(m).status == "pass"
    export = seen["export"]
    assert (
        export[export.index("--precision") + 1] == "int8"
        and export[export.index("--calibrate") + 1] == m.export.calibrate
    )
    verify = seen["verify"]  # the verifier asks for the int8 row itself: never read from the bundle
    assert verify[verify.index("--precision") + 1] == "int8"
    assert verify[verify.index("--calibrate") + 1] == m.verify.calibrate  # its derivation is checked with them
    for text, key in (
        ('precision = "int4"\n', "precision"),
        ('precision = "fp16"\ncalibrate = "c.npz"\n', "calibrate"),
    ):
        assert key in config_error(tmp_path / key, MINIMAL + text)
