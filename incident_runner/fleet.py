"""Fleet mode: one incident on a group of hosts, each host on its own (docs/fleet.md).

A scenario with a ``fleet:`` block, run on more than one host, goes through
the act stage per host instead of as one target:

- lock: each host's own lock keys (host + service); a host another run holds
  past ``--lock-timeout`` is reported ``locked``, the others go on;
- look: the fleet checks run from the runner for every host at once (each URL
  rendered with that host's variables); only hosts showing the symptom are
  acted on; diagnostics run once, limited to them; a host that cannot be
  reached is reported ``unreachable`` and left alone;
- flap guard per host (``Target.host_key``);
- the ladder: each step runs once, in one Ansible run limited (``--limit``) to
  the hosts still failing, with forks sized to them; each host is verified on
  its own; the next step runs only for the hosts still failing. One host's
  failure or unreachability never stops the others;
- rolling (``fleet.serial`` / ``--serial``): the affected hosts in batches; a
  batch that leaves a host unresolved stops the rollout (the rest are
  ``not-acted``).

Every host ends with one ``host_outcome`` event; the journal folds them into
``fleet.hosts`` (reports, JUnit, ``--json``). Overall: any host escalated,
unreachable, locked, flap-guarded or not acted on -> escalated (exit 3); else
resolved when a host was fixed (exit 0), else not-reproduced (exit 0).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from incident_runner.executor import PlaybookRun
from incident_runner.health import CheckResult, run_check
from incident_runner.incident import Incident
from incident_runner.ladder import (
    BAD_INPUT,
    ESCALATE_AT_ONCE,
    Outcome,
    _before_step,
    _note_check,
    _window_passed,
    watch_window,
)
from incident_runner.layout import DIAGNOSTICS_DIR
from incident_runner.lock import LockBusyError, describe_holder
from incident_runner.notify import notify
from incident_runner.paths import playbooks_dir
from incident_runner.plays import mark_unsafe, playbook_play, role_play
from incident_runner.safety import FlapGuard
from incident_runner.scenario import Step
from incident_runner.status import Status
from incident_runner.store import HeldLock
from incident_runner.timeutil import now_iso

LOG = logging.getLogger(__name__)

DEFAULT_MAX_FORKS = 50
CHECK_THREADS = 32  # HTTP checks from the runner at once (each mostly waits on the network)

# Host outcomes; every one but these two escalates the incident.
RESOLVED, NOT_REPRODUCED, CHECKED = "resolved", "not-reproduced", "checked"
ESCALATED, UNREACHABLE, LOCKED, FLAP, NOT_ACTED = (
    "escalated", "unreachable", "locked", "flap-guard", "not-acted")
OK_HOST = frozenset({RESOLVED, NOT_REPRODUCED, CHECKED})


@dataclass
class HostState:
    host: str
    symptom: str = "not checked"  # seen | absent | not checked | forced
    symptom_detail: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None
    reason: str = ""
    resolved_by: str | None = None
    recovered_s: float | None = None
    batch: int | None = None

    def end(self, outcome: str, reason: str) -> None:
        if self.outcome is None:
            self.outcome, self.reason = outcome, reason

    def as_event(self) -> dict[str, Any]:
        return {"host": self.host, "symptom": self.symptom, "symptom_detail": self.symptom_detail,
                "steps": self.steps, "outcome": self.outcome or NOT_ACTED,
                "reason": self.reason, "resolved_by": self.resolved_by,
                "time_to_recover_s": self.recovered_s, "batch": self.batch}


def forks_for(incident: Incident, hosts: int) -> int:
    fleet = incident.scenario.fleet
    cap = incident.request.forks or (fleet.forks if fleet else None) or DEFAULT_MAX_FORKS
    return max(1, min(hosts, cap))


# -- checks ------------------------------------------------------------------------------
def _host_checks(incident: Incident, hosts: list[str], *, confirm: bool
                 ) -> dict[str, list[CheckResult]]:
    """The fleet checks of every host at once, each rendered with its host's variables."""
    fleet = incident.scenario.fleet
    assert fleet is not None  # noqa: S101 (fleet mode only)
    jobs = [(h, c, str(incident.target.template_for(h, c.url))) for h in hosts
            for c in fleet.checks]
    out: dict[str, list[CheckResult]] = {h: [] for h in hosts}
    if not jobs:
        return out
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, len(jobs))) as pool:
        results = pool.map(lambda j: run_check(j[1], j[2], confirm=confirm), jobs)
        for (host, _, _), result in zip(jobs, results, strict=True):
            out[host].append(result)
    return out


