"""JUnit, Markdown and HTML renderers of report dicts: fast, no torch/tensorflow, self-contained fixtures."""

from __future__ import annotations

import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from bridge.report.html import render_html
from bridge.report.junit import render_junit
from bridge.report.markdown import num_up, output_groups, render_markdown

TOL = {"atol": 1e-05, "rtol": 0.0001, "allow_nonfinite": False}
EDGES = list(range(-12, 3))


def hist(decade: int, n: int, zeros: int = 0) -> dict:
    counts = [0] * (len(EDGES) - 1)
    counts[decade + 12] = n
    return {"log10_edges": EDGES, "counts": counts, "zeros": zeros}


def check(name, case, status="pass", device="cpu", shape=(2, 3), max_abs=1.2e-07, **kw) -> dict:
    # Statistics default to a clean pass; keyword arguments override any field (None included).
    """A check record shaped like OutputResult.to_json()."""
    size = 1
    for d in shape:
        size *= d
    rec = {
        "name": name,
        "status": status,
        "reason": "",
        "case": case,
        "device": device,
        "ref_shape": list(shape),
        "cand_shape": list(shape),
        "ref_dtype": "float32",
        "cand_dtype": "float32",
        "tolerance": dict(TOL),
        "size": size,
        "fail_count": 0,
        "fail_fraction": 0.0,
        "max_abs": max_abs,
        "mean_abs": max_abs,
        "p99_abs": max_abs,
        "max_rel": max_abs,
        "mean_rel": max_abs,
        "p99_rel": max_abs,
        "rel_norm": max_abs,
        "needed_atol": 0.0,
        "needed_rtol": 0.0,
        "ref_abs_max": 1.2,
        "worst_index": [0, 1],
        "worst_ref": -1.1397,
        "worst_cand": -1.1397001,
        "top1_agreement": None,
        "error_histogram": hist(-7, size),
        "passed": status == "pass",
    }
    rec.update(kw)
    rec["passed"] = rec["status"] == "pass"
    return rec


LATENCY = {
    "cpu": {
        "baseline": "native",
        "rounds": 5,
        "idle_gap_ms": 50.0,
        "threads": 2,
        "notes": [],
        "sides": {
            "native": {
                "side": "native",
                "runs": 6,
                "warmup": 2,
                "p50_ms": 1.4,
                "p90_ms": 6.0,
                "p99_ms": 7.9,
                "min_ms": 0.19,
                "mean_ms": 2.6,
                "samples_ms": [0.85, 0.25, 8.1, 3.9, 1.2, 0.19],
            },
            "onnxruntime": {
                "side": "onnxruntime",
                "runs": 6,
                "warmup": 2,
                "p50_ms": 0.116,
                "p90_ms": 0.218,
                "p99_ms": 0.232,
                "min_ms": 0.02,
                "mean_ms": 0.118,
                "samples_ms": [0.216, 0.022, 0.233, 0.030, 0.21, 0.02],
            },
        },
        "speedup_vs_baseline_p50": {"onnxruntime": 12.1},
        "speedup_per_round": {"onnxruntime": [4.6, 45.7, 6.1]},
    }
}
ENV = {
    "threads": 2,
    "native": {"versions": {"torch": "2.14.1+cu130", "onnxscript": "0.7.2"}},
    "onnxruntime": {"cpu": {"providers": ["CPUExecutionProvider"], "settings": {"intra_op_num_threads": 2}}},
}
CASES = [
    {"label": "draw0", "seed": 1, "sizes": {"batch": 2}, "origin": "seeded"},
    {"label": "size1", "seed": 3, "sizes": {"batch": 1}, "origin": "seeded"},
]
POLICY = {
    "atol": None,
    "rtol": None,
    "outputs": {},
    "allow_nonfinite": False,
    "min_top1_agreement": None,
    "defaults": {"float32/cpu": dict(TOL), "float32/cuda": {"atol": 0.001, "rtol": 0.005, "allow_nonfinite": False}},
}


def report(target, status, reason, checks, outputs=None, **kw) -> dict:
    if outputs is None:  # the first failure per output, else its first check (enough for these fixtures)
        outputs = {}
        for c in checks:
            if c["name"] not in outputs or (c["status"] == "fail" and outputs[c["name"]]["status"] != "fail"):
                outputs[c["name"]] = c
        outputs = list(outputs.values())
    return {
        "schema_version": 1,
        "kind": "verify",
        "passed": status == "pass",
        "status": status,
        "reason": reason,
        "target": target,
        "source": "two.py:build",
        "framework": "torch",
        "exporter": None,
        "devices": ["cpu"],
        "cases": CASES,
        "outputs": outputs,
        "checks": checks,
        "policy": POLICY,
        "latency": {},
        "environment": ENV,
        "notes": [],
        **kw,
    }


