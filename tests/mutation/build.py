"""Builder of the mutation suite: correct exports, then wrong ones made from them by code.

Run in a subprocess, one framework per process (torch and TensorFlow never share one, and neither
enters the pytest process):

    python tests/mutation/build.py torch OUT_DIR
    python tests/mutation/build.py keras OUT_DIR

Each run exports the correct base models with bridge's Python API (``run_export``, the same code
``bridge export`` runs), writes every mutant next to them and ends with ``OUT_DIR/plan_<fw>.json``:
mutant id -> the ``bridge verify`` arguments that check it. Three ways to make a wrong export:

* edit the exported graph with onnx.helper (a node inserted on an input or an output, a
  weight perturbed, names traded) and rehash the bundle, as a consistent hand-editor would;
* export the model in a way that drops what its factory declares (a fixed batch), as a bare .onnx;
* a factory that is itself the trap (a vacuous output, a train-mode model, BatchNormalization forced
  into training mode), exported faithfully.

The graph edits at the top are pure onnx/numpy, independent of the exporter that wrote the graph.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from hostile.build import rehash  # noqa: E402

TORCH_FACTORIES = HERE / "factories_torch.py"
KERAS_FACTORIES = HERE / "factories_keras.py"
OPSET = 17


# -- graph edits (pure onnx) ------------------------------------------------------------------------------


def _rename(graph, mapping: dict, outputs: bool = False) -> None:
    """Rename value uses (and, with outputs=True, node outputs) everywhere, subgraphs included."""
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        if outputs:
            node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename(attr.g, mapping, outputs)
            for sub in attr.graphs:
                _rename(sub, mapping, outputs)


def _elem(graph, name: str) -> int:
    for v in list(graph.input) + list(graph.output):
        if v.name == name:
            return v.type.tensor_type.elem_type
    raise KeyError(name)


def _np_dtype(elem: int):
    return helper.tensor_dtype_to_np_dtype(elem)


def _const(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def on_input(m: onnx.ModelProto, name: str, build) -> None:
    """Every consumer of graph input ``name`` reads ``build(name, new)``'s result instead."""
    new = f"mut_{name}"
    _rename(m.graph, {name: new})
    nodes, inits = build(name, new)
    old = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(list(nodes) + old)
    m.graph.initializer.extend(inits)


def on_output(m: onnx.ModelProto, name: str, build) -> None:
    """Graph output ``name`` becomes ``build(orig, name)`` of what the graph computed for it."""
    orig = f"mut_{name}_orig"
    for node in m.graph.node:
        node.output[:] = [orig if o == name else o for o in node.output]
    _rename(m.graph, {name: orig})
    nodes, inits = build(orig, name)
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(inits)


def batch_of(ref: str, tag: str) -> list:
    """Nodes computing ``mut_<tag>_batch1d`` (int64[1]) = the size of axis 0 of value ``ref``."""
    return [
        helper.make_node("Shape", [ref], [f"mut_{tag}_shape"]),
        helper.make_node("Slice", [f"mut_{tag}_shape", "mut_zero_1d", "mut_one_1d"], [f"mut_{tag}_batch1d"]),
    ]


def _index_consts() -> list:
    return [_const("mut_zero_1d", [0], np.int64), _const("mut_one_1d", [1], np.int64)]


def wrong_at_top_id(m, name: str, top: int, use_instead: int = 0) -> None:
    """Id ``top`` (the last of the declared range) is looked up as ``use_instead``; every other id is right."""
    dt = _np_dtype(_elem(m.graph, name))
    on_input(
        m,
        name,
        lambda src, dst: (
            [
                helper.make_node("Equal", [src, "mut_top_id"], ["mut_is_top"]),
                helper.make_node("Where", ["mut_is_top", "mut_other_id", src], [dst]),
            ],
            [_const("mut_top_id", top, dt), _const("mut_other_id", use_instead, dt)],
        ),
    )


def wrong_near_top(m, name: str, above: float) -> None:
    """Values above ``above`` (near the top of the declared range) enter the graph negated."""
    dt = _np_dtype(_elem(m.graph, name))
    on_input(
        m,
        name,
        lambda src, dst: (
            [
                helper.make_node("Greater", [src, "mut_above"], ["mut_is_high"]),
                helper.make_node("Neg", [src], ["mut_negated"]),
                helper.make_node("Where", ["mut_is_high", "mut_negated", src], [dst]),
            ],
            [_const("mut_above", above, dt)],
        ),
    )


