"""Text that came from a model, a bundle or a runtime error, made safe to print.

A hostile bundle names its outputs, producers and metadata as it likes: an escape sequence in an
output name could clear the screen and print a green ``verdict: PASS`` over a FAIL, plant a hyperlink
or set the window title; a carriage return or backspaces could overwrite what was printed before. Every
printer passes such strings through ``safe``, which makes every C0 and C1 control character (and DEL)
visible as an escape (``\\x1b``, ``\\r``, ``\\n``, ``\\x9b``), so the text reads as what it is and
cannot steer a terminal. ``clean`` applies it to every string of a report (dicts, lists, dataclasses
such as ``Report`` and ``OutputResult``) before a renderer lays it out, so no field can be forgotten:
the terminal report of export, verify and bench, ``bridge inspect``, stage lines, stderr's error line
and hint, ``bridge check``'s table, progress lines and summaries, and the Markdown, HTML and JUnit
reports (which then escape for their own formats). JSON reports keep the strings as they are, escaped
by the JSON encoder (``\\u001b``): they are data. Standard library only.
"""

from __future__ import annotations

import copy
import dataclasses
import re

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    ch = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\x1b": "\\x1b", "\x08": "\\b", "\x07": "\\a", "\x00": "\\0"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text) -> str:
    """``text`` as one printable line: control characters (tab excepted) shown as escapes. Also the
    Unicode line separators and the bidirectional overrides, which can reorder what a reader sees."""
    return _CONTROL.sub(_visible, str(text))


def safe_lines(text) -> str:
    """Like ``safe``, keeping line breaks: for text bridge laid out in several lines itself."""
    return "\n".join(safe(line) for line in str(text).split("\n"))


def clean(value):
    """``value`` with every string in it (dict keys included) through ``safe``: dicts, lists, tuples and
    dataclass instances are copied, anything else is kept as it is. The original is not changed."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {(safe(k) if isinstance(k, str) else k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, tuple):
        items = [clean(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        copied = copy.copy(value)
        for f in dataclasses.fields(value):
            object.__setattr__(copied, f.name, clean(getattr(value, f.name)))
        return copied
    return value


# The verdict table's columns, one per output and device, in every report format. The last two name the
# tolerance applied and the smallest that would have passed: short in the terminal, spelled out in files.
OUTPUT_COLUMNS = ("output", "verdict", "device", "shape", "dtype", "max abs", "max rel", "failing, all cases")