BAD_REASON = (
    "values: 6 of 6 elements (100%) outside atol=1e-05 + rtol=0.0001*|ref|; max abs error 0.00656 "
    "at [0, 2] (reference -1.1397, ONNX -1.14627)"
)
BAD_MAX_ABS = 0.006563425064086914


def pass_report() -> dict:
    checks = [check(n, c, shape=s) for c in ("draw0", "size1") for n, s in (("logits", (2, 3)), ("score", (2, 1)))]
    return report("good.onnx", "pass", "", checks, latency=LATENCY)


def fail_report() -> dict:
    checks = [
        check(
            "logits",
            "draw0",
            "fail",
            max_abs=BAD_MAX_ABS,
            reason=BAD_REASON,
            fail_count=6,
            fail_fraction=1.0,
            max_rel=0.00657,
            needed_atol=0.006449454689025879,
            needed_rtol=0.00655562293409641,
            error_histogram=hist(-3, 6),
        ),
        check("score", "draw0"),
        check("logits", "size1", shape=(1, 3)),
        # A shape mismatch: no statistics at all, and an "inf" string where a float would be.
        check(
            "score",
            "size1",
            "fail",
            shape=(1, 1),
            cand_shape=[1, 2],
            reason="shape: reference (1, 1) vs ONNX (1, 2)",
            max_abs=None,
            mean_abs=None,
            p99_abs=None,
            max_rel="inf",
            mean_rel=None,
            p99_rel=None,
            rel_norm=None,
            needed_atol=None,
            needed_rtol=None,
            error_histogram=None,
            worst_index=None,
            fail_count=0,
            fail_fraction=None,
        ),
    ]
    r = report("bad.onnx", "fail", "logits: " + BAD_REASON + " [case draw0, cpu]", checks, latency=LATENCY)
    r["notes"] = ["a note with <angle> & ampersand"]
    return r


def inconclusive_report() -> dict:
    vac = "vacuous: the reference output is all zeros, any candidate within atol=1e-05 passes"
    checks = [
        check("mask", c, "inconclusive", max_abs=0.0, reason=vac, error_histogram=hist(-7, 0, zeros=6))
        for c in ("draw0", "size1")
    ]
    return report("zeros.onnx", "inconclusive", "mask: " + vac, checks)


def nondeterministic_report() -> dict:
    return report(
        "dropout.onnx",
        "inconclusive",
        "nondeterministic reference: two runs of the native model on the "
        "same inputs differ (dropout in training mode?)",
        [],
        outputs=[],
    )


def baked_report() -> dict:
    """A verdict reached apart from the checks: every check passes, the report fails."""
    r = pass_report()
    r.update(
        status="fail", passed=False, target="baked.onnx", reason="declared dynamic axis baked into a constant: batch"
    )
    return r


ALL = [pass_report, fail_report, inconclusive_report, nondeterministic_report, baked_report]


# --- JUnit ---------------------------------------------------------------------------------------


def _suites(xml: str) -> tuple[ET.Element, dict]:
    root = ET.fromstring(xml.encode())
    assert root.tag == "testsuites"
    return root, {s.get("name"): s for s in root.findall("testsuite")}


def test_junit_counts_and_structure():
    reports = [f() for f in ALL]
    root, suites = _suites(render_junit(reports))
    assert list(suites) == [r["target"] for r in reports]
    expected_failures = {"good.onnx": 0, "bad.onnx": 2, "zeros.onnx": 2, "dropout.onnx": 1, "baked.onnx": 1}
    expected_tests = {"good.onnx": 4, "bad.onnx": 4, "zeros.onnx": 2, "dropout.onnx": 1, "baked.onnx": 5}
    for name, suite in suites.items():
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases) == expected_tests[name]
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure")) == expected_failures[name]
        assert suite.get("errors") == suite.get("skipped") == "0"
    assert int(root.get("tests")) == sum(expected_tests.values())
    assert int(root.get("failures")) == sum(expected_failures.values())
    # testcase count equals checks count when the checks carry the verdict
    assert len(suites["bad.onnx"].findall("testcase")) == len(fail_report()["checks"])


