"""Run one incident, as its stages:

    catalog -> plan -> act (lock, look, mitigate) -> verify -> decide -> record -> report/notify

``remediate`` is the single API the CLI, CI triggers, drills and ``serve``
call. It returns an ``IncidentResult``; it raises only for bad input (before
anything is opened) and never acts without holding the target's lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incident_runner import fleet
from incident_runner.config import load_config
from incident_runner.errors import ExecutionError, ExitCode, InputError
from incident_runner.evidence import capture_diagnostics, look
from incident_runner.incident import Incident, PlaybookRunner, RemediateRequest
from incident_runner.journal import build_journal, write_journal
from incident_runner.ladder import Outcome, climb, escalate, verify
from incident_runner.lock import LockBusyError, describe_holder
from incident_runner.notify import notify
from incident_runner.paths import state_dir
from incident_runner.plan import PlanInput, build_plan, plan_lines
from incident_runner.platform import platform_of
from incident_runner.recorder import Reporter, SilentReporter
from incident_runner.report import write_reports
from incident_runner.safety import FlapGuard
from incident_runner.scenario import find_scenario
from incident_runner.signals import cancel_on_signals
from incident_runner.status import Status, exit_code
from incident_runner.store import open_store
from incident_runner.target import resolve_target
from incident_runner.timeutil import now_iso

LOG = logging.getLogger(__name__)

__all__ = ["IncidentResult", "RemediateRequest", "remediate"]


@dataclass
class IncidentResult:
    incident_id: str
    scenario: str
    status: str
    exit_code: ExitCode
    incident_dir: Path
    reports: dict[str, Path]
    journal: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id, "scenario": self.scenario, "status": self.status,
            "exit_code": int(self.exit_code), "dir": str(self.incident_dir),
            "reports": {k: str(v) for k, v in self.reports.items()},
            "resolved_by": self.journal.get("resolved_by"),
            "duration_s": self.journal.get("duration_s"),
            "reason": self.journal.get("reason", ""),
            "key_times": self.journal.get("key_times", {}),
            **({"hosts": self.journal["fleet"]["hosts"]} if self.journal.get("fleet") else {}),
            **({"plan": self.journal.get("plan"), "check_results": self.journal.get(
                "check_results")} if self.journal.get("check_mode") else {}),
        }


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- plan ------------------------------------------------------------------------------
def plan(incident: Incident) -> None:
    """Record the plan; under --check print it first."""
    s = incident.scenario
    guard = FlapGuard.for_scenario(s.flap_max, s.flap_window_minutes, incident.safety,
                                   incident.root, incident.store)
    flap = guard.check(incident.target.key)
    if flap.count:  # from the history: say it is a recurrence
        incident.record("recurrence", count=flap.count, ordinal=ordinal(flap.count + 1),
                        window_minutes=flap.window_minutes, target_key=flap.target_key)
    planned = build_plan(PlanInput(
        scenario=s, level=incident.level, ladder_name=incident.ladder_name,
        ladder=incident.ladder, inventory=incident.target.inventory,
        limit=incident.request.limit, extra_vars=incident.request.extra_vars,
        check=incident.request.check, flap=flap,
        budget=incident.budget, gate=incident.gate, diagnostics=s.diagnostics_enabled,
        target_key=incident.target.key,
        lock_keys=tuple(incident.target.lock_keys(s.lock)),
    ), incident.redactor)
    incident.record("plan", plan=planned)
    if incident.request.check:
        for line in plan_lines(planned):
            incident.reporter.phase("plan", incident.redactor.text(line))


# -- act: lock -------------------------------------------------------------------------
def take_lock(incident: Incident) -> Outcome | None:
    """Hold every lock key of the target before looking or acting; an outcome if it ends here."""
    if incident.request.check:  # a dry run changes nothing: it needs no lock
        return None
    timeout = incident.request.lock_timeout
    incident.lock = incident.store.lock(
        incident.target.lock_keys(incident.scenario.lock),
        holder={"incident_id": incident.incident_id, "scenario": incident.scenario.id},
        opened={**incident.opened_event(), "dir": incident.dir.name, "start": now_iso()})

    def waiting(key: str, holder: dict[str, Any]) -> None:
        reason = f"waiting up to {timeout:g}s for {describe_holder(holder)}"
        incident.record("lock", say=f"{key}: {reason}", phase="lock", decision="wait", step=key,
                        holder=holder, reason=reason)

    try:
        incident.lock.acquire(timeout, incident.cancel, waiting)
    except LockBusyError as exc:
        if exc.cancelled:
            return Outcome(Status.INTERRUPTED, "interrupted by signal")
        reason = f"{exc}; escalating instead of acting concurrently"
        incident.record("lock", phase="lock", decision="timeout", step=exc.key,
                        holder=exc.holder, waited_s=round(exc.waited, 3), reason=reason)
        return escalate(incident, reason, "lock")
    lock = incident.lock
    keys = ", ".join(lock.keys)
    waited = (f" after waiting {lock.waited:.1f}s for {describe_holder(lock.last_holder)}"
              if lock.contended else "")
    incident.record("lock", phase="lock", decision="acquired", step=keys,
                    waited_s=round(lock.waited, 3), reason=f"holding {keys}{waited}")
    # A run that waited looks first: the holder may have left the target healthy.
    # (Without checks there is nothing to look at: the trigger stands.)
    if lock.contended and incident.scenario.verify.checks and verify(incident, "after-lock-wait"):
        other = lock.last_holder.get("incident_id") or "another run"
        reason = f"healthy after {other} released the lock; nothing left to do"
        incident.recorder.decision("resolved", reason, trigger="lock")
        return Outcome(Status.RESOLVED, reason)
    return None


# -- act: look, then the flap guard ------------------------------------------------------
def confirm(incident: Incident) -> Outcome | None:
    """Evidence first; a healthy target is left alone (unless --force), an unreachable one
    is handed to a human."""
    s = incident.scenario
    if not s.confirm:
        incident.record("symptom", say=f"not checked: {s.confirm_reason}", label="symptom",
                        confirmed=None, skipped=True, reason=s.confirm_reason, checks=[])
        confirmed, stop = True, capture_diagnostics(incident)
    else:
        confirmed, stop = look(incident)
    if stop is not None:
        return escalate(incident, stop, "unreachable")
    if confirmed:
        return None
    if incident.request.force:
        incident.recorder.decision("force", "the target looks healthy; acting anyway (--force)",
                                   trigger="force")
        return None
    reason = "not reproduced: every symptom check passed; nothing changed"
    incident.recorder.decision("not_reproduced", reason, trigger="symptom")
    return Outcome(Status.NOT_REPRODUCED, reason)


def flap_guard(incident: Incident) -> Outcome | None:
    """Past the flap limit the runner does not act again (counted with the lock held)."""
    if incident.request.check:
        return None
    s = incident.scenario
    verdict = FlapGuard.for_scenario(s.flap_max, s.flap_window_minutes, incident.safety,
                                     incident.root, incident.store).check(incident.target.key)
    incident.record("flap_guard", **verdict.as_event())
    if verdict.allowed:
        return None
    return escalate(incident, verdict.reason, "flap_guard")


def act(incident: Incident) -> Outcome:
    """Lock -> look -> rails -> ladder; the first stage with an outcome ends the incident."""
    s = incident.scenario
    if incident.fleet:  # more than one host, each on its own (docs/fleet.md)
        return fleet.act(incident)
    for stage in (take_lock, confirm):
        if (outcome := stage(incident)) is not None:
            return outcome
    if s.no_local_fix:
        notify(incident, "initial")
        reason = s.escalation_reason or "no local fix for this scenario"
        return escalate(incident, reason, "no_local_fix")
    if (outcome := flap_guard(incident)) is not None:
        return outcome
    notify(incident, "initial")
    return climb(incident)


# -- record and report -------------------------------------------------------------------
def close(incident: Incident, outcome: Outcome) -> dict[str, Any]:
    try:
        incident.record("incident_closed", status=str(outcome.status),
                        resolved_by=outcome.resolved_by, reason=outcome.reason)
        incident.recorder.close()
        journal = build_journal(incident.dir)
        write_journal(incident.dir, journal)
        # Indexed before the lock goes: the next holder's flap guard counts this run.
        incident.store.record(journal)
    finally:
        if incident.lock is not None:
            incident.lock.close()
        for lock in incident.host_locks.values():
            lock.close()
    return journal


def remediate(request: RemediateRequest, reporter: Reporter | None = None,
              runner: PlaybookRunner | None = None) -> IncidentResult:
    """Open an incident for the scenario, act only on a confirmed symptom, verify, report."""
    reporter = reporter or SilentReporter()
    # catalog: bad input fails here, before any folder is opened
    config = load_config(request.config)
    scenario = find_scenario(request.scenario, (*config.scenario_paths, *request.scenario_paths))
    level = config.level(request.severity)
    if not request.inventory.exists():
        raise InputError("inventory not found", source=str(request.inventory), field="--inventory")
    # The inventory says which platform the hosts are (docker by default): its ladder runs.
    scenario = scenario.for_platform(platform_of(request.inventory.resolve(), scenario.hosts))
    target = resolve_target(request.inventory.resolve(), scenario, limit=request.limit,
                            extra_vars=request.extra_vars, drill=request.drill,
                            vault_password_file=request.vault_password_file)
    root = state_dir(request.state_dir)
    store = open_store(request.state_url, config, root)  # bad URL: 2, unreachable: 1
    incident = Incident(request, scenario, target, reporter, root=root, level=level,
                        safety=config.safety, store=store,
                        **({"runner": runner} if runner is not None else {}))
    outcome = Outcome(Status.FAILED, "runner error")
    with cancel_on_signals(incident.cancel):
        try:
            incident.record("incident_opened", say=f"{incident.incident_id} {scenario.id} "
                            f"({scenario.title})", label="open", **incident.opened_event())
            plan(incident)
            outcome = act(incident)
            if outcome.status == Status.ESCALATED:
                incident.record("escalated", say=outcome.reason, label="escalate",
                                reason=outcome.reason,
                                contacts=list(level.contacts) if level else [])
                notify(incident, "escalated", outcome.reason)
            elif outcome.status == Status.RESOLVED:
                notify(incident, "resolved", outcome.reason, outcome.resolved_by)
        except ExecutionError as exc:
            outcome = Outcome(Status.FAILED, str(exc))
        finally:
            journal = close(incident, outcome)
    reports = write_reports(incident.dir, journal)
    reporter.outcome("close", outcome.status in {Status.RESOLVED, Status.CHECKED,
                                                 Status.NOT_REPRODUCED},
                     f"{outcome.status}: {incident.redactor.text(outcome.reason)}")
    return IncidentResult(
        incident_id=incident.incident_id, scenario=scenario.id, status=str(outcome.status),
        exit_code=ExitCode.BAD_INPUT if outcome.bad_input else exit_code(outcome.status),
        incident_dir=incident.dir, reports=reports,
        journal=journal,
    )
