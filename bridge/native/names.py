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
