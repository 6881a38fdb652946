"""What a misspelt factory name could have meant: the closest of the module's callables, or the list of
them, as the config does for its keys."""

from __future__ import annotations

import difflib
import inspect


def callables(module) -> list[str]:
    """The public functions and classes a user module defines itself (not what it imports)."""
    own = getattr(module, "__name__", None)
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == own:
            out.append(name)
    return out


def factory_hint(module, attr: str, source: str) -> str:
    """``did you mean 'double'?`` when a callable is close, else the module's callables."""
    names = callables(module)
    close = difflib.get_close_matches(attr, names, n=1, cutoff=0.6)
    left = source.rpartition(":")[0]
    if close:
        return f"did you mean {close[0]!r}? ({left}:{close[0]})"
    if names:
        shown = ", ".join(sorted(names)[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        return f"the module defines: {shown}; the factory is the function that returns the model"
    return f"the module defines no function or class: add a factory that returns the model and name it, {left}:build"


def _same_source(a: str, b: str) -> bool:
    """Whether two SOURCE strings name the same model: a file part compared as resolved paths."""
    import os

    def key(text: str):
        left, sep, attr = text.rpartition(":")
        if sep and attr.isidentifier() and (left.endswith(".py") or "/" not in left):
            path = os.path.realpath(left) if left.endswith(".py") else left
            return (path, attr)
        return (os.path.realpath(text), None)

    return a == b or key(a) == key(b)


def source_note(manifest_source, given: str | None, weights: str | None) -> str | None:
    """A note when ``--source`` (or ``--weights``) is not what the bundle says it was exported from: a
    verification against another model fails every element, and the reader should see why at once."""
    if not isinstance(manifest_source, dict) or not given:
        return None
    text, kept = manifest_source.get("text"), manifest_source.get("weights")
    if not isinstance(text, str) or not text or text.startswith("<"):
        return None
    notes = []
    if not _same_source(text, given):
        notes.append(f"the bundle was exported from {text}; this verification runs {given}")
    if isinstance(kept, str) and kept and not weights:
        notes.append(f"it was exported with --weights {kept}; none were given here, so the model keeps its own weights")
    elif isinstance(kept, str) and kept and weights and not _same_source(kept, weights):
        notes.append(f"it was exported with --weights {kept}; this verification loads {weights}")
    if not notes:
        return None
    again = f"--source {text}" + (f" --weights {kept}" if isinstance(kept, str) and kept else "")
    return "; ".join(notes) + f": if that is not the model you meant, verify with {again}"
