"""Fleet mode (docs/fleet.md) against six real systemd hosts.

One set of six hosts for the module (playbooks/systemd_hosts.yml: containers
with systemd as PID 1, sshd on 127.0.0.1 ports). The first test breaks two of
them with different faults (host 1: the api killed, which step 1 starts again;
host 2: the api frozen with SIGSTOP, still "active", which only step 2's
restart fixes), stops host 3's container (unreachable) and leaves 4-6 healthy;
one ``remediate`` on the whole group must fix 1 and 2, report 3 unreachable,
leave 4-6 untouched (their units' start timestamps and PIDs compared) and exit 3.
The rolling test breaks hosts 1 and 2 with serial 1: host 1's fault survives
every step, so the rollout stops and host 2 is never acted on. The Docker test
runs the same scenario on two staging stacks as two hosts of one group (the
CLI, ``--json``): the broken one is fixed, the healthy one untouched.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from incident_runner.engine import IncidentResult, RemediateRequest, remediate
from incident_runner.errors import ExitCode
from incident_runner.junit import render_junit
from tests.stack import (
    ROOT,
    VENV_BIN,
    Stack,
    docker,
    http_status,
    inspect,
    new_stack,
    run,
    systemd_hosts,
    wait_ssh_banner,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleet-hosts")]

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 5
PREFIX = f"ir-fleet-test{_WORKER}"
SSH_BASE, APP_BASE = 18300 + 10 * _WORKER, 18350 + 10 * _WORKER
COUNT = 6
FAULTS = ROOT / "playbooks" / "faults"
UNITS = ("ir-app.service", "ir-deps.service")
# The systemd_restart role waits this long for the api after a step (its default is 20 s):
# the frozen api fails step 1 in this time instead.
FAST = {"systemd_restart_timeout": 3}
# The rolling test's fault never heals: each step gives up after 1 s.
FASTER = {"systemd_restart_timeout": 1}


@dataclass
class Fleet:
    inventory: Path

    def name(self, n: int) -> str:
        return f"{PREFIX}-{n}"

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{APP_BASE + n}/health"

    def sh(self, n: int, *argv: str, check: bool = True) -> str:
        return docker("exec", self.name(n), *argv, check=check)

    def play(self, playbook: Path, *hosts: int) -> None:
        run(["ansible-playbook", "-i", str(self.inventory), "--limit",
             ",".join(self.name(n) for n in hosts), str(playbook)])

    def state(self, n: int) -> dict[str, str]:
        """What a restart would change: each unit's start time and main PID."""
        out = self.sh(n, "systemctl", "show", "-p", "Id,ActiveState,MainPID,"
                      "ActiveEnterTimestampMonotonic", *UNITS)
        return {line: line for line in out.splitlines() if line}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    inventory = tmp_path_factory.mktemp("fleet") / "inventory"
    with systemd_hosts(inventory, PREFIX, COUNT, SSH_BASE, APP_BASE):
        yield Fleet(inventory)


def _hosts(result: IncidentResult) -> dict[str, dict[str, object]]:
    return {str(h["host"]): h for h in result.journal["fleet"]["hosts"]}


def _steps(row: dict[str, object]) -> list[tuple[object, object, object]]:
    steps = row["steps"]
    assert isinstance(steps, list)
    return [(s["name"], s["status"], s["verified"]) for s in steps]


def test_two_broken_one_unreachable_three_untouched(fleet: Fleet, tmp_path: Path) -> None:
    for n in range(1, COUNT + 1):
        assert http_status(fleet.url(n)) == 200
    fleet.play(FAULTS / "systemd-service-down.yml", 1)
    fleet.sh(2, "systemctl", "kill", "--signal=SIGSTOP", "ir-app.service")
    assert fleet.sh(2, "systemctl", "is-active", "ir-app.service") == "active"
    before = {n: fleet.state(n) for n in (4, 5, 6)}
    docker("stop", "-t", "1", fleet.name(3))
    try:
        result = remediate(RemediateRequest(
            scenario="service-down", inventory=fleet.inventory, extra_vars=FAST,
            state_dir=tmp_path / "state"))
    finally:
        docker("start", fleet.name(3))
    hosts = _hosts(result)
    # the two broken hosts fixed, host 2 only by step 2
    assert (hosts[fleet.name(1)]["outcome"], hosts[fleet.name(1)]["symptom"]) == (
        "resolved", "seen")
    assert _steps(hosts[fleet.name(1)]) == [("restart", "ok", True)]
    assert hosts[fleet.name(2)]["outcome"] == "resolved"
    assert _steps(hosts[fleet.name(2)]) == [("restart", "failed", None),
                                            ("restart-all", "ok", True)]
    for n in (1, 2):
        assert http_status(fleet.url(n)) == 200
        assert isinstance(hosts[fleet.name(n)]["time_to_recover_s"], float)
    # the unreachable one reported, nothing run on it
    assert hosts[fleet.name(3)]["outcome"] == "unreachable"
    assert f"unreachable: {fleet.name(3)}" in str(hosts[fleet.name(3)]["reason"])
    assert _steps(hosts[fleet.name(3)]) == []
    # the healthy three untouched
    for n in (4, 5, 6):
        assert (hosts[fleet.name(n)]["outcome"], hosts[fleet.name(n)]["symptom"]) == (
            "not-reproduced", "absent")
        assert fleet.state(n) == before[n]
    # each step ran once, limited to the hosts still failing
    mitigate = [(s["name"], s["status"]) for s in result.journal["steps"]
                if s["phase"] == "mitigate"]
    assert mitigate == [("restart", "failed"), ("restart-all", "successful")]
    ran_on = [{t["host"] for t in s["tasks"]} for s in result.journal["steps"]
              if s["phase"] == "mitigate"]
    assert ran_on == [{fleet.name(1), fleet.name(2)}, {fleet.name(2)}]
    # outcome and exit code: partial -> escalated, 3
    assert (result.status, result.exit_code) == ("escalated", ExitCode.ESCALATED)
    assert result.summary()["hosts"] == result.journal["fleet"]["hosts"]
    report = Path(result.reports["markdown"]).read_text()
    assert "| host | symptom seen | steps | outcome | time to recover |" in report
    assert f"| `{fleet.name(2)}` | seen | restart (failed) -> restart-all (ok, verified) | " \
           "resolved |" in report
    suite = ET.fromstring(render_junit(result.journal)).find("testsuite")  # noqa: S314 (ours)
    assert suite is not None
    cases = {(c.get("classname", "").rsplit(".host.", 1)[-1], c.get("name")):
             c.find("failure") is None for c in suite.iter("testcase")
             if ".host." in c.get("classname", "")}
    assert cases[(fleet.name(2), "restart")] is False
    assert cases[(fleet.name(2), "restart-all")] is True
    assert cases[(fleet.name(3), "outcome")] is False
    assert cases[(fleet.name(4), "outcome")] is True
    assert (fleet.name(4), "restart") not in cases
    # host 3 is back for the next test: sshd first (until it listens, the port forward
    # accepts and drops the connection), then the api
    wait_ssh_banner(SSH_BASE + 3)
    run(["ansible", "-i", str(fleet.inventory), fleet.name(3), "-m", "ansible.builtin.wait_for",
         "-a", "port=8080 timeout=60"])


