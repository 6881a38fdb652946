"""Numbers that say what they cover: the verdict's figures are one case's and say which, the table's are
over every case and say so, a smallest passing tolerance says the other knob was kept, and elements
forgiven as rounding are counted apart and labelled. A failing assert_parity reads like
torch.testing.assert_close: the reason once, the numbers, the next step."""

from __future__ import annotations

from bridge.report.markdown import render_markdown
from bridge.report.model import Report
from bridge.report.terminal import render
from bridge.testing import failure_message
from bridge.verdict.compare import FAIL, INCONCLUSIVE, PASS, OutputResult
from bridge.verdict.policy import Tolerance

TOL = Tolerance(1.1e-6, 1e-4)


def result(case, status=PASS, fail_count=0, size=32, reason="", **kw) -> OutputResult:
    return OutputResult(
        name="logits",
        status=status,
        reason=reason,
        case=case,
        ref_shape=(4, 8),
        cand_shape=(4, 8),
        ref_dtype="float32",
        cand_dtype="float32",
        tolerance=TOL,
        size=size,
        fail_count=fail_count,
        fail_fraction=fail_count / size,
        max_abs=kw.pop("max_abs", 1e-6),
        max_rel=1e-5,
        applied_atol=1.1e-6,
        needed_atol=kw.pop("needed_atol", 0.0),
        needed_rtol=kw.pop("needed_rtol", 0.0),
        **kw,
    )


ROUNDING = (
    "values: 3 of 32 elements (9.38%) outside atol=1.1e-06 + rtol=0.0001*|ref|; but ONNX Runtime disagrees "
    "with itself as much on this input"
)


def test_elements_forgiven_as_rounding_are_counted_apart_and_labelled():
    report = Report("verify", "b", source="net.py:build")
    report.results = [result("draw0"), result("draw1", INCONCLUSIVE, fail_count=3, reason=ROUNDING)]
    row = report.summary["logits"]
    assert report.status == PASS and row.fail_count == 0  # the rounding case's elements are not "failing"
    from bridge.verdict.results import group

    (rec,) = group([r.to_json() for r in report.results])
    assert (rec["fail_count"], rec["forgiven_count"], rec["forgiven_cases"]) == (0, 3, ["draw1"])
    text = render(report)
    line = next(ln for ln in text.splitlines() if ln.startswith("logits "))
    assert "0.00% +3 forgiven" in line  # never "failing 9.38%" beside a PASS without a word
    assert "forgiven: logits: 3 elements (4.7% of all cases' elements) outside the tolerance on case draw1" in text
    assert "not in the failing column" in text
    md = render_markdown(report.to_json())
    assert "0% (+3 forgiven)" in md and "_Forgiven: logits: 3 elements" in md


def test_the_verdict_names_its_case_and_the_table_says_all_cases():
    report = Report("verify", "b", source="net.py:build")
    failing = "values: 32 of 32 elements (100%) outside atol=1.1e-06 + rtol=0.0001*|ref|"
    report.results = [
        result("draw0"),
        result("batch=1", FAIL, fail_count=32, reason=failing, max_abs=0.5, needed_atol=0.5, needed_rtol=3.0),
        result("batch=3", FAIL, fail_count=24, size=96, reason=failing, max_abs=0.1, needed_atol=0.1),
    ]
    assert report.reason.startswith("logits, case batch=1 (cpu): values: 32 of 32 elements (100%)")
    text = render(report)
    header = next(ln for ln in text.splitlines() if ln.startswith("output "))
    assert "failing, all cases" in header and "would pass at (other kept)" in header
    row = report.summary["logits"]
    assert row.fail_count == 56 and abs(row.fail_fraction - 56 / 160) < 1e-12


def test_a_failing_assert_parity_says_the_reason_once_then_the_numbers_then_the_next_step():
    report = Report("verify", "bundles/net", source="<net.MLP object>")
    failing = "values: 32 of 32 elements (100%) outside atol=1.1e-06 + rtol=0.0001*|ref|; max abs error 0.5"
    report.results = [result("draw0", FAIL, fail_count=32, reason=failing, max_abs=0.5, needed_atol=0.5)]
    text = failure_message(report, "bundles/net", source=object())
    lines = text.splitlines()
    assert lines[0] == "bridge parity FAIL: bundles/net vs <net.MLP object>"
    assert lines[1].startswith("logits, case draw0 (cpu): values: 32 of 32")
    assert text.count(failing) == 1  # once: the table holds numbers, not the reason again
    assert any(ln.startswith("logits ") and "FAIL" in ln for ln in lines)  # the per-output table
    assert lines[-1].startswith("next: bridge.verify('bundles/net', source=model, localize='localize/')")
    assert "atol=0.5 (rtol as applied) passes logits" in lines[-1]
    assert not any(not ln.strip() for ln in lines)
    golden = Report("verify", "bundles/net")
    golden.results = report.results
    assert "assert_parity('bundles/net', model)" in failure_message(golden, "bundles/net")
    vacuous = Report("verify", "bundles/net", source="net.py:build")
    vacuous.results = [result("draw0", INCONCLUSIVE, reason="vacuous: the reference is all zeros")]
    assert "samples='real.npz'" in failure_message(vacuous, "bundles/net", "net.py:build").splitlines()[-1]


def test_the_html_report_opens_with_the_verdict_the_failing_outputs_and_a_next_step():
    from bridge.report.html import render_html

    report = Report("verify", "bundles/net", source="net.py:build")
    failing = "values: 32 of 32 elements (100%) outside atol=1.1e-06 + rtol=0.0001*|ref|"
    report.results = [result("draw0", FAIL, fail_count=32, reason=failing, max_abs=0.5, needed_atol=0.5)]
    report.policy = {"rows": [{"dtype": f"float{i}", "atol": 1e-5} for i in range(12)]}
    report.environment = {"versions": {"torch": "2.14"}, "machine": {"cpu": {"model": "x", "cores": 2}}}
    report.notes = ["the source returned a model in training mode, with layers that behave differently in eval"]
    page = render_html(report.to_json())
    where = {
        key: page.find(key)
        for key in (
            'class="banner',
            'class="failing',
            "Next step:",
            "Verdict per output",
            "<h2>Notes",
            "<h2>Tolerance policy",
            "<h2>Environment",
        )
    }
    assert all(v >= 0 for v in where.values()), where
    order = sorted(where, key=where.get)
    assert order[:5] == ['class="banner', 'class="failing', "Next step:", "Verdict per output", "<h2>Notes"], order
    assert "bridge verify bundles/net --source net.py:build --localize localize/" in page
    policy = page[where["<h2>Tolerance policy"] :]
    assert policy.index("<details>") < policy.index("float11")  # folded, not twelve rows up front
    assert page.count("<li><b>logits</b>") == 1  # the failing output listed once, at the top
