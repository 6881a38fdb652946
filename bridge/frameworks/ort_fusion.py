"""ONNX Runtime's transformer fusions for the graphs torch.onnx's dynamo exporter writes, by onnxscript's
rewriter (``onnxscript.rewriter.ort_fusions.optimize_for_ort``): scaled dot-product attention into
``MultiHeadAttention`` / ``Attention`` / ``GroupQueryAttention``, layer and RMS normalization with their
residual adds into ``SkipLayerNormalization`` / ``SkipSimplifiedLayerNormalization``, ``BiasGelu`` and
``FastGelu``, rotary embeddings, all com.microsoft operators that ONNX Runtime runs with its own kernels.

onnxruntime.transformers' optimizer (the ``transformer`` level before this one) matches the graphs of the
TorchScript exporter and fused no attention at all on dynamo graphs (docs/benchmarks.md); onnxscript's
rewriter is written for them. The rewritten graph is verified like any export: these fusions change
rounding only (measured on BERT-base: outputs within 3.4e-6 of the unfused graph).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


def versions() -> dict:
    from importlib.metadata import version

    return {"onnxscript": version("onnxscript")}


def fuse(src: str | Path, dst: str | Path, pack_qkv: bool = True) -> dict:
    """Apply the fusions to the ONNX file ``src`` and write the result to ``dst``. Returns what was
    done for the manifest: the rewriter, the count of each fusion applied (those above zero), and the
    node counts before and after. Raises whatever the rewriter raises.

    ``pack_qkv=False`` leaves the query, key and value projections as three MatMuls in front of
    ``MultiHeadAttention`` instead of packing them into ``Attention``: onnxruntime.quantization turns
    ``Attention`` into ``QAttention`` only without ``qkv_hidden_sizes`` and without an attention bias
    (which QAttention has no input for), so a graph to be quantized keeps them apart. The weights the
    rewriter concatenates are folded into initializers (a quantizer only quantizes constant weights)."""
    import onnx
    from onnxscript import ir
    from onnxscript.rewriter.ort_fusions import _core

    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    src, dst = Path(src), Path(dst)
    proto = onnx.load(str(src), load_external_data=True)
    before = len(proto.graph.node)
    model = ir.serde.deserialize_model(proto)
    del proto
    with _attention_packing(_core, pack_qkv):
        model, counts = _core.optimize_for_ort(model)
    fused = {k: int(v) for k, v in sorted(counts.items()) if v}
    out = ir.serde.serialize_model(model)
    del model
    folded = fold_constant_concats(out)
    repaired = gemms_after_attention(out)
    after = len(out.graph.node)
    if out.ByteSize() > (2 << 30) - (64 << 20):  # a protobuf above 2 GB cannot be saved in one file
        onnx.save(out, str(dst), save_as_external_data=True, location=dst.name + ".data")
    else:
        onnx.save(out, str(dst))
    return {
        "optimizer": f"onnxscript {versions()['onnxscript']} rewriter.ort_fusions.optimize_for_ort"
        + ("" if pack_qkv else " (q/k/v projections not packed)"),
        "fused": fused,
        "weights_folded": folded,
        **({"gemms_after_attention_as_matmul": repaired} if repaired else {}),
        "nodes_before": before,
        "nodes_after": after,
    }


@contextlib.contextmanager
def _attention_packing(core, pack: bool):
    """optimize_for_ort with or without its last attention step (MultiHeadAttention with its three
    projections into one packed Attention)."""
    if pack:
        yield
        return
    original = core.fuse_attention
    core.fuse_attention = lambda model, debug=False: 0
    try:
        yield
    finally:
        core.fuse_attention = original


def fold_constant_concats(proto) -> int:
    """Concat nodes whose every input is an initializer become one initializer (the rewriter packs q, k
    and v weights with a Concat); returns how many were folded. In place."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    keep, folded = [], 0
    for node in proto.graph.node:
        if (
            node.op_type == "Concat"
            and node.domain in ("", "ai.onnx")
            and node.input
            and all(i in inits for i in node.input)
        ):
            axis = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis")
            value = np.concatenate([numpy_helper.to_array(inits[i]) for i in node.input], axis=axis)
            tensor = numpy_helper.from_array(value, node.output[0])
            proto.graph.initializer.append(tensor)
            inits[tensor.name] = tensor
            folded += 1
        else:
            keep.append(node)
    if folded:
        del proto.graph.node[:]
        proto.graph.node.extend(keep)
        used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
        kept = [t for t in proto.graph.initializer if t.name in used]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)
    return folded


ATTENTION_OPS = ("MultiHeadAttention", "Attention", "GroupQueryAttention")


def gemms_after_attention(proto) -> int:
    """Gemm nodes fed straight by a fused attention node become MatMul (+ Add). The rewriter's attention
    fusion (onnxscript 0.7.2) consumes the Reshape to two dimensions in front of an output projection
    written as Gemm (GPT-2's Conv1D): the Gemm then gets the attention's three-dimensional output, which
    ONNX Runtime refuses. MatMul takes any rank and computes the same products. In place; returns how
    many were rewritten."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    producer = {o: n for n in proto.graph.node for o in n.output}
    inits = {t.name: t for t in proto.graph.initializer}
    nodes, count, stale = [], 0, set()
    for node in proto.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        feeder = producer.get(node.input[0]) if node.op_type == "Gemm" and node.input else None
        if (
            feeder is None
            or feeder.domain != "com.microsoft"
            or feeder.op_type not in ATTENTION_OPS
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or (attrs.get("transB", 0) and node.input[1] not in inits)
        ):
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):
            weight = f"{weight}__transposed"
            if weight not in inits:
                inits[weight] = numpy_helper.from_array(
                    np.ascontiguousarray(numpy_helper.to_array(inits[node.input[1]]).T), weight
                )
                proto.graph.initializer.append(inits[weight])
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        product = f"{node.output[0]}__matmul" if bias else node.output[0]
        nodes.append(onnx.helper.make_node("MatMul", [node.input[0], weight], [product], name=f"{node.name}__matmul"))
        if bias:
            scaled = bias
            if attrs.get("beta", 1.0) != 1.0:
                beta = numpy_helper.from_array(np.array(attrs["beta"], np.float32), f"{node.name}__beta")
                proto.graph.initializer.append(beta)
                scaled = f"{node.name}__scaled_bias"
                nodes.append(onnx.helper.make_node("Mul", [bias, beta.name], [scaled], name=f"{node.name}__beta"))
            nodes.append(onnx.helper.make_node("Add", [product, scaled], [node.output[0]], name=f"{node.name}__bias"))
        stale |= {node.input[0], node.output[0], product}
        count += 1
    if count:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        # the shapes recorded for the attention outputs and the products were the two-dimensional ones
        kept = [vi for vi in proto.graph.value_info if vi.name not in stale]
        del proto.graph.value_info[:]
        proto.graph.value_info.extend(kept)
    return count


def fused_ops(path: str | Path) -> dict:
    """com.microsoft operators in a graph, by type (what a fused graph holds)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        if node.domain == "com.microsoft":
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return dict(sorted(ops.items()))
