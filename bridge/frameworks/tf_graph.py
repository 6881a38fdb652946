"""A traced TensorFlow function as one flat, frozen GraphDef for tf2onnx, without copying its weights.

tf2onnx's loaders freeze with ``convert_variables_to_constants_v2`` and then run grappler's constant
folding over the frozen graph. For keras.applications VGG16 (0.53 GB of weights) the first step alone
peaked 4.8 GB above the loaded model and the second passed 12 GB. Here the one graph rewrite needed
(function inlining) runs on the graph *before* freezing, while the weights are still placeholders (the
graph is a few hundred KB). Freezing then turns each small capture into a Const node (content over
1000 bytes handed to tf2onnx on demand through its ``const_node_values``) and keeps each large one
out of tf2onnx altogether (see Deferred and DEFER_BYTES).

Function calls: Keras runs grouped convolutions (ConvNeXt's depthwise 7x7) through a
``tf.function(jit_compile=True)``. Grappler does not inline a function marked for XLA, so the calls
survived as StatefulPartitionedCall nodes that tf2onnx cannot convert. The export compiles nothing:
the XLA marks are dropped before inlining, and a call that still survives is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from bridge.errors import ConversionError

_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
_NO_INLINE_ATTRS = (
    "_XlaMustCompile",
    "_XlaCompile",
    "_XlaScope",
    "_XlaSeparateCompiledGradients",
    "_noinline",
    "api_implements",
)
# tf2onnx keeps constants up to this many bytes inside the graph (they carry shape information);
# larger ones travel in const_node_values (tf2onnx.tf_utils.compress_graph_def uses the same bound).
INLINE_CONST_BYTES = 1000
# Captures this large are deferred (see Deferred). tf2onnx keeps a constant's tensor twice (its node's
# attribute and the node's NodeProto), holds about four copies of one tensor while converting it, and
# every optimizer step rewrites each NodeProto: the protobuf runtime (upb) frees a message's memory only
# with the message, so each step leaves one more copy of every constant behind. ConvNeXtTiny's 0.11 GB
# of weights grew to 5 GB over three optimizer rounds.
DEFER_BYTES = 64 << 10


class NotFreezable(Exception):
    """The graph uses a captured variable in a way this freezer does not rewrite (e.g. a variable read
    inside a control-flow body): the caller falls back to tf2onnx's own freezing."""


class LazyConstants(Mapping):
    """name -> tensor bytes, read from the live variable or tensor when tf2onnx asks for it."""

    def __init__(self):
        self._readers: dict = {}

    def add(self, name: str, reader) -> None:
        self._readers[name] = reader

    def __getitem__(self, name: str) -> bytes:
        return np.ascontiguousarray(self._readers[name]()).tobytes()

    def __contains__(self, name) -> bool:
        return name in self._readers

    def __iter__(self):
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)


@dataclass
class Deferred:
    """A weight kept out of tf2onnx: a graph input while it converts, an initializer read from the live
    variable when the ONNX file is written. tf2onnx then neither copies it nor folds anything into it:
    layout operations it adds on weights (a convolution kernel's Transpose) are folded when the file is
    written (onnx_fold)."""

    name: str  # the placeholder's tensor name ("...:0") in the GraphDef, the ONNX graph input's name
    shape: tuple
    dtype: object  # numpy dtype
    read: object  # () -> numpy array


@dataclass
class FrozenGraph:
    graph_def: object  # tf.compat.v1.GraphDef with large Const contents left out
    constants: LazyConstants
    deferred: list  # [Deferred]
    inputs: list  # tensor names ("x:0"), in the signature's order
    outputs: list  # tensor names, in the function's flat output order
    renames: dict  # tensor name -> ONNX value name (the signature's input names, the output dict's keys)
    weight_bytes: int  # bytes of every captured value


