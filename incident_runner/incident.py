"""One running incident: its folder, its record, its rails, and the one way it runs Ansible.

Built once by the engine after the inputs are checked; the stages
(``evidence``, ``ladder``, ``notify``) read and record through it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incident_runner.config import SafetySettings
from incident_runner.errors import ExecutionError, InputError
from incident_runner.executor import PlaybookRun, TaskResult, run_playbook
from incident_runner.layout import ARTIFACTS_DIR, TIMELINE_FILE, new_incident_dir
from incident_runner.lock import DEFAULT_LOCK_TIMEOUT
from incident_runner.paths import playbooks_dir, roles_dir
from incident_runner.plays import mark_unsafe, playbook_play, role_play
from incident_runner.recorder import Recorder, Reporter
from incident_runner.redaction import Redactor
from incident_runner.safety import ApprovalGate, Budget
from incident_runner.scenario import Scenario, Step
from incident_runner.secrets import vault_values
from incident_runner.severity import Level
from incident_runner.store import HeldLock, LocalStore, Store
from incident_runner.target import Target
from incident_runner.timeline import Timeline


@dataclass
class RemediateRequest:
    scenario: str
    inventory: Path
    severity: str | None = None
    limit: str | None = None
    check: bool = False
    force: bool = False  # act even when the symptom check finds the target healthy
    extra_vars: dict[str, Any] = field(default_factory=dict)
    assume_yes: bool = False
    state_dir: Path | None = None
    verbosity: int = 0
    drill: bool = False
    ci: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] = field(default_factory=dict)  # the alert that opened it (serve)
    scenario_paths: tuple[Path, ...] = ()  # --scenarios DIR (later wins)
    config: Path | None = None  # None: discover (see config.find_config)
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for the target lock
    timeout_seconds: float | None = None  # None: the config's safety.incident_timeout_minutes
    vault_password_file: Path | None = None
    state_url: str | None = None  # None: $INCIDENT_RUNNER_STATE_URL, the config, else SQLite
    # Fleet (docs/fleet.md): hosts per rolling batch ("25%" or a count; None: the scenario's)
    # and a cap on Ansible's forks per step (None: the scenario's, else one per host up to 50).
    serial: int | str | None = None
    forks: int | None = None


# The seam between the stages and Ansible (tests drive the ladder with a fake):
# called with run_playbook's keyword arguments.
PlaybookRunner = Callable[..., PlaybookRun]


class Incident:
    """State of one running incident."""

    def __init__(self, request: RemediateRequest, scenario: Scenario, target: Target,
                 reporter: Reporter, *, root: Path, level: Level | None,
                 safety: SafetySettings, runner: PlaybookRunner = run_playbook,
                 store: Store | None = None) -> None:
        self.request = request
        self.scenario = scenario
        self.target = target
        self.level = level
        self.severity = level.name if level else None
        self.safety = safety
        self.root = root
        self.runner = runner
        self.store: Store = store if store is not None else LocalStore(root)
        self.redactor = Redactor.from_environment(safety.secret_env)
        self.redactor.add_from_mapping(request.extra_vars)
        if request.vault_password_file is not None:  # a bad password file fails before opening
            for value in vault_values(target.inventory, request.vault_password_file):
                self.redactor.add(value)
        self.incident_id, self.dir = new_incident_dir(root, scenario.id,
                                                      self.store.claim_incident_id)
        self.recorder = Recorder(Timeline(self.dir / TIMELINE_FILE), reporter, self.redactor)
        timeout = request.timeout_seconds
        if timeout is None and safety.incident_timeout_minutes is not None:
            timeout = safety.incident_timeout_minutes * 60
        self.budget = Budget(timeout)
        self.gate = ApprovalGate(request.assume_yes, timeout=safety.approval_timeout_seconds)
        self.cancel = threading.Event()
        self.lock: HeldLock | None = None
        self.host_locks: dict[str, HeldLock] = {}  # fleet mode: each host's own lock
        self.runs = 0
        # The level's `ladder` picks the scenario's ladder; ladder_for falls back to 'default'.
        self.ladder_name, self.ladder = scenario.ladder_for(
            (level.ladder or level.name) if level else request.severity)
        self.opened_at = time.monotonic()

    @property
    def reporter(self) -> Reporter:
        return self.recorder.reporter

    def record(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        return self.recorder.record(kind, **fields)

    def opened_event(self) -> dict[str, Any]:
        s, t = self.scenario, self.target
        return {
            "incident_id": self.incident_id, "scenario": s.id, "title": s.title,
            "description": s.description, "severity": self.severity,
            "severity_info": self.level.info() if self.level else {}, "ladder": self.ladder_name,
            "steps": [st.name for st in self.ladder], "check_mode": self.request.check,
            "drill": self.request.drill, "force": self.request.force,
            "inventory": str(t.inventory), "hosts": s.hosts, "target_hosts": list(t.hosts),
            "limit": self.request.limit, "pid": os.getpid(), "runner_host": socket.gethostname(),
            "ci": self.request.ci, "alert": self.request.alert, "report_hints": s.report,
            "communication": s.communication, "target_key": t.key,
            "scenario_source": str(s.source),
        }

    # -- running Ansible ------------------------------------------------------
    def base_vars(self) -> dict[str, Any]:
        # Data, never templates (a state dir path may contain "{{").
        return {
            "incident_id": mark_unsafe(self.incident_id),
            "incident_dir": mark_unsafe(str(self.dir)),
            "incident_scenario": mark_unsafe(self.scenario.id),
            "incident_severity": mark_unsafe(self.severity or ""),
            "target_hosts": mark_unsafe(self.scenario.hosts),
        }

    def play_for(self, step: Step) -> list[dict[str, Any]]:
        play_vars = {**self.base_vars(), **step.vars}
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

    @property
    def fleet(self) -> bool:
        """Per-host mode: a scenario with ``fleet:`` on more than one host (docs/fleet.md)."""
        return self.scenario.fleet is not None and len(self.target.hosts) > 1

    def run(self, phase: str, step: Step | None, name: str, play: list[dict[str, Any]],
            timeout: int | None = None, check: bool | None = None,
            hosts: list[str] | None = None, forks: int | None = None,
            on_done: Callable[[list[TaskResult]], None] | None = None) -> PlaybookRun:
        """Run one generated play; the step's start, tasks and end go to the timeline.

        ``hosts``: only these hosts (fleet mode: ``--limit`` to the hosts still failing).
        ``on_done``: called with the task results when the plays have ended."""
        self.runs += 1
        ident = f"{self.runs:02d}-{phase}-{name}"
        check_mode = self.request.check if check is None else check
        action = step.action if step else name
        timeout, by_budget = self.budget.cap(timeout)  # the incident's time budget caps steps
        if self.lock is not None:  # fencing: never act on a lock that may have been lost
            self.lock.ensure_held()
        for host in hosts or ():
            if host in self.host_locks:
                self.host_locks[host].ensure_held()
        self.record("step_started", phase=phase, step=name, action=action,
                    destructive=bool(step and step.destructive), check_mode=check_mode,
                    timeout_s=timeout, **({"hosts": list(hosts)} if hosts is not None else {}))
        try:
            run = self.runner(
                ident=ident, play=play, inventory=self.target.inventory,
                timeline=self.recorder.timeline, artifacts_dir=self.dir / ARTIFACTS_DIR,
                context={"phase": phase, "step": name},
                limit=",".join(hosts) if hosts is not None else self.request.limit,
                data_vars=self.request.extra_vars, check=check_mode, timeout=timeout,
                verbosity=self.request.verbosity, redactor=self.redactor, cancel=self.cancel,
                on_task=self.reporter.task, vault_password_file=self.request.vault_password_file,
                **({"forks": forks} if forks is not None else {}),
                **({"on_done": on_done} if on_done is not None else {}),
            )
        except ExecutionError as exc:
            self.record("step_finished", phase=phase, step=name, status="error", rc=None,
                        summary=str(exc))
            raise
        summary = "; ".join(run.failures[:3]) if not run.ok else f"{run.changed} change(s)"
        if run.status == "timeout":
            limit = "incident time budget" if by_budget else "step timeout"
            summary = (f"timed out after {timeout}s ({limit}); the playbook and every process "
                       "it started were killed")
        self.record("step_finished", phase=phase, step=name, status=run.status, rc=run.rc,
                    changed=run.changed, duration=round(run.duration, 3), summary=summary,
                    unreachable=sorted({t.host for t in run.tasks if t.status == "unreachable"}))
        return run
