"""The incident journal: one JSON document per incident, derived from the timeline.

Chaos Toolkit's journal.json is the model: start, end, duration, status,
deviated, and every step with its start/end/status/output. Reports are
rendered from the journal only. A run that was killed has no journal yet:
``build_journal`` derives one from the timeline and marks it interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from incident_runner.fsutil import write_atomic
from incident_runner.layout import JOURNAL_FILE, TIMELINE_FILE
from incident_runner.procutil import pid_alive
from incident_runner.status import OK_STATUSES, Status
from incident_runner.timeline import read_timeline
from incident_runner.timeutil import parse_iso, seconds_between

# report.json / journal.json layout version (incident_runner/schemas/report.schema.json)
SCHEMA_VERSION = 2
DECISION_KINDS = {"decision", "escalated", "skipped", "approval", "flap_guard", "lock",
                  "notification"}


def _row(event: dict[str, Any], phase: Any, step: Any, status: Any, detail: Any) -> dict[str, Any]:
    return {"ts": event["ts"], "phase": phase, "step": step, "status": status, "detail": detail}


def _symptom_seen(event: dict[str, Any]) -> str:
    if event.get("skipped"):
        return "not checked"
    return "confirmed" if event.get("confirmed") else "not seen"


# One chronological row of the report's timeline per meaningful event kind.
_ROWS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "step_started": lambda e: _row(e, e.get("phase"), e.get("step"), "started",
                                   e.get("action", "")),
    "step_finished": lambda e: _row(e, e.get("phase"), e.get("step"), e.get("status"),
                                    e.get("summary", "")),
    "symptom": lambda e: _row(e, "confirm", "symptom", _symptom_seen(e), e.get("reason", "")),
    "verify_result": lambda e: _row(e, "verify", e.get("step"),
                                    "healthy" if e.get("healthy") else "unhealthy",
                                    "; ".join(e.get("details") or [])[:300]),
    "incident_opened": lambda e: _row(e, "open", "-", "opened",
                                      f"ladder {e.get('ladder')}: "
                                      f"{', '.join(e.get('steps') or [])}"),
    "incident_closed": lambda e: _row(e, "close", "-", e.get("status"), e.get("reason", "")),
    **{kind: (lambda e: _row(e, e.get("phase", "decide"), e.get("after") or e.get("step") or "-",
                             e.get("decision", e["kind"]), e.get("reason", "")))
       for kind in DECISION_KINDS - {"notification"}},
}


def _end_state(events: list[dict[str, Any]], opened: dict[str, Any], closed: dict[str, Any] | None,
               current: dict[str, Any] | None) -> tuple[str, str | None]:
    """Status and end time; without a close event: running (pid alive) or interrupted."""
    if closed:
        return str(closed.get("status", "failed")), closed["ts"]
    status = Status.RUNNING if pid_alive(opened.get("pid")) else Status.INTERRUPTED
    end_ts = events[-1]["ts"] if events else None
    if current is not None and status == Status.INTERRUPTED:
        current["status"] = "interrupted"  # the step that was running when it was killed
        current["end"] = end_ts
    return str(status), end_ts


def build_journal(incident_dir: Path) -> dict[str, Any]:
    """Fold the timeline into the journal (pure: reads, never writes)."""
    events = list(read_timeline(incident_dir / TIMELINE_FILE))
    opened = next((e for e in events if e["kind"] == "incident_opened"), {})
    closed = next((e for e in reversed(events) if e["kind"] == "incident_closed"), None)
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    verifications: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []  # chronological rows for the report's timeline
    for event in events:
        kind = event["kind"]
        if kind in _ROWS:
            entries.append(_ROWS[kind](event))
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
                                     ("task", "host", "status", "changed", "message", "ts",
                                      "evidence") if k != "evidence" or event.get(k)})
            if event.get("evidence"):
                current.setdefault("evidence", []).append(event["evidence"])
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
            _fold_verification(steps, event)
        elif kind in {"symptom", "evidence"}:
            evidence.append({k: v for k, v in event.items() if k not in {"seq"}})
        elif kind in DECISION_KINDS:
            decisions.append({k: v for k, v in event.items() if k not in {"seq"}})
    start = parse_iso(opened.get("ts"))
    status, end_ts = _end_state(events, opened, closed, current)
    end = parse_iso(end_ts)
    duration = (end - start).total_seconds() if start and end else None
    return {
        "schema_version": SCHEMA_VERSION,
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
        "status": str(status),
        "deviated": status not in OK_STATUSES,
        "force": opened.get("force", False),
        "alert": opened.get("alert", {}),
        "target_hosts": opened.get("target_hosts", []),
        "scenario_source": opened.get("scenario_source"),
        "key_times": key_times(opened, events, closed),
        "evidence": evidence,
        "recurrence": next(({k: v for k, v in e.items() if k != "seq"} for e in events
                            if e["kind"] == "recurrence"), None),
        "notifications": [d for d in decisions if d.get("kind") == "notification"
                          or (d.get("kind") == "skipped" and d.get("phase") == "notify")],
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
        **_fleet(events),
    }


def _fleet(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Fleet mode (docs/fleet.md): one row per host, from its ``host_outcome`` event;
    ``target_keys`` are the hosts' flap-guard keys that ran a mitigation step."""
    hosts = [{k: v for k, v in e.items() if k not in {"seq", "kind", "ts"}} for e in events
             if e["kind"] == "host_outcome"]
    if not hosts:
        return {}
    counts: dict[str, int] = {}
    for row in hosts:
        counts[str(row.get("outcome"))] = counts.get(str(row.get("outcome")), 0) + 1
    acted = sorted({str(e.get("target_key")) for e in events if e["kind"] == "flap_guard"
                    and e.get("host") and any(r.get("host") == e.get("host") and r.get("steps")
                                              for r in hosts)})
    return {"fleet": {"hosts": hosts, "counts": counts}, "target_keys": acted}


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


