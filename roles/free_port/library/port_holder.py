#!/usr/bin/python
"""Ansible module: find who holds a TCP port, and stop allowed process holders."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import pwd
import signal
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: port_holder
short_description: Report what holds a TCP port; optionally stop the allowed process holders
description:
  - Reads the listening TCP sockets of the host (/proc/net/tcp, /proc/net/tcp6)
    and maps them to processes through /proc/PID/fd; combines them with the
    containers publishing the port (given by the caller, from
    community.docker.docker_host_info).
  - Every holder is checked against allow-lists (shell-style patterns). A
    process whose command is in O(proxy_commands) (docker-proxy) is attributed
    to the publishing container, not judged on its own.
  - With O(stop), sends SIGTERM to the allowed process holders (SIGKILL after
    O(stop_timeout)), but only when no holder is blocked; never PID 1 or the
    module's own ancestors. Containers are left to the caller.
  - Supports check mode (reports what it would stop).
options:
  port: {type: int, required: true, description: TCP port.}
  containers:
    {type: list, elements: dict, default: [], description: Containers publishing the port.}
  allowed_containers:
    {type: list, elements: str, default: [], description: Name patterns that may be stopped.}
  allowed_container_labels:
    {type: dict, default: {}, description: Any of these label=value pairs allows a stop.}
  allowed_processes:
    {type: list, elements: str, default: [], description: Command patterns that may be stopped.}
  proxy_commands:
    {type: list, elements: str, default: [docker-proxy], description: Port proxies of containers.}
  stop: {type: bool, default: false, description: Stop the allowed process holders.}
  stop_timeout: {type: float, default: 5.0, description: Seconds between SIGTERM and SIGKILL.}
"""

RETURN = r"""
free: {type: bool, description: Nothing holds the port.}
holders: {type: list, description: Every holder with kind, name, allowed and reason.}
blocked: {type: list, description: Holders that match no allow-list.}
blocked_msg: {type: str, description: Who holds the port and why it is not stopped, or empty.}
stopped: {type: list, description: PIDs stopped (or that would be, in check mode).}
check_mode:
  type: bool
  description: >-
    Whether the module ran in check mode, from C(--check) or from the
    C(check_mode) keyword (C(ansible_check_mode) only follows C(--check)).
"""

LISTEN = "0A"


def listening_inodes(port: int, proc: Path = Path("/proc")) -> dict[str, str]:
    """inode -> local address of every TCP socket listening on ``port``."""
    found: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            address, _, hexport = fields[1].rpartition(":")
            if int(hexport, 16) == port:
                found[fields[9]] = f"{table}:{address}"
    return found


