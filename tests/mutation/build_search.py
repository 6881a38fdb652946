"""Mutants of kinds nobody listed before the search (bridge/verdict/search.py), and hard correct controls.

Each wrong export below differs from its model only where a list of named cases never looks: a
narrow band inside a range, past a threshold few random draws reach, at exact .5 ties, at one odd
size, at realistic large sizes, at padded positions, or beyond a domain or a precision row the
bundle declares for itself. Graph edits are pure onnx; bundle edits rewrite the manifest and rehash,
as a consistent hand-editor would. Imported by build.py, which runs each framework in its own process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from hostile.build import rehash
from onnx import TensorProto, helper, numpy_helper

from mutation.build import (
    KERAS_FACTORIES,
    _const,
    _elem,
    _export,
    _np_dtype,
    _verify,
    mutate_bundle,
    on_input,
    on_output,
    save,
)


def wrong_in_band(m, name: str, centre: float, half: float) -> None:
    """Values within ``half`` of ``centre`` (a narrow band inside the range) enter the graph negated."""
    dt = _np_dtype(_elem(m.graph, name))
    on_input(
        m,
        name,
        lambda src, dst: (
            [
                helper.make_node("Sub", [src, "mut_centre"], ["mut_off"]),
                helper.make_node("Abs", ["mut_off"], ["mut_dist"]),
                helper.make_node("Less", ["mut_dist", "mut_half"], ["mut_in_band"]),
                helper.make_node("Neg", [src], ["mut_negated"]),
                helper.make_node("Where", ["mut_in_band", "mut_negated", src], [dst]),
            ],
            [_const("mut_centre", centre, dt), _const("mut_half", half, dt)],
        ),
    )


def wrong_if_mean_in_band(m, name: str, low: float, high: float) -> None:
    """A row whose mean lies in [low, high] enters the graph negated: no element alone shows it."""
    dt = _np_dtype(_elem(m.graph, name))
    on_input(
        m,
        name,
        lambda src, dst: (
            [
                helper.make_node("ReduceMean", [src, "mut_axes"], ["mut_mean"], keepdims=1),
                helper.make_node("GreaterOrEqual", ["mut_mean", "mut_low"], ["mut_above"]),
                helper.make_node("LessOrEqual", ["mut_mean", "mut_high"], ["mut_below"]),
                helper.make_node("And", ["mut_above", "mut_below"], ["mut_in_band"]),
                helper.make_node("Neg", [src], ["mut_negated"]),
                helper.make_node("Where", ["mut_in_band", "mut_negated", src], [dst]),
            ],
            [_const("mut_axes", [1], np.int64), _const("mut_low", low, dt), _const("mut_high", high, dt)],
        ),
    )


def nan_past(m, name: str, output: str, threshold: float) -> None:
    """``output`` turns NaN where any element of input ``name`` passes ``threshold`` (log of a negative)."""
    dt = _np_dtype(_elem(m.graph, output))
    on_output(
        m,
        output,
        lambda src, dst: (
            [
                helper.make_node("Sub", ["mut_limit", name], ["mut_room"]),
                helper.make_node("Log", ["mut_room"], ["mut_log"]),
                helper.make_node("Flatten", ["mut_log"], ["mut_flat"], axis=1),
                helper.make_node("ReduceSum", ["mut_flat", "mut_axes"], ["mut_logsum"], keepdims=1),
                helper.make_node("Mul", ["mut_logsum", "mut_zero"], ["mut_poison"]),
                helper.make_node("Add", [src, "mut_poison"], [dst]),
            ],
            [_const("mut_limit", threshold, dt), _const("mut_zero", 0.0, dt), _const("mut_axes", [1], np.int64)],
        ),
    )


def floor_half_for_round(m) -> None:
    """Round (ties to even) replaced by Floor(x + 0.5) (ties up): they differ only at exact .5 ties."""
    nodes = []
    for node in m.graph.node:
        if node.op_type != "Round":
            nodes.append(node)
            continue
        nodes += [
            helper.make_node("Add", [node.input[0], "mut_half"], ["mut_plus_half"]),
            helper.make_node("Floor", ["mut_plus_half"], [node.output[0]]),
        ]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.initializer.append(_const("mut_half", 0.5, np.float32))


def wrong_at_size(m, output: str, size_input: str, axis: int, size: int, compare: str = "Equal") -> None:
    """``output`` shifted by 1 when axis ``axis`` of ``size_input`` compares (Equal, GreaterOrEqual) to ``size``."""
    dt = _np_dtype(_elem(m.graph, output))
    tag = f"s{axis}"
    on_output(
        m,
        output,
        lambda src, dst: (
            [
                helper.make_node("Shape", [size_input], [f"mut_{tag}_shape"]),
                helper.make_node("Gather", [f"mut_{tag}_shape", "mut_axis"], [f"mut_{tag}_size"]),
                helper.make_node(compare, [f"mut_{tag}_size", "mut_size"], ["mut_odd"]),
                helper.make_node("Add", [src, "mut_one_value"], ["mut_shifted"]),
                helper.make_node("Where", ["mut_odd", "mut_shifted", src], [dst]),
            ],
            [
                _const("mut_axis", [axis], np.int64),
                _const("mut_size", [size], np.int64),
                _const("mut_one_value", 1, dt),
            ],
        ),
    )


def negate_above(m, name: str, above: float) -> None:
    """Values above ``above`` enter the graph negated (a backdoor past a declared domain)."""
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


def int_backdoor(m, name: str, at_least: int) -> None:
    """Integer values of at least ``at_least`` are read as 0."""
    dt = _np_dtype(_elem(m.graph, name))
    on_input(
        m,
        name,
        lambda src, dst: (
            [
                helper.make_node("GreaterOrEqual", [src, "mut_at_least"], ["mut_is_top"]),
                helper.make_node("Where", ["mut_is_top", "mut_zero_id", src], [dst]),
            ],
            [_const("mut_at_least", at_least, dt), _const("mut_zero_id", 0, dt)],
        ),
    )


def garbage_when_padded(m, output: str, mask: str, value: float) -> None:
    """``output`` is ``value`` (NaN, or 0) at padded positions, where the native model is defined."""
    on_output(
        m,
        output,
        lambda src, dst: (
            [
                helper.make_node("Equal", [mask, "mut_zero_mask"], ["mut_pad"]),
                helper.make_node("Unsqueeze", ["mut_pad", "mut_last"], ["mut_pad3"]),
                helper.make_node("Where", ["mut_pad3", "mut_garbage", src], [dst]),
            ],
            [
                _const("mut_zero_mask", 0, np.int64),
                _const("mut_last", [-1], np.int64),
                _const("mut_garbage", value, np.float32),
            ],
        ),
    )


def scale_output(m, output: str, factor: float) -> None:
    dt = _np_dtype(_elem(m.graph, output))
    on_output(
        m,
        output,
        lambda src, dst: ([helper.make_node("Mul", [src, "mut_factor"], [dst])], [_const("mut_factor", factor, dt)]),
    )


def unused_qdq(m) -> None:
    """A QuantizeLinear/DequantizeLinear pair on a constant nobody reads: the graph now 'looks' int8."""
    m.graph.initializer.extend(
        [
            _const("mut_q_in", [1.0, 2.0], np.float32),
            _const("mut_q_scale", 0.1, np.float32),
            _const("mut_q_zero", 0, np.uint8),
        ]
    )
    m.graph.node.extend(
        [
            helper.make_node("QuantizeLinear", ["mut_q_in", "mut_q_scale", "mut_q_zero"], ["mut_q"]),
            helper.make_node("DequantizeLinear", ["mut_q", "mut_q_scale", "mut_q_zero"], ["mut_dq"]),
        ]
    )


def unused_fp16(m) -> None:
    m.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float16), "mut_half_weights"))


def edit_manifest(bundle: Path, edit) -> Path:
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rehash(bundle)
    return bundle


def declare_range(name: str, low: float, high: float):
    def edit(manifest):
        for spec in manifest["inputs"]:
            if spec["name"] == name:
                spec["range"] = [low, high]

    return edit


def claim_precision(precision: str):
    """The manifest says the graph was derived at ``precision`` (no parent to check it against)."""

    def edit(manifest):
        manifest["precision"] = {
            "precision": precision,
            "method": "dynamic" if precision == "int8" else "fp16",
            "why": "hand-edited",
            "settings": {},
            "calibration": None,
            "fp32": {},
        }
        manifest["policy"] = {**manifest.get("policy", {}), "precision": precision}

    return edit


def tamper_derivation(bundle: Path, dest: Path, precision: str, factor: float) -> Path:
    """A faithful reduced bundle, then its scales (int8) or float16 weights multiplied by ``factor``."""
    shutil.copytree(bundle, dest)
    m = onnx.load(str(dest / "model.onnx"))
    kind = TensorProto.FLOAT if precision == "int8" else TensorProto.FLOAT16
    done = 0
    for t in m.graph.initializer:
        is_scale = precision == "int8" and t.name.endswith("_scale") and len(t.dims) <= 1
        if t.data_type == kind and (is_scale or (precision == "fp16" and len(t.dims) >= 2)):
            w = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((w * factor).astype(w.dtype), t.name))
            done += 1
    if not done:
        raise RuntimeError(f"tamper_derivation: no {precision} tensor to change")
    save(m, dest / "model.onnx")
    rehash(dest)
    return dest


def build_torch_search(out: Path, plan, src) -> None:
    """The search mutants of torch bases (``src(name)`` is a factory's SOURCE)."""
    m = mutate_bundle
    with plan.group(
        "search_band_torch",
        "search_mean_band_torch",
        "search_odd_batch_torch",
        "search_large_batch_torch",
        "terms_precision_trojan_torch",
        "terms_fp16_trojan_torch",
    ):
        mix = out / "mix"
        plan["search_band_torch"] = _verify(
            m(mix, out / "band", lambda g: wrong_in_band(g, "a", 0.37, 0.004)), src("mix")
        )
        plan["search_mean_band_torch"] = _verify(
            m(mix, out / "mean_band", lambda g: wrong_if_mean_in_band(g, "a", 0.43, 0.44)), src("mix")
        )
        plan["search_odd_batch_torch"] = _verify(
            m(mix, out / "odd_batch", lambda g: wrong_at_size(g, "p", "a", 0, 3)), src("mix")
        )
        plan["search_large_batch_torch"] = _verify(
            m(mix, out / "large_batch", lambda g: wrong_at_size(g, "p", "a", 0, 16, "GreaterOrEqual")), src("mix")
        )

        def trojan(g, factor, marker):
            scale_output(g, "p", factor)
            marker(g)

        q = m(mix, out / "int8_trojan", lambda g: trojan(g, 1.15, unused_qdq))
        plan["terms_precision_trojan_torch"] = _verify(edit_manifest(q, claim_precision("int8")), src("mix"))
        h = m(mix, out / "fp16_trojan", lambda g: trojan(g, 1.008, unused_fp16))
        plan["terms_fp16_trojan_torch"] = _verify(edit_manifest(h, claim_precision("fp16")), src("mix"))
    with plan.group(
        "search_nan_threshold_torch",
        "search_odd_seq_torch",
        "search_long_seq_torch",
        "terms_domain_trojan_torch",
        "terms_domain_trojan_strict_torch",
    ):
        recur = out / "recur"
        plan["search_nan_threshold_torch"] = _verify(
            m(recur, out / "nan_threshold", lambda g: nan_past(g, "x", "state", 3.5)), src("recur")
        )
        plan["search_odd_seq_torch"] = _verify(
            m(recur, out / "odd_seq", lambda g: wrong_at_size(g, "state", "x", 1, 7)), src("recur")
        )
        plan["search_long_seq_torch"] = _verify(
            m(recur, out / "long_seq", lambda g: wrong_at_size(g, "state", "x", 1, 17, "GreaterOrEqual")), src("recur")
        )
        trojan = edit_manifest(
            m(recur, out / "domain_trojan", lambda g: negate_above(g, "x", 0.5)), declare_range("x", -0.4, 0.4)
        )
        plan["terms_domain_trojan_torch"] = _verify(trojan, src("recur"))
        plan["terms_domain_trojan_strict_torch"] = _verify(trojan, src("recur"), "--strict-terms")
    with plan.group("control_rounded_torch", "search_ties_torch"):
        rounded = _export(src("rounded"), out / "rounded")
        plan["control_rounded_torch"] = _verify(rounded, src("rounded"))
        plan["search_ties_torch"] = _verify(m(rounded, out / "ties", floor_half_for_round), src("rounded"))
    with plan.group("control_counts_torch", "terms_narrowed_int_torch"):
        counts = _export(src("counts"), out / "counts")
        plan["control_counts_torch"] = _verify(counts, src("counts"))
        narrowed = edit_manifest(
            m(counts, out / "narrowed", lambda g: int_backdoor(g, "counts", 9)), declare_range("counts", 0, 9)
        )
        plan["terms_narrowed_int_torch"] = _verify(narrowed, src("counts"))
    with plan.group("control_masked_torch", "padded_nan_torch", "padded_zero_torch"):
        masked = _export(src("masked"), out / "masked")
        plan["control_masked_torch"] = _verify(masked, src("masked"))
        plan["padded_nan_torch"] = _verify(
            m(masked, out / "padded_nan", lambda g: garbage_when_padded(g, "output", "attention_mask", float("nan"))),
            src("masked"),
        )
        plan["padded_zero_torch"] = _verify(
            m(masked, out / "padded_zero", lambda g: garbage_when_padded(g, "output", "attention_mask", 0.0)),
            src("masked"),
        )
    for name in ("deep", "near_tie", "long_sum"):
        with plan.group(f"control_{name}_torch"):
            plan[f"control_{name}_torch"] = _verify(_export(src(name), out / name), src(name))
    with plan.group(
        "control_int8_torch", "control_fp16_torch", "derivation_int8_tampered_torch", "derivation_fp16_tampered_torch"
    ):
        from bridge.exporting import run_export
        from bridge.request import API, build

        for precision in ("int8", "fp16"):
            dest = out / f"mlp_{precision}"
            report = run_export(
                build("export", {"source": src("mlp"), "output": str(dest), "precision": precision}, API)
            )
            if not (dest / "manifest.json").is_file():
                raise RuntimeError(f"{precision} export of mlp: {report.status}: {report.reason}")
            plan[f"control_{precision}_torch"] = _verify(dest, src("mlp"), "--precision", precision)
            bad = tamper_derivation(
                dest, out / f"mlp_{precision}_tampered", precision, 1.15 if precision == "int8" else 1.008
            )
            plan[f"derivation_{precision}_tampered_torch"] = _verify(bad, src("mlp"), "--precision", precision)


def build_keras_search(out: Path, plan, mix: Path, src: str) -> None:
    """The search mutants of the Keras ``mix`` bundle (its ranges given at export, not by the .keras file:
    at verify they are the bundle's own declaration)."""
    m = mutate_bundle
    with plan.group("search_band_keras", "search_odd_batch_keras", "terms_domain_trojan_keras"):
        plan["search_band_keras"] = _verify(m(mix, out / "band", lambda g: wrong_in_band(g, "a", 0.37, 0.004)), src)
        plan["search_odd_batch_keras"] = _verify(
            m(mix, out / "odd_batch", lambda g: wrong_at_size(g, "p", "a", 0, 3)), src
        )
        plan["terms_domain_trojan_keras"] = _verify(
            m(mix, out / "domain_trojan", lambda g: negate_above(g, "b", 1.5)), src
        )
    for name in ("deep", "near_tie", "long_sum"):
        with plan.group(f"control_{name}_keras"):
            source = f"{KERAS_FACTORIES}:{name}"
            plan[f"control_{name}_keras"] = _verify(_export(source, out / f"{name}_keras"), source)
