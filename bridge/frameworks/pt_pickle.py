"""Restricted unpickling for untrusted torch archives.

``torch.export.load`` unpickles several members of a ``.pt2`` archive, some of them with
``weights_only=False`` (pickled weights and constants, the legacy weights/constants files, the sample
inputs after a failed ``weights_only=True`` attempt), some with plain ``pickle.loads`` (opaque
constants) and some with the TorchScript unpickler (torchbind constants). Inside
:func:`restricted_unpickling` every one of those entry points is replaced:

* ``torch.load`` always runs with ``weights_only=True`` (torch's own unpickler, which resolves only
  tensor-rebuilding functions, storage and dtype types and plain containers) and never with a
  caller's ``pickle_module``;
* ``pickle.loads`` / ``load`` / ``Unpickler`` (C and pure-Python, and ``_pickle``'s) become an
  unpickler whose ``find_class`` resolves only :data:`PLAIN_GLOBALS`;
* ``torch._C._pickle_load_obj`` (torchbind objects) refuses outright.

What is refused is recorded on the guard as well as raised, so a refusal that torch catches and
falls back from still ends the load. While the guard is active an audit hook also refuses any
``pickle.find_class`` outside :data:`PLAIN_GLOBALS`: an unpickler created before the patches (or a
module that bound ``pickle.loads`` at import time) cannot resolve a global unseen.
"""

from __future__ import annotations

import _pickle
import contextlib
import io
import pickle
import re
import sys
import warnings
import zipfile
import zlib

import torch

from bridge.errors import SecurityRefusal
from bridge.frameworks.pickle_scan import first_global

# Globals a pickle outside torch.load may resolve: pure data types whose construction runs no code
# of the pickle's choosing. Everything else (classes, functions) is refused.
PLAIN_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "slice"),
    }
)

_WO_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|Trying to load unsupported GLOBAL) (\S+)")
_WO_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


class PickleRefused(pickle.UnpicklingError):
    """Raised inside torch's loader where a pickle was refused (what the guard records)."""


class _Guard:
    """State of one :func:`restricted_unpickling` block: the archive and what was refused in it."""

    active: "_Guard | None" = None

    def __init__(self, archive: str | None):
        self.archive = archive
        self.refused: list[str] = []

    def refuse(self, what: str, data: bytes | None = None) -> PickleRefused:
        """Record a refusal (naming the archive member whose bytes are ``data``) and return the
        exception to raise where it happened."""
        member = self.member_of(data) if data is not None else None
        text = f"{member}: {what}" if member else what
        if text not in self.refused:
            self.refused.append(text)
        return PickleRefused(text)

    def member_of(self, data: bytes) -> str | None:
        """The archive member whose bytes are ``data`` (compared by size and CRC before reading)."""
        if not self.archive or not zipfile.is_zipfile(self.archive):
            return None
        crc = zlib.crc32(data)
        with zipfile.ZipFile(self.archive) as zf:
            for info in zf.infolist():
                if info.file_size == len(data) and info.CRC == crc and zf.read(info) == data:
                    return info.filename
        return None

    def raise_if_refused(self) -> None:
        if self.refused:
            raise SecurityRefusal(
                f"{self.archive}: {self.refused[0]}" if self.archive else self.refused[0],
                hint="a .pt2 written by torch.export.save holds only tensors, plain containers and plain names; "
                "pass --trust-code only if you trust where the file came from",
            )


def active_guard() -> "_Guard | None":
    """The guard of the :func:`restricted_unpickling` block in progress, if any."""
    return _Guard.active


def _current() -> _Guard:
    # A patched entry point called after its block ended still refuses rather than runs.
    return _Guard.active or _Guard(None)


def _data_of(f) -> bytes | None:
    if isinstance(f, (bytes, bytearray, memoryview)):
        return bytes(f)
    if isinstance(f, io.BytesIO):
        return f.getvalue()
    return None


def _global_refused(module: str, name: str, data: bytes | None = None) -> PickleRefused:
    return _current().refuse(
        f"pickle names {module}.{name}, not a tensor type or plain container; refusing to unpickle it", data
    )


class RestrictedUnpickler(pickle.Unpickler):
    """pickle's C unpickler resolving only :data:`PLAIN_GLOBALS`: GLOBAL, STACK_GLOBAL, INST, OBJ and
    the extension registry all go through ``find_class``."""

    source: bytes | None = None  # the pickled bytes, to name the archive member in a refusal

    def find_class(self, module, name):
        if (module, name) in PLAIN_GLOBALS:
            return super().find_class(module, name)
        raise _global_refused(module, name, self.source)

    def persistent_load(self, pid):
        raise _current().refuse("pickle holds a persistent id outside torch.load; refusing to unpickle it", self.source)


class RestrictedPyUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The same rule for pickle's pure-Python unpickler."""

    source: bytes | None = None
    find_class = RestrictedUnpickler.find_class
    persistent_load = RestrictedUnpickler.persistent_load


def _restricted_load(file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=()):
    unpickler = RestrictedUnpickler(file, fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers)
    unpickler.source = _data_of(file)
    return unpickler.load()


def _restricted_loads(data, /, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=()):
    if isinstance(data, str):
        raise TypeError("Can't load pickle from unicode string")
    return _restricted_load(
        io.BytesIO(data), fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers
    )


def _torchbind_refused(data, *args, **kwargs):
    raise _current().refuse(
        "holds a torchbind object, which only TorchScript's unpickler reads; refusing it", _data_of(data)
    )


_TORCH_LOAD = torch.serialization.load


def _weights_only_load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """torch.load with weights_only=True whatever the caller asked (its pickle_module is dropped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _TORCH_LOAD(f, map_location=map_location, weights_only=True, mmap=mmap, **pickle_load_args)
    except PickleRefused:
        raise
    except (pickle.UnpicklingError, RuntimeError) as exc:
        text = str(exc)
        if not (isinstance(exc, pickle.UnpicklingError) or "weights_only" in text):
            raise
        data = _data_of(f)
        found = _WO_GLOBAL.search(text)
        name = found.group(1) if found else (first_global(data, _weights_only_allows) if data else None)
        if name and "." not in name:
            name = f"builtins.{name}"  # torch's message drops the builtins module
        if name:
            what = f"pickle names {name}, not a tensor type or plain container; refusing to unpickle it"
        else:
            detail = _WO_DETAIL.search(text)
            reason = detail.group(1) if detail else next((ln for ln in text.splitlines() if ln.strip()), text)
            what = f"torch's weights-only unpickler refused a pickle ({reason.strip()[:160]}); refusing to load it"
        raise _current().refuse(what, data) from None


def _weights_only_allows(module: str, name: str) -> bool:
    """Whether torch's weights-only unpickler resolves module.name (only to word a message)."""
    from torch import _weights_only_unpickler

    allowed = getattr(_weights_only_unpickler, "_get_allowed_globals", dict)()
    return f"{module}.{name}" in allowed or (module, name) in PLAIN_GLOBALS


def _audit(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and _Guard.active is not None:
        module, name = args
        if (module, name) not in PLAIN_GLOBALS:
            raise _global_refused(module, name)


_AUDIT_INSTALLED = False


def _patches() -> list[tuple[object, str, object]]:
    return [
        (torch, "load", _weights_only_load),
        (torch.serialization, "load", _weights_only_load),
        (pickle, "loads", _restricted_loads),
        (pickle, "load", _restricted_load),
        (pickle, "Unpickler", RestrictedUnpickler),
        (pickle, "_loads", _restricted_loads),
        (pickle, "_load", _restricted_load),
        (pickle, "_Unpickler", RestrictedPyUnpickler),
        (_pickle, "loads", _restricted_loads),
        (_pickle, "load", _restricted_load),
        (_pickle, "Unpickler", RestrictedUnpickler),
        (torch._C, "_pickle_load_obj", _torchbind_refused),
    ]


@contextlib.contextmanager
def restricted_unpickling(archive: str | None = None):
    """Route every unpickling entry point torch uses through a restricted unpickler (see the module
    docstring). Yields the guard: ``guard.refused`` lists what was refused, ``guard.raise_if_refused()``
    turns the first refusal into a SecurityRefusal. Not reentrant, not thread-safe (patches are global)."""
    global _AUDIT_INSTALLED
    if _Guard.active is not None:
        raise RuntimeError("restricted_unpickling is already active")
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit)  # audit hooks cannot be removed; this one acts only inside a block
        _AUDIT_INSTALLED = True
    guard = _Guard(archive)
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in _patches()]
    try:
        for obj, attr, value in _patches():
            setattr(obj, attr, value)
        _Guard.active = guard
        yield guard
    finally:
        _Guard.active = None
        for obj, attr, value in saved:
            setattr(obj, attr, value)