def _verify(incident: Incident, states: dict[str, HostState], hosts: list[str],
            label: str, playbook: bool = True) -> set[str]:
    """Hosts verified healthy: their checks from the runner, then (PLAYBOOK) the scenario's
    verify playbook once, limited to them."""
    s = incident.scenario
    started = now_iso()
    results = _host_checks(incident, hosts, confirm=False)
    healthy = {h for h, rs in results.items() if all(r.healthy for r in rs)}
    details = {h: "; ".join(r.message for r in rs) for h, rs in results.items()}
    if healthy and playbook and s.verify.playbook:
        run = incident.run("verify", None, label,
                           playbook_play(playbooks_dir() / s.verify.playbook,
                                         {**incident.base_vars(), **s.verify.vars}),
                           check=False, hosts=sorted(healthy), forks=forks_for(incident,
                                                                              len(healthy)))
        bad = {t.host for t in run.tasks if t.status in {"failed", "unreachable"}}
        if not run.ok and not bad:  # the run died (timeout, error): nothing verified
            bad = set(healthy)
        for host in bad & healthy:
            details[host] += "; " + next((t.message for t in run.tasks if t.host == host
                                          and t.status != "ok"), f"verify {run.status}")
        healthy -= bad
    for host in hosts:
        for step in reversed(states[host].steps):
            step["verified"] = host in healthy
            break
    incident.record("verify_result", say=f"{len(healthy)} of {len(hosts)} host(s) healthy",
                    label="verify", ok=len(healthy) == len(hosts), step=label,
                    healthy=len(healthy) == len(hosts), started=started,
                    details=[f"{h}: {'healthy' if h in healthy else 'unhealthy'}: {details[h]}"
                             for h in hosts][:20],
                    checks=[{**r.as_event(), "host": h} for h in hosts for r in results[h]],
                    hosts={h: h in healthy for h in hosts})
    return healthy


# -- lock, look, flap guard ------------------------------------------------------------
def _lock(incident: Incident, states: dict[str, HostState]) -> Outcome | None:
    """Each host's own lock; a host held by another run past the timeout is ``locked``."""
    s, target = incident.scenario, incident.target
    timeout = incident.request.lock_timeout
    deadline = time.monotonic() + timeout
    holder = {"incident_id": incident.incident_id, "scenario": s.id}
    opened = {**incident.opened_event(), "dir": incident.dir.name, "start": now_iso()}
    busy: list[tuple[str, HeldLock]] = []
    for host in target.hosts:
        lock = incident.store.lock(target.host_lock_keys(host, s.lock), holder=holder,
                                   opened=opened)
        try:
            lock.acquire(0.0, incident.cancel)
        except LockBusyError:
            busy.append((host, lock))
            continue
        incident.host_locks[host] = lock
    for host, lock in busy:
        def waiting(key: str, who: dict[str, Any], host: str = host) -> None:
            reason = f"{host}: waiting up to {timeout:g}s for {describe_holder(who)}"
            incident.record("lock", say=reason, phase="lock", decision="wait", step=key,
                            holder=who, reason=reason, host=host)
        try:
            lock.acquire(max(0.0, deadline - time.monotonic()), incident.cancel, waiting)
        except LockBusyError as exc:
            if exc.cancelled:
                return Outcome(Status.INTERRUPTED, "interrupted by signal")
            reason = f"{exc}; not acting on {host}"
            incident.record("lock", phase="lock", decision="timeout", step=exc.key,
                            holder=exc.holder, waited_s=round(exc.waited, 3), reason=reason,
                            host=host)
            states[host].end(LOCKED, reason)
            continue
        incident.host_locks[host] = lock
    held = sorted(incident.host_locks)
    incident.record("lock", phase="lock", decision="acquired", step=f"{len(held)} host(s)",
                    waited_s=0.0, reason=f"holding the locks of {len(held)} of "
                    f"{len(target.hosts)} host(s)", hosts=held)
    return None


