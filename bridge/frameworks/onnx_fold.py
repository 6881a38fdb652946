"""Fold layout operations on streamed weights into the weights themselves.

Weights that stay out of the converter's graph (graph inputs while it converts, streamed initializers
afterwards: see tf_graph.Deferred) reach the ONNX graph through the layout operations the converter
adds for any non-constant operand, e.g. the Transpose that turns a TensorFlow HWIO convolution kernel
into ONNX's OIHW. A converter folds those when the operand is a constant; here they are folded when
the file is written: the node goes, and its output becomes a streamed initializer whose reader applies
the operation to the weight. Only exact, data-independent operations are folded.
"""

from __future__ import annotations

import numpy as np

from bridge.frameworks.onnx_stream import Streamed

_FOLDABLE = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast"})


def fold_layout(model, streamed: list[Streamed]) -> int:
    """Fold foldable nodes whose data input is a streamed tensor; drop streamed tensors, and the small
    operands of folded nodes, that nothing reads any more. Updates ``model`` and ``streamed`` in place;
    returns how many nodes were folded."""
    from onnx import helper, numpy_helper

    by_name = {s.name: s for s in streamed}
    small = {t.name: t for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    folded = 0
    operands = set()  # small initializers the folded nodes read (a Reshape's shape)
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(model.graph.node):
            if node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx") or not node.input:
                continue
            source = by_name.get(node.input[0])
            if source is None or node.output[0] in outputs or node.output[0] in by_name:
                continue
            extra = [small.get(name) for name in node.input[1:] if name]
            if any(t is None for t in extra):
                continue  # a second operand computed at run time
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            args = [numpy_helper.to_array(t) for t in extra]
            try:
                dims, dtype, op = _plan(node.op_type, tuple(source.dims), source.data_type, attrs, args)
            except ValueError:
                continue
            np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
            item = Streamed(
                node.output[0],
                dims,
                dtype,
                int(np.prod(dims, dtype=np.int64)) * np_dtype.itemsize,
                _then(source.read, op),
            )
            streamed.append(item)
            by_name[item.name] = item
            operands.update(name for name in node.input[1:] if name)
            del model.graph.node[index]
            folded += 1
            changed = True
            break
    used = {name for node in model.graph.node for name in node.input} | outputs | _subgraph_inputs(model.graph)
    streamed[:] = [s for s in streamed if s.name in used]
    for i in reversed(range(len(model.graph.initializer))):
        if model.graph.initializer[i].name in operands - used:
            del model.graph.initializer[i]
    return folded


def _subgraph_inputs(graph) -> set:
    """Names read inside If/Loop/Scan bodies (outer-scope values they use)."""
    names = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                names |= {name for inner in sub.node for name in inner.input}
                names |= _subgraph_inputs(sub)
    return names


def _then(read, op):
    def composed():
        data = read()
        if not isinstance(data, np.ndarray):
            from onnx import numpy_helper

            data = numpy_helper.to_array(data)
        return np.ascontiguousarray(op(data))

    return composed


def _plan(op_type: str, dims: tuple, dtype: int, attrs: dict, args: list):
    """(output dims, output ONNX dtype, numpy function) of one foldable node, or ValueError."""
    rank = len(dims)
    if op_type == "Identity":
        return dims, dtype, lambda a: a
    if op_type == "Cast":
        from onnx import helper

        to = int(attrs["to"])
        target = helper.tensor_dtype_to_np_dtype(to)
        return dims, to, lambda a: a.astype(target)
    if op_type == "Transpose":
        perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
        if sorted(perm) != list(range(rank)):
            raise ValueError("bad perm")
        return tuple(dims[p] for p in perm), dtype, lambda a: np.transpose(a, perm)
    if op_type == "Reshape":
        if len(args) != 1:
            raise ValueError("no shape")
        shape = [int(d) for d in args[0].reshape(-1)]
        if not attrs.get("allowzero", 0):
            shape = [dims[i] if d == 0 and i < rank else d for i, d in enumerate(shape)]
        total = int(np.prod(dims, dtype=np.int64))
        if shape.count(-1) == 1:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known == 0 or total % known:
                raise ValueError("bad shape")
            shape[shape.index(-1)] = total // known
        if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) != total:
            raise ValueError("bad shape")
        out = tuple(shape)
        return out, dtype, lambda a: a.reshape(out)
    if op_type in ("Squeeze", "Unsqueeze"):
        axes = [int(a) for a in (args[0].reshape(-1) if args else attrs.get("axes", []))]
        if op_type == "Squeeze":
            if not axes:
                axes = [i for i, d in enumerate(dims) if d == 1]
            axes = sorted(a % rank for a in axes)
            if any(dims[a] != 1 for a in axes):
                raise ValueError("squeezing a dimension that is not 1")
            out = tuple(d for i, d in enumerate(dims) if i not in axes)
        else:
            size = rank + len(axes)
            axes = sorted(a % size for a in axes)
            rest = iter(dims)
            out = tuple(1 if i in axes else next(rest) for i in range(size))
        return out, dtype, lambda a: a.reshape(out)
    raise ValueError(op_type)