def test_junit_names_and_failure_messages():
    _, suites = _suites(render_junit([fail_report()], suite_name="parity"))
    cases = {(c.get("classname"), c.get("name")): c for c in suites["bad.onnx"].findall("testcase")}
    names = ("logits[draw0]", "score[draw0]", "logits[size1]", "score[size1]")
    assert set(cases) == {("bad.onnx.cpu", n) for n in names}
    assert cases[("bad.onnx.cpu", "logits[size1]")].find("failure") is None
    failure = cases[("bad.onnx.cpu", "logits[draw0]")].find("failure")
    msg = failure.get("message")
    assert failure.get("type") == "fail"
    assert f"{BAD_MAX_ABS:.3g}" in msg and "max rel error 0.00657" in msg
    assert "atol / rtol 1e-05 / 0.0001" in msg  # the tolerance applied
    assert "smallest passing atol / rtol 0.0065 / 0.0066" in msg  # rounded up
    assert "worst element [0, 1]" in failure.text
    shape_fail = cases[("bad.onnx.cpu", "score[size1]")].find("failure")
    assert "shape: reference (1, 1) vs ONNX (1, 2)" in shape_fail.get("message")
    assert "1x1 vs 1x2" in shape_fail.text


def test_junit_inconclusive_and_verdict_only_reports_fail_in_ci():
    _, suites = _suites(render_junit([inconclusive_report(), nondeterministic_report(), baked_report()]))
    for c in suites["zeros.onnx"].findall("testcase"):
        assert c.find("failure").get("type") == "inconclusive"
        assert c.find("skipped") is None
    (verdict,) = suites["dropout.onnx"].findall("testcase")
    assert verdict.get("name") == "verdict"
    assert "nondeterministic reference" in verdict.find("failure").get("message")
    baked = [c for c in suites["baked.onnx"].findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in baked] == ["verdict"]
    assert "baked into a constant" in baked[0].find("failure").get("message")


def test_junit_survives_hostile_text():
    r = nondeterministic_report()
    r["target"] = 'a"<b>&\x00c'
    r["reason"] = "bell \x07 and ]]> and \ud800 lone surrogate"
    root, _ = _suites(render_junit([r]))
    assert root.find("testsuite").get("name") == 'a"<b>&\\0c'  # control characters made visible
    reason = root.find("testsuite/properties/property[@name='reason']").get("value")
    assert "bell \\a and ]]> and ? lone surrogate" in reason  # what XML cannot carry is replaced


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_fail():
    md = render_markdown(fail_report())
    assert md.startswith("### FAIL")
    assert "| output | verdict | device | shape | dtype | max abs | max rel | failing, all cases |" in md
    row = next(line for line in md.splitlines() if line.startswith("| logits "))
    assert "| FAIL |" in row and "0.00656" in row and "1e-05 / 0.0001" in row and "0.0065 / 0.0066" in row
    assert "rtol=0.0001*\\|ref\\|" in md  # pipes escaped in the reason
    # A shape mismatch passes at no tolerance and has no failing share.
    assert "| score | FAIL | cpu | 1x1 vs 1x2 | float32 | 1.2e-07 | inf | - | 1e-05 / 0.0001 | - |" in md
    assert "> a note with &lt;angle&gt; &amp; ampersand" in md
    assert "| onnxruntime | 0.116 | 0.218 | 0.232 | 0.020 | 6 | 12.10x |" in md
    assert "draw0 (batch=2, seed 1, seeded)" in md
    assert "torch 2.14.1+cu130" in md
    # Every table row has as many cells as its header.
    for block in md.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            widths = {len(line.replace("\\|", "").split("|")) for line in lines}
            assert len(widths) == 1, block


def test_markdown_other_verdicts():
    assert render_markdown(pass_report()).startswith("### PASS")
    assert "**Reason:**" not in render_markdown(pass_report())
    md = render_markdown(inconclusive_report())
    assert md.startswith("### INCONCLUSIVE") and "vacuous" in md
    md = render_markdown(nondeterministic_report())
    assert "INCONCLUSIVE" in md and "nondeterministic reference" in md and "| output |" not in md
    assert render_markdown({}).startswith("### FAIL")  # an empty dict is not a pass


def test_latency_notes_reach_markdown_and_html():
    import copy

    r = pass_report()
    r["latency"] = copy.deepcopy(LATENCY)
    r["latency"]["cpu"]["notes"] = ["2 of 7 waits between sides reached 250 ms with this process's threads still busy"]
    assert "Latency note (cpu): 2 of 7 waits" in render_markdown(r)
    assert "2 of 7 waits between sides" in render_html(r)
    assert "Latency note" not in render_markdown(pass_report())


