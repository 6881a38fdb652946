"""``--labels``: class labels of the real samples, checked against the classifier outputs they score.

A label outside ``0..C-1`` for an output of C classes can never equal an argmax: both sides score 0%
on it, and a report that shows "accuracy 0% / 0%" beside PASS misleads. Labels are checked once the
native model's outputs on the samples are known (only then is C known): labels that fit no classifier
output are refused (exit 2, naming how many are out of range, which values and rows, and the classes);
where the model has several classifier outputs and the labels fit some of them, accuracy is reported
for those only, with a note.
"""

from __future__ import annotations

import numpy as np

from bridge.errors import InputError


def classifier_outputs(reference: dict, rows: int) -> dict[str, int]:
    """Outputs shaped like class scores for ``rows`` samples, (rows, C) float with C >= 2: name -> C."""
    out = {}
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if ref.ndim == 2 and ref.shape[0] == rows and ref.shape[1] >= 2 and ref.dtype.kind == "f":
            out[name] = int(ref.shape[1])
    return out


def out_of_range(labels: np.ndarray, classes: int) -> np.ndarray:
    """Row indices of labels outside 0..classes-1."""
    labels = np.asarray(labels)
    return np.flatnonzero((labels < 0) | (labels >= classes))


def check_labels(labels: np.ndarray | None, reference: dict, path) -> tuple[set, list[str]]:
    """(outputs the labels fit, notes); InputError when classifier outputs exist and the labels fit none."""
    if labels is None:
        return set(), []
    labels = np.asarray(labels)
    outputs = classifier_outputs(reference, int(labels.shape[0]))
    bad = {name: out_of_range(labels, c) for name, c in outputs.items()}
    fit = {name for name, rows in bad.items() if rows.size == 0}
    if outputs and not fit:
        name, c = min(outputs.items(), key=lambda kv: bad[kv[0]].size)
        rows = bad[name]
        shown = ", ".join(f"{int(labels[i])} (row {int(i)})" for i in rows[:5]) + (", ..." if rows.size > 5 else "")
        where = (
            f"output {name!r} has {c} classes"
            if len(outputs) == 1
            else f"the classifier outputs have {sorted(set(outputs.values()))} classes"
        )
        raise InputError(
            f"labels file {path}: {rows.size} of {labels.size} labels lie outside 0..{c - 1} ({where}): {shown}",
            hint="labels are class indices of the model's output, one per sample: check that the file belongs to "
            "these samples and this model",
        )
    notes = [
        f"--labels {path}: accuracy not reported for {name} ({outputs[name]} classes): {bad[name].size} labels "
        f"lie outside 0..{outputs[name] - 1}"
        for name in sorted(set(outputs) - fit)
    ]
    return fit, notes


def scoped(metrics: dict, labels, reference: dict, path, notes: list) -> dict:
    """Dataset metrics with accuracy kept only for the outputs the labels fit; refuses labels that fit
    no classifier output (``check_labels``); its notes are added to ``notes``."""
    fit, more = check_labels(labels, reference, path)
    for name, entry in metrics.items():
        if name not in fit:
            entry.pop("accuracy_native", None)
            entry.pop("accuracy_onnx", None)
    for note in more:
        if note not in notes:
            notes.append(note)
    return metrics
