"""The command line: a lazy command table, one module per command, errors turned into exit codes.

``bridge --help`` lists the commands from the table below and imports none of their modules; a
command's module is imported only when it is chosen (or its help is asked for). Each module has
``add_arguments(parser, command)`` (options of export, verify and bench come from the table in
bridge/request.py) and ``run(args, command) -> exit code``; heavy imports happen inside ``run``.
Standard library only at import (a ruff rule in pyproject.toml keeps it so).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from bridge import __version__
from bridge.commands.parser import EPILOG, Parser
from bridge.errors import EXIT_INTERNAL, EXIT_USAGE, BridgeError, UsageError, exception_summary

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

# name -> (module, one-line help, description with one example)
COMMANDS = {
    "export": (
        "bridge.commands.export",
        "export a native model to an ONNX bundle",
        "Export a PyTorch or Keras model to an ONNX bundle (model.onnx, manifest.json, golden inputs and\n"
        "outputs), verified against the native model before it is published.\n\n"
        "example: bridge export models/torch_cnn.py:build --weights cnn.pt -o bundles/cnn",
    ),
    "verify": (
        "bridge.commands.verify",
        "compare ONNX Runtime with the native model or the bundle's golden outputs",
        "Run ONNX Runtime and the native model (--source) on the same inputs, or ONNX Runtime against the\n"
        "bundle's golden outputs, and judge every output under an explicit tolerance policy.\n\n"
        "example: bridge verify bundles/cnn --source models/torch_cnn.py:build --weights cnn.pt",
    ),
    "bench": (
        "bridge.commands.verify",
        "time the native model and ONNX Runtime with one method",
        "Time the native model and the bundle's graph in ONNX Runtime with one method: alternating rounds,\n"
        "idle gaps between sides, per-round ratios.\n\n"
        "example: bridge bench bundles/cnn --source models/torch_cnn.py:build --weights cnn.pt",
    ),
    "check": (
        "bridge.commands.check",
        "export and verify every model of bridge.toml / [tool.bridge]: one CI exit code",
        "Export and verify every model listed in a config file (bridge.toml, or [tool.bridge] in\n"
        "pyproject.toml), each step in its own process, then apply latency budgets and baseline\n"
        "regression checks. See docs/ci.md.\n\n"
        "example: bridge check --jobs 2 --junit reports/bridge.xml",
    ),
    "inspect": (
        "bridge.commands.inspect",
        "show a bundle's or an ONNX file's inputs, outputs and provenance",
        "Show what a bundle or an ONNX file takes and returns, and where it came from.\n\n"
        "example: bridge inspect bundles/cnn",
    ),
}


def _chosen(argv: list[str]) -> str | None:
    for token in argv:
        if token in COMMANDS:
            return token
        if not token.startswith("-"):
            return None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command ``argv`` names (only that one's module is imported)."""
    parser = Parser(
        prog="bridge",
        description="Export PyTorch and TensorFlow/Keras models to ONNX and prove the "
        "export: parity and latency against the native framework.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = _chosen(argv or [])
    for name, (module, help_text, description) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=description,
            epilog=getattr(importlib.import_module(module), "EPILOG", EPILOG) if name == chosen else EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == chosen:
            importlib.import_module(module).add_arguments(p, name)
    return parser


def _print_traceback() -> None:
    """--debug: the traceback, its messages (which may quote a model's names) through report.text.safe."""
    from bridge.report.text import safe_lines

    sys.stderr.write(safe_lines(traceback.format_exc()))


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the worker is stopped and what it was writing is removed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse refused the command line (its usage line is printed)
        if stop.code == EXIT_USAGE and _chosen(argv):
            from bridge.commands.parser import last_usage_error

            _write_failure(argv, None, UsageError(last_usage_error() or "the command line was refused"))
        raise
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    debug = getattr(args, "debug", False)
    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args, args.command)
    except BridgeError as exc:
        if debug:
            _print_traceback()
        _write_failure(argv, args, exc)
        from bridge.report.text import safe

        sys.stderr.write(f"bridge: {exc.category}: {safe(exc.message)}\n")
        if exc.hint:
            sys.stderr.write(f"  hint: {safe(exc.hint)}\n")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        how = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT (Ctrl-C)"
        stopped = Interrupted(f"stopped by {how}", EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
        _write_failure(argv, args, stopped)
        sys.stderr.write(f"bridge: interrupted: {stopped.message}\n")
        return stopped.exit_code
    except Exception as exc:  # a bug in bridge or an unforeseen library failure (here or in the worker)
        if debug:
            _print_traceback()
        from bridge.errors import InternalError
        from bridge.report.text import safe

        _write_failure(argv, args, InternalError(exception_summary(exc)))
        sys.stderr.write(
            f"bridge: internal error: {safe(exception_summary(exc))}\n"
            "  hint: rerun with --debug and report the traceback\n"
        )
        return EXIT_INTERNAL


class Interrupted(BridgeError):
    """Ctrl-C or SIGTERM, as the reports say it (exit 130 or 143)."""

    category = "interrupted"

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _write_failure(argv: list, args, exc: BridgeError) -> None:
    """Every report the command line asked for, holding the error, on every exit: a CI job that collects
    the JUnit file gets one for a refused model too. The command's own writer has run where it could
    (``exc.reported``); otherwise its module's ``write_failure`` decides which paths are safe to write.
    Never raises: the error itself is what the user must see."""
    if getattr(exc, "reported", False):
        return
    command = getattr(args, "command", None) or _chosen(argv)
    if command not in COMMANDS:
        return
    try:
        hook = getattr(importlib.import_module(COMMANDS[command][0]), "write_failure", None)
        if hook is not None:
            hook(argv, args, exc, command)
        exc.reported = True
    except Exception:  # noqa: BLE001 - a report that cannot be written must not hide the error
        if getattr(args, "debug", False):
            _print_traceback()
