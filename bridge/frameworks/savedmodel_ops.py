"""Which ops an untrusted SavedModel may hold: an allowlist, checked over all of saved_model.pb before
TensorFlow loads anything.

The allowlist is what tf2onnx can convert (its handler registry for the ONNX domain, which is what
bridge's export uses) plus the few ops that loading and calling a SavedModel needs (variables,
tables, function calls, control flow), less every op that can reach outside the process: an op
whose name says it reads, writes, prints, debugs, queues, iterates a dataset or runs Python, and an
op whose definition has a string input or attribute that names a file, path, URL, directory, stream
or descriptor source.

Every node of the top-level graph and of every function in the library is checked, whether or not
a signature reaches it: TensorFlow's loader runs resource initializers, restore functions and init
ops that no signature reaches. The one exception is the saver: the checkpoint ops
(CHECKPOINT_OPS) are allowed only in the nodes and functions that nothing but the meta graph's
`saver_def` reaches. TF2's loader (tensorflow/python/saved_model/load.py, `Loader._restore_checkpoint`)
restores variables with a TrackableSaver it builds in Python from the object graph, with the
variables path as its prefix, and never runs `saver_def`'s save or restore tensors. The TF1 loader
(load_v1_in_v2.py, used for a SavedModel without an object graph) does run `saver_def.restore_op_name`,
feeding the variables path to `filename_tensor_name`: there, RestoreV2 is allowed in the restore
graph only when it reads from that filename tensor, and the other checkpoint ops only where the
restore graph, the init ops, the signatures and the collections do not reach.

This module imports TensorFlow's protobufs and tf2onnx only when called.
"""

from __future__ import annotations

import functools
import os
import re

from bridge.errors import EnvironmentProblem, InputError, SecurityRefusal

TOP_LEVEL = "top-level graph"

# What loading and calling a SavedModel needs besides what tf2onnx converts. tf2onnx freezes
# variables and inlines calls before it converts, so none of these is in its registry.
LOADING_OPS = frozenset(
    {
        # graph plumbing and function calls
        "Placeholder",
        "PlaceholderWithDefault",
        "Const",
        "NoOp",
        "Identity",
        "IdentityN",
        "Snapshot",
        "StatefulPartitionedCall",
        "PartitionedCall",
        # control flow, TF2 and TF1
        "If",
        "StatelessIf",
        "While",
        "StatelessWhile",
        "Case",
        "StatelessCase",
        "Switch",
        "Merge",
        "Enter",
        "Exit",
        "NextIteration",
        "LoopCond",
        "ControlTrigger",
        # variables (resource and TF1 reference variables)
        "VarHandleOp",
        "ReadVariableOp",
        "AssignVariableOp",
        "AssignAddVariableOp",
        "AssignSubVariableOp",
        "VarIsInitializedOp",
        "DestroyResourceOp",
        "ResourceGather",
        "VariableV2",
        "Assign",
        "IsVariableInitialized",
        # lookup tables (keras StringLookup/IntegerLookup, tf.lookup): in memory
        "HashTableV2",
        "MutableHashTableV2",
        "MutableHashTableOfTensorsV2",
        "MutableDenseHashTableV2",
        "InitializeTableV2",
        "LookupTableImportV2",
        "LookupTableExportV2",
        "LookupTableFindV2",
        "LookupTableSizeV2",
        "LookupTableInsertV2",
    }
)

# What the saver's functions use to write and read checkpoints: allowed only where nothing but the
# meta graph's saver_def reaches.
CHECKPOINT_OPS = frozenset(
    {
        "SaveV2",
        "RestoreV2",
        "MergeV2Checkpoints",
        "ShardedFilename",
        "StringJoin",
        "StaticRegexFullMatch",
        "DisableCopyOnRead",
    }
)

