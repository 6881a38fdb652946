"""Parity assertions for your own pytest suite.

    from bridge.testing import assert_parity

    def test_export_matches():
        assert_parity("bundles/my_model", "my_model.py:build", weights="model.pt", atol=1e-5)

or, as a fixture, after ``pytest_plugins = ["bridge.testing"]`` in your conftest.py::

    def test_export_matches(bridge_parity):
        report = bridge_parity("bundles/my_model", "my_model.py:build")

The verification runs in the test process (``bridge.verifying.run_verify``), so the native framework is
imported there; use ``bridge check`` (subprocesses) to keep torch and TensorFlow apart. Nothing
heavy is imported until an assertion runs.
"""

from __future__ import annotations

import os
import sys

__all__ = ["assert_parity"]


def assert_parity(target, source=None, **kw):
    """Verify TARGET (a bundle directory or a .onnx file) against SOURCE (a model object, or any SOURCE
    the CLI takes) or, without SOURCE, against the bundle's golden outputs; return the Report when the
    verdict is pass, else raise AssertionError whose message holds the per-output table.

    Keywords are those of ``bridge.verify`` (bridge/api.py), the command line's options by name:
    atol / rtol (a number, a mapping ``{output: number}``, or tokens ``["1e-5", "logits:1e-4"]``),
    samples (an .npz of real samples; needs SOURCE), inputs (specs), input_ranges (``{"ids": (0, 1000)}``),
    weights, framework, dims, seed, policy, allow_nonfinite, min_top1, devices, threads, ... Errors
    that stop verification before a verdict (a tampered bundle, a missing file, a bad keyword) raise
    bridge.errors.BridgeError.
    """
    __tracebackhide__ = True  # pytest shows the failure once, not this helper's source
    from bridge.api import verify

    report = verify(target, source, **kw)
    if report.status != "pass":
        raise AssertionError(failure_message(report, target, source))
    return report


def failure_message(report, target, source=None) -> str:
    """What a failing assert_parity says, read like torch.testing.assert_close: the verdict and the reason
    once, the numbers (the per-output table, the cases, the notes), then the next step."""
    from bridge.report.terminal import render
    from bridge.report.text import safe  # reasons and advice quote the model's names

    what = f"vs {safe(report.source)}" if report.source else "against its golden outputs"
    lines = render(report).splitlines()[1:]  # its first line names target and source: said here
    lines = [ln for ln in lines if not ln.startswith("verdict: ")]  # its reason: said here, once
    out = [f"bridge parity {report.status.upper()}: {os.fspath(target)} {what}", safe(report.reason or ""), *lines]
    step = next_step(report, target, source)
    if step:
        out.append(f"next: {safe(step)}")
    return "\n".join(out)


def next_step(report, target, source=None) -> str | None:
    """The one thing to do next for a verdict that is not a pass (bridge/report/advice.py)."""
    from bridge.report.advice import next_step as advice

    api = source is not None and not isinstance(source, (str, os.PathLike))
    if not report.source:
        return (
            f"compare with the native model to see where it goes wrong: assert_parity({os.fspath(target)!r}, model), "
            f"or bridge verify {os.fspath(target)} --source SOURCE --localize localize/"
        )
    rows = list(report.summary.values())
    return advice(report.status, os.fspath(target), report.source, rows, api=api, python=True)


# The fixture exists where pytest is already loaded (a conftest.py, pytest_plugins); a plain
# `from bridge.testing import assert_parity` imports no pytest.
if "pytest" in sys.modules:
    import pytest as _pytest

    @_pytest.fixture
    def bridge_parity():
        """The assert_parity function: ``bridge_parity(target, source, atol=...)`` returns the Report
        or fails the test with the per-output table."""
        return assert_parity
