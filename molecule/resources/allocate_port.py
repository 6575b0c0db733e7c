#!/usr/bin/env python3
"""Allocate (or release) the HTTP port of a role scenario's staging stack.

    allocate_port.py claim STATE_FILE   # print the scenario's port, claiming a free one once
    allocate_port.py release STATE_FILE # give it back

Ports come from IR_MOLECULE_PORTS (default 18100-18149), never hand-numbered:
a port is claimed by creating CLAIMS/<port> exclusively (so scenarios running in
parallel never get the same one) and must be free to bind on 127.0.0.1. The
claim names the state file (in molecule's ephemeral directory); a claim whose
state file is gone is stale and is taken over. molecule.yml reads the port back
from the state file.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

CLAIMS = Path(os.environ.get("IR_MOLECULE_PORT_CLAIMS", "/run/incident-runner/molecule-ports"))


def port_range() -> range:
    spec = os.environ.get("IR_MOLECULE_PORTS", "18100-18149")
    try:
        low, high = (int(part) for part in spec.split("-"))
    except ValueError:
        sys.exit(f"IR_MOLECULE_PORTS: '{spec}' is not a range like 18100-18149")
    return range(low, high + 1)


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def claim(state: Path) -> int:
    if state.is_file():
        return int(state.read_text())
    CLAIMS.mkdir(parents=True, exist_ok=True)
    for port in port_range():
        path = CLAIMS / str(port)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = Path(path.read_text().strip() or "/nonexistent")
            if owner.is_file():
                continue
            path.unlink(missing_ok=True)  # stale: its scenario is gone
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
        with os.fdopen(fd, "w") as claim_file:
            claim_file.write(str(state))
        if bindable(port):
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(str(port))
            return port
        path.unlink(missing_ok=True)
    sys.exit(f"IR_MOLECULE_PORTS: no free port in {port_range()}")


def release(state: Path) -> None:
    if state.is_file():
        (CLAIMS / state.read_text().strip()).unlink(missing_ok=True)
        state.unlink()


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in {"claim", "release"}:
        sys.exit(__doc__)
    state = Path(sys.argv[2])
    if sys.argv[1] == "claim":
        print(claim(state))
    else:
        release(state)


if __name__ == "__main__":
    main()
