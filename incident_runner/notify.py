"""Tell people: the scenario's messages to the configured webhook, with delivery recorded.

Messages are rendered from what the incident knows now (no journal rebuilt
mid-run), through the same sandbox as the reports; the text and the URL reach
Ansible as data, never as templates.
"""

from __future__ import annotations

import os
import time
from typing import Any

from incident_runner.incident import Incident
from incident_runner.plays import mark_unsafe, role_play
from incident_runner.report import message_templates, render_message

WEBHOOK_ENV = "INCIDENT_RUNNER_WEBHOOK_URL"
WEBHOOK_FORMAT_ENV = "INCIDENT_RUNNER_WEBHOOK_FORMAT"


def message_context(incident: Incident, status: str, reason: str = "",
                    resolved_by: str | None = None) -> dict[str, Any]:
    s = incident.scenario
    return {
        "incident_id": incident.incident_id, "scenario": s.id, "title": s.title,
        "severity": incident.severity, "status": status, "reason": reason,
        "resolved_by": resolved_by, "steps": [st.name for st in incident.ladder],
        "duration_s": round(time.monotonic() - incident.opened_at, 1),
        "communication": s.communication,
    }


def notify(incident: Incident, kind: str, reason: str = "", resolved_by: str | None = None) -> None:
    """Send the scenario's ``kind`` message (initial, resolved, escalated) when configured."""
    url = os.environ.get(WEBHOOK_ENV, "")
    if not incident.scenario.notify or incident.request.check:
        return
    if not url:
        incident.record("skipped", phase="notify", step=f"notify-{kind}", message_kind=kind,
                        delivered=False, channel="none",
                        reason=f"no webhook configured (${WEBHOOK_ENV})")
        return
    incident.redactor.add(url)  # webhook URLs carry their token
    status = {"initial": "open"}.get(kind, kind)
    context = message_context(incident, status, reason, resolved_by)
    text = incident.redactor.text(render_message(message_templates(context)[kind], context))
    play_vars = {
        **incident.base_vars(), "notify_url": mark_unsafe(url),
        "notify_message": mark_unsafe(text),
        "notify_format": os.environ.get(WEBHOOK_FORMAT_ENV, "slack"),
        "notify_incident_id": incident.incident_id, "notify_scenario": incident.scenario.id,
        "notify_severity": incident.severity or "", "notify_phase": kind,
    }
    play = role_play(f"{incident.scenario.id}: notify {kind}", "localhost", "notify", play_vars)
    play[0]["connection"] = "local"
    run = incident.run("notify", None, f"notify-{kind}", play, check=False)
    incident.record("notification", say="; ".join(run.failures[:1]) or "delivered",
                    label=f"notify {kind}", ok=run.ok, message_kind=kind, delivered=run.ok,
                    channel=os.environ.get(WEBHOOK_FORMAT_ENV, "slack"), message=text,
                    reason="" if run.ok else "; ".join(run.failures[:1]))
