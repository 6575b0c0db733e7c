"""A real `incident-runner serve` process for tests, and a small HTTP client for it.

Prometheus, Alertmanager and the blackbox exporter for tests come from the alert loop's
one home, ``incident_runner.drill.alertloop`` (the drill alert-loop uses the same)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVE_HOME = ROOT / "tests" / "fixtures" / "serve_home"
TOKEN = "test-token-0123456789abcdef"  # noqa: S105  (test-only)


def post(url: str, body: bytes | dict[str, Any] | list[Any], token: str | None = TOKEN,
         timeout: float = 30) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), dict(json.loads(raw))
        except ValueError:
            return int(exc.code), {"raw": raw.decode("utf-8", "replace")}


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@dataclass
class Serve:
    """`incident-runner serve` on 127.0.0.1:port with its own state dir."""

    port: int
    state: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def intake(self) -> Path:
        return self.state / "serve-intake.sqlite"

    def start(self) -> Serve:
        env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "INCIDENT_RUNNER_HOME": str(SERVE_HOME),
               "INCIDENT_RUNNER_CONFIG": str(SERVE_HOME / "incident-runner.yml"),
               "IR_SERVE_TEST_TOKEN": TOKEN, **self.env}
        env.pop("INCIDENT_RUNNER_WEBHOOK_URL", None)
        self.state.mkdir(parents=True, exist_ok=True)
        self.log = self.state.parent / f"serve-{self.port}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "incident-runner"), "--state-dir", str(self.state), "serve",
                 "--listen", f"127.0.0.1:{self.port}", *self.args],
                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120  # a loaded 2-core machine starts it slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: "
                                     f"{self.log.read_text()[-2000:]}")
            try:
                if get(self.url + "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not answer within 120 s: {self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a stop that hangs must not hang the caller
                self.proc.kill()
                self.proc.wait(timeout=60)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.intake, timeout=30) as db:
            return list(db.execute(sql, params).fetchall())

    def wait_done(self, count: int, timeout: float = 300) -> list[tuple[Any, ...]]:
        """Poll until `count` incidents are done; their rows (id, scenario, outcome, dir)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.rows("SELECT id, scenario, outcome, incident_dir, dedupe_key "
                             "FROM incidents WHERE state = 'done' ORDER BY id")
            if len(done) >= count or time.monotonic() > deadline:
                return done
            time.sleep(0.3)


def alertmanager_payload(alertname: str, group: str, fingerprint: str,
                         status: str = "firing", **labels: str) -> dict[str, Any]:
    return {"version": "4", "status": status, "receiver": "incident-runner",
            "groupKey": group, "groupLabels": {"alertname": alertname},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1",
            "alerts": [{"status": status, "labels": {"alertname": alertname, **labels},
                        "annotations": {"summary": f"{alertname} on {group}"},
                        "startsAt": "2026-12-02T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": fingerprint}]}
