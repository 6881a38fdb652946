"""Readable names in an exported graph: tf2onnx names every unknown axis ``unk__N`` (the batch axis of
the inputs and outputs included) and stamps ``1.17.0 None`` as its version. Here the inputs' dynamic
axes take the names the user declared (``batch``), ONNX shape inference carries them to the outputs,
and an output axis still unknown is named after its output (``probs_d0``). Only names change: no node,
no weight (external weights stay where they are)."""

from __future__ import annotations

import re

_TOOL_NAME = re.compile(r"^unk__\d+$")


def tidy(path: str, specs) -> bool:
    """Rewrite ``path`` with readable axis names and producer version; True if anything changed."""
    import onnx

    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - the artifact step reports an unreadable file
        return False
    g = proto.graph
    changed = False
    declared = {s.name: s for s in specs}
    for value in g.input:
        spec = declared.get(value.name)
        if spec is None or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(spec.dims):
            continue
        for d, want in zip(dims, spec.dims):
            if isinstance(want, str) and not d.HasField("dim_value") and d.dim_param != want:
                d.dim_param = want
                changed = True
    for value in list(g.value_info) + list(g.output):
        for d in value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else ():
            if _TOOL_NAME.match(d.dim_param):
                d.Clear()
                changed = True
    if changed:
        inferred = _inferred_outputs(proto)
        for value in g.output:
            if not value.type.HasField("tensor_type"):
                continue
            got = inferred.get(value.name)
            for axis, d in enumerate(value.type.tensor_type.shape.dim):
                if d.HasField("dim_value") or d.dim_param:
                    continue
                name = got[axis] if got is not None and axis < len(got) else None
                d.dim_param = name if isinstance(name, str) and name else f"{value.name}_d{axis}"
    if proto.producer_version.endswith(" None"):  # tf2onnx's version and its missing git hash
        proto.producer_version = proto.producer_version[: -len(" None")]
        changed = True
    if changed:
        onnx.save_model(proto, path)
    return changed


def _inferred_outputs(proto) -> dict:
    """Output dims after ONNX shape inference (a dim_param it carried over, or None)."""
    import onnx
    from onnx import shape_inference

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    try:
        inferred = shape_inference.infer_shapes(copy, strict_mode=False)
    except Exception:  # noqa: BLE001 - names only: an axis inference cannot name is named after its output
        return {}
    out = {}
    for value in inferred.graph.output:
        if not value.type.HasField("tensor_type"):
            continue
        dims = []
        for d in value.type.tensor_type.shape.dim:
            dims.append(d.dim_param if d.dim_param and not _TOOL_NAME.match(d.dim_param) else None)
        out[value.name] = dims
    return out
