"""What the export and verify commands were asked to do: plain data, picklable into the worker.

Standard library only, so the CLI process builds these without importing numpy or a framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportOptions:
    source: str
    output: str
    inputs: list = field(default_factory=list)
    ranges: list = field(default_factory=list)
    dims: list = field(default_factory=list)
    dims_min: list = field(default_factory=list)  # NAME=SIZE: the smallest size the sweep may use
    dims_max: list = field(default_factory=list)  # NAME=SIZE: the largest
    input_kinds: list = field(default_factory=list)  # NAME=KIND: values, index, mask, positions
    opset: int | None = None
    framework: str | None = None
    weights: str | None = None
    seed: int = 0
    force: bool = False
    publish_failed: bool = False  # publish at `output` even when the export's verification does not pass
    exporter: str = "auto"  # auto (every route, first that passes), or one pinned route that never falls back
    trust_code: bool = False
    threads: int | None = None
    atol: list = field(default_factory=list)
    rtol: list = field(default_factory=list)
    scale_atol: list = field(default_factory=list)
    optimize: str = "none"
    precision: str = "fp32"  # fp32, or a graph derived from the verified float32 export: fp16, int8
    calibrate: str | None = None  # real samples (.npz) for static int8 quantization


@dataclass
class VerifyOptions:
    target: str
    source: str | None = None
    devices: list = field(default_factory=lambda: ["cpu"])
    weights: str | None = None
    framework: str | None = None
    ranges: list = field(default_factory=list)
    dims: list = field(default_factory=list)
    dims_min: list = field(default_factory=list)  # NAME=SIZE: the smallest size the sweep may use
    dims_max: list = field(default_factory=list)  # NAME=SIZE: the largest
    input_kinds: list = field(default_factory=list)  # NAME=KIND: values, index, mask, positions
    input_specs: list = field(default_factory=list)  # NAME:DTYPE[DIMS], overriding the bundle's or source's
    kind: str = "verify"  # "verify" or "bench": what the report is titled
    inputs_npz: str | None = None
    seed: int = 1
    atol: list = field(default_factory=list)
    rtol: list = field(default_factory=list)
    scale_atol: list = field(default_factory=list)
    policy_file: str | None = None
    allow_nonfinite: bool = False
    min_top1: float | None = None
    latency_runs: int = 0
    threads: int | None = None
    trust_code: bool = False
    localize_dir: str | None = None
    labels: str | None = None
    tf32: bool = False  # CUDA: verify (and time) with TF32 math on both sides, as deployed by default
    # ORT's intra-op threads spin while idle, like torch's and TensorFlow's OpenMP threads by default:
    # symmetric. Alternating rounds with idle gaps keep one side's spinning off the other's time.
    ort_spinning: bool = True