def wrong_from_batch(m, output: str, batch_input: str, threshold: int) -> None:
    """Output ``output`` is shifted by 1 when the batch (axis 0 of ``batch_input``) is >= threshold."""
    dt = _np_dtype(_elem(m.graph, output))
    on_output(
        m,
        output,
        lambda src, dst: (
            batch_of(batch_input, "b8")
            + [
                helper.make_node("GreaterOrEqual", ["mut_b8_batch1d", "mut_threshold"], ["mut_big_batch"]),
                helper.make_node("Add", [src, "mut_one_value"], ["mut_shifted"]),
                helper.make_node("Where", ["mut_big_batch", "mut_shifted", src], [dst]),
            ],
            _index_consts() + [_const("mut_threshold", [threshold], np.int64), _const("mut_one_value", 1, dt)],
        ),
    )


def slice_output_by_batch(m, output: str, batch_input: str, axis: int = 1) -> None:
    """Output ``output`` keeps only the first `batch` entries along ``axis`` (the sequence axis):
    right only while batch >= seq."""
    on_output(
        m,
        output,
        lambda src, dst: (
            batch_of(batch_input, "sl")
            + [helper.make_node("Slice", [src, "mut_zero_1d", "mut_sl_batch1d", "mut_axis_1d"], [dst])],
            _index_consts() + [_const("mut_axis_1d", [axis], np.int64)],
        ),
    )


def read_batch_steps(m, name: str, axis: int = 1) -> None:
    """The graph reads only the first `batch` time steps of input ``name`` (axis 1): right only
    while batch >= seq."""
    on_input(
        m,
        name,
        lambda src, dst: (
            batch_of(src, "rs")
            + [helper.make_node("Slice", [src, "mut_zero_1d", "mut_rs_batch1d", "mut_axis_1d"], [dst])],
            _index_consts() + [_const("mut_axis_1d", [axis], np.int64)],
        ),
    )


def trade_input_names(m, a: str, b: str) -> None:
    """Inputs ``a`` and ``b`` trade names; the graph's input order and its computation stay."""
    mapping = {a: b, b: a}
    for v in m.graph.input:
        v.name = mapping.get(v.name, v.name)
    _rename(m.graph, mapping)


def trade_output_names(m, p: str, q: str) -> None:
    """Outputs ``p`` and ``q`` trade names (the value computed as p is now called q)."""
    mapping = {p: q, q: p}
    for v in m.graph.output:
        v.name = mapping.get(v.name, v.name)
    _rename(m.graph, mapping, outputs=True)


def add_unit_axis(m, output: str, axis: int = 1) -> None:
    """Output ``output`` gains a size-1 axis: the same values, shape [batch, 1, ...]."""
    on_output(
        m,
        output,
        lambda src, dst: (
            [helper.make_node("Unsqueeze", [src, "mut_unit_axis"], [dst])],
            [_const("mut_unit_axis", [axis], np.int64)],
        ),
    )
    for v in m.graph.output:
        if v.name == output:
            shape = v.type.tensor_type.shape
            items = [(d.dim_param, d.dim_value) for d in shape.dim]
            items.insert(axis, ("", 1))
            shape.ClearField("dim")
            for param, value in items:
                d = shape.dim.add()
                if param:
                    d.dim_param = param
                else:
                    d.dim_value = value


def fix_batch_to_one(m) -> None:
    """Axis 0 of every graph input and output fixed to 1 (an export that forgot its dynamic axes)."""
    for v in list(m.graph.input) + list(m.graph.output):
        dims = v.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = 1


