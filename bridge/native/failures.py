"""Why the native model failed, told by its error: code that asks for CUDA on a machine without it
(exit 4), inputs of another dtype than the weights (the dtype they want), else an axis size (the
``--dim-min`` hint). Read from the exception's text, framework-neutral: torch and TensorFlow name
dtypes in their own words."""

from __future__ import annotations

import re

from bridge.errors import EnvironmentProblem

_CUDA = re.compile(
    r"Found no NVIDIA driver|Torch not compiled with CUDA|No CUDA GPUs are available|CUDA driver initialization "
    r"failed|no CUDA-capable device|cudaGetDeviceCount|CUDA driver version is insufficient",
    re.IGNORECASE,
)
_DTYPE_CONTEXT = re.compile(r"dtype|scalar type|type \(|expected to be a|same type|must have the same", re.IGNORECASE)
# torch's words (Double, Float, Half, BFloat16, Long, Int) and TensorFlow's / numpy's
_WORDS = {
    "double": "float64",
    "float64": "float64",
    "float": "float32",
    "float32": "float32",
    "half": "float16",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "long": "int64",
    "int64": "int64",
    "int": "int32",
    "int32": "int32",
}
_WORD = re.compile(r"\b(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def cuda_missing(exc: BaseException, where: str) -> EnvironmentProblem | None:
    """Exit 4 for model code that moves itself or its tensors to CUDA where there is none."""
    text = str(exc)
    if not _CUDA.search(text):
        return None
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    return EnvironmentProblem(
        f"{where} asks for CUDA (a .cuda() or device='cuda' in its code), and this machine has no CUDA GPU: "
        f"{type(exc).__name__}: {first}",
        hint="keep the model's code device-neutral (no .cuda() / device='cuda' in the factory or forward(): bridge "
        "moves the model to --device, cpu by default), or run on a machine with a GPU and pass --device cuda",
    )


def dtype_hint(exc: BaseException, feeds: dict) -> str | None:
    """The dtype the model's weights want, when its error is a dtype mismatch with the inputs."""
    text = str(exc)
    if not _DTYPE_CONTEXT.search(text):
        return None
    named = [_WORDS[m.group(1).lower()] for m in _WORD.finditer(text)]
    given = {getattr(v, "dtype", None) and v.dtype.name for v in feeds.values()}
    wanted = [d for d in dict.fromkeys(named) if d not in given]
    clashing = [d for d in dict.fromkeys(named) if d in given]
    if len(wanted) != 1 or not clashing:
        return None
    want = wanted[0]
    names = [k for k, v in feeds.items() if v.dtype.name in clashing]
    specs = ", ".join(f"--input '{n}:{want}[...]'" for n in names)
    return (
        f"the model's weights are {want}, its inputs {'/'.join(clashing)} ({', '.join(names)}): declare the inputs "
        f"as {want} ({specs}, keeping their dims), or convert the model to {clashing[0]} in the factory"
    )


def size_hint(case) -> str:
    """The hint for any other failure on a case: an axis may need a minimum or maximum size."""
    axis = case.label.split("=", 1)[0]
    if axis not in case.sizes:
        axis = next(iter(case.sizes)) if len(case.sizes) == 1 else "AXIS"
    sizes = ", ".join(f"{k}={v}" for k, v in case.sizes.items())
    return (
        f"case {case.label} runs the dynamic axes at {sizes}; if the model needs a minimum (or maximum) "
        f"size on an axis, declare it: --dim-min {axis}=SIZE (--dim-max {axis}=SIZE), and --dim {axis}=SIZE "
        "for the export size; otherwise check the --input specs against forward()"
    )
