"""Run one incident: open -> diagnose -> mitigate(step k) -> verify -> resolve or escalate -> close.

``remediate`` is the single API the CLI, CI triggers and drills call. It
returns an ``IncidentResult``; it raises only for bad input.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from incident_runner import history
from incident_runner.errors import ExecutionError, ExitCode, InputError
from incident_runner.executor import (
    PlaybookRun,
    TaskResult,
    mark_unsafe,
    playbook_play,
    role_play,
    run_playbook,
)
from incident_runner.journal import build_journal, write_journal
from incident_runner.lock import (
    DEFAULT_LOCK_TIMEOUT,
    LockBusyError,
    TargetLock,
    describe_holder,
    lock_keys,
)
from incident_runner.paths import playbooks_dir, roles_dir, state_dir
from incident_runner.plan import PlanInput, build_plan, plan_lines
from incident_runner.redaction import Redactor
from incident_runner.report import message_templates, render_message, write_reports
from incident_runner.safety import ApprovalGate, Budget, FlapGuard, FlapVerdict, SafetySettings
from incident_runner.scenario import Scenario, Step, find_scenario
from incident_runner.secrets import vault_values
from incident_runner.severity import Level, load_config
from incident_runner.timeline import TIMELINE_FILE, Timeline

LOG = logging.getLogger(__name__)

# Failures by which a step refuses because only a human can decide (never guess):
# the runner escalates at once instead of climbing on.
ESCALATE_AT_ONCE = (re.compile(r"no good commit recorded for env \S+"),
                    re.compile(r"redis unreachable at \S+"))
# A step that found bad input (an unknown queue or workflow name) fails with this.
BAD_INPUT = re.compile(r"bad input: .*")


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


@dataclass
class RemediateRequest:
    scenario: str
    inventory: Path
    severity: str | None = None
    limit: str | None = None
    check: bool = False
    extra_vars: dict[str, Any] = field(default_factory=dict)
    assume_yes: bool = False
    state_dir: Path | None = None
    verbosity: int = 0
    drill: bool = False
    ci: dict[str, Any] = field(default_factory=dict)
    scenarios_dir: Path | None = None
    config: Path | None = None  # None: discover (see severity.find_config)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for the target lock
    timeout_seconds: float | None = None  # None: the config's safety.incident_timeout_minutes
    vault_password_file: Path | None = None


@dataclass
class IncidentResult:
    incident_id: str
    scenario: str
    status: str  # resolved | failed | escalated | checked
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
            **({"plan": self.journal.get("plan"), "check_results": self.journal.get(
                "check_results")} if self.journal.get("check_mode") else {}),
        }


def new_incident_dir(root: Path, scenario: str) -> tuple[str, Path]:
    """Create ``INC-YYYYMMDD-HHMMSS-<scenario>`` exclusively (never reuse a folder)."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("INC-%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        incident_id = stamp if n == 1 else f"{stamp}-{n}"
        path = root / f"{incident_id}-{scenario}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return incident_id, path
    raise ExecutionError(f"cannot allocate an incident folder under {root}")


def check_inventory(path: Path) -> Path:
    if not path.exists():
        raise InputError("inventory not found", source=str(path), field="--inventory")
    return path.resolve()


