"""Synthetic incident folders: timeline events as the runner writes them, at chosen times."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from incident_runner.journal import build_journal, write_journal

T0 = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def write_incident(
    root: Path,
    *,
    scenario: str = "proxy-502",
    start: datetime = T0,
    steps: list[tuple[str, str, str, float]] | None = None,
    status: str | None = "resolved",
    resolved_by: str | None = None,
    drill: bool = False,
    check_mode: bool = False,
    title: str = "Proxy answers 502 Bad Gateway",
    hosts: str = "staging",
    target_key: str | None = None,
    pid: int = 0,
    escalate_reason: str | None = None,
    name: str | None = None,
    close: bool = True,
    journal: bool = True,
    started_task: str | None = None,
) -> Path:
    """Write ``INC-...-<scenario>/timeline.jsonl`` (and journal.json when closed).

    ``steps`` are (phase, name, status, seconds); they run back to back from
    ``start`` + 1 s. ``status=None`` or ``close=False`` leaves the run open
    (killed, or still running when ``pid`` is alive).
    """
    steps = steps or []
    incident_id = start.strftime("INC-%Y%m%d-%H%M%S")
    folder = root / (name or f"{incident_id}-{scenario}")
    folder.mkdir(parents=True)
    events: list[dict[str, Any]] = []
    clock = start

    def add(kind: str, at: datetime, **fields: Any) -> None:
        events.append({"seq": len(events) + 1, "ts": iso(at), "kind": kind, **fields})

    add("incident_opened", clock, incident_id=incident_id, scenario=scenario, title=title,
        description="synthetic", severity="SEV2", ladder="default",
        steps=[s[1] for s in steps if s[0] == "mitigate"], check_mode=check_mode, drill=drill,
        inventory="/inv", hosts=hosts, limit=None, pid=pid, runner_host="test",
        ci={"job": "42"}, report_hints={}, communication={},
        **({"target_key": target_key} if target_key else {}))
    clock += timedelta(seconds=1)
    for phase, step, step_status, seconds in steps:
        add("step_started", clock, phase=phase, step=step, action=f"role {step}",
            destructive=False, check_mode=check_mode)
        add("task_started", clock, phase=phase, step=step, task=started_task or f"{step} task")
        if step_status == "running":  # killed in the middle of this step
            clock += timedelta(seconds=seconds)
            break
        clock += timedelta(seconds=seconds)
        add("task_result", clock, phase=phase, step=step, task=f"{step} task", host="localhost",
            status="ok" if step_status == "successful" else "failed", changed=True,
            message="" if step_status == "successful" else "boom", duration=seconds)
        add("step_finished", clock, phase=phase, step=step, status=step_status, rc=0,
            changed=1, duration=seconds, summary="1 change(s)")
    if escalate_reason:
        add("decision", clock, decision="escalate", reason=escalate_reason)
        add("escalated", clock, reason=escalate_reason, contacts=[])
    if close and status is not None:
        clock += timedelta(milliseconds=200)
        add("incident_closed", clock, status=status, resolved_by=resolved_by,
            reason=f"synthetic {status}")
    (folder / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if close and status is not None and journal:
        write_journal(folder, build_journal(folder))
    return folder
