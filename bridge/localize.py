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

import ast
import heapq
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bridge.compare import FAIL, OutputResult, compare_one, json_float
from bridge.errors import BridgeError, InputError, UsageError
from bridge.policy import Policy, Tolerance

DIVERGED, NO_DIVERGENCE, UNAVAILABLE = "diverged", "no divergence found", "unavailable"
ORT_VS_REFERENCE, ONNX_VS_NATIVE = "ort-vs-reference", "onnx-vs-native"
REPRO_FILES = ("sub.onnx", "inputs.npz", "expected.npz", "README.txt", "localize.json")
_REPRO_EXTRA = ("sub.onnx.data",)  # the sub-model's weights, when they pass protobuf's 2 GB limit
SCOPES_KEY = "pkg.torch.onnx.name_scopes"
FX_KEY = "pkg.torch.onnx.fx_node"
_EXTERNALIZE_ABOVE = 64 * 2**20  # embedded weights above this go to a temp file once, not into every chunk
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
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, (Tolerance, OutputResult)):
                value = value.to_json()
            elif isinstance(value, float):
                value = json_float(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


@dataclass
class _Finding:
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


def localize(model_path: str, feeds: dict, policy: Policy, out_dir: str | None, native=None,
             chunk_size: int = 64, *, reference_ops=()) -> LocalizeResult:
    """Find the first ONNX node whose output diverges; write a reproduction under ``out_dir``.

    ``feeds``: the model's inputs by name (numpy arrays); ``native``: a bridge TorchModel to match
    module outputs against (other native models are noted and skipped); ``chunk_size``: at most this
    many intermediates exposed per ONNX Runtime session; ``reference_ops``: extra OpRun classes for
    the reference evaluator (ops it lacks, or overrides), passed to it as ``new_ops``."""
    if not isinstance(policy, Policy):
        raise UsageError(f"localize needs a bridge Policy, got {type(policy).__name__}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise UsageError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    target = _check_out_dir(out_dir) if out_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="bridge-localize-") as tmp:
        model = _Model(model_path, tmp)
        feeds = model.check_feeds(feeds)
        notes: list[str] = []
        ort_side = _OrtChunks(model, feeds)
        found1, compared1, ran1 = _ort_vs_reference(model, feeds, policy, chunk_size, ort_side, notes,
                                                    tuple(reference_ops))
        found2, compared2 = None, 0
        if native is not None:
            found2, compared2 = _onnx_vs_native(model, feeds, policy, chunk_size, ort_side, native, notes)
        findings = [f for f in (found1, found2) if f is not None]
        if not findings:
            status = NO_DIVERGENCE if compared1 + compared2 else UNAVAILABLE
            if status == NO_DIVERGENCE:
                _check_optimizations(model, ort_side, policy, notes)
            elif not ran1:
                notes.append("nothing could be compared: ONNX Runtime did not run the graph")
            if target is not None:
                notes.append("no reproduction written: nothing diverged")
            return LocalizeResult(status, compared=compared1, compared_native=compared2,
                                  notes=tuple(_cap(notes)))
        # Both engine pairs may find one: the earlier node in the graph is the first divergence.
        findings.sort(key=lambda f: (f.node_index, f.engines != ORT_VS_REFERENCE))
        primary = findings[0]
        other = tuple(_finding_json(model, f) for f in findings[1:])
        sub, reproduces = None, None
        try:
            sub = _extract(model, primary)
            reproduces = _reproduces(sub, primary, policy, model.output_names)
        except _Unavailable as exc:
            notes.append(f"no reproduction: {exc}")
        if reproduces is False:
            notes.append(
                "the sub-model alone does not reproduce the mismatch: the diverging node turns small differences "
                "at its inputs (within tolerance) into a large one at its output" if primary.engines == ORT_VS_REFERENCE
                else "the sub-model alone does not reproduce the mismatch: on ONNX Runtime's inputs it matches the "
                "native output, so the module's inputs (not matched natively) already differ")
        result = _result(model, primary, compared1, compared2, other, notes, reproduces, None)
        if target is not None and sub is not None:
            result = replace(result, repro_dir=str(target.absolute()))
            _write_repro(target, sub, primary, result, model)
        return result


# -- the model ------------------------------------------------------------------------------------

class _Unavailable(Exception):
    pass


class _Model:
    """The ONNX file with its nodes in topological order, which values each node reads (subgraph
    captures included), and where the weights live."""

    def __init__(self, path: str, tmp: str):
        import onnx
        from onnx import external_data_helper as edh

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{path} does not exist or is not a file")
        try:
            proto = onnx.load(str(p), load_external_data=False)
        except Exception as exc:
            raise InputError(f"cannot load {path} with onnx: {_first_line(exc)}") from None
        self.path = str(p)
        self.weights_dir = str(p.resolve().parent)
        external = any(edh.uses_external_data(t) for t in proto.graph.initializer)
        if not external and proto.ByteSize() > _EXTERNALIZE_ABOVE:
            # Once, to a temp file: every chunk's session then copies the graph, not the weights.
            onnx.save_model(proto, os.path.join(tmp, "model.onnx"), save_as_external_data=True,
                            all_tensors_to_one_file=True, location="weights.bin", size_threshold=1024)
            self.weights_dir = tmp
            external = True
        self.external = external
        self.proto = proto
        g = proto.graph
        self.opsets = {d.domain: int(d.version) for d in proto.opset_import}
        self.inits = {t.name: t for t in g.initializer}
        self.sparse = {t.values.name: t for t in g.sparse_initializer}
        self.inputs = [i for i in g.input if i.name not in self.inits and i.name not in self.sparse]
        self.output_names = [o.name for o in g.output]
        order = self._order(list(g.node))
        if order != list(range(len(order))):
            nodes = list(g.node)
            sorted_nodes = [type(nodes[i])() for i in order]
            for dst, i in zip(sorted_nodes, order):
                dst.CopyFrom(nodes[i])
            del g.node[:]
            g.node.extend(sorted_nodes)  # sorted in place: the chunk copies and the Extractor see this order
        self.nodes = list(g.node)
        self.names = [n.name or f"#{i}" for i, n in enumerate(self.nodes)]
        self.producer: dict[str, int] = {}
        self.reads: list[list[str]] = []  # per node: non-empty inputs, then outer-scope captures
        self.last_use: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            reads = list(dict.fromkeys([x for x in node.input if x] + sorted(_captures(node))))
            self.reads.append(reads)
            for x in reads:
                self.last_use[x] = i
            for o in node.output:
                if o:
                    self.producer[o] = i
        self.types = {v.name: v.type for v in list(g.value_info) + list(g.input) + list(g.output)}

    def _order(self, nodes) -> list:
        """Node indices in topological order (stable: ONNX files are usually sorted already)."""
        known = {i.name for i in self.proto.graph.input} | set(self.inits) | set(self.sparse) | {""}
        reads = [[x for x in n.input if x] + sorted(_captures(n)) for n in nodes]
        if all(_available(r, known, n) for r, n in zip(reads, nodes)):
            return list(range(len(nodes)))
        known = {i.name for i in self.proto.graph.input} | set(self.inits) | set(self.sparse) | {""}
        # Kahn's algorithm, taking ready nodes in file order.
        producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
        waiting = [0] * len(nodes)
        consumers: dict = {}
        for i, r in enumerate(reads):
            for x in set(r):
                if x not in known:
                    if x not in producer:
                        raise InputError(f"node {nodes[i].name or i!r} ({nodes[i].op_type}) reads {x!r}, "
                                         "which no node produces")
                    waiting[i] += 1
                    consumers.setdefault(producer[x], []).append(i)
        ready = [i for i in range(len(nodes)) if waiting[i] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in consumers.get(i, []):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) != len(nodes):
            raise InputError("the graph has a cycle: its nodes cannot be put in topological order")
        return order

    def check_feeds(self, feeds) -> dict:
        if not isinstance(feeds, dict):
            raise UsageError(f"feeds must be a dict of numpy arrays by input name, got {type(feeds).__name__}")
        want = [i.name for i in self.inputs]
        missing = [n for n in want if n not in feeds]
        extra = [n for n in feeds if n not in want]
        if missing or extra:
            raise UsageError(f"feeds do not match the model's inputs {want}: "
                             + "; ".join(x for x in (missing and f"missing {missing}", extra and f"unknown {extra}") if x))
        from onnx import helper

        out = {}
        for inp in self.inputs:
            arr = feeds[inp.name]
            if not isinstance(arr, np.ndarray):
                raise UsageError(f"feed {inp.name!r} is a {type(arr).__name__}, expected a numpy array")
            tt = inp.type.tensor_type
            if inp.type.HasField("tensor_type") and tt.elem_type:
                try:
                    want_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
                except Exception:
                    want_dtype = None
                if want_dtype is not None and arr.dtype != want_dtype:
                    raise UsageError(f"feed {inp.name!r} is {arr.dtype.name}, the model expects {want_dtype.name}")
                if tt.HasField("shape"):
                    dims = tt.shape.dim
                    if len(dims) != arr.ndim or any(d.HasField("dim_value") and d.dim_value != s
                                                    for d, s in zip(dims, arr.shape)):
                        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
                        raise UsageError(f"feed {inp.name!r} has shape {list(arr.shape)}, the model expects {shape}")
            out[inp.name] = arr
        return out

    def initializer(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name], base_dir=self.weights_dir)
        sp = self.sparse[name]
        values = numpy_helper.to_array(sp.values, base_dir=self.weights_dir)
        idx = numpy_helper.to_array(sp.indices, base_dir=self.weights_dir).astype(np.int64)
        dense = np.zeros(tuple(sp.dims), dtype=values.dtype)
        if idx.ndim == 1:
            dense.reshape(-1)[idx] = values
        else:
            dense[tuple(idx.T)] = values
        return dense

    def label(self, i: int) -> str:
        return f"{self.names[i]!r} ({self.nodes[i].op_type})"

    def meta(self, i: int, key: str) -> str | None:
        for prop in self.nodes[i].metadata_props:
            if prop.key == key:
                return prop.value
        return None

    def scopes(self, i: int) -> list | None:
        """The torch.onnx dynamo exporter's name scopes of node i: module paths, then the FX node."""
        text = self.meta(i, SCOPES_KEY)
        if text is None:
            return None
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return [str(s) for s in value] if isinstance(value, (list, tuple)) else None


def _available(reads, known, node) -> bool:
    ok = all(x in known for x in reads)
    known.update(o for o in node.output if o)
    return ok


def _captures(node) -> set:
    """Names a node's subgraphs read from the enclosing scope."""
    out: set = set()
    for attr in node.attribute:
        graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for g in graphs:
            out |= _graph_captures(g)
    return out


def _graph_captures(g) -> set:
    defined = {i.name for i in g.input} | {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    used: set = set()
    for node in g.node:
        used.update(x for x in node.input if x and x not in defined)
        used |= {x for x in _captures(node) if x not in defined}
        defined.update(o for o in node.output if o)
    used.update(o.name for o in g.output if o.name not in defined)
    return used


# -- ONNX Runtime, chunk by chunk -----------------------------------------------------------------

class _OrtChunks:
    def __init__(self, model: _Model, feeds: dict):
        from bridge.frameworks import ort as ort_framework  # frameworks/ is where onnxruntime is imported

        self.ort = ort_framework.ort
        self.model = model
        self.feeds = feeds

    def options(self, optimize: bool = False):
        so = self.ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not optimize:
            so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if self.model.external:
            so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                        self.model.weights_dir)
        return so

    def run(self, upto: int, names: list) -> dict:
        """ONNX Runtime on the graph cut after node ``upto``, returning ``names``. Raises
        _Unavailable with ONNX Runtime's message when it cannot build or run that graph."""
        import onnx

        m = self.model
        src = m.proto
        sub = onnx.ModelProto()
        sub.ir_version = src.ir_version
        sub.opset_import.extend(src.opset_import)
        sub.functions.extend(src.functions)
        g = sub.graph
        g.name = src.graph.name or "localize"
        nodes = m.nodes[:upto + 1]
        g.node.extend(nodes)
        used = {x for i in range(upto + 1) for x in m.reads[i]}
        g.input.extend(i for i in src.graph.input
                       if i.name in used or (i.name not in m.inits and i.name not in m.sparse))
        g.initializer.extend(t for name, t in m.inits.items() if name in used)
        g.sparse_initializer.extend(t for name, t in m.sparse.items() if name in used)
        for name in names:
            g.output.add().name = name
        try:
            session = self.ort.InferenceSession(sub.SerializeToString(), sess_options=self.options(),
                                                providers=["CPUExecutionProvider"])
            values = session.run(list(names), self.feeds)
        except Exception as exc:
            raise _Unavailable(_first_line(exc)) from None
        return dict(zip(names, values, strict=True))

    def run_full(self, optimize: bool) -> dict:
        try:
            session = self.ort.InferenceSession(self.model.path, sess_options=self.options(optimize),
                                                providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            return dict(zip(names, session.run(names, self.feeds), strict=True))
        except Exception as exc:
            raise _Unavailable(_first_line(exc)) from None


# -- step 1: ONNX Runtime against the reference evaluator ------------------------------------------

def _ort_vs_reference(model: _Model, feeds, policy, chunk_size, ort_side, notes, reference_ops):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    functions = []
    for f in model.proto.functions:
        try:
            functions.append(ReferenceEvaluator(f, functions=list(functions), new_ops=list(reference_ops) or None))
        except Exception as exc:
            notes.append(f"reference evaluator cannot load local function {f.domain}.{f.name}: {_first_line(exc)}")
    # Top-1 agreement is a property of classifier outputs, not of intermediates.
    inner = replace(policy, min_top1_agreement=None)
    live: dict = dict(feeds)  # reference values still needed downstream
    missing: set = set()  # values neither engine produced
    ref_failed: dict = {}  # op -> [first node, count, error]
    compared, ran_any = 0, False
    skipped_nontensor = 0
    for start, stop in _chunks([len([o for o in n.output if o]) for n in model.nodes], chunk_size):
        names = [o for n in model.nodes[start:stop] for o in n.output if o]
        try:
            ort_values = ort_side.run(stop - 1, names) if names else {}
            ran_any = ran_any or bool(names)
        except _Unavailable as exc:
            notes.append(f"ONNX Runtime could not run the graph up to node {model.label(stop - 1)}: {exc}")
            ort_values = {}
        for i in range(start, stop):
            node = model.nodes[i]
            outs = [o for o in node.output if o]
            reads = model.reads[i]
            for x in reads:
                if x not in live and x not in missing and (x in model.inits or x in model.sparse):
                    live[x] = model.initializer(x)
            ref_out = None
            if not any(x in missing for x in reads):
                try:
                    ref_out = _run_reference_node(node, reads, {x: live[x] for x in reads}, model.opsets,
                                                  functions, reference_ops, helper, ReferenceEvaluator)
                except Exception as exc:
                    entry = ref_failed.setdefault(node.op_type if not node.domain else f"{node.domain}.{node.op_type}",
                                                  [model.names[i], 0, _first_line(exc)])
                    entry[1] += 1
            for name in outs:
                cand = ort_values.get(name)
                ref = ref_out.get(name) if ref_out is not None else None
                if ref is None and cand is None:
                    missing.add(name)
                    continue
                if ref is None:
                    live[name] = cand  # the reference could not run it: ONNX Runtime's value stands in
                    continue
                if cand is None:
                    live[name] = ref
                    continue
                if not isinstance(ref, np.ndarray) or not isinstance(cand, np.ndarray):
                    skipped_nontensor += 1
                    live[name] = ref
                    continue
                if ref.dtype != cand.dtype and ref.dtype.kind == "f" and cand.dtype.kind == "f":
                    ref = ref.astype(cand.dtype)  # the reference evaluator sometimes widens (float64)
                result = compare_one(name, ref, cand, policy if name in model.output_names else inner)
                compared += 1
                live[name] = ref
                if result.status == FAIL:
                    inputs = {x: live[x] for x in reads if x not in model.inits and x not in model.sparse}
                    expected = {o: ref_out[o] for o in outs if isinstance(ref_out.get(o), np.ndarray)}
                    _note_reference_failures(ref_failed, notes)
                    if skipped_nontensor:
                        notes.append(f"{skipped_nontensor} non-tensor values (sequences, maps) were not compared")
                    return _Finding(ORT_VS_REFERENCE, i, name, result, list(expected), inputs, expected,
                                    "the onnx reference evaluator", "the onnx reference evaluator",
                                    allowed_nodes={i}), compared, True
            for x in reads:
                if model.last_use.get(x) == i and x not in feeds:
                    live.pop(x, None)
            for name in outs:
                if name not in model.last_use:
                    live.pop(name, None)
    _note_reference_failures(ref_failed, notes)
    if skipped_nontensor:
        notes.append(f"{skipped_nontensor} non-tensor values (sequences, maps) were not compared")
    return None, compared, ran_any


def _run_reference_node(node, reads, values, opsets, functions, reference_ops, helper, ReferenceEvaluator):
    """One node in the reference evaluator, inside a one-node graph with the model's opsets (a bare
    NodeProto would run at the newest opset)."""
    outs = [o for o in node.output if o]
    graph = helper.make_graph([node], "node", [_bare_value(x) for x in reads], [_bare_value(o) for o in outs])
    ev = ReferenceEvaluator(graph, opsets=dict(opsets), functions=functions or None,
                            new_ops=list(reference_ops) or None)
    got = ev.run(None, values)
    return {o: (np.asarray(v) if isinstance(v, (np.ndarray, np.generic)) else v) for o, v in zip(outs, got)}


def _bare_value(name: str):
    from onnx import ValueInfoProto

    v = ValueInfoProto()
    v.name = name
    return v


def _note_reference_failures(ref_failed: dict, notes: list) -> None:
    for op, (first, count, error) in ref_failed.items():
        more = f" and {count - 1} more" if count > 1 else ""
        notes.append(f"reference evaluator could not run op {op} (node {first!r}{more}): {error.rstrip('.')}; "
                     "ONNX Runtime's values stand in for its outputs downstream")


def _chunks(sizes: list, chunk_size: int):
    """[start, stop) node ranges whose output counts add up to at most chunk_size (one node at least)."""
    start, total = 0, 0
    for i, n in enumerate(sizes):
        if i > start and total + n > chunk_size:
            yield start, i
            start, total = i, 0
        total += n
    if start < len(sizes):
        yield start, len(sizes)


# -- step 2: ONNX against the native torch module ----------------------------------------------------

def _onnx_vs_native(model: _Model, feeds, policy, chunk_size, ort_side, native, notes):
    if getattr(native, "framework", None) != "torch" or not hasattr(native, "capture_modules"):
        notes.append(f"native intermediates are matched for torch models only "
                     f"(got {getattr(native, 'framework', type(native).__name__)}): onnx-vs-native skipped")
        return None, 0
    runs = _module_runs(model)
    if not runs:
        notes.append(f"the ONNX file carries no {SCOPES_KEY} node metadata (not written by the torch.onnx "
                     "dynamo exporter, or stripped by a later tool): native modules cannot be matched")
        return None, 0
    try:
        trace = native.capture_modules(feeds, keep=set())
    except BridgeError:
        raise
    except Exception as exc:
        notes.append(f"the native model failed while capturing module outputs: {_first_line(exc)}")
        return None, 0
    calls: dict = {}
    for name, *_ in trace:
        calls[name] = calls.get(name, 0) + 1
    pairs = []  # (name, call, node index, onnx value), in completion order
    unmatched = []
    for name, call, leaves, _ in trace:
        module_runs = runs.get(name)
        if not module_runs:
            continue  # no ONNX node in its scope (folded away, or an Identity/Dropout)
        if len(module_runs) != calls[name]:
            if call == 0:
                unmatched.append(f"{name or '<root>'} ({calls[name]} calls, {len(module_runs)} node runs)")
            continue
        if len(leaves) != 1:
            if call == 0:
                unmatched.append(f"{name or '<root>'} ({len(leaves)} tensor outputs)")
            continue
        shape, dtype = leaves[0]
        value = _run_output(model, module_runs[call], shape, dtype)
        if value is None:
            if call == 0:
                unmatched.append(f"{name or '<root>'} (no node output of shape {list(shape)} {dtype})")
            continue
        pairs.append((name, call, value[0], value[1], module_runs[call]))
    if unmatched:
        notes.append(f"native modules not matched to ONNX values: {', '.join(unmatched[:10])}"
                     + (f" and {len(unmatched) - 10} more" if len(unmatched) > 10 else ""))
    inner = replace(policy, min_top1_agreement=None)
    compared, mismatched = 0, []
    for start in range(0, len(pairs), chunk_size):
        chunk = pairs[start:start + chunk_size]
        names = list(dict.fromkeys(p[3] for p in chunk))
        try:
            onnx_values = ort_side.run(max(p[2] for p in chunk), names)
        except _Unavailable as exc:
            notes.append(f"ONNX Runtime could not run the graph for module outputs: {exc}")
            continue
        keep = {(p[0], p[1]) for p in chunk}
        captured = {(n, c): (outs, ins) for n, c, outs, ins in native.capture_modules(feeds, keep=keep)
                    if (n, c) in keep}
        for name, call, index, value, run in chunk:
            got = captured.get((name, call))
            cand = onnx_values[value]
            if got is None or not got[0]:
                mismatched.append(f"{name or '<root>'} (the native call did not recur on a second run)")
                continue
            ref = got[0][0]
            if not isinstance(cand, np.ndarray) or ref.shape != cand.shape or ref.dtype != cand.dtype:
                mismatched.append(f"{name or '<root>'} (native {ref.dtype.name}{list(ref.shape)}, ONNX value "
                                  f"{value!r} {getattr(cand, 'dtype', type(cand).__name__)}{list(np.shape(cand))})")
                continue
            result = compare_one(value, ref, cand, policy if value in model.output_names else inner)
            compared += 1
            if result.status == FAIL:
                frontier = _frontier(model, value, set(run))
                computed = [x for x in frontier if x in model.producer]
                inputs = {x: feeds[x] for x in frontier if x in feeds}
                try:
                    if computed:
                        inputs.update(ort_side.run(max(model.producer[x] for x in computed), computed))
                except _Unavailable as exc:
                    notes.append(f"ONNX Runtime could not compute the inputs of module {name or '<root>'}: {exc}")
                    inputs = None
                _note_mismatched(mismatched, notes)
                _check_module_input(model, name, run, computed, inputs, got[1], policy, notes)
                return _Finding(ONNX_VS_NATIVE, index, value, result, [value], inputs, {value: ref},
                                f"the native torch module {name or '<root>'} (call {call})", "ONNX Runtime",
                                module=name, module_call=call, allowed_nodes=set(run)), compared
    _note_mismatched(mismatched, notes)
    return None, compared


def _note_mismatched(mismatched: list, notes: list) -> None:
    if mismatched:
        notes.append(f"module outputs not compared (shape or dtype differ from the matched ONNX value): "
                     f"{', '.join(mismatched[:10])}" + (f" and {len(mismatched) - 10} more" if len(mismatched) > 10 else ""))


def _check_module_input(model, name, run, computed, inputs, native_inputs, policy, notes) -> None:
    """When the diverging module reads one computed value and takes one tensor, compare the two: if
    they differ, the divergence starts before the module, in operations no matched module covers."""
    if inputs is None or len(computed) != 1 or len(native_inputs) != 1:
        return
    value, ref = computed[0], native_inputs[0]
    # Only where an FX node of the module's run names the value among its arguments: an optimizer
    # may have fused the module with its neighbour (Conv into BatchNorm), and the value then stands
    # for something else than the module's input.
    if not any(value in model.reads[i] and re.search(r"%" + re.escape(value) + r"\b", model.meta(i, FX_KEY) or "")
               for i in run):
        return
    cand = inputs.get(value)
    if not isinstance(cand, np.ndarray) or cand.shape != ref.shape or cand.dtype != ref.dtype:
        return
    r = compare_one(value, ref, cand, policy)
    if r.status == FAIL:
        i = model.producer[value]
        scopes = model.scopes(i) or []
        where = f" inside module {scopes[-2] or '<root>'}" if len(scopes) >= 2 else ""
        notes.append(f"module {name or '<root>'}'s input {value!r} already differs from the native input "
                     f"(max abs {r.max_abs:.3g}): the divergence starts before it, at or before node "
                     f"{model.label(i)}{where}, in operations no matched module covers")


def _module_runs(model: _Model) -> dict:
    """Per module path: the contiguous runs of nodes inside its name scope, in graph order. Nodes
    without scope metadata (added by an optimizer) neither join nor break a run."""
    runs: dict = {}
    open_runs: dict = {}
    for i in range(len(model.nodes)):
        scopes = model.scopes(i)
        if scopes is None:
            continue
        modules = set()
        for s in scopes[:-1]:  # the last entry is the FX node's own name
            modules.add(re.sub(r"@\d+$", "", s))
        for name in [n for n in open_runs if n not in modules]:
            runs.setdefault(name, []).append(open_runs.pop(name))
        for name in modules:
            open_runs.setdefault(name, []).append(i)
    for name, run in open_runs.items():
        runs.setdefault(name, []).append(run)
    return runs


def _run_output(model: _Model, run: list, shape: tuple, dtype: str):
    """The value a module call returns: the last output in its run whose declared type fits."""
    from onnx import helper

    fallback = None
    for i in reversed(run):
        for o in model.nodes[i].output:
            if not o:
                continue
            if fallback is None:
                fallback = (i, o)
            t = model.types.get(o)
            if t is None or not t.HasField("tensor_type"):
                continue
            tt = t.tensor_type
            try:
                if np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name != dtype:
                    continue
            except Exception:
                continue
            if tt.HasField("shape"):
                dims = tt.shape.dim
                if len(dims) != len(shape) or any(d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, shape)):
                    continue
            return i, o
    if fallback is not None and all(model.types.get(o) is None for i in run for o in model.nodes[i].output if o):
        return fallback  # no type information at all: trust the last node
    return None


def _frontier(model: _Model, output: str, allowed: set) -> list:
    """The values a sub-model made of ``allowed`` nodes needs as inputs to compute ``output``."""
    inputs, seen, stack = [], set(), [output]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        i = model.producer.get(name)
        if i is not None and i in allowed:
            stack.extend(model.reads[i])
        elif name not in model.inits and name not in model.sparse:
            inputs.append(name)
    return sorted(inputs)


# -- after a clean pass: ONNX Runtime's optimizations --------------------------------------------------

def _check_optimizations(model: _Model, ort_side: _OrtChunks, policy, notes) -> None:
    try:
        plain = ort_side.run_full(optimize=False)
        fused = ort_side.run_full(optimize=True)
    except _Unavailable:
        return
    for name, ref in plain.items():
        cand = fused.get(name)
        if isinstance(ref, np.ndarray) and isinstance(cand, np.ndarray):
            r = compare_one(name, ref, cand, policy)
            if r.status == FAIL:
                notes.append(f"ONNX Runtime's graph optimizations change output {name!r} beyond tolerance "
                             f"(max abs {r.max_abs:.3g}): the divergence is in a fused or rewritten kernel, "
                             "which node-by-node localization (optimizations off) cannot see")


# -- the reproduction ------------------------------------------------------------------------------------

def _extract(model: _Model, f: _Finding):
    """The sub-model: ``f.allowed_nodes`` between f.inputs and f.sub_outputs, cut with onnx.utils.Extractor.
    Types of its inputs and outputs are those of the actual values (concrete shapes)."""
    import onnx
    from onnx import external_data_helper as edh
    from onnx import helper

    if f.inputs is None:
        raise _Unavailable("the sub-model's input values could not be computed")
    values = {**f.inputs, **f.expected}
    for name, arr in values.items():
        if not isinstance(arr, np.ndarray):
            raise _Unavailable(f"value {name!r} is not a tensor")
    g = model.proto.graph
    added = 0
    try:
        for name, arr in values.items():
            g.value_info.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
            added += 1
        sub = onnx.utils.Extractor(model.proto).extract_model(list(f.inputs), list(f.sub_outputs))
    except Exception as exc:
        raise _Unavailable(f"onnx.utils.Extractor failed: {_first_line(exc)}") from None
    finally:
        if added:
            del g.value_info[len(g.value_info) - added:]
    # Extractor collects the initializers that node inputs name; subgraphs (If, Loop) may read more.
    present = {t.name for t in sub.graph.initializer}
    for n in sub.graph.node:
        for x in sorted(_captures(n)):
            if x in model.inits and x not in present:
                sub.graph.initializer.append(model.inits[x])
                present.add(x)
    io_names = set(values)
    keep = [v for v in sub.graph.value_info if v.name not in io_names]
    del sub.graph.value_info[:]
    sub.graph.value_info.extend(keep)
    for t in sub.graph.initializer:
        if edh.uses_external_data(t):
            edh.load_external_data_for_tensor(t, model.weights_dir)
    extracted = {model.producer.get(o) for n in sub.graph.node for o in n.output if o}
    if not extracted <= f.allowed_nodes:
        raise _Unavailable("the extracted sub-model reaches beyond the diverging nodes")
    sub.producer_name = "bridge.localize"
    return sub


def _reproduces(sub, f: _Finding, policy: Policy, outputs: list) -> bool:
    from bridge.frameworks import ort as ort_framework

    ort = ort_framework.ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(sub.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(names, {k: np.ascontiguousarray(v) for k, v in f.inputs.items()})))
    except Exception as exc:
        raise _Unavailable(f"ONNX Runtime cannot run the extracted sub-model: {_first_line(exc)}") from None
    inner = replace(policy, min_top1_agreement=None)
    for name, ref in f.expected.items():
        applied = policy if name in outputs else inner
        if name in got and compare_one(name, ref, np.asarray(got[name]), applied).status == FAIL:
            return True
    return False


