"""tf2onnx, run so that it converts what Keras produces and fails in words: the route for traced
functions (inline and freeze with tf_graph, convert with process_tf_graph, write with the weights
streamed), and tf2onnx's log captured and turned into a ConversionError that names the route and
the operators it could not convert, never the export's temporary paths.

TensorFlow and tf2onnx are imported by the conversion itself; the log and error functions need neither.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re

import numpy as np

from bridge.errors import ConversionError

FROZEN_ROUTE = "tf2onnx.process_tf_graph(inlined, frozen)"


class OptimizerFailed(Exception):
    """tf2onnx's ONNX optimizers raised with catch_errors off: the graph may be half rewritten."""


class _Unconverted(Exception):
    """The graph tf2onnx returned still holds operators that are not ONNX."""

    def __init__(self, ops: dict):
        super().__init__(", ".join(ops))
        self.ops = ops


class _LogRecords(logging.Handler):
    """tf2onnx's warnings and errors during one conversion (it logs what it could not convert, then
    returns a graph anyway)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a malformed record must not break the conversion
            pass


_UNSUPPORTED = re.compile(r"Unsupported ops: Counter\((\{.*?\})\)", re.S)


def _unsupported_in_log(messages: list[str]) -> dict:
    """{op type: count} from tf2onnx's 'Unsupported ops: Counter({...})' lines."""
    import ast

    ops: dict = {}
    for text in messages:
        for found in _UNSUPPORTED.findall(text):
            try:
                counts = ast.literal_eval(found)
            except (ValueError, SyntaxError):
                continue
            for op, n in counts.items():
                ops[str(op)] = max(ops.get(str(op), 0), int(n))
    return ops


def _failed_nodes(messages: list[str]) -> list[str]:
    """First lines of tf2onnx's 'Failed to convert node' errors (a handler that raised)."""
    return [m.splitlines()[0][:200] for m in messages if m.startswith("Failed to convert node")]