def _confirm(incident: Incident, states: dict[str, HostState], hosts: list[str]) -> None:
    """Per-host symptom check; a healthy host is left alone (unless --force)."""
    s = incident.scenario
    started = now_iso()
    if not s.confirm:
        for host in hosts:
            states[host].symptom, states[host].symptom_detail = "not checked", s.confirm_reason
        incident.record("symptom", say=f"not checked: {s.confirm_reason}", label="symptom",
                        confirmed=None, skipped=True, reason=s.confirm_reason, checks=[])
        return
    results = _host_checks(incident, hosts, confirm=True)
    seen = []
    for host in hosts:
        failing = [r.message for r in results[host] if not r.healthy]
        state = states[host]
        state.symptom_detail = "; ".join(failing) or "every check healthy"
        if failing:
            state.symptom = "seen"
            seen.append(host)
        elif incident.request.force:
            state.symptom = "forced"
        else:
            state.symptom = "absent"
            state.end(NOT_REPRODUCED, "every symptom check passed; nothing changed")
        incident.record("host_symptom", host=host, symptom=state.symptom,
                        detail=state.symptom_detail,
                        checks=[r.as_event() for r in results[host]])
    say = (f"symptom seen on {len(seen)} of {len(hosts)} host(s): {', '.join(seen)}" if seen
           else f"every symptom check passed on {len(hosts)} host(s)")
    incident.record("symptom", say=say, label="symptom " + ("seen" if seen else "absent"),
                    ok=bool(seen), confirmed=bool(seen), reason=say, started=started,
                    hosts={h: states[h].symptom for h in hosts},
                    checks=[{**r.as_event(), "host": h} for h in hosts for r in results[h]])
    if incident.request.force and len(seen) < len(hosts):
        incident.recorder.decision("force", f"{len(hosts) - len(seen)} host(s) look healthy; "
                                   "acting on them anyway (--force)", trigger="force")


def _diagnose(incident: Incident, states: dict[str, HostState], hosts: list[str]) -> None:
    """Evidence from the affected hosts, one run; unreachable hosts are left alone."""
    s = incident.scenario
    if not s.diagnostics_enabled or not hosts:
        return
    diag_vars = {**incident.base_vars(), **s.diagnostics_vars,
                 "capture_diagnostics_dest": mark_unsafe(str(incident.dir / DIAGNOSTICS_DIR))}
    play = role_play(f"{s.id}: diagnostics", s.hosts, s.diagnostics_role, diag_vars)
    run = incident.run("diagnose", None, "capture-diagnostics", play, check=False, hosts=hosts,
                       forks=forks_for(incident, len(hosts)))
    unreachable = sorted({t.host for t in run.tasks if t.status == "unreachable"})
    incident.record("evidence", say=f"captured from {len(hosts) - len(unreachable)} host(s) "
                    "into diagnostics/", label="diagnose", ok=run.ok, source="diagnostics",
                    containers=[], unreachable=unreachable)
    for host in unreachable:
        states[host].end(UNREACHABLE, f"unreachable: {host} (diagnostics could not reach the "
                         "host; nothing was changed); a human must look at the host")


def _flap_guard(incident: Incident, states: dict[str, HostState], hosts: list[str]) -> None:
    s = incident.scenario
    guard = FlapGuard.for_scenario(s.flap_max, s.flap_window_minutes, incident.safety,
                                   incident.root, incident.store)
    for host in hosts:
        verdict = guard.check(incident.target.host_key(host))
        incident.record("flap_guard", host=host, **verdict.as_event())
        if not verdict.allowed:
            states[host].end(FLAP, verdict.reason)


# -- the ladder, per host ------------------------------------------------------------------
def _step_failure(run_tasks: list[Any], host: str) -> str:
    return next((f"{t.task}: {t.message}" for t in run_tasks
                 if t.host == host and t.status != "ok"), "")


