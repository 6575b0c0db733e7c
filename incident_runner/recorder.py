"""One ``record()`` per event: the timeline gets it, the live view says it.

Every decision the runner takes is written once, here; the timeline is the
record (the journal and reports are folded from it), the reporter is what a
person watching sees.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from incident_runner.executor import TaskResult
from incident_runner.redaction import Redactor
from incident_runner.timeline import Timeline

LOG = logging.getLogger(__name__)


class Reporter(Protocol):
    """Where the live view goes (terminal, plain lines, nothing)."""

    def phase(self, name: str, detail: str = "") -> None: ...
    def task(self, result: TaskResult) -> None: ...
    def outcome(self, name: str, ok: bool, detail: str = "") -> None: ...


class SilentReporter:
    def phase(self, name: str, detail: str = "") -> None:
        LOG.info("%s %s", name, detail)

    def task(self, result: TaskResult) -> None:
        LOG.debug("%s %s", result.task, result.status)

    def outcome(self, name: str, ok: bool, detail: str = "") -> None:
        LOG.info("%s %s %s", name, "ok" if ok else "not ok", detail)


class Recorder:
    def __init__(self, timeline: Timeline, reporter: Reporter, redactor: Redactor) -> None:
        self.timeline = timeline
        self.reporter = reporter
        self.redactor = redactor

    def record(self, kind: str, /, *, say: str | None = None, label: str | None = None,
               ok: bool | None = None, **fields: Any) -> dict[str, Any]:
        """Append ``kind`` to the timeline (redacted); with ``say``, show it live too."""
        event = self.timeline.append(kind, **self.redactor.data(fields))
        if say is not None:
            text = self.redactor.text(say)
            if ok is None:
                self.reporter.phase(label or kind, text)
            else:
                self.reporter.outcome(label or kind, ok, text)
        return event

    def decision(self, decision: str, reason: str, *, trigger: str | None = None,
                 after: str | None = None, **fields: Any) -> None:
        extra: dict[str, Any] = {k: v for k, v in (("trigger", trigger), ("after", after))
                                 if v is not None}
        self.record("decision", say=reason, label=decision.replace("_", " "),
                    decision=decision, reason=reason, **extra, **fields)

    def close(self) -> None:
        self.timeline.close()
