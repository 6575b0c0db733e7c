"""Target locks: two runs never remediate the same service of an environment at once.

One lock file per key under ``<state dir>/locks/`` held with ``fcntl.flock``.
The kernel drops a flock when the holding process dies (``kill -9``
included), so a lock left by a killed run is reclaimed by the next one
without any stale-lock heuristics. The holder writes who it is (pid, host,
incident id, scenario, since) into the file for the message a waiter shows.

Keys name what is acted on (``incident_runner.target.Target.lock_keys``):
``<environment>/<host>/<project>:<service>`` for each host and service.
Several keys are taken in sorted order, all or none, so
two runs over overlapping services cannot deadlock.

Locks only work between runs that share the state dir on one host (or a
filesystem with working flock); docs/ci.md says how pipelines do that.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from incident_runner.timeutil import now_iso

LOCKS_DIR = "locks"
DEFAULT_LOCK_TIMEOUT = 300.0
POLL_SECONDS = 0.2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def lock_path(root: Path, key: str) -> Path:
    """``<root>/locks/<readable key>-<hash>.lock``: distinct keys never share a file."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    readable = _UNSAFE.sub("_", key).strip("._")[:60] or "lock"
    return root / LOCKS_DIR / f"{readable}-{digest}.lock"


def read_holder(path: Path) -> dict[str, Any]:
    """Who holds (or last held) the lock file; {} if unknown or being written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another run (holder unknown)"
    who = holder.get("incident_id") or "another run"
    what = f" ({holder['scenario']})" if holder.get("scenario") else ""
    where = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    return f"{who}{what}, {where}, since {holder.get('since', '?')}"


class LockBusyError(Exception):
    """The keys were not all free within the timeout (or the wait was cancelled)."""

    def __init__(self, key: str, holder: dict[str, Any], waited: float, cancelled: bool) -> None:
        self.key = key
        self.holder = holder
        self.waited = waited
        self.cancelled = cancelled
        why = "cancelled while waiting" if cancelled else f"still held after {waited:.0f}s"
        super().__init__(f"another remediation holds the lock on '{key}': "
                         f"{describe_holder(holder)}; {why}")


class Waiting(Protocol):
    """A lock being taken: what a waiter learns about the holder (read and written)."""

    @property
    def contended(self) -> bool: ...
    @contended.setter
    def contended(self, value: bool) -> None: ...
    @property
    def last_holder(self) -> dict[str, Any]: ...
    @last_holder.setter
    def last_holder(self, value: dict[str, Any]) -> None: ...


def poll(lock: Waiting, key: str, take: Callable[[], bool], who: Callable[[], dict[str, Any]],
         deadline: float, started: float, cancel: threading.Event | None,
         on_wait: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Try ``take`` until it succeeds; say once whom we wait for; give up at the deadline
    or on cancel (LockBusyError). Shared by the flock and the PostgreSQL locks."""
    announced = False
    while not take():
        holder = who()
        lock.contended = True
        lock.last_holder = holder or lock.last_holder
        if not announced and on_wait is not None:
            on_wait(key, holder)
        announced = True
        cancelled = cancel is not None and cancel.is_set()
        if cancelled or time.monotonic() >= deadline:
            raise LockBusyError(key, holder, time.monotonic() - started, cancelled)
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


@dataclass
class TargetLock:
    """Holds flocks on a set of keys; ``close()`` releases them (idempotent)."""

    root: Path
    keys: list[str]
    holder: dict[str, Any] = field(default_factory=dict)
    waited: float = 0.0
    contended: bool = False  # someone else held a key when we first tried
    last_holder: dict[str, Any] = field(default_factory=dict)
    _fds: list[int] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def acquire(self, timeout: float, cancel: threading.Event | None = None,
                on_wait: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """Take every key, waiting up to ``timeout`` seconds in all; LockBusyError if not."""
        started = time.monotonic()
        deadline = started + max(0.0, timeout)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(),
                **self.holder}
        try:
            for key in sorted(self.keys):
                self._fds.append(self._take(key, deadline, started, cancel, on_wait))
        except BaseException:
            self.close()
            raise
        self.waited = time.monotonic() - started
        payload = json.dumps({**info, "keys": sorted(self.keys)}) + "\n"
        for fd in self._fds:
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload.encode(), 0)
            os.fsync(fd)

    def _take(self, key: str, deadline: float, started: float,
              cancel: threading.Event | None,
              on_wait: Callable[[str, dict[str, Any]], None] | None) -> int:
        path = lock_path(self.root, key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        def take() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            poll(self, key, take, lambda: read_holder(path), deadline, started, cancel, on_wait)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def ensure_held(self) -> None:
        """Fencing check before a step: a flock lasts as long as this process (no-op)."""

    def close(self) -> None:
        """Release every key (the files stay: unlinking a flocked file races other waiters)."""
        while self._fds:
            fd = self._fds.pop()
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
