"""The comparison must pass a correct candidate and fail every corruption, for the stated reason.

This file is the mutation suite for compare.py: any change to the comparison must keep it green.
"""

import json

import numpy as np
import pytest

from bridge.request import TolSpec
from bridge.verdict.compare import FAIL, INCONCLUSIVE, PASS, compare_outputs, outputs_equal, summarize, verdict
from bridge.verdict.policy import Policy, build_policy

RNG = np.random.default_rng(0)
REF = {
    "logits": RNG.standard_normal((4, 10)).astype(np.float32),
    "score": RNG.standard_normal((4, 1)).astype(np.float32),
    "ids": np.arange(8, dtype=np.int64).reshape(4, 2),
}


def run(cand, policy=None, ref=None):
    results = compare_outputs(ref or REF, cand, policy or Policy())
    return {r.name: r for r in results}, verdict(results)


def test_identical_and_rounding_level_noise_pass():
    noisy = {
        k: (v + np.float32(1e-7) * np.sign(v)).astype(v.dtype) if v.dtype.kind == "f" else v.copy()
        for k, v in REF.items()
    }
    res, v = run(noisy)
    assert v == PASS
    assert res["logits"].max_abs < 1e-6 and res["logits"].needed_atol == 0.0


def test_perturbed_values_fail_with_numbers():
    cand = dict(REF, logits=REF["logits"] * np.float32(1.02))
    res, v = run(cand)
    assert v == FAIL and res["logits"].status == FAIL and res["score"].status == PASS
    assert "outside atol" in res["logits"].reason
    assert res["logits"].max_abs > 1e-3 and res["logits"].fail_fraction > 0.5
    # the smallest tolerances that would have passed are consistent with the errors
    assert build_policy({}, TolSpec(res["logits"].needed_atol * 1.0001)) is not None
    again, v2 = run(cand, build_policy({}, TolSpec(None, {"logits": res["logits"].needed_atol * 1.001})))
    assert again["logits"].status == PASS and v2 == PASS


def test_swapped_outputs_fail():
    ref = {"a": REF["logits"][:, :5].copy(), "b": REF["logits"][:, 5:].copy()}
    res, v = run({"a": ref["b"], "b": ref["a"]}, ref=ref)
    assert v == FAIL and res["a"].status == FAIL and res["b"].status == FAIL


def test_missing_and_extra_outputs_fail_never_truncated():
    cand = {k: v for k, v in REF.items() if k != "score"}
    res, v = run(cand)
    assert v == FAIL and "missing" in res["score"].reason
    res, v = run(dict(REF, extra=np.zeros(3, np.float32)))
    assert v == FAIL and "extra" in res["extra"].reason


@pytest.mark.parametrize(
    "ref_shape,cand_shape", [((1, 3), (3, 1)), ((0, 3), (1, 3)), ((4, 10), (10, 4)), ((2,), (2, 1))]
)
def test_shapes_must_match_exactly_no_broadcasting(ref_shape, cand_shape):
    ref = {"y": np.ones(ref_shape, np.float32)}
    cand = {"y": np.ones(cand_shape, np.float32)}
    if ref_shape != (4, 10):
        assert np.allclose(ref["y"], cand["y"])  # numpy broadcasts these and says "close"
    res, v = run(cand, ref=ref)
    assert v == FAIL and res["y"].reason.startswith("shape")


def test_dtype_mismatch_fails():
    res, v = run(dict(REF, ids=REF["ids"].astype(np.int32)))
    assert v == FAIL and res["ids"].reason.startswith("dtype")


def test_int64_compared_as_integers():
    ref = {"n": np.array([2**62, 5], np.int64)}
    assert np.allclose(ref["n"], np.array([2**62 + 1, 5]))  # what a float comparison would say
    res, v = run({"n": np.array([2**62 + 1, 5], np.int64)}, ref=ref)
    assert v == FAIL and "exact" in res["n"].reason
    res, v = run({"n": ref["n"].copy()}, ref=ref)
    assert v == PASS


def test_bools_exact():
    ref = {"m": np.array([True, False, True])}
    assert run({"m": np.array([True, True, True])}, ref=ref)[1] == FAIL
    assert run({"m": ref["m"].copy()}, ref=ref)[1] == PASS


def test_nan_fails_by_default_even_when_both_sides_agree():
    ref = {"y": np.array([1.0, np.nan, 3.0], np.float32)}
    res, v = run({"y": ref["y"].copy()}, ref=ref)
    assert v == FAIL and "non-finite" in res["y"].reason
    res, v = run({"y": np.array([1.0, 2.0, np.nan], np.float32)}, ref={"y": np.array([1.0, 2.0, 3.0], np.float32)})
    assert v == FAIL and "non-finite" in res["y"].reason


def test_nonfinite_allowed_only_at_the_same_positions():
    allow = Policy(allow_nonfinite=True)
    ref = {"y": np.array([1.0, np.nan, np.inf, -2.0], np.float32)}
    assert run({"y": ref["y"].copy()}, allow, ref)[1] == PASS
    assert run({"y": np.array([1.0, np.nan, -np.inf, -2.0], np.float32)}, allow, ref)[1] == FAIL
    assert run({"y": np.array([np.nan, 1.0, np.inf, -2.0], np.float32)}, allow, ref)[1] == FAIL


def test_vacuous_references_are_inconclusive_not_pass():
    zeros = {"y": np.zeros((4, 10), np.float32)}
    res, v = run({"y": np.full((4, 10), 1e-6, np.float32)}, ref=zeros)
    assert v == INCONCLUSIVE and "all zeros" in res["y"].reason
    tiny = {"y": (RNG.standard_normal((4, 10)) * 1e-10).astype(np.float32)}
    res, v = run({"y": np.zeros((4, 10), np.float32)}, ref=tiny)
    assert v == INCONCLUSIVE and "below atol" in res["y"].reason
    const = {"y": np.full((4, 10), 0.001, np.float32)}
    res, v = run({"y": const["y"].copy()}, ref=const)
    assert v == INCONCLUSIVE and "constant" in res["y"].reason
    # a vacuous reference never hides a real failure
    res, v = run({"y": np.full((4, 10), 0.5, np.float32)}, ref=zeros)
    assert v == FAIL


def test_top1_agreement_reported_and_enforced():
    ref = {"logits": np.array([[1.0, 1.00001], [3.0, 0.0]], np.float32)}
    cand = {"logits": np.array([[1.00001, 1.0], [3.0, 0.0]], np.float32)}
    res, v = run(cand, ref=ref)
    assert v == PASS and res["logits"].top1_agreement == 0.5
    res, v = run(cand, Policy(min_top1_agreement=1.0), ref)
    assert v == FAIL and "top-1" in res["logits"].reason


def test_summary_keeps_failures_across_cases_and_report_is_json():
    good = compare_outputs(REF, REF, Policy(), case="a")
    bad = compare_outputs(REF, dict(REF, score=REF["score"] + 1), Policy(), case="b")
    summary = summarize(good + bad)
    assert summary["score"].status == FAIL and summary["score"].case == "b"
    assert verdict(good + bad) == FAIL
    json.dumps([r.to_json() for r in good + bad])  # inf/nan written as strings, never invalid JSON


def test_outputs_equal_detects_nondeterminism():
    assert outputs_equal(REF, {k: v.copy() for k, v in REF.items()}) == []
    assert outputs_equal(REF, dict(REF, score=REF["score"] + 1e-7)) == ["score"]
