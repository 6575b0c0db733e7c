"""A user's own scenario catalog: a folder outside the checkout, validated, listed with its
origin, and remediated with (a real Ansible run), without touching the checkout."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stack import ROOT, VENV_BIN, env, free_port

pytestmark = pytest.mark.integration


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "incident-runner"), *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_scenario_from_a_folder_of_my_own(tmp_path: Path, server: str,
                                            _state_under_tmp: Path) -> None:
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    mine = tmp_path / "my-scenarios"
    mine.mkdir()
    closed = f"http://127.0.0.1:{free_port()}/health"  # nothing listens: the symptom is there
    (mine / "my-check.yml").write_text(yaml.safe_dump({
        "id": "my-check", "title": "My own check", "description": "A team's own scenario.",
        "targets": {"hosts": "local"}, "diagnostics": {"enabled": False},
        "symptom": {"checks": [{"name": "down", "url": closed, "successes": 1,
                                "interval": 0.1, "deadline": 2}]},
        "ladders": {"default": [{"name": "probe-from-ansible", "role": "health_check",
                                 "vars": {"health_check_checks": [
                                     {"name": "mine", "url": f"{server}/ok", "successes": 1}]}}]},
        "verify": {"checks": [{"name": "mine", "url": f"{server}/ok", "successes": 1}]},
        "escalation": {"notify": False},
    }))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    local:\n      hosts:\n        localhost:\n"
                         "          ansible_connection: local\n"
                         "          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")

    valid = _cli("validate", str(mine / "my-check.yml"), cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    listed = json.loads(_cli("scenarios", "--json", "--scenarios", str(mine), cwd=tmp_path).stdout)
    [entry] = [s for s in listed if s["id"] == "my-check"]
    assert entry["origin"] == str(mine)
    assert any(s["origin"] == "shipped" for s in listed)

    proc = _cli("remediate", "--scenario", "my-check", "--scenarios", str(mine),
                "--inventory", str(inventory), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "resolved" and result["resolved_by"] == "probe-from-ansible"
    journal = json.loads((Path(result["dir"]) / "journal.json").read_text())
    assert journal["scenario_source"] == str(mine / "my-check.yml")
    assert [s["status"] for s in journal["steps"] if s["phase"] == "mitigate"] == ["successful"]
    # Without --scenarios it is unknown; the checkout was not touched.
    assert _cli("remediate", "--scenario", "my-check", "--inventory", str(inventory),
                cwd=tmp_path).returncode == 2
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    assert after == before