def perturb_weight(m, feeds: dict | None = None, scale: float = 1e-2, seed: int = 0) -> str:
    """Add ``scale * |w|`` noise to one weight read by a MatMul, Gemm or Conv (else any float
    initializer). With ``feeds``, the one whose noise moves the outputs most on them (ONNX Runtime),
    so that the corruption is plainly beyond any tolerance; else the largest. Returns its name."""
    floats = {
        i.name: i
        for i in m.graph.initializer
        if i.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16) and len(i.dims) >= 1
    }
    read = {n for node in m.graph.node if node.op_type in ("MatMul", "Gemm", "Conv") for n in node.input[1:]}
    pool = [floats[n] for n in floats if n in read] or list(floats.values())
    if not pool:
        raise RuntimeError("perturb_weight: the graph has no float initializer")

    def noisy(t):
        w = numpy_helper.to_array(t)
        rng = np.random.default_rng(seed)
        return numpy_helper.from_array((w + scale * np.abs(w) * rng.standard_normal(w.shape)).astype(w.dtype), t.name)

    if feeds is None:
        target = max(pool, key=lambda t: int(np.prod(t.dims)))
    else:
        import onnxruntime as ort

        def outputs(model):
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return sess.run(None, feeds)

        clean = outputs(m)

        def moved(t):
            trial = onnx.ModelProto()
            trial.CopyFrom(m)
            next(i for i in trial.graph.initializer if i.name == t.name).CopyFrom(noisy(t))
            return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)) for a, b in zip(outputs(trial), clean))

        target = max(pool, key=moved)
    target.CopyFrom(noisy(target))
    return target.name


def golden_feeds(bundle: Path) -> dict:
    """The first golden case's inputs of a bundle (to pick the weight a corruption shows on)."""
    with np.load(bundle / "golden.npz") as data:
        return {k.split("/", 2)[2]: data[k] for k in data.files if k.startswith("draw0/in/")}


def corrupt(bundle: Path):
    feeds = golden_feeds(bundle)
    return lambda m: perturb_weight(m, feeds)


