"""JUnit XML for pipelines, rendered from the journal only.

One ``<testsuite>`` per incident; one ``<testcase>`` per step that ran
(diagnose, each mitigate step, each verification, notifications), in the order
they ran, named ``<phase>`` (classname ``incident-runner.<scenario>.<phase>``)
and ``<step>``. A failed or timed-out step carries a ``<failure>``, a step
that errored or was interrupted an ``<error>``, a step the runner skipped a
``<skipped>``. In fleet mode (docs/fleet.md) every host adds a case per step it
ran (classname ``incident-runner.<scenario>.host.<host>``; a step that failed
or did not verify is a failure) and an ``outcome`` case (passes when the host
was resolved or not affected). Waiting for another run's lock is a ``lock`` case, and the last
case, ``incident / outcome``, passes only when the incident was resolved (or a
check-mode run finished): an escalation is a failure whose message is the
reason. Built with ``xml.etree``; characters XML cannot carry are replaced.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from incident_runner.fsutil import write_atomic
from incident_runner.status import OK_STATUSES as OK_OUTCOMES
from incident_runner.timeutil import seconds_between

PASSED = {"successful", "ok"}
FAILED = {"failed", "timeout"}  # the step ran and did not succeed; anything else is an error
MAX_MESSAGE = 1000
MAX_OUTPUT = 20_000
# XML 1.0 allows tab, LF, CR and these ranges; Ansible output can hold anything.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any, limit: int = MAX_OUTPUT) -> str:
    text = "" if value is None else str(value)
    return _NOT_XML.sub("?", text)[:limit]


def _seconds(start: str | None, end: str | None) -> float:
    return max(0.0, seconds_between(start, end) or 0.0)


def _case(suite: ET.Element, classname: str, name: str, time: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=xml_text(classname, 200),
                         name=xml_text(name, 200), time=f"{time:.3f}")


def _result(case: ET.Element, tag: str, kind: str, message: str, body: str = "") -> None:
    element = ET.SubElement(case, tag, type=xml_text(kind, 100),
                            message=xml_text(" ".join(message.split()), MAX_MESSAGE))
    if body:
        element.text = xml_text(body)


def _out(case: ET.Element, lines: list[str]) -> None:
    if lines:
        ET.SubElement(case, "system-out").text = xml_text("\n".join(lines) + "\n")


def _step_case(suite: ET.Element, prefix: str, step: dict[str, Any]) -> str:
    """One step's case; returns its verdict: passed | failure | error."""
    phase = str(step.get("phase") or "step")
    status = str(step.get("status") or "unknown")
    case = _case(suite, f"{prefix}.{phase}", str(step.get("name") or "-"),
                 _seconds(step.get("start"), step.get("end") or step.get("start")))
    messages = [str(m) for m in step.get("messages") or []]
    summary = str(step.get("summary") or "")
    lines = [f"{step.get('action') or ''}{' (destructive)' if step.get('destructive') else ''}: "
             f"{status}, {step.get('changed', 0)} change(s)"]
    for task in step.get("tasks") or []:
        flag = " changed" if task.get("changed") else ""
        note = f": {task.get('message')}" if task.get("message") else ""
        lines.append(f"  [{task.get('status')}{flag}] {task.get('host')} | "
                     f"{task.get('task')}{note}")
    _out(case, lines)
    if status in PASSED:
        return "passed"
    message = f"{phase} step {step.get('name')} {status}: " + (messages[0] if messages
                                                                else summary or status)
    body = "\n".join(messages + ([summary] if summary and summary not in messages else []))
    tag = "failure" if status in FAILED else "error"
    _result(case, tag, status, message, body)
    return tag


def _lock_case(suite: ET.Element, prefix: str, events: list[dict[str, Any]]) -> str:
    waited = sum(float(e.get("waited_s") or 0) for e in events if e.get("decision") != "wait")
    case = _case(suite, f"{prefix}.lock", "target lock", waited)
    _out(case, [f"{e.get('decision')}: {e.get('reason', '')}" for e in events])
    timeout = next((e for e in events if e.get("decision") == "timeout"), None)
    if timeout is None:
        return "passed"
    _result(case, "failure", "lock_timeout", str(timeout.get("reason", "lock not acquired")))
    return "failure"


