"""Drills: break a staging stack on purpose, let the runner fix it, time it.

A drill is the molecule scenario ``molecule/drill-<scenario>/`` (shared plays
in ``molecule/resources/drill/``): create brings up the drill's own stack,
side_effect starts a detector and injects the real fault (the fault playbook
asserts the fault is real, and the detector must see it too), converge runs
``incident-runner remediate --drill --yes``, verify checks the stack
independently, destroy tears it down.

``run_drills`` runs ``molecule test -s drill-<scenario>`` for each drill and
reads what the plays left in the drill's work dir:

- ``probe.json``: the detector (``incident_runner.drill_probe``): armed, first
  failed probe;
- ``fault.json``: when the injection started and ended, when it was detected;
- ``runner.json``: the runner's exit code and JSON summary;
- ``verified.json``: verify passed.

Each drill gets a fresh state dir for the runner (so the flap guard counts
nothing from earlier drills or real incidents), then its incident folder is
moved into the state dir ``stats`` reads and indexed there as a drill, with
the drill's timing in ``drill.json``. Times are measured from the start of
the fault injection: detection (first failed probe), first action (first
mitigation step started), recovery (the runner's verified ``resolved``
decision).

Work dirs and molecule logs stay under ``<state dir>/drills/<run id>/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from incident_runner import history
from incident_runner.errors import InputError
from incident_runner.fsutil import write_atomic
from incident_runner.journal import load_journal
from incident_runner.paths import project_root, state_dir
from incident_runner.timeutil import epoch

LOG = logging.getLogger(__name__)

DRILL_PREFIX = "drill-"
DRILLS_DIR = "drills"
DRILL_FILE = "drill.json"
DEFAULT_TIMEOUT_S = 900.0
OK_OUTCOMES = {"recovered", "escalated"}
EXPECT_RC = {"resolved": 0, "escalated": 3}
LOG_TAIL = 6000


@dataclass(frozen=True)
class DrillRequest:
    scenarios: tuple[str, ...] = ()  # empty: every drill
    state_dir: Path | None = None
    jobs: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    home: Path | None = None  # project root holding molecule/ (default: project_root())


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
    molecule_rc: int | None = None
    workdir: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class DrillRun:
    run_id: str
    dir: Path
    state_dir: Path
    jobs: int
    results: list[DrillResult] = field(default_factory=list)
    started: str = ""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dir": str(self.dir), "state_dir": str(self.state_dir),
                "started": self.started, "duration_s": self.duration_s, "jobs": self.jobs,
                "ok": self.ok, "drills": [r.as_dict() for r in self.results]}


# -- discovery -----------------------------------------------------------------------
def available_drills(home: Path | None = None) -> list[str]:
    """Scenario names that have a drill (``molecule/drill-<name>/molecule.yml``)."""
    root = (home or project_root()) / "molecule"
    return sorted(p.parent.name.removeprefix(DRILL_PREFIX)
                  for p in root.glob(f"{DRILL_PREFIX}*/molecule.yml"))


def select_drills(names: Iterable[str], home: Path | None = None) -> list[str]:
    known = available_drills(home)
    wanted = list(dict.fromkeys(names)) or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"no drill for {', '.join(unknown)} "
                         f"(drills: {', '.join(known) or 'none'})", field="--scenario")
    if not wanted:
        raise InputError("no drills found (molecule/drill-*/molecule.yml)", field="--all")
    return wanted


# -- reading what the plays left behind ------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None




def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


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


def verdict(scenario: str, result: DrillResult, *, molecule_rc: int | None,
            probe: dict[str, Any] | None, fault: dict[str, Any] | None,
            runner: dict[str, Any] | None, verified: bool, failure: str,
            interrupted: bool = False) -> tuple[str, str]:
    """(outcome, reason) from the first stage of the drill that did not happen."""
    summary: dict[str, Any] = (runner or {}).get("summary") or {}
    expect = result.expect or "resolved"
    probe, fault, runner = probe or {}, fault or {}, runner or {}
    # In drill order; each: (this stage failed, outcome, why).
    stages: list[tuple[bool, str, Callable[[], str]]] = [
        (molecule_rc is None and interrupted, "interrupted",
         lambda: "stopped by a signal; its stack was torn down"),
        (molecule_rc is None, "timeout", lambda: f"the drill did not finish: {failure}"),
        (not probe, "error", lambda: f"the stack did not come up (create failed): {failure}"),
        (probe.get("state") == "unhealthy-baseline", "error",
         lambda: f"the stack was not healthy before the fault: {probe.get('check')} "
                 f"{probe.get('detail')}"),
        (not fault, "fault-not-injected",
         lambda: f"playbooks/faults/{scenario}.yml failed, the fault is not real: {failure}"),
        (result.detect_s is None, "fault-not-injected",
         lambda: failure or "the fault injection did nothing the detector could see "
                            f"(detector {(fault.get('probe') or {}).get('state')})"),
        (not runner, "error", lambda: f"the runner did not run: {failure}"),
        (runner.get("rc") != EXPECT_RC.get(expect),
         "not-recovered" if expect == "resolved" else "not-escalated",
         lambda: f"incident-runner exited {runner.get('rc')} "
                 f"({summary.get('status', 'no answer')}): "
                 f"{summary.get('reason') or str(runner.get('stderr', ''))[-300:]}"),
        (not verified, "not-verified",
         lambda: f"the runner said {summary.get('status')}, but verify failed: {failure}"),
        (molecule_rc != 0, "error",
         lambda: f"molecule exited {molecule_rc} after verify (destroy?): {failure}"),
    ]
    for failed, outcome, why in stages:
        if failed:
            return outcome, " ".join(why().split())
    return ("recovered" if expect == "resolved" else "escalated",
            str(summary.get("reason") or ""))


def evaluate(scenario: str, workdir: Path, molecule_rc: int | None, log_text: str,
             state_root: Path, wall_s: float, interrupted: bool = False) -> DrillResult:
    """Turn a finished molecule run's leftovers into a ``DrillResult`` (and adopt its incident)."""
    result = DrillResult(scenario=scenario, outcome="error", molecule_rc=molecule_rc,
                         workdir=str(workdir), log=str(workdir / "molecule.log"),
                         total_s=round(wall_s, 1))
    probe = _read_json(workdir / "probe.json")
    fault = _read_json(workdir / "fault.json")
    runner = _read_json(workdir / "runner.json")
    verified = (workdir / "verified.json").exists()
    start = float(fault["started"]) if fault and fault.get("started") is not None else None
    result.fault_started = _iso(start)
    if fault and fault.get("detected") is not None:
        result.detect_s = _since(start, float(fault["detected"]))
        result.detected_by = " ".join(str((fault.get("probe") or {}).get(k) or "")
                                      for k in ("check", "detail")).strip() or None
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
        scenario, result, molecule_rc=molecule_rc, probe=probe, fault=fault, runner=runner,
        verified=verified, failure=last_failure(log_text), interrupted=interrupted)
    if result.incident_dir:
        write_atomic(Path(result.incident_dir) / DRILL_FILE,
                     json.dumps({**result.as_dict(), "fault": fault, "probe": probe},
                                indent=2, default=str) + "\n")
    return result