def _sort(incident: Incident, states: dict[str, HostState], step: Step, run: PlaybookRun,
          pending: list[str], started: float) -> list[str]:
    """Record the step on each host; end the unreachable and refusing ones. Returns the
    hosts whose step succeeded (to verify); the others stay for the next step."""
    failed = {t.host for t in run.tasks if t.status == "failed"}
    unreachable = {t.host for t in run.tasks if t.status == "unreachable"}
    if not run.ok and run.status != "failed":  # timeout, error: nothing is known to hold
        failed |= set(pending) - unreachable
    candidates = []
    for host in pending:
        status = "unreachable" if host in unreachable else "failed" if host in failed else "ok"
        states[host].steps.append({"name": step.name, "status": status, "verified": None,
                                   "duration_s": round(time.time() - started, 3)})
        if status == "unreachable":
            states[host].end(UNREACHABLE, f"unreachable: {host} during {step.name}; "
                             "a human must look at the host")
        elif status == "failed":
            why = _step_failure(run.tasks, host)
            if any(p.search(why) for p in ESCALATE_AT_ONCE):
                states[host].end(ESCALATED, f"step {step.name} refused on {host}: "
                                 f"{why.split(': ', 1)[-1]}; a human must decide")
        else:
            candidates.append(host)
    return candidates


def _settle(incident: Incident, states: dict[str, HostState], step: Step,
            candidates: list[str]) -> None:
    """Verify the hosts the step ran on, watch the stabilisation window, end the healthy."""
    s = incident.scenario
    window = s.verify.stabilisation_seconds
    # The verify playbook (an Ansible run) only once: at the end of the window, if any.
    healthy = _verify(incident, states, candidates, f"after-{step.name}", window <= 0) \
        if candidates else set()
    if healthy and window > 0:
        watch_window(incident)
        healthy = _verify(incident, states, sorted(healthy), f"stable-after-{step.name}")
    for host in healthy:
        state = states[host]
        state.resolved_by = step.name
        state.recovered_s = round(time.monotonic() - incident.opened_at, 3)
        if s.escalate_after_containment:
            state.end(ESCALATED, f"contained by {step.name} (verified); "
                      f"{s.escalation_reason or 'a human must take over'}")
        else:
            state.end(RESOLVED, f"verified healthy after {step.name}")


def _ladder(incident: Incident, states: dict[str, HostState],
            hosts: list[str]) -> Outcome | None:
    """Climb the ladder for ``hosts``; each host ends resolved or escalated. An outcome only
    when the whole incident must stop (interrupted, bad input)."""
    check = incident.request.check
    notes: list[str] = []
    pending = list(hosts)
    for k, step in enumerate(incident.ladder, start=1):
        if not pending:
            break
        if incident.cancel.is_set():
            return Outcome(Status.INTERRUPTED, "interrupted by signal")
        stop = _window_passed(incident) if k > 1 and not check else None
        if stop is None and (refused := _before_step(incident, step)) is not None:
            stop = refused.reason  # the time budget, or no approval for a destructive step
        if stop is not None:
            for host in pending:
                states[host].end(ESCALATED, stop)
            return None
        incident.reporter.phase(f"mitigate {k}/{len(incident.ladder)}",
                                f"{step.name} ({step.action}) on {len(pending)} host(s)")
        started = time.time()
        run = incident.run("mitigate", step, step.name, incident.play_for(step),
                           timeout=step.timeout, hosts=pending,
                           forks=forks_for(incident, len(pending)))
        incident.reporter.outcome(step.name, run.ok, "; ".join(run.failures[:2]))
        if run.status == "canceled" or incident.cancel.is_set():
            return Outcome(Status.INTERRUPTED, "interrupted by signal")
        bad = next((m.group(0) for f in run.failures if (m := BAD_INPUT.search(f))), None)
        if bad is not None:
            incident.recorder.decision("stop", f"{bad} (step {step.name}); nothing else was "
                                       "run", trigger="bad_input", after=step.name)
            return Outcome(Status.FAILED, f"{bad} (step {step.name})", bad_input=True)
        if check:
            _note_check(incident, step, run, notes)
            for host in pending:
                states[host].steps.append({"name": step.name, "status": "checked",
                                           "verified": None})
                states[host].end(CHECKED, "check mode: nothing changed")
            continue
        _settle(incident, states, step, _sort(incident, states, step, run, pending, started))
        pending = [h for h in pending if states[h].outcome is None]
        if pending:
            incident.recorder.decision(
                "next_step", f"{len(pending)} host(s) still failing after {step.name}: "
                f"{', '.join(pending[:10])}", after=step.name)
    for host in pending:
        states[host].end(ESCALATED, f"ladder '{incident.ladder_name}' exhausted "
                         f"({len(incident.ladder)} steps) without a healthy verification")
    return None


