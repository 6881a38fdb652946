"""The only package that imports torch, TensorFlow, tf2onnx or onnxruntime.

Each framework module exposes ``load(source, options) -> NativeModel`` (see base.py); ort.py
exposes ``OrtRunner``. Modules are imported lazily, when the user has chosen the framework.
"""

from __future__ import annotations

import importlib

FRAMEWORK_MODULES = {"torch": "bridge.frameworks.pt", "tensorflow": "bridge.frameworks.tf"}


def framework_module(name: str):
    from bridge.errors import EnvironmentProblem, UsageError

    if name not in FRAMEWORK_MODULES:
        raise UsageError(f"unknown framework {name!r}", hint=f"use one of: {', '.join(FRAMEWORK_MODULES)}")
    try:
        return importlib.import_module(FRAMEWORK_MODULES[name])
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in EXTRAS:
            raise missing_package(exc.name, f"a {name} model") from None
        raise
    except ImportError as exc:
        extra = "torch" if name == "torch" else "tensorflow"
        raise EnvironmentProblem(
            f"the {name} framework is not importable: {exc}",
            hint=f"install bridge with the '{extra}' extra: pip install 'bridge-onnx[{extra}]'",
        ) from None


# Packages a deployment may lack, and the extra that installs each.
EXTRAS = {
    "onnxruntime": "cpu",
    "torch": "torch",
    "torchvision": "torch",
    "onnxscript": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "tf2onnx": "tensorflow",
    "tf_keras": "tensorflow",
}


def missing_package(name: str, needed_for: str):
    """The EnvironmentProblem (exit 4) for a package that is not installed, with the pip line."""
    from bridge.errors import EnvironmentProblem

    root = (name or "").split(".")[0]
    extra = EXTRAS.get(root)
    hint = f"pip install 'bridge-onnx[{extra}]'" if extra else f"pip install {root}"
    if root == "onnxruntime":
        hint += " (or 'bridge-onnx[gpu]' for CUDA)"
    return EnvironmentProblem(f"{needed_for} needs the {root} package, which is not installed", hint=hint)


def ort_runner_class():
    """``OrtRunner``, or exit 4 with the pip line when onnxruntime is missing (a deployment install)."""
    try:
        from bridge.frameworks.ort import OrtRunner
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "onnxruntime":
            raise
        raise missing_package("onnxruntime", "running the ONNX model") from None
    return OrtRunner


def quiet_trace_log():
    """A context in which torch's structured-trace logger (``torch.__trace``) passes no record on. While
    torch.onnx exports, it emits empty DEBUG records to whatever handlers it has, pytest's log capture
    among them: in the caller's process (the API, assert_parity) a failing test would show dozens of blank
    ``DEBUG torch.__trace`` lines. ``TORCH_TRACE`` set: left alone, the user asked for the trace."""
    import contextlib
    import logging
    import os

    if os.environ.get("TORCH_TRACE"):
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def quiet():
        log = logging.getLogger("torch.__trace")

        def drop(record) -> bool:
            return False

        log.addFilter(drop)
        try:
            yield
        finally:
            log.removeFilter(drop)

    return quiet()
