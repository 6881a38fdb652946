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
    inputs_npz = "data/digits.npz"          # optional real samples
    min_top1 = 1.0                          # optional classifier agreement
    latency = { runs = 100, ort_not_slower = true, max_ms = 5.0 }
    baseline = "baselines/torch_cnn.json"   # a stored verify report (--json)
    skip = "reason"                         # reported as skipped, not run
    prepare = [["python", "-m", "models.train", "torch_cnn", "build/torch_cnn.pt"]]

Exit code: 0 every model passes, 1 a parity or budget failure (or a model's export/verify failed),
3 inconclusive and nothing failed, 2 a config error. Only the standard library is imported here at
import time (``bridge --help`` stays fast); each model's work runs in subprocesses.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import EXIT_INCONCLUSIVE, EXIT_PARITY, EXIT_PASS, BridgeError, UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

SUMMARY_SCHEMA_VERSION = 1
CONFIG_FILE = "bridge.toml"
DEFAULT_WORKDIR = "build/bridge-check"
DEFAULT_LATENCY_RUNS = 100
BASELINE_GROWTH = 10.0  # an output's max_abs may grow at most this factor over the baseline's
FLOAT32_EPS = 2.0 ** -23  # one float32 ulp at magnitude 1: the floor of an exact (0) baseline error

TOP_KEYS = ("models", "workdir")
MODEL_KEYS = ("name", "source", "weights", "inputs", "input_ranges", "devices", "atol", "rtol", "inputs_npz",
              "min_top1", "latency", "baseline", "skip", "prepare")
LATENCY_KEYS = ("runs", "ort_not_slower", "max_ms")
DEVICES = ("cpu", "cuda")
PYTHON_NAMES = ("python", "python3")

PASS, FAIL, INCONCLUSIVE, SKIPPED = "pass", "fail", "inconclusive", "skipped"
_RANK = {PASS: 0, SKIPPED: 0, INCONCLUSIVE: 1, FAIL: 2}
_MARK = {PASS: "PASS", FAIL: "FAIL", INCONCLUSIVE: "INCONCLUSIVE", SKIPPED: "SKIPPED"}
_VERDICT_EXITS = (0, 1, 3)  # exit codes of export/verify that carry a verdict (and a JSON report)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class LatencyBudget:
    runs: int = DEFAULT_LATENCY_RUNS
    ort_not_slower: bool = False
    max_ms: float | None = None

    @property
    def has_budget(self) -> bool:
        return self.ort_not_slower or self.max_ms is not None

    def to_json(self) -> dict:
        return {"runs": self.runs, "ort_not_slower": self.ort_not_slower, "max_ms": self.max_ms}


@dataclass
class ModelConfig:
    name: str
    source: str  # as bridge export takes it: file paths made absolute against the config's directory
    weights: str | None = None
    inputs: list = field(default_factory=list)
    input_ranges: dict = field(default_factory=dict)
    devices: list = field(default_factory=lambda: ["cpu"])
    atol: float | dict | None = None
    rtol: float | dict | None = None
    inputs_npz: str | None = None
    min_top1: float | None = None
    latency: LatencyBudget | None = None
    baseline: str | None = None
    skip: str | None = None
    prepare: list = field(default_factory=list)  # argv lists, "python" already replaced by sys.executable
    source_file: str | None = None  # the file or directory SOURCE names, None for package.module:factory

    def required_files(self) -> list[str]:
        """Files that must exist before export; a missing one triggers the model's prepare commands."""
        return [p for p in (self.source_file, self.weights, self.inputs_npz) if p]


@dataclass
class CheckConfig:
    path: Path
    base_dir: Path
    workdir: Path
    models: list[ModelConfig]

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def find_config(explicit: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> Path:
    """--config PATH, else ./bridge.toml, else ./pyproject.toml when it has a [tool.bridge] table."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"config file {path} does not exist",
                             hint="give a bridge.toml or a pyproject.toml with [tool.bridge]")
        return path
    here = Path(cwd or os.getcwd())
    if (here / CONFIG_FILE).is_file():
        return here / CONFIG_FILE
    pyproject = here / "pyproject.toml"
    if pyproject.is_file() and "bridge" in _read_toml(pyproject).get("tool", {}):
        return pyproject
    raise UsageError(f"no {CONFIG_FILE}, and no [tool.bridge] in pyproject.toml, in {here}",
                     hint="pass --config PATH, or write a bridge.toml (see docs/ci.md)")


def load_config(path: str | os.PathLike | None = None, *, cwd: str | os.PathLike | None = None) -> CheckConfig:
    """Find, read and strictly validate a check config. Every problem raises UsageError (exit 2)."""
    path = find_config(path, cwd)
    data = _read_toml(path)
    origin = path.name
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or "bridge" not in tool:
            raise UsageError(f"{path} has no [tool.bridge] table", hint="add [[tool.bridge.models]] entries")
        data, origin = tool["bridge"], "pyproject.toml [tool.bridge]"
    return parse_config(data, Path(path).resolve().parent, origin=origin, path=Path(path))


def _read_toml(path: Path) -> dict:
    if tomllib is None:
        raise UsageError("reading a TOML config needs Python 3.11+ (tomllib) or the tomli package")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from None


def parse_config(data, base_dir: str | os.PathLike, origin: str = CONFIG_FILE, path: Path | None = None) -> CheckConfig:
    base = Path(base_dir).resolve()
    models_key = "[[tool.bridge.models]]" if "tool.bridge" in origin else "[[models]]"
    if not isinstance(data, dict):
        raise UsageError(f"{origin}: expected a table at top level, got {_type(data)}")
    _unknown_keys(data, TOP_KEYS, f"{origin}: top level")
    workdir = data.get("workdir", DEFAULT_WORKDIR)
    if not isinstance(workdir, str) or not workdir.strip():
        raise UsageError(f"{origin}: key 'workdir': expected a directory path (string), got {workdir!r}")
    models = data.get("models")
    if models is None:
        raise UsageError(f"{origin}: no models", hint=f"add one {models_key} table per model (see docs/ci.md)")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise UsageError(f"{origin}: key 'models': expected an array of tables ({models_key}), got {_type(models)}")
    if not models:
        raise UsageError(f"{origin}: the models array is empty", hint=f"add one {models_key} table per model")
    parsed: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(models):
        m = _parse_model(raw, index, base, origin)
        if m.name in seen:
            raise UsageError(f"{origin}: models #{seen[m.name] + 1} and #{index + 1} are both named {m.name!r}: "
                             "key 'name' must be unique")
        seen[m.name] = index
        parsed.append(m)
    return CheckConfig(path=path or base / CONFIG_FILE, base_dir=base, workdir=Path(_resolve(base, workdir)),
                       models=parsed)


def _type(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _unknown_keys(table: dict, allowed: tuple, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise UsageError(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                             hint="allowed keys: " + ", ".join(allowed))


def _resolve(base: Path, text: str) -> str:
    p = Path(os.path.expanduser(text))
    return os.path.normpath(p if p.is_absolute() else base / p)


def _resolve_source(base: Path, text: str) -> tuple[str, str | None]:
    """(SOURCE for bridge export, the file it names or None). file.py:factory and model files are made
    absolute; package.module:factory stays as it is (imported with the config's directory as cwd)."""
    left, sep, attr = text.rpartition(":")
    if sep and _IDENT_RE.match(attr) and left:
        if left.endswith(".py"):
            path = _resolve(base, left)
            return f"{path}:{attr}", path
        if _MODULE_RE.match(left):
            return text, None
    path = _resolve(base, text)
    return path, path


def _parse_model(raw: dict, index: int, base: Path, origin: str) -> ModelConfig:
    name = raw.get("name")
    label = f"model #{index + 1}" + (f" {name!r}" if isinstance(name, str) and name else "")
    where = f"{origin}: {label}"

    def bad(key: str, expected: str, value=None) -> UsageError:
        got = f", got {value!r}" if value is not None else ""
        return UsageError(f"{where}: key {key!r}: expected {expected}{got}")

    _unknown_keys(raw, MODEL_KEYS, where)
    if name is None:
        raise UsageError(f"{where}: missing key 'name'", hint="each model needs a unique name, e.g. name = \"my_model\"")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise bad("name", "a non-empty string of letters, digits, '_', '.', '-' (it names a directory)", name)
    source = raw.get("source")
    if source is None:
        raise UsageError(f"{where}: missing key 'source'",
                         hint="e.g. source = \"models/net.py:build\" or source = \"model.keras\"")
    if not isinstance(source, str) or not source.strip():
        raise bad("source", "a non-empty string (file.py:factory, package.module:factory, model file or "
                            "SavedModel directory)", source)
    source_text, source_file = _resolve_source(base, source.strip())

    def opt_path(key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise bad(key, "a file path (string)", value)
        return _resolve(base, value.strip())

    from bridge.errors import SpecError
    from bridge.spec import parse_input_spec, parse_range

    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
        raise bad("inputs", "an array of input specs like \"x:float32[batch,3,224,224]\"", inputs)
    for spec in inputs:
        try:
            parse_input_spec(spec)
        except SpecError as exc:
            raise UsageError(f"{where}: key 'inputs': {exc.message}") from None

    ranges = raw.get("input_ranges", {})
    if not isinstance(ranges, dict):
        raise bad("input_ranges", "a table of input name -> \"LOW:HIGH\"", ranges)
    for key, value in ranges.items():
        if not isinstance(value, str):
            raise bad(f"input_ranges.{key}", "a string \"LOW:HIGH\"", value)
        try:
            parse_range(f"{key}={value}")
        except SpecError as exc:
            raise UsageError(f"{where}: key 'input_ranges.{key}': {exc.message}") from None

    devices = raw.get("devices", ["cpu"])
    if (not isinstance(devices, list) or not devices or not all(d in DEVICES for d in devices)
            or len(set(devices)) != len(devices)):
        raise bad("devices", "a non-empty array of distinct devices from " + ", ".join(map(repr, DEVICES)), devices)

    def tolerance(key: str):
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, dict):
            if not value:
                raise bad(key, "a number >= 0 or a non-empty table of output name -> number >= 0", value)
            for out, v in value.items():
                if not _is_tolerance(v):
                    raise bad(f"{key}.{out}", "a finite number >= 0", v)
            return {str(k): float(v) for k, v in value.items()}
        if not _is_tolerance(value):
            raise bad(key, "a finite number >= 0 or a table of output name -> number", value)
        return float(value)

    atol, rtol = tolerance("atol"), tolerance("rtol")

    min_top1 = raw.get("min_top1")
    if min_top1 is not None and (not _is_number(min_top1) or not 0.0 <= min_top1 <= 1.0):
        raise bad("min_top1", "a fraction between 0 and 1 (e.g. 1.0)", min_top1)

    latency = raw.get("latency")
    if latency is not None:
        if not isinstance(latency, dict):
            raise bad("latency", "a table with runs, ort_not_slower and/or max_ms", latency)
        _unknown_keys(latency, LATENCY_KEYS, f"{where}: key 'latency'")
        runs = latency.get("runs", DEFAULT_LATENCY_RUNS)
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise bad("latency.runs", "an integer >= 1 (timed runs per side)", runs)
        slower = latency.get("ort_not_slower", False)
        if not isinstance(slower, bool):
            raise bad("latency.ort_not_slower", "true or false", slower)
        max_ms = latency.get("max_ms")
        if max_ms is not None and (not _is_number(max_ms) or not max_ms > 0 or not math.isfinite(max_ms)):
            raise bad("latency.max_ms", "a number > 0 (ONNX Runtime p50 budget in milliseconds)", max_ms)
        latency = LatencyBudget(runs=runs, ort_not_slower=slower, max_ms=float(max_ms) if max_ms is not None else None)

    skip = raw.get("skip")
    if skip is not None and (not isinstance(skip, str) or not skip.strip()):
        raise bad("skip", "the reason for skipping (a non-empty string)", skip)

    prepare = raw.get("prepare", [])
    if not isinstance(prepare, list):
        raise bad("prepare", "an argv array like [\"python\", \"-m\", \"pkg.train\", \"out.pt\"] or an array of them",
                  prepare)
    if prepare and all(isinstance(a, str) for a in prepare):
        prepare = [prepare]
    commands = []
    for cmd in prepare:
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) and a for a in cmd):
            raise bad("prepare", "an argv array of non-empty strings, or an array of such arrays", cmd)
        commands.append([sys.executable if cmd[0] in PYTHON_NAMES else cmd[0], *cmd[1:]])

    return ModelConfig(
        name=name, source=source_text, source_file=source_file, weights=opt_path("weights"), inputs=list(inputs),
        input_ranges={str(k): v for k, v in ranges.items()}, devices=list(devices), atol=atol, rtol=rtol,
        inputs_npz=opt_path("inputs_npz"), min_top1=float(min_top1) if min_top1 is not None else None,
        latency=latency, baseline=opt_path("baseline"), skip=skip.strip() if skip else None, prepare=commands,
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tolerance(value) -> bool:
    return _is_number(value) and math.isfinite(value) and value >= 0


# -------------------------------------------------------------------------------------------- results


@dataclass
class Check:
    """One budget or baseline check of a model: a JUnit testcase of its own."""

    name: str
    status: str
    message: str

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message}


@dataclass
class ModelResult:
    name: str
    status: str = PASS  # pass | fail | inconclusive | skipped: parity, budgets and baseline together
    verdict: str | None = None  # the parity verdict alone (export and verify reports), None if none was reached
    message: str = ""
    max_abs: float | None = None
    seconds: float = 0.0
    budgets: list = field(default_factory=list)
    baseline: list = field(default_factory=list)
    latency: dict = field(default_factory=dict)  # device -> {"native_p50_ms", "ort_p50_ms"}
    error: dict | None = None  # {"step", "exit_code", "message"} when a step ended without a verdict
    bundle: str | None = None
    export_json: str | None = None
    verify_json: str | None = None
    report: dict | None = None  # the verify report (Report.to_json())
    export_report: dict | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name, "status": self.status, "verdict": self.verdict, "message": self.message,
            "max_abs": self.max_abs, "seconds": round(self.seconds, 3),
            "budgets": [b.to_json() for b in self.budgets], "baseline": [b.to_json() for b in self.baseline],
            "latency": self.latency, "error": self.error, "bundle": self.bundle,
            "export_report": self.export_json, "verify_report": self.verify_json,
        }


