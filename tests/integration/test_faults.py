"""Fault injection playbooks (playbooks/faults/*.yml) against a real staging stack.

One stack for the whole module (project ir-f-test-<pid>, a free port). For each
scenario: run the fault playbook, check in Python - over HTTP to 127.0.0.1 and
with ``docker inspect`` - that the fault is really there, then reset with
clear.yml and/or stack.yml (idempotent, restarts stopped services) and check
the stack is healthy again. The order keeps resets cheap: knob faults first
(clear.yml only), then stopped containers (stack.yml), bad-deploy last (only
a teardown undoes a deployed commit here). Functions run in file order.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.stack import (
    LABEL,
    ROOT,
    VENV_BIN,
    Stack,
    docker,
    free_port,
    http_json,
    http_status,
    inspect,
    run,
)

pytestmark = pytest.mark.integration

# Own project name per test process and a free port, so parallel runs never collide.
PROJECT = f"ir-f-test-{os.getpid() % 10000}"
PORT = free_port()
FAULTS = ROOT / "playbooks" / "faults"
CLEAR = FAULTS / "clear.yml"
STACK = ROOT / "playbooks" / "stack.yml"


def play(stack: Stack, *playbooks: Path, extra: tuple[str, ...] = (),
         check: bool = True) -> float:
    """Run playbooks in one ansible-playbook process; return the seconds it took."""
    started = time.monotonic()
    run([str(VENV_BIN / "ansible-playbook"), "-i", str(stack.inventory),
         *map(str, playbooks), *extra], check=check)
    return time.monotonic() - started


def inject(stack: Stack, scenario: str) -> None:
    seconds = play(stack, FAULTS / f"{scenario}.yml")
    print(f"\ninject {scenario}: {seconds:.1f}s")


def reset(stack: Stack, *playbooks: Path) -> None:
    seconds = play(stack, *playbooks)
    print(f"reset after fault: {seconds:.1f}s ({', '.join(p.name for p in playbooks)})")
    assert_healthy(stack)


def assert_healthy(stack: Stack) -> None:
    for path in ("/api/health", "/web/health"):
        assert stack.wait_status(path, 200, timeout=10) == 200, path


def details(container: str) -> dict[str, Any]:
    return dict(inspect(container))


def state(container: str) -> dict[str, Any]:
    return dict(details(container)["State"])


def services_running(stack: Stack) -> dict[str, bool]:
    names = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={stack.project}",
                   "--format", "{{.Names}}").split()
    return {name: bool(state(name)["Running"]) for name in names}


def get(url: str, timeout: float = 5.0) -> tuple[int, float, dict[str, str]]:
    """Status, milliseconds and headers of one GET."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            status, headers = int(resp.status), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, headers = int(exc.code), dict(exc.headers)
    except OSError:
        status, headers = 0, {}
    return status, (time.monotonic() - started) * 1000, headers


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(0.95 * len(ordered) + 0.5) - 1)]


def git(stack: Stack, *args: str) -> str:
    return run(["git", "-C", str(stack.deploy_src), *args]).stdout.strip()


def stray_pid(stack: Stack) -> int | None:
    pidfile = stack.dir / "stray.pid"
    return int(pidfile.read_text()) if pidfile.exists() else None


def purge(project: str) -> None:
    """Remove everything labelled with our project (leftovers of a crashed run)."""
    flt = f"label={LABEL}={project}"
    for kind, listing in (("container", ["ps", "-aq"]), ("network", ["network", "ls", "-q"]),
                          ("volume", ["volume", "ls", "-q"]), ("image", ["image", "ls", "-q"])):
        ids = sorted(set(docker(*listing, "--filter", flt).split()))
        if ids:
            extra = ["-f"] if kind in ("container", "image") else []
            docker(kind, "rm", *extra, *ids, check=False)


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(project=PROJECT, port=PORT, workdir=tmp_path_factory.mktemp("faults"))
    stack.write_inventory()
    purge(PROJECT)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", PORT)) != 0, f"port {PORT} is already taken"
    started = time.monotonic()
    stack.up()
    print(f"\nstack up: {time.monotonic() - started:.1f}s")
    try:
        yield stack
    finally:
        pid = stray_pid(stack)
        play(stack, CLEAR, check=False)
        stack.down()
        leftovers = stack.leftovers()
        # Images are not removed by stack.yml's teardown; they are ours, so drop them.
        purge(PROJECT)
        assert leftovers == {"containers": [], "networks": [], "volumes": []}, leftovers
        assert not stack.dir.exists()
        assert pid is None or not Path(f"/proc/{pid}").exists(), f"stray {pid} still running"


