"""The minimal reproduction of a divergence: the sub-model cut out with onnx.utils.Extractor, whether
it reproduces the mismatch alone, and the folder written atomically (sub.onnx, inputs.npz,
expected.npz, README.txt, localize.json)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from bridge.errors import UsageError
from bridge.localize.model import Model, Unavailable, captures, first_line
from bridge.localize.result import ONNX_VS_NATIVE, ORT_VS_REFERENCE, Finding, LocalizeResult
from bridge.verdict.compare import FAIL, compare_one
from bridge.verdict.policy import Policy, Tolerance

REPRO_FILES = ("sub.onnx", "inputs.npz", "expected.npz", "README.txt", "localize.json")
_REPRO_EXTRA = ("sub.onnx.data",)  # the sub-model's weights, when they pass protobuf's 2 GB limit


def extract_sub_model(model: Model, f: Finding):
    """The sub-model: ``f.allowed_nodes`` between f.inputs and f.sub_outputs, cut with onnx.utils.Extractor.
    Types of its inputs and outputs are those of the actual values (concrete shapes)."""
    import onnx
    from onnx import external_data_helper as edh
    from onnx import helper

    if f.inputs is None:
        raise Unavailable("the sub-model's input values could not be computed")
    values = {**f.inputs, **f.expected}
    for name, arr in values.items():
        if not isinstance(arr, np.ndarray):
            raise Unavailable(f"value {name!r} is not a tensor")
    g = model.proto.graph
    added = 0
    try:
        for name, arr in values.items():
            g.value_info.append(
                helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape)
            )
            added += 1
        sub = onnx.utils.Extractor(model.proto).extract_model(list(f.inputs), list(f.sub_outputs))
    except Exception as exc:
        raise Unavailable(f"onnx.utils.Extractor failed: {first_line(exc)}") from None
    finally:
        if added:
            del g.value_info[len(g.value_info) - added :]
    # Extractor collects the initializers that node inputs name; subgraphs (If, Loop) may read more.
    present = {t.name for t in sub.graph.initializer}
    for n in sub.graph.node:
        for x in sorted(captures(n)):
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
        raise Unavailable("the extracted sub-model reaches beyond the diverging nodes")
    sub.producer_name = "bridge.localize"
    return sub


def reproduces(sub, f: Finding, policy: Policy, outputs: list) -> bool:
    from bridge.frameworks.ort import session as ort_session

    try:
        session = ort_session(sub.SerializeToString(), "cpu", optimize=False)
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(names, {k: np.ascontiguousarray(v) for k, v in f.inputs.items()})))
    except Exception as exc:
        raise Unavailable(f"ONNX Runtime cannot run the extracted sub-model: {first_line(exc)}") from None
    inner = replace(policy, min_top1_agreement=None)
    for name, ref in f.expected.items():
        applied = policy if name in outputs else inner
        if name in got and compare_one(name, ref, np.asarray(got[name]), applied).status == FAIL:
            return True
    return False


def check_out_dir(out_dir) -> Path:
    p = Path(out_dir)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"reproduction folder {out_dir} exists and is not a directory")
        foreign = sorted(set(os.listdir(p)) - set(REPRO_FILES) - set(_REPRO_EXTRA))
        if foreign:
            raise UsageError(
                f"reproduction folder {out_dir} exists and holds other files ({', '.join(foreign[:5])})",
                hint="give a new or empty folder; an earlier reproduction folder is replaced",
            )
    return p


def write_repro(target: Path, sub, f: Finding, result: LocalizeResult, model: Model) -> None:
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
            onnx.save_model(
                sub,
                str(tmp / "sub.onnx"),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location="sub.onnx.data",
                size_threshold=1024,
            )
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


_CHECK = """python - <<'EOF'
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
EOF"""


def _readme(f: Finding, result: LocalizeResult, model: Model) -> str:
    tol = f.comparison.tolerance or Tolerance(0.0, 0.0)
    scale = float(getattr(tol, "scale_atol", 0.0) or 0.0)  # an absolute part scaled to max|expected|
    i = f.node_index
    what = (
        f"module {f.module or '<root>'} (call {f.module_call}), last node {model.label(i)}"
        if f.engines == ONNX_VS_NATIVE and f.module is not None
        else f"node {model.label(i)}"
        + (f" (last of {len(f.allowed_nodes)} nodes no native module covers)" if len(f.allowed_nodes) > 1 else "")
    )
    lines = [
        "bridge localize: minimal reproduction of the first divergence",
        "",
        f"model:      {model.path}",
        f"engines:    {f.engines}",
        f"diverging:  {what}, output {f.output!r}",
        f"comparison: {f.comparison.reason}",
        f"tolerance:  atol={tol.atol:g}"
        + (f" + {scale:g}*max|expected|" if scale else "")
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
        lines += [
            "the expected values come from the onnx reference evaluator:",
            "  python -c 'import numpy as np; from onnx.reference import ReferenceEvaluator as R; "
            'x = np.load("inputs.npz"); print(R("sub.onnx").run(None, {k: x[k] for k in x.files}))\'',
            "",
        ]
    return "\n".join(lines)
