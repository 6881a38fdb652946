"""Detections are compared as sets: a correct export with reordered near-ties passes, a wrong head fails."""

import numpy as np

from bridge.verdict.compare import FAIL, INCONCLUSIVE, PASS, compare_outputs
from bridge.verdict.policy import build_policy


def _dets(n=20, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, size=(n, 2))
    wh = rng.uniform(10, 60, size=(n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = np.sort(rng.uniform(0.05, 0.95, size=n))[::-1].astype(np.float32)
    labels = rng.integers(1, 5, size=n).astype(np.int64)
    return {"boxes": boxes, "scores": scores, "labels": labels}


def _check(ref, cand):
    (r,) = compare_outputs(ref, cand, build_policy())
    return r


def test_reordered_detections_with_rounding_pass_as_a_set():
    ref = _dets()
    order = np.random.default_rng(1).permutation(20)
    cand = {k: v[order].copy() for k, v in ref.items()}
    cand["boxes"] += np.float32(1e-4)
    r = _check(ref, cand)
    assert r.status == PASS and r.name == "detections" and "order-insensitive" in r.rule


def test_membership_may_differ_only_at_the_score_cut_off():
    ref = _dets()
    cand = {k: v[:-1].copy() for k, v in ref.items()}  # the lowest-scoring detection fell below the cut-off
    extra = _dets(1, seed=7)
    extra["scores"][:] = ref["scores"][-1] - np.float32(1e-6)  # one more kept just at the cut-off
    cand_extra = {k: np.concatenate([ref[k], extra[k]]) for k in ref}
    assert _check(ref, cand).status == PASS
    assert _check(ref, cand_extra).status == PASS
    missing_top = {k: v[1:].copy() for k, v in ref.items()}  # the most confident detection is gone
    r = _check(ref, missing_top)
    assert r.status == FAIL and "without a partner" in r.reason


def test_a_wrong_detection_head_fails():
    ref = _dets()
    shifted = {k: v.copy() for k, v in ref.items()}
    shifted["boxes"][:, [0, 2]] += 5.0  # box regression off by 5 pixels: still overlapping, not equal
    r = _check(ref, shifted)
    assert r.status == FAIL and "box error 5" in r.reason
    relabelled = {k: v.copy() for k, v in ref.items()}
    relabelled["labels"] = (relabelled["labels"] % 4) + 1
    assert _check(ref, relabelled).status == FAIL
    rescored = {k: v.copy() for k, v in ref.items()}
    rescored["scores"] = rescored["scores"] * np.float32(0.9)
    assert _check(ref, rescored).status == FAIL


def test_tied_scores_are_inconclusive_not_a_failure():
    ref = _dets()
    ref["scores"][:] = np.float32(1 / 91)
    cand = {k: v[::-1].copy() for k, v in ref.items()}
    cand["labels"] = cand["labels"][::-1].copy()  # arbitrary survivors on the other side
    r = _check(ref, cand)
    assert r.status == INCONCLUSIVE and "tied" in r.reason


def test_groups_are_recognised_under_a_prefix_and_other_outputs_compared_as_usual():
    ref = {f"output_0.{k}": v for k, v in _dets().items()}
    ref["features"] = np.arange(6, dtype=np.float32)
    cand = dict(ref, features=ref["features"] + 1)
    results = {r.name: r for r in compare_outputs(ref, cand, build_policy())}
    assert set(results) == {"output_0.detections", "features"}
    assert results["output_0.detections"].status == PASS and results["features"].status == FAIL
