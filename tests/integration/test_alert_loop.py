"""The loop with nobody in it, as the drill ``alert-loop`` runs it (issue 15): Prometheus and
the blackbox exporter probe a staging stack through its proxy, the proxy-502 fault is
injected, the ProxyBadGateway rule fires, Alertmanager sends it to serve, serve runs
`remediate --scenario proxy-502`, the alert resolves.

The loop lives in one place (``incident_runner/drill/alertloop.py``, driven by
``molecule/drill-alert-loop/``); this test runs that drill once with
``incident-runner drill --scenario alert-loop`` and asserts on the stages it measured.
test_drills.py leaves this drill out, so the suite pays for the loop once. The drill's
stack is on 127.0.0.1:18830, its daemons on ports picked at start. Prints the stages
(docs/alerts.md and docs/drills.md keep a measured run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from incident_runner.drill.alertloop import ALERT_FILE, LOOP_DIR, STATE_FILE
from incident_runner.drill.present import stages
from incident_runner.drill.verdict import DrillResult
from incident_runner.procutil import proc_state
from tests.stack import LABEL, ROOT, VENV_BIN, docker, env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRILL = "alert-loop"
# A hung drill is stopped (and torn down) after this; measured 160-310 s.
TIMEOUT_S = 1500


def _cli(run_env: dict[str, str], *args: str, timeout: float = 120,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "incident-runner"), *args], cwd=ROOT, env=run_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _running_with(word: str) -> list[str]:
    """Live processes (not zombies) whose command line contains ``word``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        live = proc_state(int(cmdline.parent.name))
        if word in text and live is not None and live[0] != "Z":
            found.append(f"{cmdline.parent.name}: {text[:200]}")
    return found


def test_alert_loop_drill_fault_alert_remediation_resolution(_state_under_tmp: Path) -> None:
    state = _state_under_tmp
    run_env = {**env(), "INCIDENT_RUNNER_STATE_DIR": str(state)}
    proc = _cli(run_env, "--state-dir", str(state), "drill", "--scenario", DRILL, "--json",
                "--timeout", str(TIMEOUT_S), timeout=TIMEOUT_S + 120)
    print(proc.stderr)
    try:
        run = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"drill printed no JSON (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    [d] = run["drills"]
    assert (proc.returncode, d["outcome"], d["ok"]) == (0, "recovered", True), (
        d["outcome"], d["reason"], d["log"])
    assert d["resolved_by"] == "reconnect-networks"

    # Every stage measured, from the start of the fault injection, in the loop's order:
    # the alert is active once Prometheus saw the 502, serve gets it after the rule's `for`
    # and Alertmanager's group_wait, the runner acts after that and verifies recovery.
    result = DrillResult(**{k: v for k, v in d.items() if k != "ok"})
    print("\nalert-loop stages, seconds after the fault injection started:")
    for name, seconds in stages(result):
        print(f"  {seconds:7.1f}  {name}")
    print(f"drill total {d['total_s']} s, {d['cpu_s']} CPU-s (plays, loop daemons, runner)")
    assert 0 <= d["alert_started_s"] <= d["alert_received_s"] <= d["first_action_s"], d
    assert d["first_action_s"] <= d["recovered_s"], d
    # Prometheus sees 200 again once the networks are back: after the first action.
    assert d["first_action_s"] <= d["alert_resolved_s"], d
    assert d["detect_s"] is not None and d["cpu_s"] > 0

    # What serve recorded: one alert of the rule, one incident for it, rated by the alert's
    # severity label and limited to its host label, then the resolution of that alert.
    workdir = Path(d["workdir"])
    alert = json.loads((workdir / ALERT_FILE).read_text())
    assert alert["error"] is None
    assert alert["alertname"] == "ProxyBadGateway" and alert["disposition"] == "queued"
    assert alert["labels"]["severity"] == "critical" and alert["severity"] == "P1"
    assert (alert["host"], alert["incidents"]) == ("staging", 1)
    assert alert["alerts"].get("resolved/resolved", 0) >= 1
    assert alert["incident_id"] == d["incident_id"]

    # The incident starts at the alert (impact = startsAt) and is recorded as a drill.
    folder = Path(d["incident_dir"])
    assert folder.parent == state
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    opened = next(e for e in events if e["kind"] == "incident_opened")
    assert opened["alert"]["starts_at"] == alert["starts_at"]
    assert opened["alert"]["labels"]["alertname"] == "ProxyBadGateway"
    assert json.loads((folder / "drill.json").read_text())["alert_received_s"] == (
        d["alert_received_s"])
    stats = json.loads(_cli(run_env, "--state-dir", str(state), "stats", "--json").stdout)
    assert stats["incidents"] == []
    assert [(s["scenario"], s["count"], s["resolved"]) for s in stats["drills"]] == [
        ("proxy-502", 1, 1)]

    # Nothing left: the loop's supervisor stopped its daemons, the stack is gone.
    loop = json.loads((workdir / LOOP_DIR / STATE_FILE).read_text())
    assert loop["state"] == "stopped", loop
    assert loop["cpu_s"] > 0 and set(loop["pids"]) == {
        "serve", "blackbox", "alertmanager", "prometheus"}
    assert _running_with(str(workdir / LOOP_DIR)) == []  # every daemon's argv names its dir
    assert docker("ps", "-aq", "--filter", f"label={LABEL}=ir-drill-{DRILL}") == ""


@pytest.fixture
def healthy_target() -> Iterator[str]:
    """A loopback HTTP server answering 200: something for the blackbox exporter to probe."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/health"
    finally:
        server.shutdown()
        server.server_close()


def test_the_loops_daemons_die_with_a_killed_supervisor(tmp_path: Path,
                                                        healthy_target: str) -> None:
    """`alertloop up --detach` answers once Prometheus saw the target healthy; a supervisor
    killed by SIGKILL (no teardown of its own) takes every daemon with it."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    up = subprocess.run(
        [sys.executable, "-m", "incident_runner.drill.alertloop", "up", "--workdir",
         str(tmp_path), "--target", healthy_target, "--inventory", str(inventory), "--detach"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=500, check=False)
    state = json.loads(up.stdout)
    assert (up.returncode, state["state"]) == (0, "ready"), (state, up.stderr)
    assert set(state["pids"]) == {"serve", "blackbox", "alertmanager", "prometheus"}
    loop_dir = str(tmp_path / LOOP_DIR)
    assert len(_running_with(loop_dir)) >= 4, "the daemons are not running"
    os.kill(state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while _running_with(loop_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_with(loop_dir) == []