def test_output_groups_take_the_worst_over_cases():
    r = fail_report()
    r["checks"].append(check("logits", "draw9", "pass", max_abs=0.5, needed_atol=0.2, needed_rtol="inf"))
    (logits,) = [g for g in output_groups(r) if g["name"] == "logits"]
    assert logits["status"] == "fail" and logits["case"] == "draw0" and logits["n_cases"] == 3
    assert logits["max_abs"] == 0.5 and logits["needed_atol"] == 0.2 and logits["needed_rtol"] == float("inf")
    assert logits["fail_count"] == 6 and logits["size"] == 15
    assert sum(logits["error_histogram"]["counts"]) == 6 + 3 + 6
    assert [num_up(x) for x in (0.006449454689025879, 0.0065, 1.0, 0.0, None, "nan")] == [
        "0.0065",
        "0.0065",
        "1",
        "0",
        "-",
        "nan",
    ]


# --- HTML ----------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link"}


class Strict(HTMLParser):
    """Collects tags and svg classes; asserts every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.svg_classes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svg_classes.append(dict(attrs).get("class", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Strict:
    p = Strict()
    p.feed(page)
    p.close()
    assert p.stack == []
    return p


@pytest.mark.parametrize("make", ALL)
def test_html_parses_and_is_self_contained(make):
    r = make()
    page = render_html(r)
    p = parse(page)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "src=" not in page
    n_hist = sum(1 for g in output_groups(r) if g.get("error_histogram"))
    assert p.svg_classes.count("plot error-hist") == n_hist
    assert p.svg_classes.count("plot latency") == (1 if r["latency"] else 0)
    assert {"PASS": "pass", "FAIL": "fail", "INCONCLUSIVE": "inconclusive"}[r["status"].upper()] in page


def test_html_fail_content():
    page = render_html(fail_report())
    text = "".join(parse(page).text)
    assert '<header class="banner fail"><span class="verdict">FAIL</span>' in page
    assert "0.00656" in text and "0.0065 / 0.0066" in text
    assert "a note with <angle> & ampersand" in text and "<angle>" not in page  # escaped
    assert "score on cpu: FAIL; 1 of 2 case(s) plotted" in text  # the shape mismatch has no histogram
    only_shape = fail_report()
    only_shape["checks"] = only_shape["checks"][3:]
    text = "".join(parse(render_html(only_shape)).text)
    assert "score on cpu: no error histogram (shape: reference (1, 1) vs ONNX (1, 2))" in text
    assert "Tolerance policy" in text and "Environment" in text and "Cases swept" in text
    assert "CPUExecutionProvider" in text


# --- robustness ----------------------------------------------------------------------------------


def _degrade(node, depth=0):
    """Every number becomes None, "nan", "inf" or "-inf" in turn; some containers become None."""
    cycle = [None, "nan", "inf", "-inf"]
    if isinstance(node, dict):
        return {
            k: None if depth > 1 and i % 5 == 4 else _degrade(v, depth + 1) for i, (k, v) in enumerate(node.items())
        }
    if isinstance(node, list):
        return [_degrade(v, depth + 1) for v in node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return cycle[(len(repr(node)) + depth) % 4]
    return node


@pytest.mark.parametrize("make", ALL)
def test_renderers_survive_nulls_and_nonfinite_strings(make):
    for r in (_degrade(make()), {}, {"status": "pass", "checks": None, "outputs": None, "latency": None}):
        _suites(render_junit([r]))
        assert render_markdown(r).startswith("### ")
        page = render_html(r)
        parse(page)
        assert "http://" not in page


# --- a real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(fail_report()), encoding="utf-8")
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    t0 = time.monotonic()
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert dom.count('<svg class="plot error-hist"') == 2 and dom.count('<svg class="plot latency"') == 1
    assert '<span class="verdict">FAIL</span>' in dom and "bad.onnx" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()], capture_output=True, timeout=60
    )
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"chromium: {time.monotonic() - t0:.1f}s for dump-dom and screenshot")


def test_junit_carries_real_times():
    r = fail_report()
    for c in r["checks"]:
        c["seconds"] = 0.25
    r["duration_s"] = 3.5
    root = ET.fromstring(render_junit([r]))
    suite = root.find("testsuite")
    assert suite.get("time") == "3.500" and root.get("time") == "3.500"
    assert {tc.get("time") for tc in suite.findall("testcase") if tc.get("name") != "verdict"} == {"0.250"}
