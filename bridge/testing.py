"""Parity assertions for your own pytest suite.

    from bridge.testing import assert_parity

    def test_export_matches():
        assert_parity("bundles/my_model", "my_model.py:build", weights="model.pt", atol=1e-5)

or, as a fixture, after ``pytest_plugins = ["bridge.testing"]`` in your conftest.py::

    def test_export_matches(bridge_parity):
        report = bridge_parity("bundles/my_model", "my_model.py:build")

The verification runs in the test process (``bridge.verify.run_verify``), so the native framework is
imported there; use ``bridge check`` (subprocesses) to keep torch and TensorFlow apart. Nothing
heavy is imported until an assertion runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["assert_parity"]

# keyword arguments passed through to bridge.verify.VerifyOptions as they are
_PASS_THROUGH = ("framework", "dims", "seed", "policy_file", "allow_nonfinite", "min_top1", "latency_runs",
                 "threads", "trust_code")


def _tolerance_tokens(value, what: str) -> list[str]:
    """A number, a {output: number} mapping, or CLI-style tokens ("1e-5", "logits:1e-4")."""
    if value is None:
        return []
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, a mapping of output name -> number, or a list of tokens")
    if isinstance(value, (int, float)):
        return [repr(float(value))]
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{k}:{float(v)!r}" for k, v in value.items()]
    return [str(v) if isinstance(v, str) else repr(float(v)) for v in value]


def _ranges(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [f"{k}={v[0]}:{v[1]}" if isinstance(v, (tuple, list)) else f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str):
        return [value]
    return list(value)


def assert_parity(target, source=None, *, weights=None, atol=None, rtol=None, inputs=None, devices=("cpu",),
                  input_ranges=None, **kw):
    """Verify TARGET (a bundle directory or a .onnx file) against SOURCE (the native model) or, without
    SOURCE, against the bundle's golden outputs; return the Report when the verdict is pass, else raise
    AssertionError whose message holds the per-output table.

    atol / rtol: a number for every output, a mapping ``{output: number}``, or CLI-style tokens
    (``["1e-5", "logits:1e-4"]``). inputs: an .npz of real samples (needs SOURCE). input_ranges:
    ``{"ids": "0:1000"}`` or ``{"ids": (0, 1000)}``. Other keywords go to bridge.verify.VerifyOptions:
    framework, dims, seed, policy_file, allow_nonfinite, min_top1, latency_runs, threads, trust_code.
    Errors that stop verification before a verdict (a tampered bundle, a missing file) propagate as
    bridge.errors.BridgeError.
    """
    unknown = sorted(set(kw) - set(_PASS_THROUGH))
    if unknown:
        raise TypeError(f"assert_parity() got unexpected keyword argument(s): {', '.join(unknown)}; "
                        f"accepted: weights, atol, rtol, inputs, devices, input_ranges, {', '.join(_PASS_THROUGH)}")
    from bridge.report.terminal import render
    from bridge.verify import VerifyOptions, run_verify

    if isinstance(devices, str):
        devices = [devices]
    options = VerifyOptions(
        target=os.fspath(target), source=None if source is None else os.fspath(source), devices=list(devices),
        weights=None if weights is None else os.fspath(weights),
        inputs_npz=None if inputs is None else os.fspath(inputs),
        atol=_tolerance_tokens(atol, "atol"), rtol=_tolerance_tokens(rtol, "rtol"), ranges=_ranges(input_ranges),
        **{k: (os.fspath(v) if k == "policy_file" and v is not None else v) for k, v in kw.items()},
    )
    report = run_verify(options)
    if report.status != "pass":
        raise AssertionError(f"bridge parity {report.status.upper()} for {options.target}"
                             + (f" vs {options.source}" if options.source else " (golden outputs)")
                             + f": {report.reason}\n{render(report)}")
    return report


# The fixture exists where pytest is already loaded (a conftest.py, pytest_plugins); a plain
# `from bridge.testing import assert_parity` imports no pytest.
if "pytest" in sys.modules:
    import pytest as _pytest

    @_pytest.fixture
    def bridge_parity():
        """The assert_parity function: ``bridge_parity(target, source, atol=...)`` returns the Report
        or fails the test with the per-output table."""
        return assert_parity
