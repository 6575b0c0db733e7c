"""The incident timeline: append-only JSON lines, flushed and fsynced per event.

A run killed at any point leaves every event written so far readable; a torn
last line (killed mid-write) is skipped by the reader, never fatal.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from incident_runner.layout import TIMELINE_FILE
from incident_runner.timeutil import now_iso

__all__ = ["TIMELINE_FILE", "Timeline", "now_iso", "read_timeline"]



class Timeline:
    """Appends events to ``<incident>/timeline.jsonl``; safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._seq = sum(1 for _ in read_timeline(path))

    def append(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "ts": now_iso(), "kind": kind, **fields}
            self._handle.write(json.dumps(event, default=str, sort_keys=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
            return event

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_timeline(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the events of a timeline; skip a torn final line left by a kill."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event
