"""A broken answer - cut short when the upstream is killed mid-response, as an OOM kill
does (IncompleteRead), or a mangled status line (BadStatusLine) - raises an
http.client.HTTPException, not an OSError. Every GET helper that judges health counts
it as a failed request; before, it escaped and killed the drill's detector (the fault
then looked "not injected") or crashed the check."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from incident_runner import drill_probe, local_module

ROLES = Path(__file__).resolve().parents[2] / "roles"


CUT = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello"  # 5 of 100 bytes, hang up
MANGLED = b"HTTP/1.1 2x0 OK\r\n\r\n"


def _server(answer: bytes) -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/health"
    server.close()


@pytest.fixture
def cut_url() -> Iterator[str]:
    yield from _server(CUT)


@pytest.fixture
def mangled_url() -> Iterator[str]:
    yield from _server(MANGLED)


def test_the_drill_detector_counts_them_as_failed_probes(cut_url: str, mangled_url: str) -> None:
    assert drill_probe.get(cut_url, 2.0)[0] == 0
    assert drill_probe.get(mangled_url, 2.0)[0] == 0


# The modules read at most part of the body (or none): a mangled status line is their case.
def test_the_health_check_module_counts_it_as_a_failed_request(mangled_url: str) -> None:
    module = local_module.load(ROLES / "health_check/library/http_check.py", "cut_http_check")
    status, _, error = module._one(mangled_url, 2.0)
    assert status == 0 and "BadStatusLine" in error


def test_the_restart_module_counts_it_as_no_answer(mangled_url: str) -> None:
    module = local_module.load(ROLES / "restart_containers/library/container_restart.py",
                               "cut_container_restart")
    status, why = module.url_status(mangled_url, 2.0)
    assert status == 0 and "BadStatusLine" in why