# -- running ------------------------------------------------------------------------------
def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _molecule(action: str, scenario: str, env: dict[str, str], home: Path, log: Path,
              timeout: float, cancel: threading.Event | None = None) -> int | None:
    """``molecule ACTION -s drill-SCENARIO``; None if it was stopped (timeout or cancel)."""
    argv = [str(Path(sys.executable).parent / "molecule"), action, "-s", DRILL_PREFIX + scenario]
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                        _kill_group(proc)
                        return None
        except BaseException:
            _kill_group(proc)
            raise


def drill_env(workdir: Path) -> dict[str, str]:
    """Environment of one drill's molecule run: the venv's tools first, its own dirs."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "DRILL_WORKDIR": str(workdir),
        # Molecule's state per run: a crashed earlier run cannot leave "created".
        "MOLECULE_EPHEMERAL_DIRECTORY": str(workdir / "molecule"),
        # The runner's own state dir: the flap guard sees only this drill.
        "INCIDENT_RUNNER_STATE_DIR": str(workdir / "incidents"),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


@contextlib.contextmanager
def drill_lock(scenario: str, timeout_s: float,
               cancel: threading.Event | None = None) -> Iterator[bool]:
    """One run of a drill at a time on this machine (its stack's project and port are
    fixed, and create removes a leftover stack). Yields False if not had in time."""
    path = Path(tempfile.gettempdir()) / f"incident-runner-drill-{scenario}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    yield False
                    return
                time.sleep(1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_drill(scenario: str, run_dir: Path, state_root: Path, home: Path,
              timeout_s: float = DEFAULT_TIMEOUT_S,
              cancel: threading.Event | None = None) -> DrillResult:
    """Run one drill's molecule scenario and evaluate it; stopped ones are torn down."""
    cancel = cancel or threading.Event()
    workdir = run_dir / scenario
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "molecule.log"
    env = drill_env(workdir)
    started = time.monotonic()
    with drill_lock(scenario, timeout_s, cancel) as locked:
        if not locked:
            return DrillResult(
                scenario=scenario, outcome="interrupted" if cancel.is_set() else "error",
                workdir=str(workdir),
                reason="interrupted before it started" if cancel.is_set() else
                f"another run of drill {scenario} held its lock for {timeout_s:g}s")
        rc = _molecule("test", scenario, env, home, log, timeout_s, cancel)
        if rc is None:  # stopped mid-way: tear the drill's stack down anyway
            _molecule("destroy", scenario, env, home, log, 300)
    wall = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    return evaluate(scenario, workdir, rc, text[-200_000:], state_root, wall,
                    interrupted=cancel.is_set())


