"""Security III: the broken feature and the misleading answers of the third red-team pass, each tried as a
new user would (the real command line, in a directory of its own) and given the answer stated.

- every precision exports with a relative ``-o`` and relative files, run from another directory (the
  quantizer's scratch ``chdir`` broke relative staging paths: exit 5);
- calibration samples holding NaN or Inf: exit 2 naming the file, the array and the count (was exit 5,
  ONNX Runtime's "scale issue");
- ``--labels`` outside ``0..classes-1``: exit 2 naming them (was 0% accuracy on both sides and PASS);
- the API raises BridgeError subclasses with the command line's messages and exit codes (a FIFO was
  "does not exist"; an unforeseen exception escaped as itself);
- a calibration zip bomb: exit 7 at the right stage, no staging left, and nothing after bridge's line
  (the resource tracker's "leaked semaphore" warnings);
- every requested report format is written on every exit, holding the error (only --json was).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, needs_torch

from bridge.artifact.bundle import open_bundle
from hostile.common import TORCH_FACTORIES, Call, assert_exit, assert_verdict, error_line, run_many

FORMATS = {"json": "json", "junit": "xml", "markdown": "md", "html": "html"}


def _reports(where: Path, name: str) -> tuple:
    return tuple(x for fmt, ext in FORMATS.items() for x in (f"--{fmt}", where / f"{name}.{ext}"))


def _calibration_bomb(path: Path, gib: float) -> Path:
    """An .npz whose one array declares ``gib`` GiB of float32 (a few MiB on disk): zeros, deflated,
    streamed so that building it never holds them."""
    from numpy.lib import format as npf

    rows = int(gib * 2**30) // 16
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            npf.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, 4)})
            block = bytes(4 << 20)
            for _ in range(rows * 16 // len(block)):
                f.write(block)
    return path


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every CLI call of this module, run four at a time: a source directory, and a run directory the
    calls start in (relative paths lead from it into the source directory)."""
    base = tmp_path_factory.mktemp("answers")
    src, run, rep = base / "src", base / "run", base / "reports"
    src.mkdir()
    run.mkdir()
    (src / "fac.py").write_text(TORCH_FACTORIES.read_text())
    rng = np.random.default_rng(0)
    np.savez(src / "cal.npz", x=rng.uniform(-3, 3, (64, 4)).astype(np.float32))
    bad = rng.uniform(-3, 3, (16, 4)).astype(np.float32)
    bad[0, 0], bad[3, 1], bad[5, 2] = np.nan, np.inf, -np.inf
    np.savez(src / "nan.npz", x=bad)
    np.savez(src / "samples.npz", x=rng.uniform(-3, 3, (8, 4)).astype(np.float32))
    np.save(src / "labels_bad.npy", np.array([0, 1, 2**62, -(2**62), 3, 1, 2, 0], np.int64))
    np.save(src / "labels_ok.npy", np.array([0, 1, 2, 3, 3, 1, 2, 0], np.int64))
    (src / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    _calibration_bomb(src / "bomb.npz", 3)
    (src / "bridge.toml").write_text("[[models]]\nname = 'm'\nsource = 'fac.py:linear'\nweights = 5\n")
    fac = "../src/fac.py:linear"
    calls = {
        # relative -o, relative files, another working directory
        "fp16": Call(("export", fac, "-o", "out/fp16", "--precision", "fp16"), run),
        "int8_dynamic": Call(("export", fac, "-o", "out/int8", "--precision", "int8"), run),
        "int8_static": Call(
            ("export", fac, "-o", "out/qdq", "--precision", "int8", "--calibrate", "../src/cal.npz"), run
        ),
        "nan_calibration": Call(
            ("export", fac, "-o", "out/nan", "--precision", "int8", "--calibrate", "../src/nan.npz"), run
        ),
        "bomb": Call(
            (
                "export",
                fac,
                "-o",
                "out/bomb",
                "--precision",
                "int8",
                "--calibrate",
                "../src/bomb.npz",
                "--memory-limit",
                "2",
            ),
            run,
        ),
        "plain": Call(("export", fac, "-o", "out/plain"), run),
        # every report on every exit
        "bad_value": Call(("verify", "out/none", "--atol", "x", *_reports(rep, "bad_value")), run),
        "argparse": Call(("verify", "out/none", "--bogus", *_reports(rep, "argparse")), run),
        "bad_input": Call(("export", "../src/missing.py:f", "-o", "out/x", *_reports(rep, "bad_input")), run),
        "refused": Call(("export", fac, "--weights", "../src/evil.pt", "-o", "out/y", *_reports(rep, "refused")), run),
        "one_refused": Call(
            ("export", fac, "-o", "out/z", "--json", "../src/fac.py", "--junit", rep / "one_refused.xml"), run
        ),
        "check_error": Call(
            ("check", "--json", rep / "check.json", "--junit", rep / "check.xml", "--markdown", rep / "check.md"), src
        ),
        "inspect_error": Call(("inspect", "out/none", "--json", rep / "inspect.json"), run),
    }
    results = run_many(calls)
    later = {
        "labels_bad": Call(
            (
                "verify",
                "out/plain",
                "--source",
                fac,
                "--samples",
                "../src/samples.npz",
                "--labels",
                "../src/labels_bad.npy",
            ),
            run,
        ),
        "labels_ok": Call(
            (
                "verify",
                "out/plain",
                "--source",
                fac,
                "--samples",
                "../src/samples.npz",
                "--labels",
                "../src/labels_ok.npy",
            ),
            run,
        ),
    }
    results.update(run_many(later))
    return base, results


@needs_torch
@pytest.mark.parametrize("name,dest", [("fp16", "fp16"), ("int8_dynamic", "int8"), ("int8_static", "qdq")])
def test_every_precision_exports_with_relative_paths_from_another_directory(runs, name, dest):
    base, results = runs
    assert_verdict(results[name], 0)
    bundle = open_bundle(base / "run" / "out" / dest)
    assert bundle.manifest["precision"]["precision"] in ("fp16", "int8")
    # nothing else landed anywhere: no staging, no quantizer scratch, no sym_shape_infer_temp
    assert sorted(p.name for p in (base / "run").iterdir()) == ["out"]
    left = [p.name for p in (base / "run" / "out").iterdir() if p.name.startswith(".")]
    assert left == [], left
    assert not any(p.name.startswith(("bridge-q", "sym_shape")) for p in (base / "src").iterdir())


@needs_torch
def test_nonfinite_calibration_samples_are_named(runs):
    base, results = runs
    line = assert_exit(results["nan_calibration"], 2, "bad input", "../src/nan.npz", "x holds 3 non-finite values")
    assert "1 NaN, 2 Inf" in line
    assert not (base / "run" / "out" / "nan").exists()


@needs_torch
def test_labels_outside_the_classes_are_refused(runs):
    _, results = runs
    line = assert_exit(results["labels_bad"], 2, "bad input", "labels_bad.npy", "2 of 8 labels lie outside 0..3")
    assert "4611686018427387904 (row 2)" in line and "-4611686018427387904 (row 3)" in line
    assert_verdict(results["labels_ok"], 0, "accuracy native")


@needs_torch
def test_calibration_zip_bomb_is_contained_and_leaves_nothing(runs):
    base, results = runs
    res = results["bomb"]
    line = assert_exit(res, 7, "crashed", "reading the calibration samples", "memory")  # one line, nothing after it
    assert "resource_tracker" not in res.stderr and "leaked" not in res.stderr, res.stderr
    out = base / "run" / "out"
    assert not [p.name for p in out.iterdir() if p.name.startswith((".bomb", "bomb"))], line


def _error_reports(rep: Path, name: str, code: int) -> dict:
    data = json.loads((rep / f"{name}.json").read_text())
    assert data["status"] == "error" and data["exit_code"] == code, data
    suite = ET.parse(rep / f"{name}.xml").getroot().find("testsuite")
    assert suite.find("testcase/failure") is not None
    assert (rep / f"{name}.md").read_text().startswith("### ERROR")
    assert "ERROR" in (rep / f"{name}.html").read_text()
    return data


@pytest.mark.parametrize(
    "name,code,category",
    [("bad_value", 2, "usage"), ("argparse", 2, "usage"), ("bad_input", 2, "bad input"), ("refused", 6, "refused")],
)
def test_every_report_format_is_written_on_every_exit(runs, name, code, category):
    base, results = runs
    assert results[name].returncode == code, results[name].stderr
    data = _error_reports(base / "reports", name, code)
    assert data["error"]["category"] == category
    assert not (base / "run" / "PWNED").exists()


def test_a_refused_report_path_is_left_alone_and_the_others_say_why(runs):
    base, results = runs
    assert_exit(results["one_refused"], 2, "usage", "fac.py", "writing it would replace it")
    assert (base / "src" / "fac.py").read_text() == TORCH_FACTORIES.read_text()  # the SOURCE is intact
    assert not (base / "run" / "out" / "z").exists()
    failure = ET.parse(base / "reports" / "one_refused.xml").getroot().find("testsuite/testcase/failure")
    assert "writing it would replace it" in failure.get("message")


def test_check_and_inspect_write_their_reports_on_an_error(runs):
    base, results = runs
    rep = base / "reports"
    assert_exit(results["check_error"], 2, "usage", "weights")
    summary = json.loads((rep / "check.json").read_text())
    assert summary["status"] == "error" and summary["exit_code"] == 2 and "weights" in summary["error"]["message"]
    assert ET.parse(rep / "check.xml").getroot().find("testsuite/testcase/failure") is not None
    assert (rep / "check.md").read_text().startswith("## bridge check: ERROR")
    assert (base / "src" / "bridge.toml").read_text().startswith("[[models]]")  # the config itself untouched
    assert results["inspect_error"].returncode == 2
    assert json.loads((rep / "inspect.json").read_text())["status"] == "error"


# -- the API: BridgeError subclasses, the command line's messages and exit codes ---------------------------

API_SCRIPT = r"""
import json, sys
import bridge
from bridge.errors import BridgeError

fifo, bundle, fac, samples = sys.argv[1:5]
calls = {
    "fifo_target": lambda: bridge.verify(fifo),
    "missing_target": lambda: bridge.verify(bundle + "_missing"),
    "bad_atol": lambda: bridge.verify(bundle, atol="x"),
    "fifo_labels": lambda: bridge.verify(bundle, source=fac, samples=samples, labels=fifo),
    "missing_source": lambda: bridge.export(fac.replace("fac.py", "missing.py"), bundle + "_new"),
    "nul_path": lambda: bridge.export(fac, "o\0"),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = None
    except BridgeError as exc:
        out[name] = [type(exc).__name__, exc.exit_code, exc.category, exc.message]
    except BaseException as exc:
        out[name] = ["NOT A BridgeError", type(exc).__name__, str(exc)]
print("RESULT " + json.dumps(out))
"""


@needs_torch
def test_the_api_raises_what_the_command_line_says(runs, tmp_path):
    base, results = runs
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    src, run = base / "src", base / "run"
    bundle, fac, samples = run / "out" / "plain", f"{src / 'fac.py'}:linear", src / "samples.npz"
    script = tmp_path / "api_calls.py"
    script.write_text(API_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(script), str(fifo), str(bundle), fac, str(samples)]
    res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))
    api = json.loads(line[len("RESULT ") :])
    assert all(v and v[0] != "NOT A BridgeError" for v in api.values()), api
    assert "is not a regular file" in api["fifo_target"][3] and "FIFO" in api["fifo_target"][3]
    assert api["nul_path"][:2] == ["UsageError", 2]
    cli = run_many(
        {
            "fifo_target": Call(("verify", fifo), tmp_path),
            "missing_target": Call(("verify", str(bundle) + "_missing"), tmp_path),
            "bad_atol": Call(("verify", bundle, "--atol", "x"), tmp_path),
            "fifo_labels": Call(("verify", bundle, "--source", fac, "--samples", samples, "--labels", fifo), tmp_path),
            "missing_source": Call(
                ("export", fac.replace("fac.py", "missing.py"), "-o", str(bundle) + "_new"), tmp_path
            ),
        }
    )
    for name, res in cli.items():
        _, code, category, message = api[name]
        assert res.returncode == code, (name, res.stderr)
        line = error_line(res)
        if name == "bad_atol":  # the same problem, placed on its surface: --atol x / atol='x'
            assert line.startswith(f"bridge: {category}: --atol x") and message.startswith("atol='x'"), (line, message)
            assert line.split(": ", 3)[-1] == message.split(": ", 1)[-1], (line, message)
        else:
            assert line == f"bridge: {category}: {message}", (name, line, message)


def test_an_unforeseen_exception_in_the_api_is_an_internal_error(monkeypatch, tmp_path):
    """A bug (or a library failing in a new way) reaches an API caller as InternalError, exit 8,
    naming the stage, as the command line names it; the original is chained."""
    import bridge
    import bridge.exporting
    from bridge.errors import BridgeError, InternalError
    from bridge.progress import stage

    def broken(request, obj=None):
        stage("converting x to ONNX")
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(bridge.exporting, "_run_export", broken)
    with pytest.raises(BridgeError) as info:
        bridge.export(str(TORCH_FACTORIES) + ":linear", str(tmp_path / "o"))
    exc = info.value
    assert isinstance(exc, InternalError) and exc.exit_code == 8 and exc.category == "internal error"
    assert exc.message == "converting x to ONNX: ZeroDivisionError: division by zero"
    assert isinstance(exc.__cause__, ZeroDivisionError)
    assert Path(tmp_path).exists() and list(Path(tmp_path).iterdir()) == []
