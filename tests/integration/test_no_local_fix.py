"""Scenarios with no local fix: diagnose, notify (a real webhook receiver), escalate with exit 3."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize(("scenario", "symptom"), [
    ("dependency-down", "dependency"),
    ("credential-expired", "401"),
])
def test_no_local_fix_notifies_and_escalates(stack: Stack, webhook: list[dict[str, Any]],
                                             scenario: str, symptom: str) -> None:
    stack.playbook(f"playbooks/faults/{scenario}.yml")
    proc = stack.remediate("--scenario", scenario, "--json")
    try:
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
    finally:
        stack.playbook("playbooks/faults/clear.yml")
        stack.playbook("playbooks/stack.yml")
