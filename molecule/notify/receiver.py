"""Webhook receiver for molecule/notify: records every POST as one JSON line.

Paths: /ok answers 200; /flaky answers 500 to its first two requests, then
200; /slow sleeps 3 s before answering (longer than the test's timeout);
/down always answers 503. Listens on 127.0.0.1 only.
Usage: python3 receiver.py PORT RECORD_FILE PID_FILE

Returns once it listens: it serves from a child in its own session (its PID
in PID_FILE), detached from the caller's output, for an hour at most.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT, RECORD, PIDFILE = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
_lock = threading.Lock()
_seen: dict[str, int] = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:  # quiet
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        path = self.path.split("?", 1)[0]
        with _lock:
            _seen[path] = _seen.get(path, 0) + 1
            count = _seen[path]
            with RECORD.open("a", encoding="utf-8") as fh:
                entry = {"path": path, "n": count,
                         "content_type": self.headers.get("Content-Type", ""),
                         "body": body.decode("utf-8", "replace")}
                fh.write(json.dumps(entry) + "\n")
        if path == "/slow":
            time.sleep(3)
        status = {"/ok": 200, "/down": 503}.get(path, 200)
        if path == "/flaky":
            status = 500 if count <= 2 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def main() -> None:
    RECORD.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)  # listens from here on
    child = os.fork()
    if child:
        PIDFILE.write_text(str(child))
        return
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.alarm(3600)  # the default action ends it
    server.serve_forever()


if __name__ == "__main__":
    main()