@pytest.fixture(autouse=True)
def _healthy_before(fault_stack: Stack) -> None:
    """Every fault starts from a healthy stack, even after an earlier test failed."""
    if all(http_status(fault_stack.url + p) == 200 for p in ("/api/health", "/web/health")):
        return
    play(fault_stack, CLEAR, STACK)
    assert_healthy(fault_stack)


def test_injection_that_does_nothing_fails(fault_stack: Stack) -> None:
    """A fault whose effect does not show must fail the playbook, not pass silently."""
    # work_ms 0: the knob is written but nothing gets slower.
    started = time.monotonic()
    proc = run([str(VENV_BIN / "ansible-playbook"), "-i", str(fault_stack.inventory),
                str(FAULTS / "high-latency.yml"), "-e", "fault_high_latency_work_ms=0"],
               check=False)
    assert proc.returncode != 0
    assert "high-latency not confirmed" in proc.stdout
    # alloc_mb under the memory limit would never OOM: refused before anything changes.
    proc = run([str(VENV_BIN / "ansible-playbook"), "-i", str(fault_stack.inventory),
                str(FAULTS / "oom.yml"), "-e", "fault_oom_alloc_mb=8"], check=False)
    assert proc.returncode != 0
    assert state(fault_stack.container("api"))["Running"]
    print(f"\nno-op injections rejected: {time.monotonic() - started:.1f}s")
    # No reset: web's knobs are now {"work_ms": 0}, a no-op the next fault overwrites.


def test_contain(fault_stack: Stack) -> None:
    before = int(str(http_json(fault_stack.url + "/web/stats")["bad_records"]))
    inject(fault_stack, "contain")
    statuses = [get(fault_stack.url + "/web/health")[0] for _ in range(30)]
    assert set(statuses) <= {200, 500}
    assert statuses.count(500) >= 5, statuses
    after = int(str(http_json(fault_stack.url + "/web/stats")["bad_records"]))
    assert after >= before + statuses.count(500), (before, after)
    reset(fault_stack, CLEAR)
    assert all(get(fault_stack.url + "/web/health")[0] == 200 for _ in range(10))


def test_credential_expired(fault_stack: Stack) -> None:
    inject(fault_stack, "credential-expired")
    assert http_status(fault_stack.url + "/api/health") == 401
    assert http_json(fault_stack.url + "/api/health")["error"] == "upstream credential expired"
    assert http_status(fault_stack.url + "/web/health") == 200
    knobs = docker("exec", fault_stack.container("api"), "cat", "/state/knobs.json")
    assert json.loads(knobs) == {"auth_expired": True}
    reset(fault_stack, CLEAR)
    assert docker("exec", fault_stack.container("api"), "ls", "/state") == ""


def test_high_latency(fault_stack: Stack) -> None:
    inject(fault_stack, "high-latency")
    url = fault_stack.url + "/web/health"
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [r for _ in range(3) for r in pool.map(lambda _: get(url), range(4))]
    assert {r[0] for r in results} == {200}
    latency = p95([r[1] for r in results])
    print(f"high-latency p95 at concurrency 4: {latency:.0f} ms")
    assert latency > 400
    reset(fault_stack, CLEAR)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [r for _ in range(3) for r in pool.map(lambda _: get(url), range(4))]
    assert p95([r[1] for r in results]) < 400


