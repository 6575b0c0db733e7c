"""Look before acting: confirm the symptom, capture the evidence.

- ``confirm_symptom`` runs the scenario's symptom checks (its verify checks
  unless it defines ``symptom``) from the runner's process. A healthy target
  means there is nothing to fix: the incident ends ``not-reproduced``.
- ``capture_diagnostics`` saves what the target looked like before any change.
  For a target on this machine (``ansible_connection: local``) the
  capture_diagnostics role's module is called in the runner's own process (the
  same code, its arguments checked by the same spec; ~0.1 s instead of an
  Ansible run's ~1.5 s) alongside the symptom check; other targets go through
  the role.
- ``check_health`` is verification: the same checks, waiting for healthy.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from incident_runner import local_module
from incident_runner.health import CheckResult, run_checks
from incident_runner.incident import Incident
from incident_runner.layout import DIAGNOSTICS_DIR
from incident_runner.paths import roles_dir
from incident_runner.plays import mark_unsafe, role_play
from incident_runner.scenario import Check
from incident_runner.timeutil import now_iso

LOG = logging.getLogger(__name__)

DIAGNOSTICS_MODULE = Path("capture_diagnostics") / "library" / "incident_diagnostics.py"
# What a step event records as the step's limit: each read of the capture has its own
# timeout (capture_diagnostics_timeout), the whole is not cut off in-process.
DIAGNOSTICS_TIMEOUT_S = 60


def _checks(incident: Incident, checks: tuple[Check, ...]) -> list[tuple[Check, str]]:
    return [(c, str(incident.target.template(c.url))) for c in checks]


def confirm_symptom(incident: Incident) -> bool:
    """True when the symptom is there (a check fails); records what was seen."""
    s = incident.scenario
    checks = s.symptom_checks or s.verify.checks
    if not checks:  # nothing to look at: the trigger is the only evidence there is
        reason = "the scenario defines no check; acting on the trigger alone"
        incident.record("symptom", say=f"not checked: {reason}", label="symptom",
                        confirmed=None, skipped=True, reason=reason, checks=[])
        return True
    started = now_iso()
    results = run_checks(_checks(incident, checks), confirm=True)
    confirmed = not all(r.healthy for r in results)
    failing = [r.message for r in results if not r.healthy]
    seen = "; ".join(failing) if confirmed else "every check healthy: " + "; ".join(
        r.message for r in results)
    incident.record("symptom", say=seen, label="symptom " + ("seen" if confirmed else "absent"),
                    ok=confirmed, confirmed=confirmed, checks=[r.as_event() for r in results],
                    reason=seen, started=started)
    return confirmed


def check_health(incident: Incident) -> tuple[bool, list[CheckResult]]:
    """The scenario's HTTP verify checks, waiting up to each check's deadline."""
    results = run_checks(_checks(incident, incident.scenario.verify.checks))
    return all(r.healthy for r in results), results


def _is_local(incident: Incident) -> bool:
    return incident.target.variables.get("ansible_connection") == "local" and len(
        incident.target.hosts) == 1


def _diagnostics_args(incident: Incident) -> dict[str, Any]:
    s = incident.scenario
    args = {k.removeprefix("capture_diagnostics_"): incident.target.template(v)
            for k, v in s.diagnostics_vars.items()}
    args["dest"] = str(incident.dir / DIAGNOSTICS_DIR)
    return {k: v for k, v in args.items() if v not in ("", None)}


def _capture_locally(incident: Incident) -> dict[str, Any]:
    """Run the role's module here, as Ansible would on this machine."""
    return local_module.call(roles_dir() / DIAGNOSTICS_MODULE, "capture",
                             _diagnostics_args(incident))


def container_evidence(incident: Incident) -> list[dict[str, Any]]:
    """The state of the target's containers as captured (for the report)."""
    path = incident.dir / DIAGNOSTICS_DIR / "containers.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("selected") or []
    except (OSError, ValueError, AttributeError):
        return []
    keep = ("name", "status", "exit_code", "oom_killed", "restart_count", "memory_limit",
            "networks", "revision")
    return [{k: r.get(k) for k in keep} for r in rows if isinstance(r, dict)]


def capture_diagnostics(incident: Incident) -> str | None:
    """Evidence before any change; never fails the incident. Returns the reason to stop
    when a target host cannot be reached (nothing must be acted on then)."""
    s = incident.scenario
    if not s.diagnostics_enabled:
        return None
    unreachable: list[str] = []
    if s.diagnostics_role == "capture_diagnostics" and _is_local(incident):
        incident.record("step_started", phase="diagnose", step="capture-diagnostics",
                        action="capture_diagnostics (local)", destructive=False,
                        check_mode=False, timeout_s=DIAGNOSTICS_TIMEOUT_S)
        out = _capture_locally(incident)
        ok = not out.get("failed")
        incident.record("step_finished", phase="diagnose", step="capture-diagnostics",
                        status="successful" if ok else "failed", rc=0 if ok else 1,
                        changed=1 if ok else 0, summary=str(out.get("msg", ""))[:300])
    else:
        diag_vars = {**incident.base_vars(), **s.diagnostics_vars,
                     "capture_diagnostics_dest": mark_unsafe(str(incident.dir / DIAGNOSTICS_DIR))}
        play = role_play(f"{s.id}: diagnostics", s.hosts, s.diagnostics_role, diag_vars)
        # Diagnostics only read the system, so they run for real under --check too.
        run = incident.run("diagnose", None, "capture-diagnostics", play, check=False)
        ok = run.ok
        unreachable = sorted({t.host for t in run.tasks if t.status == "unreachable"})
    rows = container_evidence(incident)
    incident.record("evidence", say=f"captured {len(rows)} container(s) into diagnostics/"
                    if rows else "captured into diagnostics/", label="diagnose", ok=ok,
                    source="diagnostics", containers=rows, unreachable=unreachable)
    if unreachable:
        return (f"unreachable: {', '.join(unreachable)} (diagnostics could not reach the "
                "host; nothing was changed); a human must look at the host")
    return None


def look(incident: Incident) -> tuple[bool, str | None]:
    """Symptom check and evidence capture at once: (symptom confirmed, reason to stop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        capture = pool.submit(capture_diagnostics, incident)
        confirmed = confirm_symptom(incident)
        return confirmed, capture.result()
