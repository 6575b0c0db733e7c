"""Run one playbook through ansible-runner and turn its events into timeline entries.

Every playbook the runner executes goes through ``run_playbook``: a private
data directory (0700, removed afterwards) holds the generated wrapper play and
the extra vars; artifacts stay in the incident folder under ``artifacts/``.
Values supplied by people (``-e``) are passed tagged ``!unsafe`` so Ansible
never templates them: a ``{{ }}`` in an incident value is data.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from incident_runner.errors import ExecutionError
from incident_runner.paths import project_root, roles_dir
from incident_runner.redaction import Redactor
from incident_runner.timeline import Timeline

LOG = logging.getLogger(__name__)

RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}
MAX_MESSAGE = 500


class _Unsafe(str):
    """A string Ansible must never template."""


def _unsafe_representer(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value))


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(_Unsafe, _unsafe_representer)


def mark_unsafe(value: Any) -> Any:
    """Tag every string in a structure as !unsafe (data, not template)."""
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(v) for v in value]
    return value


@dataclass
class TaskResult:
    task: str
    host: str
    status: str  # ok | failed | unreachable
    changed: bool
    message: str = ""


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
        return [f"{t.task}: {t.message}" for t in self.tasks if t.status != "ok"]


def _message(res: dict[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not isinstance(msg, str):
        msg = str(msg)
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return first[:MAX_MESSAGE]


class _EventSink:
    """Receives ansible-runner events; writes the meaningful ones to the timeline."""

    def __init__(self, timeline: Timeline, context: dict[str, Any], redactor: Redactor,
                 on_task: Callable[[TaskResult], None] | None) -> None:
        self.timeline = timeline
        self.context = context
        self.redactor = redactor
        self.on_task = on_task
        self.tasks: list[TaskResult] = []

    def __call__(self, event: dict[str, Any]) -> bool:
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
                message=self.redactor.text(_message(res)),
            )
            self.tasks.append(result)
            self.timeline.append("task_result", **self.context, task=result.task,
                                 host=result.host, status=result.status,
                                 changed=result.changed, message=result.message,
                                 duration=data.get("duration"))
            if self.on_task:
                self.on_task(result)
        # Returning True keeps the event in the runner's artifacts/job_events.
        return True


def _envvars() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        # ansible-runner runs ansible-playbook from PATH: use the one beside us.
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(roles_dir()),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }


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
) -> PlaybookRun:
    """Run ``play`` (a generated wrapper playbook) and record its events.

    ``data_vars`` are people's values: passed as extra vars tagged !unsafe.
    """
    redactor = redactor or Redactor()
    sink = _EventSink(timeline, context, redactor, on_task)
    private = Path(tempfile.mkdtemp(prefix="ir-run-"))
    private.chmod(0o700)
    started = time.time()
    try:
        (private / "project").mkdir(mode=0o700)
        (private / "project" / "main.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        cmdline = []
        if data_vars:
            vars_file = private / "extravars.yml"
            vars_file.write_text(yaml.dump(mark_unsafe(data_vars), Dumper=_VarsDumper))
            vars_file.chmod(0o600)
            cmdline += ["-e", f"@{vars_file}"]
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
            cmdline=" ".join(cmdline) if cmdline else None,
            envvars=_envvars(),
            verbosity=verbosity or None,
            quiet=True,
            timeout=timeout,
            suppress_env_files=True,
            event_handler=sink,
            cancel_callback=(lambda: bool(cancel and cancel.is_set())),
        )
    except Exception as exc:  # ansible-runner raises bare exceptions on set-up problems
        raise ExecutionError(f"ansible-runner could not start '{ident}': {exc}") from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    status = str(runner.status)
    rc = int(runner.rc) if runner.rc is not None else -1
    return PlaybookRun(ident=ident, status=status, rc=rc, started=started, ended=time.time(),
                       check_mode=check, tasks=sink.tasks,
                       artifacts=artifacts_dir / ident)


def role_play(name: str, hosts: str, role: str, play_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """A one-play wrapper running ``role`` on ``hosts`` with scenario vars."""
    return [{
        "name": name, "hosts": hosts, "gather_facts": False,
        "vars": play_vars, "roles": [{"role": role}],
    }]


def playbook_play(playbook: Path, play_vars: dict[str, Any]) -> list[dict[str, Any]]:
    """A wrapper importing a shipped playbook with scenario vars."""
    return [{"ansible.builtin.import_playbook": str(playbook), "vars": play_vars}]
