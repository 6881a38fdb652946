"""Reduced-precision graphs with ONNX Runtime's own tools: int8 (onnxruntime.quantization) and float16
(onnxruntime.transformers' converter). Each function reads a verified float32 file and writes a new
one; what it did (method, settings, what stayed in float32) is returned for the manifest.

Settings chosen from measurements (docs/tolerances.md, "Reduced precision"):
- int8 weights are 7-bit (``reduce_range=True``). On x86 CPUs without VNNI (AVX2, AVX-512 without
  VNNI) ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, which saturates
  when pairs of products pass the int16 range: the digits CNN quantized with full-range weights
  differed from float32 by 9.5% (relative error norm) once ONNX Runtime fused its QDQ pairs, 0.8%
  with the reference kernels, 1.0% with 7-bit weights. A bundle runs on machines bridge never sees,
  so its weights are quantized to a range every CPU multiplies exactly.
- static: QDQ format, uint8 activations (MinMax over the calibration samples), int8 weights per
  output channel; dynamic: MatMul (Gemm rewritten as MatMul + Add first), Attention and LSTM only.
  Dynamic convolutions (ConvInteger) ran 2.3x slower than float32 on ResNet-50 here.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

import bridge.frameworks.ort  # noqa: F401  (ONNX Runtime's own log kept off stderr for quantization sessions too)
from bridge.errors import ConversionError
from bridge.frameworks.onnx_ops import QUANT_OPS

DYNAMIC_OPS = ["MatMul", "Attention", "LSTM"]
# Kept in float32 by the float16 conversion: reductions, exponentials and normalisations, whose
# results lose most in float16 (sums of many terms, exp of large values), and the converter's own list.
FP16_SENSITIVE = [
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "CumSum",
    "Range",
    "Erf",
]
BATCH_BYTES = 64 << 20  # calibration batches of at most this many input bytes


def versions() -> dict:
    return {"onnxruntime": ort.__version__}


@contextlib.contextmanager
def _scratch_cwd(near: str):
    """Run a quantization step with a private working directory beside ``near``: ONNX Runtime's
    symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and uuid-named ``.data`` files into
    the working directory when it cannot infer every shape, and nothing may land in the user's. Every
    path given to the step must be absolute before it enters (a relative one would name a file in the
    scratch directory): the callers make them so first."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="bridge-q-cwd-", dir=os.path.dirname(os.path.abspath(near))) as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(previous)


