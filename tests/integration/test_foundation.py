"""Issue 2: the staging stack on the real engine, and the proxy-502 slice end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.stack import LABEL, Stack, docker, http_json, http_status, inspect, new_stack, run

pytestmark = pytest.mark.integration


def test_stack_is_healthy_through_the_proxy(stack: Stack) -> None:
    assert http_status(stack.url + "/api/health") == 200
    assert http_status(stack.url + "/web/health") == 200
    version = http_json(stack.url + "/api/version")["version"]
    commit = (stack.deploy_src / ".git").exists()
    assert commit
    assert version == _git_head(stack.deploy_src)


def test_containers_run_with_init_and_memory_limit(stack: Stack) -> None:
    api = inspect(stack.container("api"))
    host_config = api["HostConfig"]
    assert isinstance(host_config, dict)
    assert host_config["Init"] is True
    assert host_config["Memory"] == 64 * 1024 * 1024
    proxy_nets = inspect(stack.container("proxy"))["NetworkSettings"]
    assert isinstance(proxy_nets, dict)
    assert {f"{stack.project}_api_net", f"{stack.project}_web_net"} <= set(proxy_nets["Networks"])


def test_proxy_502_fault_and_remediation(stack: Stack, tmp_path: Path) -> None:
    for net in ("api_net", "web_net"):
        docker("network", "disconnect", f"{stack.project}_{net}", stack.container("proxy"))
    assert http_status(stack.url + "/api/health") == 502
    # web sits behind dynamic upstreams: with none resolvable Caddy answers 503.
    assert http_status(stack.url + "/web/health") in {502, 503}

    proc = stack.remediate("--scenario", "proxy-502", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "resolved"
    assert summary["resolved_by"] == "reconnect-networks"
    assert http_status(stack.url + "/api/health") == 200
    assert http_status(stack.url + "/web/health") == 200

    incident = Path(summary["dir"])
    assert incident.name.startswith("INC-") and incident.name.endswith("-proxy-502")
    events = [json.loads(line) for line in (incident / "timeline.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "incident_opened" and kinds[-1] == "incident_closed"
    changed = [e for e in events if e["kind"] == "task_result" and e["changed"]]
    assert changed, "the runner's events must show the reconnect change"
    report = Path(summary["reports"]["markdown"]).read_text()
    assert "resolved" in report and "reconnect-networks" in report


def test_teardown_leaves_nothing_of_ours(tmp_path: Path) -> None:
    s = new_stack(tmp_path, "teardown")
    s.up()
    assert any(s.leftovers().values())
    s.down()
    assert s.leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert not s.dir.exists()
    # the app images built for it too (<project>/app:<commit> and :deployed)
    assert docker("image", "ls", "-q", "--filter", f"label={LABEL}={s.project}") == ""
    assert docker("image", "ls", "-q", f"{s.project}/app") == ""


def _git_head(repo: Path) -> str:
    return run(["git", "-C", str(repo), "rev-parse", "HEAD"]).stdout.strip()


def test_a_fault_injection_that_does_nothing_fails(stack: Stack) -> None:
    """A fault playbook whose effect does not show must fail, not pass silently. (Each
    real injection is proven by its drill: the fault playbook asserts its effect and the
    drill's detector, which knows nothing of the fault, must see it; test_drills.py.)"""
    # work_ms 0: the knob is written but nothing gets slower.
    proc = stack.playbook("playbooks/faults/high-latency.yml", "-e", "fault_high_latency_work_ms=0",
                          check=False)
    assert proc.returncode != 0
    assert "high-latency not confirmed" in proc.stdout
    # alloc_mb under the memory limit would never OOM: refused before anything changes.
    api = inspect(stack.container("api"))["State"]
    proc = stack.playbook("playbooks/faults/oom.yml", "-e", "fault_oom_alloc_mb=8", check=False)
    assert proc.returncode != 0
    assert inspect(stack.container("api"))["State"] == api
    # web's knobs are now {"work_ms": 0}, a no-op
    assert http_status(stack.url + "/web/health") == 200
