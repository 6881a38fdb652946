"""Progress while models run: plain lines (CI logs), or a live rich display on a terminal (rich is
imported only then)."""

from __future__ import annotations

import sys
import threading

from bridge.check.verdicts import ModelResult
from bridge.verdict.status import FAIL, INCONCLUSIVE, PASS, SKIPPED, mark


class NullProgress:
    show_node = False  # name the node of each finished model (set for executors with several machines)

    def start(self, names: list[str]) -> None: ...
    def note(self, text: str) -> None: ...
    def phase(self, name: str, phase: str) -> None: ...
    def done(self, result: ModelResult) -> None: ...
    def stop(self) -> None: ...


class _PlainProgress(NullProgress):
    """One line per event: readable in CI logs, where a live display would not render."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.total = 0
        self.finished = 0

    def _print(self, text: str) -> None:
        from bridge.report.text import safe

        with self.lock:
            self.stream.write(safe(text) + "\n")
            self.stream.flush()

    def start(self, names):
        self.total = len(names)
        self._print(f"bridge check: {self.total} model{'s' if self.total != 1 else ''}")

    def note(self, text):
        self._print(f"bridge check: {text}")

    def phase(self, name, phase):
        self._print(f"  {name}: {phase}")

    def done(self, result):
        with self.lock:
            self.finished += 1
            n = self.finished
        self._print(
            f"[{n}/{self.total}] {result.name}: {mark(result.status)} ({result.seconds:.1f} s)"
            + (f" on {result.node}" if self.show_node and result.node else "")
            + (f": {result.message}" if result.message and result.status != PASS else "")
        )


class _RichProgress(NullProgress):
    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.overall = None
        self.lock = threading.Lock()

    def start(self, names):
        self.progress.start()
        self.overall = self.progress.add_task("bridge check", total=len(names))

    def note(self, text):
        from rich.markup import escape

        from bridge.report.text import safe

        self.progress.console.print(f"bridge check: {escape(safe(text))}", highlight=False)

    def phase(self, name, phase):
        from rich.markup import escape

        from bridge.report.text import safe

        shown = f"{escape(safe(name))}: {escape(safe(phase))}"
        with self.lock:
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(shown, total=None)
            else:
                self.progress.update(self.tasks[name], description=shown)

    def done(self, result):
        style = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow", SKIPPED: "dim"}[result.status]
        with self.lock:
            task = self.tasks.pop(result.name, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.overall)
        from rich.markup import escape

        from bridge.report.text import clean

        result = clean(result)
        msg = f": {escape(result.message)}" if result.message and result.status != PASS else ""
        node = f" on {escape(result.node)}" if self.show_node and result.node else ""
        self.progress.console.print(
            f"[{style}]{mark(result.status)}[/] {escape(result.name)} ({result.seconds:.1f} s){node}{msg}",
            highlight=False,
        )

    def stop(self):
        self.progress.stop()


def make_progress(use_rich: bool):
    if use_rich:
        try:
            from rich.console import Console

            console = Console()
            if console.is_terminal:
                return _RichProgress(console), console
        except ImportError:
            pass
    return _PlainProgress(), None
