"""The check config: find it (bridge.toml, or [tool.bridge] in pyproject.toml), read it, validate it
strictly. Every problem raises UsageError (exit 2). Standard library only at import time."""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

CONFIG_FILE = "bridge.toml"
DEFAULT_WORKDIR = "build/bridge-check"
DEFAULT_LATENCY_RUNS = 100

TOP_KEYS = ("models", "workdir", "executor", "ray")
OWN_MODEL_KEYS = ("name", "source", "latency", "baseline", "skip", "prepare")  # the rest: bridge/request.py
LATENCY_KEYS = ("runs", "ort_not_slower", "max_ms")
PYTHON_NAMES = ("python", "python3")
EXECUTORS = ("local", "ray")
RAY_KEYS = ("address", "shared_fs", "max_retries")
DEFAULT_RAY_RETRIES = 2  # extra attempts of a model's Ray task after a system failure (worker or node died)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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


@dataclass(frozen=True)
class RaySettings:
    """The [ray] table: where to run (address; None starts a local instance), whether every node sees the
    config's directory and the workdir at the same paths (shared_fs), and retries after system failures."""

    address: str | None = None
    shared_fs: bool = False
    max_retries: int = DEFAULT_RAY_RETRIES


@dataclass
class ModelConfig:
    """One [[models]] table: the export and verify requests it makes (every export/verify option is a key,
    bridge/request.py), and what only bridge check does with it (budgets, baseline, skip, prepare)."""

    name: str
    source: str  # as bridge export takes it: file paths made absolute against the config's directory
    export: object  # ExportRequest (its output, json and force are set when the check runs)
    verify: object  # VerifyRequest (its target and json likewise)
    latency: LatencyBudget | None = None
    baseline: str | None = None
    skip: str | None = None
    prepare: list = field(default_factory=list)  # argv lists, "python" already replaced by sys.executable
    source_file: str | None = None  # the file or directory SOURCE names, None for package.module:factory

    def required_files(self) -> list[str]:
        """Files that must exist before export; a missing one triggers the model's prepare commands."""
        from bridge.request import options_for

        found = [self.source_file] if self.source_file else []
        for request in (self.export, self.verify):
            for o in options_for(request.command):
                value = getattr(request, o.name)
                if o.role == "input" and o.name != "source" and value and value not in found and _names_file(o, value):
                    found.append(value)
        return found


@dataclass
class CheckConfig:
    path: Path
    base_dir: Path
    workdir: Path
    models: list[ModelConfig]
    executor: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)

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
            raise UsageError(
                f"config file {path} does not exist", hint="give a bridge.toml or a pyproject.toml with [tool.bridge]"
            )
        return path
    here = Path(cwd or os.getcwd())
    if (here / CONFIG_FILE).is_file():
        return here / CONFIG_FILE
    pyproject = here / "pyproject.toml"
    if pyproject.is_file() and "bridge" in _read_toml(pyproject).get("tool", {}):
        return pyproject
    raise UsageError(
        f"no {CONFIG_FILE}, and no [tool.bridge] in pyproject.toml, in {here}",
        hint="pass --config PATH, or write a bridge.toml (see docs/ci.md)",
    )


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
    executor = data.get("executor", "local")
    if executor not in EXECUTORS:
        raise UsageError(
            f"{origin}: key 'executor': expected one of {', '.join(map(repr, EXECUTORS))}, got {executor!r}"
        )
    ray = _parse_ray(data.get("ray", {}), origin)
    parsed: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(models):
        m = _parse_model(raw, index, base, origin)
        if m.name in seen:
            raise UsageError(
                f"{origin}: models #{seen[m.name] + 1} and #{index + 1} are both named {m.name!r}: "
                "key 'name' must be unique"
            )
        seen[m.name] = index
        parsed.append(m)
    return CheckConfig(
        path=path or base / CONFIG_FILE,
        base_dir=base,
        workdir=Path(_resolve(base, workdir)),
        models=parsed,
        executor=executor,
        ray=ray,
    )


