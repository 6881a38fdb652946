"""``--custom-objects FILE.py|package.module``: the user's Keras classes, used while loading a .keras or
.h5 file, the way Keras itself offers (``keras.models.load_model(..., custom_objects=...)``).

The module runs as the user's own code, like a factory: naming it is their explicit choice. Its classes
registered with ``@keras.saving.register_keras_serializable`` are registered by importing it; every
public class and function it defines (and a ``custom_objects`` / ``CUSTOM_OBJECTS`` dict, if it has
one) is passed by name too, so an undecorated layer class loads as well.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from bridge.errors import InputError, UsageError
from bridge.native.sources import import_failure, import_file

HOW = (
    "name the file or module that defines it: --custom-objects layers.py (classes registered with "
    "@keras.saving.register_keras_serializable(), or any class it defines), or export from a factory, "
    "file.py:build, that imports the layer and returns keras.models.load_model(PATH)"
)


def names_file(text: str) -> bool:
    """A path (FILE.py, or anything with a slash) rather than a package.module name."""
    return text.endswith(".py") or "/" in text or "\\" in text


def custom_objects(request, ref) -> dict:
    """Keyword arguments for the framework's ``load``: ``{"custom_objects": {name: object}}`` when the
    request names a module, else nothing."""
    text = getattr(request, "custom_objects", None)
    if not text:
        return {}
    if ref.kind not in ("keras", "h5"):
        raise UsageError(
            f"--custom-objects applies to .keras and .h5 files; SOURCE {ref.text} is a {ref.kind} source",
            hint="a factory imports its own layers; a SavedModel carries its graph",
        )
    module = _import(text)
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            found[name] = obj
    for name in ("custom_objects", "CUSTOM_OBJECTS"):
        table = getattr(module, name, None)
        if isinstance(table, dict):
            found.update({str(k): v for k, v in table.items()})
    if not found:
        raise InputError(
            f"--custom-objects {text} defines no class or function",
            hint="define (or import into a custom_objects dict) the layer classes the model file uses",
        )
    return {"custom_objects": found}


def _import(text: str):
    try:
        if names_file(text):
            path = Path(text)
            if not path.is_file():
                raise InputError(f"--custom-objects {text} does not exist", hint=HOW)
            return import_file(path, "bridge_custom", f"--custom-objects {text}: cannot import it as Python")
        return importlib.import_module(text)
    except Exception as exc:
        raise import_failure(f"--custom-objects {text}", exc) from None
