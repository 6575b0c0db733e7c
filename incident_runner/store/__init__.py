"""Where the shared state of incidents lives: SQLite + flock (default) or PostgreSQL.

``state_url`` picks the backend: ``--state-url``, else ``$INCIDENT_RUNNER_STATE_URL``,
else ``state_url`` in incident-runner.yml; unset means the SQLite index and
flock locks in the state dir (no server). See docs/postgres.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from incident_runner.config import Config
from incident_runner.store.base import HeldLock, LockLostError, Store, StoreUnavailableError
from incident_runner.store.local import LocalStore

STATE_URL_ENV = "INCIDENT_RUNNER_STATE_URL"

__all__ = ["STATE_URL_ENV", "HeldLock", "LocalStore", "LockLostError", "Store",
           "StoreUnavailableError", "open_store", "resolve_state_url"]


def resolve_state_url(explicit: str | None, config: Config | None) -> tuple[str | None, str, str]:
    """(url or None, where it came from, field) by precedence: flag, environment, config."""
    if explicit:
        return explicit, "", "--state-url"
    env = os.environ.get(STATE_URL_ENV)
    if env:
        return env, "", f"${STATE_URL_ENV}"
    if config is not None and config.state_url:
        return config.state_url, config.origin, "state_url"
    return None, "", ""


def open_store(explicit: str | None, config: Config | None, root: Path) -> Store:
    """The backend in effect: a bad URL is InputError (exit 2), an unreachable server or
    an old schema StoreUnavailableError (exit 1), both before any incident is opened."""
    url, source, field = resolve_state_url(explicit, config)
    if url is None:
        return LocalStore(root)
    # psycopg is imported only when PostgreSQL is configured: the default needs no driver.
    from incident_runner.store.postgres import PostgresStore, check_url  # noqa: PLC0415

    return PostgresStore.open(check_url(url, source or None, field), root)