@contextmanager
def _cancel_on_signals(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT cancel the running playbook; the incident closes as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Incident:
    """State of one running incident; phases are methods, decisions go to the timeline."""

    def __init__(self, request: RemediateRequest, scenario: Scenario, reporter: Reporter,
                 level: Level | None = None, safety: SafetySettings | None = None) -> None:
        self.request = request
        self.scenario = scenario
        self.reporter = reporter
        self.inventory = check_inventory(request.inventory)
        self.root = state_dir(request.state_dir)
        self.safety = safety or SafetySettings()
        self.redactor = Redactor.from_environment(self.safety.secret_env)
        self.redactor.add_from_mapping(request.extra_vars)
        if request.vault_password_file is not None:  # a bad password file fails before opening
            for value in vault_values(self.inventory, request.vault_password_file):
                self.redactor.add(value)
        self.incident_id, self.dir = new_incident_dir(self.root, scenario.id)
        self.timeline = Timeline(self.dir / TIMELINE_FILE)
        timeout = request.timeout_seconds
        if timeout is None and self.safety.incident_timeout_minutes is not None:
            timeout = self.safety.incident_timeout_minutes * 60
        self.budget = Budget(timeout)
        self.gate = ApprovalGate(request.assume_yes, timeout=self.safety.approval_timeout_seconds)
        self.flap: FlapVerdict | None = None
        self.check_notes: list[str] = []
        self.would_change = 0
        self.cancel = threading.Event()
        self.runs = 0
        self.level = level
        self.severity = level.name if level else None
        # The level's `ladder` picks the scenario's ladder; ladder_for falls back to 'default'.
        self.ladder_name, self.ladder = scenario.ladder_for(
            (level.ladder or level.name) if level else request.severity)
        self.opened_at = time.monotonic()

    # -- plumbing ---------------------------------------------------------
    def _base_vars(self) -> dict[str, Any]:
        # Data, never templates (a state dir path may contain "{{").
        return {
            "incident_id": mark_unsafe(self.incident_id),
            "incident_dir": mark_unsafe(str(self.dir)),
            "incident_scenario": mark_unsafe(self.scenario.id),
            "incident_severity": mark_unsafe(self.severity or ""),
            "target_hosts": mark_unsafe(self.scenario.hosts),
        }

    def _run(self, phase: str, step: Step | None, name: str, play: list[dict[str, Any]],
             timeout: int | None = None, check: bool | None = None) -> PlaybookRun:
        self.runs += 1
        ident = f"{self.runs:02d}-{phase}-{name}"
        check_mode = self.request.check if check is None else check
        action = step.action if step else name
        timeout, by_budget = self.budget.cap(timeout)  # the incident's time budget caps steps
        self.timeline.append("step_started", phase=phase, step=name, action=action,
                             destructive=bool(step and step.destructive), check_mode=check_mode,
                             timeout_s=timeout)
        try:
            run = run_playbook(
                ident=ident, play=play, inventory=self.inventory, timeline=self.timeline,
                artifacts_dir=self.dir / "artifacts", context={"phase": phase, "step": name},
                limit=self.request.limit, data_vars=self.request.extra_vars, check=check_mode,
                timeout=timeout, verbosity=self.request.verbosity, redactor=self.redactor,
                cancel=self.cancel, on_task=self.reporter.task,
                vault_password_file=self.request.vault_password_file,
            )
        except ExecutionError as exc:
            self.timeline.append("step_finished", phase=phase, step=name, status="error",
                                 rc=None, summary=self.redactor.text(str(exc)))
            raise
        summary = "; ".join(run.failures[:3]) if not run.ok else f"{run.changed} change(s)"
        if run.status == "timeout":
            limit = "incident time budget" if by_budget else "step timeout"
            summary = (f"timed out after {timeout}s ({limit}); the playbook and every process "
                       "it started were killed")
        self.timeline.append("step_finished", phase=phase, step=name, status=run.status,
                             rc=run.rc, changed=run.changed, duration=round(run.duration, 3),
                             summary=summary)
        return run

    def _play_for(self, step: Step) -> list[dict[str, Any]]:
        play_vars = {**self._base_vars(), **step.vars}
        if step.playbook:
            path = playbooks_dir() / step.playbook
            if not path.is_file():
                raise InputError(f"playbook not found: {step.playbook}",
                                 source=str(self.scenario.source), field=f"step {step.name}")
            return playbook_play(path, play_vars)
        if not step.role or not (roles_dir() / step.role).is_dir():
            raise InputError(f"role not found: {step.role}",
                             source=str(self.scenario.source), field=f"step {step.name}")
        return role_play(f"{self.scenario.id}: {step.name}", self.scenario.hosts, step.role,
                         play_vars)

    # -- phases -----------------------------------------------------------
    def open(self) -> None:
        s = self.scenario
        self.timeline.append(
            "incident_opened", incident_id=self.incident_id, scenario=s.id, title=s.title,
            description=s.description, severity=self.severity,
            severity_info=self.level.info() if self.level else {}, ladder=self.ladder_name,
            steps=[st.name for st in self.ladder], check_mode=self.request.check,
            drill=self.request.drill, inventory=str(self.inventory), hosts=s.hosts,
            limit=self.request.limit, pid=os.getpid(), runner_host=socket.gethostname(),
            ci=self.request.ci, report_hints=s.report, communication=s.communication,
            target_key=s.lock_key,
        )
        self.reporter.phase("open", f"{self.incident_id} {s.id} ({s.title})")
        self.plan()

    def diagnose(self) -> None:
        if not self.scenario.diagnostics_enabled:
            return
        if not (roles_dir() / "capture_diagnostics").is_dir():
            self.timeline.append("skipped", phase="diagnose",
                                 reason="capture_diagnostics role not installed")
            return
        self.reporter.phase("diagnose", "capturing diagnostics before any change")
        diag_vars = {**self._base_vars(), **self.scenario.diagnostics_vars,
                     "capture_diagnostics_dest": str(self.dir / "diagnostics")}
        play = role_play(f"{self.scenario.id}: diagnostics", self.scenario.hosts,
                         "capture_diagnostics", diag_vars)
        # Diagnostics only read the system, so they run for real under --check too.
        run = self._run("diagnose", None, "capture-diagnostics", play, check=False)
        self.reporter.outcome("diagnose", run.ok, "" if run.ok else "; ".join(run.failures[:2]))

    def verify(self, label: str) -> bool:
        # A check's url is a template (e.g. {{ stack_url }}); its name is data.
        checks = [{**c.as_vars(), "name": mark_unsafe(c.name)} for c in self.scenario.verify.checks]
        play_vars = {**self._base_vars(), **self.scenario.verify.vars,
                     "health_check_checks": checks}
        play: list[dict[str, Any]] = [{
            "name": f"{self.scenario.id}: verify", "hosts": "localhost",
            "connection": "local", "gather_facts": False, "vars": play_vars,
            "roles": [{"role": "health_check"}],
        }]
        if self.scenario.verify.playbook:
            play += playbook_play(playbooks_dir() / self.scenario.verify.playbook, play_vars)
        run = self._run("verify", None, label, play, check=False)
        healthy = run.ok
        self.timeline.append("verify_result", step=label, healthy=healthy,
                             details=[t.message for t in run.tasks if t.message][-5:])
        self.reporter.outcome("verify", healthy, "; ".join(run.failures[:2]))
        return healthy

    def mitigate(self) -> tuple[str, str | None, str]:
        """Climb the ladder. Returns (status, resolved_by, reason)."""
        if self.scenario.no_local_fix:
            reason = self.scenario.escalation_reason or "no local fix for this scenario"
            self.timeline.append("decision", decision="escalate", reason=reason)
            return "escalated", None, reason
        stop = self._flap_guard()  # a safety rail's reason to escalate instead of acting
        window_passed = None
        for k, step in enumerate(self.ladder if stop is None else (), start=1):
            if self.cancel.is_set():
                return "interrupted", None, "interrupted by signal"
            if k > 1 and not self.request.check and (window_passed := self._window_passed()):
                break
            if (stop := self._before_step(step)) is not None:
                break
            self.reporter.phase(f"mitigate {k}/{len(self.ladder)}", f"{step.name} ({step.action})")
            run = self._run("mitigate", step, step.name, self._play_for(step), timeout=step.timeout)
            self.reporter.outcome(step.name, run.ok, "; ".join(run.failures[:2]))
            if run.status in {"canceled"} or self.cancel.is_set():
                return "interrupted", None, "interrupted by signal"
            if self.request.check:
                self._note_check(step, run)
                continue
            if not run.ok:
                stop = (self._out_of_time(step.name) if self.budget.expired
                        else self._refused(step, run))
                if stop is not None:
                    break
                self.timeline.append("decision", decision="next_step", after=step.name,
                                     reason=f"step {run.status}")
                continue
            if self.verify(f"after-{step.name}") and self._stable(step.name):
                return self._verified(step, run)
            self.timeline.append("decision", decision="next_step", after=step.name,
                                 reason="verification failed")
        if self.request.check and stop is None:
            return "checked", None, self._check_reason()
        if stop is None:
            stop = window_passed or (f"ladder '{self.ladder_name}' exhausted "
                                     f"({len(self.ladder)} steps) without a healthy verification")
            self.timeline.append(
                "decision", decision="escalate", reason=stop,
                trigger="escalation_window" if window_passed else "ladder_exhausted")
        return "escalated", None, stop

    # -- safety rails (incident_runner/safety.py, docs/safety.md) -------------
    def plan(self) -> None:
        """Record the plan in the timeline; under --check print it first."""
        s = self.scenario
        self.flap = FlapGuard.for_scenario(s.flap_max, s.flap_window_minutes, self.safety,
                                           self.root).check(s.lock_key)
        plan = build_plan(PlanInput(
            scenario=s, level=self.level, ladder_name=self.ladder_name, ladder=self.ladder,
            inventory=self.inventory, limit=self.request.limit,
            extra_vars=self.request.extra_vars, check=self.request.check, flap=self.flap,
            budget=self.budget, gate=self.gate, diagnostics=s.diagnostics_enabled,
        ), self.redactor)
        self.timeline.append("plan", plan=plan)
        if self.request.check:
            for line in plan_lines(plan):
                self.reporter.phase("plan", self.redactor.text(line))

    def _flap_guard(self) -> str | None:
        """Past the flap limit the runner does not act: the reason to escalate, else None."""
        if self.flap is None or self.flap.allowed or self.request.check:
            return None
        reason = self.flap.reason
        self.timeline.append("flap_guard", **self.flap.as_event())
        self.timeline.append("decision", decision="escalate", reason=reason,
                             trigger="flap_guard")
        self.reporter.phase("flap guard", reason)
        return reason

    def _before_step(self, step: Step) -> str | None:
        """Time budget and approval before a step; the reason to escalate instead, else None."""
        if self.budget.expired:
            return self._out_of_time(step.name)
        if not step.destructive or self.request.check:
            return None
        approval = self.gate.approve(step.name, step.action, step.destructive,
                                     self.budget.left())
        self.timeline.append("approval", **approval.as_event(step.name))
        self.reporter.phase("approval", approval.reason)
        if approval.approved:
            return None
        reason = f"{approval.reason}; escalating to a human"
        self.timeline.append("decision", decision="escalate", after=step.name, reason=reason,
                             trigger="approval")
        return reason

    def _out_of_time(self, where: str) -> str:
        reason = (f"incident timeout: the time budget of {self.budget.seconds or 0:g}s ran out "
                  f"at '{where}'; escalating to a human")
        self.timeline.append("decision", decision="escalate", after=where, reason=reason,
                             trigger="incident_timeout")
        return reason

    def _note_check(self, step: Step, run: PlaybookRun) -> None:
        """What a check-mode run of one step showed; unknown impact is never 'safe'."""
        notes = [f"{step.name}: {t.task} on {t.host}: impact unknown (cannot be checked)"
                 for t in run.impact_unknown]
        notes += [f"{step.name}: {t.task} on {t.host} RAN FOR REAL (check_mode: false) and "
                  "changed something" for t in run.ran_for_real]
        if not run.ok:
            notes.append(f"{step.name}: check run {run.status}; the tasks after the failure "
                         "were not checked: impact unknown")
        self.check_notes += notes
        self.would_change += len(run.would_change)
        self.timeline.append("check_result", step=step.name, status=run.status,
                             would_change=[f"{t.task} on {t.host}" for t in run.would_change],
                             impact_unknown=[f"{t.task} on {t.host}" for t in run.impact_unknown],
                             ran_for_real=[f"{t.task} on {t.host}" for t in run.ran_for_real],
                             ok=run.ok)
        for note in notes:
            self.reporter.phase("impact", note)

    def _check_reason(self) -> str:
        forced = any("RAN FOR REAL" in n for n in self.check_notes)
        head = ("check mode: a task with check_mode: false changed something"
                if forced else "check mode: nothing changed")
        head += f"; {self.would_change} task(s) would change"
        if not self.check_notes:
            return f"{head}; every step's tasks were checked"
        return f"{head}; impact unknown for part of the plan: " + "; ".join(self.check_notes[:5])

    # -- target lock (incident_runner/lock.py, docs/ci.md) ---------------------
    lock: TargetLock | None = None

    def take_lock(self) -> tuple[str, str | None, str] | None:
        """Hold the target's lock before anything looks or acts; an outcome if it ends here.

        A run that had to wait looks first: if the run that held the lock left the
        target healthy, this one resolves without acting again.
        """
        if self.request.check:  # a dry run changes nothing: it needs no lock
            return None
        timeout = self.request.lock_timeout
        self.lock = TargetLock(self.root, lock_keys(self.scenario), holder={
            "incident_id": self.incident_id, "scenario": self.scenario.id})

        def waiting(key: str, holder: dict[str, Any]) -> None:
            reason = f"waiting up to {timeout:g}s for {describe_holder(holder)}"
            self.timeline.append("lock", phase="lock", decision="wait", step=key, holder=holder,
                                 reason=reason)
            self.reporter.phase("lock", f"{key}: {reason}")

        try:
            self.lock.acquire(timeout, self.cancel, waiting)
        except LockBusyError as exc:
            if exc.cancelled:
                return "interrupted", None, "interrupted by signal"
            reason = f"{exc}; escalating instead of acting concurrently"
            self.timeline.append("lock", phase="lock", decision="timeout", step=exc.key,
                                 holder=exc.holder, waited_s=round(exc.waited, 3), reason=reason)
            self.timeline.append("decision", decision="escalate", reason=reason, trigger="lock")
            return "escalated", None, reason
        keys = ", ".join(self.lock.keys)
        waited = (f" after waiting {self.lock.waited:.1f}s for "
                  f"{describe_holder(self.lock.last_holder)}" if self.lock.contended else "")
        self.timeline.append("lock", phase="lock", decision="acquired", step=keys,
                             waited_s=round(self.lock.waited, 3), reason=f"holding {keys}{waited}")
        if not self.lock.contended or not self.verify("after-lock-wait"):
            return None
        other = self.lock.last_holder.get("incident_id") or "another run"
        reason = f"healthy after {other} released the lock; nothing left to do"
        self.timeline.append("decision", decision="resolved", reason=reason, trigger="lock")
        return "resolved", None, reason

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.close()

    def _verified(self, step: Step, run: PlaybookRun) -> tuple[str, str | None, str]:
        """Resolved; or, for containment, escalated with what the step did (its last message)."""
        if not self.scenario.escalate_after_containment:
            self.timeline.append("decision", decision="resolved", after=step.name,
                                 reason="verification passed")
            return "resolved", step.name, f"verified healthy after {step.name}"
        did = next((t.message for t in reversed(run.tasks) if t.message), "")
        reason = (f"contained by {step.name} (verified): {did}; "
                  f"{self.scenario.escalation_reason or 'a human must take over'}")
        self.timeline.append("decision", decision="escalate", after=step.name, reason=reason,
                             trigger="contained")
        return "escalated", None, reason

    def _refused(self, step: Step, run: PlaybookRun) -> str | None:
        """A step that refused because a human must decide: the reason to escalate now."""
        bad = next((m for f in run.failures if (m := BAD_INPUT.search(f))), None)
        if bad is not None:  # e.g. an unknown queue or workflow name: exit 2, not a guess
            raise InputError(bad.group(0), source=str(self.scenario.source),
                             field=f"step {step.name}")
        refusal = next((f for f in run.failures if any(p.search(f) for p in ESCALATE_AT_ONCE)),
                       None)
        if refusal is None:
            return None
        made = "no change made" if run.changed == 0 else f"{run.changed} change(s) made"
        reason = (f"step {step.name} refused: {refusal.split(': ', 1)[-1]} ({made}); "
                  "a human must decide")
        self.timeline.append("decision", decision="escalate", after=step.name, reason=reason,
                             trigger="refused")
        return reason

    def _window_passed(self) -> str | None:
        """Why to escalate now: the severity's escalation window has passed (else None)."""
        level = self.level
        if level is None or level.escalation_window_minutes is None:
            return None
        elapsed = time.monotonic() - self.opened_at
        if elapsed < level.escalation_window_minutes * 60:
            return None
        return (f"escalation window for {level.name} ({level.escalation_window_minutes:g} min) "
                f"passed after {elapsed / 60:.1f} min without a verified fix; escalating to "
                f"{', '.join(level.contacts) or 'a human'}")

    def _stable(self, after: str) -> bool:
        window = self.scenario.verify.stabilisation_seconds
        if window <= 0:
            return True
        self.reporter.phase("stabilise", f"watching for {window:g}s")
        deadline = time.monotonic() + window
        while time.monotonic() < deadline and not self.cancel.is_set():
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return self.verify(f"stable-after-{after}")

    def escalate(self, reason: str) -> None:
        self.reporter.phase("escalate", reason)
        self.timeline.append("escalated", reason=reason,
                             contacts=list(self.level.contacts) if self.level else [])
        self.notify("escalated", reason)

    def notify(self, kind: str, reason: str = "") -> None:
        """Send the scenario's `kind` message to the webhook, when one is configured."""
        url = os.environ.get(WEBHOOK_ENV, "")
        if not self.scenario.notify or self.request.check:
            return
        if not url:
            self.timeline.append("skipped", phase="notify", step=f"notify-{kind}",
                                 reason=f"no webhook configured (${WEBHOOK_ENV})")
            return
        self.redactor.add(url)  # webhook URLs carry their token
        # The incident is still open: say what is decided now, not "not closed".
        journal = {**build_journal(self.dir), "reason": reason,
                   "status": {"initial": "open", "resolved": "resolved"}.get(kind, kind)}
        text = self.redactor.text(render_message(message_templates(journal)[kind], journal))
        play_vars = {  # the message and URL are data: a title with "{{ }}" must not run
            **self._base_vars(), "notify_url": mark_unsafe(url),
            "notify_message": mark_unsafe(text),
            "notify_format": os.environ.get(WEBHOOK_FORMAT_ENV, "slack"),
            "notify_incident_id": self.incident_id, "notify_scenario": self.scenario.id,
            "notify_severity": self.severity or "", "notify_phase": kind,
        }
        play = role_play(f"{self.scenario.id}: notify {kind}", "localhost", "notify", play_vars)
        play[0]["connection"] = "local"
        run = self._run("notify", None, f"notify-{kind}", play, check=False)
        self.reporter.outcome(f"notify {kind}", run.ok, "; ".join(run.failures[:1]))

    def close(self, status: str, resolved_by: str | None, reason: str) -> dict[str, Any]:
        self.timeline.append("incident_closed", status=status, resolved_by=resolved_by,
                             reason=self.redactor.text(reason))
        self.timeline.close()
        journal = build_journal(self.dir)
        write_journal(self.dir, journal)
        return journal


WEBHOOK_ENV = "INCIDENT_RUNNER_WEBHOOK_URL"
WEBHOOK_FORMAT_ENV = "INCIDENT_RUNNER_WEBHOOK_FORMAT"

EXIT_FOR_STATUS = {
    "resolved": ExitCode.RESOLVED,
    "checked": ExitCode.RESOLVED,
    "escalated": ExitCode.ESCALATED,
    "failed": ExitCode.FAILED,
    "interrupted": ExitCode.FAILED,
}


def remediate(request: RemediateRequest, reporter: Reporter | None = None) -> IncidentResult:
    """Open an incident for the scenario, climb its ladder, verify, report."""
    reporter = reporter or SilentReporter()
    scenario = find_scenario(request.scenario, request.scenarios_dir)
    config = load_config(request.config)
    level = config.level(request.severity)  # bad input fails before opening
    incident = Incident(request, scenario, reporter, level=level, safety=config.safety)
    status, resolved_by, reason = "failed", None, "runner error"
    with _cancel_on_signals(incident.cancel):
        try:
            incident.open()
            incident.notify("initial")
            outcome = incident.take_lock()
            if outcome is None:
                incident.diagnose()
                outcome = incident.mitigate()
            status, resolved_by, reason = outcome
            if status == "escalated":
                incident.escalate(reason)
            elif status == "resolved":
                incident.notify("resolved", reason)
        except ExecutionError as exc:
            status, reason = "failed", str(exc)
        finally:
            try:
                journal = incident.close(status, resolved_by, reason)
            finally:
                incident.release_lock()
    history.record(journal, incident.root)
    reports = write_reports(incident.dir, journal)
    reporter.outcome("close", status in {"resolved", "checked"}, f"{status}: {reason}")
    return IncidentResult(
        incident_id=incident.incident_id, scenario=scenario.id, status=status,
        exit_code=EXIT_FOR_STATUS.get(status, ExitCode.FAILED), incident_dir=incident.dir,
        reports=reports, journal=journal,
    )