def freeze(concrete, input_names: list[str], defer_bytes: int | None = DEFER_BYTES) -> FrozenGraph:
    """Inline every function call of ``concrete`` and replace its captures by constants; captures of
    at least ``defer_bytes`` are deferred (see Deferred)."""
    n_user = len(concrete.inputs) - len(concrete.captured_inputs)
    user_inputs = [t.name for t in concrete.inputs[:n_user]]
    outputs = [t.name for t in concrete.outputs]
    renames = dict(zip(user_inputs, input_names))
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        renames.update({t.name: str(k) for k, t in structured.items() if hasattr(t, "name")})

    graph_def = concrete.graph.as_graph_def()
    _drop_no_inline_marks(graph_def)
    graph_def = _inline(graph_def, concrete.graph, [t.name for t in concrete.inputs] + outputs)
    calls = [n for n in graph_def.node if n.op in _CALL_OPS]
    if calls:  # tf2onnx would leave them in the graph as they are, and no ONNX runtime could run it
        called = sorted({n.attr["f"].func.name for n in calls})
        raise ConversionError(
            f"{len(calls)} function call(s) ({', '.join(sorted({n.op for n in calls}))}) survived "
            f"inlining, calling {', '.join(called[:5])}",
            hint="the model calls functions "
            "TensorFlow's inliner refuses (e.g. marked _noinline); rebuild it without them",
        )

    captures = {p.op.name: v for p, v in zip(concrete.inputs[n_user:], concrete.captured_inputs)}
    frozen = FrozenGraph(graph_def, LazyConstants(), [], user_inputs, outputs, renames, 0)
    _Freezer(frozen, captures, {t.split(":")[0] for t in outputs}, defer_bytes).run()
    return frozen


def _drop_no_inline_marks(graph_def) -> None:
    for fdef in graph_def.library.function:
        for key in _NO_INLINE_ATTRS:
            if key in fdef.attr:
                del fdef.attr[key]
        for node in fdef.node_def:
            _drop_attrs(node)
    for node in graph_def.node:
        _drop_attrs(node)


def _drop_attrs(node) -> None:
    for key in _NO_INLINE_ATTRS:
        if key in node.attr:
            del node.attr[key]


