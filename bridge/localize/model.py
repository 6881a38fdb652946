"""The ONNX model under localization: nodes in topological order, the values each node reads
(subgraph captures included), where the weights live, and the torch.onnx name-scope metadata."""

from __future__ import annotations

import ast
import heapq
import os
from pathlib import Path

import numpy as np

from bridge.errors import InputError, UsageError

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
FX_KEY = "pkg.torch.onnx.fx_node"
_EXTERNALIZE_ABOVE = 64 * 2**20  # embedded weights above this go to a temp file once, not into every chunk


class Unavailable(Exception):
    pass


class Model:
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
            raise InputError(f"cannot load {path} with onnx: {first_line(exc)}") from None
        self.path = str(p)
        self.weights_dir = str(p.resolve().parent)
        external = any(edh.uses_external_data(t) for t in proto.graph.initializer)
        if not external and proto.ByteSize() > _EXTERNALIZE_ABOVE:
            # Once, to a temp file: every chunk's session then copies the graph, not the weights.
            onnx.save_model(
                proto,
                os.path.join(tmp, "model.onnx"),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location="weights.bin",
                size_threshold=1024,
            )
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
            reads = list(dict.fromkeys([x for x in node.input if x] + sorted(captures(node))))
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
        reads = [[x for x in n.input if x] + sorted(captures(n)) for n in nodes]
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
                        raise InputError(
                            f"node {nodes[i].name or i!r} ({nodes[i].op_type}) reads {x!r}, which no node produces"
                        )
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
            raise UsageError(
                f"feeds do not match the model's inputs {want}: "
                + "; ".join(x for x in (missing and f"missing {missing}", extra and f"unknown {extra}") if x)
            )
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
                    if len(dims) != arr.ndim or any(
                        d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, arr.shape)
                    ):
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


def captures(node) -> set:
    """Names a node's subgraphs read from the enclosing scope."""
    out: set = set()
    for attr in node.attribute:
        graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for g in graphs:
            out |= _graph_captures(g)
    return out


def _graph_captures(g) -> set:
    defined = (
        {i.name for i in g.input} | {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    )
    used: set = set()
    for node in g.node:
        used.update(x for x in node.input if x and x not in defined)
        used |= {x for x in captures(node) if x not in defined}
        defined.update(o for o in node.output if o)
    used.update(o.name for o in g.output if o.name not in defined)
    return used


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