def _parse_ray(table, origin: str) -> RaySettings:
    where = f"{origin}: key 'ray'"
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table with {', '.join(RAY_KEYS)}, got {_type(table)}")
    _unknown_keys(table, RAY_KEYS, where)
    address = table.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise UsageError(
            f'{where}: \'address\': expected a Ray address ("auto", "HOST:6379", "ray://HOST:10001"), got {address!r}'
        )
    shared = table.get("shared_fs", False)
    if not isinstance(shared, bool):
        raise UsageError(f"{where}: 'shared_fs': expected true or false, got {shared!r}")
    retries = table.get("max_retries", DEFAULT_RAY_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UsageError(f"{where}: 'max_retries': expected an integer >= 0, got {retries!r}")
    return RaySettings(address=address.strip() if address else None, shared_fs=shared, max_retries=retries)


def _type(value) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _unknown_keys(table: dict, allowed: tuple, where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise UsageError(
                f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint="allowed keys: " + ", ".join(allowed),
            )


def _names_file(option, value) -> bool:
    """Whether an input option's value is a file (a --custom-objects package.module name is not)."""
    from bridge.native.custom import names_file
    from bridge.request import CodeText

    return not isinstance(option.kind, CodeText) or names_file(str(value))


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
    from bridge.native.custom import names_file
    from bridge.request import CONFIG, CodeText, PathText, SourceText, build, options_for

    name = raw.get("name")
    label = f"model #{index + 1}" + (f" {name!r}" if isinstance(name, str) and name else "")
    where = f"{origin}: {label}"

    def bad(key: str, expected: str, value=None) -> UsageError:
        got = f", got {value!r}" if value is not None else ""
        return UsageError(f"{where}: key {key!r}: expected {expected}{got}")

    _unknown_keys(raw, model_keys(), where)
    if name is None:
        raise UsageError(f"{where}: missing key 'name'", hint='each model needs a unique name, e.g. name = "my_model"')
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise bad("name", "a non-empty string of letters, digits, '_', '.', '-' (it names a directory)", name)
    source = raw.get("source")
    if source is None:
        raise UsageError(
            f"{where}: missing key 'source'", hint='e.g. source = "models/net.py:build" or source = "model.keras"'
        )
    if not isinstance(source, str) or not source.strip():
        raise bad(
            "source",
            "a non-empty string (file.py:factory, package.module:factory, model file or SavedModel directory)",
            source,
        )
    source_text, source_file = _resolve_source(base, source.strip())

    # Every export/verify option is a key (bridge/request.py): parsed by its kind, the same as the
    # command line and the API parse it; paths made absolute against the config's directory.
    requests = {}
    for command in ("export", "verify"):
        given = {}
        for o in options_for(command):
            if not o.key or o.name not in raw:
                continue
            value = raw[o.name]
            if o.name == "source":
                value = source_text
            elif isinstance(o.kind, CodeText) and isinstance(value, str) and not names_file(value.strip()):
                value = value.strip()  # a package.module name, imported with the config's directory as cwd
            elif isinstance(o.kind, (PathText, SourceText)) and isinstance(value, str) and value.strip():
                value = _resolve(base, value.strip())
            given[o.name] = value
        requests[command] = build(command, given, CONFIG, origin=origin, where=f"{where}: ")

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
        if max_ms is not None and (not is_number(max_ms) or not max_ms > 0 or not math.isfinite(max_ms)):
            raise bad("latency.max_ms", "a number > 0 (ONNX Runtime p50 budget in milliseconds)", max_ms)
        latency = LatencyBudget(runs=runs, ort_not_slower=slower, max_ms=float(max_ms) if max_ms is not None else None)

    skip = raw.get("skip")
    if skip is not None and (not isinstance(skip, str) or not skip.strip()):
        raise bad("skip", "the reason for skipping (a non-empty string)", skip)

    baseline = raw.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise bad("baseline", "a file path (string)", baseline)

    prepare = raw.get("prepare", [])
    if not isinstance(prepare, list):
        raise bad("prepare", 'an argv array like ["python", "-m", "pkg.train", "out.pt"] or an array of them', prepare)
    if prepare and all(isinstance(a, str) for a in prepare):
        prepare = [prepare]
    commands = []
    for cmd in prepare:
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) and a for a in cmd):
            raise bad("prepare", "an argv array of non-empty strings, or an array of such arrays", cmd)
        commands.append([sys.executable if cmd[0] in PYTHON_NAMES else cmd[0], *cmd[1:]])

    return ModelConfig(
        name=name,
        source=source_text,
        source_file=source_file,
        export=requests["export"],
        verify=requests["verify"],
        latency=latency,
        baseline=_resolve(base, baseline.strip()) if baseline else None,
        skip=skip.strip() if skip else None,
        prepare=commands,
    )


def model_keys() -> tuple:
    """Every key of a [[models]] table: bridge check's own, then every export/verify option's."""
    from bridge.request import options_for

    keys = list(OWN_MODEL_KEYS)
    for command in ("export", "verify"):
        keys += [o.name for o in options_for(command) if o.key and o.name not in keys]
    return tuple(keys)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