def _fold_verification(steps: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """A verification is a step of its own (phase verify); checks are its tasks.

    When the scenario's verify playbook ran under the same name, the checks join it.
    """
    tasks = [{"task": c.get("name"), "host": "runner", "changed": False, "ts": event["ts"],
              "status": "ok" if c.get("healthy") else "failed", "message": c.get("message", "")}
             for c in event.get("checks") or []]
    status = "successful" if event.get("healthy") else "failed"
    same = next((s for s in reversed(steps) if s.get("phase") == "verify"
                 and s.get("name") == event.get("step")), None)
    if same is not None:
        same["tasks"] = tasks + same["tasks"]
        same["status"] = status
        same["start"] = event.get("started") or same["start"]
        return
    failed = [t["message"] for t in tasks if t["status"] != "ok"]
    steps.append({
        "phase": "verify", "name": event.get("step"), "action": "health checks (runner)",
        "destructive": False, "start": event.get("started") or event["ts"], "end": event["ts"],
        "status": status, "changed": 0, "tasks": tasks, "messages": failed, "rc": None,
        "summary": "; ".join(failed[:2]) if failed else f"{len(tasks)} check(s) healthy",
    })


def key_times(opened: dict[str, Any], events: list[dict[str, Any]],
              closed: dict[str, Any] | None) -> dict[str, Any]:
    """Impact -> detected -> first action -> mitigated -> closed, and the spans between.

    impact: the alert's startsAt or the CI run's failure time when known; detected:
    the symptom check that confirmed it (or, without one, the runner's start);
    first action: the first mitigation step; mitigated: the first passing
    verification after an action; closed: the incident's end. docs/reports.md.
    """
    alert = opened.get("alert") or {}
    ci = opened.get("ci") or {}
    impact = alert.get("starts_at") or ci.get("failed_at") or None
    symptom = next((e for e in events if e["kind"] == "symptom" and e.get("confirmed")), None)
    detected = symptom["ts"] if symptom else opened.get("ts")
    first = next((e for e in events if e["kind"] == "step_started"
                  and e.get("phase") == "mitigate"), None)
    first_action = first["ts"] if first else None
    mitigated = next((e["ts"] for e in events if e["kind"] == "verify_result"
                      and e.get("healthy") and first_action and e["ts"] >= first_action), None)
    closed_ts = closed["ts"] if closed else None
    return {
        "impact_start": impact, "detected": detected, "first_action": first_action,
        "mitigated": mitigated, "closed": closed_ts,
        "time_to_detect_s": seconds_between(impact, detected),
        "time_to_act_s": seconds_between(detected, first_action),
        "time_to_mitigate_s": seconds_between(first_action or detected, mitigated),
        "time_to_recover_s": seconds_between(impact or detected, mitigated),
    }