def _outcome_case(suite: ET.Element, prefix: str, journal: dict[str, Any]) -> str:
    status = str(journal.get("status") or "unknown")
    reason = str(journal.get("reason") or "")
    case = _case(suite, f"{prefix}.incident", "outcome", float(journal.get("duration_s") or 0))
    _out(case, [f"{journal.get('incident_id')}: {status}: {reason}",
                *([f"resolved by step {journal['resolved_by']}"]
                  if journal.get("resolved_by") else [])])
    if status in OK_OUTCOMES:
        return "passed"
    if status == "escalated":
        _result(case, "failure", "escalated", f"escalated to a human: {reason}", reason)
        return "failure"
    if status == "failed":
        _result(case, "failure", "failed", f"remediation failed: {reason}", reason)
        return "failure"
    _result(case, "error", status, f"{status}: {reason}", reason)
    return "error"


def _host_cases(suite: ET.Element, prefix: str, host: dict[str, Any]) -> list[str]:
    """Fleet mode: a case per host and step it ran, then the host's outcome."""
    name = str(host.get("host") or "-")
    classname = f"{prefix}.host.{name}"
    verdicts = []
    for step in host.get("steps") or []:
        case = _case(suite, classname, str(step.get("name") or "-"),
                     float(step.get("duration_s") or 0))
        status, verified = step.get("status"), step.get("verified")
        _out(case, [f"{name}: step {step.get('name')} {status}"
                    + ("" if verified is None else f", {'' if verified else 'not '}verified")])
        if status == "checked" or (status == "ok" and verified is not False):
            verdicts.append("passed")
            continue
        kind = "unreachable" if status == "unreachable" else (
            "not_verified" if status == "ok" else "failed")
        _result(case, "failure", kind, f"{name}: step {step.get('name')} {status}"
                + (", verification failed" if kind == "not_verified" else ""))
        verdicts.append("failure")
    outcome = str(host.get("outcome") or "not-acted")
    case = _case(suite, classname, "outcome", float(host.get("time_to_recover_s") or 0))
    _out(case, [f"{name}: symptom {host.get('symptom')}; {outcome}: {host.get('reason', '')}"])
    if outcome in {"resolved", "not-reproduced", "checked"}:
        verdicts.append("passed")
    else:
        _result(case, "failure", outcome, f"{name}: {outcome}: {host.get('reason', '')}")
        verdicts.append("failure")
    return verdicts


def render_junit(journal: dict[str, Any]) -> str:
    """The JUnit XML document (``<testsuites>`` with one ``<testsuite>``) for a journal."""
    scenario = str(journal.get("scenario") or "incident")
    prefix = f"incident-runner.{scenario}"
    suite = ET.Element("testsuite", name=xml_text(f"{prefix} {journal.get('incident_id')}", 200))
    props = ET.SubElement(suite, "properties")
    for key in ("incident_id", "scenario", "status", "severity", "resolved_by", "reason", "dir"):
        if journal.get(key) not in (None, ""):
            ET.SubElement(props, "property", name=key,
                          value=xml_text(journal[key], MAX_MESSAGE))
    for key, value in sorted((journal.get("ci") or {}).items()):
        ET.SubElement(props, "property", name=f"ci.{key}", value=xml_text(value, MAX_MESSAGE))

    verdicts: list[str] = []
    decisions = journal.get("decisions") or []
    locks = [d for d in decisions if d.get("kind") == "lock"]
    if locks:
        verdicts.append(_lock_case(suite, prefix, locks))
    for step in journal.get("steps") or []:
        verdicts.append(_step_case(suite, prefix, step))
    for skipped in (d for d in decisions if d.get("kind") == "skipped"):
        case = _case(suite, f"{prefix}.{skipped.get('phase') or 'step'}",
                     str(skipped.get("step") or "-"), 0.0)
        ET.SubElement(case, "skipped", message=xml_text(skipped.get("reason", ""), MAX_MESSAGE))
        verdicts.append("skipped")
    for host in (journal.get("fleet") or {}).get("hosts") or []:
        verdicts += _host_cases(suite, prefix, host)
    verdicts.append(_outcome_case(suite, prefix, journal))

    counts = {k: verdicts.count(k) for k in ("failure", "error", "skipped")}
    attrs = {"tests": str(len(verdicts)), "failures": str(counts["failure"]),
             "errors": str(counts["error"]), "skipped": str(counts["skipped"]),
             "time": f"{float(journal.get('duration_s') or 0):.3f}"}
    suite.attrib.update(attrs)
    if journal.get("start"):
        suite.set("timestamp", xml_text(str(journal["start"]).removesuffix("Z"), 40))
    # properties must come first (the JUnit schema); they were added first.
    root = ET.Element("testsuites", {"name": "incident-runner", **attrs})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path, journal: dict[str, Any]) -> Path:
    write_atomic(path, render_junit(journal), mode=0o644)
    return path
