"""Naming what a pickle would import, without unpickling it (stdlib only).

This module decides nothing. Whether a pickle is unpickled is decided by the restricted unpicklers
in ``bridge/frameworks/pt_pickle.py``, which refuse a global at the moment it would be resolved.
When torch's weights-only unpickler stops earlier (at an opcode it does not read, for example),
its error does not say what the pickle was after; :func:`first_global` reads the opcodes to put a
name in the refusal message.

The opcodes are followed the way an unpickler runs them: through the stack (a name pushed and
popped again is not the one STACK_GLOBAL takes), through the memo (PUT/GET), pickle after pickle in
a stream (torch's legacy format holds several), up to the first byte that is not an opcode (an
unpickler runs everything before it), and through ``*.pkl`` members of a zip (torch.save's format).
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from typing import Callable

_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_UNKNOWN = object()
_MARK = object()
MAX_PICKLE_BYTES = 256 << 20  # a larger pickle is not read for a name


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """(module, name) of every GLOBAL, INST and STACK_GLOBAL in the pickles at the head of ``data``,
    in the order an unpickler would resolve them. A STACK_GLOBAL whose operands are not known
    strings is reported as ("?", "?")."""
    found: list[tuple[str, str]] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        if not _one_pickle(stream, found) or stream.tell() <= start:
            break
    return found


def _one_pickle(stream: io.BytesIO, found: list) -> bool:
    """Follow one pickle; False when it ended without STOP (junk or truncation)."""
    stack: list[object] = []
    memo: dict[int, object] = {}
    try:
        for op, arg, _ in pickletools.genops(stream):
            name = op.name
            if name in _STRINGS:
                stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
            elif name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr))
                if name == "INST":
                    _pop_mark(stack)
                stack.append(_UNKNOWN)
            elif name == "STACK_GLOBAL":
                attr = stack.pop() if stack else _UNKNOWN
                module = stack.pop() if stack else _UNKNOWN
                known = isinstance(module, str) and isinstance(attr, str)
                found.append((module, attr) if known else ("?", "?"))
                stack.append(_UNKNOWN)
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "POP":
                if stack:
                    stack.pop()
            elif name == "POP_MARK":
                _pop_mark(stack)
            elif name == "DUP":
                stack.append(stack[-1] if stack else _UNKNOWN)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1] if stack else _UNKNOWN
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else _UNKNOWN
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), _UNKNOWN))
            elif name == "STOP":
                return True
            else:
                _generic(op, stack)
    except Exception:
        pass  # an unpickler runs everything before this point, so its names were read
    return False


def _pop_mark(stack: list) -> None:
    while stack and stack.pop() is not _MARK:
        pass


def _generic(op, stack: list) -> None:
    """Any other opcode: pop what it takes (down to a mark if it takes one), push unknowns."""
    before = list(op.stack_before)
    if pickletools.markobject in before:
        _pop_mark(stack)
        before = [s for s in before if s not in (pickletools.markobject, pickletools.stackslice)]
    for _ in before:
        if stack:
            stack.pop()
    stack.extend(_UNKNOWN for _ in op.stack_after)


def archive_globals(data: bytes) -> list[tuple[str, str]]:
    """pickle_globals of ``data``, or of every ``*.pkl`` member when ``data`` is a zip (torch.save)."""
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                found: list[tuple[str, str]] = []
                for info in zf.infolist():
                    if info.filename.endswith(".pkl") and info.file_size <= MAX_PICKLE_BYTES:
                        found.extend(pickle_globals(zf.read(info)))
                return found
        except zipfile.BadZipFile:
            pass
    return pickle_globals(data[:MAX_PICKLE_BYTES])


def first_global(data: bytes, allowed: Callable[[str, str], bool]) -> str | None:
    """'module.name' of the first global in ``data`` that ``allowed`` rejects, for a message."""
    for module, name in archive_globals(data):
        if not allowed(module, name):
            return f"{module}.{name}"
    return None
