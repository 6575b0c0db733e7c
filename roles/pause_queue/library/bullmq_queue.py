#!/usr/bin/python
"""Pause, resume or watch BullMQ queues through the official BullMQ client for Python."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: bullmq_queue
short_description: Pause, resume or watch BullMQ queues on Redis
description:
  - Uses the official BullMQ client for Python (Queue.pause, Queue.resume,
    Queue.isPaused, Queue.getJobCounts). A queue is known when its BullMQ
    keys exist in Redis; an unknown name fails with C(bad input: unknown queue 'NAME').
  - C(state=watch) changes nothing; it proves over O(watch_seconds) that a paused
    queue processes nothing and loses nothing, or that a running queue drains.
options:
  redis_url: {type: str, required: true, description: Redis URL.}
  names:
    type: list
    elements: str
    required: true
    description: Queue names; C(*) means every BullMQ queue in Redis.
  state:
    type: str
    choices: [info, paused, resumed, watch]
    default: info
    description: What to do.
  prefix: {type: str, default: bull, description: BullMQ key prefix.}
  watch_seconds: {type: float, default: 3, description: Length of the watch window.}
  settle_seconds:
    type: float
    default: 10
    description: How long a watch waits for the jobs active at the pause to finish.
"""

RETURN = r"""
queues: {type: dict, description: Per queue the counts before (and after) and whether it changed.}
known: {type: list, description: The BullMQ queues found in Redis.}
check_mode:
  type: bool
  description: >-
    Whether the module ran in check mode, from C(--check) or from the
    C(check_mode) keyword (C(ansible_check_mode) only follows C(--check)).
msg: {type: str, description: One line per queue, counts as waiting/active/failed/completed.}
"""

COUNT_TYPES = ("waiting", "paused", "active", "delayed", "prioritized", "failed", "completed")


def backlog(c: dict[str, int]) -> int:
    return c["waiting"] + c["paused"] + c["delayed"] + c["prioritized"]


def total(c: dict[str, int]) -> int:
    return sum(c[t] for t in COUNT_TYPES)


def line(c: dict[str, Any]) -> str:
    """Counts as waiting/active/failed/completed (waiting includes paused jobs)."""
    return f"{backlog(c)}/{c['active']}/{c['failed']}/{c['completed']}"


COUNTS = "waiting/active/failed/completed"


class Queues:
    def __init__(self, url: str, prefix: str) -> None:
        from bullmq import Queue  # noqa: PLC0415 (import errors are reported by main)
        from redis import asyncio as aioredis  # noqa: PLC0415

        self.url, self.prefix = url, prefix
        self.queue_cls = Queue
        self.conn = aioredis.from_url(url, decode_responses=True, socket_timeout=3,
                                      socket_connect_timeout=3)

    async def known(self) -> list[str]:
        names = set()
        async for key in self.conn.scan_iter(match=f"{self.prefix}:*:meta", count=500):
            names.add(key[len(self.prefix) + 1:-len(":meta")])
        async for key in self.conn.scan_iter(match=f"{self.prefix}:*:id", count=500):
            names.add(key[len(self.prefix) + 1:-len(":id")])
        return sorted(names)

    async def read(self, name: str) -> dict[str, Any]:
        queue = self.queue_cls(name, {"connection": self.url, "prefix": self.prefix})
        try:
            counts = await queue.getJobCounts(*COUNT_TYPES)
            paused = bool(await queue.isPaused())
        finally:
            await queue.close()
        return {**{t: int(counts.get(t, 0)) for t in COUNT_TYPES}, "is_paused": paused}

    async def set_paused(self, name: str, paused: bool) -> None:
        queue = self.queue_cls(name, {"connection": self.url, "prefix": self.prefix})
        try:
            await (queue.pause() if paused else queue.resume())
        finally:
            await queue.close()


