"""The loop with nobody in it: Prometheus + blackbox exporter probe a staging stack through
its proxy, the proxy-502 fault is injected, the ProxyBadGateway rule fires, Alertmanager
sends it to serve, serve runs `remediate --scenario proxy-502`, the alert resolves.

Configs are examples/alerting/* with loopback ports and short timers (scrape and
evaluation every 1 s, `for: 2s`, Alertmanager group timers 1 s). Ports 18910-18914.
Prints the times from the fault to each stage (docs/alerts.md keeps the last run's).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.serve_proc import TOKEN, Daemon, Serve, alertmanager, blackbox, get, prometheus
from tests.stack import ROOT, Stack, http_status

SERVE, PROM, AM, BLACKBOX, STACK = 18910, 18911, 18912, 18913, 18914


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def prom_value(query: str) -> float | None:
    status, body = get(f"http://127.0.0.1:{PROM}/api/v1/query?"
                       + urllib.parse.urlencode({"query": query}))
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


def poll(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Serve]]:
    tmp = tmp_path_factory.mktemp("alertloop")
    stack = Stack(project="ir-alert-loop", port=STACK, workdir=tmp)
    token = tmp / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    config = tmp / "incident-runner.yml"
    config.write_text(yaml.safe_dump({
        "severity": {"preset": "p0-p3"},
        "safety": {"incident_timeout_minutes": 10},
        "serve": {"token_file": str(token), "inventory": str(stack.inventory), "workers": 1,
                  "severity_map": {"critical": "P1"}, "host_label": "host",
                  "service_label": "service"},
    }))
    daemons: list[Daemon] = []
    serve = Serve(SERVE, tmp / "state", env={
        "INCIDENT_RUNNER_HOME": str(ROOT), "INCIDENT_RUNNER_CONFIG": str(config),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    try:
        stack.up()
        serve.start()
        daemons.append(blackbox(tmp, BLACKBOX).start())
        daemons.append(alertmanager(tmp, AM, serve.url, token).start())
        daemons.append(prometheus(tmp, PROM, f"{stack.url}/api/health", BLACKBOX, AM).start())
        yield stack, serve
    finally:
        for daemon in reversed(daemons):
            daemon.stop()
        serve.stop()
        stack.down()


def test_fault_alert_remediation_resolution(loop: tuple[Stack, Serve]) -> None:
    stack, serve = loop
    poll("Prometheus to see the proxy answer 200",
         lambda: prom_value('probe_http_status_code{job="staging-proxy"}') == 200, 90)

    # The playbook needs a while to start; the outage begins at the first 502 seen.
    first_502: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not first_502:
            if http_status(stack.url + "/api/health", timeout=1) == 502:
                first_502.append(time.time())
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    t_fault = time.time()
    watcher.start()
    stack.playbook("playbooks/faults/proxy-502.yml")  # asserts the proxy answers 502
    t_injected = time.time()
    stop.set()
    watcher.join()
    assert first_502, "the fault playbook passed but no 502 was seen"

    alert = poll("serve to receive ProxyBadGateway", lambda: serve.rows(
        "SELECT id, received_at, starts_at, disposition, incident, labels FROM alerts "
        "WHERE status = 'firing' AND scenario = 'proxy-502'"), 120)[0]
    _, received_at, starts_at, disposition, incident, labels = alert
    assert disposition == "queued"
    assert json.loads(labels)["alertname"] == "ProxyBadGateway"

    done = poll("the incident to finish", lambda: serve.rows(
        "SELECT outcome, exit_code, incident_dir, finished_at, severity, host FROM incidents "
        "WHERE id = ? AND state = 'done'", incident), 400)[0]
    outcome, exit_code, folder, finished_at, severity, host = done
    assert (outcome, exit_code, severity, host) == ("resolved", 0, "P1", "staging")
    assert http_status(stack.url + "/api/health") == 200
    assert http_status(stack.url + "/web/health") == 200

    resolved = poll("Alertmanager to send the alert resolved", lambda: serve.rows(
        "SELECT received_at FROM alerts WHERE status = 'resolved' AND incident = ?",
        incident), 120)[0]
    assert serve.rows("SELECT count(*) FROM incidents")[0][0] == 1

    events = [json.loads(line) for line in
              (Path(folder) / "timeline.jsonl").read_text().splitlines()]
    opened = next(e for e in events if e["kind"] == "incident_opened")
    assert opened["alert"]["starts_at"] == starts_at
    assert opened["alert"]["labels"]["alertname"] == "ProxyBadGateway"
    first_action = next(e for e in events
                        if e["kind"] == "step_started" and e.get("phase") == "mitigate")
    verified = next(e for e in events if e["kind"] == "verify_result" and e["healthy"])

    times = {
        "fault playbook started": 0.0,
        "first 502 through the proxy": first_502[0] - t_fault,
        "fault playbook done": t_injected - t_fault,
        "alert active in Prometheus (startsAt)": epoch(starts_at) - t_fault,
        "webhook received by serve": epoch(received_at) - t_fault,
        "incident opened": epoch(opened["ts"]) - t_fault,
        "first action": epoch(first_action["ts"]) - t_fault,
        "recovery verified": epoch(verified["ts"]) - t_fault,
        "incident finished": finished_at - t_fault,
        "resolved received by serve": epoch(resolved[0]) - t_fault,
    }
    outage = first_502[0] - t_fault
    print("\nalert loop: seconds after the fault playbook started / after the first 502")
    for name, seconds in sorted(times.items(), key=lambda kv: kv[1]):
        print(f"  {seconds:7.1f}  {seconds - outage:7.1f}  {name}")
