"""Drill verdicts: what the plays left in a drill's work dir, turned into a result.

The plays leave, in the drill's work dir:

- ``probe.json``: the detector (``incident_runner.drill_probe``): armed, first
  failed probe;
- ``fault.json``: when the injection started and ended, when it was detected;
- ``runner.json``: the runner's exit code and JSON summary;
- ``alert.json`` (the alert-loop drill only, :mod:`.alertloop`): when the
  alert started, reached ``serve`` and resolved, and what serve recorded.

Times are measured from the start of the fault injection: detection (first
failed probe), first action (first mitigation step started), recovery (the
runner's verified ``resolved`` decision) and, for the alert loop, the alert's
``startsAt``, serve's receipt of it and of its resolution. The verdict is the
first stage of the drill that did not happen (verify, the last of the steps
run in one ``ansible-playbook``, passed when it exited 0). The drill's incident
folder is moved into the state dir ``stats`` reads and indexed there as a
drill, with the drill's result in ``drill.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from incident_runner import history
from incident_runner.drill.alertloop import LOOP_DIR, STATE_FILE
from incident_runner.fsutil import write_atomic
from incident_runner.journal import load_journal
from incident_runner.timeutil import epoch, iso_from_epoch

LOG = logging.getLogger(__name__)

DRILL_FILE = "drill.json"
LOOP_STATE = Path(LOOP_DIR) / STATE_FILE  # the alert loop's supervisor (its CPU)
LOG_FILE = "drill.log"
OK_OUTCOMES = {"recovered", "escalated"}
EXPECT_RC = {"resolved": 0, "escalated": 3}


@dataclass
class DrillResult:
    """One drill: what happened and how long each stage took (seconds from the fault)."""

    scenario: str
    outcome: str  # recovered | escalated | not-recovered | not-escalated | fault-not-injected
    #               | not-verified | error | timeout | interrupted
    reason: str = ""
    expect: str | None = None
    incident_id: str | None = None
    incident_dir: str | None = None
    resolved_by: str | None = None
    fault_started: str | None = None
    detect_s: float | None = None
    detected_by: str | None = None
    first_action_s: float | None = None
    recovered_s: float | None = None
    escalated_s: float | None = None
    runner_s: float | None = None
    total_s: float | None = None
    cpu_s: float | None = None  # the drill's plays and everything they ran (the detector aside;
    #                             the alert loop's daemons and the runner serve ran included)
    # The alert-loop drill: the alert's startsAt (Prometheus saw the 502; it fires `for`
    # later), the firing webhook received by serve, the resolved webhook received by serve.
    alert_started_s: float | None = None
    alert_received_s: float | None = None
    alert_resolved_s: float | None = None
    rc: int | None = None  # the plays up to verify (None: stopped)
    destroy_rc: int | None = None  # the teardown
    workdir: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# -- reading what the plays left behind ------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None



def _since(start: float | None, ts: float | None) -> float | None:
    return None if start is None or ts is None else round(ts - start, 2)


def _result_message(result: dict[str, Any]) -> str:
    items = [r.get("msg") for r in result.get("results") or []
             if isinstance(r, dict) and r.get("failed") and r.get("msg")]
    return " | ".join(str(m) for m in [result.get("msg"), *items] if m)


def last_failure(log_text: str) -> str:
    """The message of the last failed task in an ansible-playbook log ('' if none).

    Failed results look like ``fatal: [host]: FAILED! => {json}`` (the JSON may
    span lines).
    """
    lines = log_text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].startswith(("fatal: ", "failed: ")):
            continue
        _, sep, rest = lines[i].partition("=> ")
        message = ""
        if sep:
            for end in range(i, min(i + 400, len(lines))):
                chunk = "\n".join([rest, *lines[i + 1:end + 1]])
                try:
                    result = json.loads(chunk)
                except ValueError:
                    continue
                message = _result_message(result) if isinstance(result, dict) else ""
                break
        return " ".join((message or lines[i]).split())[:500]
    return ""


def timing_from_journal(journal: dict[str, Any], start: float | None) -> dict[str, Any]:
    """Seconds from ``start`` (the fault) to the runner's first action, recovery, escalation."""
    first_action = next((epoch(s.get("start")) for s in journal.get("steps") or []
                         if isinstance(s, dict) and s.get("phase") == "mitigate"), None)
    resolved = escalated = None
    for decision in journal.get("decisions") or []:
        if not isinstance(decision, dict) or decision.get("kind") != "decision":
            continue
        if decision.get("decision") == "resolved" and resolved is None:
            resolved = epoch(decision.get("ts"))
        elif decision.get("decision") == "escalate" and escalated is None:
            escalated = epoch(decision.get("ts"))
    return {"first_action_s": _since(start, first_action), "recovered_s": _since(start, resolved),
            "escalated_s": _since(start, escalated), "runner_s": journal.get("duration_s")}


def _adopt_incident(summary: dict[str, Any], workdir: Path, root: Path) -> Path | None:
    """Move the drill's incident folder into the state dir ``stats`` reads; index it."""
    source = Path(str(summary.get("dir") or ""))
    if not source.name or not source.is_dir():
        return None
    target = source
    if source.parent.resolve() != root.resolve():
        root.mkdir(parents=True, exist_ok=True)
        target = root / source.name
        if target.exists():
            LOG.warning("%s exists already; the drill's incident stays in %s", target, source)
            target = source
        else:
            shutil.move(str(source), str(target))
    if target.parent.resolve() == root.resolve():
        history.record(load_journal(target), root)
    return target