def _batches(incident: Incident, hosts: list[str]) -> list[list[str]]:
    fleet = incident.scenario.fleet
    size = fleet.batch_size(len(hosts), incident.request.serial) if fleet else len(hosts)
    return [hosts[i:i + size] for i in range(0, len(hosts), size)] or [[]]


def _look(incident: Incident, states: dict[str, HostState]) -> list[str]:
    """Lock (not under --check), symptom per host, diagnostics, flap guard: the hosts to act
    on. Raises nothing; a host that drops out gets its outcome."""
    s, check = incident.scenario, incident.request.check
    _confirm(incident, states, [h for h in states if states[h].outcome is None])
    affected = [h for h in states if states[h].outcome is None]
    _diagnose(incident, states, affected)
    affected = [h for h in affected if states[h].outcome is None]
    if affected and s.no_local_fix:
        notify(incident, "initial")
        for host in affected:
            states[host].end(ESCALATED, s.escalation_reason or "no local fix for this scenario")
        return []
    if affected and not check:
        _flap_guard(incident, states, affected)
    return [h for h in affected if states[h].outcome is None]


def _run(incident: Incident, states: dict[str, HostState]) -> Outcome | None:
    if not incident.request.check and (stop := _lock(incident, states)) is not None:
        return stop
    affected = _look(incident, states)
    if not affected:
        return None
    notify(incident, "initial")
    batches = _batches(incident, affected)
    for n, batch in enumerate(batches, start=1):
        for host in batch:
            states[host].batch = n
        if len(batches) > 1:
            incident.record("batch", say=f"batch {n}/{len(batches)}: {', '.join(batch)}",
                            label="rollout", batch=n, batches=len(batches), hosts=batch)
        if (stop := _ladder(incident, states, batch)) is not None:
            return stop
        failed = [h for h in batch if states[h].outcome not in OK_HOST]
        rest = [h for b in batches[n:] for h in b]
        if failed and rest:
            reason = (f"rollout stopped after batch {n}/{len(batches)}: not resolved on "
                      f"{', '.join(failed)}; {len(rest)} host(s) not acted on")
            incident.recorder.decision("stop_rollout", reason, trigger="rolling",
                                       after=f"batch {n}")
            for host in rest:
                states[host].end(NOT_ACTED, reason)
            return None
    return None


def _overall(incident: Incident, states: dict[str, HostState]) -> Outcome:
    by: dict[str, list[str]] = {}
    for host, state in states.items():
        by.setdefault(state.outcome or NOT_ACTED, []).append(host)
    order = (RESOLVED, NOT_REPRODUCED, CHECKED, ESCALATED, UNREACHABLE, LOCKED, FLAP, NOT_ACTED)
    parts = [f"{len(by[o])} {o} ({', '.join(by[o][:8])}{', ...' if len(by[o]) > 8 else ''})"
             for o in order if o in by]
    summary = f"{len(states)} host(s): " + ", ".join(parts)
    if any(o not in OK_HOST for o in by):
        reason = f"not every host recovered: {summary}; a human must look at the others"
        incident.recorder.decision("escalate", reason, trigger="fleet")
        return Outcome(Status.ESCALATED, reason)
    if CHECKED in by:
        return Outcome(Status.CHECKED, f"check mode: {summary}")
    if RESOLVED in by:
        steps = [st.name for st in incident.ladder
                 if any(states[h].resolved_by == st.name for h in by[RESOLVED])]
        incident.recorder.decision("resolved", f"every affected host verified: {summary}")
        return Outcome(Status.RESOLVED, f"verified healthy: {summary}", ",".join(steps))
    reason = f"not reproduced: every symptom check passed on {summary}; nothing changed"
    incident.recorder.decision("not_reproduced", reason, trigger="symptom")
    return Outcome(Status.NOT_REPRODUCED, reason)


def act(incident: Incident) -> Outcome:
    """The act stage for a fleet: lock, look, flap guard and ladder per host."""
    states = {h: HostState(h) for h in incident.target.hosts}
    stop: Outcome | None = None
    try:
        stop = _run(incident, states)
    finally:
        for state in states.values():
            if state.outcome is None:
                state.end(NOT_ACTED, stop.reason if stop else "the run stopped before this host")
            incident.record("host_outcome", **state.as_event())
    if stop is not None:
        return stop
    return _overall(incident, states)
