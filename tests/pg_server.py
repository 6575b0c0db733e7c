"""A real PostgreSQL cluster for tests: Debian's binaries, a temporary data dir owned by
the postgres user (PostgreSQL refuses to run as root), loopback only, ports 18950-18999."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PORTS = range(18950, 19000)
DATABASE = "incident_runner"


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: run scripts/setup_postgres.sh")
    return str(found[-1])


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18950-18999")


def _as_postgres(argv: list[str], timeout: float = 120) -> None:
    proc = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")


class PgServer:
    """One cluster: ``start``/``stop`` keep its data, ``destroy`` removes it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ir-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        _as_postgres([_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--locale=C", "--no-sync"])

    def start(self) -> None:
        """Start it; if another test's cluster took the port since __init__, take another."""
        for _attempt in range(5):
            try:
                self._start()
                return
            except RuntimeError:
                log = self.dir / "server.log"
                text = log.read_text(errors="replace") if log.is_file() else ""
                if "could not bind" not in text and "already in use" not in text:
                    raise
                log.unlink()
                self.port = _free_port()
                self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._start()

    def _start(self) -> None:
        # Loopback only, the socket in our own dir; fsync off: a test cluster.
        _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                      "-w", "-t", "60", "-o",
                      f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                      "-c fsync=off -c max_connections=60", "start"])

    def stop(self, mode: str = "fast") -> None:
        _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def create_database(self) -> None:
        _as_postgres([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                      "postgres", DATABASE])

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL on 127.0.0.1:{self.port} did not answer")
