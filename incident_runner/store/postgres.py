"""Shared state in PostgreSQL: the incident index, target locks and flap-guard counts.

Several runners (CI runners, AWX nodes, two ``serve`` instances) on one
database never act twice on one target and see one history. The incident
folders stay files on each runner; ``origin`` (runner host + state dir) tells
their rows apart.

Locks are session advisory locks (``pg_try_advisory_lock`` on a 64-bit hash of
the lock key) on a dedicated connection opened for the incident and held until
it closes: PostgreSQL releases them when that session ends, whether the runner
closed it, was killed (``kill -9``) or lost the server. The same session holds
a lock on the incident's own key, so a ``running`` row whose key nobody holds
belongs to a runner that died: the next reader marks it ``interrupted``.
``ensure_held`` is the fencing check before every step: the session must be
alive and still hold every key, else the runner stops before acting.

A transaction-pooling proxy (PgBouncer ``pool_mode = transaction``) hands the
session to other clients between statements, which breaks session locks:
point ``state_url`` at PostgreSQL itself or a session-pooled port
(docs/postgres.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from incident_runner.errors import InputError
from incident_runner.history import IncidentRow, _since_epoch, index_rows
from incident_runner.lock import poll
from incident_runner.store.base import LockLostError, OnWait, StoreUnavailableError
from incident_runner.timeutil import now_iso

LOG = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 5
# One constant for the migration lock: concurrent `db upgrade`s run one at a time.
MIGRATION_LOCK = 0x49520001
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
INTERRUPTED_REASON = ("interrupted: the runner's database session ended before the incident "
                      "closed (runner killed or connection lost)")
# Detect a dead server or network on the lock connection within seconds, not hours.
_SESSION_OPTIONS: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5,
                                    "keepalives_interval": 2, "keepalives_count": 3,
                                    "tcp_user_timeout": 10_000}


# -- the URL -----------------------------------------------------------------------------
def check_url(url: str, source: str | None, field: str | None) -> str:
    """The URL if it is a usable postgresql:// URL, else InputError (exit 2)."""
    text = url.strip()
    if not text.startswith(SCHEMES):
        scheme = text.split(":", 1)[0][:20] if ":" in text else text[:20]
        raise InputError(f"'{scheme}' is not a postgresql:// URL (leave state_url unset for the "
                         "built-in SQLite state)", source=source, field=field)
    try:
        params = conninfo_to_dict(text)
    except psycopg.ProgrammingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"not a valid PostgreSQL URL: {first[:120]}", source=source,
                         field=field) from None
    port = str(params.get("port") or "")
    if port and not all(p.isdigit() for p in port.split(",")):
        # libpq only finds this out when connecting: it is still bad input, not an outage
        raise InputError(f"not a valid PostgreSQL URL: port '{port[:20]}' is not a number",
                         source=source, field=field)
    return text