def worst(*statuses) -> str:
    statuses = [s for s in statuses if s]
    return max(statuses, key=lambda s: _RANK.get(s, 2)) if statuses else PASS


def exit_code(results: list[ModelResult]) -> int:
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return EXIT_PARITY
    if INCONCLUSIVE in statuses:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def _float(value) -> float | None:
    """A JSON number, or the strings "inf", "-inf", "nan" reports write for non-finite floats."""
    if _is_number(value):
        value = float(value)
    elif isinstance(value, str) and value in ("inf", "-inf", "nan"):
        value = float(value)
    else:
        return None
    return None if math.isnan(value) else value


def report_max_abs(report: dict | None) -> float | None:
    values = [c.get("max_abs") for c in (report or {}).get("checks") or []]
    values += [o.get("max_abs") for o in (report or {}).get("outputs") or []]
    values = [v for v in map(_float, values) if v is not None]
    return max(values) if values else None


def evaluate_latency(budget: LatencyBudget | None, report: dict | None) -> tuple[list[Check], dict]:
    """Budgets from the verify report's latency section: ONNX Runtime's p50 against native's p50
    (ort_not_slower) and against max_ms. Not measured (e.g. the reference was nondeterministic, so
    verify stopped early) is inconclusive."""
    if budget is None:
        return [], {}
    latency = (report or {}).get("latency") or {}
    figures = {}
    for device, lat in latency.items():
        sides = (lat or {}).get("sides") or {}
        figures[device] = {"native_p50_ms": (sides.get("native") or {}).get("p50_ms"),
                           "ort_p50_ms": (sides.get("onnxruntime") or {}).get("p50_ms")}
    if not budget.has_budget:
        return [], figures
    checks = []
    if not figures:
        why = "latency was not measured" + (f" (verdict {report.get('status')})" if report else " (no verify report)")
        if budget.ort_not_slower:
            checks.append(Check("latency.ort_not_slower", INCONCLUSIVE, why))
        if budget.max_ms is not None:
            checks.append(Check("latency.max_ms", INCONCLUSIVE, why))
        return checks, figures
    for device, f in figures.items():
        native, ort = f["native_p50_ms"], f["ort_p50_ms"]
        if budget.ort_not_slower:
            name = f"latency.ort_not_slower[{device}]"
            if not _is_number(native) or not _is_number(ort):
                checks.append(Check(name, INCONCLUSIVE, "native or ONNX Runtime p50 missing from the report"))
            elif ort <= native:
                checks.append(Check(name, PASS, f"ONNX Runtime p50 {ort:.3f} ms <= native p50 {native:.3f} ms"))
            else:
                checks.append(Check(name, FAIL, f"ONNX Runtime p50 {ort:.3f} ms is slower than native p50 "
                                                f"{native:.3f} ms ({ort / native:.2f}x)"))
        if budget.max_ms is not None:
            name = f"latency.max_ms[{device}]"
            if not _is_number(ort):
                checks.append(Check(name, INCONCLUSIVE, "ONNX Runtime p50 missing from the report"))
            elif ort <= budget.max_ms:
                checks.append(Check(name, PASS, f"ONNX Runtime p50 {ort:.3f} ms <= budget {budget.max_ms:g} ms"))
            else:
                checks.append(Check(name, FAIL, f"ONNX Runtime p50 {ort:.3f} ms exceeds budget {budget.max_ms:g} ms"))
    return checks, figures