@contextlib.contextmanager
def _cancel_on_signals(cancel: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM stop the running drills (their stacks are torn down) and start no more."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_drills(request: DrillRequest,
               on_event: Callable[[str, DrillResult | None], None] | None = None) -> DrillRun:
    """Run the requested drills, ``jobs`` at a time, and record each.

    A drill that fails is a result, not an exception; only bad input raises.
    """
    home = (request.home or project_root()).resolve()
    names = select_drills(request.scenarios, home)
    root = state_dir(request.state_dir).resolve()
    stamp = datetime.now(UTC)
    run_id = stamp.strftime("DRILL-%Y%m%d-%H%M%S")
    run_dir = root / DRILLS_DIR / run_id
    for n in range(2, 1000):
        if not run_dir.exists():
            break
        run_dir = root / DRILLS_DIR / f"{run_id}-{n}"
    run_dir.mkdir(parents=True)
    run = DrillRun(run_id=run_dir.name, dir=run_dir, state_dir=root, jobs=request.jobs,
                   started=stamp.isoformat(timespec="seconds").replace("+00:00", "Z"))
    began = time.monotonic()
    cancel = threading.Event()

    def one(name: str) -> DrillResult:
        if cancel.is_set():
            return DrillResult(scenario=name, outcome="interrupted",
                               reason="not started: the run was interrupted")
        if on_event:
            on_event(name, None)
        result = run_drill(name, run_dir, root, home, request.timeout_s, cancel)
        if on_event:
            on_event(name, result)
        return result

    with _cancel_on_signals(cancel), ThreadPoolExecutor(max_workers=max(1, request.jobs)) as pool:
        run.results = list(pool.map(one, names))
    run.duration_s = round(time.monotonic() - began, 1)
    write_atomic(run_dir / "summary.json", json.dumps(run.as_dict(), indent=2) + "\n")
    return run


# -- presenting -------------------------------------------------------------------------------
COLUMNS = ("SCENARIO", "OUTCOME", "DETECT", "FIRST ACTION", "RECOVERED", "RUNNER", "DRILL TOTAL",
           "RESOLVED BY / REASON")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _recovered(r: DrillResult) -> str:
    if r.recovered_s is not None:
        return _s(r.recovered_s)
    if r.escalated_s is not None:
        return f"escalated {_s(r.escalated_s)}"
    return "-"


def cells(r: DrillResult) -> tuple[str, ...]:
    why = r.resolved_by if r.outcome == "recovered" and r.resolved_by else r.reason
    return (r.scenario, r.outcome, _s(r.detect_s), _s(r.first_action_s), _recovered(r),
            _s(r.runner_s), _s(r.total_s), " ".join((why or "-").split())[:100])


def table(results: list[DrillResult]) -> str:
    rows = [COLUMNS, *(cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)),
                                row[-1]]).rstrip() for row in rows)


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown(run: DrillRun, command: str) -> str:
    machine = f"{os.cpu_count() or '?'} CPU(s)"
    lines = [
        "# Drills: measured times",
        "",
        f"Generated by `{command}` on {run.started} ({machine}, {run.jobs} drill(s) at a "
        f"time, {run.duration_s:.0f}s in all). Do not edit by hand: run it again.",
        "",
        "Each drill (`molecule/drill-<scenario>/`) brings up its own staging stack, starts a "
        "detector, injects the real fault (`playbooks/faults/<scenario>.yml`, which asserts "
        "the fault is real), lets `incident-runner remediate --drill --yes` handle it, "
        "verifies the stack independently and tears it down. Times are seconds from the "
        "start of the fault injection:",
        "",
        "- **detect**: the detector's first failed health probe (what a monitor would alert on; "
        "*detected by* says what it saw);",
        "- **first action**: the runner's first mitigation step started (the runner starts "
        "after the injection playbook ends, then captures diagnostics first);",
        "- **recovered**: the runner's verified `resolved` decision (after its stabilisation "
        "window); for a scenario with no local fix, when it escalated;",
        "- **runner**: the incident's own duration (open to close);",
        "- **drill total**: the whole drill, stack up and down included.",
        "",
        "| scenario | outcome | detect | first action | recovered | runner | drill total "
        "| detected by | resolved by / escalation reason |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in run.results:
        c = cells(r)
        why = r.resolved_by if r.outcome == "recovered" and r.resolved_by else r.reason
        lines.append(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} | {c[4]} | {c[5]} | {c[6]} | "
                     f"{_md(r.detected_by or '-')} | {_md(why or '-')} |")
    lines += ["", f"Result: {sum(r.ok for r in run.results)} of {len(run.results)} drills "
              f"{'passed' if run.ok else 'passed; see the failures above'}.", ""]
    return "\n".join(lines)
