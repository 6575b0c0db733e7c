#!/usr/bin/env python3
"""Fault port-conflict, its host side in one process (playbooks/faults/port-conflict.yml).

Stop the proxy, wait until its port is free, start a stray ``python3 -m http.server``
on it (detached, in its own session, ended after ``--lifetime`` seconds at most),
wait until something listens, find who holds the port (``ss``), record the stray's
PID, then try to start the proxy again (it must fail: the port is taken). Prints
what happened as JSON; the playbook asserts the fault is real. Standard library
only.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait(condition: Callable[[], bool], timeout: float) -> bool:
    until = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= until:
            return False
        time.sleep(0.1)
    return True


def holders(port: int) -> list[dict[str, object]]:
    """The processes listening on TCP ``port`` (name and PID, as ``ss -p`` shows them)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                         text=True, check=False).stdout
    return [{"name": name, "pid": int(pid)}
            for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', out)]


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                          timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", required=True, help="the proxy container")
    parser.add_argument("--host", required=True, help="the address its port is published on")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--python", required=True, help="the stray's interpreter")
    parser.add_argument("--docroot", required=True, type=Path, help="the stray's (empty) root")
    parser.add_argument("--pidfile", required=True, type=Path, help="where its PID goes")
    parser.add_argument("--lifetime", type=int, default=3600,
                        help="seconds the stray lives at most if nobody stops it")
    args = parser.parse_args()
    out: dict[str, object] = {"port": args.port}
    stop = docker("stop", args.proxy)
    out["stop_error"] = stop.stderr.strip() if stop.returncode else ""
    out["port_freed"] = wait(lambda: not listening(args.host, args.port), 10)
    if out["port_freed"]:
        args.docroot.mkdir(mode=0o750, parents=True, exist_ok=True)
        subprocess.Popen(
            ["timeout", str(args.lifetime), args.python, "-m", "http.server", str(args.port),
             "--bind", args.host, "--directory", str(args.docroot)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        out["stray_listening"] = wait(lambda: listening(args.host, args.port), 10)
        found_holders = holders(args.port)
        stray = next((h for h in found_holders if "python" in str(h["name"])), None)
        out["holders"] = found_holders
        out["stray"] = stray
        if stray:
            args.pidfile.write_text(f"{stray['pid']}\n", encoding="utf-8")
            args.pidfile.chmod(0o640)
            start = docker("start", args.proxy)
            out["start_rc"] = start.returncode
            out["start_error"] = start.stderr.strip()
    inspected = docker("inspect", "--type", "container", args.proxy)
    found = json.loads(inspected.stdout or "[]")
    out["proxy"] = found[0] if found else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
