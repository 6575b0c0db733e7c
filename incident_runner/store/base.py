"""The state backend interface: where the index, locks and flap-guard counts live.

The incident folders are always files (the record). What several runners
must share sits behind ``Store``:

- ``claim_incident_id`` makes an incident id unique among the runners sharing it;
- ``record`` indexes a closed incident (never raises: the folder is the truth);
- ``list_incidents`` returns ``IncidentRow``s (``stats`` computes from them);
- ``count_remediations`` is what the flap guard counts;
- ``lock`` returns a ``HeldLock`` over the target's keys, held for the whole
  incident; ``ensure_held`` is the fencing check made before every step.

``LocalStore`` (SQLite index + flock, no server) is the default;
``PostgresStore`` shares all of it between runners on different machines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from incident_runner.errors import ExecutionError
from incident_runner.history import IncidentRow

OnWait = Callable[[str, dict[str, Any]], None]


class StoreUnavailableError(ExecutionError):
    """The state database cannot be reached or is not ready: exit 1 before an incident
    opens; inside one, the incident closes failed (an ExecutionError) without acting."""


class LockLostError(ExecutionError):
    """The lock's session is gone: stop before the next action (fencing)."""


class HeldLock(Protocol):
    """A target lock, held from ``acquire`` until ``close``."""

    keys: list[str]
    waited: float
    contended: bool
    last_holder: dict[str, Any]

    def acquire(self, timeout: float, cancel: threading.Event | None = None,
                on_wait: OnWait | None = None) -> None: ...

    def ensure_held(self) -> None:
        """Raise ``LockLostError`` if the lock may no longer be held."""

    def close(self) -> None: ...


class Store(Protocol):
    """One backend for the shared state of incidents (see the module docstring)."""

    name: str

    def claim_incident_id(self, incident_id: str, folder: str) -> bool:
        """True if no runner sharing this store has used ``incident_id``; it is then
        this incident's (``folder`` is its folder's name)."""
        ...

    def record(self, journal: dict[str, Any]) -> bool: ...

    def list_incidents(self) -> list[IncidentRow]: ...

    def count_remediations(self, target_key: str, since: datetime | float | str) -> int: ...

    def lock(self, keys: list[str], holder: dict[str, Any],
             opened: dict[str, Any]) -> HeldLock:
        """A lock over ``keys``; ``opened`` describes the incident taking it (its
        ``dir``, ``incident_id``, ``scenario``...), for stores that show running
        incidents to other runners."""
        ...
