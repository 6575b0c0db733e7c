"""Issue 4, real faults: step 2 fixes what step 1 did not; an exhausted ladder escalates; a
scenario with no local fix diagnoses, notifies (a real webhook receiver) and escalates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack, docker, http_status, inspect

pytestmark = pytest.mark.integration


def _oom(stack: Stack, alloc_mb: int) -> None:
    stack.playbook("playbooks/faults/oom.yml", "-e", json.dumps({"fault_oom_alloc_mb": alloc_mb}))
    state = inspect(stack.container("api"))["State"]
    assert isinstance(state, dict)
    assert state["OOMKilled"] is True and state["Running"] is False


def _remediate(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    proc = stack.remediate("--scenario", "oom", "--json", *args)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _steps(summary: dict[str, Any]) -> list[tuple[str, str]]:
    journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
    return [(s["name"], s["status"]) for s in journal["steps"] if s["phase"] == "mitigate"]


def _docker_state(stack: Stack) -> list[tuple[object, ...]]:
    """What a remediation could change: each container's id, start, limit, restarts, networks."""
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}")
    out = []
    for cid in sorted(ids.split()):
        c = inspect(cid)
        state, host = c["State"], c["HostConfig"]
        assert isinstance(state, dict) and isinstance(host, dict)
        nets = sorted((c["NetworkSettings"] or {}).get("Networks") or {})  # type: ignore[union-attr]
        out.append((c["Id"], state["StartedAt"], state["Status"], host["Memory"],
                    c["RestartCount"], tuple(nets)))
    return out


def test_a_healthy_target_is_left_alone_unless_forced(stack: Stack) -> None:
    """An alert about a healthy stack changes nothing (exit 0, not-reproduced); --force acts."""
    assert http_status(stack.url + "/api/health") == 200
    before = _docker_state(stack)
    rc, summary = _remediate(stack)
    assert rc == 0, summary
    assert summary["status"] == "not-reproduced", summary
    assert _docker_state(stack) == before, "a healthy target must not be touched"
    journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
    assert not [s for s in journal["steps"] if s["phase"] == "mitigate"]
    [symptom] = [e for e in journal["evidence"] if e["kind"] == "symptom"]
    assert symptom["confirmed"] is False and symptom["checks"][0]["statuses"] == [200]
    assert "not reproduced" in Path(summary["reports"]["markdown"]).read_text()

    rc, forced = _remediate(stack, "--force")
    assert rc == 0, forced
    assert forced["status"] == "resolved" and forced["resolved_by"] == "raise-memory"
    host = inspect(stack.container("api"))["HostConfig"]
    assert isinstance(host, dict) and host["Memory"] == 160 * 1024 * 1024  # it acted
    decisions = json.loads((Path(forced["dir"]) / "journal.json").read_text())["decisions"]
    assert [d["decision"] for d in decisions if d.get("trigger") == "force"] == ["force"]


def test_step_two_fixes_what_step_one_did_not(stack: Stack) -> None:
    # 200 MiB needed: step 1 raises the limit to 160m (OOMs again), step 2 to 512m.
    _oom(stack, 200)
    rc, summary = _remediate(stack)
    assert rc == 0, summary
    assert summary["status"] == "resolved"
    assert summary["resolved_by"] == "raise-memory-more"
    # Step 1 ran and did not hold (the api OOMed again at 160m); step 2 did.
    steps = _steps(summary)
    assert [name for name, _ in steps] == ["raise-memory", "raise-memory-more"]
    assert steps[-1][1] == "successful"
    journal = json.loads((Path(summary["dir"]) / "journal.json").read_text())
    assert journal["verifications"][-1]["healthy"] is True
    host_config = inspect(stack.container("api"))["HostConfig"]
    assert isinstance(host_config, dict)
    assert host_config["Memory"] == 512 * 1024 * 1024
    assert http_status(stack.url + "/api/health") == 200


def test_exhausted_ladder_escalates_with_exit_3(stack: Stack) -> None:
    # 600 MiB is above the scenario's maximum (512m): nothing on the ladder can fix it.
    _oom(stack, 600)
    rc, summary = _remediate(stack)
    assert rc == 3, summary
    assert summary["status"] == "escalated"
    assert "exhausted" in summary["reason"]
    report = Path(summary["reports"]["markdown"]).read_text()
    assert "Escalated to a human" in report
    assert [name for name, _ in _steps(summary)] == ["raise-memory", "raise-memory-more"]
    # Clean up for the module's other tests: drop the knob, restore the stack.
    stack.playbook("playbooks/faults/clear.yml")
    stack.playbook("playbooks/stack.yml")


class _Receiver(BaseHTTPRequestHandler):

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.bodies.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("INCIDENT_RUNNER_WEBHOOK_URL",
                       f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-canary-1234")
    try:
        yield server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()


# credential-expired, the other scenario without a local fix, escalates in its drill
# (test_drills.py: reason and report checked, no mitigation step); here the messages.
def test_no_local_fix_notifies_and_escalates(stack: Stack,
                                             webhook: list[dict[str, Any]]) -> None:
    scenario, symptom = "dependency-down", "dependency"
    stack.playbook(f"playbooks/faults/{scenario}.yml")
    proc = stack.remediate("--scenario", scenario, "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "escalated"
    incident = Path(summary["dir"])
    # Diagnostics were captured before escalating.
    assert any((incident / "diagnostics").iterdir())
    # The webhook got the initial and the escalation messages, saying why.
    texts = [body["text"] for body in webhook]
    assert len(texts) == 2, texts
    assert summary["incident_id"] in texts[0]
    assert "needs a human" in texts[1] and symptom in texts[1].split("needs a human")[1]
    report = Path(summary["reports"]["markdown"]).read_text()
    assert "Escalated to a human" in report and symptom in report
    # The webhook token is a secret: never written down.
    for path in incident.rglob("*"):
        if path.is_file():
            assert "T0KEN-canary-1234" not in path.read_text(errors="replace"), path
