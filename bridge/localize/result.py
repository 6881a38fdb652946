"""The localization result (LocalizeResult) and the finding each comparison returns (Finding), with
the helpers that turn a finding into the result and its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.verdict.compare import OutputResult, fields_json, json_float
from bridge.verdict.policy import Tolerance

DIVERGED, NO_DIVERGENCE, UNAVAILABLE = "diverged", "no divergence found", "unavailable"
ORT_VS_REFERENCE, ONNX_VS_NATIVE = "ort-vs-reference", "onnx-vs-native"
_MAX_NOTES = 40


@dataclass(frozen=True)
class LocalizeResult:
    status: str  # diverged | no divergence found | unavailable
    engines: str | None = None  # ort-vs-reference | onnx-vs-native
    node: str | None = None  # the diverging node's name ("#<index>" when it has none)
    node_index: int | None = None  # its position in topological order
    op_type: str | None = None
    output: str | None = None  # the ONNX value that fails
    module: str | None = None  # the native module matched to it ("" is the root module)
    module_call: int | None = None  # which call of that module (0 = first)
    max_abs: float | None = None
    max_rel: float | None = None
    tolerance: Tolerance | None = None
    reason: str = ""
    compared: int = 0  # ONNX values compared, ONNX Runtime against the reference evaluator
    compared_native: int = 0  # module outputs compared, ONNX against the native framework
    reproduces: bool | None = None  # whether sub.onnx alone, on inputs.npz, mismatches expected.npz
    repro_dir: str | None = None
    comparison: OutputResult | None = None
    other: tuple = ()  # the other engine pair's finding, as JSON, when both found one
    notes: tuple = ()

    def to_json(self) -> dict:
        return fields_json(self)


@dataclass
class Finding:
    engines: str
    node_index: int
    output: str
    comparison: OutputResult
    sub_outputs: list  # the ONNX values the reproduction's sub-model returns
    inputs: dict  # the sub-model's input values
    expected: dict  # its expected outputs
    expected_from: str
    inputs_from: str
    module: str | None = None
    module_call: int | None = None
    allowed_nodes: set = field(default_factory=set)  # nodes the sub-model may hold


def diverged_result(model, f: Finding, compared1, compared2, other, notes, reproduces, repro_dir) -> LocalizeResult:
    c = f.comparison
    node = model.nodes[f.node_index]
    return LocalizeResult(
        DIVERGED,
        engines=f.engines,
        node=model.names[f.node_index],
        node_index=f.node_index,
        op_type=node.op_type if not node.domain else f"{node.domain}.{node.op_type}",
        output=f.output,
        module=f.module,
        module_call=f.module_call,
        max_abs=c.max_abs,
        max_rel=c.max_rel,
        tolerance=c.tolerance,
        reason=c.reason,
        compared=compared1,
        compared_native=compared2,
        reproduces=reproduces,
        repro_dir=repro_dir,
        comparison=c,
        other=other,
        notes=tuple(cap_notes(notes)),
    )


def finding_json(model, f: Finding) -> dict:
    c = f.comparison
    return {
        "engines": f.engines,
        "node": model.names[f.node_index],
        "node_index": f.node_index,
        "op_type": model.nodes[f.node_index].op_type,
        "output": f.output,
        "module": f.module,
        "module_call": f.module_call,
        "max_abs": json_float(c.max_abs),
        "max_rel": json_float(c.max_rel),
        "reason": c.reason,
    }


def cap_notes(notes: list) -> list:
    out = list(dict.fromkeys(notes))
    if len(out) > _MAX_NOTES:
        out = out[:_MAX_NOTES] + [f"... {len(out) - _MAX_NOTES} more notes"]
    return out
