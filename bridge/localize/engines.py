"""ONNX Runtime against onnx's reference evaluator: ONNX Runtime run on the graph cut after each
chunk of nodes (at most chunk_size intermediates exposed per session), the reference evaluator node
by node; and, after a clean pass, whether ONNX Runtime's graph optimizations change the outputs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bridge.localize.model import Model, Unavailable, first_line
from bridge.localize.result import ORT_VS_REFERENCE, Finding
from bridge.verdict.compare import FAIL, compare_one


class OrtChunks:
    def __init__(self, model: Model, feeds: dict):
        self.model = model
        self.feeds = feeds

    def session(self, graph, optimize: bool = False):
        from bridge.frameworks.ort import session  # frameworks/ is where onnxruntime is imported

        return session(
            graph, "cpu", optimize=optimize, external_dir=self.model.weights_dir if self.model.external else None
        )

    def run(self, upto: int, names: list) -> dict:
        """ONNX Runtime on the graph cut after node ``upto``, returning ``names``. Raises
        Unavailable with ONNX Runtime's message when it cannot build or run that graph."""
        import onnx

        m = self.model
        src = m.proto
        sub = onnx.ModelProto()
        sub.ir_version = src.ir_version
        sub.opset_import.extend(src.opset_import)
        sub.functions.extend(src.functions)
        g = sub.graph
        g.name = src.graph.name or "localize"
        nodes = m.nodes[: upto + 1]
        g.node.extend(nodes)
        used = {x for i in range(upto + 1) for x in m.reads[i]}
        g.input.extend(
            i for i in src.graph.input if i.name in used or (i.name not in m.inits and i.name not in m.sparse)
        )
        g.initializer.extend(t for name, t in m.inits.items() if name in used)
        g.sparse_initializer.extend(t for name, t in m.sparse.items() if name in used)
        for name in names:
            g.output.add().name = name
        try:
            values = self.session(sub.SerializeToString()).run(list(names), self.feeds)
        except Exception as exc:
            raise Unavailable(first_line(exc)) from None
        return dict(zip(names, values, strict=True))

    def run_full(self, optimize: bool) -> dict:
        try:
            session = self.session(self.model.path, optimize)
            names = [o.name for o in session.get_outputs()]
            return dict(zip(names, session.run(names, self.feeds), strict=True))
        except Exception as exc:
            raise Unavailable(first_line(exc)) from None


# -- step 1: ONNX Runtime against the reference evaluator ------------------------------------------


def ort_vs_reference(model: Model, feeds, policy, chunk_size, ort_side, notes, reference_ops):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    functions = []
    for f in model.proto.functions:
        try:
            functions.append(ReferenceEvaluator(f, functions=list(functions), new_ops=list(reference_ops) or None))
        except Exception as exc:
            notes.append(f"reference evaluator cannot load local function {f.domain}.{f.name}: {first_line(exc)}")
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
        except Unavailable as exc:
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
                    ref_out = _run_reference_node(
                        node,
                        reads,
                        {x: live[x] for x in reads},
                        model.opsets,
                        functions,
                        reference_ops,
                        helper,
                        ReferenceEvaluator,
                    )
                except Exception as exc:
                    entry = ref_failed.setdefault(
                        node.op_type if not node.domain else f"{node.domain}.{node.op_type}",
                        [model.names[i], 0, first_line(exc)],
                    )
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
                    return (
                        Finding(
                            ORT_VS_REFERENCE,
                            i,
                            name,
                            result,
                            list(expected),
                            inputs,
                            expected,
                            "the onnx reference evaluator",
                            "the onnx reference evaluator",
                            allowed_nodes={i},
                        ),
                        compared,
                        True,
                    )
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
    ev = ReferenceEvaluator(
        graph, opsets=dict(opsets), functions=functions or None, new_ops=list(reference_ops) or None
    )
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
        notes.append(
            f"reference evaluator could not run op {op} (node {first!r}{more}): {error.rstrip('.')}; "
            "ONNX Runtime's values stand in for its outputs downstream"
        )


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


# -- after a clean pass: ONNX Runtime's optimizations --------------------------------------------------


def check_optimizations(model: Model, ort_side: OrtChunks, policy, notes) -> None:
    try:
        plain = ort_side.run_full(optimize=False)
        fused = ort_side.run_full(optimize=True)
    except Unavailable:
        return
    for name, ref in plain.items():
        cand = fused.get(name)
        if isinstance(ref, np.ndarray) and isinstance(cand, np.ndarray):
            r = compare_one(name, ref, cand, policy)
            if r.status == FAIL:
                notes.append(
                    f"ONNX Runtime's graph optimizations change output {name!r} beyond tolerance "
                    f"(max abs {r.max_abs:.3g}): the divergence is in a fused or rewritten kernel, "
                    "which node-by-node localization (optimizations off) cannot see"
                )
