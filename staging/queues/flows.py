"""Staging workflows app for incident-runner drills (seed 004, n8n-like).

Named workflows (``WORKFLOWS``) run on a schedule (every ``EVERY`` s) while
active; activation lives in Redis (``ir:workflows``), so it survives restarts.
The knob ``workflow_fail`` (Redis key ``ir:knob:workflow_fail``) makes one
workflow fail on every run; ``leaked`` makes ``/security`` report a leaked
credential (what a secret scanner would alert on). The app is also the
producer feeding the BullMQ queues (``FEED_QUEUES``, one job per queue every
``FEED_EVERY`` s; the knob ``feed`` = off stops it), counting what it added in
``ir:produced:<queue>``.

HTTP on ``PORT``: ``GET /health``; ``GET /workflows``; ``GET /workflows/NAME``;
``POST /workflows/NAME/activate`` and ``/deactivate`` (404 for an unknown
name); ``GET /workflows/health`` (500 while an active workflow's last 3 runs
failed or an active workflow has not run for 3 periods); ``GET /security``
(500 while the ``leaked`` knob is set).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from bullmq import Queue

REDIS_URL = os.environ.get("REDIS_URL", "redis://redis:6379")
WORKFLOWS = [w for w in os.environ.get("WORKFLOWS", "ingest-orders,sync-crm,send-digest").split(",")
             if w]
FEED_QUEUES = [q for q in os.environ.get("FEED_QUEUES", "ingest,notifications").split(",") if q]
PORT = int(os.environ.get("PORT", "8080"))
EVERY = float(os.environ.get("EVERY", "1"))
FEED_EVERY = float(os.environ.get("FEED_EVERY", "0.5"))
FAILING_AFTER = 3  # consecutive failed runs: "failing consistently"

R = redis.Redis.from_url(REDIS_URL, decode_responses=True)


def workflow(name: str) -> dict[str, Any]:
    stats = R.hgetall(f"ir:wf:{name}")
    return {"name": name, "active": R.hget("ir:workflows", name) == "1",
            "runs": int(stats.get("runs", 0)), "failures": int(stats.get("failures", 0)),
            "consecutive_failures": int(stats.get("consecutive_failures", 0)),
            "last_status": stats.get("last_status", ""),
            "last_run": float(stats.get("last_run", 0))}


def run_workflows() -> None:
    while True:
        try:
            fail = R.get("ir:knob:workflow_fail") or ""
            for name in WORKFLOWS:
                if R.hget("ir:workflows", name) != "1":
                    continue
                key = f"ir:wf:{name}"
                R.hincrby(key, "runs", 1)
                if name == fail:
                    R.hincrby(key, "failures", 1)
                    R.hincrby(key, "consecutive_failures", 1)
                    R.hset(key, mapping={"last_status": "failed", "last_run": time.time()})
                else:
                    R.hset(key, mapping={"last_status": "ok", "consecutive_failures": 0,
                                         "last_run": time.time()})
        except redis.RedisError as exc:
            sys.stderr.write(f"workflows: redis error {exc}\n")
        time.sleep(EVERY)


async def feed() -> None:
    queues = {name: Queue(name, {"connection": REDIS_URL}) for name in FEED_QUEUES}
    n = 0
    while True:
        try:
            if R.get("ir:knob:feed") != "off":
                n += 1
                for name, queue in queues.items():
                    await queue.add("record", {"n": n, "at": time.time()})
                    R.incr(f"ir:produced:{name}")
        except (redis.RedisError, OSError) as exc:
            sys.stderr.write(f"feed: redis error {exc}\n")
        await asyncio.sleep(FEED_EVERY)


def unreachable(exc: Exception) -> dict[str, str]:
    return {"status": f"redis unreachable at {REDIS_URL}", "error": str(exc)[:200]}


class Handler(BaseHTTPRequestHandler):
    server_version = "ir-staging-flows"

    def log_message(self, fmt: str, *args: object) -> None:
        return

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        try:
            if self.path == "/health":
                R.ping()
                self.reply(200, {"status": "ok"})
            elif self.path == "/security":
                leaked = bool(R.get("ir:knob:leaked"))
                self.reply(500 if leaked else 200,
                           {"status": "credential leaked" if leaked else "ok"})
            elif self.path == "/workflows":
                self.reply(200, [workflow(n) for n in WORKFLOWS])
            elif self.path == "/workflows/health":
                now, bad = time.time(), []
                for wf in map(workflow, WORKFLOWS):
                    if wf["active"] and (wf["consecutive_failures"] >= FAILING_AFTER
                                         or now - wf["last_run"] > 3 * EVERY + 1):
                        bad.append(wf["name"])
                self.reply(500 if bad else 200, {"status": "failing" if bad else "ok",
                                                 "failing": bad})
            elif self.path.startswith("/workflows/") and self.path.count("/") == 2:
                name = self.path.split("/")[2]
                if name in WORKFLOWS:
                    self.reply(200, workflow(name))
                else:
                    self.reply(404, {"error": f"unknown workflow '{name}'"})
            else:
                self.reply(404, {"error": "not found"})
        except redis.RedisError as exc:
            self.reply(503, unreachable(exc))

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "workflows" or parts[2] not in {"activate", "deactivate"}:
            self.reply(404, {"error": "not found"})
            return
        name, want = parts[1], "1" if parts[2] == "activate" else "0"
        if name not in WORKFLOWS:
            self.reply(404, {"error": f"unknown workflow '{name}'"})
            return
        try:
            before = R.hget("ir:workflows", name)
            R.hset("ir:workflows", name, want)
            self.reply(200, {**workflow(name), "changed": before != want})
        except redis.RedisError as exc:
            self.reply(503, unreachable(exc))


def main() -> None:
    for _ in range(100):  # Redis may still be starting
        try:
            for name in WORKFLOWS:
                R.hsetnx("ir:workflows", name, "1")
            break
        except redis.RedisError:
            time.sleep(0.2)
    threading.Thread(target=run_workflows, daemon=True).start()
    threading.Thread(target=lambda: asyncio.run(feed()), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 (container port)
    sys.stderr.write(f"flows {', '.join(WORKFLOWS)} feeding {', '.join(FEED_QUEUES)}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
