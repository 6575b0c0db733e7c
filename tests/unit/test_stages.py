"""The runner's stages through its seam for running playbooks: a fake ansible-runner and a
real HTTP server on 127.0.0.1 that the stages' symptom check and verification talk to."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from incident_runner.engine import IncidentResult, RemediateRequest, remediate
from incident_runner.executor import PlaybookRun, TaskResult


class Service(ThreadingHTTPServer):
    healthy = True


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.server.healthy else 502)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[Service]:
    server = Service(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


class FakeAnsible:
    """Records the runs; each step's result (and whether it heals the service) is scripted."""

    def __init__(self, service: Service, script: dict[str, tuple[str, bool, str]],
                 exit_s: float = 0.0) -> None:
        self.service, self.script, self.ran = service, script, []  # type: list[str]
        self.exit_s = exit_s  # ansible-playbook's exit after its plays have ended

    def __call__(self, **kw: Any) -> PlaybookRun:
        name = str(kw["context"]["step"])
        self.ran.append(name)
        status, heals, task_status = self.script.get(name, ("successful", False, "ok"))
        if heals:
            self.service.healthy = True
        now = time.time()
        tasks = [TaskResult(task="act", host="web-1", status=task_status, changed=True,
                            message="host unreachable" if task_status == "unreachable" else "")]
        if kw.get("on_done"):  # as the executor does on the playbook's stats event
            kw["on_done"](tasks)
        time.sleep(self.exit_s)
        return PlaybookRun(ident=str(kw["ident"]), status=status, rc=0, started=now, ended=now,
                           check_mode=bool(kw.get("check")), tasks=tasks)


def _request(tmp_path: Path, service: Service, **kw: Any) -> RemediateRequest:
    url = f"http://127.0.0.1:{service.server_address[1]}/health"
    scenarios = tmp_path / "catalog"
    scenarios.mkdir(exist_ok=True)
    check = {"name": "app", "url": url, "successes": 2, "interval": 0.05, "deadline": 1}
    (scenarios / "stages.yml").write_text(yaml.safe_dump({
        "id": "stages", "title": "stages under test", "description": "fake runs",
        "targets": {"hosts": "web", "services": ["app"]}, "diagnostics": {"enabled": False},
        "ladders": {"default": [{"name": "first", "role": "reconnect_networks"},
                                {"name": "second", "role": "reconnect_networks"}]},
        "verify": {"checks": [check]},
        "escalation": {"notify": False},
    }))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    web:\n      hosts:\n        web-1:\n"
                         "  vars:\n    stack_env: test\n    stack_project: shop\n")
    return RemediateRequest(scenario="stages", inventory=inventory, state_dir=tmp_path / "state",
                            scenario_paths=(scenarios,), **kw)


def _run(tmp_path: Path, service: Service, script: dict[str, tuple[str, bool, str]],
         **kw: Any) -> tuple[IncidentResult, FakeAnsible]:
    fake = FakeAnsible(service, script)
    return remediate(_request(tmp_path, service, **kw), runner=fake), fake


def test_a_healthy_target_is_not_reproduced_and_nothing_runs(tmp_path: Path,
                                                            service: Service) -> None:
    result, fake = _run(tmp_path, service, {})
    assert result.status == "not-reproduced" and int(result.exit_code) == 0
    assert fake.ran == []
    assert result.journal["key_times"]["first_action"] is None
    assert result.journal["target_key"] == "test/web-1/shop:app"


def test_force_acts_on_a_healthy_target(tmp_path: Path, service: Service) -> None:
    result, fake = _run(tmp_path, service, {}, force=True)
    assert fake.ran == ["first"] and result.status == "resolved"


def test_first_step_that_verifies_resolves(tmp_path: Path, service: Service) -> None:
    service.healthy = False
    result, fake = _run(tmp_path, service, {"first": ("successful", True, "ok")})
    assert (result.status, result.journal["resolved_by"], fake.ran) == (
        "resolved", "first", ["first"])
    kt = result.journal["key_times"]
    assert kt["detected"] <= kt["first_action"] <= kt["mitigated"] <= kt["closed"]


def test_a_step_that_does_not_hold_climbs_then_escalates(tmp_path: Path,
                                                         service: Service) -> None:
    service.healthy = False
    result, fake = _run(tmp_path, service, {})
    assert fake.ran == ["first", "second"]
    assert result.status == "escalated" and int(result.exit_code) == 3
    decisions = [d["decision"] for d in result.journal["decisions"]
                 if d["kind"] == "decision"]
    assert decisions == ["next_step", "next_step", "escalate"]


def test_an_unreachable_host_escalates_at_once(tmp_path: Path, service: Service) -> None:
    service.healthy = False
    result, fake = _run(tmp_path, service, {"first": ("failed", False, "unreachable")})
    assert fake.ran == ["first"]  # step 2 is not tried on a host we cannot reach
    assert result.status == "escalated"
    assert result.journal["reason"].startswith("unreachable: web-1")


@pytest.mark.parametrize(("window", "verify_runs"), [
    (0, ["after-first"]), (0.2, ["stable-after-first"])])
def test_the_verify_playbook_runs_once_per_step_at_the_end_of_the_window(
        tmp_path: Path, service: Service, window: float, verify_runs: list[str]) -> None:
    service.healthy = False
    request = _request(tmp_path, service)
    path = tmp_path / "catalog" / "stages.yml"
    doc = yaml.safe_load(path.read_text())
    doc["verify"].update(playbook="verify/container_running.yml", stabilisation_seconds=window,
                         vars={"verify_container_name": "app"})
    path.write_text(yaml.safe_dump(doc))
    fake = FakeAnsible(service, {"first": ("successful", True, "ok")})
    result = remediate(request, runner=fake)
    assert fake.ran == ["first", *verify_runs] and result.status == "resolved"


def test_a_verify_playbook_failing_at_the_end_of_the_window_climbs(
        tmp_path: Path, service: Service) -> None:
    service.healthy = False
    request = _request(tmp_path, service)
    path = tmp_path / "catalog" / "stages.yml"
    doc = yaml.safe_load(path.read_text())
    doc["verify"].update(playbook="verify/container_running.yml", stabilisation_seconds=0.2,
                         vars={"verify_container_name": "app"})
    path.write_text(yaml.safe_dump(doc))
    fake = FakeAnsible(service, {"first": ("successful", True, "ok"),
                                 "stable-after-first": ("failed", False, "failed"),
                                 "second": ("successful", True, "ok")})
    result = remediate(request, runner=fake)
    assert fake.ran == ["first", "stable-after-first", "second", "stable-after-second"]
    assert (result.status, result.journal["resolved_by"]) == ("resolved", "second")


def _events(result: IncidentResult) -> list[dict[str, Any]]:
    lines = (result.incident_dir / "timeline.jsonl").read_text().splitlines()
    return [yaml.safe_load(line) for line in lines]


@pytest.mark.parametrize(("task_status", "early"), [("ok", True), ("failed", False)])
def test_verification_starts_when_the_plays_end_not_when_ansible_exits(
        tmp_path: Path, service: Service, task_status: str, early: bool) -> None:
    # The step's checks overlap ansible-playbook's exit (here 0.5 s), once every task is ok.
    service.healthy = False
    fake = FakeAnsible(service, {"first": ("successful", True, task_status)}, exit_s=0.5)
    result = remediate(_request(tmp_path, service), runner=fake)
    assert result.status == "resolved"
    events = _events(result)
    finished = next(e["ts"] for e in events if e["kind"] == "step_finished")
    started = next(e["started"] for e in events if e["kind"] == "verify_result")
    assert (started < finished) is early