# Ops that touch files, Python, the network or debug outputs, named outright: refused even if a
# converter learns to handle them. The word and name rules below catch most of them too.
IO_OPS = frozenset(
    {
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "DeleteFile",
        "ImmutableConst",
        "FileSystemSetConfiguration",
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "Print",
        "PrintV2",
        "DecodeProtoV2",
        "EncodeProto",
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        "CopyHost",
        "Copy",
        "InitializeTableFromTextFile",
        "InitializeTableFromTextFileV2",
        "InitializeTableFromDataset",
        "Save",
        "SaveSlices",
        "Restore",
        "RestoreSlice",
        "SaveV2",
        "RestoreV2",
        "MergeV2Checkpoints",
        "GenerateVocabRemapping",
        "LoadAndRemapMatrix",
        "FixedUnigramCandidateSampler",
    }
)
# Words in an op's name (split at capitals) that mean it reaches outside the graph.
_IO_NAME_WORDS = frozenset(
    {
        "File",
        "Files",
        "Reader",
        "Writer",
        "Summary",
        "Dataset",
        "Iterator",
        "Queue",
        "Debug",
        "Py",
        "Print",
        "Save",
        "Restore",
        "Checkpoint",
        "Proto",
        "Rpc",
        "Remote",
        "Send",
        "Recv",
        "Collective",
        "Tpu",
        "TPU",
    }
)
# Words in a string attribute's or input's name that mean its value names something outside.
_PATH_WORDS = frozenset(
    {
        "file",
        "filename",
        "filenames",
        "files",
        "path",
        "paths",
        "url",
        "urls",
        "descriptor",
        "dir",
        "dirs",
        "directory",
        "logdir",
        "stream",
        "prefix",
        "prefixes",
        "region",
        "dump",
    }
)
_STRING_ATTR_TYPES = frozenset({"string", "list(string)"})
_DT_STRING = 7  # tensorflow.core.framework.types_pb2.DT_STRING
_MAX_LISTED = 6


