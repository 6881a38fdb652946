"""ONNX Runtime execution providers bridge can verify on: a device name -> the module that knows it.

Each module (standard library only at import) says which provider it is, why it cannot run on this
machine (``problem``), the provider options for the run's settings, the tolerance-policy row its
results are judged by, and the precision switches it reports. Adding a provider (OpenVINO,
TensorRT, ...) is one module here and one entry below; the command line's ``--device`` choices, the
policy's device rows and the runner all read this table.
"""

from __future__ import annotations

import importlib

PROVIDERS = {"cpu": "bridge.frameworks.providers.cpu", "cuda": "bridge.frameworks.providers.cuda"}


def provider(device: str):
    """The module of ``device`` (``bridge.frameworks.providers.<device>``)."""
    if device not in PROVIDERS:
        from bridge.errors import EnvironmentProblem

        raise EnvironmentProblem(f"unknown device {device!r}", hint=f"use one of: {', '.join(PROVIDERS)}")
    return importlib.import_module(PROVIDERS[device])
