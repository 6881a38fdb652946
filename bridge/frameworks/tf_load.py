"""Why a Keras file did not load, and which of a Keras model's inputs bridge cannot feed: messages that
name the cause and its fix. Keras wraps a missing custom class in a generic "Functional could not be
deserialized properly"; the class is named further down the exception chain."""

from __future__ import annotations

import re

from bridge.errors import ConversionError, InputError

_LOCATE = re.compile(r"Could not locate (class|function) '([^']+)'")
_REGISTERED = re.compile(r"'registered_name': '([^']+)'")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


_UNKNOWN = re.compile(r"Unknown (layer|object|activation|initializer|regularizer|constraint): '([^']+)'")


def missing_custom_object(exc: BaseException) -> tuple[str, str, str | None] | None:
    """(kind, name, registered name) of the custom class or function Keras could not locate, or None.
    The .keras loader says "Could not locate class 'Scale'"; the legacy .h5 one "Unknown layer:
    'custom>Scale'"."""
    for e in _chain(exc):
        text = str(e)
        m = _LOCATE.search(text)
        if m:
            after = text[m.end() :]
            r = _REGISTERED.search(after)
            return m.group(1), m.group(2), r.group(1) if r else None
        m = _UNKNOWN.search(text)
        if m:
            registered = m.group(2)
            kind = "class" if m.group(1) in ("layer", "object") else "function"
            return kind, registered.rpartition(">")[2], registered
    return None


def load_error(path, exc: BaseException, custom_objects: dict | None) -> InputError | None:
    """The error for a .keras/.h5 file that needs a class this process does not know, or None."""
    found = missing_custom_object(exc)
    if found is None:
        return None
    kind, name, registered = found
    package = registered.split(">", 1)[0] if registered and ">" in registered else None
    decorator = f'@keras.saving.register_keras_serializable(package="{package}")' if package else ""
    where = f" (saved as {registered!r})" if registered and registered != name else ""
    if custom_objects:
        given = ", ".join(sorted(custom_objects)[:8]) + (" ..." if len(custom_objects) > 8 else "")
        hint = f"--custom-objects defines {given}, but not {name}: add the {kind} that the model was saved with" + (
            f", decorated with {decorator}" if decorator else ""
        )
    else:
        hint = (
            f"pass --custom-objects FILE.py, a file (or package.module) that defines {name}"
            + (f" with {decorator}" if decorator else "")
            + f"; or export from a factory, file.py:build, that imports {name} and returns "
            f"keras.models.load_model({str(path)!r})"
        )
    return InputError(f"cannot load {path}: it uses the custom {kind} {name}{where}, which is not registered", hint)


def unsupported_input(model, tensor, dtype: str) -> ConversionError:
    """A model input bridge cannot feed (strings: a TextVectorization or StringLookup layer): what to
    export instead is the model after the layers that consume it."""
    name = (getattr(tensor, "name", None) or "input").split(":")[0]
    consumers = []
    for layer in getattr(model, "layers", []) or []:
        try:
            inbound = layer.input
        except (AttributeError, ValueError):
            continue
        inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
        if any(t is tensor for t in inbound):
            consumers.append(layer)
    if consumers:
        layer = consumers[0]
        after = f"model.get_layer({layer.name!r}).output"
        what = f"{type(layer).__name__} layer {layer.name!r}"
        hint = (
            f"keep {layer.name!r} in your serving code and export the model after it: a factory returning "
            f"keras.Model({after}, model.outputs) takes what {what} produces"
        )
    else:
        what = "the model"
        hint = "export the model after its preprocessing layers: a factory returning keras.Model(<their output>, model.outputs)"
    return ConversionError(
        f"input {name!r} is a {dtype} tensor (read by {what}): bridge exports and verifies numeric inputs only, "
        "and tf2onnx does not convert Keras's text preprocessing",
        hint=hint,
    )


def _snake(name: str) -> str:
    """Keras's own automatic layer-name prefix for a class name (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def user_output_names(model) -> list[str] | None:
    """The names the user gave a functional model's output layers (``Dense(4, name="probs")``), in output
    order; None when any output layer has Keras's automatic name (``dense_1``), two share a name, or the
    model has no symbolic outputs: those outputs keep bridge's names (``output``, ``output_i``)."""
    try:
        outputs = list(model.outputs or [])
    except (AttributeError, ValueError):
        return None
    names = []
    for t in outputs:
        history = getattr(t, "_keras_history", None)
        layer = getattr(history, "operation", None) or (history[0] if isinstance(history, tuple) and history else None)
        name = getattr(layer, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            return None
        if re.fullmatch(re.escape(_snake(type(layer).__name__)) + r"(_\d+)?", name):
            return None
        names.append(name)
    if not names or len(set(names)) != len(names):
        return None
    return names


_OBJECT = re.compile(r"^an object of class (\S+) from module (\S+)$")


def refusal_hint(code: str) -> str:
    """The hint of a .keras file refused for the code it names: a user's layer class is loaded with
    --custom-objects (their own code, which defines it); a Lambda's bytecode is rebuilt away."""
    m = _OBJECT.match(code)
    if m:
        cls, module = m.groups()
        file = module.replace(".", "/") + ".py"
        return (
            f"if {cls} is your layer, pass --custom-objects {file} (or {module}), the code that defines it: it is "
            f"imported as your code and used instead of anything the file names; or export from a factory, "
            f"file.py:build, that imports {cls} and returns keras.models.load_model(PATH)"
        )
    return "rebuild the model without Lambda layers, or pass --trust-code if you trust the file"
