"""Act, verify, decide: climb the scenario's ladder until a step verifies.

Each rung: the rails (time budget, approval) -> run the step -> verify ->
decide (resolved, next step, or escalate). Every decision is recorded once,
with its reason, through the incident's recorder.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from incident_runner.evidence import check_health
from incident_runner.executor import PlaybookRun, TaskResult
from incident_runner.health import CheckResult
from incident_runner.incident import Incident
from incident_runner.paths import playbooks_dir
from incident_runner.plays import playbook_play
from incident_runner.scenario import Step
from incident_runner.status import Status
from incident_runner.timeutil import now_iso

# Failures by which a step refuses because only a human can decide (never guess):
# the runner escalates at once instead of climbing on.
ESCALATE_AT_ONCE = (re.compile(r"no good commit recorded for env \S+"),
                    re.compile(r"redis unreachable at \S+"))
# A step that found bad input (an unknown queue or workflow name) fails with this: exit 2.
BAD_INPUT = re.compile(r"bad input: .*")


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    resolved_by: str | None = None
    bad_input: bool = False  # a step refused a name it does not know: exit 2, not a guess


def escalate(incident: Incident, reason: str, trigger: str, after: str | None = None) -> Outcome:
    incident.recorder.decision("escalate", reason, trigger=trigger, after=after)
    return Outcome(Status.ESCALATED, reason)


class EarlyChecks:
    """A step's verification checks, started the moment its plays have ended (every task
    ok) instead of after ``ansible-playbook`` has exited: they overlap its ~0.3 s exit.
    They only read (HTTP), and are used only if the step's run then succeeded."""

    def __init__(self, incident: Incident) -> None:
        self.incident = incident
        self.started: str | None = None
        self.result: tuple[bool, list[CheckResult]] | None = None
        self._thread: threading.Thread | None = None

    def start(self, tasks: list[TaskResult]) -> None:
        if not tasks or any(t.status != "ok" for t in tasks):
            return
        self.started = now_iso()
        # A daemon: a run that then fails leaves it to finish unread, never waited for.
        self._thread = threading.Thread(target=self._check, name="early-checks", daemon=True)
        self._thread.start()

    def _check(self) -> None:
        self.result = check_health(self.incident)

    def take(self) -> tuple[str, tuple[bool, list[CheckResult]]] | None:
        """(when they started, their result), or None if they never started."""
        if self._thread is None or self.started is None:
            return None
        self._thread.join()
        return (self.started, self.result) if self.result is not None else None


def verify(incident: Incident, label: str, playbook: bool = True,
           early: EarlyChecks | None = None) -> bool:
    """HTTP checks from the runner (or the ones ``early`` already made), then the scenario's
    verify playbook if it has one (and PLAYBOOK: a step with a stabilisation window runs
    it once, at the window's end)."""
    s = incident.scenario
    taken = early.take() if early is not None else None
    if taken is not None:
        started, (healthy, results) = taken
    else:
        started = now_iso()
        healthy, results = check_health(incident)
    details = [r.message for r in results]
    if healthy and playbook and s.verify.playbook:
        play_vars = {**incident.base_vars(), **s.verify.vars}
        run = incident.run("verify", None, label,
                           playbook_play(playbooks_dir() / s.verify.playbook, play_vars),
                           check=False)
        healthy = run.ok
        details += [t.message for t in run.tasks if t.message][-3:]
    incident.record("verify_result", say="; ".join(details[:2]), label="verify", ok=healthy,
                    step=label, healthy=healthy, details=details[-5:],
                    checks=[r.as_event() for r in results], started=started)
    return healthy


def watch_window(incident: Incident) -> None:
    """Wait out the scenario's stabilisation window (a cancel cuts it short)."""
    window = incident.scenario.verify.stabilisation_seconds
    incident.reporter.phase("stabilise", f"watching for {window:g}s")
    deadline = time.monotonic() + window
    while time.monotonic() < deadline and not incident.cancel.is_set():
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _stable(incident: Incident, after: str) -> bool:
    if incident.scenario.verify.stabilisation_seconds <= 0:
        return True
    watch_window(incident)
    return verify(incident, f"stable-after-{after}")


def _verified(incident: Incident, step: Step, run: PlaybookRun) -> Outcome:
    """Resolved; or, for a containment (a paused queue, a disabled workflow), escalated with
    what the step did: the data check is a human's."""
    if not incident.scenario.escalate_after_containment:
        incident.recorder.decision("resolved", "verification passed", after=step.name)
        return Outcome(Status.RESOLVED, f"verified healthy after {step.name}", step.name)
    did = next((t.message for t in reversed(run.tasks) if t.message), "")
    reason = (f"contained by {step.name} (verified): {did}; "
              f"{incident.scenario.escalation_reason or 'a human must take over'}")
    return escalate(incident, reason, "contained", step.name)


def _before_step(incident: Incident, step: Step) -> Outcome | None:
    """Time budget and approval before a step; an escalation instead, else None."""
    if incident.budget.expired:
        return _out_of_time(incident, step.name)
    if not step.destructive or incident.request.check:
        return None
    approval = incident.gate.approve(step.name, step.action, step.destructive,
                                     incident.budget.left())
    incident.record("approval", say=approval.reason, **approval.as_event(step.name))
    if approval.approved:
        return None
    return escalate(incident, f"{approval.reason}; escalating to a human", "approval", step.name)


def _out_of_time(incident: Incident, where: str) -> Outcome:
    reason = (f"incident timeout: the time budget of {incident.budget.seconds or 0:g}s ran out "
              f"at '{where}'; escalating to a human")
    return escalate(incident, reason, "incident_timeout", where)


