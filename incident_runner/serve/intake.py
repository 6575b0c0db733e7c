"""The intake: every accepted alert and every incident it opened, in SQLite (WAL) in the state dir
(the default; with a postgresql:// ``state_url`` it is ``pg_intake.PostgresIntake``, shared
by every serve instance on that database: ``open_intake`` picks).

A row is committed (synchronous=FULL) before the HTTP answer, so a killed
server loses nothing it said 202 to. Workers claim queued incidents in an
IMMEDIATE transaction, so each is run by one worker; ``recover`` requeues
incidents a killed server left running (their runner died with it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from incident_runner.serve.routing import Alert, Route

if TYPE_CHECKING:
    from incident_runner.serve.pg_intake import PostgresIntake

INTAKE_FILE = "serve-intake.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY,
  dedupe_key TEXT NOT NULL,
  scenario TEXT NOT NULL,
  severity TEXT,
  host TEXT,
  service TEXT,
  alert_id INTEGER NOT NULL,
  state TEXT NOT NULL,            -- queued | running | done
  created_at REAL NOT NULL,
  claimed_at REAL,
  finished_at REAL,
  attempts INTEGER NOT NULL DEFAULT 0,
  outcome TEXT,                   -- the runner's status: resolved, failed, escalated, ...
  exit_code INTEGER,
  incident_id TEXT,
  incident_dir TEXT,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS incidents_key ON incidents (dedupe_key, scenario, id);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state, id);
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY,
  received_at TEXT NOT NULL,
  source TEXT NOT NULL,
  status TEXT NOT NULL,
  group_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  starts_at TEXT NOT NULL,
  labels TEXT NOT NULL,
  annotations TEXT NOT NULL,
  scenario TEXT,
  disposition TEXT NOT NULL,      -- queued | deduplicated | resolved | no-scenario | bad-target
  reason TEXT NOT NULL DEFAULT '',
  incident INTEGER REFERENCES incidents (id),
  attached INTEGER NOT NULL DEFAULT 0  -- 1: written to the incident's timeline as alert_repeat
);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident, attached);
"""


class QueueFullError(Exception):
    """More incidents waiting than the configured queue length (answer 429)."""


class IntakeUnavailableError(Exception):
    """The intake's database cannot be used right now (answer 503; workers retry)."""


