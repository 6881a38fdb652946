"""Detection outputs compared the way their users judge them. Pure numpy.

A detector's outputs after score sorting and non-maximum suppression are a set: ``boxes`` [N, 4],
``scores`` [N] and ``labels`` [N] (torchvision's detection models, in a dict or a list of dicts).
Rounding differences between runtimes reorder near-tied detections and move membership at the
cut-offs (the top-k limit, the score threshold), so an element-by-element comparison fails a correct
export. The rule here, reported as its own:

* detections are paired across the two sides greedily, highest reference score first, each with the
  unpaired candidate of the same label whose box overlaps it most (IoU at least ``MIN_IOU``);
* a pair must pass the element test on its four box coordinates and its score (the policy's
  tolerance for the output's dtype and device);
* a detection without a partner is excused only in the tail, where cut-offs act: its score is within
  the score tolerance of the lowest score either side kept; anywhere else it fails;
* when every reference score lies within the score tolerance of every other (random weights: each of
  91 classes at about 1/91), the order and membership of detections are arbitrary on both sides and
  nothing can be compared: inconclusive.

A group is recognised by its names (``boxes``, ``scores`` and ``labels`` under one prefix) or, where a
model returns a tuple, by its structure: three consecutive outputs, a float [N, 4], a float [N] and an
integer [N] with the same N (``structural``). A wrong detection head still fails: its boxes or scores leave the tolerance, or its
detections find no partner above the tail.
"""

from __future__ import annotations

import numpy as np

MIN_IOU = 0.5
PARTS = ("boxes", "scores", "labels")


def groups(names) -> dict[str, tuple[str, str, str]]:
    """prefix -> (boxes, scores, labels) output names, for every complete group among ``names``."""
    names = set(names)
    found = {}
    for name in names:
        if name == "boxes" or name.endswith(".boxes"):
            prefix = name[: -len("boxes")]
            trio = tuple(prefix + p for p in PARTS)
            if all(t in names for t in trio):
                found[prefix] = trio
    return found


def structural(arrays: dict) -> dict[str, tuple[str, str, str]]:
    """Detection groups recognised by shape among outputs in their order (a tuple (boxes, scores,
    labels) comes out as output_0, output_1, output_2): key -> the three names."""
    names = list(arrays)
    found = {}
    i = 0
    while i + 2 < len(names):
        b, s, lab = (np.asarray(arrays[n]) for n in names[i : i + 3])
        if (
            b.ndim == 2
            and b.shape[1:] == (4,)
            and b.dtype.kind == "f"
            and s.ndim == 1
            and s.dtype.kind == "f"
            and lab.ndim == 1
            and lab.dtype.kind in "iu"
            and b.shape[0] == s.shape[0] == lab.shape[0]
            and bool(np.all(b[:, 2] >= b[:, 0]) and np.all(b[:, 3] >= b[:, 1]))  # boxes: x1 <= x2, y1 <= y2
            and bool(np.all((s >= 0) & (s <= 1)))
        ):  # scores: probabilities
            found[names[i] + ":"] = tuple(names[i : i + 3])
            i += 3
            continue
        i += 1
    return found


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(others) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def compare(ref: dict, cand: dict, box_tol, score_tol) -> dict:
    """Match one group. ``ref``/``cand``: {"boxes", "scores", "labels"} arrays. ``*_tol``: Tolerance.
    Returns {status, reason, pairs, unpaired_ref, unpaired_cand, excused, max_box_err, max_score_err}."""
    rb, rs, rl = (np.asarray(ref[p]) for p in PARTS)
    cb, cs, cl = (np.asarray(cand[p]) for p in PARTS)
    if (
        rb.ndim != 2
        or rb.shape[-1] != 4
        or cb.ndim != 2
        or cb.shape[-1] != 4
        or rs.shape != rb.shape[:1]
        or cs.shape != cb.shape[:1]
        or rl.shape != rs.shape
        or cl.shape != cs.shape
    ):
        return {
            "status": "fail",
            "reason": f"shape: detections must be boxes [N, 4], scores [N], labels [N]; reference "
            f"{rb.shape}/{rs.shape}/{rl.shape}, ONNX {cb.shape}/{cs.shape}/{cl.shape}",
        }
    rb, cb = rb.astype(np.float64), cb.astype(np.float64)
    rs, cs = rs.astype(np.float64), cs.astype(np.float64)
    score_band = lambda s: score_tol.atol + score_tol.rtol * abs(s)  # noqa: E731
    if rs.size >= 2 and float(rs.max() - rs.min()) <= score_band(float(rs.max())):
        return {
            "status": "inconclusive",
            "reason": (
                f"vacuous: all {rs.size} reference scores are tied ({float(rs.min()):.6g}..{float(rs.max()):.6g}): which "
                "detections survive and in what order is arbitrary on both sides; use trained weights or real images"
            ),
        }
    box_scale = float(np.abs(rb).max()) if rb.size else 0.0
    box_atol = box_tol.atol + box_tol.scale_atol * box_scale
    used = np.zeros(len(cb), bool)
    pairs, unpaired_ref, bad = [], [], []
    max_box, max_score = 0.0, 0.0
    for i in np.argsort(-rs, kind="stable"):
        free = np.flatnonzero(~used & (cl == rl[i]))
        if free.size:
            ious = _iou(rb[i], cb[free])
            j = int(free[int(np.argmax(ious))])
            if float(ious.max()) >= MIN_IOU:
                used[j] = True
                box_err = np.abs(cb[j] - rb[i])
                score_err = abs(cs[j] - rs[i])
                max_box, max_score = max(max_box, float(box_err.max())), max(max_score, score_err)
                if (box_err > box_atol + box_tol.rtol * np.abs(rb[i])).any() or score_err > score_band(rs[i]):
                    bad.append((int(i), j, float(box_err.max()), score_err))
                pairs.append((int(i), j))
                continue
        unpaired_ref.append(int(i))
    unpaired_cand = [int(j) for j in np.flatnonzero(~used)]
    floor = min(float(rs.min()) if rs.size else np.inf, float(cs.min()) if cs.size else np.inf)
    tail = lambda s: s <= floor + score_band(floor)  # noqa: E731
    loose = [("reference", i, rs[i]) for i in unpaired_ref if not tail(rs[i])]
    loose += [("ONNX", j, cs[j]) for j in unpaired_cand if not tail(cs[j])]
    excused = len(unpaired_ref) + len(unpaired_cand) - len(loose)
    out = {
        "pairs": len(pairs),
        "unpaired_ref": len(unpaired_ref),
        "unpaired_cand": len(unpaired_cand),
        "excused": excused,
        "max_box_err": max_box,
        "max_score_err": max_score,
        "box_atol": box_atol,
    }
    if bad:
        i, j, be, se = max(bad, key=lambda b: b[2])
        out.update(
            status="fail",
            reason=(
                f"detections: {len(bad)} of {len(pairs)} paired detections differ beyond tolerance; worst: reference #{i} "
                f"(label {rl[i]}, score {rs[i]:.6g}) vs ONNX #{j}: box error {be:.3g} (atol {box_atol:.3g}), score error "
                f"{se:.3g}"
            ),
        )
    elif loose:
        side, k, score = loose[0]
        out.update(
            status="fail",
            reason=(
                f"detections: {len(loose)} detection(s) without a partner above the cut-off tail; first: {side} #{k} "
                f"(score {score:.6g}, tail ends at {floor + score_band(floor):.6g}); {len(pairs)} paired"
            ),
        )
    else:
        out.update(status="pass", reason="")
    return out