async def run(module: AnsibleModule) -> dict[str, Any]:
    p = module.params
    q = Queues(p["redis_url"], p["prefix"])
    try:
        await q.conn.ping()
    except Exception as exc:
        module.fail_json(msg=f"redis unreachable at {p['redis_url']}: {exc}")
    known = await q.known()
    names = known if p["names"] == ["*"] else p["names"]
    for name in names:
        if name not in known:
            module.fail_json(msg=f"bad input: unknown queue '{name}' (known: "
                                 f"{', '.join(known) or 'none'})", known=known)
    result: dict[str, Any] = {"changed": False, "queues": {}, "known": known,
                              "check_mode": module.check_mode}
    state, summary = p["state"], []
    for name in names:
        before = await q.read(name)
        entry: dict[str, Any] = {"before": before}
        if state in {"paused", "resumed"}:
            want = state == "paused"
            if before["is_paused"] != want:
                result["changed"] = entry["changed"] = True
                if not module.check_mode:
                    await q.set_paused(name, want)
            entry["after"] = await q.read(name)
            verb = "paused" if want else "resumed"
            done = verb if entry.get("changed") else f"already {verb}"
            if module.check_mode and entry.get("changed"):
                done = f"would be {verb}"
            summary.append(f"{name} {done} {line(before)} -> {line(entry['after'])}")
        elif state == "watch":
            entry.update(await watch(q, name, before, p["watch_seconds"], p["settle_seconds"]))
            summary.append(entry["summary"])
        else:
            now = "paused" if before["is_paused"] else "running"
            summary.append(f"{name} {now} {line(before)}")
        result["queues"][name] = entry
    result["msg"] = f"{COUNTS}: " + ("; ".join(summary) or "no queue")
    bad = [e["summary"] for e in result["queues"].values() if e.get("ok") is False]
    if bad:
        module.fail_json(msg="; ".join(bad), **{k: v for k, v in result.items() if k != "msg"})
    return result


async def watch(q: Queues, name: str, before: dict[str, Any], seconds: float,
                settle: float) -> dict[str, Any]:
    """Paused: nothing processed and nothing lost over the window. Running: it drains."""
    if before["is_paused"]:
        # Jobs already active when the queue was paused may still finish (BullMQ
        # lets them); start the window once none is active.
        deadline = time.monotonic() + settle
        start = before
        while start["active"] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            start = await q.read(name)
        await asyncio.sleep(seconds)
        end = await q.read(name)
        processed = (end["completed"] + end["failed"]) - (start["completed"] + start["failed"])
        lost = total(start) - total(end)
        ok = end["is_paused"] and processed == 0 and lost <= 0 and end["active"] == 0
        summary = (f"{name} over {seconds:g}s: {processed} processed, {max(lost, 0)} lost, "
                   f"{line(start)} -> {line(end)}")
        if not ok:
            summary = f"{name} NOT contained: {summary}"
        return {"start": start, "end": end, "processed": processed, "lost": max(lost, 0),
                "ok": ok, "summary": summary}
    deadline = time.monotonic() + seconds
    end = before
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        end = await q.read(name)
        if end["completed"] + end["failed"] > before["completed"] + before["failed"] and (
                backlog(end) <= backlog(before) or backlog(end) == 0):
            break
    processed = (end["completed"] + end["failed"]) - (before["completed"] + before["failed"])
    ok = processed > 0 or (backlog(end) == 0 and end["active"] == 0)
    summary = f"{name} running: {processed} processed, {line(before)} -> {line(end)}"
    if not ok:
        summary = f"{name} NOT draining: {summary}"
    return {"start": before, "end": end, "processed": processed, "ok": ok, "summary": summary}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "redis_url": {"type": "str", "required": True},
            "names": {"type": "list", "elements": "str", "required": True},
            "state": {"type": "str", "choices": ["info", "paused", "resumed", "watch"],
                      "default": "info"},
            "prefix": {"type": "str", "default": "bull"},
            "watch_seconds": {"type": "float", "default": 3.0},
            "settle_seconds": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    try:
        import bullmq  # noqa: F401, PLC0415
    except ImportError:
        module.fail_json(msg="the bullmq Python package is missing on the target")
    module.exit_json(**asyncio.run(run(module)))


if __name__ == "__main__":
    main()
