"""The plan of an incident: everything the runner is about to do, before it does it.

``remediate --check`` prints it first; every run records it in the timeline
(``plan`` event), so the journal keeps what was intended next to what ran.
Values people passed (``-e``) and step vars go through the redactor; step
vars are shown as written in the scenario (templates are not rendered here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incident_runner.redaction import Redactor
from incident_runner.safety import ApprovalGate, Budget, FlapVerdict
from incident_runner.scenario import Scenario, Step
from incident_runner.severity import Level

MAX_VALUE = 120


@dataclass(frozen=True)
class PlanInput:
    scenario: Scenario
    level: Level | None
    ladder_name: str
    ladder: tuple[Step, ...]
    inventory: Path
    limit: str | None
    extra_vars: dict[str, Any]
    check: bool
    flap: FlapVerdict | None
    budget: Budget
    gate: ApprovalGate
    diagnostics: bool
    target_key: str = ""
    lock_keys: tuple[str, ...] = ()


def _approval(step: Step, gate: ApprovalGate, check: bool) -> str:
    if not step.destructive:
        return "not needed"
    if check:
        return "needed for a real run (--yes or a yes on the terminal); not asked in check mode"
    if gate.assume_yes:
        return "approved by --yes"
    return "ask on the terminal; without a terminal the step is skipped and the incident escalated"


def build_plan(p: PlanInput, redactor: Redactor) -> dict[str, Any]:
    s = p.scenario
    level = p.level
    steps = []
    for k, step in enumerate(p.ladder, start=1):
        left = p.budget.left()
        steps.append({
            "n": k, "name": step.name, "action": step.action,
            "description": step.description, "destructive": step.destructive,
            "approval": _approval(step, p.gate, p.check),
            "timeout_s": step.timeout,
            "timeout_note": "capped by the incident timeout" if left is not None and (
                step.timeout is None or step.timeout > left) else "",
            "vars": redactor.data(dict(step.vars)),
        })
    window = level.escalation_window_minutes if level else None
    return {
        "mode": "check (ansible --check --diff: nothing is changed; diagnostics, which only "
                "read, run for real; verification is not run)" if p.check else "remediate",
        "scenario": {"id": s.id, "title": s.title, "source": str(s.source)},
        "severity": level.info() if level else None,
        "targets": {"hosts": s.hosts, "services": list(s.services), "limit": p.limit,
                    "inventory": str(p.inventory)},
        "target_key": p.target_key,
        "lock_keys": list(p.lock_keys),
        "symptom_check": ("skipped: " + s.confirm_reason) if not s.confirm
        else "before the first step; a healthy target is left alone",
        "extra_vars": redactor.data(dict(p.extra_vars)),
        "diagnostics": p.diagnostics,
        "ladder": {"name": p.ladder_name, "steps": steps},
        "verify": {
            "checks": [{"name": c.name, "url": c.url, "status": list(c.status),
                        "successes": c.successes, "p95_ms": c.p95_ms, "deadline_s": c.deadline}
                       for c in s.verify.checks],
            "playbook": s.verify.playbook,
            "stabilisation_seconds": s.verify.stabilisation_seconds,
        },
        "escalation": {
            "no_local_fix": s.no_local_fix,
            "reason": s.escalation_reason,
            "window_minutes": window,
            "contacts": list(level.contacts) if level else [],
        },
        "flap_guard": p.flap.as_event() if p.flap else None,
        "timeout": {"incident_s": p.budget.seconds},
    }


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def _minutes(value: Any) -> str:
    return "none" if value is None else f"{value:g} min"


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """The plan as short lines for the terminal (each printed after 'plan')."""
    sc, tg = plan["scenario"], plan["targets"]
    out = [f"mode       {plan['mode']}",
           f"scenario   {sc['id']}: {_short(sc['title'])} ({sc['source']})"]
    sev = plan["severity"]
    if sev:
        out.append(f"severity   {sev['level']} {sev['label']} (scale {sev['scale']}): respond "
                   f"{_minutes(sev['response_time_minutes'])}, escalation window "
                   f"{_minutes(sev['escalation_window_minutes'])}, updates every "
                   f"{_minutes(sev['update_cadence_minutes'])}; contacts: "
                   f"{', '.join(sev['contacts']) or '-'}")
    else:
        out.append("severity   unrated (no --severity and no default_severity)")
    out.append(f"targets    hosts {tg['hosts']}"
               + (f" services {', '.join(tg['services'])}" if tg["services"] else "")
               + f"; limit {tg['limit'] or '-'}; inventory {tg['inventory']}")
    out.append(f"target     {plan['target_key']}")
    out.append(f"symptom    {plan['symptom_check']}")
    if plan["extra_vars"]:
        out.append("extra vars " + ", ".join(f"{k}={_short(v)}"
                                             for k, v in plan["extra_vars"].items()))
    out.append(f"diagnose   {'capture diagnostics (read-only)' if plan['diagnostics'] else 'off'}")
    ladder = plan["ladder"]
    out.append(f"ladder     {ladder['name']} ({len(ladder['steps'])} step(s), first that "
               "verifies wins)")
    for st in ladder["steps"]:
        flag = " [DESTRUCTIVE]" if st["destructive"] else ""
        timeout = f"timeout {st['timeout_s']}s" if st["timeout_s"] else "no step timeout"
        note = f" ({st['timeout_note']})" if st["timeout_note"] else ""
        out.append(f"  {st['n']}. {st['name']}: {st['action']}{flag}; {timeout}{note}")
        if st["destructive"]:
            out.append(f"     approval: {st['approval']}")
        for key, value in st["vars"].items():
            out.append(f"     {key}: {_short(value)}")
    for check in plan["verify"]["checks"]:
        budget = f", p95 <= {check['p95_ms']} ms" if check["p95_ms"] else ""
        out.append(f"verify     {check['name']}: {_short(check['url'])} -> {check['status']} "
                   f"x{check['successes']}{budget} within {check['deadline_s']:g}s")
    if plan["verify"]["playbook"]:
        out.append(f"verify     playbook {plan['verify']['playbook']}")
    esc = plan["escalation"]
    contacts = ", ".join(esc["contacts"]) or "a human"
    if esc["no_local_fix"]:
        out.append(f"escalate   at once (no local fix) to {contacts}: {_short(esc['reason'])}")
    else:
        out.append(f"escalate   to {contacts} when the ladder is exhausted"
                   + (f" or after {esc['window_minutes']:g} min (escalation window)"
                      if esc["window_minutes"] is not None else "")
                   + (f": {_short(esc['reason'])}" if esc["reason"] else ""))
    flap = plan["flap_guard"]
    if flap:
        verdict = "ok" if flap["decision"] == "allow" else "WOULD BLOCK: escalate without acting"
        out.append(f"flap guard {flap['count']} of {flap['max_remediations']} remediations of "
                   f"'{flap['target_key']}' in the last {flap['window_minutes']:g} min "
                   f"({flap['limit_from']}): {verdict}")
    incident_s = plan["timeout"]["incident_s"]
    out.append("timeout    " + (f"incident {incident_s / 60:g} min" if incident_s
                                else "no incident timeout"))
    return out
