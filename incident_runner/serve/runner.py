"""Run one incident as ``incident-runner remediate`` in a subprocess (argv, never a shell)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incident_runner.fsutil import write_atomic
from incident_runner.serve.intake import Claimed
from incident_runner.serve.settings import ServeSettings
from incident_runner.store import STATE_URL_ENV

ALERTS_DIR = "serve-alerts"


@dataclass(frozen=True)
class RunOutcome:
    outcome: str
    exit_code: int | None
    incident_id: str | None
    incident_dir: str | None
    detail: str = ""


def remediate_argv(claimed: Claimed, alert_file: Path, settings: ServeSettings,
                   state_dir: Path, config: str | None) -> list[str]:
    """The runner's argv: label values only ever as separate items, after their option."""
    argv = [sys.executable, "-m", "incident_runner", "--state-dir", str(state_dir)]
    if config:
        argv += ["--config", config]
    argv += ["remediate", "--scenario", claimed.scenario, "--json",
             "--alert-file", str(alert_file)]
    if claimed.severity:
        argv += ["--severity", claimed.severity]
    if claimed.host:
        argv += ["--limit", claimed.host]
    if settings.inventory:
        argv += ["--inventory", str(settings.inventory)]
    if settings.incident_timeout:
        argv += ["--timeout", settings.incident_timeout]
    if settings.approve_destructive:
        argv.append("--yes")
    if settings.drill:
        argv.append("--drill")
    for key, value in settings.extra_vars.items():
        argv += ["-e", f"{key}={value}"]
    if claimed.service:
        argv += ["-e", f"alert_service={claimed.service}"]
    return argv


def _outcome(rc: int, stdout: bytes, stderr: bytes) -> RunOutcome:
    try:
        summary: dict[str, Any] = json.loads(stdout.decode("utf-8", "replace"))
    except ValueError:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1][:500] if lines else f"exit {rc}, no summary"
        return RunOutcome("bad-input" if rc == 2 else "error", rc, None, None, reason)
    return RunOutcome(str(summary.get("status", "unknown")), rc, summary.get("incident_id"),
                      summary.get("dir"), str(summary.get("reason") or "")[:500])


class Runner:
    """Starts runners; remembers them so a stopping server can stop them too."""

    def __init__(self, settings: ServeSettings, state_dir: Path, config: str | None,
                 state_url: str | None = None) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.config = config
        # the runner shares serve's state database; in its environment, never in its argv
        # (a URL may hold a password, and argv is visible to every user of the machine)
        self.env = {**os.environ, STATE_URL_ENV: state_url} if state_url else None
        self.running: set[asyncio.subprocess.Process] = set()

    async def run(self, claimed: Claimed) -> RunOutcome:
        alert_file = self.state_dir / ALERTS_DIR / f"{claimed.id}.json"
        write_atomic(alert_file, json.dumps(claimed.alert, indent=2))
        argv = remediate_argv(claimed, alert_file, self.settings, self.state_dir, self.config)
        wrapped = [sys.executable, "-m", "incident_runner.serve.child", str(os.getpid()), *argv]
        proc = await asyncio.create_subprocess_exec(
            *wrapped, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env)
        self.running.add(proc)
        try:
            stdout, stderr = await proc.communicate()
        finally:
            self.running.discard(proc)
        return _outcome(proc.returncode or 0, stdout, stderr)

    async def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM every runner (each closes its incident as interrupted), then wait."""
        procs = list(self.running)
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        if procs:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=grace)