def save(m: onnx.ModelProto, path: Path) -> Path:
    """Write an edited graph. Intermediate shape annotations are dropped (an edit can change them);
    the result must pass onnx's full check, as every graph bridge verifies does."""
    del m.graph.value_info[:]
    onnx.checker.check_model(m, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


def mutate_bundle(base: Path, dest: Path, edit) -> Path:
    """A copy of bundle ``base`` whose model.onnx went through ``edit``, with consistent hashes."""
    shutil.copytree(base, dest)
    m = onnx.load(str(dest / "model.onnx"))
    edit(m)
    save(m, dest / "model.onnx")
    rehash(dest)
    return dest


def mutate_file(base_bundle: Path, dest: Path, edit) -> Path:
    """A bare .onnx: the bundle's model.onnx after ``edit`` (no manifest, no golden outputs)."""
    m = onnx.load(str(base_bundle / "model.onnx"))
    edit(m)
    return save(m, dest)


def _export(source: str, dest: Path, ranges=(), inputs=()) -> Path:
    """A correct bundle, exported and verified by bridge's own export path."""
    from bridge.exporting import run_export
    from bridge.request import API, build

    report = run_export(
        build(
            "export", {"source": source, "output": str(dest), "input_ranges": list(ranges), "inputs": list(inputs)}, API
        )
    )
    if report.status != "pass" or not (dest / "manifest.json").is_file():
        raise RuntimeError(f"export of {source} did not give a passing bundle: {report.status}: {report.reason}")
    return dest


def _verify(target: Path, source: str | None = None, *extra) -> list[str]:
    """Arguments of one check. One intra-op thread per runtime: four checks share two cores, and
    idle pools spinning in each would steal them from the others (the verdicts do not depend on it)."""
    return ["verify", str(target), *(["--source", source] if source else []), "--threads", "1", *extra]


# -- torch (subprocess) -------------------------------------------------------------------------------------


class Plan(dict):
    """Mutant id -> the verify arguments that check it, or {"build_error": why} when its base could
    not be built: one failing base costs its own rows, not the whole suite."""

    @contextlib.contextmanager
    def group(self, *ids):
        try:
            yield
        except (Exception, SystemExit) as exc:
            text = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {text[0][:400] if text else ''}"
            for mid in ids:
                self.setdefault(mid, {"build_error": why})


def _quiet():
    return contextlib.ExitStack() if os.environ.get("MUTATION_BUILD_VERBOSE") else _Silenced()


class _Silenced(contextlib.ExitStack):
    def __enter__(self):
        super().__enter__()
        self.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self.enter_context(contextlib.redirect_stderr(io.StringIO()))
        return self


def build_torch(out: Path) -> dict:
    import torch

    from mutation import factories_torch as ft

    def src(name):
        return f"{TORCH_FACTORIES}:{name}"

    def onnx_file(model, path, shape, dynamic=True):
        """The TorchScript exporter straight from torch (no bridge): input 'x', output 'output'."""
        model.eval()
        axes = {"x": {0: "batch"}, "output": {0: "batch"}} if dynamic else None
        with _quiet():
            torch.onnx.export(
                model,
                (torch.rand(*shape),),
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        return path

    plan = Plan()
    m = mutate_bundle
    with plan.group(
        "control_mix_torch",
        "control_golden_torch",
        "range_top_id_torch",
        "range_top_float_torch",
        "dyn_wrong_at_batch8_torch",
        "names_swap_inputs_torch",
        "names_swap_inputs_golden_torch",
        "corrupt_weights_torch",
        "corrupt_weights_golden_torch",
        "swapped_outputs_torch",
        "wrong_output_shape_torch",
    ):
        mix = _export(src("mix"), out / "mix")
        plan["control_mix_torch"] = _verify(mix, src("mix"))
        plan["control_golden_torch"] = _verify(mix)
        plan["range_top_id_torch"] = _verify(
            m(mix, out / "range_top_id", lambda g: wrong_at_top_id(g, "ids", 499)), src("mix")
        )
        plan["range_top_float_torch"] = _verify(
            m(mix, out / "range_top_float", lambda g: wrong_near_top(g, "a", 0.999)), src("mix")
        )
        plan["dyn_wrong_at_batch8_torch"] = _verify(
            m(mix, out / "batch8", lambda g: wrong_from_batch(g, "p", "a", 8)), src("mix")
        )
        plan["names_swap_inputs_torch"] = _verify(
            mutate_file(mix, out / "names_swap.onnx", lambda g: trade_input_names(g, "a", "b")), src("mix")
        )
        plan["names_swap_inputs_golden_torch"] = _verify(
            m(mix, out / "names_swap_bundle", lambda g: trade_input_names(g, "a", "b"))
        )
        bad = m(mix, out / "corrupt", corrupt(mix))
        plan["corrupt_weights_torch"] = _verify(bad, src("mix"))
        plan["corrupt_weights_golden_torch"] = _verify(bad)
        plan["swapped_outputs_torch"] = _verify(
            m(mix, out / "swapped_outputs", lambda g: trade_output_names(g, "p", "q")), src("mix")
        )
        plan["wrong_output_shape_torch"] = _verify(
            m(mix, out / "wrong_shape", lambda g: add_unit_axis(g, "p")), src("mix")
        )

    with plan.group("control_recur_torch", "dyn_slice_by_batch_torch", "dyn_recurrence_batch_steps_torch"):
        recur = _export(src("recur"), out / "recur")
        plan["control_recur_torch"] = _verify(recur, src("recur"))
        plan["dyn_slice_by_batch_torch"] = _verify(
            m(recur, out / "slice_by_batch", lambda g: slice_output_by_batch(g, "steps", "x")), src("recur")
        )
        plan["dyn_recurrence_batch_steps_torch"] = _verify(
            m(recur, out / "batch_steps", lambda g: read_batch_steps(g, "x")), src("recur")
        )

    with plan.group("control_pt2", "corrupt_weights_pt2"):
        program = torch.export.export(
            ft.mlp().eval(), (torch.rand(2, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        torch.export.save(program, str(out / "mlp.pt2"))
        pt2 = _export(str(out / "mlp.pt2"), out / "mlp_pt2")
        plan["control_pt2"] = _verify(pt2, str(out / "mlp.pt2"))
        plan["corrupt_weights_pt2"] = _verify(m(pt2, out / "corrupt_pt2", corrupt(pt2)), str(out / "mlp.pt2"))

    with plan.group("declared_batch_baked_torch"):
        plan["declared_batch_baked_torch"] = _verify(
            onnx_file(ft.linear4(), out / "linear4_batch1.onnx", (1, 4), dynamic=False), src("linear4")
        )
    with plan.group("declared_range_log_control_torch"):
        plan["declared_range_log_control_torch"] = _verify(onnx_file(ft.log(), out / "log.onnx", (2, 4)), src("log"))
    for name, width in (("softmax1000", 16), ("onehot", 4), ("position_constant", 4), ("tiny_change", 4)):
        with plan.group(f"vacuous_{name}_torch"):
            plan[f"vacuous_{name}_torch"] = _verify(
                onnx_file(getattr(ft, name)(), out / f"{name}.onnx", (2, width)), src(name)
            )
    with plan.group("train_mode_dropout_torch"):
        plan["train_mode_dropout_torch"] = _verify(
            onnx_file(ft.dropout_train(), out / "dropout.onnx", (2, 4)), src("dropout_train")
        )
    from mutation.build_search import build_torch_search

    build_torch_search(out, plan, src)
    return plan


# -- Keras (subprocess) --------------------------------------------------------------------------------------


def build_keras(out: Path) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from mutation import factories_keras as fk

    ranges = ["a=0:1", "b=0:1", "ids=0:500"]
    plan = Plan()
    m = mutate_bundle
    model = fk.mix()
    keras_file = out / "mix.keras"
    saved = out / "mix_savedmodel"
    with plan.group(
        "control_mix_keras",
        "control_golden_keras",
        "range_top_id_keras",
        "range_top_float_keras",
        "dyn_wrong_at_batch8_keras",
        "names_swap_inputs_keras",
        "declared_batch_baked_keras",
        "corrupt_weights_keras_file",
        "corrupt_weights_golden_keras",
    ):
        model.save(keras_file)
        mix = _export(str(keras_file), out / "mix_keras", ranges)
        src = str(keras_file)
        plan["control_mix_keras"] = _verify(mix, src)
        plan["control_golden_keras"] = _verify(mix)
        plan["range_top_id_keras"] = _verify(
            m(mix, out / "range_top_id", lambda g: wrong_at_top_id(g, "ids", 499)), src
        )
        plan["range_top_float_keras"] = _verify(
            m(mix, out / "range_top_float", lambda g: wrong_near_top(g, "a", 0.999)), src
        )
        plan["dyn_wrong_at_batch8_keras"] = _verify(
            m(mix, out / "batch8", lambda g: wrong_from_batch(g, "p", "a", 8)), src
        )
        plan["names_swap_inputs_keras"] = _verify(
            mutate_file(mix, out / "names_swap.onnx", lambda g: trade_input_names(g, "a", "b")), src
        )
        plan["declared_batch_baked_keras"] = _verify(mutate_file(mix, out / "batch1.onnx", fix_batch_to_one), src)
        bad = m(mix, out / "corrupt", corrupt(mix))
        plan["corrupt_weights_keras_file"] = _verify(bad, src)
        plan["corrupt_weights_golden_keras"] = _verify(bad)
    if "control_mix_keras" in plan and "build_error" not in plan["control_mix_keras"]:
        from mutation.build_search import build_keras_search

        build_keras_search(out, plan, out / "mix_keras", str(keras_file))

    with plan.group("control_savedmodel", "corrupt_weights_savedmodel"):
        with _quiet():
            model.export(str(saved))
        sm = _export(str(saved), out / "mix_sm", ranges)
        plan["control_savedmodel"] = _verify(sm, str(saved))
        plan["corrupt_weights_savedmodel"] = _verify(m(sm, out / "corrupt_sm", corrupt(sm)), str(saved))

    with plan.group("control_bn_keras", "keras_bn_training"):
        bn = _export(f"{KERAS_FACTORIES}:bn_inference", out / "bn")
        plan["control_bn_keras"] = _verify(bn, f"{KERAS_FACTORIES}:bn_inference")
        plan["keras_bn_training"] = _verify(bn, f"{KERAS_FACTORIES}:bn_training")

    with plan.group("vacuous_softmax1000_keras"):
        # converted by tf2onnx directly, through a tf.function (the route bridge takes for Keras 3); the
        # output keeps the name of the layer the user named, as bridge's own Keras export does
        import tf2onnx

        head = fk.softmax1000()
        sig = [tf.TensorSpec([None, 16], tf.float32, name="x")]

        @tf.function(input_signature=sig, autograph=False)
        def serve(x):
            return {"head": head(x, training=False)}

        with _quiet():
            proto, _ = tf2onnx.convert.from_function(serve, input_signature=sig, opset=OPSET)
        onnx.save(proto, str(out / "softmax1000_keras.onnx"))
        plan["vacuous_softmax1000_keras"] = _verify(out / "softmax1000_keras.onnx", f"{KERAS_FACTORIES}:softmax1000")
    return plan


BUILDERS = {"torch": build_torch, "keras": build_keras}


if __name__ == "__main__":
    what, out_dir = sys.argv[1], Path(sys.argv[2]).resolve()
    if what not in BUILDERS:
        raise SystemExit(f"unknown builder {what}; one of {sorted(BUILDERS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = BUILDERS[what](out_dir)
    (out_dir / f"plan_{what}.json").write_text(json.dumps(result, indent=2))
