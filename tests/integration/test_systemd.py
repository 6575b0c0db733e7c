"""Remediation of systemd services over SSH (seed 001 for real), against real hosts.

One set of two systemd hosts for the whole module (containers with systemd as
PID 1, sshd on 127.0.0.1 ports, host key checking on; playbooks/systemd_hosts.yml).
Every test breaks host 1 (or host 2 for reachability) with the real fault
playbook, checks from here that the fault is there, lets the runner fix it
through ``remediate`` (the same call the CLI makes) and checks the result
independently (HTTP to the published port, ``docker exec`` on the host); then
resets what it broke with playbooks/faults/systemd-clear.yml.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from incident_runner.engine import RemediateRequest, remediate
from incident_runner.errors import ExitCode
from incident_runner.platform import platform_of
from tests.stack import ROOT, docker, http_json, http_status, run, systemd_hosts

# One set of hosts per module: every test of it on one xdist worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("systemd-hosts")]

# Each xdist worker that runs these tests brings up its own two hosts (own names, own
# ports): nothing here may depend on landing on one worker.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 5
PREFIX = f"ir-sd-test{_WORKER}"
SSH_BASE, APP_BASE = 18640 + 2 * _WORKER, 18650 + 2 * _WORKER
FAULTS = ROOT / "playbooks" / "faults"


@dataclass
class Hosts:
    inventory: Path

    def name(self, n: int) -> str:
        return f"{PREFIX}-{n}"

    def url(self, n: int = 1) -> str:
        return f"http://127.0.0.1:{APP_BASE + n}"

    def sh(self, n: int, *argv: str, check: bool = True) -> str:
        return docker("exec", self.name(n), *argv, check=check)

    def play(self, playbook: Path, n: int = 1) -> None:
        run(["ansible-playbook", "-i", str(self.inventory), "--limit", self.name(n),
             str(playbook)])

    def remediate(self, scenario: str, n: int = 1, inventory: Path | None = None,
                  assume_yes: bool = True) -> dict[str, object]:
        result = remediate(RemediateRequest(
            scenario=scenario, inventory=inventory or self.inventory, limit=self.name(n),
            assume_yes=assume_yes))
        return {"status": result.status, "rc": result.exit_code, **result.journal,
                "dir": result.incident_dir, "reports": result.reports}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    inventory = tmp_path_factory.mktemp("systemd") / "inventory"
    with systemd_hosts(inventory, PREFIX, 2, SSH_BASE, APP_BASE):
        yield Hosts(inventory)


def test_inventory_is_ssh_with_host_key_checking(hosts: Hosts) -> None:
    data = yaml.safe_load((hosts.inventory / "hosts.yml").read_text())
    group = data["all"]["children"]["staging"]
    assert group["vars"]["incident_runner_platform"] == "systemd"
    assert "StrictHostKeyChecking=yes" in group["vars"]["ansible_ssh_common_args"]
    known = (hosts.inventory / ".ssh" / "known_hosts").read_text().splitlines()
    assert [line.split()[0] for line in known] == [f"[127.0.0.1]:{SSH_BASE + n}" for n in (1, 2)]
    assert platform_of(hosts.inventory, "staging") == "systemd"
    assert platform_of(ROOT / "inventories" / "staging", "staging") == "docker"
    for n in (1, 2):
        assert http_status(hosts.url(n) + "/health") == 200
        good = hosts.sh(n, "git", "-C", "/srv/app", "rev-parse", "refs/deploy/good/staging")
        assert http_json(hosts.url(n) + "/version")["version"] == good


def _journal_steps(result: dict[str, object], phase: str) -> list[str]:
    steps = result["steps"]
    assert isinstance(steps, list)
    return [s["name"] for s in steps if s.get("phase") == phase]


def _show(hosts: Hosts, prop: str, unit: str = "ir-app.service") -> str:
    return hosts.sh(1, "systemctl", "show", "-p", prop, "--value", unit)


def test_oom(hosts: Hosts) -> None:
    hosts.play(FAULTS / "systemd-oom.yml")
    assert _show(hosts, "ActiveState") == "failed"
    assert _show(hosts, "Result") in {"oom-kill", "signal"}
    try:
        result = hosts.remediate("oom")
        assert (result["status"], result["resolved_by"]) == ("resolved", "raise-memory"), result
        assert _show(hosts, "MemoryMax") == str(160 * 1024 * 1024)
        assert http_json(hosts.url() + "/stats")["held_mb"] == 96  # the fault is still there
        capture = (Path(str(result["dir"])) / "diagnostics" / f"{hosts.name(1)}.txt").read_text()
        assert "## journalctl -u ir-app.service" in capture
        assert "## ss -ltnp" in capture
    finally:
        hosts.play(FAULTS / "systemd-clear.yml")


def test_service_down(hosts: Hosts) -> None:
    hosts.play(FAULTS / "systemd-service-down.yml")
    assert http_status(hosts.url() + "/health") != 200
    try:
        result = hosts.remediate("service-down")
        assert (result["status"], result["resolved_by"]) == ("resolved", "restart"), result
        assert _show(hosts, "ActiveState") == "active"
        assert http_status(hosts.url() + "/health") == 200
    finally:
        hosts.play(FAULTS / "systemd-clear.yml")


def test_dependency_down_restarts_in_order(hosts: Hosts) -> None:
    hosts.play(FAULTS / "systemd-dependency-down.yml")
    assert http_status(hosts.url() + "/health") == 503
    app_started = _show(hosts, "ExecMainStartTimestampMonotonic")
    try:
        result = hosts.remediate("dependency-down")
        assert (result["status"], result["resolved_by"]) == ("resolved", "restart-dependencies")
        assert _show(hosts, "ActiveState", "ir-deps.service") == "active"
        # Only what was down was started: the api kept running.
        assert _show(hosts, "ExecMainStartTimestampMonotonic") == app_started
    finally:
        hosts.play(FAULTS / "systemd-clear.yml")


def test_port_conflict(hosts: Hosts) -> None:
    hosts.play(FAULTS / "systemd-port-conflict.yml")
    assert http_status(hosts.url() + "/health") == 404  # the stray server answers
    try:
        result = hosts.remediate("port-conflict")
        assert (result["status"], result["resolved_by"]) == ("resolved", "free-port-and-start")
        assert hosts.sh(1, "systemctl", "is-active", "ir-stray-http.service",
                        check=False) != "active"
        assert http_json(hosts.url() + "/health")["role"] == "api"
    finally:
        hosts.play(FAULTS / "systemd-clear.yml")


def test_port_conflict_never_kills_an_unknown_holder(hosts: Hosts) -> None:
    hosts.sh(1, "systemctl", "stop", "ir-app.service")
    hosts.sh(1, "systemd-run", "--unit=ir-unknown-http", "--collect", "--", "/usr/bin/python3",
             "-m", "http.server", "--bind", "0.0.0.0", "8080")
    try:
        result = hosts.remediate("port-conflict")
        assert result["status"] == "escalated"
        assert result["resolved_by"] is None
        assert hosts.sh(1, "systemctl", "is-active", "ir-unknown-http.service") == "active"
    finally:
        hosts.sh(1, "systemctl", "stop", "ir-unknown-http.service", check=False)
        hosts.play(FAULTS / "systemd-clear.yml")


def test_bad_deploy_rolls_back(hosts: Hosts) -> None:
    good = hosts.sh(1, "git", "-C", "/srv/app", "rev-parse", "refs/deploy/good/staging")
    hosts.play(FAULTS / "systemd-bad-deploy.yml")
    bad = http_json(hosts.url() + "/version")["version"]
    assert bad != good
    assert http_status(hosts.url() + "/health") == 500
    try:
        result = hosts.remediate("bad-deploy")
        assert (result["status"], result["resolved_by"]) == ("resolved", "rollback"), result
        assert http_json(hosts.url() + "/version")["version"] == good
        assert hosts.sh(1, "git", "-C", "/srv/app", "rev-parse", "HEAD") == good
    finally:
        hosts.play(FAULTS / "systemd-clear.yml")


def test_refused_key_and_down_host_escalate_without_changes(hosts: Hosts,
                                                            tmp_path: Path) -> None:
    # A key the host does not accept: exit 3, "unreachable: HOST", no step ran.
    other = tmp_path / "other-key"
    shutil.copytree(hosts.inventory, other)
    (other / ".ssh" / "id_ed25519").unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
         str(other / ".ssh" / "id_ed25519")])
    refused = hosts.remediate("service-down", n=2, inventory=other)
    docker("kill", hosts.name(2))
    try:
        down = hosts.remediate("service-down", n=2)
    finally:
        docker("start", hosts.name(2))
    for result in (refused, down):
        assert result["rc"] == ExitCode.ESCALATED
        assert f"unreachable: {hosts.name(2)}" in str(result["reason"])
        assert _journal_steps(result, "mitigate") == []
        reports = result["reports"]
        assert isinstance(reports, dict)
        assert f"unreachable: {hosts.name(2)}" in Path(reports["markdown"]).read_text()
    assert http_status(hosts.url(1) + "/health") == 200  # the other host was not touched
