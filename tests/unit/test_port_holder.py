"""Pure logic of roles/free_port/library/port_holder.py (no real processes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MODULE = Path(__file__).parents[2] / "roles" / "free_port" / "library" / "port_holder.py"


@pytest.fixture(scope="module")
def ph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("port_holder", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "port": 8080, "containers": [], "allowed_containers": [],
        "allowed_container_labels": {}, "allowed_processes": [],
        "proxy_commands": ["docker-proxy"],
    }
    return base | over


HEADER = "  sl  local_address rem_address st tx_queue rx_queue tr tm->when uid inode\n"
TAIL = " 00000000:00000000 00:00000000 00000000     0        0 "


def row(local: str, remote: str, state: str, inode: int) -> str:
    return f"   0: {local} {remote} {state}{TAIL}{inode} 1\n"


def fake_proc(tmp_path: Path, tcp: str, tcp6: str = "") -> Path:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(HEADER + tcp)
    (tmp_path / "net" / "tcp6").write_text(HEADER + tcp6)
    return tmp_path


def test_listening_inodes_keeps_only_listeners_on_the_port(ph: ModuleType, tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        # 0x1F90 = 8080 listening; same port established (01); another port listening
        row("0100007F:1F90", "00000000:0000", "0A", 111)
        + row("0100007F:1F90", "0100007F:D431", "01", 222)
        + row("00000000:0050", "00000000:0000", "0A", 333),
        row("0" * 32 + ":1F90", "0" * 32 + ":0000", "0A", 444),
    )
    found = ph.listening_inodes(8080, proc)
    assert set(found) == {"111", "444"}
    assert found["444"].startswith("tcp6:")


def test_unknown_process_is_blocked_with_a_reason(ph: ModuleType) -> None:
    argv = ["/usr/bin/python3", "-m", "http.server"]
    info = {"pid": 4242, "comm": "python3", "argv": argv, "user": "app"}
    holder = ph.judge_process(info, params(allowed_processes=["gunicorn"]), via=[])
    assert holder["allowed"] is False
    assert "free_port_allowed_processes" in holder["reason"]
    msg = ph.blocked_message(8080, [holder])
    assert msg.startswith("free_port_port: 8080 is held by process python3 (pid 4242, user app:")
    assert msg.endswith("not stopping anything")


def test_process_allowed_by_comm_or_argv0(ph: ModuleType) -> None:
    info = {"pid": 4242, "comm": "python3", "argv": ["/opt/bin/ir-r1-stray", "x"], "user": "root"}
    assert ph.judge_process(info, params(allowed_processes=["ir-r1-*"]), via=[])["allowed"]
    assert ph.judge_process(info, params(allowed_processes=["pyth*"]), via=[])["allowed"]


def test_pid_1_is_never_allowed(ph: ModuleType) -> None:
    info = {"pid": 1, "comm": "init", "argv": ["/sbin/init"], "user": "root"}
    assert not ph.judge_process(info, params(allowed_processes=["*"]), via=[])["allowed"]


def test_docker_proxy_is_attributed_to_the_publishing_container(ph: ModuleType) -> None:
    info = {"pid": 77, "comm": "docker-proxy", "argv": ["/usr/sbin/docker-proxy"], "user": "root"}
    holder = ph.judge_process(info, params(), via=["web-1"])
    assert holder["allowed"] and holder["proxy_for"] == ["web-1"]
    # without a publishing container it is just an unknown process
    assert not ph.judge_process(info, params(), via=[])["allowed"]


def test_container_allowed_by_name_pattern_or_label(ph: ModuleType) -> None:
    c = {"Id": "0123456789abcdef", "Names": ["/stack-squatter"], "Image": "img",
         "Labels": {"team": "web"}}
    assert ph.judge_container(c, params(allowed_containers=["stack-*"]))["allowed"]
    assert ph.judge_container(c, params(allowed_container_labels={"team": "web"}))["allowed"]
    blocked = ph.judge_container(c, params(allowed_container_labels={"team": "db"}))
    assert not blocked["allowed"]
    assert "free_port_allowed_containers" in blocked["reason"]
