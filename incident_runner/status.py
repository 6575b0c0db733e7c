"""The outcome of an incident: one vocabulary for the engine, journal, history, JUnit and CLI."""

from __future__ import annotations

from enum import StrEnum

from incident_runner.errors import ExitCode


class Status(StrEnum):
    RESOLVED = "resolved"          # a step fixed it and verification passed
    NOT_REPRODUCED = "not-reproduced"  # the symptom check found the target healthy: no action
    CHECKED = "checked"            # a dry run (--check) completed
    ESCALATED = "escalated"        # handed to a human (exit 3)
    FAILED = "failed"              # the runner could not run (exit 1)
    INTERRUPTED = "interrupted"    # killed or signalled mid-incident
    RUNNING = "running"            # no close event yet and the runner is alive


# Finished without a human: these are "not deviated".
OK_STATUSES = frozenset({Status.RESOLVED, Status.NOT_REPRODUCED, Status.CHECKED})
# What `stats` counts as outcomes.
OUTCOMES = (Status.RESOLVED, Status.NOT_REPRODUCED, Status.ESCALATED, Status.FAILED,
            Status.INTERRUPTED)

EXIT_FOR_STATUS = {
    Status.RESOLVED: ExitCode.RESOLVED,
    Status.NOT_REPRODUCED: ExitCode.RESOLVED,
    Status.CHECKED: ExitCode.RESOLVED,
    Status.ESCALATED: ExitCode.ESCALATED,
    Status.FAILED: ExitCode.FAILED,
    Status.INTERRUPTED: ExitCode.FAILED,
}


def exit_code(status: str) -> ExitCode:
    try:
        return EXIT_FOR_STATUS.get(Status(status), ExitCode.FAILED)
    except ValueError:
        return ExitCode.FAILED
