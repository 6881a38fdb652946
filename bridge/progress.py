"""Stage lines on stderr while a command works: what it is doing, since when. Standard library only.

A ResNet-50 export takes minutes; a silent command looks hung. The worker records each stage it
enters (``bridge.contain.stage``: loading, exporting with which exporter, checking, each case,
timing, writing); the CLI polls it and prints one line per stage with the elapsed time, the first
at once. On a terminal with rich installed the lines are dimmed; in CI logs they are plain text.
``--quiet`` silences them; the report itself always prints on stdout.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import sys
import time

# Where the stage the work enters goes: the worker's shared buffer (bridge/contain.py), or the stage
# lines themselves when the work runs in this process. Unset: stages go nowhere.
_SINK: contextvars.ContextVar = contextvars.ContextVar("bridge_stage_sink", default=None)


def stage(name: str) -> None:
    """Record what the work is doing now, so that stage lines show it and a crash or timeout names it."""
    sink = _SINK.get()
    if sink is not None:
        sink(name)


@contextlib.contextmanager
def stages_to(sink):
    """Send the stages entered within the block to ``sink`` (a callable taking the stage's name)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


_STAGE_LINE = re.compile(r"^bridge [a-z]+: \[ *\d+\.\d s\] ")


def is_stage_line(line: str) -> bool:
    """Whether ``line`` is a progress line (so a reader of stderr can skip to the error)."""
    return bool(_STAGE_LINE.match(line))


class StageLines:
    def __init__(self, command: str, stream=None, quiet: bool = False):
        self.command = command
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()
        self.last: str | None = None
        self._console = None
        if not quiet and getattr(self.stream, "isatty", lambda: False)():
            try:
                from rich.console import Console

                self._console = Console(file=self.stream, highlight=False)
            except ImportError:
                self._console = None

    def __call__(self, stage: str) -> None:
        """Report that the command entered ``stage`` (repeats of the same stage are not printed)."""
        if self.quiet or stage == self.last:
            return
        self.last = stage
        from bridge.report.text import safe

        line = (
            f"bridge {self.command}: [{time.monotonic() - self.start:6.1f} s] {safe(stage)}"  # a stage may quote a name
        )
        try:
            if self._console is not None:
                self._console.print(line, style="dim", markup=False)
            else:
                self.stream.write(line + "\n")
                self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not stop the work
            pass
