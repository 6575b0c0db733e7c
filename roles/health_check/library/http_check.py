#!/usr/bin/python
"""Ansible module: HTTP health check with consecutive successes and a p95 budget."""

from __future__ import annotations

import http.client
import math
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: http_check
short_description: Probe an HTTP endpoint until it is healthy N times in a row
description:
  - Sends rounds of GET requests (optionally several in parallel) until the last
    O(successes) rounds all returned an expected status and the 95th percentile
    latency of those rounds is within O(p95_ms), or until O(deadline) passes.
  - Read-only; runs the same in check mode.
options:
  url: {type: str, required: true, description: URL to request.}
  status: {type: list, elements: int, default: [200], description: Accepted statuses.}
  successes: {type: int, default: 3, description: Consecutive good rounds needed.}
  interval: {type: float, default: 0.2, description: Seconds between rounds.}
  timeout: {type: float, default: 2.0, description: Per-request timeout in seconds.}
  p95_ms: {type: int, required: false, description: Latency budget for the p95 of the window.}
  concurrency: {type: int, default: 1, description: Parallel requests per round.}
  deadline: {type: float, default: 30.0, description: Give up after this many seconds.}
  name: {type: str, required: false, description: Label used in messages.}
"""



def _one(url: str, timeout: float) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only by config)
            resp.read(65536)
            status, error = resp.status, ""
    except urllib.error.HTTPError as exc:
        status, error = exc.code, ""
    # An answer cut short (IncompleteRead, BadStatusLine) is an HTTPException, not an
    # OSError: a failed request, not a crashed check.
    except (OSError, ValueError, http.client.HTTPException) as exc:
        status, error = 0, f"{type(exc).__name__}: {exc}"[:200]
    return status, (time.monotonic() - started) * 1000.0, error


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    # nearest-rank percentile
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def probe(url: str, status: list[int], successes: int = 3, interval: float = 0.2,
          timeout: float = 2.0, p95_ms: int | None = None, concurrency: int = 1,
          deadline: float = 30.0, name: str | None = None,
          fail_after: int | None = None) -> dict[str, object]:
    """Rounds of GETs until ``successes`` good rounds in a row (healthy) or the deadline.

    ``fail_after``: stop early once that many rounds in a row failed (the runner's
    symptom confirmation: a sustained failure is the evidence, no need to wait out
    the deadline). Pure: the runner imports this function to check from its own
    process instead of paying for an Ansible run.
    """
    label = name or url
    window: list[list[float]] = []  # latencies of the consecutive good rounds
    rounds = failed_in_row = 0
    last: dict[str, object] = {}
    verdict = ""
    end = time.monotonic() + deadline
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        while True:
            rounds += 1
            results = list(pool.map(lambda _: _one(url, timeout), range(concurrency)))
            statuses = [r[0] for r in results]
            last = {"statuses": statuses, "errors": [r[2] for r in results if r[2]],
                    "latency_ms": [round(r[1], 1) for r in results]}
            if all(s in status for s in statuses):
                window.append([r[1] for r in results])
                window = window[-successes:]
                failed_in_row = 0
            else:
                window = []
                failed_in_row += 1
            if len(window) == successes:
                latency = p95([ms for batch in window for ms in batch])
                if p95_ms is None or latency <= p95_ms:
                    return {"healthy": True, "name": label, "rounds": rounds,
                            "p95_ms": round(latency, 1), "last": last,
                            "msg": f"{label}: {successes} good rounds in a row, "
                                   f"p95 {latency:.0f} ms"}
                verdict = f"p95 {latency:.0f} ms over budget {p95_ms} ms"
            else:
                verdict = f"statuses {statuses}, expected {status}"
            if fail_after is not None and failed_in_row >= fail_after:
                return {"healthy": False, "name": label, "rounds": rounds, "p95_ms": None,
                        "last": last, "msg": f"{label}: {failed_in_row} failed rounds in a "
                                             f"row: {verdict}"}
            if time.monotonic() + interval >= end:
                break
            time.sleep(interval)
    samples = [ms for batch in window for ms in batch]
    return {"healthy": False, "name": label, "rounds": rounds,
            "p95_ms": round(p95(samples), 1) if samples else None, "last": last,
            "msg": f"{label}: not healthy after {deadline:.0f}s ({rounds} rounds): {verdict}"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "status": {"type": "list", "elements": "int", "default": [200]},
            "successes": {"type": "int", "default": 3},
            "interval": {"type": "float", "default": 0.2},
            "timeout": {"type": "float", "default": 2.0},
            "p95_ms": {"type": "int", "required": False},
            "concurrency": {"type": "int", "default": 1},
            "deadline": {"type": "float", "default": 30.0},
            "name": {"type": "str", "required": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["successes"] < 1 or p["concurrency"] < 1:
        module.fail_json(msg="successes and concurrency must be at least 1")
    result = probe(**p)
    if result.pop("healthy"):
        module.exit_json(changed=False, healthy=True, **result)
    module.fail_json(healthy=False, **result)


if __name__ == "__main__":
    main()