def run_tf2onnx(convert, source: str, route: str, path: str, quiet=contextlib.nullcontext):
    """Run one tf2onnx route with its output and log captured; a failure becomes a ConversionError
    that names the route, the operators tf2onnx could not convert, and no file path of the export."""
    from bridge.frameworks.tf_graph import NotFreezable

    records = _LogRecords()
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(records)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), quiet():
            return convert()
    except (NotFreezable, OptimizerFailed, ConversionError):
        raise
    except _Unconverted as exc:
        ops = {**_unsupported_in_log(records.messages), **exc.ops}
        listed = ", ".join(f"{op} ({n})" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
        failed = _failed_nodes(records.messages)
        raise ConversionError(
            f"tf2onnx cannot convert {source} ({route}): TensorFlow ops with no ONNX conversion: {listed}"
            + (f"; {len(failed)} node(s) failed to convert, first: {_hide(failed[0], path)}" if failed else ""),
            hint="these ops have no tf2onnx handler at this opset: try another --opset, or build the model "
            "without them",
            detail=_detail("", records.messages, path, ops),
        ) from None
    except Exception as exc:
        text = _hide(str(exc).splitlines()[0][:300] if str(exc) else "", path)
        ops = _unsupported_in_log(records.messages)
        extra = f"; TensorFlow ops with no ONNX conversion: {', '.join(sorted(ops))}" if ops else ""
        raise ConversionError(
            f"tf2onnx failed on {source} ({route}): {type(exc).__name__}: {text}{extra}",
            detail=_detail(f"{type(exc).__name__}: {exc}", records.messages, path, ops),
        ) from None
    finally:
        logger.removeHandler(records)


def _detail(error: str, messages: list[str], path: str, ops: dict, limit: int = 20000) -> dict:
    """For reports: the error and tf2onnx's warnings and errors in full (paths hidden), and the ops."""
    text = "\n".join(([error] if error else []) + messages)
    return {"detail": _hide(text, path)[:limit], "unsupported_ops": ops}


_STAGING = re.compile(r"""[^\s'"]*/\.[^/\s'"]+\.staging-[^/\s'"]*/(\.attempt-\d+/)?""")


def _hide(text: str, path: str) -> str:
    """The export writes into a temporary staging directory: its name means nothing to the user."""
    folder = os.path.dirname(os.path.abspath(path))
    text = text.replace(os.path.abspath(path), "model.onnx").replace(folder + os.sep, "").replace(folder, ".")
    return _STAGING.sub("", text)


def _onnx_op_problems(graph, found: dict | None = None) -> dict:
    """{op type: count} of nodes (subgraphs included) that are no ONNX operator: what tf2onnx left
    unconverted (with continue_on_error it keeps the TensorFlow node as it was)."""
    import onnx

    found = {} if found is None else found
    for node in graph.node:
        domain = node.domain if node.domain not in ("ai.onnx",) else ""
        if not onnx.defs.has(node.op_type, domain):
            found[node.op_type] = found.get(node.op_type, 0) + 1
        for attr in node.attribute:
            if attr.HasField("g"):
                _onnx_op_problems(attr.g, found)
            for sub in attr.graphs:
                _onnx_op_problems(sub, found)
    return found


def checked(proto):
    ops = _onnx_op_problems(proto.graph)
    if ops:
        raise _Unconverted(ops)
    return proto


def convert_frozen(fn, input_names: list[str], opset: int, path: str, careful: bool) -> dict:
    """The route for every traceable function: inline and freeze (tf_graph), convert with
    process_tf_graph, write with large tensors streamed (onnx_stream). Returns settings to record."""
    import onnx
    import tensorflow as tf
    from tf2onnx import optimizer, tfonnx

    from bridge.frameworks import onnx_stream
    from bridge.frameworks.onnx_fold import fold_layout
    from bridge.frameworks.tf_graph import freeze
    from bridge.frameworks.tf_handlers import custom_op_handlers

    frozen = freeze(fn.get_concrete_function(), input_names)
    deferred = {d.name: d for d in frozen.deferred}
    with tf.device("/cpu:0"), tf.Graph().as_default() as graph:
        tf.import_graph_def(frozen.graph_def, name="")
        frozen.graph_def = None
        g = tfonnx.process_tf_graph(
            graph,
            opset=opset,
            input_names=frozen.inputs + list(deferred),
            output_names=frozen.outputs,
            const_node_values=frozen.constants or None,
            custom_op_handlers=custom_op_handlers(),
            continue_on_error=True,
            tensors_to_rename=frozen.renames,
        )
    del graph
    if careful:
        g = optimizer.optimize_graph(g, catch_errors=True)
    else:
        # catch_errors=True deep-copies the whole graph, weights included, before every optimizer step.
        try:
            g = optimizer.optimize_graph(g, catch_errors=False)
        except Exception as exc:  # noqa: BLE001 - retried with tf2onnx's guarded pass
            raise OptimizerFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    streamed = []
    for node in g.get_nodes():  # large constants are written from the graph, not copied into the proto
        if not node.is_const():
            continue
        tensor = node.get_attr("value").t
        if not tensor.HasField("raw_data") or tensor.ByteSize() < onnx_stream.STREAM_BYTES:
            continue
        name = node.output[0]
        dims = tuple(tensor.dims)
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        streamed.append(
            onnx_stream.Streamed(
                name,
                dims,
                tensor.data_type,
                int(np.prod(dims, dtype=np.int64)) * itemsize,
                functools.partial(lambda t: t, tensor),
            )
        )
        node.set_attr("value", onnx.TensorProto(name=name, dims=dims, data_type=tensor.data_type))
    proto = g.make_model(f"converted from {getattr(fn, '__name__', 'a tf.function')}")
    del g
    names = {s.name for s in streamed}
    for i in reversed(range(len(proto.graph.initializer))):
        if proto.graph.initializer[i].name in names:
            del proto.graph.initializer[i]
    for i in reversed(range(len(proto.graph.input))):
        item = deferred.get(proto.graph.input[i].name)
        if item is not None:  # a deferred weight: an initializer from here on
            del proto.graph.input[i]
            dtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(item.dtype))
            streamed.append(
                onnx_stream.Streamed(
                    item.name,
                    item.shape,
                    dtype,
                    int(np.prod(item.shape, dtype=np.int64)) * np.dtype(item.dtype).itemsize,
                    item.read,
                )
            )
    folded = fold_layout(proto, streamed)
    checked(proto)
    got = [i.name for i in proto.graph.input]
    if sorted(got) != sorted(input_names):
        raise ConversionError(f"tf2onnx wrote a graph with inputs {got}, expected {input_names}")
    written = onnx_stream.save(proto, streamed, path)
    return {
        "deferred_weights": len(deferred),
        "weight_layout_ops_folded": folded,
        "weight_bytes": frozen.weight_bytes,
        "optimizer_errors_caught": careful,
        **written,
    }
