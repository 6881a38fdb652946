"""``bridge verify TARGET [--source SOURCE]`` and ``bridge bench``: the request checked here, the
verification (and timing) run in a worker. bench is verify with timed runs, titled bench, exit 0
whatever the parity verdict (its report still says it)."""

from __future__ import annotations

from bridge.commands.parser import add_request_arguments as add_arguments  # noqa: F401 (the command's options)
from bridge.commands.reports import write_failure  # noqa: F401 (reports of a command that failed early)


def run(args, command: str) -> int:
    from bridge.commands.parser import request_from_args

    return execute(request_from_args(command, args))


def execute(request) -> int:
    from bridge.commands import reports, work
    from bridge.errors import EXIT_PASS, BridgeError

    reports.guard_request(request)
    try:
        report = work.run("bridge.verifying:run_verify", request)
    except BridgeError as exc:
        reports.write_error(request, exc)
        raise
    code = reports.finish(request, report)
    return EXIT_PASS if request.command == "bench" else code