def _words(name: str) -> set[str]:
    return set(re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+", name))


def _names_path(name: str) -> bool:
    return bool({w for w in name.lower().split("_") if w} & _PATH_WORDS)


def reaches_outside(name: str, op_def) -> str | None:
    """Why an op type can reach outside the process (files, Python, network, debug output), or None."""
    if name in IO_OPS:
        return "a file, Python or debug op"
    words = _words(name) & _IO_NAME_WORDS
    if words:
        return f"its name says {sorted(words)[0]}"
    for attr in op_def.attr:
        if attr.type in _STRING_ATTR_TYPES and _names_path(attr.name):
            return f"its attribute {attr.name} names a location"
    for arg in op_def.input_arg:
        if (arg.type == _DT_STRING or arg.type_attr or arg.type_list_attr) and _names_path(arg.name):
            return f"its input {arg.name} names a location"
    return None


def convertible_ops() -> frozenset[str]:
    """The TensorFlow op types tf2onnx has a handler for in the ONNX domain (any opset), and the ones
    bridge hands tf2onnx handlers for."""
    try:
        import tf2onnx.tfonnx  # noqa: F401  (registers tf2onnx.onnx_opset and tf2onnx.custom_opsets)
        from tf2onnx.handler import tf_op
    except ImportError:
        raise EnvironmentProblem(
            "checking an untrusted SavedModel needs tf2onnx",
            hint="pip install tf2onnx, or pass --trust-code if you trust the model",
        ) from None
    from bridge.frameworks.tf_handlers import custom_op_handlers

    # plus the ops bridge converts itself (Erfc, for Keras's exact GELU)
    return frozenset(name for table in tf_op.get_opsets().get("", []) for name in table) | set(custom_op_handlers())


@functools.cache
def allowed_ops() -> frozenset[str]:
    """The allowlist: convertible or needed for loading, registered in this TensorFlow, and not
    reaching outside."""
    from tensorflow.python.framework import op_def_registry

    allowed = set()
    for name in convertible_ops() | LOADING_OPS:
        op_def = op_def_registry.get(name)
        if op_def is not None and reaches_outside(name, op_def) is None:
            allowed.add(name)
    return frozenset(allowed)


def read_savedmodel(path: str):
    """saved_model.pb (or saved_model.pbtxt, as TensorFlow's loader picks them) as a SavedModel proto."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    name = pb if os.path.isfile(pb) else pbtxt
    try:
        with open(name, "rb") as fh:
            data = fh.read()
        if name == pb:
            sm.ParseFromString(data)
        else:
            text_format.Parse(data.decode("utf-8"), sm)
    except Exception as exc:
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InputError(f"cannot parse {name}: {type(exc).__name__}: {text}") from None
    return sm


def check_savedmodel(path: str) -> None:
    """Refuse (SecurityRefusal, exit 6) a SavedModel holding anything outside the allowlist."""
    found = savedmodel_findings(read_savedmodel(path))
    if not found:
        return
    groups: dict[tuple[str, str], list[str]] = {}  # (why, where) -> ops: one entry per reason and place
    for op in sorted(found):
        where = sorted(found[op], key=lambda w: (w != TOP_LEVEL, w))
        more = f", +{len(where) - 2} more" if len(where) > 2 else ""
        groups.setdefault((_why(op), ", ".join(where[:2]) + more), []).append(op)
    items = [f"{', '.join(ops)} ({why}) in {where}" for (why, where), ops in groups.items()]
    if len(items) > _MAX_LISTED:
        items = items[:_MAX_LISTED] + [f"+{len(items) - _MAX_LISTED} more"]
    raise SecurityRefusal(
        f"SavedModel {path} holds ops that bridge does not load from an untrusted model: {'; '.join(items)}",
        hint="an untrusted SavedModel may hold only ops that tf2onnx converts and those loading needs, with "
        "checkpoint ops only in its saver; pass --trust-code only if you trust where this model came from",
    )


def _why(op: str) -> str:
    from tensorflow.python.framework import op_def_registry

    if "[" in op:
        return "a string attribute naming a location"
    if op in CHECKPOINT_OPS:
        return "checkpoint op outside the saver"
    op_def = op_def_registry.get(op)
    if op_def is None:
        return "not a TensorFlow op"
    return reaches_outside(op, op_def) or "not an op tf2onnx converts"


def savedmodel_findings(sm) -> dict[str, set[str]]:
    """{op type (or 'op[attribute]'): {where it is}} for everything the allowlist does not admit."""
    allowed = allowed_ops()
    tf2_loader = len(sm.meta_graphs) == 1 and sm.meta_graphs[0].HasField("object_graph_def")
    found: dict[str, set[str]] = {}
    for index, mg in enumerate(sm.meta_graphs):
        suffix = f" of meta graph {index}" if len(sm.meta_graphs) > 1 else ""
        for op, where in _meta_graph_findings(mg, allowed, tf1_restore_runs=not tf2_loader):
            found.setdefault(_shown(op), set()).add(where + suffix)
    return found


def _shown(name: str) -> str:
    """An op or function name as the one-line message may show it (names come from the file)."""
    return name if name.isprintable() and len(name) <= 100 else ascii(name[:100])


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _called(node, functions) -> list[str]:
    """Names of the functions (or primitive ops) a node calls: as its op, or through func attributes."""
    names = [node.op] if node.op in functions else []
    stack = list(node.attr.values())
    while stack:
        value = stack.pop()
        funcs = ([value.func] if value.HasField("func") else []) + list(value.list.func)
        for f in funcs:
            names.append(f.name)
            stack.extend(f.attr.values())
    return names


def _reach(edges: dict, roots) -> set[str]:
    """Names reachable from the roots through ``edges`` (name -> names it depends on); unknown names are
    dropped."""
    seen: set[str] = set()
    todo = [r for r in roots if r in edges]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in edges[name] if d in edges and d not in seen)
    return seen


def _closure(nodes: dict, roots) -> set[str]:
    """Top-level nodes the roots depend on (data and control inputs)."""
    return _reach({name: [_node_name(i) for i in node.input] for name, node in nodes.items()}, roots)


def _fn_closure(calls: dict, roots) -> set[str]:
    return _reach(calls, roots)


def _tensor_info_names(info) -> list[str]:
    names, stack = [], [info]
    while stack:
        t = stack.pop()
        names += [
            t.name,
            t.coo_sparse.values_tensor_name,
            t.coo_sparse.indices_tensor_name,
            t.coo_sparse.dense_shape_tensor_name,
        ]
        stack.extend(t.composite_tensor.components)
    return [_node_name(n) for n in names if n]


def _object_graph_functions(mg) -> set[str]:
    ogd = mg.object_graph_def
    names = set(ogd.concrete_functions.keys())
    for obj in ogd.nodes:
        names.update(obj.function.concrete_functions)
        if obj.bare_concrete_function.concrete_function_name:
            names.add(obj.bare_concrete_function.concrete_function_name)
    return names


def _meta_graph_findings(mg, allowed: frozenset[str], tf1_restore_runs: bool):
    functions = {f.signature.name: f for f in mg.graph_def.library.function}
    nodes = {n.name: n for n in mg.graph_def.node}
    calls = {name: {c for n in f.node_def for c in _called(n, functions)} for name, f in functions.items()}
    saver = mg.saver_def
    filename_node = _node_name(saver.filename_tensor_name)
    restore_node = _node_name(saver.restore_op_name)

    # What only the saver reaches.
    saver_nodes = _closure(nodes, [_node_name(saver.save_tensor_name), restore_node, filename_node])
    saver_fns = _fn_closure(calls, {c for n in saver_nodes for c in _called(nodes[n], functions)})

    # What anything else reaches: every other node and function, whatever the signatures, the object
    # graph, the collections (init ops, table initializers, variable initializers) and the assets name.
    named = set()
    for sig in mg.signature_def.values():
        for info in list(sig.inputs.values()) + list(sig.outputs.values()):
            named.update(_tensor_info_names(info))
    for asset in mg.asset_file_def:
        named.update(_tensor_info_names(asset.tensor_info))
    blobs = []
    for coll in mg.collection_def.values():
        named.update(_node_name(n) for n in coll.node_list.value)
        blobs.extend(coll.bytes_list.value)
    blob = b"\0".join(blobs)  # serialized VariableDefs and the like: any saver node they name counts
    named.update(n for n in saver_nodes if n.encode() in blob)
    if tf1_restore_runs:
        named.add(restore_node)
    other_nodes = _closure(nodes, [n for n in nodes if n not in saver_nodes] + sorted(named))
    other_fns = _fn_closure(
        calls,
        (set(functions) - saver_fns)
        | _object_graph_functions(mg)
        | {c for n in other_nodes for c in _called(nodes[n], functions)},
    )
    saver_only_nodes = saver_nodes - other_nodes
    saver_only_fns = saver_fns - other_fns
    restore_nodes = _closure(nodes, [restore_node]) if tf1_restore_runs else set()

    checkpoint_allowed = allowed | CHECKPOINT_OPS
    for node in mg.graph_def.node:
        ok = checkpoint_allowed if node.name in saver_only_nodes else allowed
        if (
            node.op == "RestoreV2"
            and node.name in restore_nodes
            and node.input
            and _node_name(node.input[0]) == filename_node
        ):
            ok = ok | {"RestoreV2"}  # the TF1 loader feeds it the variables path
        yield from _node_findings(node, functions, ok, TOP_LEVEL)
    for name, fn in functions.items():
        ok = checkpoint_allowed if name in saver_only_fns else allowed
        for node in fn.node_def:
            yield from _node_findings(node, functions, ok, f"function {_shown(name)}")


def _node_findings(node, functions, ok: frozenset[str], where: str):
    if node.op not in functions and node.op not in ok:
        yield node.op, where
    for name in _called(node, functions):
        if name not in functions and name not in ok:  # a primitive op instantiated as a function
            yield name, where
    if node.op in ok or node.op in functions:  # a refused op is named once, without its attributes
        for attr, value in node.attr.items():
            if _names_path(attr.lstrip("_")) and (value.HasField("s") or len(value.list.s)):
                yield f"{node.op}[{attr}]", where
