"""ONNX Runtime sessions on CPU or the CUDA execution provider, with provider checks."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from bridge.errors import EnvironmentProblem, InputError
from bridge.frameworks.base import Feeds

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def ort_message(exc: BaseException, limit: int = 300) -> str:
    """ONNX Runtime's error text without its source paths and C++ signatures: the reason is at the end."""
    import re

    text = " ".join(str(exc).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ [\w:~<>]+\([^)]*\)\s*", "", text)
    return text if len(text) <= limit else "..." + text[-limit:]


def cuda_problem() -> str | None:
    """Why the CUDA EP cannot run here, or None. onnxruntime-gpu lists the CUDA EP as available even
    on machines without a GPU, so the list of available providers proves nothing."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime build ({ort.__version__}) has no CUDA execution provider (install onnxruntime-gpu)"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or not any(
        os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl", "/proc/driver/nvidia/version")
    ):
        return "no NVIDIA GPU is visible on this machine"
    return None


class OrtRunner:
    framework = "onnxruntime"

    def __init__(self, model_path: str, device: str = "cpu", threads: int | None = None,
                 spinning: bool = False, cuda_options: dict | None = None, optimize: bool = True):
        if device not in PROVIDERS:
            raise EnvironmentProblem(f"unknown device {device!r}", hint="use cpu or cuda")
        self.device = device
        self._args = (model_path, device, threads, spinning, cuda_options)
        self._plain = None
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if not optimize:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        # Idle spinning threads steal cores from whatever runs next (the native side when timing).
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.settings = {"intra_op_num_threads": int(threads or 0), "allow_spinning": bool(spinning),
                         "graph_optimization_level": str(so.graph_optimization_level)}
        if device == "cuda":
            problem = cuda_problem()
            if problem:
                raise EnvironmentProblem(f"--device cuda: {problem}", hint="run on a machine with an NVIDIA GPU, or use --device cpu")
            try:
                ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels (torch's), when present
            except Exception:
                pass
            opts = dict(cuda_options or {})
            providers = [(PROVIDERS["cuda"], opts), PROVIDERS["cpu"]]
            self.settings["cuda_options"] = opts
        else:
            providers = [PROVIDERS["cpu"]]
        self.model_path, self._so, self._providers = model_path, so, providers
        try:
            self.session = ort.InferenceSession(model_path, sess_options=so, providers=providers)
        except Exception as exc:
            raise InputError(
                f"ONNX Runtime cannot load {model_path}: {ort_message(exc)}",
                hint="the file may be malformed or use an operator this onnxruntime does not support",
            ) from None
        used = self.session.get_providers()
        if device == "cuda" and PROVIDERS["cuda"] not in used:
            raise EnvironmentProblem(
                f"--device cuda: ONNX Runtime fell back to {used} (the CUDA execution provider did not start)",
                hint="check the CUDA and cuDNN libraries match this onnxruntime-gpu build",
            )
        self.providers = used
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._binding = None

    def run(self, feeds: Feeds) -> Feeds:
        outs = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return dict(zip(self.output_names, outs, strict=True))

    def unoptimized(self) -> "OrtRunner":
        """The same graph on the same device with ONNX Runtime's graph optimizations off (made once):
        its outputs differ from this runner's by rounding only (bridge/rounding.py)."""
        if self._plain is None:
            self._plain = OrtRunner(*self._args, optimize=False)
        return self._plain

    def node_placement(self, feeds: Feeds) -> dict:
        """How many graph nodes ran on each execution provider, from one profiled run in a separate
        session (profiling the timed session would slow it)."""
        import json
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bridge-prof-") as tmp:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(tmp, "prof")
            session = ort.InferenceSession(self.model_path, sess_options=so, providers=self._providers)
            session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
            with open(session.end_profiling()) as fh:
                events = json.load(fh)
        nodes: dict[str, set] = {}
        for ev in events:
            args = ev.get("args") or {}
            if ev.get("cat") == "Node" and "provider" in args:
                nodes.setdefault(args["provider"], set()).add(args.get("node_index", ev.get("name")))
        return {provider: len(names) for provider, names in sorted(nodes.items())}

    # IO binding: inputs copied to the device once, outputs left on the device (CUDA timing).
    def bind(self, feeds: Feeds) -> None:
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), self.device, 0)
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device, 0)
        self._binding = binding

    def run_bound(self) -> None:
        self.session.run_with_iobinding(self._binding)

    def synchronize(self) -> None:
        if self._binding is not None:
            self._binding.synchronize_outputs()

    def versions(self) -> dict:
        return {"onnxruntime": ort.__version__}

    def precision(self) -> dict:
        if self.device == "cuda":
            opts = self.settings.get("cuda_options", {})
            return {"cuda.use_tf32": str(opts.get("use_tf32", "1 (default)"))}
        return {}

    def close(self) -> None:
        self.session = None
        self._binding = None
        if self._plain is not None:
            self._plain.close()
            self._plain = None


def save_optimized(src: str, dst: str, threads: int | None = None) -> dict:
    """ONNX Runtime's offline graph optimization (extended level, CPU EP), saved to ``dst``.

    Extended fusions may emit com.microsoft contrib ops: the file then needs ONNX Runtime to run,
    which is what the bundle is verified with."""
    import onnx

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = dst
    if threads:
        so.intra_op_num_threads = int(threads)
    before = len(onnx.load(src, load_external_data=False).graph.node)
    ort.InferenceSession(src, sess_options=so, providers=[PROVIDERS["cpu"]])
    after = len(onnx.load(dst, load_external_data=False).graph.node)
    return {"optimizer": f"onnxruntime {ort.__version__} ORT_ENABLE_EXTENDED (CPU)", "nodes_before": before,
            "nodes_after": after}


def save_transformer_optimized(src: str, dst: str, model_type: str = "bert", threads: int | None = None) -> dict:
    """onnxruntime.transformers' fusions for transformer graphs (LayerNorm/SkipLayerNorm, Gelu,
    Attention where its patterns match), CPU only, then ONNX Runtime's offline extended fusions.
    Heads and hidden size are detected from the graph. Returns what was fused, for the manifest."""
    import logging
    import os
    import tempfile

    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    before = len(onnx.load(src, load_external_data=False).graph.node)
    fused = optimize_model(src, model_type=model_type, num_heads=0, hidden_size=0, opt_level=0, use_gpu=False)
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        mid = os.path.join(tmp, "fused.onnx")
        fused.save_model_to_file(mid)
        del fused
        info = save_optimized(mid, dst, threads=threads)
    return {"optimizer": f"onnxruntime.transformers optimize_model(model_type={model_type!r}, opt_level=0, "
                         f"use_gpu=False) then {info['optimizer']}", "fused": stats,
            "nodes_before": before, "nodes_after": info["nodes_after"]}
