"""The incident journal: one JSON document per incident, derived from the timeline.

Chaos Toolkit's journal.json is the model: start, end, duration, status,
deviated, and every step with its start/end/status/output. Reports are
rendered from the journal only. A run that was killed has no journal yet:
``build_journal`` derives one from the timeline and marks it interrupted.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from incident_runner.fsutil import write_atomic
from incident_runner.layout import JOURNAL_FILE, TIMELINE_FILE
from incident_runner.timeline import read_timeline


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _timeline_row(event: dict[str, Any]) -> dict[str, Any] | None:
    kind = event["kind"]
    if kind == "step_started":
        return {"ts": event["ts"], "phase": event.get("phase"), "step": event.get("step"),
                "status": "started", "detail": event.get("action", "")}
    if kind == "step_finished":
        return {"ts": event["ts"], "phase": event.get("phase"), "step": event.get("step"),
                "status": event.get("status"), "detail": event.get("summary", "")}
    if kind in {"decision", "escalated", "skipped", "approval", "flap_guard", "lock"}:
        return {"ts": event["ts"], "phase": event.get("phase", "decide"),
                "step": event.get("after") or event.get("step") or "-",
                "status": event.get("decision", kind), "detail": event.get("reason", "")}
    if kind == "incident_opened":
        return {"ts": event["ts"], "phase": "open", "step": "-", "status": "opened",
                "detail": f"ladder {event.get('ladder')}: {', '.join(event.get('steps') or [])}"}
    if kind == "incident_closed":
        return {"ts": event["ts"], "phase": "close", "step": "-",
                "status": event.get("status"), "detail": event.get("reason", "")}
    return None


def build_journal(incident_dir: Path) -> dict[str, Any]:
    """Fold the timeline into the journal (pure: reads, never writes)."""
    events = list(read_timeline(incident_dir / TIMELINE_FILE))
    opened = next((e for e in events if e["kind"] == "incident_opened"), {})
    closed = next((e for e in reversed(events) if e["kind"] == "incident_closed"), None)
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    verifications: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []  # chronological rows for the report's timeline
    for event in events:
        kind = event["kind"]
        row = _timeline_row(event)
        if row:
            entries.append(row)
        if kind == "step_started":
            current = {
                "phase": event.get("phase"), "name": event.get("step"),
                "action": event.get("action"), "destructive": event.get("destructive", False),
                "start": event["ts"], "end": None, "status": "running", "changed": 0,
                "tasks": [], "messages": [],
            }
            steps.append(current)
        elif kind == "task_result" and current is not None:
            current["tasks"].append({k: event.get(k) for k in
                                     ("task", "host", "status", "changed", "message", "ts")})
            if event.get("changed"):
                current["changed"] += 1
            if event.get("status") != "ok" and event.get("message"):
                current["messages"].append(f"{event.get('task')}: {event.get('message')}")
        elif kind == "step_finished" and current is not None:
            current.update(end=event["ts"], status=event.get("status", "unknown"),
                           rc=event.get("rc"), summary=event.get("summary", ""))
            current = None
        elif kind == "verify_result":
            verifications.append({k: v for k, v in event.items() if k not in {"seq"}})
        elif kind in {"decision", "escalated", "skipped", "approval", "flap_guard", "lock"}:
            decisions.append({k: v for k, v in event.items() if k not in {"seq"}})
    start = _parse(opened.get("ts"))
    if closed:
        status = closed.get("status", "failed")
        end_ts = closed["ts"]
    else:
        # No close event: still running (its pid is alive) or interrupted.
        status = "running" if _pid_alive(opened.get("pid")) else "interrupted"
        end_ts = events[-1]["ts"] if events else None
        if current is not None and status == "interrupted":
            current["status"] = "interrupted"
            current["end"] = end_ts
    end = _parse(end_ts)
    duration = (end - start).total_seconds() if start and end else None
    return {
        "incident_id": opened.get("incident_id", incident_dir.name),
        "dir": incident_dir.name,
        "scenario": opened.get("scenario"),
        "title": opened.get("title"),
        "description": opened.get("description", ""),
        "severity": opened.get("severity"),
        "severity_info": opened.get("severity_info", {}),
        "ladder": opened.get("ladder"),
        "check_mode": opened.get("check_mode", False),
        "drill": opened.get("drill", False),
        "inventory": opened.get("inventory"),
        "hosts": opened.get("hosts"),
        "ci": opened.get("ci", {}),
        "target_key": opened.get("target_key"),
        "start": opened.get("ts"),
        "end": end_ts,
        "duration_s": round(duration, 3) if duration is not None else None,
        "status": status,
        "deviated": status not in {"resolved", "checked"},
        "resolved_by": closed.get("resolved_by") if closed else None,
        "reason": closed.get("reason", "") if closed else "run ended without closing (killed?)",
        "steps": steps,
        "verifications": verifications,
        "decisions": decisions,
        "timeline": entries,
        "plan": next((e.get("plan") for e in events if e["kind"] == "plan"), None),
        "check_results": [{k: v for k, v in e.items() if k != "seq"} for e in events
                          if e["kind"] == "check_result"],
        "report_hints": opened.get("report_hints", {}),
        "communication": opened.get("communication", {}),
        "events": len(events),
    }


def write_journal(incident_dir: Path, journal: dict[str, Any]) -> Path:
    path = incident_dir / JOURNAL_FILE
    write_atomic(path, json.dumps(journal, indent=2, default=str) + "\n")
    return path


def load_journal(incident_dir: Path) -> dict[str, Any]:
    """The closed journal if there is one, else one derived from the timeline."""
    path = incident_dir / JOURNAL_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        except ValueError:
            pass
    return build_journal(incident_dir)
