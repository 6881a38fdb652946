"""argparse parsers built from the option table (bridge/request.py), and the request read back from them.

Only the chosen command's arguments are added (``bridge --help`` lists the commands from the table and
imports no command module); no option is abbreviated (``--inp`` is never ``--input``). Standard
library only.
"""

from __future__ import annotations

import argparse
import sys

from bridge.errors import EXIT_USAGE, UsageError
from bridge.request import CLI, build, options_for

EPILOG = """exit codes:
  0  parity holds            1  parity fails (report names the output)
  2  bad usage or input      3  inconclusive (vacuous or nondeterministic reference)
  4  environment (missing package, no GPU for --device cuda)
  5  conversion failed       6  refused as unsafe      7  crashed or timed out
  8  internal error (a bug in bridge: please report it with --debug output)
"""


_LAST_ERROR: list = []


def last_usage_error() -> str | None:
    """The message of the last usage error argparse raised (the reports of the command line carry it)."""
    return _LAST_ERROR[-1] if _LAST_ERROR else None


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):  # no abbreviations: --input must never mean --inputs
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def format_help(self):
        """argparse's help with the description (what the command does, one example) before the usage
        lines, which for export and verify run to a screen of their own."""
        formatter = self._get_formatter()
        formatter.add_text(self.description)
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups)
        for group in self._action_groups:
            formatter.start_section(group.title)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        formatter.add_text(self.epilog)
        return formatter.format_help()

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but a flag the chosen command does not take is refused with that command's usage
        (argparse hands unknown flags back to the top-level parser, whose usage names no option)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(parsed) or self
            command.error(f"unrecognized arguments: {' '.join(extras)}" + command._close_flag(extras))
        return parsed

    def _close_flag(self, extras: list) -> str:
        import difflib

        flags = [f for a in self._actions for f in a.option_strings if f.startswith("--")]
        for token in extras:
            if token.startswith("-"):
                word = token.split("=", 1)[0]
                close = difflib.get_close_matches("--" + word.lstrip("-"), flags, n=1, cutoff=0.6)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def _command_parser(self, parsed):
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(parsed, action.dest, None) or "")
        return None

    def error(self, message):  # argparse's own exit code is 2 as well; this command's usage, then one line
        from bridge.report.text import safe

        _LAST_ERROR.append(message)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"bridge: usage: {safe(message)}\n  hint: {self.prog} --help lists every option\n")
        raise SystemExit(EXIT_USAGE)


def add_request_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """Every option of ``command`` from the table, each stored only when given (argparse.SUPPRESS): an
    option not on the command line takes the table's default in the request, with origin "default"."""
    for o in options_for(command):
        kind = o.kind
        kwargs: dict = {"help": o.help_for(command).replace("%", "%%")}
        if o.is_positional(command):
            p.add_argument(o.name, metavar=o.metavar or o.name.upper(), nargs="?", default=argparse.SUPPRESS, **kwargs)
            continue
        flags = [f for f in (o.short, o.cli_flag, *o.aliases) if f]
        kwargs.update(dest=o.name, default=argparse.SUPPRESS)
        if kind.is_flag:
            kwargs["action"] = "store_true"
        else:
            # Choices are checked by the option's kind, not argparse: one message on every surface.
            kwargs["metavar"] = "{" + ",".join(kind.choices) + "}" if kind.choices else (o.metavar or o.name.upper())
            if kind.nargs:
                kwargs.update(nargs=kind.nargs, action="extend")
            elif kind.repeated:
                kwargs["action"] = "append"
        if o.required:
            kwargs["required"] = True
        p.add_argument(*flags, **kwargs)


def request_from_args(command: str, args: argparse.Namespace):
    """The request of a parsed command line: every given option parsed by its kind (UsageError, exit 2,
    before any work). ``--atol 1e-5 BUNDLE``: a tolerance list that swallowed TARGET gives it back."""
    given = {o.name: getattr(args, o.name) for o in options_for(command) if hasattr(args, o.name)}
    for o in options_for(command):
        if o.is_positional(command) and given.get(o.name) is None:
            given[o.name] = _recover_positional(given, command) or _missing(o, command)
    return build(command, given, CLI)


def _recover_positional(given: dict, command: str) -> str | None:
    for o in options_for(command):
        tokens = given.get(o.name)
        if o.kind.nargs == "+" and tokens and not _is_tolerance_token(tokens[-1]):
            given[o.name] = tokens[:-1]
            return tokens[-1]
    return None


def _is_tolerance_token(token: str) -> bool:
    try:
        float(str(token).rpartition(":")[2])
    except ValueError:
        return False
    return True


def _missing(option, command: str):
    raise UsageError(
        f"bridge {command}: {option.metavar or option.name.upper()} is missing", hint=option.help_for(command)
    )
