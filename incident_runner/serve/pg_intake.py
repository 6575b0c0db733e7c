"""serve's intake in PostgreSQL (``state_url``): one queue for every ``serve`` instance.

Two (or more) instances behind a load balancer, each with its own state dir,
share accepted alerts, dedupe and the queue of incidents (tables of migration
0002, ``incident-runner db upgrade``):

- ``accept`` takes a transaction advisory lock per (scenario, dedupe key) of the
  request, sorted (no deadlock between two requests), before looking for an
  open incident: two instances getting one group at once open one incident;
  the rows commit before the 202;
- ``claim`` takes the oldest queued incident with ``FOR UPDATE SKIP LOCKED``:
  each incident is run by one worker of one instance;
- each instance holds a session advisory lock (its *claim key*) on a connection
  of its own while it lives; a ``running`` incident whose claim key nobody holds
  belongs to an instance that died (``kill -9``, lost its server): any instance
  requeues it before claiming, so a killed instance's work is finished by the
  other one, or by itself after a restart;
- ``finish`` only records the outcome while the row is still this instance's
  claim (fencing: a requeued incident is finished by whoever reran it);
- repeats go on the timeline of the instance that ran the incident (its folder
  is there): other instances only record them, the runner's instance attaches
  them (``pending_attachments``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from incident_runner.serve.intake import (
    Claimed,
    IntakeUnavailableError,
    QueueFullError,
    iso_now,
)
from incident_runner.serve.routing import Alert, Route
from incident_runner.store.base import StoreUnavailableError
from incident_runner.store.postgres import (
    _origin,
    advisory_key,
    connect,
    describe_url,
    schema_version,
)

LOG = logging.getLogger(__name__)

INTAKE_SCHEMA_VERSION = 2  # migration 0002_serve_intake
REQUEUED = "requeued: the serve instance running it stopped (its database session ended)"

# A lock key held by no session: the instance that claimed the incident is gone.
_DEAD_CLAIM = (
    "i.state = 'running' AND NOT EXISTS ("
    " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database"
    "  WHERE datname = current_database())"
    " AND l.classid = ((i.claim_key >> 32) & 4294967295)::oid"
    " AND l.objid = (i.claim_key & 4294967295)::oid)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).split("\n", 1)[0].strip() or type(exc).__name__)[:200]


class PostgresIntake:
    """The shared intake; one query connection (behind a lock) and one live session."""

    def __init__(self, url: str, state_dir: Path, dedupe_window_minutes: float = 30.0,
                 queue_max: int = 100) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.where = describe_url(url)
        self.origin = _origin(state_dir)
        self.window_s = dedupe_window_minutes * 60
        self.queue_max = queue_max
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._live: psycopg.Connection[Any] | None = None
        self.claim_key = 0
        self._claims: dict[int, int] = {}  # incident -> the claim key it was claimed under
        with self._lock:
            try:
                version = schema_version(self._connection())
            except psycopg.Error as exc:
                raise StoreUnavailableError(f"state database {self.where}: "
                                            f"{_first_line(exc)}") from None
            if version < INTAKE_SCHEMA_VERSION:
                raise StoreUnavailableError(
                    f"state database {self.where} is at schema version {version}, serve's "
                    f"shared intake needs {INTAKE_SCHEMA_VERSION}: run `incident-runner db "
                    "upgrade`")
            self._ensure_live()

    # -- connections --------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.url, f"serve intake {os.getpid()}")
        return self._conn

    def _ensure_live(self) -> int:
        """This instance's claim key, held by its live session (a new one if it dropped)."""
        live = self._live
        if live is not None and not live.closed and not live.broken:
            try:
                live.execute("SELECT 1")
                return self.claim_key
            except psycopg.Error as exc:
                LOG.warning("serve intake: live session lost (%s): claims made under it may "
                            "be requeued by another instance", _first_line(exc))
        self._close_live()
        live = connect(self.url, f"serve live {os.getpid()}", session=True)
        key = advisory_key("serve", f"{self.origin}/{os.getpid()}/{uuid.uuid4()}")
        row = live.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not row or not row[0]:
            live.close()
            raise StoreUnavailableError(f"state database {self.where}: claim key taken")
        self._live, self.claim_key = live, key
        return key

    def _close_live(self) -> None:
        live, self._live = self._live, None
        _close_quietly(live, "the live session")

    def close(self) -> None:
        with self._lock:
            self._close_live()
            conn, self._conn = self._conn, None
            _close_quietly(conn, "the intake connection")

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; a database error becomes IntakeUnavailableError (503 / retry)."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    yield conn
            except (psycopg.Error, StoreUnavailableError) as exc:
                if self._conn is not None and self._conn.broken:
                    self._conn = None
                raise IntakeUnavailableError(
                    f"state database {self.where}: {_first_line(exc)}") from None

    # -- intake -------------------------------------------------------------------------
    def _open_incident(self, conn: psycopg.Connection[Any], key: str, scenario: str,
                       now: float) -> int | None:
        row = conn.execute("SELECT id, state, finished_at FROM ir_serve_incidents WHERE "
                           "dedupe_key = %s AND scenario = %s ORDER BY id DESC LIMIT 1",
                           (key, scenario)).fetchone()
        if row is None:
            return None
        if row[1] != "done" or (row[2] or 0) >= now - self.window_s:
            return int(row[0])
        return None

    def accept(self, routed: list[tuple[Alert, Route]]) -> list[dict[str, Any]]:
        """As ``Intake.accept``, serialized per alert group across every instance."""
        groups = sorted({f"{r.scenario}\0{a.dedupe_key}" for a, r in routed
                         if r.scenario and r.disposition in ("queued", "resolved")})
        received = iso_now()
        answers = []
        with self._tx() as conn:
            for group in groups:  # sorted: two requests never wait on each other in a cycle
                conn.execute("SELECT pg_advisory_xact_lock(%s)",
                             (advisory_key("serve-dedupe", group),))
            now = time.time()  # after the locks: a group's incident is seen as of now
            row = conn.execute("SELECT count(*) FROM ir_serve_incidents WHERE state = 'queued'"
                               ).fetchone()
            queued = int(row[0]) if row else 0
            for alert, route in routed:
                disposition, incident = route.disposition, None
                if route.scenario and route.disposition in ("queued", "resolved"):
                    incident = self._open_incident(conn, alert.dedupe_key, route.scenario, now)
                if disposition == "queued" and incident is not None:
                    disposition = "deduplicated"
                if disposition == "queued" and queued >= self.queue_max:
                    raise QueueFullError(f"{queued} incidents waiting (queue_max "
                                         f"{self.queue_max}, shared by every instance)")
                row = conn.execute(
                    "INSERT INTO ir_serve_alerts (received_at, received_by, source, status, "
                    "group_key, fingerprint, starts_at, labels, annotations, scenario, "
                    "disposition, reason, incident) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s, %s) RETURNING id",
                    (received, self.origin, alert.source, alert.status, alert.group_key,
                     alert.fingerprint, alert.starts_at, json.dumps(alert.labels),
                     json.dumps(alert.annotations), route.scenario, disposition, route.reason,
                     incident)).fetchone()
                alert_id = int(row[0]) if row else 0
                if disposition == "queued":
                    queued += 1
                    row = conn.execute(
                        "INSERT INTO ir_serve_incidents (dedupe_key, scenario, severity, host, "
                        "service, alert_id, state, created_at) VALUES (%s, %s, %s, %s, %s, %s, "
                        "'queued', %s) RETURNING id",
                        (alert.dedupe_key, route.scenario, route.severity, route.host,
                         route.service, alert_id, now)).fetchone()
                    incident = int(row[0]) if row else None
                    conn.execute("UPDATE ir_serve_alerts SET incident = %s WHERE id = %s",
                                 (incident, alert_id))
                answers.append({"alert": alert_id, "fingerprint": alert.fingerprint,
                                "disposition": disposition, "scenario": route.scenario,
                                "incident": incident,
                                **({"reason": route.reason} if route.reason else {})})
        return answers

    # -- workers ------------------------------------------------------------------------
    def _requeue_dead(self, conn: psycopg.Connection[Any]) -> int:
        cur = conn.execute(f"UPDATE ir_serve_incidents i SET state = 'queued', detail = %s, "  # noqa: S608 (fixed text)
                           f"claimed_by = NULL, claim_key = NULL WHERE {_DEAD_CLAIM}",
                           (REQUEUED,))
        if cur.rowcount:
            LOG.warning("requeued %d incident(s) of a serve instance that stopped",
                        cur.rowcount)
        return int(cur.rowcount)

    def claim(self) -> Claimed | None:
        """Take the oldest queued incident: one worker of one instance per incident."""
        with self._tx() as conn:
            key = self._ensure_live()
            self._requeue_dead(conn)
            row = conn.execute(
                "SELECT i.id, i.scenario, i.severity, i.host, i.service, i.attempts, a.source, "
                "a.group_key, a.fingerprint, a.starts_at, a.labels, a.annotations "
                "FROM ir_serve_incidents i JOIN ir_serve_alerts a ON a.id = i.alert_id "
                "WHERE i.state = 'queued' ORDER BY i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED"
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE ir_serve_incidents SET state = 'running', claimed_at = %s, "
                         "attempts = attempts + 1, claimed_by = %s, claim_key = %s "
                         "WHERE id = %s", (time.time(), self.origin, key, row[0]))
            self._claims[int(row[0])] = key
        alert = {"source": row[6], "group_key": row[7], "fingerprint": row[8],
                 "starts_at": row[9], "labels": json.loads(row[10]),
                 "annotations": json.loads(row[11])}
        return Claimed(int(row[0]), row[1], row[2], row[3], row[4], int(row[5]) + 1, alert)

    def finish(self, incident: int, outcome: str, exit_code: int | None,
               incident_id: str | None, incident_dir: str | None, detail: str = "") -> None:
        key = self._claims.get(incident)
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE ir_serve_incidents SET state = 'done', finished_at = %s, outcome = %s, "
                "exit_code = %s, incident_id = %s, incident_dir = %s, detail = %s "
                "WHERE id = %s AND state = 'running' AND claim_key = %s",
                (time.time(), outcome, exit_code, incident_id, incident_dir, detail[:2000],
                 incident, key))
        self._claims.pop(incident, None)
        if cur.rowcount == 0:
            LOG.warning("incident %d: no longer this instance's claim (requeued after its "
                        "live session was lost); outcome %s not recorded here", incident,
                        outcome)

    def recover(self) -> int:
        """Requeue incidents whose instance is gone (never another live instance's)."""
        with self._tx() as conn:
            return self._requeue_dead(conn)

    # -- repeats onto the incident's timeline --------------------------------------------
    def unattached_repeats(self, incident: int) -> tuple[str | None, list[dict[str, Any]]]:
        """As ``Intake.unattached_repeats``, for incidents this instance ran (its folders)."""
        with self._tx() as conn:
            row = conn.execute("SELECT incident_dir, alert_id FROM ir_serve_incidents "
                               "WHERE id = %s AND claimed_by = %s", (incident, self.origin)
                               ).fetchone()
            if row is None:
                return None, []
            rows = conn.execute(
                "SELECT id, received_at, status, fingerprint, starts_at FROM ir_serve_alerts "
                "WHERE incident = %s AND attached = 0 AND id != %s ORDER BY id",
                (incident, row[1])).fetchall()
        names = ("id", "received_at", "status", "fingerprint", "starts_at")
        return row[0], [dict(zip(names, r, strict=True)) for r in rows]

    def mark_attached(self, alert_ids: list[int]) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE ir_serve_alerts SET attached = 1 WHERE id = ANY(%s)",
                         (alert_ids,))

    def pending_attachments(self, limit: int = 50) -> list[int]:
        """Finished incidents this instance ran with repeats not yet on their timeline
        (received by another instance, or after the run)."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT DISTINCT a.incident FROM ir_serve_alerts a JOIN ir_serve_incidents i "
                "ON i.id = a.incident WHERE a.attached = 0 AND a.id != i.alert_id "
                "AND a.disposition IN ('deduplicated', 'resolved') AND i.state = 'done' "
                "AND i.claimed_by = %s AND i.incident_dir IS NOT NULL "
                "ORDER BY a.incident DESC LIMIT %s",
                (self.origin, limit)).fetchall()
        return [int(r[0]) for r in rows]

    # -- reading ------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        with self._tx() as conn:
            alerts = dict(conn.execute("SELECT disposition, count(*) FROM ir_serve_alerts "
                                       "GROUP BY disposition").fetchall())
            incidents = dict(conn.execute("SELECT state, count(*) FROM ir_serve_incidents "
                                          "GROUP BY state").fetchall())
        return {"alerts": alerts, "incidents": incidents}

    def queued(self) -> int:
        with self._tx() as conn:
            row = conn.execute("SELECT count(*) FROM ir_serve_incidents WHERE state = 'queued'"
                               ).fetchone()
        return int(row[0]) if row else 0


def _close_quietly(conn: psycopg.Connection[Any] | None, what: str) -> None:
    """Close a connection that may already be dead (the server gone): nothing to report."""
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error as exc:
            LOG.debug("closing %s: %s", what, exc)