def _inline(graph_def, graph, fetches: list[str]):
    """Grappler's function inlining alone (no constant folding), control flow kept functional."""
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.framework.convert_to_constants import disable_lower_using_switch_merge
    from tensorflow.python.grappler import tf_optimizer

    if not graph_def.library.function:
        return graph_def
    graph_def = disable_lower_using_switch_merge(graph_def)
    with tf.Graph().as_default():
        meta = tf.compat.v1.train.export_meta_graph(graph_def=graph_def, graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(fetches)
    meta.collection_def["train_op"].CopyFrom(fetch)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1
    rewrite.optimizers.append("function")
    rewrite.function_optimization = rewriter_config_pb2.RewriterConfig.AGGRESSIVE
    return tf_optimizer.OptimizeGraph(config, meta)


def _split(ref: str) -> tuple[str, str]:
    """'^name' -> ('name', '^'); 'name:1' -> ('name', ':1'); 'name' -> ('name', '')."""
    if ref.startswith("^"):
        return ref[1:], "^"
    name, sep, port = ref.partition(":")
    return name, (sep + port) if sep else ""


def _data_inputs(node) -> list[str]:
    return [_split(r)[0] if _split(r)[1] in ("", ":0") else r for r in node.input if not r.startswith("^")]


class _Freezer:
    """Captured placeholders become Const nodes (or deferred inputs); ReadVariableOp and resource
    Identity nodes on them are removed and their consumers read the Const directly; ResourceGather
    becomes GatherV2. Value Identity nodes on a large Const are bypassed as well: tf2onnx folds
    Identity(Const) by running it in TensorFlow, which makes a second copy of the weight."""

    def __init__(self, frozen: FrozenGraph, captures: dict, keep: set, defer_bytes: int | None):
        self.frozen, self.captures, self.keep, self.defer_bytes = frozen, captures, keep, defer_bytes
        graph_def = frozen.graph_def
        self.nodes = {n.name: n for n in graph_def.node}
        self.consumers: dict = {}
        for node in graph_def.node:
            for ref in node.input:
                self.consumers.setdefault(_split(ref)[0], []).append(node)
        self.replace: dict = {}  # node name -> the node that now stands for its output 0
        self.drop: set = set()
        self.large: set = set()

    def run(self) -> None:
        for name, value in self.captures.items():
            if name in self.nodes:  # else grappler left the capture unused
                self._freeze(name, value)
        self._bypass_identities()
        self._rewire()

    def _freeze(self, name: str, value) -> None:
        users = []
        if value.dtype == tf.resource:
            users = self._resource_users(name)
            readers = [n for n in users if n.op in ("ReadVariableOp", "ResourceGather")]
            if not readers:
                raise NotFreezable(f"variable {name} is captured but never read")
            dtype = tf.as_dtype(readers[0].attr["dtype"].type)
            shape = _variable_shape(value)
            read = functools.partial(_read_numpy, value, dtype)
        elif not (value.dtype.is_floating or value.dtype.is_integer or value.dtype.is_bool):
            self._freeze_as_is(name, value)  # strings and the like: small, and as TensorFlow writes them
            return
        else:
            dtype, shape = value.dtype, tuple(int(d) for d in value.shape)
            read = value.numpy
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.size
        self.frozen.weight_bytes += nbytes
        node = self.nodes[name]
        device = node.device
        node.Clear()
        node.name, node.device = name, device
        node.attr["dtype"].type = dtype.as_datatype_enum
        shape_proto = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
        )
        if self.defer_bytes is not None and nbytes >= self.defer_bytes:
            node.op = "Placeholder"
            node.attr["shape"].shape.CopyFrom(shape_proto)
            self.frozen.deferred.append(Deferred(f"{name}:0", shape, dtype.as_numpy_dtype, read))
        else:
            node.op = "Const"
            tensor = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=shape_proto)
            if nbytes > INLINE_CONST_BYTES:
                self.frozen.constants.add(name, read)
                self.large.add(name)
            else:
                tensor.tensor_content = np.ascontiguousarray(read()).tobytes()
            node.attr["value"].tensor.CopyFrom(tensor)
        for user in users:
            if user.op == "ResourceGather":
                self._to_gather(user, name, dtype)
            else:
                self.replace[user.name] = name
                self.drop.add(user.name)

    def _freeze_as_is(self, name: str, value) -> None:
        node = self.nodes[name]
        device = node.device
        node.Clear()
        node.name, node.device, node.op = name, device, "Const"
        node.attr["dtype"].type = value.dtype.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value.numpy()))

    def _resource_users(self, name: str) -> list:
        """Every node that reads the resource ``name``, through resource Identity nodes."""
        out, stack, seen = [], [name], set()
        while stack:
            current = stack.pop()
            for node in self.consumers.get(current, []):
                if node.name in seen or current not in _data_inputs(node):
                    continue  # seen, or a control dependency only
                seen.add(node.name)
                if node.op == "Identity" and node.attr["T"].type == types_pb2.DT_RESOURCE:
                    out.append(node)
                    stack.append(node.name)
                elif node.op == "ReadVariableOp" or (node.op == "ResourceGather" and node.attr["batch_dims"].i == 0):
                    out.append(node)
                else:
                    raise NotFreezable(f"variable {name} is used by a {node.op} node ({node.name})")
        return out

    def _to_gather(self, node, params: str, dtype) -> None:
        """ResourceGather(resource, indices) -> GatherV2(params, indices, axis 0)."""
        axis = self.frozen.graph_def.node.add()
        axis.name, axis.op = f"{node.name}/axis", "Const"
        axis.attr["dtype"].type = types_pb2.DT_INT32
        axis.attr["value"].tensor.CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[0]))
        indices = [r for r in node.input if not r.startswith("^")][1]
        controls = [r for r in node.input if r.startswith("^")]
        tindices = node.attr["Tindices"].type
        for key in list(node.attr):
            del node.attr[key]
        node.op = "GatherV2"
        node.attr["Tparams"].type = dtype.as_datatype_enum
        node.attr["Tindices"].type = tindices
        node.attr["Taxis"].type = types_pb2.DT_INT32
        node.attr["batch_dims"].i = 0
        del node.input[:]
        node.input.extend([params, indices, axis.name, *controls])

    def _bypass_identities(self) -> None:
        for node in self.frozen.graph_def.node:
            if node.op != "Identity" or node.name in self.keep or node.name in self.drop or len(node.input) != 1:
                continue
            src, port = _split(node.input[0])
            src = self._target(src)
            if src in self.large and port in ("", ":0"):
                self.replace[node.name] = src
                self.drop.add(node.name)

    def _target(self, name: str) -> str:
        while name in self.replace:
            name = self.replace[name]
        return name

    def _rewire(self) -> None:
        graph_def = self.frozen.graph_def
        kept = [n for n in graph_def.node if n.name not in self.drop]
        for node in kept:
            refs = []
            for ref in node.input:
                name, suffix = _split(ref)
                if name in self.replace:
                    refs.append("^" + self._target(name) if suffix == "^" else self._target(name))
                else:
                    refs.append(ref)
            del node.input[:]
            node.input.extend([r for r in refs if not r.startswith("^")])
            node.input.extend(dict.fromkeys(r for r in refs if r.startswith("^")))  # each control input once
        del graph_def.node[:]
        graph_def.node.extend(kept)


def _variable_shape(handle) -> tuple:
    from tensorflow.python.eager import context

    with context.eager_mode():
        return tuple(int(d) for d in tf.raw_ops.VariableShape(input=handle, out_type=tf.int64).numpy())


def _read_numpy(handle, dtype) -> np.ndarray:
    from tensorflow.python.eager import context

    with context.eager_mode():  # tf2onnx asks from inside a graph context: read eagerly
        return tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype).numpy()
