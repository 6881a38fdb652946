"""What is this SOURCE? Classifies a source string and loads user factories.

Source forms:
  path/to/file.py:factory      user Python, run because the user named it (explicit trust)
  package.module:factory       same, imported from sys.path
  model.keras / model.h5       Keras files (loaded with safe_mode=True)
  saved_model_dir/             a TensorFlow SavedModel directory
  program.pt2                  a torch.export ExportedProgram (torch.export.save)

Framework modules are imported only after the kind is known. This module imports no framework
itself; a user factory module imports whatever it needs.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import InputError, UsageError

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

FILE_KINDS = {
    ".keras": ("keras", "tensorflow"),
    ".h5": ("h5", "tensorflow"),
    ".hdf5": ("h5", "tensorflow"),
    ".pt2": ("pt2", "torch"),
}

SOURCE_HELP = (
    "a SOURCE is file.py:factory, package.module:factory, a .keras or .h5 file, "
    "a SavedModel directory, or a .pt2 file from torch.export.save"
)


@dataclass(frozen=True)
class SourceRef:
    text: str
    kind: str  # "pyfile" | "module" | "keras" | "h5" | "savedmodel" | "pt2"
    path: Path | None
    attr: str | None
    framework: str | None  # None until a factory has been called

    def to_json(self) -> dict:
        return {"text": self.text, "kind": self.kind}


def parse_source(text: str) -> SourceRef:
    text = text.strip()
    if not text:
        raise UsageError("empty SOURCE", hint=SOURCE_HELP)
    path = Path(text)
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SourceRef(text, "savedmodel", path, None, "tensorflow")
        raise InputError(f"SOURCE {text} is a directory without saved_model.pb", hint=SOURCE_HELP)
    if path.is_file() or path.suffix.lower() in FILE_KINDS:
        kind = FILE_KINDS.get(path.suffix.lower())
        if kind is None:
            if path.suffix.lower() in (".pt", ".pth", ".bin", ".safetensors"):
                raise InputError(
                    f"SOURCE {text} is a weights file, not a model",
                    hint="give the model's code as file.py:factory and the weights with --weights FILE",
                )
            if path.suffix.lower() == ".onnx":
                raise InputError(f"SOURCE {text} is already ONNX", hint="pass it to 'bridge verify' as TARGET")
            raise InputError(f"SOURCE {text} is not a recognised model file", hint=SOURCE_HELP)
        if not path.is_file():
            raise InputError(f"SOURCE {text} does not exist")
        return SourceRef(text, kind[0], path, None, kind[1])
    left, sep, attr = text.rpartition(":")
    if sep and attr and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", attr):
        if left.endswith(".py"):
            fpath = Path(left)
            if not fpath.is_file():
                raise InputError(f"SOURCE file {left} does not exist", hint=SOURCE_HELP)
            return SourceRef(text, "pyfile", fpath, attr, None)
        if _MODULE_RE.match(left):
            return SourceRef(text, "module", None, attr, None)
    if not path.exists():
        raise InputError(f"SOURCE {text} does not exist and is not file.py:factory or module:factory", hint=SOURCE_HELP)
    raise InputError(f"SOURCE {text} is not a recognised model", hint=SOURCE_HELP)


def import_file(path: Path, prefix: str, cannot: str):
    """Run a Python file as a module of its own (named after its resolved path), with its folder on
    ``sys.path`` while it runs so that it can import its siblings. This runs the user's code."""
    name = f"{prefix}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(cannot)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(path.resolve().parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(parent)
    return module


def load_user_module(ref: SourceRef, again: bool = False):
    """Import the module a factory source names. This runs the user's code, as the user asked.
    ``again``: run the module's code once more (a fresh module object), as a new process would."""
    try:
        if ref.kind == "pyfile":
            assert ref.path is not None
            return import_file(ref.path, "bridge_user", f"cannot import {ref.path}")
        module_name = ref.text.rpartition(":")[0]
        module = importlib.import_module(module_name)
        return importlib.reload(module) if again else module
    except Exception as exc:
        raise import_failure(f"SOURCE {ref.text}", exc) from None


def import_failure(what: str, exc: Exception) -> Exception:
    """The error to raise for ``exc``, raised while importing the user's module ``what`` (a SOURCE,
    --custom-objects): a framework extra not installed, a module not found, invalid Python, or the module's
    own code failing. An InputError passes as it is."""
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, ModuleNotFoundError):
        from bridge.frameworks import EXTRAS, missing_package

        if (exc.name or "").split(".")[0] in EXTRAS:
            return missing_package(exc.name, what)
        return InputError(f"cannot import {what}: {exc}", hint="check the module path and PYTHONPATH")
    if isinstance(exc, SyntaxError):
        return InputError(f"{what} is not valid Python: {exc}")
    return InputError(f"importing {what} raised {type(exc).__name__}: {exc}")


def call_factory(ref: SourceRef, module):
    factory = getattr(module, ref.attr or "", None)
    if factory is None:
        from bridge.native.names import factory_hint

        raise InputError(
            f"SOURCE {ref.text}: the module has no attribute {ref.attr!r}",
            hint=factory_hint(module, ref.attr or "", ref.text),
        )
    if not callable(factory):
        raise InputError(f"SOURCE {ref.text}: {ref.attr!r} is not callable", hint="the factory must return a model")
    try:
        return factory()
    except Exception as exc:
        from bridge.native.failures import cuda_missing

        raise cuda_missing(exc, f"SOURCE {ref.text}") or InputError(
            f"SOURCE {ref.text}: the factory raised {type(exc).__name__}: {exc}"
        ) from None


def framework_of(obj) -> str | None:
    """'torch' or 'tensorflow' from an object's class hierarchy, without importing either."""
    for cls in type(obj).__mro__:
        mod = cls.__module__ or ""
        if mod.startswith("torch"):
            return "torch"
        if mod.startswith(("keras", "tensorflow", "tf_keras")):
            return "tensorflow"
    return None
