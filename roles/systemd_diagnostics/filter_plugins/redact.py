"""Jinja filter: mask secrets in text with the runner's one redactor (on the controller)."""

from __future__ import annotations

from typing import Any

from incident_runner.redaction import Redactor


def incident_runner_redact(value: Any) -> str:
    return Redactor().text(str(value))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"incident_runner_redact": incident_runner_redact}
