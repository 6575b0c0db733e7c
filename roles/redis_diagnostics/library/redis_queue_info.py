#!/usr/bin/python
"""Redis reachability, INFO clients/memory and BullMQ queue depths, read-only."""

from __future__ import annotations

import asyncio
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: redis_queue_info
short_description: Read Redis health and BullMQ queue depths
description:
  - Pings Redis, reads INFO server, clients and memory, and the job counts of
    every BullMQ queue (official BullMQ client for Python). Changes nothing.
  - Redis down fails with C(redis unreachable at URL).
options:
  redis_url: {type: str, required: true, description: Redis URL.}
  prefix: {type: str, default: bull, description: BullMQ key prefix.}
"""

COUNT_TYPES = ("waiting", "paused", "active", "delayed", "prioritized", "failed", "completed")
INFO_KEYS = ("redis_version", "uptime_in_seconds", "connected_clients", "blocked_clients",
             "used_memory_human", "used_memory_peak_human", "maxmemory_human",
             "mem_fragmentation_ratio")


async def read(url: str, prefix: str) -> dict[str, Any]:
    from bullmq import Queue  # noqa: PLC0415 (import errors are reported by main)
    from redis import asyncio as aioredis  # noqa: PLC0415

    conn = aioredis.from_url(url, decode_responses=True, socket_timeout=3,
                             socket_connect_timeout=3)
    try:
        await conn.ping()
        info: dict[str, Any] = {}
        for section in ("server", "clients", "memory"):
            info.update(await conn.info(section))
        names = set()
        async for key in conn.scan_iter(match=f"{prefix}:*:meta", count=500):
            names.add(key[len(prefix) + 1:-len(":meta")])
        async for key in conn.scan_iter(match=f"{prefix}:*:id", count=500):
            names.add(key[len(prefix) + 1:-len(":id")])
    finally:
        await conn.aclose()
    queues = {}
    for name in sorted(names):
        queue = Queue(name, {"connection": url, "prefix": prefix})
        try:
            counts = await queue.getJobCounts(*COUNT_TYPES)
            queues[name] = {**{t: int(counts.get(t, 0)) for t in COUNT_TYPES},
                            "is_paused": bool(await queue.isPaused())}
        finally:
            await queue.close()
    return {"info": {k: info[k] for k in INFO_KEYS if k in info}, "queues": queues}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"redis_url": {"type": "str", "required": True},
                       "prefix": {"type": "str", "default": "bull"}},
        supports_check_mode=True,
    )
    try:
        import bullmq  # noqa: F401, PLC0415
    except ImportError:
        module.fail_json(msg="the bullmq Python package is missing on the target")
    url = module.params["redis_url"]
    try:
        data = asyncio.run(read(url, module.params["prefix"]))
    except Exception as exc:
        module.fail_json(msg=f"redis unreachable at {url}: {exc}")
    info = data["info"]
    depths = ", ".join(
        f"{n}{' (paused)' if c['is_paused'] else ''}: waiting {c['waiting'] + c['paused']}, "
        f"active {c['active']}, failed {c['failed']}" for n, c in data["queues"].items())
    msg = (f"redis {info.get('redis_version', '?')} reachable: "
           f"{info.get('connected_clients', '?')} clients, {info.get('blocked_clients', '?')} "
           f"blocked, memory {info.get('used_memory_human', '?')}; {depths or 'no BullMQ queue'}")
    module.exit_json(changed=False, msg=msg, **data)


if __name__ == "__main__":
    main()
