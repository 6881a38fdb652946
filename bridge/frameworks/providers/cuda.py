"""ONNX Runtime's CUDA execution provider.

``onnxruntime-gpu`` lists the CUDA provider as available on machines without a GPU, and falls back to
the CPU silently when it cannot start: ``problem`` looks for a GPU first, and the runner checks the
session's providers after creating it. Parity is verified in strict fp32 (``use_tf32=0``, TF32 off on
the native side too) unless ``--tf32`` asks for the deployment default, judged by its own policy row.
"""

from __future__ import annotations

import os

NAME = "cuda"
PROVIDER = "CUDAExecutionProvider"


def problem(ort) -> str | None:
    """Why the CUDA provider cannot run here, or None."""
    if PROVIDER not in ort.get_available_providers():
        return f"this onnxruntime build ({ort.__version__}) has no CUDA execution provider (install onnxruntime-gpu)"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or not any(
        os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/proc/driver/nvidia/version")
    ):
        return "no NVIDIA GPU is visible on this machine"
    return None


def prepare(ort) -> None:
    """CUDA and cuDNN from the nvidia-* wheels (torch's), when present."""
    try:
        ort.preload_dlls()
    except Exception:  # noqa: BLE001 - the session reports what is really missing
        pass


def options(tf32: bool) -> dict:
    return {"use_tf32": "1" if tf32 else "0"}


def policy_row(tf32: bool) -> str:
    """CUDA with TF32 has rows of its own (bridge/verdict/policy.py)."""
    return "cuda-tf32" if tf32 else "cuda"


def precision(options: dict) -> dict:
    return {"cuda.use_tf32": str(options.get("use_tf32", "1 (default)"))}
