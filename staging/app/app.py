"""Staging app for incident-runner drills.

One image, three roles (APP_ROLE): ``api`` (calls a dependency, has a memory
limit), ``web`` (scaled behind the proxy) and ``deps`` (the dependency).
Misbehaviour is driven by knobs in ``$STATE_DIR/knobs.json`` so that faults
survive restarts the way real ones do (a bigger working set, a slower
request path, an expired credential); the file is re-read when it changes.

Knobs: fail_health (bool), work_ms (int, per-request cost; the server is
single-threaded so load queues), alloc_mb (int, resident memory to hold),
auth_expired (bool, answer 401), error_rate (float 0..1, answer 500 and
count a bad record).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path

ROLE = os.environ.get("APP_ROLE", "api")
PORT = int(os.environ.get("APP_PORT", "8080"))
STATE_DIR = Path(os.environ.get("STATE_DIR", "/state"))
DEPENDENCY_URL = os.environ.get("DEPENDENCY_URL", "")
VERSION = os.environ.get("APP_VERSION", "unknown")
RELEASE_FILE = Path(__file__).with_name("release.json")

_knobs: dict[str, object] = {}
_knobs_mtime = -1.0
_held: list[bytearray] = []
_bad_records = 0
_lock = threading.Lock()


def release() -> dict[str, object]:
    """Settings shipped with the commit; a bad deploy breaks them."""
    try:
        return dict(json.loads(RELEASE_FILE.read_text()))
    except (OSError, ValueError):
        return {"healthy": False, "reason": "release.json unreadable"}


def knobs() -> dict[str, object]:
    global _knobs, _knobs_mtime
    path = STATE_DIR / "knobs.json"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        _knobs, _knobs_mtime = {}, -1.0
        return _knobs
    if mtime != _knobs_mtime:
        try:
            _knobs = dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            _knobs = {}
        _knobs_mtime = mtime
    return _knobs


def hold_memory() -> None:
    """Keep alloc_mb MiB resident (pages touched), so a memory limit bites."""
    want = int(knobs().get("alloc_mb", 0) or 0)
    have = len(_held)
    if want > have:
        for _ in range(want - have):
            block = bytearray(1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            _held.append(block)
    elif want < have:
        del _held[want:]


def watch_knobs() -> None:
    while True:
        with _lock:
            hold_memory()
        time.sleep(0.2)


def dependency_ok() -> tuple[bool, str]:
    if not DEPENDENCY_URL:
        return True, ""
    try:
        with urllib.request.urlopen(DEPENDENCY_URL + "/health", timeout=1) as resp:  # noqa: S310
            return resp.status == 200, f"dependency answered {resp.status}"
    except OSError as exc:
        return False, f"dependency unreachable: {exc}"


class Handler(BaseHTTPRequestHandler):
    server_version = "ir-staging-app"

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{ROLE} {self.address_string()} {fmt % args}\n")

    def reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        self.send_header("X-App-Role", ROLE)
        self.send_header("X-App-Host", os.environ.get("HOSTNAME", ""))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        global _bad_records
        k = knobs()
        work_ms = int(k.get("work_ms", 0) or 0)
        if work_ms:
            time.sleep(work_ms / 1000)
        base = {"role": ROLE, "version": VERSION}
        if self.path == "/version":
            self.reply(200, base)
            return
        if k.get("auth_expired"):
            self.reply(401, {**base, "error": "upstream credential expired"})
            return
        if self.path == "/stats":
            self.reply(200, {**base, "bad_records": _bad_records, "held_mb": len(_held)})
            return
        rel = release()
        if not rel.get("healthy", True):
            self.reply(500, {**base, "status": "broken release", "reason": rel.get("reason", "")})
            return
        if k.get("fail_health"):
            self.reply(500, {**base, "status": "failing on purpose"})
            return
        rate = float(k.get("error_rate", 0) or 0)
        if rate and random.random() < rate:  # noqa: S311 (fault simulation, not crypto)
            _bad_records += 1
            self.reply(500, {**base, "status": "error storm"})
            return
        ok, why = dependency_ok()
        if not ok:
            self.reply(503, {**base, "status": "dependency down", "reason": why})
            return
        self.reply(200, {**base, "status": "ok"})


def main() -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with _lock:
        hold_memory()
    threading.Thread(target=watch_knobs, daemon=True).start()
    # web is single-threaded on purpose: one worker per replica, so load queues
    # and adding replicas really lowers latency.
    server_cls = HTTPServer if ROLE == "web" else ThreadingHTTPServer
    server = server_cls(("0.0.0.0", PORT), Handler)  # noqa: S104 (container port)
    sys.stderr.write(f"{ROLE} {VERSION} listening on {PORT}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
