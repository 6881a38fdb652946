"""Text that came from a model, a bundle or a runtime error, made safe to print.

A hostile bundle names its outputs, producers and metadata as it likes: an escape sequence in an
output name could clear the screen and print a green ``verdict: PASS`` over a FAIL, plant a hyperlink
or set the window title; a carriage return or backspaces could overwrite what was printed before. Every
printer (the terminal report, stderr's error line, Markdown) passes such strings through ``safe``,
which makes every C0 and C1 control character (and DEL) visible as an escape (``\\x1b``, ``\\r``,
``\\n``, ``\\u009b``), so the text reads as what it is and cannot steer a terminal. HTML and JUnit
escape for their own formats. Standard library only.
"""

from __future__ import annotations

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