def _per_output(report: dict) -> dict[str, dict]:
    """name -> {"max_abs", "ref_abs_max"}, the largest over every case and device."""
    out: dict[str, dict] = {}
    for c in list(report.get("checks") or []) + list(report.get("outputs") or []):
        name = c.get("name")
        if name is None:
            continue
        entry = out.setdefault(name, {"max_abs": None, "ref_abs_max": None})
        for key in ("max_abs", "ref_abs_max"):
            v = _float(c.get(key))
            if v is not None:
                entry[key] = v if entry[key] is None else max(entry[key], v)
    return out


def compare_baseline(baseline: dict, report: dict, source: str = "baseline") -> list[Check]:
    """Regression checks against a stored report: the verdict must not be worse, and no output's max abs
    error may grow more than BASELINE_GROWTH times. A baseline error below one float32 ulp of the
    output's magnitude counts as that ulp, so an exact (0) baseline does not turn rounding into a
    regression."""
    checks = []
    old, new = baseline.get("status"), report.get("status")
    if old not in _RANK or new not in _RANK:
        checks.append(Check("baseline.verdict", FAIL, f"cannot compare verdicts: baseline {old!r}, now {new!r}"))
    elif _RANK[new] > _RANK[old]:
        checks.append(Check("baseline.verdict", FAIL, f"verdict regressed: {old} in {source}, {new} now"))
    else:
        checks.append(Check("baseline.verdict", PASS, f"verdict {new} (baseline {old})"))
    before, after = _per_output(baseline), _per_output(report)
    for name, b in before.items():
        check = f"baseline.max_abs[{name}]"
        if name not in after:
            checks.append(Check(check, FAIL, f"output {name!r} of the baseline is missing now"))
            continue
        old_abs, new_abs = b["max_abs"], after[name]["max_abs"]
        if old_abs is None or new_abs is None:
            checks.append(Check(check, INCONCLUSIVE if new_abs is None else PASS,
                                f"max abs error {_num(new_abs)} now, {_num(old_abs)} in the baseline"))
            continue
        scale = b["ref_abs_max"] or after[name]["ref_abs_max"] or 1.0
        floor = max(old_abs, FLOAT32_EPS * scale, 1e-30)
        limit = BASELINE_GROWTH * floor
        if new_abs > limit:
            checks.append(Check(check, FAIL, f"max abs error grew from {_num(old_abs)} to {_num(new_abs)} "
                                             f"({new_abs / floor:.1f}x, limit {BASELINE_GROWTH:g}x)"))
        else:
            checks.append(Check(check, PASS, f"max abs error {_num(new_abs)} (baseline {_num(old_abs)}, "
                                             f"limit {_num(limit)})"))
    return checks


