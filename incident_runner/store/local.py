"""The default backend: the SQLite index in the state dir and flock target locks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from incident_runner import history
from incident_runner.history import IncidentRow
from incident_runner.lock import TargetLock


class LocalStore:
    """State shared by the runs of one state dir on one host; needs no server."""

    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root

    def claim_incident_id(self, incident_id: str, folder: str) -> bool:
        return True  # one state dir: its exclusively created folder already makes it unique

    def record(self, journal: dict[str, Any]) -> bool:
        return history.record(journal, self.root)

    def list_incidents(self) -> list[IncidentRow]:
        return history.list_incidents(self.root)

    def count_remediations(self, target_key: str, since: datetime | float | str) -> int:
        return history.count_remediations(target_key, since, self.root)

    def lock(self, keys: list[str], holder: dict[str, Any],
             opened: dict[str, Any]) -> TargetLock:
        # The flock's owner is this process: the kernel drops it only when it dies.
        return TargetLock(self.root, keys, holder=holder)