@dataclass(frozen=True)
class Claimed:
    id: int
    scenario: str
    severity: str | None
    host: str | None
    service: str | None
    attempts: int
    alert: dict[str, Any]


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Intake:
    """One connection shared by the server's threads behind a lock."""

    def __init__(self, state_dir: Path, dedupe_window_minutes: float = 30.0,
                 queue_max: int = 100) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / INTAKE_FILE
        self.window_s = dedupe_window_minutes * 60
        self.queue_max = queue_max
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # committed = on disk before the 202
        self._db.executescript(SCHEMA)
        self.path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- intake -------------------------------------------------------------
    def _open_incident(self, db: sqlite3.Connection, key: str, scenario: str,
                       now: float) -> int | None:
        row = db.execute("SELECT id, state, finished_at FROM incidents WHERE dedupe_key = ? "
                         "AND scenario = ? ORDER BY id DESC LIMIT 1", (key, scenario)).fetchone()
        if row is None:
            return None
        if row["state"] != "done" or (row["finished_at"] or 0) >= now - self.window_s:
            return int(row["id"])
        return None

    def accept(self, routed: list[tuple[Alert, Route]]) -> list[dict[str, Any]]:
        """Record every alert of one request in one transaction; the answer per alert.

        Raises QueueFullError (nothing recorded) when the new incidents would not fit.
        """
        now = time.time()
        received = iso_now()
        answers = []
        with self._tx() as db:
            queued = db.execute("SELECT count(*) FROM incidents WHERE state = 'queued'"
                                ).fetchone()[0]
            for alert, route in routed:
                disposition, incident = route.disposition, None
                if route.scenario and route.disposition in ("queued", "resolved"):
                    incident = self._open_incident(db, alert.dedupe_key, route.scenario, now)
                if disposition == "queued" and incident is not None:
                    disposition = "deduplicated"
                cur = db.execute(
                    "INSERT INTO alerts (received_at, source, status, group_key, fingerprint, "
                    "starts_at, labels, annotations, scenario, disposition, reason, incident) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (received, alert.source, alert.status, alert.group_key, alert.fingerprint,
                     alert.starts_at, json.dumps(alert.labels), json.dumps(alert.annotations),
                     route.scenario, disposition, route.reason, incident))
                alert_id = cur.lastrowid
                if disposition == "queued":
                    if queued >= self.queue_max:
                        raise QueueFullError(
                            f"{queued} incidents waiting (queue_max {self.queue_max})")
                    queued += 1
                    incident = db.execute(
                        "INSERT INTO incidents (dedupe_key, scenario, severity, host, service, "
                        "alert_id, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
                        (alert.dedupe_key, route.scenario, route.severity, route.host,
                         route.service, alert_id, now)).lastrowid
                    db.execute("UPDATE alerts SET incident = ? WHERE id = ?", (incident, alert_id))
                answers.append({"alert": alert_id, "fingerprint": alert.fingerprint,
                                "disposition": disposition, "scenario": route.scenario,
                                "incident": incident,
                                **({"reason": route.reason} if route.reason else {})})
        return answers

    # -- workers ------------------------------------------------------------
    def claim(self) -> Claimed | None:
        """Take the oldest queued incident (one worker per incident, across processes)."""
        with self._tx() as db:
            row = db.execute("SELECT i.*, a.source, a.group_key, a.fingerprint, a.starts_at, "
                             "a.labels, a.annotations FROM incidents i JOIN alerts a "
                             "ON a.id = i.alert_id WHERE i.state = 'queued' ORDER BY i.id "
                             "LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE incidents SET state = 'running', claimed_at = ?, "
                       "attempts = attempts + 1 WHERE id = ?", (time.time(), row["id"]))
        alert = {"source": row["source"], "group_key": row["group_key"],
                 "fingerprint": row["fingerprint"], "starts_at": row["starts_at"],
                 "labels": json.loads(row["labels"]),
                 "annotations": json.loads(row["annotations"])}
        return Claimed(int(row["id"]), row["scenario"], row["severity"], row["host"],
                       row["service"], int(row["attempts"]) + 1, alert)

    def finish(self, incident: int, outcome: str, exit_code: int | None,
               incident_id: str | None, incident_dir: str | None, detail: str = "") -> None:
        with self._tx() as db:
            db.execute("UPDATE incidents SET state = 'done', finished_at = ?, outcome = ?, "
                       "exit_code = ?, incident_id = ?, incident_dir = ?, detail = ? "
                       "WHERE id = ?", (time.time(), outcome, exit_code, incident_id,
                                        incident_dir, detail[:2000], incident))

    def recover(self) -> int:
        """Requeue incidents a killed server left running; how many."""
        with self._tx() as db:
            cur = db.execute("UPDATE incidents SET state = 'queued', detail = "
                             "'requeued: the server stopped while it ran' "
                             "WHERE state = 'running'")
            return int(cur.rowcount)

    # -- repeats onto the incident's timeline ------------------------------------
    def unattached_repeats(self, incident: int) -> tuple[str | None, list[dict[str, Any]]]:
        """The incident's folder (once known) and repeats not yet on its timeline."""
        with self._lock:
            row = self._db.execute("SELECT incident_dir FROM incidents WHERE id = ?",
                                   (incident,)).fetchone()
            rows = self._db.execute(
                "SELECT id, received_at, status, fingerprint, starts_at FROM alerts "
                "WHERE incident = ? AND attached = 0 AND id != (SELECT alert_id FROM incidents "
                "WHERE id = ?) ORDER BY id", (incident, incident)).fetchall()
        return (row["incident_dir"] if row else None), [dict(r) for r in rows]

    def mark_attached(self, alert_ids: list[int]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE alerts SET attached = 1 WHERE id = ?",
                           [(i,) for i in alert_ids])

    def pending_attachments(self, limit: int = 50) -> list[int]:
        """Nothing to sweep: one instance attaches repeats when it records them."""
        del limit
        return []

    # -- reading ------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        with self._lock:
            alerts = dict(self._db.execute(
                "SELECT disposition, count(*) FROM alerts GROUP BY disposition").fetchall())
            incidents = dict(self._db.execute(
                "SELECT state, count(*) FROM incidents GROUP BY state").fetchall())
        return {"alerts": alerts, "incidents": incidents}

    def queued(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT count(*) FROM incidents WHERE state = 'queued'").fetchone()[0])


def open_intake(state_url: str | None, state_dir: Path, dedupe_window_minutes: float,
                queue_max: int) -> Intake | PostgresIntake:
    """SQLite in the state dir, or the shared intake in PostgreSQL when state_url is set."""
    if state_url is None:
        return Intake(state_dir, dedupe_window_minutes, queue_max)
    from incident_runner.serve.pg_intake import PostgresIntake  # noqa: PLC0415

    return PostgresIntake(state_url, state_dir, dedupe_window_minutes, queue_max)
