"""What a report records about the machine and the software versions (no framework imports)."""

from __future__ import annotations

import os
import platform
import sys

from bridge import __version__
from bridge.frameworks.base import distribution_versions


def environment_info(threads: int | None) -> dict:
    import numpy
    import onnx

    versions = {
        "bridge": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnx": onnx.__version__,
    }
    if "onnxruntime" in sys.modules:
        versions["onnxruntime"] = str(sys.modules["onnxruntime"].__version__)
    else:
        found = distribution_versions("onnxruntime", "onnxruntime-gpu")
        if found:
            versions["onnxruntime"] = next(iter(found.values()))
    return {
        "versions": versions,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "gpu": gpu_name(),
        },
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default: active spinning)"),
    }


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name from the driver's proc files, without importing CUDA libraries."""
    root = "/proc/driver/nvidia/gpus"
    try:
        for bus in sorted(os.listdir(root)):
            with open(os.path.join(root, bus, "information")) as fh:
                for line in fh:
                    if line.startswith("Model:"):
                        return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
