"""``bridge export SOURCE -o BUNDLE_DIR``: the request checked here, the export run in a worker."""

from __future__ import annotations

from bridge.commands.parser import add_request_arguments as add_arguments  # noqa: F401 (the command's options)
from bridge.commands.reports import write_failure  # noqa: F401 (reports of a command that failed early)


def run(args, command: str) -> int:
    from bridge.commands.parser import request_from_args

    return execute(request_from_args(command, args))


def execute(request) -> int:
    """Export under an already built request: reports checked, the bundle's parent made, the work run in a
    worker, the report printed and written; every requested report is written on an error too."""
    from pathlib import Path

    from bridge.artifact.files import ensure_directory
    from bridge.artifact.staging import remove_stale_staging
    from bridge.commands import reports, work
    from bridge.errors import BridgeError

    reports.guard_request(request)
    try:
        ensure_directory(Path(request.output).absolute().parent, f"-o {request.output}")
        try:
            report = work.run("bridge.exporting:run_export", request)
        finally:
            remove_stale_staging(request.output)  # a worker killed before it could unwind leaves its staging
    except BridgeError as exc:
        reports.write_error(request, exc)
        raise
    return reports.finish(request, report)
