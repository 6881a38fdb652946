"""ONNX against the native torch module: module outputs captured with forward hooks, matched to the
ONNX values of the node runs inside each module's name scope, and compared chunk by chunk."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from bridge.errors import BridgeError
from bridge.localize.model import FX_KEY, SCOPES_KEY, Model, Unavailable, first_line
from bridge.localize.result import ONNX_VS_NATIVE, Finding
from bridge.verdict.compare import FAIL, compare_one


def onnx_vs_native(model: Model, feeds, policy, chunk_size, ort_side, native, notes):
    if getattr(native, "framework", None) != "torch" or not hasattr(native, "capture_modules"):
        notes.append(
            f"native intermediates are matched for torch models only "
            f"(got {getattr(native, 'framework', type(native).__name__)}): onnx-vs-native skipped"
        )
        return None, 0
    runs = _module_runs(model)
    if not runs:
        notes.append(
            f"the ONNX file carries no {SCOPES_KEY} node metadata (not written by the torch.onnx "
            "dynamo exporter, or stripped by a later tool): native modules cannot be matched"
        )
        return None, 0
    try:
        trace = native.capture_modules(feeds, keep=set())
    except BridgeError:
        raise
    except Exception as exc:
        notes.append(f"the native model failed while capturing module outputs: {first_line(exc)}")
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
        notes.append(
            f"native modules not matched to ONNX values: {', '.join(unmatched[:10])}"
            + (f" and {len(unmatched) - 10} more" if len(unmatched) > 10 else "")
        )
    inner = replace(policy, min_top1_agreement=None)
    compared, mismatched = 0, []
    passed: dict = {}  # ONNX value -> (module, call) of a module output that matched the native one
    for start in range(0, len(pairs), chunk_size):
        chunk = pairs[start : start + chunk_size]
        names = list(dict.fromkeys(p[3] for p in chunk))
        try:
            onnx_values = ort_side.run(max(p[2] for p in chunk), names)
        except Unavailable as exc:
            notes.append(f"ONNX Runtime could not run the graph for module outputs: {exc}")
            continue
        keep = {(p[0], p[1]) for p in chunk}
        captured = {
            (n, c): (outs, ins) for n, c, outs, ins in native.capture_modules(feeds, keep=keep) if (n, c) in keep
        }
        for name, call, index, value, run in chunk:
            got = captured.get((name, call))
            cand = onnx_values[value]
            if got is None or not got[0]:
                mismatched.append(f"{name or '<root>'} (the native call did not recur on a second run)")
                continue
            ref = got[0][0]
            if not isinstance(cand, np.ndarray) or ref.shape != cand.shape or ref.dtype != cand.dtype:
                mismatched.append(
                    f"{name or '<root>'} (native {ref.dtype.name}{list(ref.shape)}, ONNX value "
                    f"{value!r} {getattr(cand, 'dtype', type(cand).__name__)}{list(np.shape(cand))})"
                )
                continue
            result = compare_one(value, ref, cand, policy if value in model.output_names else inner)
            compared += 1
            if result.status != FAIL:
                passed.setdefault(value, (name, call))
                continue
            frontier = _frontier(model, value, set(run))
            computed = [x for x in frontier if x in model.producer]
            inputs = {x: feeds[x] for x in frontier if x in feeds}
            try:
                if computed:
                    inputs.update(ort_side.run(max(model.producer[x] for x in computed), computed))
            except Unavailable as exc:
                notes.append(f"ONNX Runtime could not compute the inputs of module {name or '<root>'}: {exc}")
                inputs = None
            _note_mismatched(mismatched, notes)
            label = f"module {name or '<root>'} (call {call})"
            before = _check_module_input(model, name, run, computed, inputs, got[1], policy)
            if before is not None:
                earlier = _uncovered_finding(model, feeds, native, passed, before, label, notes)
                if earlier is not None:
                    return earlier, compared
            inputs_from = "ONNX Runtime"
            if inputs is not None and len(computed) == 1 and len(got[1]) == 1:
                native_in = got[1][0]
                ort_in = inputs[computed[0]]
                if (
                    isinstance(ort_in, np.ndarray)
                    and native_in.shape == ort_in.shape
                    and native_in.dtype == ort_in.dtype
                ):
                    # The module's own native input: the reproduction shows what the module alone does wrong.
                    inputs = {**inputs, computed[0]: native_in}
                    inputs_from = f"the native model (the input of {label})"
            return _against_native(
                index,
                value,
                result,
                ref,
                inputs,
                f"the native torch {label}",
                inputs_from,
                set(run),
                module=name,
                module_call=call,
            ), compared
    _note_mismatched(mismatched, notes)
    return None, compared


def _note_mismatched(mismatched: list, notes: list) -> None:
    if mismatched:
        notes.append(
            f"module outputs not compared (shape or dtype differ from the matched ONNX value): "
            f"{', '.join(mismatched[:10])}" + (f" and {len(mismatched) - 10} more" if len(mismatched) > 10 else "")
        )


def _check_module_input(model, name, run, computed, inputs, native_inputs, policy):
    """When the diverging module reads one computed value and takes one tensor, compare the two.
    Returns (value, native input, comparison) when they differ: the divergence starts before the module,
    in operations no matched module covers; else None."""
    if inputs is None or len(computed) != 1 or len(native_inputs) != 1:
        return None
    value, ref = computed[0], native_inputs[0]
    # Only where an FX node of the module's run names the value among its arguments: an optimizer
    # may have fused the module with its neighbour (Conv into BatchNorm), and the value then stands
    # for something else than the module's input.
    if not any(
        value in model.reads[i] and re.search(r"%" + re.escape(value) + r"\b", model.meta(i, FX_KEY) or "") for i in run
    ):
        return None
    cand = inputs.get(value)
    if not isinstance(cand, np.ndarray) or cand.shape != ref.shape or cand.dtype != ref.dtype:
        return None
    r = compare_one(value, ref, cand, replace(policy, min_top1_agreement=None))
    return (value, ref, r) if r.status == FAIL else None


_MAX_SEGMENT = 500  # nodes: a longer uncovered stretch is reported as before, at the module


def _uncovered_finding(model, feeds, native, passed: dict, before, label: str, notes: list):
    """The divergence before a failing module, in nodes no matched module covers: the nodes that compute
    the module's input from values known to match natively (graph inputs, outputs of modules that
    passed). The reproduction feeds those nodes the native values and expects the module's native input,
    so it shows only what goes wrong there."""
    value, ref, result = before
    segment, known, stack, seen = set(), [], [value], set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        if x in feeds or x in passed:
            known.append(x)
            continue
        if x in model.inits or x in model.sparse:
            continue
        i = model.producer.get(x)
        if i is None or len(segment) >= _MAX_SEGMENT:
            return None
        segment.add(i)
        stack.extend(model.reads[i])
    modules = {passed[x] for x in known if x not in feeds}
    values = {x: feeds[x] for x in known if x in feeds}
    if modules:
        try:
            captured = {(n, c): outs for n, c, outs, _ in native.capture_modules(feeds, keep=modules)}
        except Exception as exc:  # noqa: BLE001 - the module-level finding still stands
            notes.append(f"the native model failed while capturing module outputs: {first_line(exc)}")
            return None
        for x in known:
            if x in passed and x not in values:
                outs = captured.get(passed[x]) or []
                if len(outs) != 1 or not isinstance(outs[0], np.ndarray):
                    return None
                values[x] = outs[0]
    index = model.producer[value]
    nodes = sorted(segment)
    listed = ", ".join(model.label(i) for i in nodes[:8]) + (f" and {len(nodes) - 8} more" if len(nodes) > 8 else "")
    sources = ["the graph inputs"] if any(x in feeds for x in known) else []
    sources += [f"module {n or '<root>'} (call {c})'s output" for n, c in sorted(modules)]
    notes.append(
        f"{label} fails, but its input {value!r} already differs from the native one (max abs "
        f"{result.max_abs:.3g}): the divergence is in the {len(nodes)} node{'s' if len(nodes) != 1 else ''} no "
        f"native module covers between {' and '.join(sources) or 'constants'} and that input: {listed}"
    )
    return _against_native(
        index,
        value,
        result,
        ref,
        values,
        f"the native model (the input of {label})",
        "the native model (" + ", ".join(sources) + ")",
        set(segment),
    )


def _module_runs(model: Model) -> dict:
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


def _run_output(model: Model, run: list, shape: tuple, dtype: str):
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
                if len(dims) != len(shape) or any(
                    d.HasField("dim_value") and d.dim_value != s for d, s in zip(dims, shape)
                ):
                    continue
            return i, o
    if fallback is not None and all(model.types.get(o) is None for i in run for o in model.nodes[i].output if o):
        return fallback  # no type information at all: trust the last node
    return None


def _frontier(model: Model, output: str, allowed: set) -> list:
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


def _against_native(index, value, result, ref, inputs, expected_from, inputs_from, nodes, **where) -> Finding:
    """A finding on one ONNX value checked against its native counterpart ``ref``."""
    return Finding(
        ONNX_VS_NATIVE,
        index,
        value,
        result,
        [value],
        inputs,
        {value: ref},
        expected_from,
        inputs_from,
        allowed_nodes=nodes,
        **where,
    )
