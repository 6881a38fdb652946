"""The result vocabulary, in one place: every status a check, an output, a report or a model can have,
how bad each is, the exit code it maps to and the mark printed for it. Reports read these; none
re-derives a verdict. Standard library only.
"""

from __future__ import annotations

from bridge.errors import EXIT_INCONCLUSIVE, EXIT_PARITY, EXIT_PASS

PASS, FAIL, INCONCLUSIVE, SKIPPED, ERROR = "pass", "fail", "inconclusive", "skipped", "error"

# Higher is worse. A skipped model counts as a pass for the run's exit code; an error (a step that
# ended without a verdict) as a failure.
RANK = {PASS: 0, SKIPPED: 0, INCONCLUSIVE: 1, FAIL: 2, ERROR: 2}

MARK = {PASS: "PASS", FAIL: "FAIL", INCONCLUSIVE: "INCONCLUSIVE", SKIPPED: "SKIPPED", ERROR: "ERROR"}

EXIT = {PASS: EXIT_PASS, SKIPPED: EXIT_PASS, FAIL: EXIT_PARITY, ERROR: EXIT_PARITY, INCONCLUSIVE: EXIT_INCONCLUSIVE}


def rank(status) -> int:
    """How bad a status is; an unknown one counts as a failure (fail closed)."""
    return RANK.get(status, RANK[FAIL])


def worst(*statuses) -> str:
    """The worst of some statuses (None and "" ignored); PASS when there are none."""
    found = [s for s in statuses if s]
    return max(found, key=rank) if found else PASS


def verdict(statuses) -> str:
    """The verdict over the statuses of compared outputs: any failure fails, else any inconclusive is
    inconclusive; nothing compared proves nothing (inconclusive)."""
    found = [s for s in statuses if s]
    if not found:
        return INCONCLUSIVE
    return FAIL if rank(worst(*found)) >= RANK[FAIL] else worst(*found)


def mark(status) -> str:
    return MARK.get(status, str(status or "unknown").upper()) if isinstance(status, str) else "UNKNOWN"


def exit_code(status) -> int:
    return EXIT.get(status, EXIT_PARITY)
