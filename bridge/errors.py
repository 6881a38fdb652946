"""One exception tree. Each class carries the process exit code the CLI uses for it.

Exit codes (documented in the README):
  0  parity holds
  1  parity fails (a verdict, with a report)
  2  bad usage or bad input: unreadable, malformed or refused model, wrong spec
  3  inconclusive: the comparison could not fail (vacuous reference), nothing was proved
  4  environment: a needed package or device is missing (e.g. --device cuda without a GPU)
  5  conversion failed: the exporter could not produce a valid ONNX file from a valid model
  6  security refusal: loading would execute code or read outside the model (issue-level opt-in)
  7  contained crash or timeout of a child process
  8  internal error: a bug in bridge or an unforeseen library failure
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_PARITY = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_ENVIRONMENT = 4
EXIT_CONVERSION = 5
EXIT_SECURITY = 6
EXIT_CRASH = 7
EXIT_INTERNAL = 8


class BridgeError(Exception):
    """Base class. ``category`` is printed as ``bridge: <category>: <message>``."""

    exit_code = EXIT_USAGE
    category = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(BridgeError):
    exit_code = EXIT_USAGE
    category = "usage"


class SpecError(UsageError):
    category = "bad spec"


class InputError(BridgeError):
    """The model, bundle or data given is unreadable, malformed or of an unknown kind."""

    exit_code = EXIT_USAGE
    category = "bad input"


class BundleError(InputError):
    category = "bad bundle"


class EnvironmentProblem(BridgeError):
    exit_code = EXIT_ENVIRONMENT
    category = "environment"


class ConversionError(BridgeError):
    exit_code = EXIT_CONVERSION
    category = "conversion failed"

    def __init__(self, message: str, hint: str | None = None, detail: dict | None = None):
        super().__init__(message, hint)
        self.detail = detail  # for reports: the exporter's whole error text, the user's file:line


class SecurityRefusal(BridgeError):
    exit_code = EXIT_SECURITY
    category = "refused"


class ContainedCrash(BridgeError):
    exit_code = EXIT_CRASH
    category = "crashed"


class InternalError(BridgeError):
    """An exception bridge did not foresee (a bug, or a library failing in a new way), as a BridgeError:
    the API raises nothing else, and the command line prints it as one line with exit 8."""

    exit_code = EXIT_INTERNAL
    category = "internal error"
    HINT = "rerun with --debug and report the traceback"

    def __init__(self, message: str, hint: str | None = HINT):
        super().__init__(message, hint)


_FRAME_PREFIXES = ("File ", "Detected at node", "Traceback", "[[", "{{node")


_ANSI = None


def strip_ansi(text: str) -> str:
    """Library messages with terminal colour codes (torch.onnx's) read as text."""
    global _ANSI
    if _ANSI is None:
        import re

        _ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
    return _ANSI.sub("", text)


def exception_summary(exc: BaseException, limit: int = 300) -> str:
    """One line that says what went wrong: ``Type: message``. Where a library puts a heading before
    the cause (TensorFlow's "Graph execution error:" and its node traceback, torch.onnx's "## Exception
    summary"), the cause is kept. No terminal colour codes."""
    lines = [ln.strip() for ln in strip_ansi(str(exc)).splitlines() if ln.strip()]
    if "## Exception summary" in lines:  # torch.onnx: the cause follows this heading
        after = lines[lines.index("## Exception summary") + 1 :]
        if after:
            return after[0][:limit]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:
        causes = [ln for ln in lines[1:] if not ln.startswith(_FRAME_PREFIXES) and not ln.endswith(":")]
        if causes:
            text = f"{text} {causes[0]}"
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:limit]
