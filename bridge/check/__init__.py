"""``bridge check``: export and verify every model of a config file, gate CI on one exit code.

In the spirit of tf2onnx's pretrained-model YAML harness: a list of models in ``bridge.toml`` (or
``[tool.bridge]`` in ``pyproject.toml``), each exported and verified through the same command line a
user runs (``python -m bridge export`` then ``python -m bridge verify``), each step in its own
process, so torch and TensorFlow never share one. On top of each verdict come the model's latency
budgets and its regression check against a stored baseline report.

Config (paths relative to the config file; docs/ci.md has the reference)::

    workdir = "build/bridge-check"          # optional: bundles, reports and logs go here

    [[models]]
    name = "torch_cnn"                      # unique; names the bundle directory
    source = "models/torch_cnn.py:build"    # any SOURCE bridge export accepts
    weights = "build/torch_cnn.pt"          # optional
    inputs = ["x:float32[batch,1,8,8]"]     # optional input specs
    input_ranges = { x = "0:1" }
    devices = ["cpu"]                       # verify on these ONNX Runtime devices
    atol = 1e-5                             # or { logits = 1e-4 }; rtol likewise
    samples = "data/digits.npz"             # optional real samples (every export/verify option is a key)
    min_top1 = 1.0                          # optional classifier agreement
    latency = { runs = 100, ort_not_slower = true, max_ms = 5.0 }
    baseline = "baselines/torch_cnn.json"   # a stored verify report (--json)
    skip = "reason"                         # reported as skipped, not run
    prepare = [["python", "-m", "models.train", "torch_cnn", "build/torch_cnn.pt"]]

Where the models run (``executor = "local"`` or ``"ray"``, and a ``[ray]`` table with ``address``,
``shared_fs`` and ``max_retries``): bridge/check/executor.py; Ray is imported only when chosen.

Exit code: 0 every model passes, 1 a parity or budget failure (or a model's export/verify failed),
3 inconclusive and nothing failed, 2 a config error. Only the standard library is imported here at
import time (``bridge --help`` stays fast); each model's work runs in subprocesses.
"""

from bridge.check.config import (
    CONFIG_FILE,
    DEFAULT_LATENCY_RUNS,
    DEFAULT_RAY_RETRIES,
    DEFAULT_WORKDIR,
    EXECUTORS,
    LATENCY_KEYS,
    OWN_MODEL_KEYS,
    PYTHON_NAMES,
    RAY_KEYS,
    TOP_KEYS,
    CheckConfig,
    LatencyBudget,
    ModelConfig,
    RaySettings,
    find_config,
    load_config,
    model_keys,
    parse_config,
)
from bridge.check.executor import Executor, LocalExecutor, RunSettings, make_executor
from bridge.check.render import (
    SUMMARY_SCHEMA_VERSION,
    TABLE_HEADERS,
    render_junit,
    render_markdown,
    render_table,
    summary_json,
    table_rows,
)
from bridge.check.run import Runner, StepResult, judge
from bridge.check.verdicts import (
    BASELINE_GROWTH,
    FLOAT32_EPS,
    Check,
    ModelResult,
    compare_baseline,
    evaluate_latency,
    exit_code,
    report_max_abs,
    run_status,
)

__all__ = [
    "BASELINE_GROWTH",
    "CONFIG_FILE",
    "DEFAULT_LATENCY_RUNS",
    "DEFAULT_RAY_RETRIES",
    "DEFAULT_WORKDIR",
    "EXECUTORS",
    "FLOAT32_EPS",
    "LATENCY_KEYS",
    "OWN_MODEL_KEYS",
    "PYTHON_NAMES",
    "RAY_KEYS",
    "SUMMARY_SCHEMA_VERSION",
    "TABLE_HEADERS",
    "TOP_KEYS",
    "Check",
    "CheckConfig",
    "Executor",
    "LatencyBudget",
    "LocalExecutor",
    "ModelConfig",
    "ModelResult",
    "RaySettings",
    "RunSettings",
    "Runner",
    "StepResult",
    "compare_baseline",
    "evaluate_latency",
    "exit_code",
    "find_config",
    "judge",
    "load_config",
    "make_executor",
    "model_keys",
    "parse_config",
    "render_junit",
    "render_markdown",
    "render_table",
    "report_max_abs",
    "run_status",
    "summary_json",
    "table_rows",
]
