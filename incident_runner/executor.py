"""Run one playbook through ansible-runner and turn its events into timeline entries.

Every playbook the runner executes goes through ``run_playbook``: a private
data directory (0700, removed afterwards) holds the generated wrapper play and
the extra vars; artifacts stay in the incident folder under ``artifacts/``.
Values supplied by people (``-e``) are passed tagged ``!unsafe`` so Ansible
never templates them: a ``{{ }}`` in an incident value is data.

Safety (docs/safety.md):

- secrets never reach the artifacts: every event is redacted before
  ansible-runner writes it, ``command`` (which holds the environment) is
  scrubbed before the playbook starts, ``stdout`` is written from the redacted
  events instead of the raw stream, and the folder is scrubbed again after the
  run;
- ``ansible-playbook`` is started through ``playbook_guard`` so it dies with
  the runner (``kill -9`` included) and takes its process group with it;
- in check mode a callback records tasks Ansible could not check: they come
  back as ``impact_unknown`` results, never as "no change".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from incident_runner import playbook_guard
from incident_runner.ansible_env import install_guard, playbook_env
from incident_runner.errors import ExecutionError
from incident_runner.fsutil import write_atomic
from incident_runner.plays import dump_play, dump_vars
from incident_runner.procutil import proc_state
from incident_runner.redaction import Redactor
from incident_runner.secrets import scrub_artifacts, scrub_file
from incident_runner.timeline import Timeline

LOG = logging.getLogger(__name__)

RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}
MAX_MESSAGE = 500
# ansible-runner polls the cancel flag and the timeout once per pexpect read timeout.
POLL_SECONDS = 0.5
# ansible-runner's own timeout is only a backstop: ours goes through the guard first.
BACKSTOP_SECONDS = 30
GUARD_GRACE_SECONDS = 10.0
IMPACT_UNKNOWN = "impact_unknown"
RAN_FOR_REAL = "ran_for_real"


@dataclass
class TaskResult:
    task: str
    host: str
    status: str  # ok | failed | unreachable | impact_unknown | ran_for_real (check mode only)
    changed: bool
    message: str = ""
    evidence: Any = None  # what a module says it found or did (our modules return `evidence`)


@dataclass
class PlaybookRun:
    """What one ansible-runner invocation did."""

    ident: str
    status: str  # successful | failed | timeout | canceled | error
    rc: int
    started: float
    ended: float
    check_mode: bool
    tasks: list[TaskResult] = field(default_factory=list)
    artifacts: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def changed(self) -> int:
        return sum(1 for t in self.tasks if t.changed)

    @property
    def failures(self) -> list[str]:
        return [f"{t.task}: {t.message}" for t in self.tasks
                if t.status not in {"ok", IMPACT_UNKNOWN, RAN_FOR_REAL}]

    @property
    def impact_unknown(self) -> list[TaskResult]:
        """Check mode: tasks Ansible skipped because they cannot be checked."""
        return [t for t in self.tasks if t.status == IMPACT_UNKNOWN]

    @property
    def ran_for_real(self) -> list[TaskResult]:
        """Check mode: ``check_mode: false`` tasks that reported a change."""
        return [t for t in self.tasks if t.status == RAN_FOR_REAL]

    @property
    def would_change(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.status == "ok" and t.changed]


def _message(res: dict[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not isinstance(msg, str):
        msg = str(msg)
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return first[:MAX_MESSAGE]


class _EventSink:
    """Receives ansible-runner events; writes the meaningful ones to the timeline."""

    def __init__(self, timeline: Timeline, context: dict[str, Any], redactor: Redactor,
                 on_task: Callable[[TaskResult], None] | None,
                 on_done: Callable[[list[TaskResult]], None] | None = None) -> None:
        self.timeline = timeline
        self.context = context
        self.redactor = redactor
        self.on_task = on_task
        self.on_done = on_done
        self.tasks: list[TaskResult] = []
        self.stdout: list[tuple[int, str]] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        # ansible-runner writes this same dict to artifacts/job_events after we return:
        # redact it in place so no secret reaches the disk.
        clean = self.redactor.data(event)
        event.clear()
        event.update(clean)
        if event.get("stdout"):
            self.stdout.append((int(event.get("counter") or 0), str(event["stdout"])))
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.timeline.append("task_started", **self.context,
                                 task=self.redactor.text(str(data.get("task", ""))))
        elif kind in RESULT_EVENTS:
            res = data.get("res") or {}
            status = {"runner_on_ok": "ok", "runner_on_failed": "failed"}.get(kind, "unreachable")
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                status = "ok"
            result = TaskResult(
                task=self.redactor.text(str(data.get("task", ""))),
                host=str(data.get("host", "")),
                status=status,
                changed=bool(res.get("changed", False)),
                # "unreachable: HOST" names the host the ladder escalates for.
                message=self.redactor.text(
                    f"unreachable: {data.get('host', '')}: {_message(res)}"
                    if status == "unreachable" else _message(res)),
                evidence=res.get("evidence"),
            )
            self.tasks.append(result)
            self.timeline.append("task_result", **self.context, task=result.task,
                                 host=result.host, status=result.status,
                                 changed=result.changed, message=result.message,
                                 duration=data.get("duration"),
                                 **({"evidence": result.evidence} if result.evidence else {}))
            if self.on_task:
                self.on_task(result)
        elif kind == "playbook_on_stats" and self.on_done is not None:
            # Every play has ended; what is left is ansible-playbook exiting (~0.3 s).
            try:
                self.on_done(list(self.tasks))
            except Exception:  # a hook must never break the run's event stream
                LOG.exception("on_done hook failed")
        # Returning True keeps the event in the runner's artifacts/job_events.
        return True

    def add(self, result: TaskResult, kind: str) -> None:
        """A result learnt after the run (check-mode notes from the callback)."""
        self.tasks.append(result)
        self.timeline.append("task_result", **self.context, task=result.task, host=result.host,
                             status=result.status, changed=result.changed,
                             message=result.message, note=kind)
        if self.on_task:
            self.on_task(result)


def _scrub_command(redactor: Redactor) -> Any:
    """A status handler: on 'running' the ``command`` artifact (the environment) exists and
    the playbook has not started yet; mask its secrets now."""
    def handler(data: dict[str, Any], runner_config: Any = None) -> None:
        if data.get("status") == "running" and runner_config is not None:
            scrub_file(Path(runner_config.artifact_dir) / "command", redactor)
    return handler


class _Stopper:
    """Decides when ansible-runner cancels the playbook, and stops it through the guard.

    ansible-runner's own kill (SIGKILL to the playbook's process group) misses
    Ansible's workers, which run in sessions of their own; the guard kills the
    whole tree. So on timeout or cancel we SIGTERM the guard and wait for it
    before telling ansible-runner to cancel.
    """

    def __init__(self, private: Path, timeout: int | None, cancel: threading.Event | None) -> None:
        self.private = private
        self.deadline = time.monotonic() + timeout if timeout else None
        self.cancel = cancel
        self.timed_out = False
        self.stopped = False

    def __call__(self) -> bool:
        if self.stopped:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.timed_out = True
        elif not (self.cancel is not None and self.cancel.is_set()):
            return False
        self.stop_guard()
        self.stopped = True
        return True

    def stop_guard(self) -> None:
        try:
            pid = int((self.private / playbook_guard.PID_FILE).read_text())
        except (OSError, ValueError):
            return
        state = proc_state(pid)
        if state is None or state[1] != os.getpid():  # not (or no longer) our guard
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GUARD_GRACE_SECONDS
        while time.monotonic() < deadline:
            state = proc_state(pid)
            if state is None or state[0] == "Z":
                return
            time.sleep(0.05)
        LOG.warning("playbook guard %s did not stop within %ss", pid, GUARD_GRACE_SECONDS)


def _check_notes(impact_file: Path, sink: _EventSink) -> None:
    """Turn the check callback's records into ``impact_unknown`` / ``ran_for_real`` results."""
    if not impact_file.exists():
        return
    for line in impact_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            note = json.loads(line)
        except ValueError:
            continue
        if not isinstance(note, dict):
            continue
        item = f" (item {note['item']})" if note.get("item") not in (None, "") else ""
        reason = sink.redactor.text(str(note.get("reason", "")))[:MAX_MESSAGE]
        if note.get("kind") == "forced":
            result = TaskResult(task=sink.redactor.text(str(note.get("task", ""))) + item,
                                host=str(note.get("host", "")), status=RAN_FOR_REAL,
                                changed=False, message=f"ran for real in check mode: {reason}")
        else:
            result = TaskResult(task=sink.redactor.text(str(note.get("task", ""))) + item,
                                host=str(note.get("host", "")), status=IMPACT_UNKNOWN,
                                changed=False,
                                message=f"impact unknown (not checkable in check mode): {reason}")
        sink.add(result, "check_mode")