def _num(x, spec: str = ".2e") -> str:
    return "-" if x is None else format(x, spec)


def _first_error_line(text: str) -> str:
    """The one-line error bridge prints (``bridge: <category>: ...``), else stderr's first line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("bridge:"):
            return ln[:400]
    if lines and lines[0].startswith("Traceback"):  # a Python crash: its last line names the exception
        return lines[-1][:400]
    return lines[0][:400] if lines else "(no output on stderr)"


# ------------------------------------------------------------------------------------------- running


class _Children:
    """Every subprocess started here, so an interrupt can end them (they run in sessions of their own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set = set()
        self.stopping = False

    def kill_all(self) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        for p in procs:
            _kill(p)


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


@dataclass
class StepResult:
    argv: list
    returncode: int | None  # None: timed out or interrupted
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


class Runner:
    def __init__(self, config: CheckConfig, *, workdir: Path, threads: int, timeout: float | None,
                 update_baselines: bool = False, progress=None) -> None:
        self.config = config
        self.workdir = workdir
        self.threads = threads
        self.timeout = timeout or None
        self.update_baselines = update_baselines
        self.progress = progress or _NullProgress()
        self.children = _Children()
        self.prepared: dict[tuple, StepResult] = {}
        self.prepare_failures: dict[str, str] = {}
        self.prepare_seconds: dict[str, float] = {}  # counted in the model's seconds
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.env = env

    # one subprocess, its output kept in a log file
    def _run(self, argv: list[str], log: Path) -> StepResult:
        start = time.perf_counter()
        with self.children.lock:
            if self.children.stopping:
                return StepResult(argv, None, "", "interrupted", 0.0)
            proc = subprocess.Popen(argv, cwd=self.config.base_dir, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                    start_new_session=True)
            self.children.procs.add(proc)
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            stdout, stderr = proc.communicate()
        except BaseException:  # an interrupt: the child runs in its own session and did not get it
            _kill(proc)
            proc.wait()
            raise
        finally:
            with self.children.lock:
                self.children.procs.discard(proc)
        seconds = time.perf_counter() - start
        rc = None if timed_out or self.children.stopping else proc.returncode
        try:
            log.write_text(f"$ {' '.join(argv)}\n# exit {proc.returncode}{' (timed out)' if timed_out else ''}, "
                           f"{seconds:.1f} s\n\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        except OSError:
            pass
        return StepResult(argv, rc, stdout, stderr, seconds, timed_out)

    def prepare(self, models: list[ModelConfig]) -> None:
        """Run the prepare commands of models with a missing file, one at a time and each distinct
        command once (two models may share one: both read the same data)."""
        for m in models:
            if m.skip or not m.prepare:
                continue
            missing = [p for p in m.required_files() if not os.path.exists(p)]
            if not missing:
                continue
            self.progress.phase(m.name, "preparing")
            for i, argv in enumerate(m.prepare):
                key = tuple(argv)
                if key not in self.prepared:
                    self.prepared[key] = self._run(argv, self.workdir / f"{m.name}.prepare{i}.log")
                    self.prepare_seconds[m.name] = self.prepare_seconds.get(m.name, 0.0) + self.prepared[key].seconds
                step = self.prepared[key]
                if step.returncode != 0:
                    what = "timed out" if step.timed_out else f"exit {step.returncode}"
                    shown = " ".join(["python", *argv[1:]] if argv[0] == sys.executable else argv)
                    self.prepare_failures[m.name] = (f"prepare command '{shown}' failed ({what}): "
                                                     f"{_first_error_line(step.stderr)}")
                    break
            else:
                still = [p for p in m.required_files() if not os.path.exists(p)]
                if still:
                    self.prepare_failures[m.name] = f"prepare ran, but {', '.join(still)} is still missing"

    def run_model(self, m: ModelConfig) -> ModelResult:
        start = time.perf_counter()
        result = self._run_model(m)
        result.seconds = time.perf_counter() - start + self.prepare_seconds.get(m.name, 0.0)
        return result

    def _fail(self, result: ModelResult, step: str, run: StepResult | None, message: str) -> ModelResult:
        result.status, result.message = FAIL, message
        result.error = {"step": step, "exit_code": run.returncode if run else None, "message": message}
        return result

    def _run_model(self, m: ModelConfig) -> ModelResult:
        result = ModelResult(name=m.name)
        if m.skip:
            result.status, result.message = SKIPPED, m.skip
            return result
        if m.name in self.prepare_failures:
            return self._fail(result, "prepare", None, self.prepare_failures[m.name])
        py = [sys.executable, "-m", "bridge"]
        bundle = self.workdir / m.name
        export_json, verify_json = self.workdir / f"{m.name}.export.json", self.workdir / f"{m.name}.verify.json"
        for stale in (export_json, verify_json):
            if stale.exists():
                stale.unlink()
        tol = _tolerance_args(m)
        ranges = [a for k, v in m.input_ranges.items() for a in ("--input-range", f"{k}={v}")]
        weights = ["--weights", m.weights] if m.weights else []
        threads = ["--threads", str(self.threads)]

        before = _stamp(bundle / "manifest.json")  # an earlier run's bundle must not pass for this one's
        self.progress.phase(m.name, "exporting")
        argv = [*py, "export", m.source, "-o", str(bundle), "--force", "--json", str(export_json), *threads,
                *weights, *[a for s in m.inputs for a in ("--input", s)], *ranges, *tol]
        run = self._run(argv, self.workdir / f"{m.name}.export.log")
        problem = self._step_problem("export", run, export_json)
        if problem:
            return self._fail(result, "export", run, problem)
        result.export_json = str(export_json)
        result.export_report = json.loads(export_json.read_text())
        after = _stamp(bundle / "manifest.json")
        if after is None or after == before:  # e.g. an inconclusive export: no bundle was written
            result.verdict = result.status = result.export_report.get("status") or FAIL
            result.message = "export: " + (result.export_report.get("reason") or "no bundle was written")
            result.max_abs = report_max_abs(result.export_report)
            return result
        result.bundle = str(bundle)

        self.progress.phase(m.name, "verifying")
        argv = [*py, "verify", str(bundle), "--source", m.source, "--json", str(verify_json), *threads, *weights,
                *ranges, *[a for d in m.devices for a in ("--device", d)], *tol]
        if m.inputs_npz:
            argv += ["--inputs", m.inputs_npz]
        if m.min_top1 is not None:
            argv += ["--min-top1", repr(m.min_top1)]
        if m.latency is not None:
            argv += ["--latency-runs", str(m.latency.runs)]
        run = self._run(argv, self.workdir / f"{m.name}.verify.log")
        problem = self._step_problem("verify", run, verify_json)
        if problem:
            return self._fail(result, "verify", run, problem)
        result.verify_json = str(verify_json)
        report = result.report = json.loads(verify_json.read_text())
        export_status = result.export_report.get("status") or FAIL
        verify_status = report.get("status") or FAIL
        result.verdict = worst(export_status, verify_status)
        if _RANK.get(verify_status, 2) >= _RANK.get(export_status, 2):
            result.message = report.get("reason") or ""
        else:
            result.message = "export: " + (result.export_report.get("reason") or "")
        result.max_abs = report_max_abs(report)

        result.budgets, result.latency = evaluate_latency(m.latency, report)
        if m.baseline and not self.update_baselines:
            try:
                baseline = json.loads(Path(m.baseline).read_text())
                if not isinstance(baseline, dict):
                    raise ValueError("not a JSON object")
                result.baseline = compare_baseline(baseline, report, os.path.basename(m.baseline))
            except (OSError, ValueError) as exc:
                result.baseline = [Check("baseline", FAIL, f"cannot read baseline {m.baseline}: {exc}")]
        checks = result.budgets + result.baseline
        result.status = worst(result.verdict, *(c.status for c in checks))
        if _RANK.get(result.status, 2) > _RANK.get(result.verdict, 2):  # a budget or the baseline decided the status
            bad = next(c for c in checks if c.status == result.status)
            result.message = f"{bad.name}: {bad.message}"
        return result

    def _step_problem(self, step: str, run: StepResult, json_path: Path) -> str | None:
        if run.timed_out:
            return f"{step} timed out after {self.timeout:g} s"
        if run.returncode is None:
            return f"{step} was interrupted"
        if run.returncode not in _VERDICT_EXITS:
            return f"{step} failed (exit {run.returncode}): {_first_error_line(run.stderr)}"
        if not json_path.is_file():
            return f"{step} exited {run.returncode} but wrote no report"
        try:
            json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            return f"{step} wrote an unreadable report: {exc}"
        return None


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _tolerance_args(m: ModelConfig) -> list[str]:
    args = []
    for key in ("atol", "rtol"):
        value = getattr(m, key)
        if value is None:
            continue
        tokens = [repr(value)] if isinstance(value, float) else [f"{k}:{v!r}" for k, v in value.items()]
        args += [f"--{key}", *tokens]
    return args


# ------------------------------------------------------------------------------------------ progress


class _NullProgress:
    def start(self, names: list[str]) -> None: ...
    def phase(self, name: str, phase: str) -> None: ...
    def done(self, result: ModelResult) -> None: ...
    def stop(self) -> None: ...


class _PlainProgress(_NullProgress):
    """One line per event: readable in CI logs, where a live display would not render."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.total = 0
        self.finished = 0

    def _print(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, names):
        self.total = len(names)
        self._print(f"bridge check: {self.total} model{'s' if self.total != 1 else ''}")

    def phase(self, name, phase):
        self._print(f"  {name}: {phase}")

    def done(self, result):
        with self.lock:
            self.finished += 1
            n = self.finished
        self._print(f"[{n}/{self.total}] {result.name}: {_MARK[result.status]} ({result.seconds:.1f} s)"
                    + (f": {result.message}" if result.message and result.status != PASS else ""))


class _RichProgress(_NullProgress):
    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}
        self.overall = None
        self.lock = threading.Lock()

    def start(self, names):
        self.progress.start()
        self.overall = self.progress.add_task("bridge check", total=len(names))

    def phase(self, name, phase):
        with self.lock:
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(f"{name}: {phase}", total=None)
            else:
                self.progress.update(self.tasks[name], description=f"{name}: {phase}")

    def done(self, result):
        style = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow", SKIPPED: "dim"}[result.status]
        with self.lock:
            task = self.tasks.pop(result.name, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
        from rich.markup import escape

        msg = f": {escape(result.message)}" if result.message and result.status != PASS else ""
        self.progress.console.print(f"[{style}]{_MARK[result.status]}[/] {escape(result.name)} "
                                    f"({result.seconds:.1f} s){msg}", highlight=False)

    def stop(self):
        self.progress.stop()


def _make_progress(use_rich: bool):
    if use_rich:
        try:
            from rich.console import Console

            console = Console()
            if console.is_terminal:
                return _RichProgress(console), console
        except ImportError:
            pass
    return _PlainProgress(), None


# ------------------------------------------------------------------------------------------ rendering

TABLE_HEADERS = ["model", "verdict", "max abs", "budgets", "baseline", "seconds"]


def _budget_cell(checks: list[Check]) -> str:
    if not checks:
        return "-"
    return ", ".join(f"{c.name.split('.', 1)[-1]} {'ok' if c.status == PASS else _MARK[c.status]}" for c in checks)


def _baseline_cell(checks: list[Check]) -> str:
    if not checks:
        return "-"
    bad = [c for c in checks if c.status != PASS]
    if not bad:
        return "ok"
    return f"{len(bad)} regressed: " + ", ".join(c.name.split(".", 1)[-1] for c in bad)


def table_rows(results: list[ModelResult]) -> list[list[str]]:
    return [[r.name, _MARK[r.status], _num(r.max_abs), _budget_cell(r.budgets), _baseline_cell(r.baseline),
             f"{r.seconds:.1f}"] for r in results]


def render_table(results: list[ModelResult]) -> str:
    rows = table_rows(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(TABLE_HEADERS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(TABLE_HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _print_rich_table(console, results: list[ModelResult]) -> None:
    from rich.table import Table

    table = Table(title="bridge check")
    for h in TABLE_HEADERS:
        table.add_column(h, justify="right" if h in ("max abs", "seconds") else "left")
    style = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow", SKIPPED: "dim"}
    for r, row in zip(results, table_rows(results)):
        table.add_row(*row, style=None if r.status == PASS else style[r.status])
    console.print(table)


def render_markdown(results: list[ModelResult], code: int) -> str:
    """Summary for CI pages ($GITHUB_STEP_SUMMARY): one table, then each non-passing model's report."""
    from bridge.report.markdown import md_table, render_markdown as report_markdown

    overall = {EXIT_PASS: "PASS", EXIT_PARITY: "FAIL", EXIT_INCONCLUSIVE: "INCONCLUSIVE"}.get(code, str(code))
    counts = _counts(results)
    parts = [f"## bridge check: {overall}",
             ", ".join(f"{n} {_MARK[s].lower()}" for s, n in counts.items() if n) or "no models",
             md_table(TABLE_HEADERS + ["reason"], [row + [r.message if r.status != PASS else ""]
                                                   for r, row in zip(results, table_rows(results))])]
    for r in results:
        if r.status in (PASS, SKIPPED):
            continue
        parts.append(f"### {_MARK[r.status]}: {r.name}")
        bad = [c for c in r.budgets + r.baseline if c.status != PASS]
        if bad:
            parts.append("\n".join(f"- `{c.name}` {_MARK[c.status]}: {c.message}" for c in bad))
        if r.error:
            parts.append(f"{r.error['step']} failed: `{r.error['message']}`")
        if r.report:  # its own heading one level down
            parts.append("#" + report_markdown(dict(r.report, target=r.name)))
    return "\n\n".join(parts) + "\n"


def _counts(results: list[ModelResult]) -> dict:
    counts = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0, SKIPPED: 0}
    for r in results:
        counts[r.status] += 1
    return counts


def render_junit(results: list[ModelResult], suite_name: str = "bridge") -> str:
    """One testsuite per model: the verify report's checks (bridge.report.junit), then one testcase per
    budget and baseline check; a model whose export or verify ended without a report is one failing
    testcase carrying the error; a skipped model is one skipped testcase."""
    import xml.etree.ElementTree as ET

    from bridge.report.junit import render_junit as report_junit

    root = ET.Element("testsuites", name=suite_name)
    for r in results:
        if r.report is not None or r.export_report is not None:
            report = dict(r.report if r.report is not None else r.export_report, target=r.name)
            suite = ET.fromstring(report_junit([report], suite_name)).find("testsuite")
        else:
            suite = ET.Element("testsuite", name=r.name)
        suite.set("name", r.name)
        if r.status == SKIPPED:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name="skipped", time="0")
            ET.SubElement(tc, "skipped", message=r.message)
        if r.error:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name=r.error["step"], time=f"{r.seconds:.3f}")
            f = ET.SubElement(tc, "failure", message=r.error["message"], type="error")
            f.text = r.error["message"]
        if r.report is not None and r.export_report and r.export_report.get("status") != PASS:
            tc = ET.SubElement(suite, "testcase", classname=r.name, name="export", time="0")
            status = r.export_report.get("status") or FAIL
            f = ET.SubElement(tc, "failure", message=f"{_MARK.get(status, status)}: {r.export_report.get('reason')}",
                              type=status)
            f.text = r.export_report.get("reason") or ""
        for c in r.budgets + r.baseline:
            tc = ET.SubElement(suite, "testcase", classname=f"{r.name}.{c.name.split('.')[0]}", name=c.name, time="0")
            if c.status != PASS:
                ET.SubElement(tc, "failure", message=f"{_MARK[c.status]}: {c.message}", type=c.status).text = c.message
            else:
                ET.SubElement(tc, "system-out").text = c.message
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for tc in cases if tc.find("failure") is not None)))
        suite.set("errors", "0")
        suite.set("skipped", str(sum(1 for tc in cases if tc.find("skipped") is not None)))
        suite.set("time", f"{r.seconds:.3f}")
        root.append(suite)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in root.findall("testsuite"))))
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def summary_json(config: CheckConfig, results: list[ModelResult], code: int, workdir: Path) -> dict:
    status = {EXIT_PASS: PASS, EXIT_PARITY: FAIL, EXIT_INCONCLUSIVE: INCONCLUSIVE}[code]
    return {"schema_version": SUMMARY_SCHEMA_VERSION, "kind": "check", "status": status, "exit_code": code,
            "config": str(config.path), "workdir": str(workdir), "counts": _counts(results),
            "models": [r.to_json() for r in results]}


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)


