"""ONNX Runtime: the one session factory, and the runner of a model file on a device (its execution
provider from bridge/frameworks/providers/), with provider checks."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from bridge.errors import EnvironmentProblem, InputError
from bridge.frameworks.base import Feeds, Runner

# ONNX Runtime's own log (colour codes, and node names and op types a model chose) never reaches stderr:
# every failure comes back as an exception, whose message bridge prints through report.text.safe. 4 is
# FATAL; sessions made by libraries (onnxruntime.quantization) use this default logger too.
LOG_SEVERITY = 4
ort.set_default_logger_severity(LOG_SEVERITY)


def ort_message(exc: BaseException, limit: int = 300) -> str:
    """ONNX Runtime's error text without its source paths and C++ signatures: the reason is at the end."""
    import re

    text = " ".join(str(exc).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ [\w:~<>]+\([^)]*\)\s*", "", text)
    return text if len(text) <= limit else "..." + text[-limit:]


def session_options(
    *,
    threads: int | None = None,
    spinning: bool = False,
    optimize: bool = True,
    level: str | None = None,
    profile_prefix: str | None = None,
    optimized_path: str | None = None,
    external_dir: str | None = None,
):
    """The one place ONNX Runtime session options are made. ``optimize=False``: graph optimizations off
    (the same graph, rounded differently); ``level``: "extended" for offline fusions saved to
    ``optimized_path``; ``external_dir``: where a graph given as bytes finds its external weights."""
    so = ort.SessionOptions()
    so.log_severity_level = LOG_SEVERITY
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    elif level == "extended":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    # Idle spinning threads steal cores from whatever runs next (the native side when timing).
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    if external_dir:
        so.add_session_config_entry("session.model_external_initializers_file_folder_path", external_dir)
    return so


def session(model, device: str = "cpu", *, provider_options: dict | None = None, **options):
    """An InferenceSession on ``device`` (a path, or a graph as bytes): the device's provider first,
    the CPU behind it. Raises whatever ONNX Runtime raises; OrtRunner turns that into bridge's errors."""
    from bridge.frameworks.providers import provider

    ep = provider(device)
    providers = [(ep.PROVIDER, dict(provider_options or {}))] if device != "cpu" else []
    providers.append("CPUExecutionProvider")
    return ort.InferenceSession(model, sess_options=session_options(**options), providers=providers)


class OrtRunner(Runner):
    """A model file in ONNX Runtime on one device (bridge/frameworks/providers/), behind the runner
    contract of bridge/frameworks/base.py."""

    framework = "onnxruntime"

    def __init__(
        self,
        model_path: str,
        device: str = "cpu",
        threads: int | None = None,
        spinning: bool = False,
        tf32: bool = False,
        optimize: bool = True,
    ):
        from bridge.frameworks.providers import provider

        ep = provider(device)
        self.device, self.notes = device, []
        self._args = (model_path, device, threads, spinning, tf32)
        self._plain = None
        self._binding = None
        self.session = None
        problem = ep.problem(ort)
        if problem:
            raise EnvironmentProblem(
                f"--device {device}: {problem}", hint=f"run on a machine where {ep.PROVIDER} works, or use --device cpu"
            )
        ep.prepare(ort)
        self.provider_options = ep.options(tf32)
        self._ep = ep
        self.model_path = model_path
        self.settings = {
            "intra_op_num_threads": int(threads or 0),
            "allow_spinning": bool(spinning),
            "graph_optimization_level": "ORT_ENABLE_ALL" if optimize else "ORT_DISABLE_ALL",
        }
        if device != "cpu":
            self.settings[f"{device}_options"] = dict(self.provider_options)
        try:
            self.session = session(
                model_path,
                device,
                provider_options=self.provider_options,
                threads=threads,
                spinning=spinning,
                optimize=optimize,
            )
        except Exception as exc:
            raise InputError(
                f"ONNX Runtime cannot load {model_path}: {ort_message(exc)}",
                hint="the file may be malformed or use an operator this onnxruntime does not support",
            ) from None
        used = self.session.get_providers()
        if device != "cpu" and ep.PROVIDER not in used:
            raise EnvironmentProblem(
                f"--device {device}: ONNX Runtime fell back to {used} (the {ep.PROVIDER} did not start)",
                hint="check that the libraries it needs (CUDA, cuDNN) match this onnxruntime build",
            )
        self.providers = used
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Feeds) -> Feeds:
        outs = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return dict(zip(self.output_names, outs, strict=True))

    def unoptimized(self) -> "OrtRunner":
        """The same graph on the same device with ONNX Runtime's graph optimizations off (made once):
        its outputs differ from this runner's by rounding only (bridge/verdict/rounding.py)."""
        if self._plain is None:
            self._plain = OrtRunner(*self._args, optimize=False)
        return self._plain

    def node_placement(self, feeds: Feeds) -> dict:
        """How many graph nodes ran on each execution provider, from one profiled run in a separate
        session (profiling the timed session would slow it)."""
        import json
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bridge-prof-") as tmp:
            profiled = session(
                self.model_path,
                self.device,
                provider_options=self.provider_options,
                profile_prefix=os.path.join(tmp, "prof"),
            )
            profiled.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
            with open(profiled.end_profiling()) as fh:
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
        return self._ep.precision(self.provider_options)

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

    before = len(onnx.load(src, load_external_data=False).graph.node)
    session(src, "cpu", level="extended", optimized_path=dst, threads=threads)
    after = len(onnx.load(dst, load_external_data=False).graph.node)
    return {
        "optimizer": f"onnxruntime {ort.__version__} ORT_ENABLE_EXTENDED (CPU)",
        "nodes_before": before,
        "nodes_after": after,
    }
