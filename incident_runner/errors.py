"""One exception family; only the CLI turns them into exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: the contract with people, CI and drills."""

    RESOLVED = 0
    FAILED = 1
    BAD_INPUT = 2
    ESCALATED = 3


class IncidentRunnerError(Exception):
    """Base error: a one-line message and the exit code it maps to."""

    code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InputError(IncidentRunnerError):
    """Bad user input (scenario file, inventory, flag, extra var): exit 2."""

    code = ExitCode.BAD_INPUT

    def __init__(self, message: str, source: str | None = None, field: str | None = None) -> None:
        where = ": ".join(part for part in (source, field) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.field = field


class ExecutionError(IncidentRunnerError):
    """ansible-runner could not run a playbook at all (not: the playbook failed)."""

    code = ExitCode.FAILED