def _write_stdout(folder: Path, sink: _EventSink) -> None:
    """``artifacts/<ident>/stdout`` from the redacted events (the raw stream is not kept)."""
    if folder.is_dir():
        text = "\n".join(chunk for _, chunk in sorted(sink.stdout, key=lambda c: c[0]))
        write_atomic(folder / "stdout", text + ("\n" if text else ""))


def run_playbook(
    *,
    ident: str,
    play: list[dict[str, Any]],
    inventory: Path,
    timeline: Timeline,
    artifacts_dir: Path,
    context: dict[str, Any],
    limit: str | None = None,
    data_vars: dict[str, Any] | None = None,
    check: bool = False,
    timeout: int | None = None,
    verbosity: int = 0,
    redactor: Redactor | None = None,
    cancel: threading.Event | None = None,
    on_task: Callable[[TaskResult], None] | None = None,
    on_done: Callable[[list[TaskResult]], None] | None = None,
    vault_password_file: Path | None = None,
    forks: int | None = None,
) -> PlaybookRun:
    """Run ``play`` (a generated wrapper playbook) and record its events.

    ``data_vars`` are people's values: passed as extra vars tagged !unsafe.
    ``timeout`` (seconds): past it the playbook's process group is killed and
    the run's status is ``timeout``. ``forks``: Ansible's parallelism (None: ansible.cfg's).
    ``on_done``: called with the task results once every play has ended, before the
    process has exited.
    """
    redactor = redactor or Redactor()
    sink = _EventSink(timeline, context, redactor, on_task, on_done)
    private = Path(tempfile.mkdtemp(prefix="ir-run-"))
    private.chmod(0o700)
    impact_file = private / "check-impact.jsonl" if check else None
    stopper = _Stopper(private, timeout, cancel)
    started = time.time()
    try:
        (private / "project").mkdir(mode=0o700)
        # Values wrapped in mark_unsafe() are written with the !unsafe tag: data, not templates.
        (private / "project" / "main.yml").write_text(
            dump_play(play))
        # ansible-runner ignores run(settings=...) unless env/settings exists: write the file.
        # No raw stdout file (it is written from the redacted events afterwards); poll the
        # cancel flag and the deadline every POLL_SECONDS.
        (private / "env").mkdir(mode=0o700)
        (private / "env" / "settings").write_text(json.dumps(
            {"suppress_output_file": True, "pexpect_timeout": POLL_SECONDS}))
        install_guard(private)
        cmdline = []
        if data_vars:
            vars_file = private / "extravars.yml"
            vars_file.write_text(dump_vars(data_vars))
            vars_file.chmod(0o600)
            cmdline += ["-e", f"@{vars_file}"]
        if vault_password_file is not None:
            cmdline += ["--vault-password-file", str(vault_password_file)]
        if check:
            cmdline += ["--check", "--diff"]
        artifacts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        runner = ansible_runner.run(
            private_data_dir=str(private),
            artifact_dir=str(artifacts_dir),
            ident=ident,
            playbook="main.yml",
            inventory=str(inventory),
            limit=limit,
            forks=forks,
            cmdline=shlex.join(cmdline) if cmdline else None,
            envvars=playbook_env(private, impact_file),
            verbosity=verbosity or None,
            quiet=True,
            timeout=timeout + BACKSTOP_SECONDS if timeout else None,
            suppress_env_files=True,
            event_handler=sink,
            status_handler=_scrub_command(redactor),
            cancel_callback=stopper,
        )
        if impact_file is not None:
            _check_notes(impact_file, sink)
    except ExecutionError:
        raise
    except Exception as exc:  # ansible-runner raises bare exceptions on set-up problems
        raise ExecutionError(
            f"ansible-runner could not start '{ident}': {redactor.text(str(exc))}") from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
        _write_stdout(artifacts_dir / ident, sink)
        scrub_artifacts(artifacts_dir / ident, redactor)
    status = "timeout" if stopper.timed_out else str(runner.status)
    rc = int(runner.rc) if runner.rc is not None else -1
    return PlaybookRun(ident=ident, status=status, rc=rc, started=started, ended=time.time(),
                       check_mode=check, tasks=sink.tasks,
                       artifacts=artifacts_dir / ident)
