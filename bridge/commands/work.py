"""Running a request's work: in a contained worker process (time and memory limits, a crash becomes
exit 7) unless ``--no-contain``, with stage lines on stderr unless ``--quiet``. Standard library only at
import; the worker imports what the work needs."""

from __future__ import annotations


def run(target: str, request, *, command: str | None = None):
    """``module:function(request)`` in a worker; its result (a Report)."""
    from bridge.progress import StageLines

    lines = StageLines(command or request.command, quiet=request.quiet)
    lines("starting")
    if request.no_contain:
        from bridge.contain import run_in_process

        return run_in_process(target, request, on_stage=lines)
    from bridge.contain import Limits, run_contained

    memory = int(request.memory_limit * 2**30) if request.memory_limit else None
    return run_contained(target, request, Limits(request.timeout or None, memory), debug=request.debug, on_stage=lines)
