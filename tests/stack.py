"""A real staging stack for integration tests: own project name, own port, own inventory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LABEL = "io.incident-runner.stack"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def run(argv: list[str], check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return proc


def http_status(url: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_ssh_banner(port: int, timeout: float = 120) -> None:
    """Until sshd on 127.0.0.1:PORT sends its banner (a restarted container's port forward
    accepts connections before sshd listens, then drops them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                if conn.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no SSH banner on 127.0.0.1:{port} within {timeout:.0f} s")
        time.sleep(0.5)


def http_json(url: str, timeout: float = 3.0) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read() or b"{}"))


def docker(*args: str, check: bool = True) -> str:
    return run(["docker", *args], check=check).stdout.strip()


def inspect(container: str) -> dict[str, object]:
    return dict(json.loads(docker("inspect", container))[0])


@dataclass
class Stack:
    """One staging stack instance and an inventory pointing at it."""

    project: str
    port: int
    workdir: Path

    @property
    def dir(self) -> Path:
        return self.workdir / "stack"

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def deploy_src(self) -> Path:
        return self.dir / "deploy-src"

    def container(self, service: str, n: int = 1) -> str:
        return f"{self.project}-{service}-{n}"

    def write_inventory(self) -> Path:
        inv = self.inventory
        (inv / "group_vars").mkdir(parents=True, exist_ok=True)
        (inv / "hosts.yml").write_text((ROOT / "inventories/staging/hosts.yml").read_text())
        base = yaml.safe_load((ROOT / "inventories/staging/group_vars/all.yml").read_text())
        base.update(stack_project=self.project, stack_http_port=self.port, stack_dir=str(self.dir))
        (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(base, sort_keys=False))
        return inv

    def playbook(self, path: str, *extra: str,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(ROOT / path),
                    *extra], check=check)

    def up(self) -> None:
        self.write_inventory()
        self.playbook("playbooks/stack.yml")

    def down(self) -> None:
        self.playbook("playbooks/stack.yml", "-e", "stack_state=absent", check=False)

    def leftovers(self) -> dict[str, list[str]]:
        flt = f"label={LABEL}={self.project}"
        return {
            "containers": docker("ps", "-aq", "--filter", flt).split(),
            "networks": docker("network", "ls", "-q", "--filter", flt).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", flt).split(),
        }

    def wait_status(self, path: str, want: int, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        status = http_status(self.url + path)
        while status != want and time.monotonic() < deadline:
            time.sleep(0.2)
            status = http_status(self.url + path)
        return status

    def remediate(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([str(VENV_BIN / "incident-runner"), "remediate", "--inventory",
                    str(self.inventory), *args], check=False)


def new_stack(tmp: Path, name: str) -> Stack:
    return Stack(project=f"ir-t-{name}-{os.getpid() % 10000}", port=free_port(), workdir=tmp)


@contextmanager
def systemd_hosts(inventory: Path, prefix: str, count: int, ssh_base: int,
                  app_base: int) -> Iterator[Path]:
    """COUNT systemd hosts made by playbooks/systemd_hosts.yml from a clean slate (leftovers
    of a killed run removed first), their inventory written to INVENTORY; removed after,
    and checked gone."""
    args = ["-e", json.dumps({
        "systemd_hosts_prefix": prefix, "systemd_hosts_count": count,
        "systemd_hosts_ssh_port_base": ssh_base, "systemd_hosts_app_port_base": app_base,
        "systemd_hosts_inventory_dir": str(inventory)})]
    playbook = str(ROOT / "playbooks" / "systemd_hosts.yml")
    run(["ansible-playbook", playbook, *args, "-e", "systemd_hosts_state=absent"])
    run(["ansible-playbook", playbook, *args])
    try:
        yield inventory
    finally:
        run(["ansible-playbook", playbook, *args, "-e", "systemd_hosts_state=absent"])
        assert docker("ps", "-aq", "--filter",
                      f"label=io.incident-runner.systemd-hosts={prefix}") == ""