def _window_passed(incident: Incident) -> str | None:
    """Why to escalate now: the severity's escalation window has passed (else None)."""
    level = incident.level
    if level is None or level.escalation_window_minutes is None:
        return None
    elapsed = time.monotonic() - incident.opened_at
    if elapsed < level.escalation_window_minutes * 60:
        return None
    return (f"escalation window for {level.name} ({level.escalation_window_minutes:g} min) "
            f"passed after {elapsed / 60:.1f} min without a verified fix; escalating to "
            f"{', '.join(level.contacts) or 'a human'}")


def _refused(incident: Incident, step: Step, run: PlaybookRun) -> Outcome | None:
    """A step that cannot go on without a human: unreachable hosts, or a refusal."""
    bad = next((m.group(0) for f in run.failures if (m := BAD_INPUT.search(f))), None)
    if bad is not None:  # e.g. an unknown queue or workflow name
        incident.recorder.decision("stop", f"{bad} (step {step.name}); nothing else was run",
                                   trigger="bad_input", after=step.name)
        return Outcome(Status.FAILED, f"{bad} (step {step.name})", bad_input=True)
    unreachable = sorted({t.host for t in run.tasks if t.status == "unreachable"})
    if unreachable:
        reason = (f"unreachable: {', '.join(unreachable)} during {step.name} "
                  f"({run.changed} change(s) made); a human must look at the host")
        return escalate(incident, reason, "unreachable", step.name)
    refusal = next((f for f in run.failures if any(p.search(f) for p in ESCALATE_AT_ONCE)),
                   None)
    if refusal is None:
        return None
    made = "no change made" if run.changed == 0 else f"{run.changed} change(s) made"
    reason = (f"step {step.name} refused: {refusal.split(': ', 1)[-1]} ({made}); "
              "a human must decide")
    return escalate(incident, reason, "refused", step.name)


def _note_check(incident: Incident, step: Step, run: PlaybookRun, notes: list[str]) -> int:
    """What a check-mode run of one step showed; unknown impact is never 'safe'."""
    new = [f"{step.name}: {t.task} on {t.host}: impact unknown (cannot be checked)"
           for t in run.impact_unknown]
    new += [f"{step.name}: {t.task} on {t.host} RAN FOR REAL (check_mode: false) and "
            "changed something" for t in run.ran_for_real]
    if not run.ok:
        new.append(f"{step.name}: check run {run.status}; the tasks after the failure "
                   "were not checked: impact unknown")
    notes += new
    incident.record("check_result", step=step.name, status=run.status,
                    would_change=[f"{t.task} on {t.host}" for t in run.would_change],
                    impact_unknown=[f"{t.task} on {t.host}" for t in run.impact_unknown],
                    ran_for_real=[f"{t.task} on {t.host}" for t in run.ran_for_real],
                    ok=run.ok)
    for note in new:
        incident.reporter.phase("impact", note)
    return len(run.would_change)


def _check_reason(notes: list[str], would_change: int) -> str:
    forced = any("RAN FOR REAL" in n for n in notes)
    head = ("check mode: a task with check_mode: false changed something"
            if forced else "check mode: nothing changed")
    head += f"; {would_change} task(s) would change"
    if not notes:
        return f"{head}; every step's tasks were checked"
    return f"{head}; impact unknown for part of the plan: " + "; ".join(notes[:5])


def climb(incident: Incident) -> Outcome:  # noqa: PLR0911 (each rail ends the climb its own way)
    """Run the ladder; the first step that verifies healthy resolves the incident."""
    ladder, check = incident.ladder, incident.request.check
    notes: list[str] = []
    would_change = 0
    for k, step in enumerate(ladder, start=1):
        if incident.cancel.is_set():
            return Outcome(Status.INTERRUPTED, "interrupted by signal")
        if k > 1 and not check and (passed := _window_passed(incident)):
            return escalate(incident, passed, "escalation_window")
        if (stop := _before_step(incident, step)) is not None:
            return stop
        incident.reporter.phase(f"mitigate {k}/{len(ladder)}", f"{step.name} ({step.action})")
        early = None if check else EarlyChecks(incident)
        run = incident.run("mitigate", step, step.name, incident.play_for(step),
                           timeout=step.timeout, on_done=early.start if early else None)
        incident.reporter.outcome(step.name, run.ok, "; ".join(run.failures[:2]))
        if run.status == "canceled" or incident.cancel.is_set():
            return Outcome(Status.INTERRUPTED, "interrupted by signal")
        if check:
            would_change += _note_check(incident, step, run, notes)
            continue
        if not run.ok:
            if incident.budget.expired:
                return _out_of_time(incident, step.name)
            if (stop := _refused(incident, step, run)) is not None:
                return stop
            incident.recorder.decision("next_step", f"step {run.status}", after=step.name)
            continue
        # The verify playbook (an Ansible run) only once: at the end of the window, if any.
        at_once = incident.scenario.verify.stabilisation_seconds <= 0
        if (verify(incident, f"after-{step.name}", at_once, early)
                and _stable(incident, step.name)):
            return _verified(incident, step, run)
        incident.recorder.decision("next_step", "verification failed", after=step.name)
    if check:
        return Outcome(Status.CHECKED, _check_reason(notes, would_change))
    reason = (f"ladder '{incident.ladder_name}' exhausted ({len(ladder)} steps) without a "
              "healthy verification")
    return escalate(incident, reason, "ladder_exhausted")
