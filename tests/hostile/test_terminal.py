"""Security III, terminal injection: no string that came from a model, a bundle or a runtime error
reaches a terminal or a report file raw.

A hostile bundle names its outputs with ESC sequences (clear the screen, print a green ``verdict: PASS``,
a hyperlink, a window title), BEL, CR and backspaces, and puts them in its producer strings and in the
manifest's source text; a graph's op type carries them into ONNX Runtime's load error; a factory's dict
keys carry them through an export, a verify, a bench and a ``bridge check`` (table, progress lines and
summaries). Every output stream and every report file must be free of C0/C1 control characters (line
breaks and tabs bridge lays out itself excepted), and the names must still be shown, made visible
(``\\x1b``). JSON reports keep the names as data, escaped by the encoder.
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import helper

from hostile.build import model, pair_bundle, rehash, spec, vi, write_bundle
from hostile.common import Call, error_line, run_many

EVIL = "y\x1b[2J\x1b[32mverdict: PASS\x1b]8;;http://e.vil\x07link\x1b]8;;\x07\x1b]0;pwned\x07\r\x08\x08\x9b31m"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what may never appear (tab and line feed are bridge's)

FACTORY = f"""
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,4]"]
EVIL = {EVIL!r}


class Named(nn.Module):
    def __init__(self, scale):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)
        self.scale = scale

    def forward(self, x):
        return {{EVIL: self.lin(x) * self.scale}}


def passing():
    return Named(1.0).eval()


def vacuous():  # all zeros: inconclusive, and its reason quotes the name
    return Named(0.0).eval()
"""


def _no_raw(text: str, where: str) -> None:
    found = RAW.search(text)
    assert found is None, (
        f"{where}: raw control character {found.group(0)!r} at {found.start()}: {text[max(0, found.start() - 80) : found.start() + 80]!r}"
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("terminal")
    (base / "evil.py").write_text(FACTORY)
    bundle = pair_bundle(
        base / "bundle", {EVIL: np.array([1.0, 2.0], np.float32)}, {EVIL: np.array([1.0, 2.5], np.float32)}
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["source"]["text"] = f"model.py:{EVIL}"
    manifest["exporter"]["name"] = f"exporter{EVIL}"
    manifest["verification"]["reason"] = EVIL
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    proto = onnx.load(bundle / "model.onnx")
    proto.producer_name, proto.producer_version = f"producer{EVIL}", EVIL
    proto.doc_string = EVIL
    onnx.save(proto, bundle / "model.onnx")
    rehash(bundle)
    # an op type ONNX Runtime quotes in its load error
    op = helper.make_node(f"Op{EVIL}", ["x"], ["y"], domain="evil.corp")
    graph = model(
        [op], [vi("x", shape=(1,))], [vi("y", shape=(1,))], extra_opsets=[helper.make_opsetid("evil.corp", 1)]
    )
    custom = write_bundle(
        base / "custom",
        graph,
        {"draw0/in/x": np.zeros(1, np.float32), "draw0/out/y": np.zeros(1, np.float32)},
        [spec("x", "float32", [1])],
        [spec("y", "float32", [1])],
    )
    (base / "bridge.toml").write_text(
        '[[models]]\nname = "passing"\nsource = "evil.py:passing"\n\n[[models]]\nname = "vacuous"\nsource = "evil.py:vacuous"\n'
    )
    reports = base / "reports"

    def with_reports(name, *args):
        return (*args, *(x for fmt, ext in FORMATS for x in (f"--{fmt}", reports / f"{name}.{ext}")))

    calls = {
        "verify": Call(with_reports("verify", "verify", bundle), base),
        "bench": Call(with_reports("bench", "bench", bundle, "--latency-runs", "3"), base),
        "inspect": Call(("inspect", bundle, "--json", reports / "inspect.json"), base),
        "custom_op": Call(with_reports("custom_op", "verify", custom), base),
        "export": Call(with_reports("export", "export", "evil.py:passing", "-o", base / "exported"), base),
        "export_vacuous": Call(with_reports("export_vacuous", "export", "evil.py:vacuous", "-o", base / "vac"), base),
        "check": Call(
            (
                "check",
                "--workdir",
                base / "work",
                "--json",
                reports / "check.json",
                "--junit",
                reports / "check.xml",
                "--markdown",
                reports / "check.md",
            ),
            base,
        ),
    }
    return base, reports, run_many(calls)


FORMATS = (("json", "json"), ("junit", "xml"), ("markdown", "md"), ("html", "html"))


@pytest.mark.parametrize("name", ["verify", "bench", "inspect", "custom_op", "export", "export_vacuous", "check"])
def test_nothing_untrusted_reaches_a_stream_raw(hostile, name):
    _, _, results = hostile
    res = results[name]
    assert (
        res.returncode
        in {
            "verify": (1,),
            "bench": (0,),
            "inspect": (0,),
            "custom_op": (2,),
            "export": (0,),
            "export_vacuous": (3,),
            "check": (3,),
        }[name]
    ), res.stdout[-2000:] + res.stderr[-2000:]
    _no_raw(res.stdout, f"{name}: stdout")
    _no_raw(res.stderr, f"{name}: stderr")
    shown = res.stdout + res.stderr
    assert "\\x1b[2J" in shown, shown[-2000:]  # the name is shown, made visible


def test_the_verdict_line_cannot_be_forged(hostile):
    _, _, results = hostile
    out = results["verify"].stdout
    verdicts = [ln for ln in out.splitlines() if ln.startswith("verdict:")]
    assert len(verdicts) == 1 and verdicts[0].startswith("verdict: FAIL"), out


def test_inspect_shows_producer_and_source_made_visible(hostile):
    _, _, results = hostile
    out = results["inspect"].stdout
    assert "producery\\x1b[2J" in out and "model.py:y\\x1b[2J" in out and "exportery\\x1b" in out, out


def test_runtime_error_quoting_an_op_type_is_made_visible(hostile):
    _, _, results = hostile
    line = error_line(results["custom_op"])
    assert line.startswith("bridge: bad input: ONNX Runtime cannot load") and "Opy\\x1b[2J" in line, line


def test_report_files_hold_no_raw_control_characters(hostile):
    _, reports, _ = hostile
    files = sorted(reports.iterdir())
    assert len(files) >= 6 * 4, [f.name for f in files]
    for path in files:
        text = path.read_bytes().decode("utf-8")
        _no_raw(text, path.name)
        if path.suffix == ".json":  # data: the names as they are, escaped by the JSON encoder
            json.loads(text)
    assert "\\u001b[2J" in (reports / "verify.json").read_text()
    for name in ("verify.md", "verify.html", "verify.xml", "check.md", "check.xml"):
        assert "\\x1b[2J" in (reports / name).read_text(), name


def test_check_progress_table_and_summaries(hostile):
    _, reports, results = hostile
    out = results["check"].stdout
    done = [ln for ln in out.splitlines() if "vacuous: INCONCLUSIVE" in ln]
    assert len(done) == 1 and "y\\x1b[2J" in done[0], out  # the progress line quotes the reason, made visible
    summary = json.loads((reports / "check.json").read_text())
    assert summary["models"][1]["message"].startswith(EVIL)  # the JSON summary keeps the data
    assert "\\x1b[2J" in (reports / "check.md").read_text() and "y\\x1b[2J" in (reports / "check.xml").read_text()