def socket_owners(inodes: set[str], proc: Path = Path("/proc")) -> dict[int, set[str]]:
    """pid -> inodes it holds open, for the given socket inodes."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, set[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target in wanted:
                owners.setdefault(int(entry.name), set()).add(wanted[target])
    return owners


def describe(pid: int, proc: Path = Path("/proc")) -> dict[str, Any]:
    base = proc / str(pid)
    try:
        comm = (base / "comm").read_text().strip()
        raw = (base / "cmdline").read_bytes().decode(errors="replace")
        argv = [a for a in raw.split("\0") if a]
        uid = base.stat().st_uid
    except OSError:
        return {"pid": pid, "comm": "?", "argv": [], "user": "?"}
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return {"pid": pid, "comm": comm, "argv": argv, "user": user}


def matches(patterns: list[str], *names: str) -> str | None:
    for pattern in patterns:
        for name in names:
            if name and fnmatch.fnmatchcase(name, pattern):
                return pattern
    return None


def container_name(c: dict[str, Any]) -> str:
    names = c.get("Names") or [c.get("Id", "?")[:12]]
    return str(names[0]).lstrip("/")


def judge_container(c: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    name = container_name(c)
    labels = c.get("Labels") or {}
    holder = {"kind": "container", "name": name, "id": c.get("Id", "")[:12],
              "image": c.get("Image", "")}
    pattern = matches(p["allowed_containers"], name)
    wanted = p["allowed_container_labels"].items()
    label = next((f"{k}={v}" for k, v in wanted if labels.get(k) == str(v)), None)
    if pattern or label:
        reason = f"name matches {pattern!r}" if pattern else f"label {label}"
        holder.update(allowed=True, reason=reason)
    else:
        holder.update(
            allowed=False,
            reason=(
                f"matches neither free_port_allowed_containers ({p['allowed_containers']}) "
                f"nor free_port_allowed_container_labels ({p['allowed_container_labels']})"
            ),
        )
    return holder


def judge_process(info: dict[str, Any], p: dict[str, Any], via: list[str]) -> dict[str, Any]:
    argv0 = Path(info["argv"][0]).name if info["argv"] else ""
    holder = {"kind": "process", "name": info["comm"], "pid": info["pid"], "user": info["user"],
              "cmdline": " ".join(info["argv"])[:300]}
    if via and matches(p["proxy_commands"], info["comm"], argv0):
        reason = f"publishes the port for container {', '.join(via)}"
        holder.update(allowed=True, proxy_for=via, reason=reason)
        return holder
    protected = {1, os.getpid(), os.getppid()}
    pattern = matches(p["allowed_processes"], info["comm"], argv0)
    if info["pid"] in protected:
        holder.update(allowed=False, reason="is PID 1 or runs this module")
    elif pattern:
        holder.update(allowed=True, reason=f"command matches {pattern!r}")
    else:
        holder.update(
            allowed=False,
            reason=f"matches no pattern in free_port_allowed_processes ({p['allowed_processes']}); "
            "an unknown process is never killed",
        )
    return holder


def scan(p: dict[str, Any]) -> list[dict[str, Any]]:
    holders = [judge_container(c, p) for c in p["containers"]]
    via = [h["name"] for h in holders]
    inodes = listening_inodes(p["port"])
    for pid in sorted(socket_owners(set(inodes))):
        holders.append(judge_process(describe(pid), p, via))
    return holders


def blocked_message(port: int, blocked: list[dict[str, Any]]) -> str:
    parts = []
    for h in blocked:
        if h["kind"] == "container":
            who = f"container {h['name']} ({h['id']}, image {h['image']})"
        else:
            who = f"process {h['name']} (pid {h['pid']}, user {h['user']}: {h['cmdline']})"
        parts.append(f"{who}, which {h['reason']}")
    held = "; and by ".join(parts)
    return f"free_port_port: {port} is held by {held}; not stopping anything"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM, wait, SIGKILL what is left. Returns the PIDs that were signalled."""
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            continue
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(alive(pid) for pid in signalled):
        time.sleep(0.05)
    for pid in signalled:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return signalled


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "port": {"type": "int", "required": True},
            "containers": {"type": "list", "elements": "dict", "default": []},
            "allowed_containers": {"type": "list", "elements": "str", "default": []},
            "allowed_container_labels": {"type": "dict", "default": {}},
            "allowed_processes": {"type": "list", "elements": "str", "default": []},
            "proxy_commands": {"type": "list", "elements": "str", "default": ["docker-proxy"]},
            "stop": {"type": "bool", "default": False},
            "stop_timeout": {"type": "float", "default": 5.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["port"] <= 65535:
        module.fail_json(msg=f"free_port_port: {p['port']} is not a TCP port (1-65535)")
    holders = scan(p)
    blocked = [h for h in holders if not h["allowed"]]
    result: dict[str, Any] = {
        "changed": False,
        "port": p["port"],
        "free": not holders,
        "holders": holders,
        "blocked": blocked,
        "blocked_msg": blocked_message(p["port"], blocked) if blocked else "",
        "stopped": [],
        "check_mode": module.check_mode,
    }
    targets = [h["pid"] for h in holders
               if h["kind"] == "process" and h["allowed"] and "proxy_for" not in h]
    if p["stop"] and targets:
        if blocked:
            details = {k: v for k, v in result.items() if k != "changed"}
            module.fail_json(msg=result["blocked_msg"], **details)
        result["changed"] = True
        result["stopped"] = targets if module.check_mode else stop(targets, p["stop_timeout"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