def verdict(scenario: str, result: DrillResult, *, rc: int | None,
            probe: dict[str, Any] | None, fault: dict[str, Any] | None,
            runner: dict[str, Any] | None, verified: bool, failure: str,
            interrupted: bool = False, destroy_rc: int | None = 0,
            alert: dict[str, Any] | None = None) -> tuple[str, str]:
    """(outcome, reason) from the first stage of the drill that did not happen."""
    summary: dict[str, Any] = (runner or {}).get("summary") or {}
    expect = result.expect or "resolved"
    probe, fault, runner = probe or {}, fault or {}, runner or {}
    # In drill order; each: (this stage failed, outcome, why).
    stages: list[tuple[bool, str, Callable[[], str]]] = [
        (rc is None and interrupted, "interrupted",
         lambda: "stopped by a signal; its stack was torn down"),
        (rc is None, "timeout", lambda: f"the drill did not finish: {failure}"),
        (not probe, "error", lambda: f"the stack did not come up (create failed): {failure}"),
        (probe.get("state") == "unhealthy-baseline", "error",
         lambda: f"the stack was not healthy before the fault: {probe.get('check')} "
                 f"{probe.get('detail')}"),
        (not fault, "fault-not-injected",
         lambda: f"playbooks/faults/{scenario}.yml failed, the fault is not real: {failure}"),
        (result.detect_s is None, "fault-not-injected",
         lambda: failure or "the fault injection did nothing the detector could see "
                            f"(detector {(fault.get('probe') or {}).get('state')})"),
        # The alert loop: the runner runs only once an alert reached serve.
        (alert is not None and alert.get("received") is None, "not-alerted",
         lambda: f"no alert reached serve: {(alert or {}).get('error') or failure}"),
        (not runner, "error", lambda: f"the runner did not run: {failure}"),
        (runner.get("rc") != EXPECT_RC.get(expect),
         "not-recovered" if expect == "resolved" else "not-escalated",
         lambda: f"incident-runner exited {runner.get('rc')} "
                 f"({summary.get('status', 'no answer')}): "
                 f"{summary.get('reason') or str(runner.get('stderr', ''))[-300:]}"),
        (not verified, "not-verified",
         lambda: f"the runner said {summary.get('status')}, but verify failed: {failure}"),
        (destroy_rc != 0, "error",
         lambda: f"destroy exited {destroy_rc}: the stack may be left behind: {failure}"),
    ]
    for failed, outcome, why in stages:
        if failed:
            return outcome, " ".join(why().split())
    return ("recovered" if expect == "resolved" else "escalated",
            str(summary.get("reason") or ""))


def evaluate(scenario: str, workdir: Path, rc: int | None, log_text: str,
             state_root: Path, wall_s: float, interrupted: bool = False,
             destroy_rc: int | None = 0, cpu_s: float | None = None,
             verifies: bool = True) -> DrillResult:
    """Turn a finished drill's leftovers into a ``DrillResult`` (and adopt its incident).

    ``rc``: how the plays up to verify ended; ``verifies``: whether verify was one of them
    (a drill without its verify step is never verified)."""
    loop = _read_json(workdir / LOOP_STATE)
    if cpu_s is not None and loop and isinstance(loop.get("cpu_s"), int | float):
        cpu_s += float(loop["cpu_s"])  # the alert loop ran detached: its daemons and runner
    result = DrillResult(scenario=scenario, outcome="error", rc=rc, destroy_rc=destroy_rc,
                         workdir=str(workdir), log=str(workdir / LOG_FILE),
                         total_s=round(wall_s, 1),
                         cpu_s=None if cpu_s is None else round(cpu_s, 1))
    probe = _read_json(workdir / "probe.json")
    fault = _read_json(workdir / "fault.json")
    runner = _read_json(workdir / "runner.json")
    verified = verifies and rc == 0
    alert = _read_json(workdir / "alert.json")
    start = float(fault["started"]) if fault and fault.get("started") is not None else None
    result.fault_started = iso_from_epoch(start)
    if fault and fault.get("detected") is not None:
        result.detect_s = _since(start, float(fault["detected"]))
        result.detected_by = " ".join(str((fault.get("probe") or {}).get(k) or "")
                                      for k in ("check", "detail")).strip() or None
    for stage in ("started", "received", "resolved"):
        value = (alert or {}).get(stage)
        setattr(result, f"alert_{stage}_s", _since(start, float(value))
                if isinstance(value, int | float) else None)
    summary: dict[str, Any] = (runner or {}).get("summary") or {}
    if runner:
        result.expect = str(runner.get("expect") or "resolved")
        result.incident_id = summary.get("incident_id")
        result.resolved_by = summary.get("resolved_by")
        incident = _adopt_incident(summary, workdir, state_root)
        if incident is not None:
            result.incident_dir = str(incident)
            journal = load_journal(incident)
            for key, value in timing_from_journal(journal, start).items():
                setattr(result, key, value)

    result.outcome, result.reason = verdict(
        scenario, result, rc=rc, destroy_rc=destroy_rc, probe=probe, fault=fault, runner=runner,
        verified=verified, failure=last_failure(log_text), interrupted=interrupted, alert=alert)
    if result.incident_dir:
        write_atomic(Path(result.incident_dir) / DRILL_FILE,
                     json.dumps({**result.as_dict(), "fault": fault, "probe": probe,
                                 **({"alert": alert} if alert else {})},
                                indent=2, default=str) + "\n")
    return result


