"""The alert loop: Prometheus, the blackbox exporter, Alertmanager and ``serve`` on
loopback ports, watching one staging stack through its proxy.

The one home of the loop. The drill ``alert-loop`` (``molecule/drill-alert-loop/``,
which ``tests/integration/test_alert_loop.py`` runs) drives it in three calls; the
serve tests build single daemons from it (:class:`Daemon`, :func:`alertmanager`).

``up``
    A supervisor, started detached (it outlives the play step that starts it),
    writes the configs from ``examples/alerting/`` with loopback ports picked at
    start and short timers (scrape and evaluation every 1 s, the rule's ``for:
    2s``, Alertmanager's group timers 1 s), starts serve (one worker, incidents
    recorded as drills), the blackbox exporter, Alertmanager and Prometheus,
    and says ``ready`` once Prometheus has seen the stack answer 200 through the
    proxy. It stops them all on SIGTERM or at its deadline; every daemon also
    gets SIGTERM if the supervisor dies, even by ``kill -9`` (PR_SET_PDEATHSIG).
``wait``
    Follows serve's intake until the scenario's alert was received, its
    incident finished and the alert resolved. Writes ``alert.json`` (each stage
    in epoch seconds and what serve recorded) and ``runner.json`` (the runner's
    answer, in the shape the other drills' converge writes it).
``down``
    Stops the supervisor named in the state file (only if that pid still runs
    it) and waits until it has stopped its daemons.

Files, under ``<workdir>/alertloop/``: ``state.json`` (the supervisor's state),
``incident-runner.yml`` (the config in effect plus the ``serve:`` section),
``serve.token``, each daemon's config, data and log, and ``state/`` (serve's
state dir: its intake and the incident, which ``incident-runner drill`` then
moves into the state dir ``stats`` reads).

    python -m incident_runner.drill.alertloop up --workdir W --target URL \\
        --inventory W/inventory.yml --detach
    python -m incident_runner.drill.alertloop wait --workdir W --scenario proxy-502
    python -m incident_runner.drill.alertloop down --workdir W
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from incident_runner.config import find_config
from incident_runner.fsutil import write_atomic
from incident_runner.journal import load_journal
from incident_runner.paths import project_root
from incident_runner.procutil import proc_state
from incident_runner.report import report_filename
from incident_runner.serve.intake import INTAKE_FILE
from incident_runner.timeutil import epoch

LOOP_DIR = "alertloop"
STATE_FILE = "state.json"
ALERT_FILE = "alert.json"
RUNNER_FILE = "runner.json"
JOB = "staging-proxy"  # the scrape job of examples/alerting/prometheus.yml
INTERVAL = "1s"  # scrape and evaluation interval; Alertmanager's group timers
RULE_FOR = "2s"
MODULE = "incident_runner.drill.alertloop"
EXPECT_RC = {"resolved": 0, "escalated": 3}


class LoopError(RuntimeError):
    """A daemon of the loop did not start, or the loop did not see what it waited for."""


def examples_dir(home: Path | None = None) -> Path:
    return (home or project_root()) / "examples" / "alerting"


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """Status and body of a GET to one of our loopback daemons."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback http)
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def free_port() -> int:
    """A free 127.0.0.1 port from the kernel's ephemeral range (never a fixed test port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-size:]
    except OSError:
        return ""


@dataclass
class Daemon:
    """One process of the loop with its own config and data, on a 127.0.0.1 port.

    Started through ``incident_runner.serve.child`` (PR_SET_PDEATHSIG): it gets
    SIGTERM when the thread that started it dies, so no daemon outlives its owner.
    """

    name: str
    argv: list[str]
    ready_url: str
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.ready_url).port or 0)

    def start(self, timeout: float = 60) -> Daemon:
        """Start it and return once ``ready_url`` answers 200 (LoopError if it does not)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        wrapped = [sys.executable, "-m", "incident_runner.serve.child", str(os.getpid()),
                   *self.argv]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(wrapped, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LoopError(f"{self.name} exited {self.proc.returncode}: "
                                f"{_tail(self.log)}")
            with contextlib.suppress(OSError):
                if http_get(self.ready_url, timeout=2)[0] == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise LoopError(f"{self.name} not ready in {timeout:g} s: {_tail(self.log)}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 30) -> None:
        """SIGTERM (serve then stops its runners, which close their incidents), then SIGKILL."""
        if not self.running() or self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(data, sort_keys=False), mode=0o644)
    return path


# -- the daemons, from examples/alerting/ with our addresses and timers -------------------
def alertmanager(workdir: Path, port: int, serve_url: str, token_file: Path,
                 timers: str = INTERVAL, home: Path | None = None) -> Daemon:
    """Alertmanager from examples/alerting/alertmanager.yml: our webhook URL, token, timers."""
    config = _yaml(examples_dir(home) / "alertmanager.yml")
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


def blackbox(workdir: Path, port: int, home: Path | None = None) -> Daemon:
    path = _dump(workdir / "blackbox" / "blackbox.yml", _yaml(examples_dir(home) / "blackbox.yml"))
    return Daemon("blackbox", [
        "/usr/bin/prometheus-blackbox-exporter", f"--config.file={path}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/-/healthy", workdir / "blackbox.log")


def prometheus(workdir: Path, port: int, target: str, blackbox_port: int,
               alertmanager_port: int, interval: str = INTERVAL, rule_for: str = RULE_FOR,
               home: Path | None = None) -> Daemon:
    """Prometheus from examples/alerting/: probe `target`, alert rule with `for: rule_for`."""
    config = _yaml(examples_dir(home) / "prometheus.yml")
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{alertmanager_port}"]
    job = config["scrape_configs"][0]
    job["scrape_timeout"] = interval
    job["static_configs"][0]["targets"] = [target]
    job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{blackbox_port}"
    rules = _yaml(examples_dir(home) / "rules.yml")
    rules["groups"][0]["rules"][0]["for"] = rule_for
    _dump(workdir / "prometheus" / "rules.yml", rules)
    path = _dump(workdir / "prometheus" / "prometheus.yml", config)
    return Daemon("prometheus", [
        "/usr/bin/prometheus", f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus' / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/-/ready", workdir / "prometheus.log")


def serve(workdir: Path, port: int, config: Path, home: Path | None = None) -> Daemon:
    """``incident-runner serve`` with the loop's config; its state dir is ``workdir/state``."""
    home = home or project_root()
    venv = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
           "INCIDENT_RUNNER_HOME": str(home), "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}
    if (home / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(home / "ansible.cfg")
    return Daemon("serve", [
        str(venv / "incident-runner"), "--state-dir", str(workdir / "state"),
        "--config", str(config), "serve", "--listen", f"127.0.0.1:{port}",
    ], f"http://127.0.0.1:{port}/healthz", workdir / "serve.log", env=env)


def serve_config(workdir: Path, inventory: Path, token_file: Path,
                 home: Path | None = None) -> Path:
    """The config in effect (severity scale, safety rails) with the example's ``serve:``
    section pointed at the drill: its inventory, the token, one worker, incidents as drills."""
    source = find_config(None)
    data: dict[str, Any] = dict(_yaml(source) or {}) if source else {}
    if source and data.get("scenario_paths"):  # relative to the file we no longer sit beside
        data["scenario_paths"] = [str((source.parent / p).resolve())
                                  for p in data["scenario_paths"]]
    section = dict(_yaml(examples_dir(home) / "serve-config.yml")["serve"])
    section.pop("listen", None)
    section.update(token_file=str(token_file), inventory=str(inventory), workers=1, drill=True)
    data["serve"] = section
    path = workdir / "incident-runner.yml"
    write_atomic(path, f"---\n# The alert loop's config: {source or 'built-in defaults'} "
                 "with the serve: section of examples/alerting/serve-config.yml.\n"
                 + yaml.safe_dump(data, sort_keys=False), mode=0o600)
    return path


def start_on_free_port(make: Callable[[int], Daemon], tries: int = 3) -> Daemon:
    """Start a daemon on a port picked now; another port if someone took it meanwhile."""
    for attempt in range(1, tries + 1):
        daemon = make(free_port())
        try:
            return daemon.start()
        except LoopError as exc:
            if attempt == tries or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def prom_value(port: int, query: str) -> float | None:
    """The first value of an instant query (None: no series, or Prometheus said no)."""
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?"
                            + urllib.parse.urlencode({"query": query}), timeout=5)
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


# -- up: the supervisor ---------------------------------------------------------------
class _Stopped(Exception):  # noqa: N818  (a signal, not an error)
    pass


def _raise_stopped(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def supervise(workdir: Path, target: str, inventory: Path, deadline: float,
              ready_timeout: float, home: Path | None = None) -> int:
    """Run the loop until SIGTERM or ``deadline`` seconds (see the module's ``up``)."""
    loop = workdir / LOOP_DIR
    loop.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"pid": os.getpid(), "state": "starting", "started": time.time(),
                             "target": target, "ports": {}, "error": None}

    def save(**changes: Any) -> None:
        state.update(changes)
        write_atomic(loop / STATE_FILE, json.dumps(state, indent=2) + "\n", mode=0o644)

    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    save()
    daemons: list[Daemon] = []
    try:
        # A fresh intake each time: a by-hand rerun in the same work dir must not be
        # deduplicated against the last run's incident.
        for suffix in ("", "-wal", "-shm"):
            (loop / "state" / f"{INTAKE_FILE}{suffix}").unlink(missing_ok=True)
        token = loop / "serve.token"
        write_atomic(token, secrets.token_urlsafe(32) + "\n", mode=0o600)
        config = serve_config(loop, inventory, token, home)
        daemons.append(start_on_free_port(lambda p: serve(loop, p, config, home)))
        daemons.append(start_on_free_port(lambda p: blackbox(loop, p, home)))
        daemons.append(start_on_free_port(lambda p: alertmanager(
            loop, p, f"http://127.0.0.1:{daemons[0].port}", token, home=home)))
        daemons.append(start_on_free_port(lambda p: prometheus(
            loop, p, target, daemons[1].port, daemons[2].port, home=home)))
        ports = {d.name: d.port for d in daemons}
        save(ports=ports, serve_url=f"http://127.0.0.1:{ports['serve']}",
             pids={d.name: d.proc.pid for d in daemons if d.proc})
        query = f'probe_http_status_code{{job="{JOB}"}}'
        until = time.monotonic() + ready_timeout
        while prom_value(ports["prometheus"], query) != 200:
            if time.monotonic() >= until:
                raise LoopError(f"Prometheus did not see {target} answer 200 through the "
                                f"proxy in {ready_timeout:g} s ({query}: "
                                f"{prom_value(ports['prometheus'], query)})")
            time.sleep(0.2)
        save(state="ready", ready=time.time())
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            dead = [d for d in daemons if not d.running()]
            if dead:
                raise LoopError(f"{dead[0].name} exited "
                                f"{dead[0].proc.returncode if dead[0].proc else '?'}: "
                                f"{_tail(dead[0].log, 500)}")
            time.sleep(0.5)
        save(error=f"deadline: stopped after {deadline:g} s")
    except _Stopped:
        pass
    except (LoopError, OSError, ValueError, KeyError) as exc:
        save(state="failed", error=" ".join(str(exc).split())[:2000])
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # finish the teardown
            signal.signal(signum, signal.SIG_IGN)
        for daemon in reversed(daemons):
            daemon.stop()
        # CPU of the loop: this process and its reaped daemons (serve's runners included),
        # which the drill's own process tree does not see (we run detached).
        cpu = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))
        save(state="failed" if state["state"] == "failed" else "stopped", stopped=time.time(),
             cpu_s=round(cpu, 2))
    return 1 if state["state"] == "failed" else 0


def start_detached(argv: list[str], workdir: Path, timeout: float) -> dict[str, Any]:
    """Start the supervisor in its own session and wait until it is ready or says why not."""
    path = workdir / LOOP_DIR / STATE_FILE
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (workdir / LOOP_DIR / "supervisor.log").open("ab") as log:
        subprocess.Popen([sys.executable, "-m", MODULE, *argv], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True)
    until = time.monotonic() + timeout
    while True:
        state = read_json(path) or {"state": "missing"}
        if state["state"] not in ("starting", "missing") or time.monotonic() >= until:
            return state
        time.sleep(0.1)


def _is_supervisor(pid: int) -> bool:
    try:
        return MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def down(workdir: Path, timeout: float = 90) -> dict[str, Any]:
    """Stop the supervisor of ``workdir`` (if that pid still runs it) and wait for it."""
    path = workdir / LOOP_DIR / STATE_FILE
    state = read_json(path) or {}
    pid = state.get("pid")
    if not isinstance(pid, int):
        return {"stopped": False, "why": "no alert loop state"}
    if not _is_supervisor(pid):
        return {"stopped": False, "why": f"pid {pid} is not the alert loop's supervisor",
                "state": state.get("state")}
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        live = proc_state(pid)
        if live is None or live[0] == "Z" or not _is_supervisor(pid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # its daemons get SIGTERM from PR_SET_PDEATHSIG
    return {"stopped": True, "pid": pid, "state": (read_json(path) or {}).get("state")}


# -- wait: the stages, read from serve's intake ------------------------------------------
@contextlib.contextmanager
def _intake(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=30)
    try:
        yield db
    finally:
        db.close()


def intake_facts(path: Path, scenario: str) -> dict[str, Any]:
    """What serve recorded for ``scenario``: its first firing alert, that alert's incident,
    the resolved alert of that incident, and the counts."""
    facts: dict[str, Any] = {}
    if not path.is_file():
        return facts
    with _intake(path) as db:
        firing = db.execute(
            "SELECT id, received_at, starts_at, disposition, incident, labels FROM alerts "
            "WHERE status = 'firing' AND scenario = ? ORDER BY id LIMIT 1", (scenario,)).fetchone()
        facts["incidents"] = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
        facts["alerts"] = dict(db.execute(
            "SELECT status || '/' || disposition, count(*) FROM alerts GROUP BY 1").fetchall())
        if firing is None:
            return facts
        labels = json.loads(firing[5])
        facts.update(alert_id=firing[0], received_at=firing[1], starts_at=firing[2],
                     disposition=firing[3], incident=firing[4], labels=labels,
                     alertname=labels.get("alertname"))
        if firing[4] is None:
            return facts
        row = db.execute(
            "SELECT state, outcome, exit_code, incident_id, incident_dir, finished_at, severity, "
            "host, detail FROM incidents WHERE id = ?", (firing[4],)).fetchone()
        if row is not None:
            facts.update(zip(("state", "outcome", "exit_code", "incident_id", "incident_dir",
                              "finished_at", "severity", "host", "detail"), row, strict=True))
        resolved = db.execute(
            "SELECT received_at FROM alerts WHERE status = 'resolved' AND incident = ? "
            "ORDER BY id LIMIT 1", (firing[4],)).fetchone()
        if resolved is not None:
            facts["resolved_received_at"] = resolved[0]
    return facts


def runner_answer(facts: dict[str, Any], expect: str) -> dict[str, Any]:
    """The runner's answer as the drills' converge records it (``runner.json``), rebuilt
    from serve's intake row and the incident's journal."""
    summary: dict[str, Any] = {}
    folder = Path(str(facts.get("incident_dir") or ""))
    if facts.get("incident_dir") and folder.is_dir():
        journal = load_journal(folder)
        summary = {
            "incident_id": facts.get("incident_id"), "scenario": journal.get("scenario"),
            "status": facts.get("outcome"), "exit_code": facts.get("exit_code"),
            "dir": str(folder),
            "reports": {"markdown": str(folder / report_filename(journal)),
                        "html": str(folder / "report.html"), "json": str(folder / "report.json")},
            "resolved_by": journal.get("resolved_by"), "duration_s": journal.get("duration_s"),
            "reason": journal.get("reason", ""), "key_times": journal.get("key_times", {})}
    return {"rc": facts.get("exit_code"), "expect": expect, "summary": summary,
            "stderr": str(facts.get("detail") or "")[-4000:], "via": "serve"}


def _stage_error(facts: dict[str, Any], loop: dict[str, Any], scenario: str,
                 expect: str) -> str:
    if facts.get("state") == "done" and facts.get("exit_code") != EXPECT_RC[expect]:
        return (f"serve's runner ended {facts.get('outcome')} (exit {facts.get('exit_code')}), "
                f"expected {expect}: {facts.get('detail') or 'no detail'}")
    if loop.get("state") != "ready":
        return (f"the alert loop is {loop.get('state', 'not running')}: "
                f"{loop.get('error') or 'no error recorded'}")
    if "alert_id" not in facts:
        return (f"no firing alert for {scenario} reached serve (alerts recorded: "
                f"{facts.get('alerts') or 'none'}); logs in {LOOP_DIR}/")
    if facts.get("disposition") != "queued" and facts.get("incident") is None:
        return f"serve did not queue the alert: {facts.get('disposition')}"
    if facts.get("state") != "done":
        return f"serve's incident {facts.get('incident')} did not finish ({facts.get('state')})"
    return "Alertmanager did not send the alert resolved after the incident finished"


def follow(workdir: Path, scenario: str, timeout: float, resolve_timeout: float,
           expect: str = "resolved") -> dict[str, Any]:
    """Wait for alert -> incident done -> alert resolved; write alert.json (and runner.json
    once the incident is done). The result has ``error`` None when every stage happened."""
    loop_dir = workdir / LOOP_DIR
    intake = loop_dir / "state" / INTAKE_FILE
    until = time.monotonic() + timeout
    runner_written = False
    while True:
        try:
            facts = intake_facts(intake, scenario)
        except sqlite3.Error as exc:  # locked past 30 s by serve: look again
            facts = {"intake_error": str(exc)}
        loop = read_json(loop_dir / STATE_FILE) or {}
        done = facts.get("state") == "done"
        if done and not runner_written:
            write_atomic(workdir / RUNNER_FILE,
                         json.dumps(runner_answer(facts, expect), indent=2) + "\n", mode=0o640)
            runner_written = True
            until = min(until, time.monotonic() + resolve_timeout)
        finished = done and "resolved_received_at" in facts
        # A runner that did not end as expected leaves the alert firing: no use waiting.
        wrong = done and facts.get("exit_code") != EXPECT_RC[expect]
        if finished or wrong or time.monotonic() >= until or loop.get("state") != "ready":
            break
        time.sleep(0.5)
    alert = {
        "scenario": scenario, **facts,
        "started": epoch(facts.get("starts_at")),
        "received": epoch(facts.get("received_at")),
        "finished": facts.get("finished_at"),
        "resolved": epoch(facts.get("resolved_received_at")),
        "loop": {k: loop.get(k) for k in ("state", "ports", "error")},
        "error": None if finished and not wrong else _stage_error(facts, loop, scenario, expect),
    }
    write_atomic(workdir / ALERT_FILE, json.dumps(alert, indent=2, default=str) + "\n",
                 mode=0o640)
    return alert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the loop (Prometheus .. serve) on loopback ports")
    up.add_argument("--workdir", required=True, type=Path)
    up.add_argument("--target", required=True, help="the URL the blackbox exporter probes")
    up.add_argument("--inventory", required=True, type=Path, help="serve's --inventory")
    up.add_argument("--deadline", type=float, default=1800.0,
                    help="seconds the loop runs at most once ready")
    up.add_argument("--ready-timeout", type=float, default=180.0,
                    help="seconds Prometheus may take to see the target answer 200")
    up.add_argument("--detach", action="store_true",
                    help="run in the background; print the state once ready (or why not)")
    wait = sub.add_parser("wait", help="follow serve's intake: alert, incident, resolved")
    wait.add_argument("--workdir", required=True, type=Path)
    wait.add_argument("--scenario", required=True)
    wait.add_argument("--expect", choices=sorted(EXPECT_RC), default="resolved")
    wait.add_argument("--timeout", type=float, default=600.0,
                      help="seconds for the alert to arrive and its incident to finish")
    wait.add_argument("--resolve-timeout", type=float, default=120.0,
                      help="seconds for the resolved alert once the incident finished")
    stop = sub.add_parser("down", help="stop the loop of --workdir")
    stop.add_argument("--workdir", required=True, type=Path)
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    if args.command == "down":
        print(json.dumps(down(workdir)))
        return 0
    if args.command == "wait":
        alert = follow(workdir, args.scenario, args.timeout, args.resolve_timeout, args.expect)
        print(json.dumps({k: alert.get(k) for k in (
            "error", "alertname", "disposition", "outcome", "exit_code", "incident_id")}))
        return 0 if alert["error"] is None else 1
    if args.detach:
        rest = list(argv if argv is not None else sys.argv[1:])
        rest.remove("--detach")
        # Four daemons (60 s each at most), then Prometheus's first 200.
        state = start_detached(rest, workdir, 4 * 60 + args.ready_timeout + 15)
        print(json.dumps(state))
        return 0 if state.get("state") == "ready" else 1
    return supervise(workdir, args.target, args.inventory.resolve(), args.deadline,
                     args.ready_timeout)


if __name__ == "__main__":
    sys.exit(main())