def test_dependency_down(fault_stack: Stack) -> None:
    inject(fault_stack, "dependency-down")
    assert not state(fault_stack.container("deps"))["Running"]
    assert state(fault_stack.container("api"))["Running"]
    body = http_json(fault_stack.url + "/api/health")
    assert http_status(fault_stack.url + "/api/health") == 503
    assert body["status"] == "dependency down"
    reset(fault_stack, STACK)


def test_service_down(fault_stack: Stack) -> None:
    inject(fault_stack, "service-down")
    api = state(fault_stack.container("api"))
    assert not api["Running"]
    assert not api["OOMKilled"]
    assert http_status(fault_stack.url + "/api/health") not in (0, 200)
    assert http_status(fault_stack.url + "/proxy/health") == 200
    reset(fault_stack, STACK)


def test_stack_down(fault_stack: Stack) -> None:
    inject(fault_stack, "stack-down")
    running = services_running(fault_stack)
    assert running == {fault_stack.container(s): s == "proxy"
                       for s in ("proxy", "api", "web", "deps")}, running
    assert http_status(fault_stack.url + "/api/health") not in (0, 200)
    assert http_status(fault_stack.url + "/web/health") not in (0, 200)
    reset(fault_stack, STACK)
    assert all(services_running(fault_stack).values())


def test_proxy_502(fault_stack: Stack) -> None:
    inject(fault_stack, "proxy-502")
    proxy = details(fault_stack.container("proxy"))
    assert proxy["State"]["Running"]
    assert list(proxy["NetworkSettings"]["Networks"]) == [f"{PROJECT}_edge"]
    assert http_status(fault_stack.url + "/api/health") == 502
    assert http_status(fault_stack.url + "/web/health") not in (0, 200)
    # The apps themselves are fine: it is only the proxy's wiring.
    assert state(fault_stack.container("api"))["Running"]
    reset(fault_stack, STACK)


def test_oom(fault_stack: Stack) -> None:
    inject(fault_stack, "oom")
    api = details(fault_stack.container("api"))
    assert api["State"]["OOMKilled"] is True
    assert api["State"]["ExitCode"] == 137
    assert api["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert http_status(fault_stack.url + "/api/health") not in (0, 200)
    reset(fault_stack, CLEAR, STACK)
    # Docker 20.10 keeps State.OOMKilled true after a restart; only Running says it recovered.
    assert state(fault_stack.container("api"))["Running"]


def test_port_conflict(fault_stack: Stack) -> None:
    inject(fault_stack, "port-conflict")
    pid = stray_pid(fault_stack)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"http.server" in cmdline and str(PORT).encode() in cmdline, cmdline
    proxy = state(fault_stack.container("proxy"))
    assert not proxy["Running"]
    assert "address already in use" in str(proxy["Error"])
    # The port answers, but it is the stray, not Caddy.
    status, _, headers = get(fault_stack.url + "/api/health")
    assert status == 404
    assert headers.get("Server", "").startswith("SimpleHTTP")
    reset(fault_stack, CLEAR, STACK)
    assert not Path(f"/proc/{pid}").exists()
    assert stray_pid(fault_stack) is None


def test_bad_deploy(fault_stack: Stack) -> None:
    good = git(fault_stack, "rev-parse", "refs/deploy/good/staging")
    inject(fault_stack, "bad-deploy")
    bad = git(fault_stack, "rev-parse", "HEAD")
    assert bad != good
    assert git(fault_stack, "rev-parse", "refs/deploy/good/staging") == good
    assert json.loads(git(fault_stack, "show", "HEAD:release.json"))["healthy"] is False
    status, _, headers = get(fault_stack.url + "/api/health")
    assert status == 500
    assert headers["X-App-Version"] == bad
    assert http_json(fault_stack.url + "/api/version")["version"] == bad
    api = details(fault_stack.container("api"))
    assert api["Config"]["Labels"]["org.opencontainers.image.revision"] == bad
    # No reset: the module's teardown removes the stack with its deploy source.