def _check_out_dir(out_dir) -> Path:
    p = Path(out_dir)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"reproduction folder {out_dir} exists and is not a directory")
        foreign = sorted(set(os.listdir(p)) - set(REPRO_FILES) - set(_REPRO_EXTRA))
        if foreign:
            raise UsageError(f"reproduction folder {out_dir} exists and holds other files ({', '.join(foreign[:5])})",
                             hint="give a new or empty folder; an earlier reproduction folder is replaced")
    return p


def _write_repro(target: Path, sub, f: _Finding, result: LocalizeResult, model: _Model) -> None:
    import json

    import onnx

    target = target.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the folder is meant to be shared
        if sub.ByteSize() < 2**31 - 2**24:
            onnx.save_model(sub, str(tmp / "sub.onnx"))
        else:  # protobuf's 2 GB limit: the weights go next to it
            onnx.save_model(sub, str(tmp / "sub.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                            location="sub.onnx.data", size_threshold=1024)
        _savez(tmp / "inputs.npz", f.inputs)
        _savez(tmp / "expected.npz", f.expected)
        (tmp / "README.txt").write_text(_readme(f, result, model))
        (tmp / "localize.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rename(target, old / "previous")
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old / "previous", target)
        raise UsageError(f"cannot write the reproduction to {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})


_CHECK = '''python - <<'EOF'
import numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession("sub.onnx", so, providers=["CPUExecutionProvider"])
x, e = np.load("inputs.npz"), np.load("expected.npz")
got = dict(zip([o.name for o in s.get_outputs()], s.run(None, {{k: x[k] for k in x.files}})))
for k in e.files:
    a, b = got[k], e[k]
    if a.shape != b.shape:
        print(k, "shape", a.shape, "vs expected", b.shape, "MISMATCH")
        continue
    a, b = a.astype(np.float64), b.astype(np.float64)
    err = np.abs(a - b)
    bad = ~(err <= {atol!r}{scaled} + {rtol!r} * np.abs(b))
    print(k, "max abs error", err.max(), "MISMATCH" if bad.any() else "ok")
EOF'''


def _readme(f: _Finding, result: LocalizeResult, model: _Model) -> str:
    tol = f.comparison.tolerance or Tolerance(0.0, 0.0)
    scale = float(getattr(tol, "scale_atol", 0.0) or 0.0)  # an absolute part scaled to max|expected|
    i = f.node_index
    what = (f"module {f.module or '<root>'} (call {f.module_call}), last node {model.label(i)}"
            if f.engines == ONNX_VS_NATIVE else f"node {model.label(i)}")
    lines = [
        "bridge localize: minimal reproduction of the first divergence",
        "",
        f"model:      {model.path}",
        f"engines:    {f.engines}",
        f"diverging:  {what}, output {f.output!r}",
        f"comparison: {f.comparison.reason}",
        f"tolerance:  atol={tol.atol:g}" + (f" + {scale:g}*max|expected|" if scale else "")
        + f" rtol={tol.rtol:g} (|onnx - expected| <= atol + rtol * |expected|)",
        f"reproduces: {'yes' if result.reproduces else 'no' if result.reproduces is False else 'unknown'} "
        "(sub.onnx in ONNX Runtime on inputs.npz against expected.npz)",
        "",
        "files:",
        f"  sub.onnx       the diverging {'nodes' if len(f.allowed_nodes) > 1 else 'node'} alone, weights included; "
        f"inputs {list(f.inputs)}, outputs {list(f.sub_outputs)}",
        f"  inputs.npz     its input values, as computed by {f.inputs_from}",
        f"  expected.npz   its expected outputs, from {f.expected_from}",
        "  localize.json  the full localization result",
        "",
        "reproduce (in this folder; needs numpy and onnxruntime): a line ending in MISMATCH is the divergence",
        "",
        _CHECK.format(atol=tol.atol, rtol=tol.rtol, scaled=f" + {scale!r} * np.abs(b).max()" if scale else ""),
        "",
    ]
    if f.engines == ORT_VS_REFERENCE:
        lines += ["the expected values come from the onnx reference evaluator:",
                  "  python -c 'import numpy as np; from onnx.reference import ReferenceEvaluator as R; "
                  "x = np.load(\"inputs.npz\"); print(R(\"sub.onnx\").run(None, {k: x[k] for k in x.files}))'", ""]
    return "\n".join(lines)


# -- results ------------------------------------------------------------------------------------------

def _result(model, f: _Finding, compared1, compared2, other, notes, reproduces, repro_dir) -> LocalizeResult:
    c = f.comparison
    node = model.nodes[f.node_index]
    return LocalizeResult(
        DIVERGED, engines=f.engines, node=model.names[f.node_index], node_index=f.node_index,
        op_type=node.op_type if not node.domain else f"{node.domain}.{node.op_type}", output=f.output,
        module=f.module, module_call=f.module_call, max_abs=c.max_abs, max_rel=c.max_rel, tolerance=c.tolerance,
        reason=c.reason, compared=compared1, compared_native=compared2, reproduces=reproduces,
        repro_dir=repro_dir, comparison=c, other=other, notes=tuple(_cap(notes)))


def _finding_json(model, f: _Finding) -> dict:
    c = f.comparison
    return {"engines": f.engines, "node": model.names[f.node_index], "node_index": f.node_index,
            "op_type": model.nodes[f.node_index].op_type, "output": f.output, "module": f.module,
            "module_call": f.module_call, "max_abs": json_float(c.max_abs), "max_rel": json_float(c.max_rel),
            "reason": c.reason}


def _cap(notes: list) -> list:
    out = list(dict.fromkeys(notes))
    if len(out) > _MAX_NOTES:
        out = out[:_MAX_NOTES] + [f"... {len(out) - _MAX_NOTES} more notes"]
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else type(exc).__name__)