def preprocess(src: str, dst: str, symbolic: bool | None = None) -> dict:
    """onnxruntime.quantization's pre-processing (symbolic shape inference, ONNX Runtime's basic graph
    optimizations, ONNX shape inference), which its docs ask for before quantizing. Symbolic shape
    inference fails on some graphs: the step is retried without it, and the record says so.
    ``symbolic``: replay a recorded derivation (with or without symbolic shape inference, as then)."""
    from onnxruntime.quantization import quant_pre_process

    src, dst = os.path.abspath(src), os.path.abspath(dst)
    tried = []
    for skip_symbolic in (False, True) if symbolic is None else (not symbolic,):
        try:
            with _scratch_cwd(dst):
                quant_pre_process(src, dst, skip_symbolic_shape=skip_symbolic)
            return {
                "preprocess": "onnxruntime.quantization.quant_pre_process",
                "symbolic_shape_inference": not skip_symbolic,
                **({"failed_first": tried} if tried else {}),
            }
        except Exception as exc:  # noqa: BLE001 - the library raises anything; the record keeps it
            tried.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    raise ConversionError(
        "onnxruntime.quantization's pre-processing failed: " + "; ".join(tried),
        hint="export in float32 (--precision fp32), or quantize the model yourself",
    )


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over in-memory samples, in batches."""

    def __init__(self, feeds: dict, batch_rows: int):
        rows = len(next(iter(feeds.values())))
        self._batches = iter(
            [
                {k: np.ascontiguousarray(v[i : i + batch_rows]) for k, v in feeds.items()}
                for i in range(0, rows, batch_rows)
            ]
        )

    def get_next(self):
        return next(self._batches, None)


def quantize_static_qdq(src: str, dst: str, feeds: dict, threads: int | None = None) -> dict:
    """Static QDQ quantization calibrated on ``feeds`` (real samples, batch axis first)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    rows = int(next(iter(feeds.values())).shape[0])
    row_bytes = sum(int(v[:1].nbytes) for v in feeds.values()) or 1
    batch_rows = max(1, min(rows, 32, BATCH_BYTES // row_bytes))
    reader = _Reader(feeds, batch_rows)  # a CalibrationDataReader: it has get_next
    settings = {
        "format": "QDQ",
        "activation_type": "uint8",
        "weight_type": "int8",
        "per_channel": True,
        "reduce_range": True,
        "calibrate_method": "MinMax",
        "calibration_rows": rows,
        "calibration_batch_rows": batch_rows,
    }
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    try:
        with _scratch_cwd(dst):
            quantize_static(
                src,
                dst,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(
            f"static int8 quantization failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="check that --calibrate holds samples the model accepts",
        ) from None
    return {
        "quantizer": f"onnxruntime.quantization.quantize_static (onnxruntime {ort.__version__})",
        **settings,
        **_count_ops(dst),
    }


def quantize_dynamic_int8(src: str, dst: str) -> dict:
    """Dynamic quantization of MatMul (Gemm rewritten as MatMul + Add), Attention and LSTM weights:
    activations are quantized at run time, no data needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = os.path.abspath(src), os.path.abspath(dst)  # before any working-directory change
    with tempfile.TemporaryDirectory(prefix="bridge-q-", dir=os.path.dirname(dst)) as tmp:
        mid = os.path.join(tmp, "gemm_as_matmul.onnx")
        proto = onnx.load(src)
        rewritten = gemm_to_matmul(proto)
        onnx.save(proto, mid)
        del proto
        try:
            with _scratch_cwd(dst):
                quantize_dynamic(
                    mid,
                    dst,
                    op_types_to_quantize=DYNAMIC_OPS,
                    per_channel=False,
                    reduce_range=True,
                    weight_type=QuantType.QInt8,
                )
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(
                f"dynamic int8 quantization failed: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}"
            ) from None
    settings = {
        "op_types": DYNAMIC_OPS,
        "weight_type": "int8",
        "per_channel": False,
        "reduce_range": True,
        "gemm_rewritten_as_matmul": rewritten,
    }
    return {
        "quantizer": f"onnxruntime.quantization.quantize_dynamic (onnxruntime {ort.__version__})",
        **settings,
        **_count_ops(dst),
    }


def gemm_to_matmul(proto: onnx.ModelProto) -> int:
    """Rewrite Gemm nodes with a constant B (alpha 1, beta 1, transA 0) as MatMul + Add, in place, so
    that dynamic quantization (which has no Gemm kernel) reaches torch's Linear layers. Returns how
    many were rewritten."""
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    count, nodes = 0, []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.domain not in ("", "ai.onnx")
            or len(node.input) < 2
            or node.input[1] not in inits
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        w_name = f"{node.input[1]}__matmul_{count}"
        graph.initializer.append(numpy_helper.from_array(weight, w_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}__matmul" if has_bias else node.output[0]
        nodes.append(
            onnx.helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{node.name or 'gemm'}__matmul")
        )
        if has_bias:
            nodes.append(
                onnx.helper.make_node(
                    "Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name or 'gemm'}__bias"
                )
            )
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return count


def convert_fp16(
    src: str, dst: str, transformer: bool = False, threads: int | None = None, block_list: list | None = None
) -> dict:
    """Float16 weights and arithmetic, float32 inputs and outputs (``keep_io_types``), numerically
    sensitive operators kept in float32. Operators ONNX Runtime's CPU provider has no float16 kernel
    for are found by loading the converted graph and kept in float32 too (a few rounds at most).
    ``transformer``: a graph with onnxruntime.transformers' fused operators, converted by that
    optimizer's own float16 path (which knows their float16 inputs). ``block_list``: replay a recorded
    derivation exactly (the operators kept in float32 then), with no probing."""
    import logging

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    block = list(block_list) if block_list is not None else list(FP16_SENSITIVE)
    missing: list[str] = []
    crashed: list[str] = []
    for _ in range(12):
        proto = onnx.load(src)
        try:
            if transformer:
                from onnxruntime.transformers.onnx_model import OnnxModel

                model = OnnxModel(proto)
                model.convert_float_to_float16(keep_io_types=True, op_block_list=_with_default_block(block))
                proto = model.model
            else:
                from onnxruntime.transformers.float16 import convert_float_to_float16

                proto = convert_float_to_float16(proto, keep_io_types=True, op_block_list=_with_default_block(block))
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(
                f"float16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            ) from None
        from onnxruntime.transformers.onnx_model import OnnxModel

        _unique_node_names(proto)  # the converter names the Cast of a weight shared by two nodes twice
        del proto.graph.value_info[:]  # its intermediate types can be stale where casts moved: re-inferred on load
        sorted_model = OnnxModel(proto)  # and appends its input Casts last: onnx.checker wants order
        sorted_model.topological_sort()
        onnx.save(sorted_model.model, dst)
        del proto, sorted_model
        op = _missing_kernel(dst, threads) if block_list is None else None
        if op is None:
            break
        if op == CRASHED:
            if LAYOUT_OPS[0] in block:
                raise ConversionError(
                    "ONNX Runtime crashed loading the float16 graph, even with its layout operators kept in float32",
                    hint="use --precision int8 or fp32",
                )
            block.extend(LAYOUT_OPS)  # ONNX Runtime 1.31's CPU graph optimizer crashed on float16 Transposes
            crashed.extend(LAYOUT_OPS)  # of an --optimize transformer graph (segmentation fault, measured)
            continue
        if op in block:
            raise ConversionError(
                f"ONNX Runtime's CPU provider cannot run the float16 graph: {op} has no kernel "
                "even when kept in float32",
                hint="use --precision int8 or fp32",
            )
        block.append(op)
        missing.append(op)
    else:
        raise ConversionError(
            "ONNX Runtime's CPU provider lacks float16 kernels for too many operators: " + ", ".join(missing),
            hint="use --precision int8 or fp32",
        )
    how = (
        "onnxruntime.transformers OnnxModel.convert_float_to_float16"
        if transformer
        else "onnxruntime.transformers.float16.convert_float_to_float16"
    )
    return {
        "converter": f"{how} (onnxruntime {ort.__version__})",
        "keep_io_types": True,
        "kept_fp32_sensitive": FP16_SENSITIVE,
        "kept_fp32_no_cpu_kernel": missing,
        "kept_fp32_loader_crashed": crashed,
        "op_block_list": block,
        **_count_ops(dst),
    }


def _unique_node_names(proto) -> None:
    """The converter casts a float32-kept weight shared by several nodes once per node, under one
    name: identical duplicates are dropped, and other nodes that share a name are renamed."""
    produced: dict[str, object] = {}
    keep = []
    for node in proto.graph.node:
        twin = produced.get(node.output[0]) if node.output else None
        if (
            twin is not None
            and twin.op_type == node.op_type
            and list(twin.input) == list(node.input)
            and list(twin.attribute) == list(node.attribute)
            and list(twin.output) == list(node.output)
        ):
            continue
        for out in node.output:
            produced.setdefault(out, node)
        keep.append(node)
    if len(keep) != len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(keep)
    seen: set[str] = set()
    for node in proto.graph.node:
        if node.name and node.name in seen:
            i = 1
            while f"{node.name}_{i}" in seen:
                i += 1
            node.name = f"{node.name}_{i}"
        seen.add(node.name)


def _with_default_block(block: list[str]) -> list[str]:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    return sorted(set(DEFAULT_OP_BLOCK_LIST) | set(block))


_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\(")
CRASHED = "<crashed>"
LAYOUT_OPS = ["Transpose"]
# Loads a graph in ONNX Runtime's CPU provider in a child process: a derived graph can crash the
# loader (a segmentation fault is no exception), and must not take the export down with it.
_PROBE = r"""
import sys
from bridge.frameworks.ort import session
try:
    session(sys.argv[1], "cpu", threads=int(sys.argv[2]) or None)
except Exception as exc:
    sys.stdout.write(" ".join(str(exc).split())[:2000]); sys.exit(3)
"""


def _missing_kernel(path: str, threads: int | None) -> str | None:
    """The operator type ONNX Runtime's CPU provider has no kernel for in this graph, CRASHED when
    loading it crashed, or None when the graph loads."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])  # the directory holding bridge/, for the child's import
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, path, str(int(threads or 0))],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if proc.returncode == 0:
        return None
    if proc.returncode != 3:
        return CRASHED
    found = _NO_KERNEL.search(proc.stdout)
    if found:
        return found.group(1)
    raise ConversionError(
        f"ONNX Runtime cannot load the float16 graph: {proc.stdout[:300]}", hint="use --precision int8 or fp32"
    )


def _count_ops(path: str) -> dict:
    proto = onnx.load(path, load_external_data=False)
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "nodes_after": len(proto.graph.node),
        "bytes_after": Path(path).stat().st_size,
        "quantized_ops": {k: v for k, v in sorted(ops.items()) if k in QUANT_OPS},
        "casts": ops.get("Cast", 0),
    }
