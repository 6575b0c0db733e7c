"""A minimal Docker Engine API client over the unix socket (stdlib only).

Shared by the remediation modules of reconnect_networks, restart_containers and
scale_service (they list the docker_engine role as a dependency, which puts this
file on their module_utils path). Why not the docker CLI or the docker SDK:
one API request costs ~1 ms here, a `docker` CLI call ~40-60 ms (a Go binary
started per call) and importing requests/the SDK ~150 ms per module run.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
from typing import Any

API = "/v1.41"  # Docker 20.10; newer engines still serve it
DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(Exception):
    """An engine request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def socket_path() -> str:
    """The engine's socket from DOCKER_HOST (unix:// only), else the default."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    raise EngineError(f"DOCKER_HOST={host}: only a unix:// socket is supported")


class Engine:
    """Docker Engine API calls the remediation modules need."""

    def __init__(self, path: str | None = None, timeout: float = 30.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def request(self, method: str, url: str, body: Any = None,
                query: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        raw = self.request_raw(method, url, body, query, timeout)
        return json.loads(raw) if raw.strip() else None

    def request_raw(self, method: str, url: str, body: Any = None,
                    query: dict[str, Any] | None = None, timeout: float | None = None) -> bytes:
        """The answer's body as bytes (logs are a byte stream, not JSON)."""
        if query:
            url += "?" + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.path, self.timeout if timeout is None else timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, API + url, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as exc:
            raise EngineError(f"Docker engine at {self.path}: {exc}") from exc
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                message = json.loads(raw).get("message", "")
            except ValueError:
                message = raw.decode(errors="replace")
            raise EngineError(f"{method} {url}: {resp.status} {message}".strip(), resp.status)
        return raw

    def _inspect(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.request("GET", f"/{kind}/{urllib.parse.quote(name)}/json"
                                                 if kind == "containers"
                                                 else f"/{kind}/{urllib.parse.quote(name)}")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def container(self, name: str) -> dict[str, Any] | None:
        """The container's inspect data, or None when there is no such container."""
        return self._inspect("containers", name)

    def network(self, name: str) -> dict[str, Any] | None:
        """The network's inspect data, or None when there is no such network."""
        return self._inspect("networks", name)

    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        """Every container (running or not) carrying all ``labels`` (key=value)."""
        found: list[dict[str, Any]] = self.request(
            "GET", "/containers/json",
            query={"all": "1", "filters": json.dumps({"label": labels})})
        return found

    def logs(self, container: str, tail: int, tty: bool = False) -> tuple[str, str]:
        """The last ``tail`` lines of stdout and of stderr, each line timestamped (RFC 3339),
        as ``docker logs --timestamps --tail`` gives them. Without a TTY the engine
        multiplexes both streams in frames: 1 byte stream, 3 zero, 4 bytes length."""
        raw = self.request_raw("GET", f"/containers/{urllib.parse.quote(container)}/logs",
                               query={"stdout": 1, "stderr": 1, "timestamps": 1, "tail": tail})
        if tty:  # one stream, no frames
            return raw.decode(errors="replace"), ""
        streams: dict[int, list[bytes]] = {1: [], 2: []}
        at = 0
        while at + 8 <= len(raw):
            kind, size = raw[at], int.from_bytes(raw[at + 4:at + 8], "big")
            streams.setdefault(kind, []).append(raw[at + 8:at + 8 + size])
            at += 8 + size
        return (b"".join(streams[1]).decode(errors="replace"),
                b"".join(streams[2]).decode(errors="replace"))

    def connect(self, network: str, container: str, aliases: list[str]) -> None:
        body: dict[str, Any] = {"Container": container}
        if aliases:
            body["EndpointConfig"] = {"Aliases": aliases}
        self.request("POST", f"/networks/{urllib.parse.quote(network)}/connect", body)

    def restart(self, container: str, stop_timeout: int = 10) -> None:
        self.request("POST", f"/containers/{urllib.parse.quote(container)}/restart",
                     query={"t": stop_timeout}, timeout=self.timeout + stop_timeout)

    def start(self, container: str) -> None:
        try:
            self.request("POST", f"/containers/{urllib.parse.quote(container)}/start")
        except EngineError as exc:
            if exc.status != 304:  # already started
                raise

    def update(self, container: str, limits: dict[str, int]) -> None:
        self.request("POST", f"/containers/{urllib.parse.quote(container)}/update", limits)


def health(state: dict[str, Any]) -> str:
    """A container state's healthcheck status: healthy, unhealthy, starting or none."""
    return str((state.get("Health") or {}).get("Status") or "none")


def describe(state: dict[str, Any]) -> str:
    """One line for a container state: 'running (healthy)', 'exited 137, OOM-killed'."""
    if state.get("Running"):
        status = health(state)
        return "running" + (f" ({status})" if status != "none" else "")
    text = f"{state.get('Status', 'gone')} {state.get('ExitCode', '')}".strip()
    return text + (", OOM-killed" if state.get("OOMKilled") else "")


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it returns true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