def describe_url(url: str) -> str:
    """``host:port/dbname``: where the state is, without credentials."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"


def connect(url: str, purpose: str, session: bool = False) -> psycopg.Connection[Any]:
    """An autocommit connection; StoreUnavailableError (exit 1, one line) if unreachable."""
    options: dict[str, Any] = {"application_name": f"incident-runner {purpose}"[:63]}
    if "connect_timeout" not in conninfo_to_dict(url):
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    if session:
        options.update(_SESSION_OPTIONS)
    try:
        return psycopg.connect(url, autocommit=True, **options)
    except psycopg.Error as exc:
        raise StoreUnavailableError(
            f"state database {describe_url(url)} unreachable: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[:1]).strip()
    return text[:200] or type(exc).__name__


def advisory_key(namespace: str, key: str) -> int:
    """A signed 64-bit advisory lock key for ``key`` (sha256: keys never share by accident)."""
    digest = hashlib.sha256(f"incident-runner:{namespace}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- migrations --------------------------------------------------------------------------
def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    found = []
    for entry in resources.files("incident_runner.store").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = migrations()[-1][0]


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('ir_schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM ir_schema_migrations").fetchone()
    return int(row[0]) if row else 0


def upgrade(url: str) -> tuple[int, int, list[str]]:
    """Apply the pending migrations, one transaction each; (before, after, applied)."""
    applied: list[str] = []
    with connect(url, "db upgrade") as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS ir_schema_migrations ("
                             "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                             "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            before = schema_version(conn)
            for version, name, sql in migrations():
                if version <= before:
                    continue
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    if schema_version(conn) >= version:  # another upgrade got there first
                        continue
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO ir_schema_migrations (version, name) "
                                 "VALUES (%s, %s)", (version, name))
                applied.append(f"{version:04d}_{name}")
            return before, schema_version(conn), applied
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"state database {describe_url(url)}: upgrade failed: {_first_line(exc)}"
            ) from None


# -- the store ---------------------------------------------------------------------------
def _origin(root: Path) -> str:
    return f"{socket.gethostname()}:{root.resolve()}"


class PostgresStore:
    """The shared backend (see the module docstring)."""

    name = "postgresql"

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self.origin = _origin(root)
        self.where = describe_url(url)

    @classmethod
    def open(cls, url: str, root: Path) -> PostgresStore:
        """Check the server answers and the schema is current (else exit 1, one line)."""
        store = cls(url, root)
        with store._connect("check") as conn:
            version = schema_version(conn)
        if version < SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"state database {store.where} is at schema version {version}, this runner "
                f"needs {SCHEMA_VERSION}: run `incident-runner db upgrade`")
        return store

    def _connect(self, purpose: str) -> psycopg.Connection[Any]:
        return connect(self.url, purpose)

    # -- writing ------------------------------------------------------------------------
    def claim_incident_id(self, incident_id: str, folder: str) -> bool:
        """Claim the id for every runner on this database (unreachable: exit 1, one line,
        before anything acted)."""
        try:
            with self._connect("incident id") as conn, conn.transaction():
                row = conn.execute(
                    "INSERT INTO ir_incident_ids (incident_id, origin, dir) VALUES (%s, %s, %s) "
                    "ON CONFLICT (incident_id) DO NOTHING RETURNING incident_id",
                    (incident_id, self.origin, folder)).fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"state database {self.where}: {_first_line(exc)}"
                                        ) from None
        return row is not None

    def record(self, journal: dict[str, Any]) -> bool:
        """Index a closed incident. Never raises: the folder on disk is the truth."""
        try:
            with self._connect("record") as conn, conn.transaction():
                upsert(conn, self.origin, journal)
        except (psycopg.Error, StoreUnavailableError, ValueError) as exc:
            LOG.warning("could not index %s in the shared history (%s): %s",
                        journal.get("incident_id"), self.where, _first_line(exc))
            return False
        return True

    # -- reading ------------------------------------------------------------------------
    def list_incidents(self) -> list[IncidentRow]:
        try:
            with self._connect("list") as conn:
                reap(conn)
                cur = conn.cursor(row_factory=dict_row)
                rows = cur.execute("SELECT * FROM ir_incidents ORDER BY start_epoch ASC NULLS "
                                   "LAST, dir, origin").fetchall()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"state database {self.where}: {_first_line(exc)}"
                                        ) from None
        return [IncidentRow.from_sql(r) for r in rows]

    def count_remediations(self, target_key: str, since: datetime | float | str) -> int:
        """As ``History.count_remediations``, over every runner sharing the database."""
        try:
            with self._connect("flap guard") as conn:
                row = conn.execute(
                    "SELECT count(*) FROM ir_incidents i WHERE i.target_key = %s AND "
                    "i.start_epoch >= %s AND i.check_mode = 0 AND EXISTS (SELECT 1 FROM "
                    "ir_steps s WHERE s.origin = i.origin AND s.incident_dir = i.dir AND "
                    "s.phase = 'mitigate')", (target_key, _since_epoch(since))).fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"state database {self.where}: {_first_line(exc)}"
                                        ) from None
        return int(row[0]) if row else 0

    def lock(self, keys: list[str], holder: dict[str, Any],
             opened: dict[str, Any]) -> PostgresLock:
        return PostgresLock(self, keys, holder, opened)


def upsert(conn: psycopg.Connection[Any], origin: str, journal: dict[str, Any],
           session_key: int | None = None) -> None:
    """Write one incident's row and steps (in the caller's transaction)."""
    row, steps = index_rows(journal)
    row = {"origin": origin, **row}
    if session_key is not None:
        row["session_key"] = session_key
    columns = ", ".join(f'"{k}"' for k in row)
    marks = ", ".join(f"%({k})s" for k in row)
    updates = ", ".join(f'"{k}" = excluded."{k}"' for k in row if k not in {"origin", "dir"})
    conn.execute(f"INSERT INTO ir_incidents ({columns}) VALUES ({marks}) "  # noqa: S608 (fixed column names)
                 f"ON CONFLICT (origin, dir) DO UPDATE SET {updates}", row)
    conn.execute("DELETE FROM ir_steps WHERE origin = %s AND incident_dir = %s",
                 (origin, row["dir"]))
    if steps:
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO ir_steps (origin, incident_dir, seq, phase, name, action, status, '
                'start, "end", duration_s, changed, destructive) VALUES (%(origin)s, '
                '%(incident_dir)s, %(seq)s, %(phase)s, %(name)s, %(action)s, %(status)s, '
                '%(start)s, %(end)s, %(duration_s)s, %(changed)s, %(destructive)s)',
                [{"origin": origin, **s} for s in steps])


def reap(conn: psycopg.Connection[Any]) -> int:
    """Mark ``running`` rows whose session is gone ``interrupted``; returns how many."""
    cur = conn.execute(
        "UPDATE ir_incidents i SET status = 'interrupted', reason = %s "
        "WHERE i.status = 'running' AND i.session_key IS NOT NULL AND NOT EXISTS ("
        " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database"
        "  WHERE datname = current_database())"
        " AND l.classid = ((i.session_key >> 32) & 4294967295)::oid"
        " AND l.objid = (i.session_key & 4294967295)::oid)", (INTERRUPTED_REASON,))
    return cur.rowcount


class PostgresLock:
    """Session advisory locks on the target's keys, on a connection of their own."""

    def __init__(self, store: PostgresStore, keys: list[str], holder: dict[str, Any],
                 opened: dict[str, Any]) -> None:
        self.store = store
        self.keys = keys
        self.holder = holder
        self.opened = opened
        self.waited = 0.0
        self.contended = False
        self.last_holder: dict[str, Any] = {}
        self.conn: psycopg.Connection[Any] | None = None
        self.session_key = advisory_key("incident", f"{store.origin}/{opened.get('dir')}")

    @property
    def held(self) -> bool:
        return self.conn is not None

    def _session(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise LockLostError(f"the lock on {', '.join(sorted(self.keys))} is not held; "
                                "stopped before the next action")
        return self.conn

    def acquire(self, timeout: float, cancel: threading.Event | None = None,
                on_wait: OnWait | None = None) -> None:
        """Take every key (sorted, all or none) within ``timeout``; LockBusyError if not."""
        started = time.monotonic()
        deadline = started + max(0.0, timeout)
        try:
            self.conn = connect(self.store.url, f"lock {self.opened.get('incident_id', '')}",
                                session=True)
        except StoreUnavailableError as exc:
            raise LockLostError(f"{exc}; not acting without the lock") from None
        try:
            self._announce()
            for key in sorted(self.keys):
                self._take(key, deadline, started, cancel, on_wait)
            self.waited = time.monotonic() - started
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(),
                    **self.holder, "keys": sorted(self.keys)}
            with self.conn.transaction():
                for key in self.keys:
                    self.conn.execute(
                        "INSERT INTO ir_lock_holders (key, holder) VALUES (%s, %s) ON CONFLICT "
                        "(key) DO UPDATE SET holder = excluded.holder, updated_at = now()",
                        (key, json.dumps(info)))
        except psycopg.Error as exc:
            self.close()
            raise LockLostError(f"state database {self.store.where}: {_first_line(exc)}; "
                                "not acting without the lock") from None
        except BaseException:
            self.close()
            raise

    def _announce(self) -> None:
        """Hold the incident's own key, then show the incident as running to every runner."""
        conn = self._session()
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.session_key,)).fetchone()
        if not row or not row[0]:
            raise LockLostError(f"incident key of {self.opened.get('dir')} already held")
        with conn.transaction():
            upsert(conn, self.store.origin, {**self.opened, "status": "running"},
                   session_key=self.session_key)

    def _take(self, key: str, deadline: float, started: float,
              cancel: threading.Event | None, on_wait: OnWait | None) -> None:
        conn = self._session()
        lock_id = advisory_key("lock", key)

        def take() -> bool:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()
            return bool(row and row[0])

        poll(self, key, take, lambda: self._holder(key), deadline, started, cancel, on_wait)

    def _holder(self, key: str) -> dict[str, Any]:
        row = self._session().execute("SELECT holder FROM ir_lock_holders WHERE key = %s",
                                (key,)).fetchone()
        try:
            data = json.loads(row[0]) if row else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def ensure_held(self) -> None:
        """Fencing: the session is alive and holds every key, else LockLostError."""
        keys = ", ".join(sorted(self.keys))
        conn = self._session()
        try:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND "
                "locktype = 'advisory' AND granted").fetchone()
        except psycopg.Error as exc:
            raise LockLostError(
                f"lost the lock on {keys}: the connection to the state database "
                f"{self.store.where} dropped ({_first_line(exc)}); stopped before the next "
                "action") from None
        if not row or int(row[0]) < len(set(self.keys)) + 1:
            raise LockLostError(f"lost the lock on {keys} (no longer held by this session); "
                                "stopped before the next action")

    def close(self) -> None:
        """End the session: PostgreSQL releases every lock it held (idempotent)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:  # a dead server: the session is gone anyway
                LOG.debug("closing the lock connection: %s", exc)