# ------------------------------------------------------------------------------------------- command

EPILOG = """exit codes:
  0  every model passes (parity, latency budgets, baseline)
  1  a model fails: parity, a budget, a baseline regression, or its export/verify errored
  2  bad config or usage     3  inconclusive and nothing failed
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "check", help="export and verify every model of bridge.toml / [tool.bridge]: one CI exit code",
        description="Export and verify every model listed in a config file (bridge.toml, or [tool.bridge] in\n"
                    "pyproject.toml), each step in its own process, then apply latency budgets and baseline\n"
                    "regression checks. See docs/ci.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: ./bridge.toml, else [tool.bridge] in ./pyproject.toml)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="models checked in parallel (default 1)")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="check only this model (repeatable)")
    p.add_argument("--workdir", metavar="DIR",
                   help=f"where bundles, reports and logs go (default: the config's workdir, else {DEFAULT_WORKDIR})")
    p.add_argument("--junit", metavar="PATH", help="write one JUnit XML file for all models")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="intra-op threads per export/verify process (default: CPU count / --jobs)")
    p.add_argument("--timeout", type=float, default=0, metavar="SECONDS",
                   help="limit per export/verify/prepare process, 0 for none (default 0)")
    p.add_argument("--update-baselines", action="store_true",
                   help="write each passing model's verify report to its baseline path instead of comparing")
    p.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_check(args) -> int:
    config = load_config(args.config)
    jobs = getattr(args, "jobs", 1) or 1
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: expected 1 or more")
    threads = getattr(args, "threads", None) or max(1, (os.cpu_count() or 1) // jobs)
    if threads < 1:
        raise UsageError(f"--threads {threads}: expected 1 or more")
    timeout = getattr(args, "timeout", 0) or 0
    if timeout < 0:
        raise UsageError(f"--timeout {timeout:g}: expected 0 (none) or more seconds")
    models = config.models
    selected = getattr(args, "model", None) or []
    if selected:
        unknown = [n for n in selected if n not in {m.name for m in models}]
        if unknown:
            raise UsageError(f"--model {', '.join(unknown)}: not in {config.path}",
                             hint="models there: " + ", ".join(m.name for m in models))
        models = [m for m in models if m.name in selected]
    update = getattr(args, "update_baselines", False)
    if not update:
        for m in models:
            if m.baseline and not m.skip and not os.path.isfile(m.baseline):
                raise UsageError(f"{config.path.name}: model {m.name!r}: baseline {m.baseline} does not exist",
                                 hint="write it with --update-baselines, or remove the baseline key")
    workdir = Path(args.workdir).resolve() if getattr(args, "workdir", None) else config.workdir
    workdir.mkdir(parents=True, exist_ok=True)

    progress, console = _make_progress(not getattr(args, "no_progress", False))
    runner = Runner(config, workdir=workdir, threads=threads, timeout=timeout, update_baselines=update,
                    progress=progress)
    results: dict[str, ModelResult] = {}
    progress.start([m.name for m in models])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bridge-check")
    try:
        runner.prepare(models)
        futures = {pool.submit(runner.run_model, m): m for m in models}
        for fut in concurrent.futures.as_completed(futures):
            m = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # a bug here must not hide the other models' results
                result = ModelResult(name=m.name, status=FAIL, message=f"internal error: {type(exc).__name__}: {exc}",
                                     error={"step": "check", "exit_code": None, "message": str(exc)})
            results[m.name] = result
            progress.done(result)
    except BaseException:
        runner.children.kill_all()
        pool.shutdown(wait=False, cancel_futures=True)
        progress.stop()
        raise
    pool.shutdown(wait=True)
    progress.stop()

    ordered = [results[m.name] for m in models]
    code = exit_code(ordered)
    if console is not None:
        _print_rich_table(console, ordered)
    else:
        print(render_table(ordered))
    if update:
        for m, r in zip(models, ordered):
            if m.baseline and r.report is not None and r.verdict == PASS:
                _write(m.baseline, json.dumps(r.report, indent=2) + "\n")
                print(f"baseline written: {m.baseline}")
    if getattr(args, "junit", None):
        _write(args.junit, render_junit(ordered))
    if getattr(args, "markdown", None):
        _write(args.markdown, render_markdown(ordered, code))
    if getattr(args, "json", None):
        _write(args.json, json.dumps(summary_json(config, ordered, code, workdir), indent=2) + "\n")
    counts = _counts(ordered)
    overall = {EXIT_PASS: "PASS", EXIT_PARITY: "FAIL", EXIT_INCONCLUSIVE: "INCONCLUSIVE"}[code]
    print(f"bridge check: {overall}: " + ", ".join(f"{n} {_MARK[s].lower()}" for s, n in counts.items() if n)
          + f" (bundles, reports and logs in {workdir})")
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.check``: the check command on its own (``bridge check`` once wired in)."""
    parser = argparse.ArgumentParser(prog="bridge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["check", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_check(args)
    except BridgeError as exc:
        sys.stderr.write(f"bridge: {exc.category}: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"  hint: {exc.hint}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("bridge: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
