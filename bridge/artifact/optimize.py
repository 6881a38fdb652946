"""Export-time graph optimizations, applied to the exported file before it is checked and verified.

Levels:
  none         the exporter's graph as it is
  ort          ONNX Runtime's offline optimizer (basic + extended fusions), saved as the bundle's graph
  transformer  onnxscript's ONNX Runtime fusions for dynamo graphs (attention and multi-head attention,
               skip and RMS normalization, bias-GELU, rotary embeddings, grouped-query attention;
               bridge/frameworks/ort_fusion.py); what was fused is recorded. It replaces
               onnxruntime.transformers' optimizer, which fused no attention on these graphs

Each level writes contrib ops (com.microsoft) where it fuses: the bundle then needs ONNX Runtime, which
is what it is verified with. Unused operator-set imports that ONNX Runtime adds when it saves a graph
are dropped. Measurements per model: docs/benchmarks.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.errors import ConversionError, UsageError

LEVELS = ("none", "ort", "transformer")


def optimize_onnx(path: str | Path, level: str, threads: int | None = None) -> dict:
    """Rewrite the ONNX file at ``path`` in place; returns what was done, for the manifest."""
    if level not in LEVELS:
        raise UsageError(f"unknown --optimize level {level!r}", hint=f"use one of: {', '.join(LEVELS)}")
    if level == "none":
        return {"level": "none"}
    from bridge.frameworks import ort as _ort

    path = Path(path)
    tmp = path.with_name(path.stem + ".opt.onnx")
    try:
        if level == "ort":
            info = _ort.save_optimized(str(path), str(tmp), threads=threads)
        else:
            from bridge.frameworks.ort_fusion import fuse

            info = fuse(str(path), str(tmp))
        _drop_unused_opsets(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        if tmp.exists():
            tmp.unlink()
        if isinstance(exc, (ConversionError, UsageError)):
            raise
        raise ConversionError(
            f"--optimize {level} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from None
    return {"level": level, **info}


def _drop_unused_opsets(path: Path) -> None:
    """ONNX Runtime saves every domain it knows as an opset import (ai.onnx.training, org.pytorch.aten,
    ...); keep the default domain and the domains some node uses. Small graphs only: a graph with
    external data is left as it is."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return
    used = {""} | _domains(proto.graph.node)
    for fn in proto.functions:
        used |= _domains(fn.node) | {fn.domain}
    keep = [o for o in proto.opset_import if o.domain in used or o.domain == "ai.onnx"]
    if len(keep) == len(proto.opset_import):
        return
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    onnx.save(proto, str(path))


def _domains(nodes) -> set[str]:
    """Domains used by ``nodes`` and by the subgraphs of their attributes (If, Loop, Scan bodies)."""
    out = set()
    for n in nodes:
        out.add(n.domain)
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out |= _domains(g.node)
    return out
