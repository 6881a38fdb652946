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
    except ImportError as exc:
        extra = "torch" if name == "torch" else "tensorflow"
        raise EnvironmentProblem(
            f"the {name} framework is not importable: {exc}",
            hint=f"install bridge with the '{extra}' extra: pip install 'bridge-onnx[{extra}]'",
        ) from None
