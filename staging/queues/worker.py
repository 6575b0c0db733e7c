"""Staging BullMQ worker for incident-runner drills (seed 003).

One official-BullMQ-for-Python ``Worker`` per queue (``QUEUES``), talking to a
real Redis (``REDIS_URL``). Misbehaviour comes from knobs, Redis keys
``ir:knob:<name>``, so a fault survives a worker restart the way bad input does:
``bad_data`` (a queue name or ``*``: its jobs write bad records), ``fail``
(a queue name or ``*``: its jobs raise). ``hang`` is taken once by the
next job (DEL): that process wedges until it is restarted, as a stuck worker
does.

HTTP on ``PORT``: ``/health`` (503 while a queue that is not paused has a
backlog and nothing finished for ``STUCK_AFTER`` s), ``/data/health`` (500
while bad records were written in the last ``STUCK_AFTER`` s), ``/queues``
(BullMQ job counts, paused flag, jobs produced, records written).
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

from bullmq import Queue, Worker
from redis import asyncio as aioredis

REDIS_URL = os.environ.get("REDIS_URL", "redis://redis:6379")
QUEUES = [q for q in os.environ.get("QUEUES", "ingest,notifications").split(",") if q]
PORT = int(os.environ.get("PORT", "8080"))
JOB_MS = int(os.environ.get("JOB_MS", "20"))
STUCK_AFTER = float(os.environ.get("STUCK_AFTER", "5"))
COUNT_TYPES = ("waiting", "paused", "active", "delayed", "prioritized", "failed", "completed")
# Short locks: a job held by a killed worker is back in the queue within seconds.
WORKER_OPTS = {"lockDuration": 4000, "stalledInterval": 4000, "maxStalledCount": 5,
               "drainDelay": 1}

LOOP = asyncio.new_event_loop()
STATE: dict[str, Any] = {"started": time.time(), "last_done": {}, "wedged": False}
READERS: dict[str, Queue] = {}


def knob_applies(value: str | None, queue: str) -> bool:
    return bool(value) and value in {"*", queue}


async def queue_counts(conn: aioredis.Redis) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in QUEUES:
        # One long-lived Queue per name: a new one loads BullMQ's scripts each time,
        # too slow for a health probe on a busy machine.
        queue = READERS.setdefault(name, Queue(name, {"connection": REDIS_URL}))
        counts = await queue.getJobCounts(*COUNT_TYPES)
        paused = await queue.isPaused()
        produced = int(await conn.get(f"ir:produced:{name}") or 0)
        out[name] = {**{t: int(counts.get(t, 0)) for t in COUNT_TYPES}, "is_paused": bool(paused),
                     "produced": produced,
                     "last_done_s_ago": round(time.time() - STATE["last_done"].get(
                         name, STATE["started"]), 2)}
    records = await conn.hgetall("ir:records")
    return {"queues": out, "records": {k: int(v) for k, v in records.items()},
            "last_bad": float(await conn.get("ir:last_bad") or 0)}


def make_processor(name: str, conn: aioredis.Redis):
    async def process(job: Any, _token: str) -> dict[str, Any]:
        if await conn.delete("ir:knob:hang"):
            STATE["wedged"] = True
        if STATE["wedged"]:
            sys.stderr.write(f"worker wedged on {name} job {job.id}\n")
            await asyncio.Event().wait()  # stuck until the process is restarted
        fail, bad_data = await conn.mget("ir:knob:fail", "ir:knob:bad_data")
        await asyncio.sleep(JOB_MS / 1000)
        if knob_applies(fail, name):
            STATE["last_done"][name] = time.time()
            raise RuntimeError("failing on purpose (knob fail)")
        bad = knob_applies(bad_data, name)
        await conn.hincrby("ir:records", "bad" if bad else "good", 1)
        if bad:
            await conn.set("ir:last_bad", time.time())
        STATE["last_done"][name] = time.time()
        return {"record": "bad" if bad else "good"}

    return process


class Handler(BaseHTTPRequestHandler):
    server_version = "ir-staging-worker"

    def log_message(self, fmt: str, *args: object) -> None:
        return

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        try:
            # Short: with Redis down the client retries for long; answer 503 first.
            snap = asyncio.run_coroutine_threadsafe(queue_counts(CONN), LOOP).result(timeout=1.8)
        except Exception as exc:
            self.reply(503, {"status": f"redis unreachable at {REDIS_URL}",
                             "error": str(exc)[:200]})
            return
        if self.path == "/queues":
            self.reply(200, snap)
            return
        if self.path == "/data/health":
            recent = time.time() - snap["last_bad"] < STUCK_AFTER
            self.reply(500 if recent else 200,
                       {"status": "writing bad records" if recent else "ok", **snap["records"]})
            return
        if self.path == "/health":
            stuck = [n for n, c in snap["queues"].items()
                     if not c["is_paused"] and c["waiting"] + c["prioritized"] > 0
                     and c["last_done_s_ago"] > STUCK_AFTER]
            self.reply(503 if stuck else 200,
                       {"status": "stuck" if stuck else "ok", "stuck": stuck})
            return
        self.reply(404, {"error": "not found"})


async def main() -> None:
    workers = [Worker(name, make_processor(name, CONN), {"connection": REDIS_URL, **WORKER_OPTS})
               for name in QUEUES]
    sys.stderr.write(f"worker on {', '.join(QUEUES)} ({REDIS_URL})\n")
    try:
        await asyncio.Event().wait()
    finally:
        for worker in workers:
            await worker.close()


if __name__ == "__main__":
    asyncio.set_event_loop(LOOP)
    CONN = aioredis.from_url(REDIS_URL, decode_responses=True)
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 (container port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    LOOP.run_until_complete(main())
