"""A real `incident-runner serve` process for tests, and a small HTTP client for it."""

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

import yaml

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
        deadline = time.monotonic() + 60
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
        raise AssertionError(f"serve did not answer within 60 s: {self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
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


# -- Prometheus, Alertmanager, blackbox exporter (Debian packages) on loopback ------------
EXAMPLES = ROOT / "examples" / "alerting"


@dataclass
class Daemon:
    """One monitoring process with its own config and data dirs, on a 127.0.0.1 port."""

    name: str
    argv: list[str]
    ready_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Daemon:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: "
                                     f"{self.log.read_text()[-2000:]}")
            try:
                if get(self.ready_url, timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {timeout} s: "
                             f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _dump(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def alertmanager(workdir: Path, port: int, serve_url: str, token_file: Path,
                 timers: str = "1s") -> Daemon:
    """Alertmanager from examples/alerting/alertmanager.yml: our webhook URL, token, timers."""
    config = _yaml(EXAMPLES / "alertmanager.yml")
    config["route"].update(group_wait=timers, group_interval=timers, repeat_interval="1h")
    hook = config["receivers"][0]["webhook_configs"][0]
    hook["url"] = f"{serve_url}/alerts/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    path = _dump(workdir / "alertmanager" / "alertmanager.yml", config)
    return Daemon("alertmanager", [
        "/usr/bin/prometheus-alertmanager", f"--config.file={path}",
        f"--storage.path={workdir / 'alertmanager' / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        f"--web.external-url=http://127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/-/ready", workdir / "alertmanager.log")


def blackbox(workdir: Path, port: int) -> Daemon:
    path = _dump(workdir / "blackbox" / "blackbox.yml", _yaml(EXAMPLES / "blackbox.yml"))
    return Daemon("blackbox", [
        "/usr/bin/prometheus-blackbox-exporter", f"--config.file={path}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/-/healthy", workdir / "blackbox.log")


def prometheus(workdir: Path, port: int, target: str, blackbox_port: int,
               alertmanager_port: int, interval: str = "1s", rule_for: str = "2s") -> Daemon:
    """Prometheus from examples/alerting/: probe `target`, alert rule with `for: rule_for`."""
    config = _yaml(EXAMPLES / "prometheus.yml")
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{alertmanager_port}"]
    job = config["scrape_configs"][0]
    job["scrape_timeout"] = interval
    job["static_configs"][0]["targets"] = [target]
    job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{blackbox_port}"
    rules = _yaml(EXAMPLES / "rules.yml")
    rules["groups"][0]["rules"][0]["for"] = rule_for
    _dump(workdir / "prometheus" / "rules.yml", rules)
    path = _dump(workdir / "prometheus" / "prometheus.yml", config)
    return Daemon("prometheus", [
        "/usr/bin/prometheus", f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus' / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/-/ready", workdir / "prometheus.log")
