"""Locate the first divergence: on a parity failure, the first ONNX node whose output goes wrong.

Two comparisons, both over the graph's values in topological order:

* ``ort-vs-reference`` (always): ONNX Runtime (CPU, graph optimizations disabled so that every
  intermediate keeps its name) against onnx's reference evaluator. ONNX Runtime runs the model with
  at most ``chunk_size`` intermediates exposed as outputs per session (the graph cut after the
  chunk's last node); the reference evaluator runs node by node and drops each value after its last
  consumer, so neither side holds every activation at once. A node the reference evaluator cannot
  run is recorded in the notes and ONNX Runtime's values stand in for its outputs downstream.
* ``onnx-vs-native`` (when ``native`` is a bridge TorchModel): the outputs of the torch module's
  named submodules (forward hooks) against the ONNX values they correspond to. The torch.onnx
  dynamo exporter writes, per node, ``pkg.torch.onnx.name_scopes`` (the module path, then the FX
  node name); a module call corresponds to one contiguous run of nodes inside its scope, and its
  output to the last node of that run.

The first failing comparison (by the failing node's position in the graph) is the divergence. With
``out_dir``, a minimal reproduction is written there atomically: ``sub.onnx`` (the diverging node,
or the diverging module's nodes, cut out with onnx.utils.Extractor), ``inputs.npz``,
``expected.npz``, ``README.txt`` (the command that shows the mismatch) and ``localize.json``.
See docs/localize.md. Nothing here prints; bad arguments raise bridge.errors exceptions.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace

from bridge.errors import UsageError
from bridge.localize.engines import OrtChunks, check_optimizations, ort_vs_reference
from bridge.localize.model import FX_KEY, SCOPES_KEY, Model, Unavailable
from bridge.localize.native import onnx_vs_native
from bridge.localize.repro import REPRO_FILES, check_out_dir, extract_sub_model, reproduces, write_repro
from bridge.localize.result import (
    DIVERGED,
    NO_DIVERGENCE,
    ONNX_VS_NATIVE,
    ORT_VS_REFERENCE,
    UNAVAILABLE,
    LocalizeResult,
    cap_notes,
    diverged_result,
    finding_json,
)
from bridge.verdict.policy import Policy

__all__ = [
    "DIVERGED",
    "FX_KEY",
    "NO_DIVERGENCE",
    "ONNX_VS_NATIVE",
    "ORT_VS_REFERENCE",
    "REPRO_FILES",
    "SCOPES_KEY",
    "UNAVAILABLE",
    "LocalizeResult",
    "localize",
]


def localize(
    model_path: str,
    feeds: dict,
    policy: Policy,
    out_dir: str | None,
    native=None,
    chunk_size: int = 64,
    *,
    reference_ops=(),
) -> LocalizeResult:
    """Find the first ONNX node whose output diverges; write a reproduction under ``out_dir``.

    ``feeds``: the model's inputs by name (numpy arrays); ``native``: a bridge TorchModel to match
    module outputs against (other native models are noted and skipped); ``chunk_size``: at most this
    many intermediates exposed per ONNX Runtime session; ``reference_ops``: extra OpRun classes for
    the reference evaluator (ops it lacks, or overrides), passed to it as ``new_ops``."""
    if not isinstance(policy, Policy):
        raise UsageError(f"localize needs a bridge Policy, got {type(policy).__name__}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise UsageError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    target = check_out_dir(out_dir) if out_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="bridge-localize-") as tmp:
        model = Model(model_path, tmp)
        feeds = model.check_feeds(feeds)
        notes: list[str] = []
        ort_side = OrtChunks(model, feeds)
        found1, compared1, ran1 = ort_vs_reference(
            model, feeds, policy, chunk_size, ort_side, notes, tuple(reference_ops)
        )
        found2, compared2 = None, 0
        if native is not None:
            found2, compared2 = onnx_vs_native(model, feeds, policy, chunk_size, ort_side, native, notes)
        findings = [f for f in (found1, found2) if f is not None]
        if not findings:
            status = NO_DIVERGENCE if compared1 + compared2 else UNAVAILABLE
            if status == NO_DIVERGENCE:
                check_optimizations(model, ort_side, policy, notes)
            elif not ran1:
                notes.append("nothing could be compared: ONNX Runtime did not run the graph")
            if target is not None:
                notes.append("no reproduction written: nothing diverged")
            return LocalizeResult(status, compared=compared1, compared_native=compared2, notes=tuple(cap_notes(notes)))
        # Both engine pairs may find one: the earlier node in the graph is the first divergence.
        findings.sort(key=lambda f: (f.node_index, f.engines != ORT_VS_REFERENCE))
        primary = findings[0]
        other = tuple(finding_json(model, f) for f in findings[1:])
        sub, reproduced = None, None
        try:
            sub = extract_sub_model(model, primary)
            reproduced = reproduces(sub, primary, policy, model.output_names)
        except Unavailable as exc:
            notes.append(f"no reproduction: {exc}")
        if reproduced is False:
            notes.append(
                "the sub-model alone does not reproduce the mismatch: the diverging node turns small differences "
                "at its inputs (within tolerance) into a large one at its output"
                if primary.engines == ORT_VS_REFERENCE
                else f"the sub-model alone does not reproduce the mismatch: on inputs from {primary.inputs_from} it "
                "matches the native output, so the difference comes from its inputs or is amplified by it"
            )
        result = diverged_result(model, primary, compared1, compared2, other, notes, reproduced, None)
        if target is not None and sub is not None:
            result = replace(result, repro_dir=str(target.absolute()))
            write_repro(target, sub, primary, result, model)
        return result
