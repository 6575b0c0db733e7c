#!/usr/bin/env python3
"""GET one URL ``--requests`` times, ``--concurrency`` at a time; print the statuses (0:
no answer) as a JSON list. One process for a burst the fault playbooks measure
(a module call per round would cost more than the requests). Standard library only."""

from __future__ import annotations

import argparse
import http.client
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def status(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our stack)
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError, http.client.HTTPException):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
        statuses = list(pool.map(lambda _: status(args.url, args.timeout), range(args.requests)))
    print(json.dumps(statuses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