def test_rolling_stops_after_a_failed_first_batch(fleet: Fleet, tmp_path: Path) -> None:
    # host 1: a fault no restart fixes (the api answers 500 on purpose); host 2: killed.
    fleet.sh(1, "sh", "-c", "echo '{\"fail_health\": true}' > /var/lib/ir-app/knobs.json")
    fleet.play(FAULTS / "systemd-service-down.yml", 2)
    try:
        assert http_status(fleet.url(1)) == 500
        result = remediate(RemediateRequest(
            scenario="service-down", inventory=fleet.inventory, extra_vars=FASTER, serial=1,
            state_dir=tmp_path / "state"))  # no --yes: the destructive rollback is refused
        hosts = _hosts(result)
        assert hosts[fleet.name(1)]["outcome"] == "escalated"
        assert hosts[fleet.name(1)]["batch"] == 1
        assert [s[0] for s in _steps(hosts[fleet.name(1)])] == ["restart", "restart-all"]
        # the rollout stopped: host 2 was never acted on and is still down
        assert hosts[fleet.name(2)]["outcome"] == "not-acted"
        assert "rollout stopped after batch 1/2" in str(hosts[fleet.name(2)]["reason"])
        assert _steps(hosts[fleet.name(2)]) == []
        assert fleet.sh(2, "systemctl", "is-active", "ir-app.service", check=False) in {
            "failed", "inactive"}
        ran_on = {t["host"] for s in result.journal["steps"] if s["phase"] == "mitigate"
                  for t in s["tasks"]}
        assert ran_on == {fleet.name(1)}
        assert result.exit_code == ExitCode.ESCALATED
    finally:
        fleet.play(FAULTS / "systemd-clear.yml", 1, 2)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Stack, Path]]:
    """Two staging stacks, and one inventory with a host for each (docker platform)."""
    pair = (new_stack(tmp_path_factory.mktemp("fleeta"), "fleeta"),
            new_stack(tmp_path_factory.mktemp("fleetb"), "fleetb"))
    try:
        for stack in pair:
            stack.up()
        inventory = tmp_path_factory.mktemp("fleet-docker")
        (inventory / "group_vars").mkdir()
        (inventory / "group_vars" / "all.yml").write_text(
            (ROOT / "inventories" / "staging" / "group_vars" / "all.yml").read_text())
        hosts = {f"stack-{n}": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "stack_project": s.project, "stack_http_port": s.port, "stack_dir": str(s.dir)}
            for n, s in zip("ab", pair, strict=True)}
        (inventory / "hosts.yml").write_text(yaml.safe_dump(
            {"all": {"children": {"staging": {"hosts": hosts}}}}))
        yield pair[0], pair[1], inventory
    finally:
        for stack in pair:
            stack.down()


def test_docker_stack_hosts(stacks: tuple[Stack, Stack, Path], tmp_path: Path) -> None:
    broken, healthy, inventory = stacks
    docker("stop", "-t", "1", broken.container("api"))
    assert broken.wait_status("/api/health", 502) == 502
    untouched = inspect(healthy.container("api"))["State"]
    proc = run([str(VENV_BIN / "incident-runner"), "--state-dir", str(tmp_path / "state"),
                "remediate", "--scenario", "service-down", "--inventory", str(inventory),
                "--json"], check=False)
    summary = json.loads(proc.stdout)
    rows = {h["host"]: h for h in summary["hosts"]}
    assert (proc.returncode, summary["status"]) == (0, "resolved"), proc.stdout
    assert (rows["stack-a"]["outcome"], rows["stack-a"]["resolved_by"]) == ("resolved",
                                                                          "restart")
    assert (rows["stack-b"]["outcome"], rows["stack-b"]["steps"]) == ("not-reproduced", [])
    assert http_status(broken.url + "/api/health") == 200
    assert inspect(healthy.container("api"))["State"] == untouched
